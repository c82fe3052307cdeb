"""Where a concept's relevance lies: the share of each channel's conditional heatmap inside a region."""

from __future__ import annotations

import torch
from torch import Tensor

from relprop.concepts.attribute import conditional_heatmaps, relevance_at
from relprop.concepts.layers import channel_dim, check_explainer
from relprop.lrp import LRP
from relprop.targets import Target


def region_share(
    explainer: LRP,
    x: Tensor,
    layer: str,
    region: Tensor,
    target: Target = None,
    *,
    concepts_per_pass: int | None = None,
) -> Tensor:
    """For each sample and each channel of ``layer``, the share of the relevance its conditional heatmap puts
    inside ``region``, ``(B, C)``.

    With :math:`H_{bc}` the conditional heatmap of sample ``b`` under channel ``c`` alone
    (:func:`~relprop.concepts.conditional_heatmaps`) and :math:`M` the region,

    .. math:: s_{bc} = \\frac{\\sum_{i \\in M} H_{bc,i}}{\\sum_{c'} \\sum_i |H_{bc',i}|},

    signed, relative to the sample's whole (absolute) relevance through the layer: summed over the channels it
    is the region's share of that relevance, and it ranks the channels by how much relevance they bring to the
    region, so that a channel with little relevance, all of it inside, does not outrank one with much.
    Channels that encode what the region holds (a planted tag, a watermark) rank first.

    Parameters
    ----------
    explainer:
        The LRP explainer.
    x:
        A batch of ``B`` inputs.
    layer:
        A layer name, as :func:`~relprop.concepts.conditional_heatmaps` takes it (its channels).
    region:
        A boolean mask of the input pixels, broadcastable to one input (``x.shape[1:]``), e.g. ``(H, W)``.
    target:
        What to explain, as for :class:`relprop.LRP`.
    concepts_per_pass:
        At most this many channels per pass of the engine, to bound the memory.

    Raises
    ------
    ValueError
        If the region is not a boolean mask broadcastable to an input, or the layer is unknown.
    """
    check_explainer(explainer, x)
    if not isinstance(region, Tensor) or region.dtype != torch.bool:
        raise ValueError(f"region must be a boolean torch.Tensor (a mask of input pixels), got {region!r}")
    try:
        mask = torch.broadcast_to(region, x.shape[1:]).to(x.device)
    except RuntimeError:
        raise ValueError(
            f"region of shape {tuple(region.shape)} does not broadcast to an input of shape "
            f"{tuple(x.shape[1:])}"
        ) from None
    width = relevance_at(explainer, x, [layer], target)[layer].shape[channel_dim(explainer, x, layer)]
    heatmaps = conditional_heatmaps(
        explainer, x, [{layer: c} for c in range(width)], target, concepts_per_pass=concepts_per_pass
    ).heatmaps  # (B, C, ...)
    inside = (heatmaps * mask).flatten(2).sum(dim=2)
    total = heatmaps.abs().flatten(1).sum(dim=1, keepdim=True)
    return inside / total.clamp(min=torch.finfo(total.dtype).tiny)
