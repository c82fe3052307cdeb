"""Join the shards of a run into one store, without copying: an HDF5 virtual dataset over the shards."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from relprop.store._file import ROW_FIELDS, check_params, open_finished, open_shard, run_of, write_header
from relprop.store._integrity import real_path, replaced_atomically

__all__ = ["merge"]


def _runs(index: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Cut ``index`` into maximal arithmetic runs: ``(first row, rows, first value, step)``."""
    runs, row = [], 0
    while row < len(index):
        step = int(index[row + 1] - index[row]) if row + 1 < len(index) else 1
        length = 1
        while row + length < len(index) and index[row + length] - index[row + length - 1] == step:
            length += 1
        runs.append((row, length, int(index[row]), step if length > 1 else 1))
        row += length
    return runs


def _describe(values: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def merge(out: str | Path, shards: Sequence[str | Path], *, force: bool = False) -> Path:
    """Join complete shard stores of one run into the store ``out``, readable as one.

    Row ``i`` of the merged store is sample ``i`` of the data set. The merged file holds HDF5 virtual
    datasets that read from the shard files (by paths relative to ``out``), so the shards must stay where
    they are relative to it; :func:`relprop.store.open` checks that each is there, whole and of the run. The
    merged file is written beside ``out`` and renamed over it once complete.

    Parameters
    ----------
    out:
        The merged store. An existing file is replaced only if it is a merged store of the same run, or
        with ``force``; a folder or one of the shards (however spelled) never.
    shards:
        The shard stores, each given once.
    force:
        Replace ``out`` whatever file it is.

    Raises
    ------
    ValueError
        If a shard is incomplete or given twice, the shards come from different runs, a sample is missing
        or present more than once, or ``out`` may not be replaced (the message names them).
    """
    out, paths = Path(out), [Path(shard) for shard in shards]
    if not paths:
        raise ValueError("merge needs at least one shard")
    _check_distinct(out, paths)
    params, indices, layouts = _read_shards(paths)
    _check_coverage(params["dataset_size"], indices)
    _check_replaceable(out, params, force)
    with replaced_atomically(out) as aside, h5py.File(aside, "w-", libver="latest") as file:
        _write_virtual(file, real_path(out).parent, paths, params, indices, layouts)
    return out


def _check_distinct(out: Path, paths: list[Path]) -> None:
    """Refuse a shard given twice, and an ``out`` that is a shard: comparing files, not spellings."""
    seen: dict[tuple[int, int], Path] = {}
    for path in paths:
        identity = _identity(path)
        if identity in seen:
            raise ValueError(f"shard {path} is given twice (also as {seen[identity]})")
        if identity is not None:
            seen[identity] = path
    if _identity(out) in seen:
        raise ValueError(
            f"{out} is one of the shards ({seen[_identity(out)]}): writing the merged store over it would "
            "destroy it; name a new file"
        )


def _identity(path: Path) -> tuple[int, int] | None:
    """The device and inode of the file ``path`` names (links followed), or ``None`` if there is none."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _read_shards(paths: list[Path]) -> tuple[dict[str, Any], list[np.ndarray], list[dict]]:
    """The run the shards share, and each shard's data-set indices and dataset shapes and types."""
    params, layouts, indices = None, [], []
    for path in paths:
        file, header = open_shard(path)
        with file:
            found = run_of(header.params)
            if params is None:
                params = found
            check_params(found, params, path, f"merge only the shards of the run of {paths[0]}")
            indices.append(file["index"][:])
            layouts.append({field: (file[field].shape, file[field].dtype) for field in ROW_FIELDS})
    return params, indices, layouts


def _check_coverage(total: int, indices: list[np.ndarray]) -> None:
    counts = np.bincount(np.concatenate(indices), minlength=total)
    missing, repeated = np.flatnonzero(counts == 0), np.flatnonzero(counts > 1)
    if len(missing) or len(repeated):
        problems = []
        if len(missing):
            problems.append(f"missing samples {_describe(missing)}")
        if len(repeated):
            problems.append(f"samples present more than once {_describe(repeated)}")
        raise ValueError(
            f"the shards do not cover the data set of {total} samples once: {'; '.join(problems)}"
        )


def _check_replaceable(out: Path, params: dict[str, Any], force: bool) -> None:
    if out.is_dir():
        raise ValueError(f"{out} is a folder: name the merged store's file")
    if force or not out.exists() or _is_merged_store_of(out, params):
        return
    raise ValueError(
        f"{out} exists and is not a merged store of this run; refusing to replace it: name another file, "
        "or pass --force (force=True) to replace it anyway"
    )


def _is_merged_store_of(path: Path, params: dict[str, Any]) -> bool:
    try:
        file, header = open_finished(path)
    except ValueError:
        return False
    with file:
        return file["index"].is_virtual and run_of(header.params) == params


def _write_virtual(file: h5py.File, folder: Path, paths, params, indices, layouts) -> None:
    """The merged store's layout in ``file``: virtual rows that read the shards by paths relative to
    ``folder``, the merged store's own."""
    total = params["dataset_size"]
    for field in ROW_FIELDS:
        shape, dtype = layouts[0][field]
        layout = h5py.VirtualLayout(shape=(total, *shape[1:]), dtype=dtype)
        for path, index, shard_layout in zip(paths, indices, layouts):
            source_path = os.path.relpath(real_path(path), folder)
            source = h5py.VirtualSource(source_path, field, shape=shard_layout[field][0])
            for row, length, first, step in _runs(index):
                layout[first : first + step * (length - 1) + 1 : step] = source[row : row + length]
        file.create_virtual_dataset(field, layout)
    write_header(file, {**params, "shard": f"merged from {len(paths)}"}, total, done=total)
