"""``relprop demo``: a model that cheats with a planted tag, found by LRP and SpRAy, shown in a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import relprop.demo  # noqa: F401 - registers the data set "demo" and the model "demo-cnn"
from relprop.cli.app import EXPECTED_ERRORS, app, fail


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the model, the store and the report.")] = Path(
        "relprop-demo"
    ),
    seed: Annotated[int, typer.Option(help="Seeds the data split, the tags and the training.")] = 0,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Training epochs (default 25, 10 with --quick).")
    ] = None,
    quick: Annotated[bool, typer.Option(help="A smaller, faster variant (fewer epochs).")] = False,
) -> None:
    """Plant a tag, train a CNN that cheats with it, and find it with LRP and SpRAy.

    The tag goes on most training images of the digit 8, and a small CNN learns to look at it; LRP heatmaps
    of the test set, SpRAy on class 8, a behavioural check and an HTML report find it.

    Runs on the CPU in about a minute, without network: the digits ship with scikit-learn.
    """
    from relprop.demo import SIZE, run_demo
    from relprop.demo.run import SPRAY_NEIGHBORS, SPRAY_SIZE
    from relprop.report import CLUSTER_NUMBERING

    try:
        typer.echo(f"relprop demo on {SIZE}x{SIZE} digits (seed {seed}), on the CPU; the stages on stderr:")
        result = run_demo(
            out, seed=seed, epochs=epochs, quick=quick, stage=lambda line: typer.echo(line, err=True)
        )
    except EXPECTED_ERRORS as error:
        raise fail(error) from None
    behaviour = result.behaviour
    c = behaviour.tagged_class
    typer.echo(f"Test accuracy: {result.test_accuracy:.1%}")
    crp = result.concepts
    masked_title = f"layer {crp.layer} channels {crp.channels_text} masked"
    typer.echo(f"{'Behavioural check:':<37}{'as trained':<12}{masked_title}")
    for (question, answer), (_, masked) in zip(behaviour.rows(), crp.masked.rows()):
        typer.echo(f"  {question:<34} {answer:<12}{masked}")
    for line in crp.summary():
        typer.echo(line)
    if result.n_clusters == 1:
        typer.echo(f"SpRAy found a single strategy for class {c}.")
    else:
        found = f"SpRAy found {result.n_clusters} strategies for class {c}; {result.artefact_test.summary()}."
        if result.suspicious_cluster is not None:
            found += (
                f" {result.purity:.0%} of its samples carry the tag, and it holds {result.recall:.0%} of the "
                "tagged samples."
            )
        typer.echo(found)
    typer.echo(f"Attributions: {result.store}   SpRAy analysis file for ViRelAy: {result.analysis}")
    typer.echo(f"ViRelAy project: virelay {result.virelay}   ({CLUSTER_NUMBERING})")
    typer.echo(
        f"The same analysis from the store: relprop spray {result.store} --class {c} --size {SPRAY_SIZE} "
        f"--neighbors {SPRAY_NEIGHBORS}"
    )
    typer.echo(f"Concept atlas of class {c}: {result.atlas}")
    report = result.report.resolve()
    typer.echo(f"Report: {report}")
    typer.echo(f"Open it in a browser: {report.as_uri()}")
