"""Relevance redistribution helpers: shares of soft min-pools and division by unit values."""

from __future__ import annotations

import math

import torch


def softmin_shares(values: torch.Tensor, beta: float, dim: int = -1) -> torch.Tensor:
    r"""Shares of a min-pool's relevance given to each pooled input.

    .. math:: p_k = \frac{e^{-\beta v_k}}{\sum_{k'} e^{-\beta v_{k'}}}

    The shares are non-negative and sum to one along ``dim``. Large ``beta`` (stiffness) gives the
    winner-take-all rule of a hard min; ``beta = math.inf`` is that limit, splitting ties equally;
    ``beta = 0`` splits uniformly.

    Parameters
    ----------
    values : torch.Tensor
        Inputs of the min-pool.
    beta : float
        Stiffness, ``0 <= beta <= inf``.
    dim : int
        Pooled dimension.
    """
    check_stiffness(beta, "beta")
    if math.isinf(beta):
        winners = values == values.amin(dim=dim, keepdim=True)
        return winners.to(values) / winners.sum(dim=dim, keepdim=True)
    # softmax subtracts the maximum of -beta * v, i.e. works relative to the minimum: no overflow.
    return torch.softmax(-beta * values, dim=dim)


def check_stiffness(beta: float, name: str) -> None:
    """Raise unless ``beta`` is a real number in [0, inf]."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(beta).__name__}")
    if math.isnan(beta) or beta < 0:
        raise ValueError(f"{name} must be a number in [0, inf], got {beta}")
