"""Colormaps for relevance, and the per-heatmap normalization that maps relevance onto them.

Built-in maps (exact piecewise-linear interpolation between the listed colours):

* ``'bwr'`` (default, diverging): blue ``(0, 0, 255)`` at the most negative value, white
  ``(255, 255, 255)`` exactly at zero, red ``(255, 0, 0)`` at the most positive value.
* ``'hot'`` (heat-only): black, red, yellow, white at positions 0, 1/3, 2/3, 1, as zennit's and the
  LRP toolbox's ``hot`` map; only positive relevance is shown.

Any other name is looked up among matplotlib's registered colormaps (``matplotlib.colormaps``, e.g.
``'coolwarm'``, ``'seismic'``, ``'RdBu_r'``, ``'viridis'``); the built-in names take precedence over
matplotlib's maps of the same name. Only the colormap registry is used: pyplot is never imported and no
figure is created.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import matplotlib
import numpy as np
import torch
from numpy.typing import ArrayLike

from ._arrays import as_float_array


@dataclass(frozen=True)
class _PiecewiseLinear:
    """Colormap interpolating linearly between ``colors`` placed at ``knots`` in [0, 1]."""

    knots: tuple[float, ...]
    colors: tuple[tuple[int, int, int], ...]

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        channels = [np.interp(positions, self.knots, [color[c] for color in self.colors]) for c in range(3)]
        return np.rint(np.stack(channels, axis=-1)).astype(np.uint8)


# name -> (colormap, whether it shows signed relevance by default)
_BUILTIN: dict[str, tuple[_PiecewiseLinear, bool]] = {
    "bwr": (_PiecewiseLinear((0.0, 0.5, 1.0), ((0, 0, 255), (255, 255, 255), (255, 0, 0))), True),
    "hot": (
        _PiecewiseLinear((0.0, 1 / 3, 2 / 3, 1.0), ((0, 0, 0), (255, 0, 0), (255, 255, 0), (255, 255, 255))),
        False,
    ),
}


def _lookup(cmap: str) -> tuple[Callable[[np.ndarray], np.ndarray], bool]:
    """Return the colormap called ``cmap`` (positions in [0, 1] -> uint8 RGB) and its default ``signed``."""
    if not isinstance(cmap, str):
        raise TypeError(f"cmap must be a colormap name (str), got {type(cmap).__name__}")
    if cmap in _BUILTIN:
        return _BUILTIN[cmap]
    if cmap not in matplotlib.colormaps:
        raise ValueError(
            f"unknown colormap {cmap!r}: use one of the built-in maps {sorted(_BUILTIN)} "
            "or the name of a matplotlib colormap (see matplotlib.colormaps)"
        )
    matplotlib_map = matplotlib.colormaps[cmap]
    return (lambda positions: matplotlib_map(positions, bytes=True)[..., :3]), True


def normalize(relevance: np.ndarray, signed: bool, clip_percentile: float | None = None) -> np.ndarray:
    r"""Scale one heatmap by its own maximum (or a percentile) of the relevance shown.

    .. math::

        v = \operatorname{clip}(R / s, -1, 1) \quad \text{(signed)}, \qquad
        v = \operatorname{clip}(\max(R, 0) / s, 0, 1) \quad \text{(heat only)},

    where :math:`s` is the maximum (or the ``clip_percentile``-th percentile) of :math:`|R|` (signed) or of
    :math:`\max(R, 0)` (heat only) over all entries of ``relevance``. Where :math:`s = 0` the limit
    :math:`v = \operatorname{sign}(R)` is used (zero for an all-zero heatmap).

    Parameters
    ----------
    relevance : numpy.ndarray
        One heatmap (any shape), finite values; statistics are taken over all of its entries.
    signed : bool
        Keep the sign (result in [-1, 1]) or show positive relevance only (result in [0, 1]).
    clip_percentile : float, optional
        Percentile in (0, 100] used as :math:`s` instead of the maximum; larger values saturate.

    Returns
    -------
    numpy.ndarray
        The normalized relevance, same shape as ``relevance``.
    """
    if clip_percentile is not None and not 0 < clip_percentile <= 100:
        raise ValueError(f"clip_percentile must lie in (0, 100], got {clip_percentile}")
    shown = relevance if signed else np.maximum(relevance, 0.0)
    magnitude = np.abs(shown)
    scale = magnitude.max() if clip_percentile is None else np.percentile(magnitude, clip_percentile)
    if scale == 0:
        return np.sign(shown)
    return np.clip(shown / scale, -1.0, 1.0)


def colorize(
    relevance: torch.Tensor | ArrayLike,
    cmap: str = "bwr",
    signed: bool | None = None,
    clip_percentile: float | None = None,
) -> np.ndarray:
    r"""Map the relevance of one heatmap (any shape) to RGB colours.

    Signed relevance is normalized to :math:`v \in [-1, 1]` and drawn at colormap position
    :math:`(1 + v) / 2`, so zero sits at the centre of the map (exactly white in ``'bwr'``) and the largest
    :math:`|R|` at its ends; heat-only relevance is normalized to :math:`v \in [0, 1]` and drawn at
    position :math:`v`. See :func:`normalize`.

    Parameters
    ----------
    relevance : torch.Tensor or array_like
        Relevance of one heatmap or one text; normalized over all of its entries.
    cmap : str, default 'bwr'
        ``'bwr'``, ``'hot'`` or the name of a matplotlib colormap.
    signed : bool, optional
        Show signed relevance (True) or positive relevance only (False). Default: False for ``'hot'``,
        True for every other map.
    clip_percentile : float, optional
        Normalize by this percentile of the magnitudes instead of their maximum, e.g. 99.5.

    Returns
    -------
    numpy.ndarray
        uint8 array shaped ``relevance.shape + (3,)``.
    """
    colormap, default_signed = _lookup(cmap)
    values = as_float_array(relevance, "relevance")
    signed = default_signed if signed is None else signed
    normalized = normalize(values, signed, clip_percentile)
    return colormap((normalized + 1.0) / 2.0 if signed else normalized)
