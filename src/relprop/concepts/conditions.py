"""Conditions: which channels of which layers a concept keeps, and the masks they make on a batch.

A condition is a mapping ``{layer name: channels}`` (one channel or a sequence of them); a list of
conditions is a list of concepts, explained together. On a batch of ``B`` samples and ``K`` concepts, row
``b * K + k`` explains sample ``b`` under concept ``k``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

Channels = int | Sequence[int]
"""One channel (neuron) of a layer, or several."""

Condition = Mapping[str, Channels]
"""One concept: at each named layer, the channels whose relevance it keeps (``{"features.28": [5, 7]}``)."""


def parse_conditions(conditions: Sequence[Condition]) -> list[dict[str, tuple[int, ...]]]:
    """The conditions with their channels as tuples of ints, checked.

    Raises
    ------
    TypeError, ValueError
        If ``conditions`` is not a non-empty list of mappings of layer names to non-negative channels.
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
        parsed.append({layer: _channels(layer, channels) for layer, channels in condition.items()})
    return parsed


def _channels(layer: str, channels: Channels) -> tuple[int, ...]:
    values = (channels,) if isinstance(channels, int) else channels
    if not isinstance(values, Sequence) or not all(
        isinstance(c, int) and not isinstance(c, bool) for c in values
    ):
        raise TypeError(f"the channels of layer {layer!r} must be ints, got {channels!r}")
    if not values:
        raise ValueError(f"the condition on layer {layer!r} keeps no channel")
    negative = [c for c in values if c < 0]
    if negative:
        raise ValueError(f"channel {negative[0]} of layer {layer!r} is negative: channels count from 0")
    return tuple(values)


def concept_mask(
    channels: Sequence[tuple[int, ...] | None], relevance: Tensor, samples: int, layer: str
) -> Tensor:
    """The mask of a layer's relevance on a batch of ``samples`` times ``len(channels)`` rows.

    ``channels[k]`` holds the channels concept ``k`` keeps at the layer, or ``None`` when it keeps all (the
    concept sets no condition there). The channels are dimension 1 of ``relevance``; the mask is 1 at
    the kept channels and 0 elsewhere, broadcast over the other dimensions:
    :math:`R^{(k)}_{b c \\ldots} \\leftarrow R_{b c \\ldots} \\, [c \\in \\theta_k]`.

    Raises
    ------
    ValueError
        If a channel is out of range for the layer.
    """
    width = relevance.shape[1] if relevance.dim() >= 2 else 0
    mask = torch.ones(len(channels), width, dtype=relevance.dtype, device=relevance.device)
    for k, kept in enumerate(channels):
        if kept is None:
            continue
        outside = [c for c in kept if c >= width]
        if outside:
            raise ValueError(f"channel {outside[0]} is out of range for layer {layer!r}, which has {width}")
        mask[k] = 0
        mask[k, list(kept)] = 1
    return mask.repeat(samples, 1).reshape(mask.shape[0] * samples, width, *[1] * (relevance.dim() - 2))
