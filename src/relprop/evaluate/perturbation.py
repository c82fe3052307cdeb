r"""Region perturbation (Samek et al. 2017), pixel flipping and insertion / deletion curves.

Regions are ranked by their attribution score, the sum of the channel-summed attribution over the region.
Removing the regions in that order (most relevant first, MoRF) should destroy the model's evidence fast
for a good explanation. Step :math:`k` of a curve removes (or, for insertion, restores) region
:math:`r_k`:

.. math::

    x^{(0)} = x, \qquad x^{(k)} = g\big(x^{(k-1)}, r_k\big), \qquad
    \mathrm{AOPC} = \frac{1}{L+1} \sum_{k=0}^{L} \big(f(x) - f(x^{(k)})\big),

where :math:`f` is the explained model output (the target logit, or the target weighting of the output)
and :math:`g` replaces the pixels of a region by a replacement image (uniform noise in the paper, see
:mod:`relprop.evaluate.replacement`). Each image has one replacement image, drawn from a random stream of
its own (seeded by the seed and the image's values, see ``seed`` in :func:`region_perturbation`), so
:math:`x^{(k)} = (1 - M_k) \odot x + M_k \odot \tilde x` with :math:`M_k` the union of the first
:math:`k` regions. This makes every step independent of the others, and all :math:`B (L+1)` perturbed
images run through the model in large batches.

Regions (``windows``):

* ``"grid"`` (default, as iNNvestigate): non-overlapping ``patch_size`` x ``patch_size`` cells anchored at the
  top-left pixel. When the image size is not a multiple of the patch size, the cells of the last row and
  column are cut at the border (they are smaller, and their score sums fewer pixels). Quantus instead pads
  the image so that the grid is centred; both agree when the size is a multiple of the patch size.
* ``"sliding"`` (the paper's variant): one window centred at every pixel (for an even ``patch_size`` the
  centre is the lower-right of the four middle pixels), scored by the sum over the window (zero outside the
  image) and cut at the border. Windows overlap, so a step may remove fewer new pixels than the window holds.

``patch_size=1`` gives pixel flipping (Bach et al. 2015), one pixel (all its channels) per step.

Differences from Quantus 0.6 (``RegionPerturbation``, ``PixelFlipping``), whose curves equal ours where
the definitions meet (tested): Quantus returns the curve for :math:`k = 1, \dots, L` without :math:`k = 0`
(so its means and AUCs differ from AOPC), centres the grid by padding, and its ``"uniform"`` baseline fills
each removed region with one random value instead of per-pixel noise. ``PixelFlipping`` flips single
array elements (one channel of a pixel); ``patch_size=1`` here removes all channels of a pixel, which is the
same for one-channel images.

Ties between region scores are broken by region position in row-major order (a stable sort), so the
result does not depend on the sorting algorithm. Put the model in evaluation mode first: batch
normalization in training mode would make the result depend on how the perturbed images are batched.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from relprop.checks import check_int
from relprop.evaluate._common import (
    Target,
    as_seed,
    check_images,
    explained_output,
    heatmap_like,
    image_generators,
    target_weights,
)
from relprop.evaluate.replacement import Replacement, as_replacement

ORDERS = ("morf", "lerf", "random")
WINDOWS = ("grid", "sliding")


@dataclass(frozen=True)
class PerturbationCurve:
    r"""Model outputs along a perturbation curve.

    Attributes
    ----------
    reference
        :math:`f(x)`, the explained output of the unperturbed images, shaped (B,).
    scores
        :math:`f(x^{(k)})` for :math:`k = 0, \dots, L`, shaped (B, L + 1).
    """

    reference: Tensor
    scores: Tensor

    @property
    def curve(self) -> Tensor:
        r""":math:`f(x) - f(x^{(k)})` for :math:`k = 0, \dots, L`, shaped (B, L + 1)."""
        return self.reference[:, None] - self.scores

    @property
    def aopc(self) -> Tensor:
        r"""Area over the perturbation curve per sample, :math:`\frac{1}{L+1}\sum_k (f(x) - f(x^{(k)}))`."""
        return self.curve.mean(dim=1)

    @property
    def auc(self) -> Tensor:
        r"""Area under :math:`f(x^{(k)})` against the fraction :math:`k / L` of the steps (trapezoidal
        rule), per sample. This is the deletion AUC of a MoRF :func:`region_perturbation` curve and the
        insertion AUC of an :func:`insertion` curve (Petsiuk et al. 2018).
        """
        steps = self.scores.shape[1] - 1
        return torch.trapezoid(self.scores, dx=1.0 / steps, dim=1)


def region_perturbation(
    model: nn.Module,
    x: Tensor,
    attribution: Tensor,
    target: Target = None,
    *,
    patch_size: int = 9,
    steps: int | None = 100,
    order: str = "morf",
    perturbation: str | float | Tensor | Replacement = "uniform",
    windows: str = "grid",
    seed: int | torch.Generator = 0,
    batch_size: int = 256,
) -> PerturbationCurve:
    r"""Remove regions in the order of their attribution and record the model output after each step.

    See the module docstring for the definition and the region layout.

    Parameters
    ----------
    model
        Maps an image batch (N, C, H, W) to outputs (N, K). It runs under ``torch.no_grad()``.
    x
        Images (B, C, H, W).
    attribution
        Shaped like ``x``, or (B, H, W). Channels are summed; the regions are scored by the sum over them.
    target
        Explained output: None (each image's predicted class on ``x``, kept for all steps), an int, a
        LongTensor (B,), or a float tensor (B, K) weighting the outputs.
    patch_size
        Side of the square regions, 9 as in the paper; 1 is pixel flipping.
    steps
        Number of removal steps :math:`L` (100 in the paper); None removes every region.
    order
        ``"morf"`` (most relevant first), ``"lerf"`` (least relevant first) or ``"random"`` (the baseline).
    perturbation
        ``"uniform"`` (per-pixel noise within each image's value range, as in the paper), a number or a
        tensor (C, 1, 1) such as the dataset mean (constant replacement), or a callable
        ``(x, generator) -> Tensor`` such as :class:`~relprop.evaluate.replacement.GaussianBlur`, called on
        each image alone (a batch of one) with that image's generator.
    windows
        ``"grid"`` (non-overlapping cells) or ``"sliding"`` (a window centred at every pixel).
    seed
        An int, or a ``torch.Generator`` to draw one from. Each image draws its random order and its
        replacement from two streams of its own, seeded by the seed and a hash of the image's values: its
        curve depends on the seed, the image and the attribution only, not on the other images of the batch
        or on curves computed before, and every method (the random order too) sees the same replacement.
    batch_size
        Number of perturbed images per forward pass.

    Returns
    -------
    PerturbationCurve
        ``scores`` :math:`f(x^{(k)})`, ``curve`` :math:`f(x) - f(x^{(k)})`, ``aopc`` and ``auc`` per sample.
    """
    return _perturbation_curve(
        model,
        x,
        attribution,
        target,
        insert=False,
        patch_size=patch_size,
        steps=steps,
        order=order,
        perturbation=perturbation,
        windows=windows,
        seed=seed,
        batch_size=batch_size,
    )


def insertion(
    model: nn.Module,
    x: Tensor,
    attribution: Tensor,
    target: Target = None,
    *,
    patch_size: int = 9,
    steps: int | None = None,
    order: str = "morf",
    perturbation: str | float | Tensor | Replacement = "uniform",
    windows: str = "grid",
    seed: int | torch.Generator = 0,
    batch_size: int = 256,
) -> PerturbationCurve:
    r"""Insertion curve (Petsiuk et al. 2018): restore regions of ``x`` into a fully perturbed image.

    Step 0 is the replacement image (for instance ``GaussianBlur(sigma)`` as in RISE, or 0.0), and step
    :math:`k` restores the first :math:`k` regions in the given order. With ``steps=None`` (the default) the
    last step is ``x`` itself. Parameters and the region layout are those of :func:`region_perturbation`;
    the insertion AUC is ``insertion(...).auc`` and the deletion AUC is ``region_perturbation(...).auc``.
    """
    return _perturbation_curve(
        model,
        x,
        attribution,
        target,
        insert=True,
        patch_size=patch_size,
        steps=steps,
        order=order,
        perturbation=perturbation,
        windows=windows,
        seed=seed,
        batch_size=batch_size,
    )


def _perturbation_curve(
    model: nn.Module,
    x: Tensor,
    attribution: Tensor,
    target: Target,
    *,
    insert: bool,
    patch_size: int,
    steps: int | None,
    order: str,
    perturbation: str | float | Tensor | Replacement,
    windows: str,
    seed: int | torch.Generator,
    batch_size: int,
) -> PerturbationCurve:
    """The curve of :func:`region_perturbation` (``insert=False``) or of insertion (``insert=True``)."""
    check_images(x)
    heatmap = heatmap_like(attribution, x).to(x.device)
    _check_options(x, patch_size, batch_size, order, windows)
    replace = as_replacement(perturbation)
    seed = as_seed(seed)

    scores = _region_scores(heatmap, patch_size, windows)
    steps = _check_steps(steps, scores.shape[1], x, patch_size, windows)
    rank = _region_rank(scores, order, image_generators(seed, x, "order") if order == "random" else [])
    removal_step = _removal_step(rank, x.shape[2:], patch_size, windows)

    with torch.no_grad():
        output = model(x)
        weights = target_weights(output, target)
        reference = explained_output(output, weights)
        replacement = _replacement(replace, x, seed)
        # Deletion step 0 is x itself, whose output is already known.
        first = 0 if insert else 1
        later = _perturbed_outputs(
            model, x, replacement, removal_step, weights, range(first, steps + 1), batch_size, insert
        )
    outputs = later if insert else torch.cat([reference[:, None], later], dim=1)
    return PerturbationCurve(reference=reference, scores=outputs)


def _check_options(x: Tensor, patch_size: int, batch_size: int, order: str, windows: str) -> None:
    """Refuse sizes that are not positive integers, a patch larger than the images, or an unknown order or
    kind of windows."""
    check_int(patch_size, "patch_size")
    check_int(batch_size, "batch_size")
    if patch_size > min(x.shape[2:]):
        raise ValueError(f"patch_size {patch_size} exceeds the image size {tuple(x.shape[2:])}")
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}, expected one of {ORDERS}")
    if windows not in WINDOWS:
        raise ValueError(f"unknown windows {windows!r}, expected one of {WINDOWS}")


def _check_steps(steps: int | None, regions: int, x: Tensor, patch_size: int, windows: str) -> int:
    """``steps``, or every one of the ``regions`` for None; more steps than regions are refused."""
    if steps is None:
        return regions
    check_int(steps, "steps")
    if steps > regions:
        raise ValueError(
            f"steps={steps} exceeds the {regions} regions of {windows} {patch_size}x{patch_size} windows "
            f"on {tuple(x.shape[2:])} images; pass steps <= {regions} or steps=None"
        )
    return steps


def _replacement(replace: Replacement, x: Tensor, seed: int) -> Tensor:
    """What each image's removed pixels become, shaped like ``x``: ``replace`` of each image with the
    image's own generator of replacement values."""
    replacement = torch.cat(
        [replace(x[k : k + 1], g) for k, g in enumerate(image_generators(seed, x, "replacement"))]
    )
    if replacement.shape != x.shape:
        raise ValueError(
            f"the perturbation returned shape {tuple(replacement.shape)}, expected {tuple(x.shape)}"
        )
    return replacement


def _region_scores(heatmap: Tensor, patch_size: int, windows: str) -> Tensor:
    """Sum of a heatmap (B, H, W) over each region, shaped (B, R), regions in row-major order.

    For ``"grid"`` the regions are the cells of the non-overlapping grid, for ``"sliding"`` the windows
    centred at each pixel (R = H W).
    """
    height, width = heatmap.shape[1:]
    if windows == "grid":
        pad_h, pad_w = -height % patch_size, -width % patch_size
        cells = F.pad(heatmap, (0, pad_w, 0, pad_h))
        rows, cols = cells.shape[1] // patch_size, cells.shape[2] // patch_size
        sums = cells.view(-1, rows, patch_size, cols, patch_size).sum(dim=(2, 4))
    else:
        before, after = (patch_size - 1) // 2, patch_size // 2
        maps = F.pad(heatmap[:, None], (before, after, before, after))
        sums = F.conv2d(maps, maps.new_ones(1, 1, patch_size, patch_size))
    return sums.flatten(1)


def _region_rank(scores: Tensor, order: str, generators: list[torch.Generator]) -> Tensor:
    """Position of each region in the removal order (0 = removed first), shaped like ``scores``; the random
    order of image ``b`` is drawn from ``generators[b]``."""
    if order == "random":
        keys = torch.stack([torch.rand(scores.shape[1], generator=g) for g in generators]).to(scores.device)
    else:
        keys = -scores if order == "morf" else scores
    sequence = torch.sort(keys, dim=1, stable=True).indices
    rank = torch.empty_like(sequence)
    positions = torch.arange(scores.shape[1], device=scores.device).expand_as(sequence)
    return rank.scatter_(1, sequence, positions)


def _removal_step(rank: Tensor, size: torch.Size, patch_size: int, windows: str) -> Tensor:
    """Step (1-based) at which each pixel is first removed, shaped (B, H, W)."""
    height, width = size
    if windows == "grid":
        cells = rank.view(-1, -(-height // patch_size), -(-width // patch_size)) + 1
        pixels = cells.repeat_interleave(patch_size, dim=1).repeat_interleave(patch_size, dim=2)
        return pixels[:, :height, :width]
    # A pixel is removed by the earliest window that covers it: a min-pool of the window ranks, with the
    # padding mirrored with respect to the window scores.
    before, after = (patch_size - 1) // 2, patch_size // 2
    centres = (rank.view(-1, 1, height, width) + 1).double()
    padded = F.pad(-centres, (after, before, after, before), value=-float(height * width + 1))
    return (-F.max_pool2d(padded, patch_size, stride=1))[:, 0].long()


def _perturbed_outputs(
    model: nn.Module,
    x: Tensor,
    replacement: Tensor,
    removal_step: Tensor,
    weights: Tensor,
    steps: range,
    batch_size: int,
    insert: bool,
) -> Tensor:
    """Explained output of every (image, step) pair, shaped (B, len(steps)), ``batch_size`` images a pass."""
    count = x.shape[0] * len(steps)
    image = torch.arange(x.shape[0], device=x.device).repeat_interleave(len(steps))
    step = torch.tensor(steps, device=x.device).repeat(x.shape[0])
    outputs = torch.empty(count, dtype=weights.dtype, device=x.device)
    for start in range(0, count, batch_size):
        index = image[start : start + batch_size]
        removed = (removal_step[index] <= step[start : start + batch_size, None, None])[:, None]
        kept, filled = (replacement, x) if insert else (x, replacement)
        perturbed = torch.where(removed, filled[index], kept[index])
        outputs[start : start + batch_size] = explained_output(model(perturbed), weights[index])
    return outputs.view(x.shape[0], len(steps))
