"""Completeness (conservation) of an attribution: does the relevance sum to the explained output?"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from relprop.checks import check_finite
from relprop.evaluate._common import Target, explained_output, target_weights


def conservation_error(model: nn.Module, x: Tensor, attribution: Tensor, target: Target = None) -> Tensor:
    r"""Relative conservation error of each sample,

    .. math::

        \varepsilon_b = \frac{\big|\sum_i R_{b,i} - f(x_b)\big|}{|f(x_b)|},

    where :math:`f(x_b)` is the explained output (the target logit, or the target weighting of the output).
    LRP-0 on a bias-free ReLU network conserves exactly (:math:`\varepsilon = 0`); biases and stabilizers
    absorb relevance. A sample with :math:`f(x_b) = 0` gives infinity (or NaN if the sum is 0 too).

    Parameters
    ----------
    model
        Maps ``x`` to outputs (B, K). It runs under ``torch.no_grad()``.
    x
        Inputs (B, ...), any shape.
    attribution
        Shaped like ``x``.
    target
        None (predicted class), an int, a LongTensor (B,), or a float tensor (B, K) weighting the outputs,
        as for the explainers.

    Returns
    -------
    Tensor
        The relative errors, shaped (B,), in the dtype of the model output.
    """
    check_finite(x, "x")
    check_finite(attribution, "attribution")
    if attribution.shape != x.shape:
        raise ValueError(
            f"attribution must be shaped like x {tuple(x.shape)}, got {tuple(attribution.shape)}"
        )
    with torch.no_grad():
        output = model(x)
    explained = explained_output(output, target_weights(output, target))
    total = attribution.flatten(1).sum(dim=1).to(explained.dtype)
    return (total - explained).abs() / explained.abs()
