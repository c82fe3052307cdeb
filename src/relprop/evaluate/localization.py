r"""Localization of attributions against ground-truth masks.

* Pointing game (Zhang et al., ECCV 2016): a hit if the maximum of the heatmap lies within ``tolerance``
  pixels of the mask (Euclidean distance to the nearest mask pixel, 15 pixels in the paper).
* Relevance mass accuracy and relevance rank accuracy (Arras, Osman, Samek, "CLEVR-XAI", Information
  Fusion 2022), computed on the positive relevance :math:`R^+ = \max(R, 0)`.

Every metric works on the heatmap :math:`R_{hw} = \sum_c R_{chw}` (channels summed), sample by sample, and
returns one value per sample (B,); the mean over samples is the reported score. Masks are boolean (or
0/1) tensors shaped (B, H, W) or (B, 1, H, W); an empty mask is an error, since the metrics are then
undefined.

Ties are scored by their expectation under uniformly random tie-breaking, so the result is deterministic
and a constant heatmap scores chance level instead of depending on the position of the first maximum.

Differences from Quantus 0.6: Quantus counts a pointing-game hit if *any* tied maximum is in the mask and
has no tolerance; its mass and rank accuracies use the signed relevance (the same numbers as here for
non-negative heatmaps) and break rank ties by sort order.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from torch import Tensor

from relprop.evaluate._common import pooled_heatmap


def pointing_game(attribution: Tensor, mask: Tensor, tolerance: float = 15.0) -> Tensor:
    r"""Pointing-game hit of each sample: 1.0 if the heatmap maximum is within ``tolerance`` of the mask.

    .. math::

        \mathrm{hit}_b = \frac{|\{p \in \arg\max R_b : d(p, \mathrm{mask}_b) \le \mathrm{tolerance}\}|}
                              {|\arg\max R_b|}

    with :math:`d` the Euclidean distance in pixels to the nearest mask pixel (0 inside the mask). A unique
    maximum gives 0 or 1; tied maxima give the hit rate under random tie-breaking.

    Parameters
    ----------
    attribution
        (B, C, H, W) or (B, H, W).
    mask
        Ground truth, (B, H, W) or (B, 1, H, W), boolean or 0/1.
    tolerance
        Distance in pixels within which a maximum still counts as a hit (15 in Zhang et al.).

    Returns
    -------
    Tensor
        Hits in [0, 1], float64, shaped (B,).
    """
    heatmap, mask = _heatmap_and_mask(attribution, mask)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a non-negative number of pixels, got {tolerance!r}")
    flat = heatmap.flatten(1)
    is_max = (flat == flat.max(dim=1, keepdim=True).values).cpu().numpy()
    hits = []
    for sample_mask, sample_max in zip(mask.cpu().numpy(), is_max, strict=True):
        near = distance_transform_edt(~sample_mask).ravel() <= tolerance
        hits.append(np.count_nonzero(sample_max & near) / np.count_nonzero(sample_max))
    return torch.tensor(hits, dtype=torch.float64)


def relevance_mass_accuracy(attribution: Tensor, mask: Tensor) -> Tensor:
    r"""Share of the positive relevance that falls inside the mask.

    .. math::

        \mathrm{mass}_b = \frac{\sum_{p \in \mathrm{mask}_b} R^+_{b,p}}{\sum_p R^+_{b,p}}

    Returns NaN for a sample without positive relevance (the ratio is undefined there).

    Returns
    -------
    Tensor
        Values in [0, 1] (or NaN), float64, shaped (B,).
    """
    heatmap, mask = _heatmap_and_mask(attribution, mask)
    positive = heatmap.clamp(min=0).double().flatten(1)
    inside = (positive * mask.flatten(1)).sum(dim=1)
    total = positive.sum(dim=1)
    return torch.where(total > 0, inside / total, torch.nan).cpu()


def relevance_rank_accuracy(attribution: Tensor, mask: Tensor) -> Tensor:
    r"""Share of the :math:`K = |\mathrm{mask}_b|` highest-relevance pixels that lie inside the mask.

    .. math::

        \mathrm{rank}_b = \frac{|\mathrm{top}_K(R^+_b) \cap \mathrm{mask}_b|}{K}

    Pixels tied with the :math:`K`-th largest value (for instance the zeros of :math:`R^+` when fewer than
    :math:`K` pixels are positive) fill the remaining places of the top :math:`K` in expectation: each counts
    with the probability of being picked under random tie-breaking.

    Returns
    -------
    Tensor
        Values in [0, 1], float64, shaped (B,).
    """
    heatmap, mask = _heatmap_and_mask(attribution, mask)
    positive = heatmap.clamp(min=0).flatten(1)
    mask = mask.flatten(1)
    size = mask.sum(dim=1)
    accuracies = []
    for values, inside, k in zip(positive, mask, size.tolist(), strict=True):
        threshold = values.topk(k).values[-1]
        above, tied = values > threshold, values == threshold
        free_places = k - above.sum()
        hits = (above & inside).sum() + free_places * (tied & inside).sum() / tied.sum()
        accuracies.append(hits.double() / k)
    return torch.stack(accuracies).cpu()


def _heatmap_and_mask(attribution: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Check the inputs; return the channel-summed heatmap (B, H, W) and the boolean mask (B, H, W)."""
    heatmap = pooled_heatmap(attribution)
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dim() == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    if mask.shape != heatmap.shape:
        raise ValueError(
            f"mask must be shaped (B, H, W) or (B, 1, H, W) with (B, H, W) = {tuple(heatmap.shape)}, "
            f"got {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError("mask must be boolean or hold only 0 and 1")
        mask = mask.bool()
    empty = (~mask.flatten(1).any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"the masks of samples {empty} are empty; localization is undefined for them")
    return heatmap, mask.to(heatmap.device)
