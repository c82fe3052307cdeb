"""Relevance at intermediate layers and conditional relevance (Concept Relevance Propagation).

Relevance at a layer (Bach et al., ICIP 2016) is the relevance :math:`R_\\ell` that LRP assigns to the
layer's output on the way from the model's output to its input; it is what ``explainer.audit(x)`` books as
entering that layer. Conditional relevance (Achtibat et al., Nature Machine Intelligence 5, 2023) masks it:
for a concept :math:`\\theta` that keeps channels :math:`\\theta_\\ell` at layer :math:`\\ell`,

.. math:: R_\\ell(x \\mid \\theta)_{c \\ldots} = R_\\ell(x)_{c \\ldots} \\, [c \\in \\theta_\\ell],

and the lower layers propagate the masked relevance on, by the same rules; the concept's heatmap is the
relevance that reaches the input. Since the masks of all channels of a layer taken one at a time partition
its relevance, and every rule is linear in the relevance it propagates, their heatmaps add up to the
relevance that reaches the input through the layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, fx

from relprop.concepts.conditions import Condition, Kept, concept_mask, parse_conditions
from relprop.concepts.layers import (
    attention_node,
    channel_dim,
    check_explainer,
    feature_dim,
    layer_node,
    per_channel,
)
from relprop.lrp import LRP
from relprop.targets import Target, target_weights

Filter = Callable[[Tensor], Tensor]


@dataclass
class ConditionalRelevance:
    """The relevance of ``B`` samples under ``K`` concepts.

    Attributes
    ----------
    heatmaps:
        ``(B, K, ...)``: the input relevance of sample ``b`` under concept ``k`` (its conditional heatmap).
    layers:
        For each recorded layer name, ``(B, K, ...)``: the relevance the layer propagated under each concept.
    """

    heatmaps: Tensor
    layers: dict[str, Tensor]


def relevance_at(
    explainer: LRP, x: Tensor, layers: Sequence[str], target: Target = None
) -> dict[str, Tensor]:
    """The relevance at the output of each named layer when ``explainer`` explains ``target``.

    Parameters
    ----------
    explainer:
        The LRP explainer.
    x:
        A batch of inputs ``(B, ...)``.
    layers:
        Module names (``"features.10"``) or graph node names (see :func:`relprop.concepts.layer_node`).
    target:
        What to explain, as for :class:`relprop.LRP`.

    Returns
    -------
    dict
        Layer name to its relevance :math:`R_\\ell`, shaped like the layer's output; per sample it sums to
        what ``explainer.audit(x, target)`` books as entering the layer.

    Raises
    ------
    ValueError
        If a layer is unknown, or no relevance reaches it.
    """
    return relevance_from_output(explainer, x, layers, _target_start(target))


def relevance_from_output(
    explainer: LRP, x: Tensor, layers: Sequence[str], output_relevance: Callable[[Tensor], Tensor]
) -> dict[str, Tensor]:
    """As :func:`relevance_at`, for the output relevance that ``output_relevance`` makes of the output (as
    :meth:`relprop.LRP.propagate` takes it)."""
    check_explainer(explainer, x)
    nodes = {name: layer_node(explainer, x, name) for name in layers}
    recorded = {node: _Record(name) for name, node in nodes.items()}
    explainer._explain(x, output_relevance, filters=recorded)
    return {name: recorded[node].relevance() for name, node in nodes.items()}


def layer_heatmap(explainer: LRP, x: Tensor, layer: str, target: Target = None) -> Tensor:
    """The coarser heatmap of explaining to an intermediate layer (Bach et al., ICIP 2016), ``(B, H, W)``.

    The relevance at ``layer`` summed over its channels, :math:`\\sum_c R_{\\ell, c ij}`, spread evenly over
    the input pixels of each of its ``h x w`` positions (nearest upsampling to the input's ``H x W``, times
    :math:`hw / HW`), so that its total stays the layer's relevance.
    """
    relevance = relevance_at(explainer, x, [layer], target)[layer]
    if relevance.dim() != 4 or x.dim() != 4:
        raise ValueError(
            f"a layer heatmap needs images and a layer with two spatial dimensions: layer {layer!r} has "
            f"relevance of shape {tuple(relevance.shape)} for input {tuple(x.shape)}"
        )
    summed = relevance.sum(dim=1, keepdim=True)
    size = x.shape[-2:]
    spread = torch.nn.functional.interpolate(summed, size=size, mode="nearest-exact")[:, 0]
    return spread * (summed.shape[-2] * summed.shape[-1]) / (size[0] * size[1])


def propagate_from(explainer: LRP, x: Tensor, layer: str, relevance: Tensor) -> Tensor:
    """The input relevance when the output of ``layer`` holds ``relevance`` and the rest of the network none.

    The layers above ``layer`` pass no relevance down (the output relevance is zero), so the result is
    the propagation of ``relevance`` alone from the latent layer to the input.

    Raises
    ------
    ValueError
        If the layer is unknown, no relevance path leads from the output to it, or ``relevance`` is not
        shaped like its output.
    """
    check_explainer(explainer, x)
    node = layer_node(explainer, x, layer)
    start = _LayerFilter(layer, lambda received: _shaped_like(relevance, received, layer))
    heatmap = explainer._explain(x, torch.zeros_like, filters={node: start})[0]
    start.check()
    return heatmap


def conditional_heatmaps(
    explainer: LRP,
    x: Tensor,
    conditions: Sequence[Condition],
    target: Target = None,
    *,
    exclude_parallel: bool = True,
    record: Iterable[str] = (),
    concepts_per_pass: int | None = None,
) -> ConditionalRelevance:
    """The heatmap of each sample under each concept, in one batched pass (or a few).

    Parameters
    ----------
    explainer:
        The LRP explainer.
    x:
        A batch of ``B`` inputs.
    conditions:
        ``K`` concepts, each a mapping ``{layer name: selection}``: at each named layer, the relevance is
        kept at the selected indices and set to zero at the others before it propagates on. A selection is
        channels (ints: dimension 1 of a convolution, the last dimension of a dense layer, its neurons at
        every token), :class:`~relprop.concepts.Neurons` (the last dimension),
        :class:`~relprop.concepts.Tokens` (token positions, dimension 1) or :class:`~relprop.concepts.Heads`
        (attention heads, at the attention output ``(B, H, T, d)``). ``{}`` keeps everything (the plain
        heatmap).
    target:
        What to explain, as for :class:`relprop.LRP`, the same for every concept.
    exclude_parallel:
        Drop the relevance that reaches the lower layers without passing through the conditioned layers,
        such as that of a residual shortcut around them. Precisely: the relevance of the output is
        propagated to the concept's uppermost conditioned layers (those no other of its conditioned layers
        lies above), masked there, and only that masked relevance propagates on to the input; the rest of
        the network starts with none. For a chain of layers without shortcuts this changes nothing.
        Without it, the relevance flowing around a conditioned layer reaches the input unmasked.
    record:
        Layer names whose relevance under each concept to return (after their own condition, if any). With
        ``exclude_parallel``, a layer above a concept's uppermost conditioned layers holds none of it.
    concepts_per_pass:
        At most this many concepts per pass of the engine (the backward pass holds ``K`` relevances of each
        layer), to bound the memory; all in one pass by default.

    Returns
    -------
    ConditionalRelevance
        ``heatmaps`` ``(B, K, ...)`` and the recorded layers ``(B, K, ...)``, from one forward pass of the
        ``B`` samples per pass.

    Raises
    ------
    ValueError
        If a layer is unknown or called more than once, an index is out of range for its layer, a head
        condition names no attention layer, or no relevance reaches a conditioned layer.
    """
    check_explainer(explainer, x)
    concepts = [_at_attention(explainer, x, concept) for concept in parse_conditions(conditions)]
    if concepts_per_pass is not None and (isinstance(concepts_per_pass, bool) or concepts_per_pass < 1):
        raise ValueError(f"concepts_per_pass must be a positive int or None, got {concepts_per_pass!r}")
    conditioned = list(dict.fromkeys(name for concept in concepts for name in concept))
    recorded = list(record)
    for name in conditioned + recorded:
        layer_node(explainer, x, name)  # an unknown name is refused before any pass
    plain = None
    if exclude_parallel:
        plain = relevance_at(explainer, x, conditioned, target) if conditioned else {}
    step = concepts_per_pass or len(concepts)
    parts = [
        _one_pass(explainer, x, concepts[first : first + step], target, recorded, plain)
        for first in range(0, len(concepts), step)
    ]
    return ConditionalRelevance(
        torch.cat([part.heatmaps for part in parts], dim=1),
        {name: torch.cat([part.layers[name] for part in parts], dim=1) for name in recorded},
    )


def _one_pass(
    explainer: LRP,
    x: Tensor,
    concepts: list[dict[str, Kept]],
    target: Target,
    record: list[str],
    plain: dict[str, Tensor] | None,
) -> ConditionalRelevance:
    """The heatmaps of ``concepts`` in one pass: one forward pass of the ``B`` samples, and one backward
    pass of their relevance under the ``K`` concepts stacked, ``(K, B, ...)`` (what does not depend on the
    relevance, such as a rule's denominators, is computed once for all). ``plain`` holds the relevance at
    the conditioned layers under exclude_parallel (``None`` without it)."""
    count = len(concepts)
    names = dict.fromkeys(name for concept in concepts for name in concept)
    conditioned = {name: layer_node(explainer, x, name) for name in names}
    recorded = {name: layer_node(explainer, x, name) for name in record}
    start = _target_start(target)
    if plain is not None:
        uppermost = _uppermost(concepts, conditioned)
        start = _only_unconditioned(start, [not concept for concept in concepts])
    filters: dict[fx.Node, Filter] = {}
    masks: dict[str, _LayerFilter] = {}
    for name, node in conditioned.items():
        kept = [_with_dim(explainer, node, concept.get(name)) for concept in concepts]

        def condition(received: Tensor, name=name, kept=kept) -> Tensor:
            mask = concept_mask(kept, received[0], name)
            if plain is not None:  # concepts for which this is the uppermost conditioned layer start here
                top = torch.tensor([uppermost[k].get(name, False) for k in range(count)], device=mask.device)
                above = plain[name].to(received)
                received = torch.where(top.reshape(-1, *[1] * (received.dim() - 1)), above, received)
            return received * mask

        filters[node] = masks[name] = _LayerFilter(name, condition)
    records = {}
    for name, node in recorded.items():
        records[name] = _Record(name, after=filters.get(node))
        filters[node] = records[name]
    heatmaps = explainer._explain(x, start, filters=filters, concepts=count)[0]
    for condition in masks.values():
        condition.check()
    return ConditionalRelevance(
        heatmaps.transpose(0, 1), {name: r.relevance().transpose(0, 1) for name, r in records.items()}
    )


def concept_importance(
    explainer: LRP, x: Tensor, layer: str, target: Target = None, *, abs_norm: bool = False
) -> Tensor:
    """The relevance of each channel of ``layer`` for one prediction, ``(B, C)``.

    :math:`r_c = \\sum_{p} R_{\\ell, c p}`, summed over the positions :math:`p` (the dimensions other than the
    channels: of a convolution those after dimension 1; of a dense layer, whose neurons are the last
    dimension, the tokens); with ``abs_norm``, the share :math:`r_c / \\sum_{c'} |r_{c'}|`.
    """
    relevance = relevance_at(explainer, x, [layer], target)[layer]
    if relevance.dim() < 2:
        raise ValueError(
            f"layer {layer!r} has no channel dimension: its relevance is {tuple(relevance.shape)}"
        )
    totals = per_channel(relevance, channel_dim(explainer, x, layer))
    if not abs_norm:
        return totals
    total = totals.abs().sum(dim=1, keepdim=True)
    return totals / total.clamp(min=torch.finfo(total.dtype).tiny)


# ------------------------------------------------------------------------------------------------ internals
class _LayerFilter:
    """A relevance filter that also remembers whether relevance reached its layer."""

    def __init__(self, name: str, function: Filter) -> None:
        self.name, self.function, self.reached = name, function, False

    def __call__(self, received: Tensor) -> Tensor:
        self.reached = True
        return self.function(received)

    def check(self) -> None:
        if not self.reached:
            raise ValueError(f"no relevance reaches layer {self.name!r} from the explained output")


class _Record(_LayerFilter):
    """A relevance filter that keeps what its layer propagates (after ``after``, another filter, if any)."""

    def __init__(self, name: str, after: Filter | None = None) -> None:
        super().__init__(name, after or (lambda received: received))
        self.value: Tensor | None = None

    def __call__(self, received: Tensor) -> Tensor:
        self.value = super().__call__(received)
        return self.value

    def relevance(self) -> Tensor:
        self.check()
        return self.value


def _target_start(target: Target) -> Callable[[Tensor], Tensor]:
    return lambda output: output * target_weights(output, target)


def _only_unconditioned(start: Callable[[Tensor], Tensor], kept: list[bool]) -> Callable[[Tensor], Tensor]:
    """The output relevance of ``start`` for the concepts ``kept`` marks (those without conditions), zero
    for the others: stacked ``(K, *output shape)``, or plain zeros if no concept is kept."""

    def stacked(output: Tensor) -> Tensor:
        relevance = start(output)
        mask = torch.tensor(kept, dtype=relevance.dtype, device=relevance.device)
        return relevance * mask.reshape(-1, *[1] * relevance.dim())

    return stacked if any(kept) else torch.zeros_like


def _shaped_like(relevance: Tensor, received: Tensor, layer: str) -> Tensor:
    if not isinstance(relevance, Tensor) or relevance.shape != received.shape:
        shape = tuple(getattr(relevance, "shape", ())) or type(relevance).__name__
        raise ValueError(
            f"the relevance given at layer {layer!r} has shape {shape}; the layer's output has "
            f"{tuple(received.shape)}"
        )
    return relevance.to(received)


def _at_attention(explainer: LRP, x: Tensor, concept: dict[str, Kept]) -> dict[str, Kept]:
    """The concept with the layer of each head condition named by its attention node."""
    resolved: dict[str, Kept] = {}
    for name, kept in concept.items():
        layer = attention_node(explainer, x, name).name if kept.kind == "heads" else name
        if layer in resolved:
            raise ValueError(f"a condition names layer {layer!r} twice (as {name!r})")
        resolved[layer] = kept
    return resolved


def _with_dim(explainer: LRP, node: fx.Node, kept: Kept | None) -> tuple[int, Kept] | None:
    """The dimension of the layer's output that ``kept`` selects in, with it (``None``: keeps all)."""
    if kept is None:
        return None
    dims = {"channels": feature_dim(explainer, node), "neurons": -1, "tokens": 1, "heads": 1}
    return dims[kept.kind], kept


def _uppermost(concepts: list[dict], nodes: dict[str, fx.Node]) -> list[dict[str, bool]]:
    """For each concept and each of its layers: whether none of its other conditioned layers lies above."""
    below = {name: _downstream(node) for name, node in nodes.items()}
    return [
        {name: not any(nodes[other] in below[name] for other in concept if other != name) for name in concept}
        for concept in concepts
    ]


def _downstream(node: fx.Node) -> set[fx.Node]:
    """The nodes that use ``node``'s value, directly or not: those above it on the way to the output."""
    seen: set[fx.Node] = set()
    todo = list(node.users)
    while todo:
        user = todo.pop()
        if user not in seen:
            seen.add(user)
            todo.extend(user.users)
    return seen
