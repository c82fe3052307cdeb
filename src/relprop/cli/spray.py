"""``relprop spray``: Spectral Relevance Analysis of one class of a store, as an HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from relprop.cli.app import EXPECTED_ERRORS, app, fail


def _analyse(path: Path, class_index: int, size: int | None, neighbors: int, clusters: int | None, seed: int):
    """SpRAy of the class's heatmaps in the store ``path``; rows that HDF5 cannot read (a damaged chunk)
    name the store."""
    from relprop.report import analyse_class
    from relprop.spray import SpRAy
    from relprop.store import open as open_store

    with open_store(path) as run:
        size = size or min(32, *run.attribution.shape[-2:])
        spray = SpRAy(size=size, n_neighbors=neighbors, n_clusters=clusters, seed=seed)
        try:
            return analyse_class(run, class_index, spray, seed=seed)
        except OSError as error:
            raise ValueError(f"{path} is damaged: reading its rows failed: {error}") from error


class _OtherData(ValueError):
    """The data set is not the one the store was computed on."""


def _inputs(analysis, data: str | None, preprocessing: str | None) -> np.ndarray | None:
    """The analysed samples to show: from ``data`` (refused unless it is the store's data set), else from
    the store's own data set if it loads here and is unchanged; ``None`` (saying why) for heatmaps only."""
    if data is not None:
        return _load_inputs(analysis, data, preprocessing)
    spec = _stored_dataset(analysis.params)
    if spec is None:
        typer.echo("The store's data set cannot be loaded here (pass --data): showing heatmaps only.")
        return None
    try:
        return _load_inputs(analysis, spec, None)
    except _OtherData as error:
        typer.echo(f"{error}: showing heatmaps only.")
        return None


def _load_inputs(analysis, spec: str, preprocessing: str | None) -> np.ndarray:
    """The analysed samples from the data set ``spec``, checked to be the store's (size and fingerprint).

    Image folders are prepared as the store's samples were, unless ``preprocessing`` says otherwise; the
    check compares the samples as the store's run prepared them.
    """
    from relprop.data import load_dataset

    stored = _stored_preprocessing(analysis.params)
    dataset = load_dataset(spec, preprocessing or stored or "to-tensor")
    as_computed = dataset if preprocessing in (None, stored) else load_dataset(spec, stored or "to-tensor")
    _check_same_data(spec, as_computed, analysis.params)
    return np.stack([np.asarray(dataset[int(index)][0], dtype=np.float32) for index in analysis.index])


def _check_same_data(spec: str, dataset, params: dict) -> None:
    from relprop.store.run import dataset_fingerprint

    expected = params.get("dataset_size")
    if expected is not None and len(dataset) != expected:
        raise _OtherData(
            f"data set {spec!r} has {len(dataset)} samples, but the store was computed on {expected}"
        )
    fingerprint = params.get("dataset_fingerprint")
    if fingerprint is not None and dataset_fingerprint(dataset) != fingerprint:
        raise _OtherData(
            f"data set {spec!r} is not the data set the store was computed on (same size, but other "
            "samples, types or labels)"
        )


def _stored_preprocessing(params: dict) -> str | None:
    """The store's preprocessing, if it is one this relprop knows (image folders; ``none`` otherwise)."""
    from relprop.data import PREPROCESSING

    preprocessing = params.get("preprocessing")
    return preprocessing if preprocessing in PREPROCESSING else None


def _stored_dataset(params: dict) -> str | None:
    """The store's data set, if this machine can load it (a registered name or a path)."""
    from relprop.data import dataset_names

    spec = str(params.get("dataset", ""))
    return spec if spec in dataset_names() or Path(spec).exists() else None


@app.command()
def spray(
    store: Annotated[Path, typer.Argument(help="A finished attribution store (relprop attribute).")],
    class_index: Annotated[int, typer.Option("--class", help="The class to analyse.")],
    out: Annotated[Path, typer.Option(help="Folder for index.html and analysis.h5 (ViRelAy).")] = Path(
        "report"
    ),
    clusters: Annotated[
        int | None, typer.Option(min=1, help="Number of clusters (default: the eigengap's suggestion).")
    ] = None,
    size: Annotated[
        int | None, typer.Option(min=1, help="Sum-pool heatmaps to SIZExSIZE first (default 32 or smaller).")
    ] = None,
    neighbors: Annotated[int, typer.Option(min=1, help="Neighbours of each sample in the graph.")] = 10,
    data: Annotated[
        str | None,
        typer.Option(help="The data set, to show the inputs (default: the store's, if it can be loaded)."),
    ] = None,
    preprocessing: Annotated[
        str | None, typer.Option(help="For an image folder --data (default: the store's preprocessing).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds k-means, the artefact test and t-SNE.")] = 0,
    max_images: Annotated[int, typer.Option(min=0, help="At most this many samples get images.")] = 1500,
) -> None:
    """SpRAy of one class of a store, as an HTML report.

    The heatmaps of class CLASS are grouped by where their relevance lies, and the report opens from the
    file system: spectrum and eigengap, t-SNE, clusters with prototypes, and those whose relevance sits in
    one small fixed region far more than in random groups of the class flagged (permutation test).
    """
    from relprop.report import CLUSTER_NUMBERING, write_report, write_virelay_analysis

    try:
        if not store.is_file():
            raise FileNotFoundError(f"{store}: no such file")
        analysis = _analyse(store, class_index, size, neighbors, clusters, seed)
        inputs = _inputs(analysis, data, preprocessing)
        out.mkdir(parents=True, exist_ok=True)
        analysis_path = out / "analysis.h5"
        analysis_path.unlink(missing_ok=True)
        write_virelay_analysis(analysis, analysis_path)
        report = write_report(analysis, out / "index.html", inputs=inputs, max_images=max_images).resolve()
    except EXPECTED_ERRORS as error:
        raise fail(error) from None
    typer.echo(
        f"Class {class_index}: {len(analysis.rows)} samples, {analysis.spray.n_clusters_} "
        + ("cluster; " if analysis.spray.n_clusters_ == 1 else "clusters; ")
        + analysis.spray.clusters_.artefact_test.summary()
    )
    typer.echo(
        f"SpRAy analysis file for ViRelAy: {analysis_path} (a whole project: relprop virelay; "
        f"{CLUSTER_NUMBERING})"
    )
    typer.echo(f"Report: {report}")
    typer.echo(f"Open it in a browser: {report.as_uri()}")
