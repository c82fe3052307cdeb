"""``relprop virelay``: a ViRelAy project of a store: its inputs, attributions and SpRAy of chosen classes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from relprop.cli.app import EXPECTED_ERRORS, app, fail
from relprop.cli.spray import ClustersOption, NeighborsOption, PreprocessingOption, SizeOption


@app.command()
def virelay(
    store: Annotated[
        Path, typer.Argument(help="A finished attribution store of images (relprop attribute).")
    ],
    class_indices: Annotated[
        list[int] | None, typer.Option("--class", help="A class to analyse with SpRAy (repeat for more).")
    ] = None,
    out: Annotated[Path, typer.Option(help="A new (or empty) folder for the project.")] = Path("virelay"),
    clusters: ClustersOption = None,
    size: SizeOption = None,
    neighbors: NeighborsOption = 10,
    data: Annotated[
        str | None,
        typer.Option(help="The data set, for the inputs (default: the store's, if it loads here)."),
    ] = None,
    preprocessing: PreprocessingOption = None,
    seed: Annotated[int, typer.Option(help="Seeds k-means and t-SNE.")] = 0,
) -> None:
    """Write a ViRelAy project: the store's inputs and attributions, and SpRAy of each CLASS.

    ViRelAy (pip install virelay) opens it with `virelay OUT/project.yaml`. Samples are numbered by store
    row; ViRelAy counts clusters from 1, so relprop's cluster k is its Cluster k+1.
    """
    from relprop.report import CLUSTER_NUMBERING, analyse_stored_class, write_virelay_project
    from relprop.store import load_store_dataset
    from relprop.store import open as open_store

    try:
        if not store.is_file():
            raise FileNotFoundError(f"{store}: no such file")
        if not class_indices:
            raise ValueError(
                "no class to analyse: a ViRelAy project needs one, pass --class C (repeat for more)"
            )
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise FileExistsError(f"{out} is not an empty folder; the project needs a new or empty one")
        with open_store(store) as run:
            params = dict(run.params)
        dataset = load_store_dataset(params, data, preprocessing)
        analyses = [
            analyse_stored_class(store, c, size=size, n_neighbors=neighbors, n_clusters=clusters, seed=seed)
            for c in dict.fromkeys(class_indices)
        ]
        project = write_virelay_project(store, analyses, out, dataset)
    except EXPECTED_ERRORS as error:
        raise fail(error) from None
    for analysis in analyses:
        n = analysis.spray.n_clusters_
        typer.echo(
            f"Class {analysis.class_index}: {len(analysis.rows)} samples, {n} cluster{'s' if n > 1 else ''}"
        )
    typer.echo(f"ViRelAy project: {project} ({CLUSTER_NUMBERING})")
    typer.echo(f"Open it: virelay {project}")
