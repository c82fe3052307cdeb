"""Image heatmaps of attributions: channel reduction, colouring, overlay on the input, PNG files.

Attributions are torch tensors or numpy arrays shaped ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``
(channels first, as the explainers return them). Every heatmap is normalized on its own, never with a
statistic of the batch.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from numpy.typing import ArrayLike
from PIL import Image

from relprop.images import to_rgb

from ._arrays import as_float_array
from .colormaps import colorize

_REDUCTIONS = {
    "sum": lambda attribution: attribution.sum(axis=-3),
    "abs-sum": lambda attribution: np.abs(attribution).sum(axis=-3),
    "max-abs": lambda attribution: np.abs(attribution).max(axis=-3),
    "norm": lambda attribution: np.sqrt(np.square(attribution).sum(axis=-3)),
}


def reduce_channels(attribution: np.ndarray, reduction: str = "sum") -> np.ndarray:
    r"""Reduce the channel axis (third from last) of an attribution ``(..., C, H, W)`` to ``(..., H, W)``.

    With :math:`R_c` the relevance of channel :math:`c` at one pixel:
    ``'sum'``: :math:`\sum_c R_c` (keeps the sign; relevance is conserved);
    ``'abs-sum'``: :math:`\sum_c |R_c|`; ``'max-abs'``: :math:`\max_c |R_c|`;
    ``'norm'``: :math:`\sqrt{\sum_c R_c^2}`.

    Parameters
    ----------
    attribution : numpy.ndarray
        Array with at least three axes, channels third from last.
    reduction : {'sum', 'abs-sum', 'max-abs', 'norm'}, default 'sum'
        How to combine the channels.

    Returns
    -------
    numpy.ndarray
        The reduced array, one axis fewer.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"unknown channel reduction {reduction!r}: use one of {list(_REDUCTIONS)}")
    return _REDUCTIONS[reduction](attribution)


def heatmap(
    attribution: torch.Tensor | ArrayLike,
    *,
    cmap: str = "bwr",
    signed: bool | None = None,
    clip_percentile: float | None = None,
    reduction: str = "sum",
) -> np.ndarray:
    """Render attributions as RGB heatmaps, each normalized by its own maximum absolute relevance.

    Parameters
    ----------
    attribution : torch.Tensor or array_like
        ``(H, W)``, ``(C, H, W)`` or a batch ``(B, C, H, W)``; finite real values.
    cmap : str, default 'bwr'
        ``'bwr'`` (blue negative, white zero, red positive), ``'hot'`` (positive relevance only: black, red,
        yellow, white) or the name of any matplotlib colormap; see :mod:`relprop.viz.colormaps`.
    signed : bool, optional
        Show signed relevance, zero at the centre of the map (True), or only positive relevance, negative
        clipped to zero (False). Default: False for ``'hot'``, True otherwise.
    clip_percentile : float, optional
        Normalize each heatmap by this percentile of its magnitudes (e.g. 99.5) instead of the maximum, so
        that a few extreme pixels saturate rather than wash out the rest.
    reduction : {'sum', 'abs-sum', 'max-abs', 'norm'}, default 'sum'
        How colour channels are combined, see :func:`reduce_channels`.

    Returns
    -------
    numpy.ndarray
        uint8 ``(H, W, 3)``, or ``(B, H, W, 3)`` for a batch.

    Examples
    --------
    >>> rgb = heatmap(attribution[0], clip_percentile=99.5)  # doctest: +SKIP
    """
    array = as_float_array(attribution, "attribution")
    if array.ndim == 2:
        array = array[np.newaxis]
    elif array.ndim not in (3, 4):
        raise ValueError(
            f"attribution must have shape (H, W), (C, H, W) or (B, C, H, W), got shape {array.shape}"
        )
    reduced = reduce_channels(array, reduction)
    if reduced.ndim == 3:
        return np.stack([colorize(sample, cmap, signed, clip_percentile) for sample in reduced])
    return colorize(reduced, cmap, signed, clip_percentile)


def as_rgb_image(image: torch.Tensor | np.ndarray | Image.Image) -> np.ndarray:
    """Convert an input image to a uint8 ``(H, W, 3)`` RGB array.

    Parameters
    ----------
    image : torch.Tensor, numpy.ndarray or PIL.Image.Image
        A torch tensor is channels first, ``(C, H, W)`` or ``(H, W)``; a numpy array is channels last,
        ``(H, W, C)`` or ``(H, W)``; ``C`` is 1 (grey) or 3 (RGB). Values are floats in [0, 1] or uint8.
        A PIL image of any mode is converted by :func:`relprop.images.to_rgb` (16-bit and float pixels
        scaled from their full range, an alpha channel dropped).

    Returns
    -------
    numpy.ndarray
        uint8 ``(H, W, 3)``; floats are scaled by 255 and rounded.
    """
    if isinstance(image, Image.Image):
        return np.asarray(to_rgb(image))
    if isinstance(image, torch.Tensor):
        tensor = image.detach().cpu()
        shape = tuple(tensor.shape)
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float64)
        array = tensor.permute(1, 2, 0).numpy() if tensor.ndim == 3 else tensor.numpy()
        layout = "(C, H, W) or (H, W) for a torch tensor"
    else:
        array = np.asarray(image)
        shape = array.shape
        layout = "(H, W, C) or (H, W) for a numpy array"
    if array.ndim == 2:
        array = array[..., np.newaxis]
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        raise ValueError(f"image must have shape {layout} with C = 1 or 3, got shape {shape}")
    if np.issubdtype(array.dtype, np.floating):
        if not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
            raise ValueError(
                f"a float image must hold values in [0, 1], got range [{array.min()}, {array.max()}]"
            )
        array = np.rint(array * 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise TypeError(f"image must hold floats in [0, 1] or uint8 values, got dtype {array.dtype}")
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array


def overlay(
    image: torch.Tensor | np.ndarray | Image.Image,
    attribution: torch.Tensor | ArrayLike,
    *,
    alpha: float = 0.5,
    cmap: str = "bwr",
    signed: bool | None = None,
    clip_percentile: float | None = None,
    reduction: str = "sum",
) -> np.ndarray:
    r"""Blend the heatmap of one attribution over its input image.

    .. math:: \text{out} = (1 - \alpha)\,\text{image} + \alpha\,\text{heatmap}

    Parameters
    ----------
    image : torch.Tensor, numpy.ndarray or PIL.Image.Image
        The explained input, see :func:`as_rgb_image` (float tensor ``(C, H, W)`` in [0, 1], uint8
        ``(H, W, 3)`` array, PIL image, ...). Its size must equal the attribution's.
    attribution : torch.Tensor or array_like
        One attribution, ``(C, H, W)`` or ``(H, W)``.
    alpha : float, default 0.5
        Opacity of the heatmap in [0, 1]: 0 returns the image, 1 the heatmap.
    cmap, signed, clip_percentile, reduction
        As in :func:`heatmap`.

    Returns
    -------
    numpy.ndarray
        uint8 ``(H, W, 3)``.
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    rgb = as_rgb_image(image)
    colored = _single_heatmap(attribution, cmap, signed, clip_percentile, reduction, "overlay")
    if colored.shape != rgb.shape:
        raise ValueError(
            f"image is {rgb.shape[0]}x{rgb.shape[1]} pixels but the attribution is "
            f"{colored.shape[0]}x{colored.shape[1]}"
        )
    return blend(rgb, colored, alpha)


def blend(image: np.ndarray, colored: np.ndarray, alpha: float) -> np.ndarray:
    r"""Alpha-blend two uint8 RGB arrays of the same shape.

    .. math:: \text{out} = \operatorname{round}\big((1 - \alpha)\,\text{image} + \alpha\,\text{colored}\big)
    """
    return np.rint((1 - alpha) * image.astype(np.float64) + alpha * colored.astype(np.float64)).astype(
        np.uint8
    )


def save_heatmap(
    path: str | os.PathLike,
    attribution: torch.Tensor | ArrayLike,
    *,
    cmap: str = "bwr",
    signed: bool | None = None,
    clip_percentile: float | None = None,
    reduction: str = "sum",
) -> None:
    """Write the heatmap of one attribution to a PNG file.

    Overlays and grids are saved the same way: ``PIL.Image.fromarray(overlay(...)).save(path)`` and
    ``grid(...).save(path)``.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; written as PNG whatever its extension.
    attribution : torch.Tensor or array_like
        One attribution, ``(C, H, W)`` or ``(H, W)``.
    cmap, signed, clip_percentile, reduction
        As in :func:`heatmap`.
    """
    colored = _single_heatmap(attribution, cmap, signed, clip_percentile, reduction, "save_heatmap")
    Image.fromarray(colored).save(path, format="PNG")


def _single_heatmap(attribution, cmap, signed, clip_percentile, reduction, caller: str) -> np.ndarray:
    """:func:`heatmap` of one attribution; a batch is refused with a message naming ``caller``."""
    colored = heatmap(
        attribution, cmap=cmap, signed=signed, clip_percentile=clip_percentile, reduction=reduction
    )
    if colored.ndim == 4:
        raise ValueError(
            f"{caller} takes one attribution, (C, H, W) or (H, W), got a batch of {colored.shape[0]}; "
            "index the batch or use grid()"
        )
    return colored
