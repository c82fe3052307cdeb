"""``relprop prune``: remove the filters and neurons, or attention heads, that a criterion ranks lowest;
measure the accuracy lost."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from relprop.cli.app import EXPECTED_ERRORS, app, fail
from relprop.graph import UnsupportedOperationError
from relprop.methods.registry import COMPOSITES, make_composite
from relprop.prune.iterate import UNITS
from relprop.prune.scores import CRITERIA

#: The pruning rates of ``--curve``.
CURVE_RATES = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"


def _parse_rates(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(
            f"--rates must be numbers separated by commas (e.g. 0,0.5,0.9), got {text!r}"
        ) from None


@app.command()
def prune(
    model: Annotated[
        str,
        typer.Argument(help="NAME, NAME:WEIGHTS (a state dict) or a TorchScript file of an nn.Sequential."),
    ],
    data: Annotated[
        str, typer.Argument(help="Image folder (ImageFolder layout), .npz (arrays x, y), or a data set name.")
    ],
    criterion: Annotated[str, typer.Option(help=", ".join(CRITERIA))] = "lrp",
    rate: Annotated[
        float, typer.Option(help="Share of the units (filters, neurons, or heads) to remove, in [0, 1).")
    ] = 0.5,
    units: Annotated[
        str,
        typer.Option(
            help=f"What to prune: {', '.join(UNITS)} (of nn.MultiheadAttention, BERT-style attention)."
        ),
    ] = "filters",
    out: Annotated[Path | None, typer.Option(help="Write the pruned model here.")] = None,
    references: Annotated[
        int,
        typer.Option(help="Reference samples per class, drawn from DATA; accuracy is measured on the rest."),
    ] = 10,
    composite: Annotated[
        str, typer.Option(help=f"LRP's rules: {', '.join(COMPOSITES)}.")
    ] = "epsilon-plus-flat",
    steps: Annotated[int, typer.Option(help="Rounds of scoring and pruning.")] = 1,
    remove: Annotated[
        bool, typer.Option(help="Remove the pruned units (a smaller model) instead of masking them.")
    ] = False,
    curve: Annotated[
        Path | None, typer.Option(help="Plot accuracy against the pruning rate for every criterion (PNG).")
    ] = None,
    rates: Annotated[str, typer.Option(help="The pruning rates of --curve.")] = CURVE_RATES,
    preprocessing: Annotated[
        str | None,
        typer.Option(help="For image folders: to-tensor, or efficientnet-lite (the default for that model)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the choice of references.")] = 0,
    trust_model: Annotated[bool, typer.Option(help="Allow a torch.export program (.pt2) as MODEL.")] = False,
) -> None:
    """Prune the units of MODEL that a criterion ranks lowest on references from DATA; print the accuracy."""
    from relprop.data import PREPROCESSING, load_dataset, preprocessing_for
    from relprop.models.loading import load_model
    from relprop.prune import check_rate
    from relprop.prune import prune as prune_model
    from relprop.prune.curve import accuracy, accuracy_curves, plot_accuracy_curves, reference_split
    from relprop.prune.files import save_pruned

    try:
        if criterion not in CRITERIA:
            raise ValueError(f"unknown criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
        check_rate(rate)
        if curve is not None and units != "filters":
            raise ValueError(f"--curve prunes filters and neurons; it is not built for --units {units}")
        grid = _parse_rates(rates) if curve is not None else None
        if criterion != "lrp" and composite != "epsilon-plus-flat":
            raise ValueError(f"--composite is LRP's; --criterion {criterion} takes none")
        preprocessing = preprocessing_for(model, preprocessing)
        bounds = PREPROCESSING[preprocessing].bounds if Path(data).is_dir() else None
        rules = make_composite(composite, bounds)
        network = load_model(model, trust=trust_model)
        reference_set, test_set = reference_split(load_dataset(data, preprocessing), references, seed)
        result = prune_model(
            network,
            *reference_set,
            rate=rate,
            criterion=criterion,
            steps=steps,
            composite=rules if criterion == "lrp" else None,
            remove=remove,
            units=units,
        )
        typer.echo(
            f"references: {len(reference_set[1])} ({references} per class); accuracy measured on "
            f"{len(test_set[1])} samples"
        )
        typer.echo(f"accuracy before: {100 * accuracy(network, *test_set):.1f} %")
        after = accuracy(result.model, *test_set)
        typer.echo(f"accuracy after pruning {100 * rate:g} % by {criterion}: {100 * after:.1f} %")
        _print_removed(result)
        if out is not None:
            architecture = None if remove or Path(model).is_file() else model.partition(":")[0]
            spec = save_pruned(result.model, out, reference_set[0][:1], architecture)
            typer.echo(f"wrote {out}; load it as {spec}")
        if curve is not None:
            curves = accuracy_curves(network, reference_set, test_set, grid, composite=rules)
            title = f"{Path(model).name} on {Path(data).name}, {references} references per class"
            plot_accuracy_curves(curve, grid, {title: curves})
            typer.echo(f"wrote {curve}")
    except (*EXPECTED_ERRORS, UnsupportedOperationError) as error:
        raise fail(error) from None


def _print_removed(result) -> None:
    """The share of each layer's units (or each attention layer's heads) that pruning removed (or masked)."""
    typer.echo(
        "heads removed per attention layer:" if result.units == "heads" else "units removed per layer:"
    )
    for layer, share in result.removed_share().items():
        units = len(result.keep[layer])
        typer.echo(f"  {layer}: {100 * share:.1f} % ({units - int(result.keep[layer].sum())} of {units})")
