"""Join the shards of a run into one store, without copying: an HDF5 virtual dataset over the shards."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from relprop.store._file import FORMAT, FORMAT_VERSION, ROW_FIELDS, _check_params, _open_finished

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


def merge(out: str | Path, shards: Sequence[str | Path]) -> Path:
    """Join complete shard stores of one run into the store ``out``, readable as one.

    Row ``i`` of the merged store is sample ``i`` of the data set. The merged file holds HDF5 virtual
    datasets that read from the shard files (by paths relative to ``out``), so the shards must stay next to
    it.

    Raises
    ------
    ValueError
        If a shard is incomplete, the shards come from different runs, or a sample is missing or present
        more than once (the message names them).
    """
    out = Path(out)
    if not shards:
        raise ValueError("merge needs at least one shard")
    params, layouts, indices = None, [], []
    for path in map(Path, shards):
        file, header = _open_finished(path)
        with file:
            found = {key: value for key, value in header.params.items() if key != "shard"}
            if params is None:
                params = found
            _check_params(found, params, path)
            indices.append(file["index"][:])
            layouts.append({field: (file[field].shape, file[field].dtype) for field in ROW_FIELDS})
    total = params["dataset_size"]
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
    aside = out.with_name(out.name + ".new")
    with h5py.File(aside, "w", libver="latest") as file:
        for field in ROW_FIELDS:
            shape, dtype = layouts[0][field]
            layout = h5py.VirtualLayout(shape=(total, *shape[1:]), dtype=dtype)
            for path, index, shard_layout in zip(shards, indices, layouts):
                source_path = os.path.relpath(Path(path).resolve(), out.resolve().parent)
                source = h5py.VirtualSource(source_path, field, shape=shard_layout[field][0])
                for row, length, first, step in _runs(index):
                    layout[first : first + step * (length - 1) + 1 : step] = source[row : row + length]
            file.create_virtual_dataset(field, layout)
        file.attrs["relprop_format"] = FORMAT
        file.attrs["relprop_format_version"] = FORMAT_VERSION
        file.attrs["params"] = json.dumps({**params, "shard": f"merged from {len(shards)}"}, sort_keys=True)
        file.attrs["size"] = total
        file.create_dataset("done", data=np.int64(total))
    os.replace(aside, out)
    return out
