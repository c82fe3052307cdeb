"""``relprop concepts``: relevance maximization over a store's data set, and the concept atlas of a class."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from relprop.cli.app import EXPECTED_ERRORS, app, fail


@app.command()
def concepts(
    store: Annotated[Path, typer.Argument(help="A finished attribution store (relprop attribute).")],
    layers: Annotated[
        list[str], typer.Option("--layer", help="A module name of the store's model (repeat for more).")
    ],
    class_index: Annotated[
        int | None, typer.Option("--class", help="The class to show (default: the one of most samples).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for relmax.h5 and concepts.html.")] = Path("concepts"),
    top: Annotated[int, typer.Option(min=1, help="Concepts per layer.")] = 6,
    references: Annotated[int, typer.Option(min=1, help="Reference samples per concept.")] = 6,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per batch.")] = 64,
    data: Annotated[
        str | None, typer.Option(help="The data set, if the store's lies elsewhere (default: the store's).")
    ] = None,
    preprocessing: Annotated[
        str | None, typer.Option(help="For an image folder --data (default: the store's preprocessing).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show RelMax's progress bar.")] = True,
) -> None:
    """Find the concepts of a class: RelMax over the store's data set with its model, and the atlas.

    For each LAYER, the channels most relevant for the class (mean share over its samples), each with the
    samples in which it receives the most relevance, cut to where it sees them, and its conditional heatmap;
    and the concept decomposition of one sample. The RelMax run (OUT/relmax.h5) resumes if interrupted.
    """
    from relprop.report.atlas import store_atlas

    try:
        if not store.is_file():
            raise FileNotFoundError(f"{store}: no such file")
        result = store_atlas(
            store, out, layers, class_index, data=data, preprocessing=preprocessing, top=top,
            k=references, batch_size=batch_size, progress=progress,
        )  # fmt: skip
    except EXPECTED_ERRORS as error:
        raise fail(error) from None
    typer.echo(
        f"Class {result.class_index}: concepts of layers {', '.join(layers)} over {result.samples} samples"
    )
    typer.echo(f"RelMax: {result.relmax}")
    page = result.page.resolve()
    typer.echo(f"Concept atlas: {page}")
    typer.echo(f"Open it in a browser: {page.as_uri()}")
