"""Input checks shared by the neuralized models: flattening, target weights, fitted estimators."""

from __future__ import annotations

import math

import torch
from sklearn.utils.validation import check_is_fitted

from relprop.checks import check_finite


def flatten_input(x: torch.Tensor, n_features: int, where: str) -> torch.Tensor:
    """Return ``x`` of shape (B, ...) as (B, D), checking type, size and finiteness.

    Parameters
    ----------
    x : torch.Tensor
        Floating-point batch, e.g. (B, D) or (B, C, H, W).
    n_features : int
        Number of features D the model expects; ``prod(x.shape[1:])`` must equal it.
    where : str
        Name of the caller, used in error messages.
    """
    check_finite(x, f"{where}: x")
    if x.ndim < 2:
        raise ValueError(
            f"{where}: x must have a batch dimension, shape (B, ...), got shape {tuple(x.shape)}"
        )
    per_sample = math.prod(x.shape[1:])
    if per_sample != n_features:
        raise ValueError(
            f"{where}: each sample of x has {per_sample} values (shape {tuple(x.shape)}), "
            f"but the model has {n_features} features"
        )
    return x.reshape(x.shape[0], n_features)


def check_fitted_estimator(estimator: object, kinds: tuple[type, ...], where: str) -> None:
    """TypeError unless ``estimator`` is one of ``kinds``; NotFittedError (a ValueError) unless fitted."""
    if not isinstance(estimator, kinds):
        names = ", ".join(kind.__name__ for kind in kinds)
        raise TypeError(f"{where}: expected a fitted {names}, got {type(estimator).__name__}")
    check_is_fitted(estimator)


def check_rbf_kernel(estimator: object, where: str) -> float:
    """Return the fitted RBF bandwidth of a scikit-learn SVM, or raise ValueError naming its kernel."""
    kernel = estimator.kernel
    if kernel != "rbf":
        raise ValueError(
            f"{where}: only the 'rbf' kernel can be neuralized, {type(estimator).__name__} has {kernel!r}"
        )
    # ``_gamma`` holds the numeric bandwidth after 'scale'/'auto' were resolved during fit.
    return float(estimator._gamma)


def as_float_tensor(values: object, name: str, ndim: int) -> torch.Tensor:
    """Convert array-like ``values`` to a finite float64 tensor with ``ndim`` dimensions."""
    tensor = torch.as_tensor(values, dtype=torch.float64)
    if tensor.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(tensor.shape)}")
    check_finite(tensor, name)
    return tensor.clone()
