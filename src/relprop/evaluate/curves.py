"""Perturbation curves of several explanation methods on the same images, their AOPC as a table, and the
mean curves as a plot.

:func:`perturbation_curves` runs :func:`relprop.evaluate.region_perturbation` for every method and removal
order with the same settings (so every method replaces a photo's regions by the same values), with
:data:`RANDOM` naming the baseline that removes the regions in a random order; :func:`aopc_table` prints the
mean and standard error of the per-image AOPC, :func:`plot_curves` draws the mean curves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from relprop.evaluate._common import as_seed
from relprop.evaluate.perturbation import PerturbationCurve, region_perturbation

__all__ = ["ORDER_TITLES", "RANDOM", "aopc_columns", "aopc_table", "perturbation_curves", "plot_curves"]

#: The method name of the baseline that removes regions in a random order.
RANDOM = "random"

#: The removal orders, with the names they have in tables and plots.
ORDER_TITLES = {"morf": "MoRF", "lerf": "LeRF"}


def perturbation_curves(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    explainers: Mapping[str, Callable[[Tensor, Tensor], Tensor] | None],
    orders: Sequence[str] = ("morf",),
    *,
    progress: Callable[[str], None] | None = None,
    **settings,
) -> dict[str, dict[str, PerturbationCurve]]:
    """Region perturbation curves of every method, ``curves[order][method]``.

    Parameters
    ----------
    model, x, target
        The classifier, the images (B, C, H, W) and the explained class of each, a LongTensor (B,).
    explainers
        ``explainer(x, target)`` by method name; ``None`` removes the regions in a random order instead.
    orders
        ``"morf"`` and/or ``"lerf"``.
    progress
        Called with each method's name once its curves are computed.
    settings
        Keyword arguments of :func:`relprop.evaluate.region_perturbation` (``patch_size``, ``steps``,
        ``perturbation``, ``seed``, ``batch_size``, ...), the same for every method and order (a
        ``torch.Generator`` seed gives one seed to all of them).
    """
    settings["seed"] = as_seed(settings.get("seed", 0))  # a generator is drawn from once, for every curve
    curves: dict[str, dict[str, PerturbationCurve]] = {order: {} for order in orders}
    for name, explainer in explainers.items():
        attribution = torch.zeros_like(x) if explainer is None else explainer(x, target).detach()
        for order in orders:
            curves[order][name] = region_perturbation(
                model, x, attribution, target, order="random" if explainer is None else order, **settings
            )
        if progress is not None:
            progress(name)
    return curves


def aopc_columns(curves: Mapping[str, Mapping[str, PerturbationCurve]]) -> dict[str, dict[str, Tensor]]:
    r"""The columns of :func:`aopc_table` for the curves of :func:`perturbation_curves`: the per-image AOPC
    of each order (``MoRF AOPC``, ``LeRF AOPC``) and, with both orders, the per-image
    :math:`\mathrm{ABPC} = \mathrm{AOPC}_\text{MoRF} - \mathrm{AOPC}_\text{LeRF}` (``ABPC (MoRF - LeRF)``),
    each as ``{method: values (n,)}``."""
    columns = {
        f"{ORDER_TITLES[order]} AOPC": {name: curve.aopc for name, curve in by_method.items()}
        for order, by_method in curves.items()
    }
    if "morf" in curves and "lerf" in curves:
        columns["ABPC (MoRF - LeRF)"] = {
            name: curve.aopc - curves["lerf"][name].aopc for name, curve in curves["morf"].items()
        }
    return columns


def aopc_table(columns: Mapping[str, Mapping[str, Tensor]]) -> str:
    r"""A markdown table: a row per method, a column per entry of ``columns``, each cell the mean and the
    standard error (:math:`s / \sqrt{n}`, left out for one image) of the per-image AOPC values.

    ``columns`` maps a column title to ``{method: per-image AOPC (n,)}``; rows follow the methods' first
    appearance, and a method missing from a column leaves its cell empty.
    """
    methods = list(dict.fromkeys(name for column in columns.values() for name in column))
    rows = [["method", *columns]]
    for name in methods:
        rows.append(
            [name, *(_mean_and_error(column[name]) if name in column else "" for column in columns.values())]
        )
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def _mean_and_error(values: Tensor) -> str:
    values = values.double()
    if values.numel() == 1:
        return f"{values.item():.4g}"
    error = values.std() / values.numel() ** 0.5
    return f"{values.mean().item():.4g} ± {error.item():.2g}"


#: Line colours of the methods: matplotlib's tab20 without its greys (kept for the random baseline),
#: the strong shades first.
_PALETTE = [
    *(f"tab:{c}" for c in ("blue", "orange", "green", "red", "purple", "brown", "pink", "olive", "cyan")),
    *("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5"),
]


def plot_curves(path: Path, panels: Mapping[str, Mapping[str, PerturbationCurve]]) -> None:
    """Write the mean perturbation curves as an image (matplotlib's Agg backend): a panel per entry of
    ``panels`` (its title: ``{method: curve}``), one line per method, labelled with its mean AOPC."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5 * len(panels), 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, curves) in zip(axes, panels.items()):
        ax.set_prop_cycle(color=_PALETTE)
        for name, curve in curves.items():
            mean = curve.curve.double().mean(dim=0).cpu()
            style = {"color": "black", "linestyle": "--"} if name == RANDOM else {}
            ax.plot(
                range(len(mean)), mean, label=f"{name} ({curve.aopc.double().mean().item():.3g})", **style
            )
        ax.set_title(title)
        ax.set_xlabel("perturbation step k")
        ax.set_ylabel("f(x) - f(x^(k)), mean over images")
        ax.grid(alpha=0.3)
        ax.legend(title="method (AOPC)", fontsize="small")
    figure.savefig(path, dpi=90)
