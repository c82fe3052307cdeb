"""The attribution store: one HDF5 file per run (or shard), written batch by batch, safe against crashes.

Layout (``size`` rows, one per sample of the run, in the order they are computed)::

    /index        (size,)           int64    the sample's index in the data set
    /label        (size,)           int64    its label (-1 if unknown)
    /output       (size, K)         float32  the model's output (logits)
    /prediction   (size,)           int64    the predicted class, argmax of the output
    /attribution  (size, *shape)    float16 or float32, chunked, gzip + shuffle (compressed in threads)
    /done         ()                int64    rows [0, done) are complete; nothing else is trusted
    attributes:   relprop_format, relprop_format_version, params (JSON: the run, its shard, ...), size

Crash safety. The file is created with all rows allocated and switched to HDF5's single-writer /
multiple-reader (SWMR) mode, in which the library orders its metadata writes so that the file stays
readable whenever the writer dies. Each batch writes its rows, flushes, and only then advances ``done``
and flushes again, so ``done`` never counts a row that is not on disk. Every batch but the first is
written when the next one is appended (or the writer closes), its heatmaps compressed meanwhile in other
threads: a writer killed while its caller computes batch k+1 has written the batches before k. A file left
by a killed writer still carries HDF5's "open for writing" flag; resuming copies its ``done`` complete rows
into a fresh file (written aside, then atomically renamed over it). A new file is first written aside and
renamed once its first batch is committed, so a crash never leaves a half-created store either.

Damage. Reading in SWMR mode skips HDF5's check that the file is as long as it recorded, and a store cut
short (a copy that stopped, a full disk) would read its lost rows as zeros; so every open checks the length
first (:mod:`relprop.store._integrity`), then the header against the datasets, and names the file and what
is wrong in a ``ValueError``.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from relprop.store._integrity import check_length, lock, real_path, replaced_atomically

FORMAT = "relprop-attributions"
FORMAT_VERSION = 1
ROW_FIELDS = ("index", "label", "output", "prediction", "attribution")
_CHUNK_BYTES = 1 << 20
_COPY_ROWS = 4096
_COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
_COMPRESSING_THREADS = min(4, os.cpu_count() or 1)


@dataclass
class Rows:
    """A batch of consecutive rows of a store: one entry per sample, in the store's order."""

    index: np.ndarray
    label: np.ndarray
    output: np.ndarray
    prediction: np.ndarray
    attribution: np.ndarray

    def __len__(self) -> int:
        return len(self.index)


def _not_closed_cleanly(error: OSError) -> bool:
    return "consistency flags" in str(error)


@dataclass(frozen=True)
class _Header:
    """What a store says about itself: the run's parameters, its rows, and how many are complete."""

    params: dict[str, Any]
    size: int
    done: int


def _read_header(file: h5py.File, path: Path) -> _Header:
    """The header of the open store ``file``, checked against its datasets.

    Raises
    ------
    ValueError
        Naming ``path`` and what is wrong, if it is no store, of another format version, or damaged.
    """
    try:
        return _checked_header(file, path)
    except (KeyError, OSError, RuntimeError, TypeError) as error:  # HDF5 failing on damaged metadata
        raise ValueError(f"{path} is damaged: {' '.join(str(error).split())}") from error


def _checked_header(file: h5py.File, path: Path) -> _Header:
    attrs = file.attrs
    if attrs.get("relprop_format") != FORMAT:
        raise ValueError(f"{path} is not a relprop attribution store")
    _require(path, "attribute", [a for a in ("relprop_format_version", "params", "size") if a not in attrs])
    if attrs["relprop_format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"{path} has store format version {attrs['relprop_format_version']}; this relprop reads "
            f"version {FORMAT_VERSION}"
        )
    params = _parse_params(attrs["params"], path)
    datasets = (*ROW_FIELDS, "done")
    _require(path, "dataset", [d for d in datasets if not isinstance(file.get(d), h5py.Dataset)])
    size, done = int(attrs["size"]), file["done"]
    for field in ROW_FIELDS:
        rows = file[field].shape[0] if file[field].shape else 0
        if rows != size:
            raise ValueError(f"{path} is damaged: its {field} has {rows} rows, the store {size}")
    if done.shape != () or not 0 <= int(done[()]) <= size:
        raise ValueError(f"{path} is damaged: its count of complete rows is not a number from 0 to {size}")
    return _Header(params, size, int(done[()]))


def _require(path: Path, kind: str, missing: list[str]) -> None:
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise ValueError(f"{path} is damaged or no store: it lacks the {kind}{plural} {', '.join(missing)}")


def _parse_params(text: Any, path: Path) -> dict[str, Any]:
    try:
        params = json.loads(text)
    except (TypeError, ValueError):
        params = None
    if not isinstance(params, dict):
        raise ValueError(f"{path} is damaged: its run parameters are not a JSON object ({str(text)[:60]!r})")
    return params


def _open_for_reading(path: Path) -> h5py.File:
    """Open ``path`` in SWMR mode (readable while its writer runs, or after it was killed), checked first for
    truncation, which SWMR readers do not detect."""
    try:
        check_length(path)
        return h5py.File(path, "r", swmr=True)
    except OSError as error:
        raise ValueError(f"cannot open {path} as an attribution store: {error}") from error


def open_finished(path: Path) -> tuple[h5py.File, _Header]:
    """Open the finished store ``path`` for reading, with its header.

    Raises
    ------
    ValueError
        If it cannot be opened, is damaged, truncated or incomplete (naming it).
    """
    file = _open_for_reading(path)
    try:
        header = _read_header(file, path)
        if header.done != header.size:
            raise ValueError(
                f"{path} is incomplete ({header.done} of {header.size} samples): finish it by running the "
                "relprop attribute command (or attribute_dataset call) that wrote it again"
            )
    except BaseException:
        file.close()
        raise
    return file, header


def open_shard(path: Path) -> tuple[h5py.File, _Header]:
    """Open the finished store ``path`` as a shard to merge: a merged store is refused."""
    file, header = open_finished(path)
    if file["index"].is_virtual:
        file.close()
        raise ValueError(f"{path} is a merged store, not a shard: merge the shards it was merged from")
    return file, header


def run_of(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters its shards share: all but the shard."""
    return {key: value for key, value in params.items() if key != "shard"}


def check_params(found: Mapping[str, Any], wanted: Mapping[str, Any], path: Path, advice: str) -> None:
    """Refuse a store whose run ``found`` differs from ``wanted``, naming the differences, then ``advice``."""
    if dict(found) == dict(wanted):
        return
    keys = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
    differences = "; ".join(
        f"{k} differs"
        if k.endswith("_fingerprint")
        else f"{k}: store has {found.get(k)!r}, this run {wanted.get(k)!r}"
        for k in keys
    )
    raise ValueError(f"{path} holds a different run ({differences}); refusing to mix them: {advice}")


def write_header(file: h5py.File, params: Mapping[str, Any], size: int, done: int = 0) -> None:
    """Mark ``file`` as a store of this format, with the run's ``params``, ``size`` rows and ``done`` of them
    complete: the header :func:`_read_header` checks."""
    file.attrs["relprop_format"] = FORMAT
    file.attrs["relprop_format_version"] = FORMAT_VERSION
    file.attrs["params"] = json.dumps(dict(params), sort_keys=True)
    file.attrs["size"] = size
    file.create_dataset("done", data=np.int64(done))


def _create_layout(file: h5py.File, params: Mapping[str, Any], size: int, like: Rows) -> None:
    """Allocate every row of a store whose rows look like ``like`` (one row or more)."""
    write_header(file, params, size)
    for field in ROW_FIELDS:
        example = np.asarray(getattr(like, field))
        shape = (size, *example.shape[1:])
        row_bytes = max(1, int(np.prod(shape[1:], dtype=np.int64)) * example.dtype.itemsize)
        rows = int(max(1, min(size, len(like), _CHUNK_BYTES // row_bytes)))
        file.create_dataset(
            field,
            shape=shape,
            dtype=example.dtype,
            chunks=(rows, *shape[1:]),
            **(_COMPRESSION if field == "attribution" else {}),
        )


def _deflate_level(dataset: h5py.Dataset) -> int | None:
    """The deflate level of a dataset whose filters are shuffle, then deflate (as :func:`_create_layout`
    makes the attribution), None for any other pipeline."""
    plist = dataset.id.get_create_plist()
    filters = [plist.get_filter(k) for k in range(plist.get_nfilters())]
    if [code for code, *_ in filters] != [h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_DEFLATE]:
        return None
    return int(filters[1][2][0])


def _shuffle_and_deflate(block: np.ndarray, level: int) -> bytes:
    """A chunk as HDF5's shuffle and deflate filters store it: the k-th bytes of every element together
    (for each k in turn), compressed by zlib at ``level``. zlib releases the GIL, so that chunks compress in
    threads while the main thread goes on."""
    size = block.dtype.itemsize
    return zlib.compress(np.ascontiguousarray(block).view(np.uint8).reshape(-1, size).T.tobytes(), level)


class StoreWriter:
    """Append batches of rows to a store, resuming where a previous run of the same job stopped.

    Parameters
    ----------
    path:
        The store's file.
    params:
        The run's identity (JSON-serialisable): a store written with other params is refused.
    size:
        The number of rows the finished store has.

    Use as a context manager; :attr:`done` is the number of rows already complete. The store is written
    where ``path`` points (a symbolic link stays a link), and one writer at a time holds it.
    """

    def __init__(self, path: str | Path, params: Mapping[str, Any], size: int) -> None:
        self.path = Path(path)
        self._real = real_path(path)
        self.params = dict(params)
        self.size = size
        self._file: h5py.File | None = None
        self._lock = None
        self.done = 0
        self._pending: tuple[Rows, list[tuple[int, Future]] | None] | None = None
        self._threads: ThreadPoolExecutor | None = None

    def __enter__(self) -> StoreWriter:
        self._lock = lock(self.path)
        try:
            if self._real.exists():
                self._open_existing()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def append(self, rows: Rows) -> None:
        """Write ``rows`` after the others.

        The first batch is written, flushed and counted as done at once. Each later batch's attributions
        start compressing in threads, and the batch is written, flushed and counted as done when the next
        one is appended or the writer closes: so the caller computes the next batch meanwhile, and
        :attr:`done` never counts a row that is not on disk.
        """
        appended = self.done + (0 if self._pending is None else len(self._pending[0]))
        if appended + len(rows) > self.size:
            raise ValueError(f"{self.path}: {appended} + {len(rows)} rows exceed the store's {self.size}")
        if self._file is None:
            self._create(rows)
            return
        self._commit_pending()
        self._pending = (rows, self._compress(rows))

    def close(self) -> None:
        """Write the last appended batch, then close the store and release it."""
        try:
            if self._file is not None:
                self._commit_pending()
        finally:
            if self._threads is not None:
                self._threads.shutdown()
                self._threads = None
            if self._file is not None:
                self._file.close()
                self._file = None
            if self._lock is not None:
                self._lock.close()
                self._lock = None

    # ------------------------------------------------------------------------------------------ internals
    def _open_existing(self) -> None:
        check_length(self._real)
        try:
            file = h5py.File(self._real, "r+", libver="latest")
        except OSError as error:
            if not _not_closed_cleanly(error):
                raise ValueError(f"{self.path} exists and is not a readable HDF5 file: {error}") from error
            self._recover()
            file = h5py.File(self._real, "r+", libver="latest")
        try:
            self.done = self._same_run(file).done
            file.swmr_mode = True
        except BaseException:
            file.close()
            raise
        self._file = file

    def _same_run(self, file: h5py.File) -> _Header:
        """The header of the open store ``file``, refused unless it is this run's."""
        header = _read_header(file, self.path)
        check_params(
            header.params, self.params, self.path, "choose another --out or delete the file to start over"
        )
        if header.size != self.size:
            raise ValueError(f"{self.path} has {header.size} rows, this run {self.size}")
        return header

    def _recover(self) -> None:
        """Copy the complete rows of a store whose writer was killed into a cleanly closed file."""
        with (
            replaced_atomically(self._real) as aside,
            h5py.File(self._real, "r", swmr=True) as damaged,
            h5py.File(aside, "w-", libver="latest") as fresh,
        ):
            header = self._same_run(damaged)
            done = header.done
            write_header(fresh, header.params, header.size, done)
            for field in ROW_FIELDS:
                source = damaged[field]
                target = fresh.create_dataset_like(field, source)
                for start in range(0, done, _COPY_ROWS):
                    target[start : min(done, start + _COPY_ROWS)] = source[
                        start : min(done, start + _COPY_ROWS)
                    ]

    def _create(self, first: Rows) -> None:
        with replaced_atomically(self._real) as aside, h5py.File(aside, "w-", libver="latest") as file:
            _create_layout(file, self.params, self.size, first)
            self._write(file, first)
        self._open_existing()

    def _compress(self, rows: Rows) -> list[tuple[int, Future]] | None:
        """Start compressing the attribution chunks of ``rows`` (to follow the done rows) in threads:
        ``(first row, compressed chunk)`` of each. None where HDF5 must compress them itself: a batch that
        does not cover whole chunks (a run resumed with another batch size), other filters or another
        dtype."""
        dataset = self._file["attribution"]
        level, rows_per_chunk = _deflate_level(dataset), dataset.chunks[0]
        start, stop = self.done, self.done + len(rows)
        attribution = rows.attribution
        if (
            level is None
            or not isinstance(attribution, np.ndarray)
            or attribution.dtype != dataset.dtype
            or attribution.shape[1:] != dataset.shape[1:]
            or start % rows_per_chunk
            or (stop % rows_per_chunk and stop != self.size)
        ):
            return None
        if self._threads is None:
            self._threads = ThreadPoolExecutor(_COMPRESSING_THREADS, thread_name_prefix="relprop-store")
        chunks = []
        for first in range(start, stop, rows_per_chunk):
            block = attribution[first - start : first - start + rows_per_chunk]
            if len(block) < rows_per_chunk:  # the last chunk, stored whole by HDF5 beyond the last row
                padding = np.zeros((rows_per_chunk - len(block), *block.shape[1:]), block.dtype)
                block = np.concatenate([block, padding])
            chunks.append((first, self._threads.submit(_shuffle_and_deflate, block, level)))
        return chunks

    def _commit_pending(self) -> None:
        """Write the pending batch, if any: its compressed chunks as they are, its other fields by HDF5."""
        if self._pending is None:
            return
        rows, chunks = self._pending
        self._pending = None
        self._write(self._file, rows, chunks)

    def _write(self, file: h5py.File, rows: Rows, chunks: list[tuple[int, Future]] | None = None) -> None:
        start, stop = self.done, self.done + len(rows)
        for field in ROW_FIELDS:
            if field == "attribution" and chunks is not None:
                zeros = (0,) * (file[field].ndim - 1)
                for first, compressed in chunks:
                    file[field].id.write_direct_chunk((first, *zeros), compressed.result())
            else:
                file[field][start:stop] = getattr(rows, field)
        file.flush()
        file["done"][()] = stop
        file.flush()
        self.done = stop


class AttributionStore:
    """A finished store, read lazily: the row fields are :class:`h5py.Dataset` objects, read on slicing.

    A merged store reads its rows from its shards, found beside it (by the paths relative to it that
    :func:`relprop.store.merge` recorded); opening it refuses a shard that is missing, damaged or of
    another run, whose rows HDF5 would otherwise read as zeros.

    Attributes
    ----------
    index, label, output, prediction, attribution:
        The rows (see the module docstring); e.g. ``store.attribution[10:20]`` reads ten heatmaps.
    params:
        The run's parameters (model, method, composite, preprocessing, relprop version, ...).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file, header = open_finished(self.path)
        try:
            self.params = header.params
            folder = real_path(self.path).parent
            rows = [_open_rows(self._file, field, folder) for field in ROW_FIELDS]
            _check_shards(self.path, rows, self.params, folder)
        except BaseException:
            self._file.close()
            raise
        self.index, self.label, self.output, self.prediction, self.attribution = rows

    def __len__(self) -> int:
        return len(self.index)

    def __enter__(self) -> AttributionStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __repr__(self) -> str:
        return (
            f"AttributionStore({str(self.path)!r}, {len(self)} samples, attribution {self.attribution.shape})"
        )


def _open_rows(file: h5py.File, field: str, folder: Path) -> h5py.Dataset:
    """The dataset ``field`` of ``file``; if virtual, it reads its shards from ``folder``, whatever the
    current folder (HDF5 would otherwise also look for them there)."""
    access = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    access.set_virtual_prefix(os.fsencode(folder))
    return h5py.Dataset(h5py.h5d.open(file.id, field.encode(), dapl=access))


def _check_shards(path: Path, rows: list[h5py.Dataset], params: dict[str, Any], folder: Path) -> None:
    """Refuse a merged store whose shards are not all there, whole, and of its run: HDF5 would read the
    rows of a missing or truncated shard as zeros.

    Raises
    ------
    ValueError
        Naming the merged store, the shard and what is wrong with it.
    """
    expected = {
        source.file_name: source.src_space.shape[0]
        for dataset in rows
        if dataset.is_virtual
        for source in dataset.virtual_sources()
        if source.file_name != "."  # a dataset of the file itself
    }
    for name, size in expected.items():
        shard = folder / name
        if not shard.is_file():
            raise ValueError(
                f"{path}: its shard {shard} is missing; a merged store reads its rows from its shards, which "
                "must stay where they were beside it"
            )
        try:
            file, header = open_shard(shard)
        except ValueError as error:
            raise ValueError(f"{path}: its shard is unusable: {error}") from error
        with file:
            if run_of(header.params) != run_of(params) or header.size != size:
                raise ValueError(
                    f"{path}: its shard {shard} holds another run, or another shard of it, than was merged"
                )


def open(path: str | Path) -> AttributionStore:  # noqa: A001 - mirrors h5py.File / builtins.open
    """Open a finished store (or merged shards) for lazy reading."""
    return AttributionStore(path)
