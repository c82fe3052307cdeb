r"""``relprop evaluate``: how fast does removing what each method calls relevant destroy the evidence?

Region perturbation (Samek et al. 2017, :func:`relprop.evaluate.region_perturbation`): each method explains
each photo's predicted class, the photo's ``patch_size`` x ``patch_size`` regions are replaced in the order
of their relevance, most relevant first (MoRF) or least relevant first (LeRF), and the explained logit
:math:`f` is recorded after each of the ``steps`` removals. The command prints per method the area over
the perturbation curve,

.. math::

    \mathrm{AOPC} = \frac{1}{L+1} \sum_{k=0}^{L} \big(f(x) - f(x^{(k)})\big),

as the mean and standard error over the photos (large is good for MoRF, small for LeRF), and writes the
mean curves :math:`f(x) - f(x^{(k)})` as a PNG, one line per method. ``random`` removes the regions in a
random order, the baseline every method should beat.

With both orders (``--metric morf,lerf``) it also prints the area between the two curves,
:math:`\mathrm{ABPC} = \mathrm{AOPC}_\text{MoRF} - \mathrm{AOPC}_\text{LeRF}` per image (the measure of the
AttnLRP paper): a method that ranks the regions well destroys the evidence fast from the top and slowly from
the bottom, while a random order has ABPC 0.

Every curve depends only on the seed, the photo and the method: each photo draws its replacement values and
its random order from streams of its own (see :func:`relprop.evaluate.region_perturbation`), so every
method, the random baseline included, replaces a photo's regions by the same values, and the numbers of one
order do not change when the other order or other photos are computed too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer
from torch import Tensor

from relprop.cli.app import EXPECTED_ERRORS, app, fail
from relprop.cli.explain import (
    ImagesArgument,
    ModelOption,
    classify,
    load_photos,
    make_explainers,
    parse_methods,
)
from relprop.devices import parse_device
from relprop.evaluate import Constant, GaussianBlur, UniformNoise
from relprop.evaluate.curves import (
    ORDER_TITLES,
    RANDOM,
    aopc_columns,
    aopc_table,
    perturbation_curves,
    plot_curves,
)
from relprop.evaluate.replacement import Replacement
from relprop.graph import UnsupportedOperationError
from relprop.methods.registry import COMPOSITES, EXPLAINERS, Explainer, MethodOptions

__all__ = ["METRICS", "parse_perturbation"]

#: Removal orders by command-line name, with the name they have in tables and plots.
METRICS = ORDER_TITLES

#: Default standard deviation (pixels) of ``--perturbation blur`` and value of ``--perturbation constant``.
BLUR_SIGMA = 5.0
CONSTANT_VALUE = 0.0


def parse_perturbation(text: str, x: Tensor) -> Replacement:
    """The replacement of removed pixels that ``text`` names, for the images ``x`` (B, C, H, W).

    ``uniform``: per-pixel uniform noise within each image's value range (the paper's); ``mean``: the mean
    of ``x`` per channel; ``blur`` or ``blur:SIGMA``: the image blurred by a Gaussian of ``SIGMA`` pixels
    (default 5); ``constant`` or ``constant:VALUE``: one value in the model's input space (default 0).
    """
    kind, colon, value = text.strip().partition(":")
    if kind in ("uniform", "mean") and not colon:
        return UniformNoise() if kind == "uniform" else Constant(x.mean(dim=(0, 2, 3))[:, None, None].cpu())
    if kind in ("blur", "constant"):
        try:
            number = float(value) if colon else BLUR_SIGMA if kind == "blur" else CONSTANT_VALUE
        except ValueError:
            raise ValueError(f"--perturbation {text}: {value!r} is not a number") from None
        return GaussianBlur(number) if kind == "blur" else Constant(number)
    raise ValueError(
        f"unknown perturbation {text!r}; choose uniform, mean, blur, blur:SIGMA, constant or constant:VALUE"
    )


@app.command()
def evaluate(
    images: ImagesArgument = None,
    model: ModelOption = "efficientnet-lite0",
    methods: Annotated[
        list[str],
        typer.Option(
            help=f"Repeat or separate with commas; 'all' for every one: {', '.join(EXPLAINERS)}, "
            f"and {RANDOM} (regions in random order, the baseline)."
        ),
    ] = ["lrp,gradient,random"],  # noqa: B006 - typer reads the default, it is never mutated
    metric: Annotated[
        str, typer.Option(help="morf (most relevant first), lerf (least relevant first), or morf,lerf.")
    ] = "morf",
    composite: Annotated[
        str, typer.Option(help=f"LRP's composite: {', '.join(COMPOSITES)}.")
    ] = "epsilon-gamma-box",
    patch_size: Annotated[int, typer.Option(min=1, help="Side of the removed square regions (pixels).")] = 9,
    steps: Annotated[int, typer.Option(min=1, help="Number of regions removed, one per step.")] = 100,
    perturbation: Annotated[
        str,
        typer.Option(
            help="What removed pixels become: uniform (noise in each image's range), mean (per channel), "
            f"blur or blur:SIGMA (default {BLUR_SIGMA}), constant or constant:VALUE (default "
            f"{CONSTANT_VALUE}, in the model's input space)."
        ),
    ] = "uniform",
    seed: Annotated[int, typer.Option(help="Seed of the noise, the random order and smoothgrad.")] = 0,
    out: Annotated[Path, typer.Option(help="PNG file of the mean perturbation curves.")] = Path("aopc.png"),
    samples: Annotated[
        int | None,
        typer.Option(min=1, help="Samples of smoothgrad, kernel-shap, lime; steps of integrated-gradients."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")] = "cpu",
    progress: Annotated[bool, typer.Option(help="A line on stderr as each method is done.")] = True,
) -> None:
    """Region perturbation: print each method's AOPC over the photos and plot the mean curves."""
    try:
        on_device = parse_device(device)
        explained, every, with_random = _parse_method_names(methods)
        orders = _parse_metrics(metric)
        if out.suffix.lower() != ".png":
            raise ValueError(f"--out must name a .png file, got {out}")
        photos, classifier, x = load_photos(images, model, on_device)
        replacement = parse_perturbation(perturbation, x)
        target = classify(classifier, x, batch_size).argmax(dim=1)
        bounds = (classifier.low.to(on_device), classifier.high.to(on_device))
        options = MethodOptions(
            composite=composite, bounds=bounds, samples=samples, seed=seed, batch_size=batch_size
        )
        explainers: dict[str, Explainer | None] = (
            make_explainers(explained, classifier.model, options, every) if explained else {}
        )
        if with_random:
            explainers[RANDOM] = None
        names = list(explainers)
        curves = perturbation_curves(
            classifier.model,
            x,
            target,
            explainers,
            orders,
            progress=_report_progress(names) if progress else None,
            patch_size=patch_size,
            steps=steps,
            perturbation=replacement,
            seed=seed,
            batch_size=batch_size,
        )
        typer.echo(
            _heading(len(photos), patch_size, steps, perturbation, composite if "lrp" in names else None)
        )
        typer.echo(aopc_table(aopc_columns(curves)))
        out.parent.mkdir(parents=True, exist_ok=True)
        plot_curves(out, {f"{METRICS[o]}, {patch_size}x{patch_size} regions": curves[o] for o in orders})
        typer.echo(f"curves in {out}")
    except (*EXPECTED_ERRORS, UnsupportedOperationError) as error:
        raise fail(error) from None


def _heading(n_images: int, patch_size: int, steps: int, perturbation: str, composite: str | None) -> str:
    """``AOPC over 3 images (mean ± standard error): 9x9 regions, 100 steps, uniform perturbation`` and,
    with LRP among the methods, its ``composite``."""
    return (
        f"AOPC over {n_images} image{'s' * (n_images > 1)}"
        + (" (mean ± standard error)" if n_images > 1 else "")
        + f": {patch_size}x{patch_size} regions, {steps} steps, {perturbation} perturbation"
        + (f", lrp composite {composite}" if composite is not None else "")
    )


def _parse_method_names(given: Sequence[str]) -> tuple[list[str], bool, bool]:
    """The explanation methods in ``--methods``, whether ``all`` was given, and whether ``random`` (also
    part of ``all``) was."""
    names = [name.strip() for text in given for name in text.split(",") if name.strip()]
    chosen = [name for name in names if name != RANDOM]
    with_random = RANDOM in names or "all" in names
    if not chosen and with_random:
        return [], False, True
    explained, every = parse_methods(chosen)
    return explained, every, with_random


def _report_progress(names: list[str]) -> Callable[[str], None]:
    """Report ``[k/n] name`` on stderr when method ``name``, the k-th of ``names``, is done."""
    return lambda name: typer.echo(f"[{names.index(name) + 1}/{len(names)}] {name}", err=True)


def _parse_metrics(text: str) -> list[str]:
    orders = list(dict.fromkeys(name.strip().lower() for name in text.split(",") if name.strip()))
    unknown = [name for name in orders if name not in METRICS]
    if unknown or not orders:
        raise ValueError(f"unknown metric {', '.join(unknown) or '(none)'}; choose morf, lerf or morf,lerf")
    return orders
