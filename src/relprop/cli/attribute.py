"""``relprop attribute``: explain a whole data set into a resumable store; ``relprop merge``: join shards."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from relprop._extras import install_hint
from relprop.cli.app import EXPECTED_ERRORS, app, fail
from relprop.graph import UnsupportedOperationError
from relprop.methods.registry import COMPOSITES, METHOD_NAMES, MethodOptions, make_composite, make_explainer


def _parse_pool(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    rows, _, cols = text.lower().partition("x")
    try:
        return int(rows), int(cols)
    except ValueError:
        raise ValueError(f"--pool must look like HxW (e.g. 7x7), got {text!r}") from None


def _model_identity(spec: str) -> str:
    """``spec`` with its file resolved (symbolic links too), so that the store of a run knows its model by
    one name whatever the spelling; the weights themselves are compared by their fingerprint."""
    if Path(spec).is_file():
        return str(Path(spec).resolve())
    name, colon, weights = spec.partition(":")
    if colon and Path(weights).is_file():
        return f"{name}:{Path(weights).resolve()}"
    return spec


def _check_method(method: str, composite: str) -> None:
    """Refuse an unknown method, and a composite for a method other than LRP."""
    if method not in METHOD_NAMES:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHOD_NAMES)}")
    if method != "lrp" and composite != "epsilon-plus-flat":
        raise ValueError(f"--composite is LRP's; --method {method} takes none")


def _preprocessing_and_bounds(
    model: str, preprocessing: str | None, low: float | None, high: float | None, folder: bool
) -> tuple[str, tuple[float, float] | None]:
    """The preprocessing (by default efficientnet-lite's for those models, else to-tensor) and the input
    bounds: ``--low`` and ``--high``, else for an image folder those of its preprocessing, else none."""
    from relprop.data import PREPROCESSING, preprocessing_for

    preprocessing = preprocessing_for(model, preprocessing)
    if (low is None) != (high is None):
        raise ValueError("pass both --low and --high, or neither")
    if low is None and folder:
        return preprocessing, PREPROCESSING[preprocessing].bounds
    return preprocessing, None if low is None else (low, high)


@app.command()
def attribute(
    data: Annotated[
        str,
        typer.Argument(
            help="Image folder (ImageFolder layout), .npz (arrays x, y), .npy, or a data set name."
        ),
    ],
    model: Annotated[
        str, typer.Option(help="NAME, NAME:WEIGHTS (a state dict) or a TorchScript file of an nn.Sequential.")
    ],
    out: Annotated[Path, typer.Option(help="The store (HDF5). Run the same command again to resume it.")],
    method: Annotated[str, typer.Option(help=f"Explanation method: {', '.join(METHOD_NAMES)}.")] = "lrp",
    composite: Annotated[str, typer.Option(help=", ".join(COMPOSITES))] = "epsilon-plus-flat",
    preprocessing: Annotated[
        str | None,
        typer.Option(help="For image folders: to-tensor, or efficientnet-lite (the default for that model)."),
    ] = None,
    low: Annotated[float | None, typer.Option(help="Smallest input value (epsilon-gamma-box).")] = None,
    high: Annotated[float | None, typer.Option(help="Largest input value (epsilon-gamma-box).")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    dtype: Annotated[str, typer.Option(help="Attribution type: float16 or float32.")] = "float16",
    pool: Annotated[str | None, typer.Option(help="Sum-pool attributions to HxW (e.g. 7x7).")] = None,
    sum_channels: Annotated[bool, typer.Option(help="Sum attributions over channels.")] = False,
    target: Annotated[str, typer.Option(help="Explain the 'prediction' or the 'label'.")] = "prediction",
    shard: Annotated[str, typer.Option(help="i/n: compute shard i of n into its own store.")] = "0/1",
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")] = "cpu",
    ray: Annotated[bool, typer.Option(help=f"Compute on Ray ({install_hint('ray')}).")] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Address of the Ray cluster; by default ray.init()'s (RAY_ADDRESS or a local one)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Ray workers (default: one per CPU or GPU).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Progress bar on stderr.")] = True,
) -> None:
    """Explain every sample of DATA and store the heatmaps, outputs and labels in a resumable HDF5 file."""
    from relprop.data import load_dataset
    from relprop.models.loading import load_model
    from relprop.store import attribute_dataset, parse_shard

    try:
        _check_method(method, composite)
        folder = Path(data).is_dir()
        preprocessing, bounds = _preprocessing_and_bounds(model, preprocessing, low, high, folder)
        rules = make_composite(composite, bounds)
        options = MethodOptions()  # each method's defaults
        other = None if method == "lrp" else functools.partial(make_explainer, method, options=options)
        dataset = load_dataset(data, preprocessing)
        description = {
            "dataset": str(Path(data).resolve()) if folder or Path(data).is_file() else data,
            "model": _model_identity(model),
            "preprocessing": preprocessing if folder else "none",
        }
        attribute_dataset(
            dataset,
            load_model(model),
            out,
            composite=rules if method == "lrp" else None,
            method=other,
            description=description,
            batch_size=batch_size,
            dtype=dtype,
            pool=_parse_pool(pool),
            sum_channels=sum_channels,
            target=target,
            shard=parse_shard(shard),
            device=device,
            ray=(ray_address or True) if ray or ray_address else False,
            workers=workers,
            progress=progress,
        )
    except (*EXPECTED_ERRORS, UnsupportedOperationError) as error:
        raise fail(error) from None


@app.command()
def merge(
    out: Annotated[Path, typer.Argument(help="The merged store to write.")],
    shards: Annotated[list[Path], typer.Argument(help="The complete shard stores of one run.")],
    force: Annotated[
        bool, typer.Option(help="Replace OUT even if it is not a merged store of this run (never a shard).")
    ] = False,
) -> None:
    """Join shard stores (from --shard i/n) into one store; checks every sample is there exactly once."""
    from relprop.store import merge as merge_stores

    try:
        merge_stores(out, shards, force=force)
    except EXPECTED_ERRORS as error:
        raise fail(error) from None
