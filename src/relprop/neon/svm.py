r"""Binary RBF-kernel SVM classifiers explained by a Taylor decomposition at a root point.

The decision function of a fitted ``sklearn.svm.SVC``/``NuSVC`` (two classes, RBF kernel) is

.. math:: f(x) = \sum_j a_j\, e^{-\gamma \|x - u_j\|^2} + b

with ``a = dual_coef_[0]``, ``u = support_vectors_``, ``b = intercept_[0]``; :math:`f > 0` predicts
``classes_[1]``. Following Bach et al. 2015 ("On pixel-wise explanations for non-linear classifier
decisions by layer-wise relevance propagation", PLoS ONE, Taylor-type decomposition), the relevance is
the first-order Taylor expansion of f at a root point :math:`\tilde x` on the decision boundary,

.. math:: R_d = \frac{\partial f}{\partial x_d}(\tilde x)\,(x_d - \tilde x_d),\qquad f(\tilde x) = 0,

with :math:`\tilde x` found by bisection on the segment from x to the nearest support vector whose
decision value has the opposite sign. :math:`\sum_d R_d = f(x) - r(x)`, where r is the Taylor
remainder of order two; conservation is exact only where f is linear along the segment.
"""

from __future__ import annotations

import math

import torch
from sklearn.svm import SVC, NuSVC

from ._checks import as_float_tensor, check_fitted_estimator, check_rbf_kernel
from .explainer import NeuralizedModel

# Bisection steps for the root point: the segment shrinks by 2**-60, below float64 resolution.
BISECTION_STEPS = 60


class NeuralizedSVC(NeuralizedModel):
    """Binary RBF-kernel SVM with outputs (B, 2) ``(-f(x), f(x))``, so argmax is the predicted class.

    Parameters
    ----------
    support : array-like (n, D)
        Support vectors :math:`u_j`.
    dual_coef : array-like (n,)
        Signed dual coefficients :math:`a_j` (``dual_coef_[0]`` in scikit-learn).
    intercept : float
        Bias b.
    gamma : float
        Kernel bandwidth, > 0.
    """

    def __init__(self, support: object, dual_coef: object, intercept: float, gamma: float) -> None:
        super().__init__()
        support = as_float_tensor(support, "NeuralizedSVC: support", ndim=2)
        dual_coef = as_float_tensor(dual_coef, "NeuralizedSVC: dual_coef", ndim=1)
        if dual_coef.shape != support.shape[:1]:
            raise ValueError(
                f"NeuralizedSVC: need one dual coefficient per support vector, got {tuple(dual_coef.shape)}"
            )
        if not math.isfinite(intercept) or isinstance(gamma, bool) or not 0 < gamma < math.inf:
            raise ValueError(
                f"NeuralizedSVC: need a finite intercept and gamma > 0, got {intercept!r}, {gamma!r}"
            )
        self.n_features = support.shape[1]
        self.gamma = float(gamma)
        self.intercept = float(intercept)
        self.register_buffer("support", support)
        self.register_buffer("dual_coef", dual_coef)
        self.register_buffer("support_decision", self.decision(support))

    def decision(self, x: torch.Tensor) -> torch.Tensor:
        """Decision function f (B,) of flattened x (B, D), equal to scikit-learn's ``decision_function``."""
        kernel = torch.exp(-self.gamma * self.squared_distances(x))
        return kernel @ self.dual_coef.to(x) + self.intercept

    def squared_distances(self, x: torch.Tensor) -> torch.Tensor:
        """Squared distances (B, n) from flattened x (B, D) to the support vectors."""
        return ((x[:, None, :] - self.support.to(x)) ** 2).sum(dim=2)

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla f(x) = -2\gamma \sum_j a_j k(x, u_j)(x - u_j)`, shape (B, D)."""
        difference = x[:, None, :] - self.support.to(x)
        kernel = torch.exp(-self.gamma * (difference**2).sum(dim=2))
        return -2 * self.gamma * torch.einsum("bj,bjd->bd", kernel * self.dual_coef.to(x), difference)

    def root_point(self, x: torch.Tensor) -> torch.Tensor:
        """A point with f = 0 on the segment from each x to the nearest opposite-sign support vector.

        Samples with f(x) = 0 are their own root point. Raises ValueError for a sample with no support
        vector on the other side of the decision boundary.
        """
        f = self.decision(x)
        opposite = f[:, None] * self.support_decision.to(x) < 0
        if not (opposite.any(dim=1) | (f == 0)).all():
            bad = torch.nonzero(~opposite.any(dim=1) & (f != 0)).flatten().tolist()
            raise ValueError(
                f"NeuralizedSVC: no support vector lies across the decision boundary from samples {bad}"
            )
        distances = self.squared_distances(x).masked_fill(~opposite, math.inf)
        reference = torch.where((f == 0)[:, None], x, self.support.to(x)[distances.argmin(dim=1)])
        near, far = torch.zeros_like(f), torch.ones_like(f)
        for _ in range(BISECTION_STEPS):
            middle = (near + far) / 2
            same_side = self.decision(x + middle[:, None] * (reference - x)) * f > 0
            near, far = torch.where(same_side, middle, near), torch.where(same_side, far, middle)
        return x + far[:, None] * (reference - x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(-f(x), f(x))`` as (B, 2)."""
        f = self.decision(x)
        return torch.stack([-f, f], dim=1)

    def relevance(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        r"""Relevance (B, D) of :math:`w_1 f(x) - w_0 f(x)`: the Taylor terms at the root point."""
        root = self.root_point(x)
        return (weights[:, 1] - weights[:, 0])[:, None] * self.gradient(root) * (x - root)


def neuralize_svc(estimator: SVC | NuSVC) -> NeuralizedSVC:
    """Neuralize a fitted binary ``SVC``/``NuSVC`` with the RBF kernel.

    ``model(x)[:, 1] == estimator.decision_function(x)`` and ``model(x).argmax(1)`` indexes
    ``estimator.classes_`` as ``predict`` does.
    """
    check_fitted_estimator(estimator, (SVC, NuSVC), "neuralize_svc")
    gamma = check_rbf_kernel(estimator, "neuralize_svc")
    if len(estimator.classes_) != 2:
        raise ValueError(
            f"neuralize_svc: only binary classifiers are supported, got {len(estimator.classes_)} classes"
        )
    return NeuralizedSVC(
        estimator.support_vectors_, estimator.dual_coef_[0], float(estimator.intercept_[0]), gamma
    )
