"""Pruning by a criterion: global ranking of the units across layers, rounds of scoring and masking, and an
optional fine-tuning step between rounds (Yeom et al. 2021). The units are filters and neurons
(:mod:`relprop.prune.masks`) or attention heads (:mod:`relprop.prune.heads`)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from relprop.checks import check_int, check_number
from relprop.composites import Composite
from relprop.prune.heads import check_removable, head_mask_hooks, head_scores, mask_heads, remove_heads
from relprop.prune.masks import mask_hooks, mask_units, remove_units
from relprop.prune.scores import unit_scores


@dataclass(frozen=True)
class _Operations:
    """How to score, mask, hold masked while training, and remove one kind of unit."""

    score: Callable
    mask: Callable
    hold: Callable
    remove: Callable


_UNITS = {
    "filters": _Operations(unit_scores, mask_units, mask_hooks, remove_units),
    "heads": _Operations(head_scores, mask_heads, head_mask_hooks, remove_heads),
}

#: What :func:`prune` prunes: ``filters`` (convolution filters and dense neurons) or attention ``heads``.
UNITS = tuple(_UNITS)


def check_rate(rate: float) -> float:
    """Return ``rate``, checked to be a number in ``[0, 1)``."""
    check_number(rate, "rate")
    if rate >= 1:
        raise ValueError(f"rate must be a number in [0, 1), got {rate!r}")
    return float(rate)


def normalized(scores: Mapping[str, Tensor], keep: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Each layer's scores divided by their sum over the layer's remaining units (the paper's per-layer
    normalization, which makes scores of layers of any size and scale comparable); pruned units get 0."""
    result = {}
    for name, values in scores.items():
        alive = torch.ones_like(values, dtype=torch.bool) if keep is None or name not in keep else keep[name]
        values = torch.where(alive, values, torch.zeros_like(values))
        total = values.sum()
        result[name] = values / total if total > 0 else torch.where(alive, 1.0 / alive.sum(), 0.0)
    return result


def select_units(
    scores: Mapping[str, Tensor], rate: float, keep: Mapping[str, Tensor] | None = None
) -> dict[str, Tensor]:
    """The units to keep when pruning the share ``rate`` of all units of all layers, lowest normalized
    score first, ranked globally across layers.

    Units already pruned (``False`` in ``keep``) stay pruned and count towards ``rate``; every layer keeps
    at least its best unit. Ties go to the earlier layer and unit.

    Returns
    -------
    dict[str, Tensor]
        Per layer, a bool tensor, ``True`` for the units kept.
    """
    check_rate(rate)
    if not scores:
        raise ValueError("no layers to prune: scores is empty")
    normal = normalized(scores, keep)
    names = list(normal)
    kept = {
        n: (
            keep[n].clone()
            if keep is not None and n in keep
            else torch.ones_like(normal[n], dtype=torch.bool)
        )
        for n in names
    }
    total = sum(v.numel() for v in normal.values())
    to_prune = round(rate * total) - sum(int((~k).sum()) for k in kept.values())
    candidates = []  # (score, layer index, unit) of the units that may go: alive and not the layer's best
    for index, name in enumerate(names):
        alive = kept[name].nonzero().flatten()
        best = alive[normal[name][alive].argmax()]
        candidates += [(float(normal[name][u]), index, int(u)) for u in alive if u != best]
    for _, index, unit in sorted(candidates)[: max(to_prune, 0)]:
        kept[names[index]][unit] = False
    return kept


@dataclass
class PruneResult:
    """What :func:`prune` returns.

    Attributes
    ----------
    model : nn.Module
        The pruned model (masked, or smaller if ``remove``), in evaluation mode.
    keep : dict[str, Tensor]
        Per pruned layer (per attention module for heads), a bool tensor, ``True`` for the units kept.
    units : str, default "filters"
        What was pruned, one of :data:`UNITS`.
    """

    model: nn.Module
    keep: dict[str, Tensor]
    units: str = "filters"

    def removed_share(self) -> dict[str, float]:
        """The share of units removed, per layer."""
        return {name: 1.0 - float(mask.double().mean()) for name, mask in self.keep.items()}


def prune(
    model: nn.Module,
    x: Tensor | None,
    target: Tensor | None = None,
    *,
    rate: float,
    criterion: str = "lrp",
    steps: int = 1,
    layers: Sequence[str] | None = None,
    composite: Composite | None = None,
    fine_tune: Callable[[nn.Module], None] | None = None,
    remove: bool = False,
    inplace: bool = False,
    units: str = "filters",
) -> PruneResult:
    """Prune the share ``rate`` of the units of ``model`` with the lowest ``criterion`` scores.

    In each of ``steps`` rounds the remaining units are scored on the references
    (:func:`~relprop.prune.scores.unit_scores`, or :func:`~relprop.prune.heads.head_scores` for heads),
    normalized per layer and ranked globally (:func:`select_units`), and the lowest are masked, until the
    share reaches ``rate * round / steps``; then ``fine_tune(model)``, if given, trains the model with the
    pruned parameters held at zero.

    Parameters
    ----------
    model : nn.Module
        The model in evaluation mode; copied unless ``inplace``.
    x, target : Tensor or None
        The reference samples and their classes (by default the predicted ones); see
        :func:`~relprop.prune.scores.unit_scores`.
    rate : float
        The share of units to remove, in ``[0, 1)``.
    criterion : str, default "lrp"
        One of :data:`~relprop.prune.scores.CRITERIA`.
    steps : int, default 1
        Rounds of scoring and pruning.
    layers : Sequence[str] or None
        The layers to prune (the attention modules for heads); by default all that can be.
    composite : Composite or None
        The rules of the ``lrp`` criterion.
    fine_tune : Callable[[nn.Module], None] or None
        Called after each round with the model (in training mode is up to it); its changes to pruned
        parameters are undone by masks. The model is put back in evaluation mode afterwards.
    remove : bool, default False
        Remove the pruned units (a smaller, faster model) instead of leaving them masked; for heads,
        BERT-style attention only (:func:`~relprop.prune.heads.remove_heads`).
    inplace : bool, default False
        Prune ``model`` itself (with ``remove``, its layers are replaced by smaller ones).
    units : str, default "filters"
        What to prune, one of :data:`UNITS`: filters and neurons, or the heads of attention layers
        (:func:`~relprop.prune.heads.attention_layers`).

    Raises
    ------
    ValueError
        For a rate outside ``[0, 1)``, unknown units, a layer that cannot be pruned, a model without
        attention (for heads), no reference samples, or as :func:`~relprop.prune.scores.unit_scores`.
    """
    if units not in _UNITS:
        raise ValueError(f"unknown units {units!r}; choose one of {', '.join(UNITS)}")
    operations = _UNITS[units]
    check_rate(rate)
    check_int(steps, "steps")
    if fine_tune is not None and not callable(fine_tune):
        raise TypeError(f"fine_tune must be callable, got {type(fine_tune).__name__}")
    if remove and units == "heads":
        check_removable(model, layers)  # before any scoring and fine-tuning
    model = model if inplace else copy.deepcopy(model)
    keep = None
    for step in range(1, steps + 1):
        scores = operations.score(model, x, target, criterion=criterion, layers=layers, composite=composite)
        keep = select_units(scores, rate * step / steps, keep)
        operations.mask(model, keep, inplace=True)
        if fine_tune is not None:
            with operations.hold(model, keep):
                fine_tune(model)
            model.eval()
    if remove:
        model = operations.remove(model, keep, inplace=True)
    return PruneResult(model, keep, units)
