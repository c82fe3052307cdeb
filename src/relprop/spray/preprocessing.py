"""Step 1 of SpRAy: bring heatmaps to a small common size and a common scale.

``preprocess_heatmaps`` chains ``as_heatmap_array`` (channel sum), an optional absolute value,
``sum_pool`` and ``normalize``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

Norm = Literal["l1", "l2", "max"]


def as_heatmap_array(heatmaps: np.ndarray | torch.Tensor) -> np.ndarray:
    """Convert heatmaps of shape (N, H, W) or (N, C, H, W) to a float array (N, H, W).

    Channels are summed, :math:`R_{n,h,w}=\\sum_c R_{n,c,h,w}`. Float32 (and smaller) inputs stay
    float32, everything else becomes float64.

    Raises
    ------
    ValueError
        If the input is empty, has the wrong number of dimensions, or holds NaN or infinite values.
    """
    if isinstance(heatmaps, torch.Tensor):
        heatmaps = heatmaps.detach().cpu().numpy()
    array = np.asarray(heatmaps)
    if array.ndim not in (3, 4):
        raise ValueError(f"heatmaps must have shape (N, H, W) or (N, C, H, W), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"heatmaps is empty (shape {array.shape})")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"heatmaps must be numeric, got dtype {array.dtype}")
    array = array.astype(np.result_type(array.dtype, np.float32), copy=False)
    if array.ndim == 4:
        array = array.sum(axis=1)
    finite = np.isfinite(array).reshape(len(array), -1).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"heatmaps contain NaN or infinite values in {len(bad)} sample(s), "
            f"first indices {bad[:5].tolist()}"
        )
    return array


def _pool_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Overlap of input pixel ``j`` (the interval [j, j+1)) with output cell ``i``.

    Output cell ``i`` covers [i n_in / n_out, (i + 1) n_in / n_out) in input coordinates; every
    column sums to one, so multiplying by this matrix preserves the total.
    """
    edges = np.arange(n_out + 1) * (n_in / n_out)
    pixels = np.arange(n_in)
    low = np.maximum(edges[:-1, None], pixels[None, :])
    high = np.minimum(edges[1:, None], pixels[None, :] + 1)
    return np.clip(high - low, 0.0, None)


def sum_pool(heatmaps: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Adaptive sum pooling of (N, H, W) heatmaps to (N, h, w), preserving each heatmap's total.

    Output cell :math:`(i, j)` receives :math:`\\sum_{y,x} a_{iy}\\,b_{jx}\\,R_{yx}`, where
    :math:`a_{iy}` is the length of the overlap of input row :math:`[y, y+1)` with the output row's
    interval :math:`[iH/h, (i+1)H/h)` (and likewise :math:`b` for columns). If ``h`` divides ``H``
    this is the plain block sum; otherwise pixels on a cell border are split in proportion to the
    overlap. Because every input pixel's weights sum to one, :math:`\\sum R` is preserved exactly.

    Parameters
    ----------
    heatmaps
        Array of shape (N, H, W).
    size
        Target size ``h`` (square) or ``(h, w)``; must not exceed the input size.
    """
    target = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(target) != 2 or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in target):
        raise ValueError(f"size must be a positive int or a pair of positive ints, got {size!r}")
    height, width = heatmaps.shape[-2:]
    if target[0] > height or target[1] > width:
        raise ValueError(f"sum pooling cannot enlarge heatmaps of size {(height, width)} to {target}")
    if target == (height, width):
        return heatmaps
    rows = _pool_matrix(height, target[0]).astype(heatmaps.dtype)
    cols = _pool_matrix(width, target[1]).astype(heatmaps.dtype)
    return rows @ heatmaps @ cols.T


def normalize(heatmaps: np.ndarray, norm: Norm | None = "l2", eps: float = 1e-6) -> np.ndarray:
    """Divide every heatmap by a norm, floored so that near-zero heatmaps cannot blow up.

    .. math:: \\tilde R_n = R_n / \\max(\\|R_n\\|, \\varepsilon \\max_m \\|R_m\\|)

    with :math:`\\|\\cdot\\|` the L1 norm (``"l1"``, for non-negative heatmaps the total relevance),
    the L2 norm (``"l2"``; Euclidean distances then are chordal cosine distances) or the largest
    absolute value (``"max"``). Every output has norm at most one; a heatmap whose norm is below
    the floor (e.g. an all-zero one) is scaled by the same finite factor as the floor. The signed
    total :math:`\\sum R_n` is deliberately not offered as a divisor: it can be zero for heatmaps
    with cancelling positive and negative relevance. All-zero input stays zero. ``norm=None``
    returns the heatmaps unchanged.
    """
    if norm is None:
        return heatmaps
    flat = heatmaps.reshape(len(heatmaps), -1)
    if norm == "l1":
        norms = np.abs(flat).sum(axis=1)
    elif norm == "l2":
        norms = np.sqrt(np.einsum("ij,ij->i", flat, flat))
    elif norm == "max":
        norms = np.abs(flat).max(axis=1)
    else:
        raise ValueError(f"norm must be 'l1', 'l2', 'max' or None, got {norm!r}")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    divisor = np.maximum(norms, eps * norms.max())
    divisor[divisor == 0] = 1.0
    return heatmaps / divisor.reshape(-1, *([1] * (heatmaps.ndim - 1))).astype(heatmaps.dtype)


def preprocess_heatmaps(
    heatmaps: np.ndarray | torch.Tensor,
    size: int | tuple[int, int] | None = 32,
    absolute: bool = False,
    norm: Norm | None = "l2",
    eps: float = 1e-6,
) -> np.ndarray:
    """Channel sum, optional absolute value, sum pooling to ``size`` and normalization.

    Parameters
    ----------
    heatmaps
        Heatmaps of one class, shape (N, H, W) or (N, C, H, W), numpy or torch.
    size
        Pooling target (see :func:`sum_pool`); None keeps the input size.
    absolute
        Take :math:`|R|` after the channel sum and before pooling (pooling then sums magnitudes).
    norm, eps
        See :func:`normalize`.

    Returns
    -------
    numpy.ndarray
        Array of shape (N, h, w).
    """
    array = as_heatmap_array(heatmaps)
    if absolute:
        array = np.abs(array)
    if size is not None:
        array = sum_pool(array, size)
    return normalize(array, norm=norm, eps=eps)
