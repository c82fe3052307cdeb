"""Integrated gradients: the gradient averaged along a straight path from a baseline to the input."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from relprop.checks import check_int
from relprop.methods._common import Method, baseline_like, chunks, gradient, per_forward, tile, weights_at
from relprop.targets import Target

METHODS = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


def path_points(steps: int, method: str) -> tuple[list[float], list[float]]:
    r"""Points :math:`\alpha_k` in :math:`[0, 1]` and their weights :math:`w_k` (summing to one) of the rule
    :math:`\int_0^1 g(\alpha)\,d\alpha \approx \sum_k w_k\, g(\alpha_k)`.

    ``riemann_left``: :math:`\alpha_k = k/n`, ``riemann_right``: :math:`(k+1)/n`, ``riemann_middle``:
    :math:`(k+\frac12)/n`, all with :math:`w_k = 1/n`, :math:`k = 0, \dots, n-1`; ``riemann_trapezoid``:
    :math:`\alpha_k = k/(n-1)` with :math:`w_k = 1/(n-1)`, halved at both ends.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    n = steps
    if method == "riemann_trapezoid":
        if n < 2:
            raise ValueError(f"the trapezoid rule needs steps >= 2, got {n}")
        weights = [1.0 / (n - 1)] * n
        weights[0] = weights[-1] = 0.5 / (n - 1)
        return [k / (n - 1) for k in range(n)], weights
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
    return [(k + offset) / n for k in range(n)], [1.0 / n] * n


class IntegratedGradients(Method):
    r"""Integrated gradients (Sundararajan et al. 2017).

    .. math:: R_i = (x_i - \bar x_i) \int_0^1
              \frac{\partial f}{\partial x_i}\big(\bar x + \alpha (x - \bar x)\big)\, d\alpha
              \approx (x_i - \bar x_i) \sum_k w_k\,
              \frac{\partial f}{\partial x_i}\big(\bar x + \alpha_k (x - \bar x)\big)

    with the points and weights of :func:`path_points`. The attribution is complete up to the
    discretization error: :math:`\sum_i R_i \approx f(x) - f(\bar x)`, and the error shrinks as ``steps``
    grows. The output to explain is chosen once, on ``x``, and kept along the path.

    Parameters
    ----------
    model:
        The model, in evaluation mode.
    baseline:
        The reference input :math:`\bar x`: a scalar, or a tensor shaped like one sample.
    steps:
        Number of points :math:`n` on the path.
    method:
        The quadrature rule: ``"riemann_trapezoid"`` (default), ``"riemann_left"``, ``"riemann_right"`` or
        ``"riemann_middle"``. The trapezoid weights sum to one here; Captum's (0.9) sum to :math:`1 - 1/n`,
        so Captum's trapezoid attributions are :math:`(n-1)/n` times these.
    batch_size:
        At most this many path points (counting every sample of the batch) go through the model at once,
        but at least one copy of the batch; this bounds memory, not the result.
    """

    def __init__(
        self,
        model: nn.Module,
        baseline: float | Tensor = 0.0,
        steps: int = 32,
        method: str = "riemann_trapezoid",
        batch_size: int = 256,
    ) -> None:
        super().__init__(model)
        self.baseline = baseline
        self.steps = check_int(steps, "steps")
        self.method = method
        self.batch_size = check_int(batch_size, "batch_size")
        path_points(self.steps, method)  # check the pair now

    def _attribute(self, x: Tensor, target: Target) -> Tensor:
        baseline = baseline_like(self.baseline, x, "baseline")
        weights = weights_at(self.model, x, target)
        alphas, step_weights = path_points(self.steps, self.method)
        shape = (-1,) + (1,) * x.dim()
        average = torch.zeros_like(x)
        for part in chunks(self.steps, per_forward(self.batch_size, x.shape[0])):
            alpha = torch.tensor([alphas[k] for k in part], dtype=x.dtype, device=x.device).view(shape)
            step = torch.tensor([step_weights[k] for k in part], dtype=x.dtype, device=x.device).view(shape)
            points = baseline + alpha * (x - baseline)
            grads = gradient(self.model, points.flatten(0, 1), tile(weights, len(part)))
            average += (step * grads.view(len(part), *x.shape)).sum(dim=0)
        return (x - baseline) * average
