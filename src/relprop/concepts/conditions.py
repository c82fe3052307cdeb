"""Conditions: which channels, neurons, tokens or heads of which layers a concept keeps, and their masks.

A condition is a mapping ``{layer name: selection}``; a list of conditions is a list of concepts, explained
together: the relevance of ``B`` samples under ``K`` concepts is stacked, ``(K, B, ...)``, from one forward
pass. A selection is

- one channel or a sequence of them (``5``, ``[5, 7]``): the channels of a convolution (dimension 1 of its
  output) or the neurons of a dense layer (``nn.Linear``, ``F.linear``: the last dimension, so that on a
  transformer's ``(B, T, D)`` output they are the features of every token);
- :class:`Neurons`: the last dimension of any layer's output (a transformer's features after a GELU, say);
- :class:`Tokens`: token positions, dimension 1 of a ``(B, T, ...)`` output, all features of each;
- :class:`Heads`: heads of an attention layer, dimension 1 of its output ``(B, H, T, d)`` before the heads
  are merged, which is the slice ``h * d : (h + 1) * d`` of the out-projection's input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

Channels = int | Sequence[int]
"""One channel (neuron) of a layer, or several."""


@dataclass(frozen=True)
class Neurons:
    """Neurons of a layer: indices of the last dimension of its output, at every position (token)."""

    indices: Channels


@dataclass(frozen=True)
class Tokens:
    """Token positions of a layer's output ``(B, T, ...)``: indices of dimension 1, all features of each."""

    indices: Channels


@dataclass(frozen=True)
class Heads:
    """Heads of an attention layer, named by its module (``"encoder.layers.encoder_layer_0.self_attention"``,
    ``"bert.encoder.layer.0.attention.self"``) or by its attention node (``"scaled_dot_product_attention"``):
    indices of dimension 1 of the attention output ``(B, H, T, d)``."""

    indices: Channels


Selection = Channels | Neurons | Tokens | Heads
"""What a condition keeps at one layer."""

Condition = Mapping[str, Selection]
"""One concept: at each named layer, what it keeps (``{"features.28": [5, 7]}``, ``{"mlp.0": Tokens(3)}``)."""


@dataclass(frozen=True)
class Kept:
    """A parsed selection: its ``kind`` (``"channels"``, ``"neurons"``, ``"tokens"`` or ``"heads"``) and
    its indices."""

    kind: str
    indices: tuple[int, ...]


_KINDS = {Neurons: "neurons", Tokens: "tokens", Heads: "heads"}


def parse_conditions(conditions: Sequence[Condition]) -> list[dict[str, Kept]]:
    """The conditions with their selections parsed, checked.

    Raises
    ------
    TypeError, ValueError
        If ``conditions`` is not a non-empty list of mappings of layer names to non-negative indices.
    """
    if isinstance(conditions, Mapping) or not isinstance(conditions, Sequence) or not conditions:
        raise TypeError(
            "conditions must be a non-empty list of {layer name: channels} mappings, one per concept, "
            f"got {conditions!r}"
        )
    parsed = []
    for k, condition in enumerate(conditions):
        if not isinstance(condition, Mapping):
            raise TypeError(f"condition {k} must map layer names to channels, got {condition!r}")
        parsed.append({layer: _kept(layer, selection) for layer, selection in condition.items()})
    return parsed


def _kept(layer: str, selection: Selection) -> Kept:
    kind = _KINDS.get(type(selection), "channels")
    channels = selection.indices if kind != "channels" else selection
    values = (channels,) if isinstance(channels, int) else channels
    if not isinstance(values, Sequence) or not all(
        isinstance(c, int) and not isinstance(c, bool) for c in values
    ):
        raise TypeError(f"the {kind} of layer {layer!r} must be ints, got {channels!r}")
    if not values:
        raise ValueError(f"the condition on layer {layer!r} keeps no {kind[:-1]}")
    negative = [c for c in values if c < 0]
    if negative:
        raise ValueError(f"{kind[:-1]} {negative[0]} of layer {layer!r} is negative: {kind} count from 0")
    return Kept(kind, tuple(values))


def concept_mask(kept: Sequence[tuple[int, Kept] | None], relevance: Tensor, layer: str) -> Tensor:
    """The mask of a layer's stacked relevance ``(K, B, ...)`` under ``K = len(kept)`` concepts,
    ``(K, 1, ...)``; ``relevance`` is the layer's relevance under one concept, ``(B, ...)``.

    ``kept[k]`` is ``(dim, selection)``: concept ``k`` keeps the indices of dimension ``dim`` of
    ``relevance`` that ``selection`` holds, or ``None`` when it keeps all (the concept sets no condition
    there). The mask is 1 at the kept indices and 0 elsewhere, broadcast over the samples and the other
    dimensions (over none where the concepts select in different dimensions):
    :math:`R^{(k)}_{b \\ldots i \\ldots} \\leftarrow R_{b \\ldots i \\ldots} \\, [i \\in \\theta_k]`.

    Raises
    ------
    ValueError
        If an index is out of range for the layer.
    """
    if relevance.dim() < 2 and any(kept):
        raise ValueError(
            f"layer {layer!r} has nothing to select in: its relevance is {tuple(relevance.shape)}"
        )
    dims = {dim % relevance.dim() for dim, _ in filter(None, kept)}
    shape = [size if len(dims) > 1 or i in dims else 1 for i, size in enumerate(relevance.shape)][1:]
    mask = torch.ones(len(kept), *shape, dtype=relevance.dtype, device=relevance.device)
    for k, selection in enumerate(kept):
        if selection is None:
            continue
        dim, chosen = selection
        if chosen.kind == "heads" and relevance.dim() != 4:
            raise ValueError(
                f"heads are kept at an attention output (B, H, T, d): layer {layer!r} has relevance of "
                f"shape {tuple(relevance.shape)}"
            )
        width = relevance.shape[dim]
        outside = [c for c in chosen.indices if c >= width]
        if outside:
            raise ValueError(
                f"{chosen.kind[:-1]} {outside[0]} is out of range for layer {layer!r}, which has {width}"
            )
        row = mask[k].movedim(dim % relevance.dim() - 1, 0)
        row.zero_()
        row[list(chosen.indices)] = 1
    return mask.unsqueeze(1)
