"""SpRAy analyses for ViRelAy (the SpRAy viewer, github.com/virelay/virelay): an analysis file, or a project.

The analysis file has one group per analysed class, named by the class index::

    /<class>/index                       (M,)    uint32   the analysed samples (data-set indices, or store
                                                          rows in a project)
    /<class>/embedding/spectral          (M, m)  float64  Laplacian eigenvectors; attribute 'eigenvalue'
    /<class>/embedding/tsne              (M, 2)  float64  t-SNE of 'spectral'; attributes 'embedding'
                                                          ('spectral') and 'index' (the axes used)
    /<class>/cluster/<name>              (M,)    int64    cluster of each sample, e.g. 'kmeans-2'

The eigenvalues (and the eigenvectors' columns with them) are in CoRelAy's order, descending, the trivial
zero last: ViRelAy plots eigenvalue ``i`` at position ``m - 1 - i``, so the zero comes out at 0 and the
eigengap where relprop's report shows it.

ViRelAy shows cluster ``k`` as "Cluster k+1"; a project's clustering is named so that it says this
(:data:`CLUSTER_NUMBERING`).

A project (:func:`write_virelay_project`) is a folder that ``virelay DIR/project.yaml`` opens as it is::

    project.yaml      the project: names of the model, data set and attribution method, and the files below
    label-map.json    one entry per class: index, word_net_id (the class index as text, which is how
                      ViRelAy names an analysis group) and name
    inputs.h5         /data (N, 3, H, W) uint8, /label (N,): the store's samples, row by row
    attributions.h5   the store in ViRelAy's attribution layout, by row (:func:`relprop.store.export_virelay`)
    analysis.h5       the analysed classes, by row

Samples are numbered by store row throughout, so ViRelAy finds an attribution without scanning an index.
The inputs are written as 8-bit RGB: ViRelAy's image endpoint cannot show one channel (PIL has no mode for
(H, W, 1)) and guesses the value range of float images from each image's minimum and maximum (a dark image
in [0, 1] is read as one in [-1, 1]); each image is scaled from its own minimum and maximum to [0, 255],
one channel repeated three times, more or fewer than three averaged to grey.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from relprop.report.analysis import ClassAnalysis
from relprop.store import AttributionStore, export_virelay
from relprop.store import open as open_store

__all__ = ["CLUSTER_NUMBERING", "write_virelay_analysis", "write_virelay_project"]

#: How ViRelAy's cluster numbers relate to relprop's (ViRelAy counts from 1, relprop from 0).
CLUSTER_NUMBERING = "relprop's cluster k is ViRelAy's Cluster k+1"

_BLOCK_ROWS = 256


def write_virelay_analysis(
    analysis: ClassAnalysis, path: str | Path, by_row: bool = False, clustering: str | None = None
) -> Path:
    """Add (or replace) the group of ``analysis.class_index`` in the analysis file ``path``.

    Parameters
    ----------
    analysis:
        A fitted class analysis.
    path:
        The analysis file (created if missing).
    by_row:
        Identify the samples by store row (as a project does) rather than by data-set index.
    clustering:
        The name of the clustering (default ``<method>-<K>``, e.g. ``kmeans-2``).
    """
    index = analysis.rows if by_row else analysis.index
    if len(index) and int(index.max()) > np.iinfo(np.uint32).max:
        raise ValueError("ViRelAy stores indices as uint32; this data set has larger ones")
    path = Path(path)
    spray = analysis.spray
    eigenvectors = spray.spectrum_.eigenvectors[:, ::-1]
    with h5py.File(path, "a") as file:
        name = str(analysis.class_index)
        if name in file:
            del file[name]
        group = file.create_group(name)
        group.create_dataset("index", data=index.astype(np.uint32))
        spectral = group.create_dataset("embedding/spectral", data=eigenvectors)
        spectral.attrs["eigenvalue"] = spray.eigenvalues_[::-1]
        tsne = group.create_dataset("embedding/tsne", data=analysis.tsne)
        tsne.attrs["embedding"] = "spectral"
        tsne.attrs["index"] = np.arange(eigenvectors.shape[1])
        clustering = clustering or f"{spray.clustering}-{spray.n_clusters_}"
        group.create_dataset(f"cluster/{clustering}", data=spray.labels_)
    return path


def write_virelay_project(
    store: AttributionStore | str | Path,
    analyses: Sequence[ClassAnalysis],
    directory: str | Path,
    dataset: Any,
    class_names: Sequence[str] | None = None,
    name: str | None = None,
) -> Path:
    """Write a ViRelAy project of a store and analyses of its classes into ``directory`` (see above).

    The files are written into a new folder beside ``directory`` and moved into place at the end, so a
    failure leaves nothing behind.

    Parameters
    ----------
    store:
        The finished store the analyses were computed on, or its path; images, ``(N, C, H, W)``.
    analyses:
        One or more analyses of its classes (:func:`relprop.report.analyse_class`), one per class.
    directory:
        The project's folder: created, or an empty one; refused if it holds anything.
    dataset:
        The data set the store was computed on: ``dataset[i]`` is sample ``i``'s ``(input, label)``. Only
        the store's samples are read, once each.
    class_names:
        The classes' names, by index (default ``class 0``, ``class 1``, ...).
    name:
        The project's name (default: model and method from the store).

    Returns
    -------
    Path
        ``directory/project.yaml``, for ``virelay directory/project.yaml``.
    """
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise FileExistsError(f"{directory} is not an empty folder; the project needs a new or empty one")
    if not analyses:
        raise ValueError("a ViRelAy project needs the analysis of at least one class")
    classes = [analysis.class_index for analysis in analyses]
    if len(set(classes)) != len(classes):
        raise ValueError(f"each class may be analysed once, got classes {classes}")
    own = not isinstance(store, AttributionStore)
    source = open_store(store) if own else store
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp's folder is private; the project is an ordinary folder
    try:
        _check_images(source, analyses, class_names)
        n_classes = source.output.shape[1]
        names = list(class_names) if class_names is not None else [f"class {c}" for c in range(n_classes)]
        labels = source.label[:]
        _write_label_map(staging / "label-map.json", names, unknown=bool((labels < 0).any()))
        _write_inputs(staging / "inputs.h5", source, dataset)
        export_virelay(source, staging / "attributions.h5", by_row=True)
        clustering = f"{analyses[0].spray.clustering} ({CLUSTER_NUMBERING})"
        for analysis in analyses:
            write_virelay_analysis(analysis, staging / "analysis.h5", by_row=True, clustering=clustering)
        (staging / "project.yaml").write_text(_project_yaml(source, name), encoding="utf-8")
        if directory.exists():
            directory.rmdir()  # empty, checked above
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if own:
            source.close()
    return directory / "project.yaml"


def _check_images(store: AttributionStore, analyses: Sequence[ClassAnalysis], class_names) -> None:
    shape = store.attribution.shape
    if len(shape) != 4:
        raise ValueError(
            f"{store.path}: ViRelAy shows images, (N, C, H, W) attributions; this store's have shape {shape}"
        )
    n_classes = store.output.shape[1]
    if class_names is not None and len(class_names) != n_classes:
        raise ValueError(f"class_names has {len(class_names)} names, but the model has {n_classes} outputs")
    for analysis in analyses:
        rows = analysis.rows
        if len(rows) and (
            rows.max() >= len(store) or not np.array_equal(store.index[:][rows], analysis.index)
        ):
            raise ValueError(f"the analysis of class {analysis.class_index} is not of the store {store.path}")


def _write_label_map(path: Path, names: Sequence[str], unknown: bool) -> None:
    labels = [{"index": c, "word_net_id": str(c), "name": str(name)} for c, name in enumerate(names)]
    if unknown:  # unlabelled samples (-1) need an entry, or ViRelAy fails on them
        labels.append({"index": -1, "word_net_id": "-1", "name": "unknown"})
    path.write_text(json.dumps(labels, indent=2), encoding="utf-8")


def _write_inputs(path: Path, store: AttributionStore, dataset: Any) -> None:
    """The store's samples, row by row, as 8-bit RGB images; their labels as the store has them."""
    size, channels, height, width = store.attribution.shape
    with h5py.File(path, "w") as file:
        data = file.create_dataset(
            "data",
            shape=(size, 3, height, width),
            dtype=np.uint8,
            chunks=(1, 3, height, width),
            compression="gzip",
        )
        file.create_dataset("label", data=store.label[:].astype(np.int64))
        for start in range(0, size, _BLOCK_ROWS):
            rows = slice(start, min(size, start + _BLOCK_ROWS))
            batch = []
            for index in store.index[rows]:
                sample = np.asarray(dataset[int(index)][0], dtype=np.float64)
                if sample.shape != (channels, height, width):
                    raise ValueError(
                        f"sample {int(index)} of the data set has shape {sample.shape}, but the store's "
                        f"attributions have shape {(channels, height, width)}: not the store's data set?"
                    )
                batch.append(sample)
            data[rows] = _rgb(np.stack(batch))


def _rgb(images: np.ndarray) -> np.ndarray:
    """(B, C, H, W) numbers as (B, 3, H, W) uint8, each image scaled from its minimum and maximum."""
    if images.shape[1] != 3:
        images = np.repeat(images.mean(axis=1, keepdims=True), 3, axis=1)
    low = images.min(axis=(1, 2, 3), keepdims=True)
    span = images.max(axis=(1, 2, 3), keepdims=True) - low
    scaled = (images - low) / np.where(span > 0, span, 1.0)
    return np.round(scaled * 255.0).astype(np.uint8)


def _project_yaml(store: AttributionStore, name: str | None) -> str:
    """The project file; strings are quoted as JSON, which YAML reads as double-quoted scalars."""
    params = store.params
    model = str(params.get("model", "") or "model")
    method = " ".join(str(params.get(key, "")) for key in ("method", "composite")).strip() or "attribution"
    strategy = "true_label" if params.get("target") == "label" else "predicted_label"
    _, _, height, width = store.attribution.shape

    def quoted(text: str) -> str:
        return json.dumps(text)

    return "\n".join(
        [
            "project:",
            f"  name: {quoted(name or f'relprop: {method} of {model}')}",
            f"  model: {quoted(model)}",
            "  label_map: label-map.json",
            "  dataset:",
            f"    name: {quoted(str(params.get('dataset', '') or 'data set'))}",
            "    type: hdf5",
            "    path: inputs.h5",
            f"    input_width: {width}",
            f"    input_height: {height}",
            "    up_sampling_method: none",
            "    down_sampling_method: none",
            "  attributions:",
            f"    attribution_method: {quoted(method)}",
            f"    attribution_strategy: {strategy}",
            "    sources:",
            "    - attributions.h5",
            "  analyses:",
            "  - analysis_method: SpRAy",
            "    sources:",
            "    - analysis.h5",
            "",
        ]
    )
