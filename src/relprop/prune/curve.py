"""Accuracy against the pruning rate: reference samples per class, accuracy on the others, one curve per
criterion, and its plot."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from relprop.checks import check_int, check_seed
from relprop.composites import Composite
from relprop.prune.iterate import check_rate, select_units
from relprop.prune.masks import remove_units
from relprop.prune.scores import CRITERIA, unit_scores


def stack_dataset(dataset: Dataset) -> tuple[Tensor, Tensor]:
    """All samples of a map-style data set of ``(x, label)`` pairs as one batch and a ``LongTensor`` of
    labels."""
    if len(dataset) == 0:
        raise ValueError("the data set is empty")
    samples = [dataset[index] for index in range(len(dataset))]
    return torch.stack([x for x, _ in samples]), torch.tensor([label for _, label in samples])


def reference_split(
    dataset: Dataset, per_class: int, seed: int | None = 0
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """The data set as references, ``per_class`` samples drawn at random from each class, and the others to
    measure on, each as ``(x, y)`` (see :func:`split_references`)."""
    x, y = stack_dataset(dataset)
    chosen, rest = split_references(y, per_class, seed)
    return (x[chosen], y[chosen]), (x[rest], y[rest])


def split_references(labels: Tensor, per_class: int, seed: int | None = 0) -> tuple[Tensor, Tensor]:
    """Indices of ``per_class`` reference samples drawn at random from each class, and of all the others.

    Raises
    ------
    ValueError
        If a class has no more than ``per_class`` samples (none would be left to measure on).
    """
    check_int(per_class, "per_class")
    generator = torch.Generator().manual_seed(check_seed(seed) if seed is not None else 0)
    references = []
    for label in torch.unique(labels):
        members = (labels == label).nonzero().flatten()
        if len(members) <= per_class:
            raise ValueError(
                f"class {int(label)} has {len(members)} samples: too few for {per_class} references per "
                "class and some left to measure accuracy on"
            )
        references.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    chosen = torch.cat(references).sort().values
    rest = torch.ones(len(labels), dtype=torch.bool)
    rest[chosen] = False
    return chosen, rest.nonzero().flatten()


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256) -> float:
    """The share of the samples ``x`` whose predicted class is ``y``."""
    check_int(batch_size, "batch_size")
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            predicted = model(x[start : start + batch_size]).argmax(1)
            correct += int((predicted.cpu() == y[start : start + batch_size].cpu()).sum())
    return correct / len(x)


def accuracy_curves(
    model: nn.Module,
    references: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    rates: Sequence[float],
    criteria: Sequence[str] = CRITERIA,
    *,
    composite: Composite | None = None,
    fine_tune: Callable[[nn.Module], None] | None = None,
) -> dict[str, list[float]]:
    """Per criterion, the accuracy on ``test`` after pruning each of ``rates`` in one round.

    Each criterion scores the units once on ``references`` (``(x, y)``); each rate removes the lowest of
    that ranking from a copy of ``model`` (:func:`~relprop.prune.iterate.select_units`,
    :func:`~relprop.prune.masks.remove_units`: the function of the masked model, computed faster), which
    ``fine_tune``, if given, then trains. ``model`` is not modified.
    """
    for rate in rates:
        check_rate(rate)
    curves = {}
    for criterion in criteria:
        scores = unit_scores(
            model, *references, criterion=criterion, composite=composite if criterion == "lrp" else None
        )
        curve = []
        for rate in rates:
            pruned = remove_units(model, select_units(scores, rate))
            if fine_tune is not None:
                fine_tune(pruned)
                pruned.eval()
            curve.append(accuracy(pruned, *test))
        curves[criterion] = curve
    return curves


def plot_accuracy_curves(
    path: Path, rates: Sequence[float], panels: Mapping[str, Mapping[str, np.ndarray]]
) -> None:
    """Write accuracy against the pruning rate as an image: a panel per entry of ``panels`` (its title:
    ``{criterion: accuracies}``), each accuracy array shaped ``(len(rates),)`` or ``(runs, len(rates))``,
    drawn as the mean over runs with a band of one standard error when there are several."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(4.6 * columns, 3.6 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    percent = 100 * np.asarray(rates)
    for ax, (title, curves) in zip(axes, panels.items()):
        for criterion, values in curves.items():
            values = np.atleast_2d(np.asarray(values, dtype=float))
            mean = values.mean(0)
            (line,) = ax.plot(percent, 100 * mean, marker=".", label=criterion)
            if len(values) > 1:
                error = values.std(0, ddof=1) / np.sqrt(len(values))
                ax.fill_between(
                    percent, 100 * (mean - error), 100 * (mean + error), color=line.get_color(), alpha=0.2
                )
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("units pruned (%)")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    figure.savefig(path, dpi=90)
