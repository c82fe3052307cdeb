"""``relprop spray``: Spectral Relevance Analysis of one class of a store, as an HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from relprop.cli.app import EXPECTED_ERRORS, app, fail

#: The options of SpRAy and of the store's data set, shared by ``relprop spray`` and ``relprop virelay``.
ClustersOption = Annotated[
    int | None, typer.Option(min=1, help="Number of clusters (default: the eigengap's suggestion).")
]
SizeOption = Annotated[
    int | None, typer.Option(min=1, help="Sum-pool heatmaps to SIZExSIZE first (default 32 or smaller).")
]
NeighborsOption = Annotated[int, typer.Option(min=1, help="Neighbours of each sample in the graph.")]
PreprocessingOption = Annotated[
    str | None, typer.Option(help="For an image folder --data (default: the store's preprocessing).")
]


def _inputs(analysis, data: str | None, preprocessing: str | None) -> np.ndarray | None:
    """The analysed samples to show: from ``data`` (refused unless it is the store's data set), else from
    the store's own data set if it loads here and is unchanged; ``None`` (saying why) for heatmaps only."""
    from relprop.store import OtherDataError, load_store_dataset
    from relprop.store.dataset import stored_dataset

    if data is None and stored_dataset(analysis.params) is None:
        typer.echo("The store's data set cannot be loaded here (pass --data): showing heatmaps only.")
        return None
    try:
        dataset = load_store_dataset(analysis.params, data, preprocessing)
    except OtherDataError as error:
        if data is not None:
            raise
        typer.echo(f"{error}: showing heatmaps only.")
        return None
    return np.stack([np.asarray(dataset[int(index)][0], dtype=np.float32) for index in analysis.index])


@app.command()
def spray(
    store: Annotated[Path, typer.Argument(help="A finished attribution store (relprop attribute).")],
    class_index: Annotated[int, typer.Option("--class", help="The class to analyse.")],
    out: Annotated[Path, typer.Option(help="Folder for index.html and analysis.h5 (ViRelAy).")] = Path(
        "report"
    ),
    clusters: ClustersOption = None,
    size: SizeOption = None,
    neighbors: NeighborsOption = 10,
    data: Annotated[
        str | None,
        typer.Option(help="The data set, to show the inputs (default: the store's, if it can be loaded)."),
    ] = None,
    preprocessing: PreprocessingOption = None,
    seed: Annotated[int, typer.Option(help="Seeds k-means, the artefact test and t-SNE.")] = 0,
    max_images: Annotated[int, typer.Option(min=0, help="At most this many samples get images.")] = 1500,
) -> None:
    """SpRAy of one class of a store, as an HTML report.

    The heatmaps of class CLASS are grouped by where their relevance lies, and the report opens from the
    file system: spectrum and eigengap, t-SNE, clusters with prototypes, and those whose relevance sits in
    one small fixed region far more than in random groups of the class flagged (permutation test).
    """
    from relprop.report import CLUSTER_NUMBERING, analyse_stored_class, write_report, write_virelay_analysis

    try:
        if not store.is_file():
            raise FileNotFoundError(f"{store}: no such file")
        analysis = analyse_stored_class(
            store, class_index, size=size, n_neighbors=neighbors, n_clusters=clusters, seed=seed
        )
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
