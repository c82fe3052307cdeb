"""Conversion and validation of the relevance arrays that the renderers accept."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike


def as_float_array(values: torch.Tensor | ArrayLike, name: str) -> np.ndarray:
    """Return relevance values as a finite, non-empty float64 numpy array.

    Parameters
    ----------
    values : torch.Tensor or array_like
        Real numbers: a tensor on any device, a numpy array or a (nested) sequence.
    name : str
        Name of the argument, used in error messages.

    Returns
    -------
    numpy.ndarray
        A float64 copy of ``values`` with the same shape.

    Raises
    ------
    TypeError
        If the values are not real numbers (bool, complex, strings, ...).
    ValueError
        If the array is empty or holds NaN or infinite values (the message gives the first index).
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        if values.is_floating_point():  # float16 and bfloat16 have no numpy counterpart we can rely on
            values = values.to(torch.float64)
        values = values.numpy()
    array = np.asarray(values)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    array = array.astype(np.float64)
    not_finite = ~np.isfinite(array)
    if not_finite.any():
        first = tuple(int(index) for index in np.argwhere(not_finite)[0])
        raise ValueError(
            f"{name} contains {int(not_finite.sum())} NaN or infinite value(s), the first at index {first}"
        )
    return array
