r"""One-class models with a Gaussian kernel as a distance layer and a soft min-pool (OC-DTD).

For support vectors :math:`u_j` with weights :math:`\alpha_j > 0` and bandwidth :math:`\gamma` the
outlier score is

.. math::

    o(x) = -\tfrac{1}{\gamma} \log \sum_j \alpha_j e^{-\gamma \|x - u_j\|^2}
         = \operatorname{smin}^\gamma_j\, h_j(x),\qquad
    h_j(x) = \|x - u_j\|^2 + \tfrac{1}{\gamma}\log\tfrac{1}{\alpha_j},

large for outliers (Kauffmann, Müller, Montavon, "Towards explaining anomalies: a deep Taylor
decomposition of one-class models", Pattern Recognition 2020). With weights summing to one (as in
Schölkopf's formulation of the one-class SVM) every unit satisfies :math:`h_j \ge 0`, so
:math:`o(x) \ge 0` and all relevance is non-negative. With uniform weights :math:`\alpha_j = 1/n`
the score is the log-mean-exp (kernel density) form.

For a fitted ``sklearn.svm.OneClassSVM`` (RBF kernel), whose dual coefficients sum to
:math:`\nu n` (libsvm's scaling), :func:`neuralize_one_class_svm` divides them by their sum
:math:`A`; since :math:`\sum_j A\alpha_j k(x, u_j)` is ``score_samples(x)``,

.. math:: o(x) = -\tfrac{1}{\gamma} \log \frac{\text{decision\_function}(x) + \text{offset\_}}{A},

a strictly decreasing function of the SVM's decision function (``predict`` flags x as an outlier
exactly when :math:`o(x) > -\gamma^{-1}\log(\text{offset\_} / A)`).
"""

from __future__ import annotations

import torch
from sklearn.svm import OneClassSVM

from relprop.checks import check_number
from relprop.rules import divide

from ._checks import as_float_tensor, check_fitted_estimator, check_rbf_kernel
from .explainer import NeuralizedModel


class NeuralizedOneClassSVM(NeuralizedModel):
    """Outlier score of a Gaussian-kernel one-class model, one output (B, 1).

    Parameters
    ----------
    support : array-like (n, D)
        Support vectors :math:`u_j`.
    weights : array-like (n,)
        Their weights :math:`\\alpha_j > 0` (the dual coefficients).
    gamma : float
        Kernel bandwidth, > 0.
    """

    def __init__(self, support: object, weights: object, gamma: float) -> None:
        super().__init__()
        support = as_float_tensor(support, "NeuralizedOneClassSVM: support", ndim=2)
        weights = as_float_tensor(weights, "NeuralizedOneClassSVM: weights", ndim=1)
        if weights.shape != support.shape[:1] or not (weights > 0).all():
            raise ValueError(
                f"NeuralizedOneClassSVM: weights must be {support.shape[0]} positive numbers, one per "
                f"support vector, got shape {tuple(weights.shape)}"
            )
        check_number(gamma, "NeuralizedOneClassSVM: gamma", strict=True)
        self.n_features = support.shape[1]
        self.gamma = float(gamma)
        self.register_buffer("support", support)
        self.register_buffer("log_weights", weights.log())

    def units(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-dimension squared differences (B, n, D) and the distance-layer units h_j (B, n)."""
        per_dim = (x[:, None, :] - self.support.to(x)) ** 2
        return per_dim, per_dim.sum(dim=2) - self.log_weights.to(x) / self.gamma

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Outlier score o(x) as a (B, 1) tensor."""
        _, h = self.units(x)
        return -torch.logsumexp(-self.gamma * h, dim=1, keepdim=True) / self.gamma

    def relevance(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        r"""Relevance (B, D) of ``weights * o(x)`` by the one-class deep Taylor rules.

        Soft min-pool: each support vector receives its share of the kernel expansion,
        :math:`R_j = \frac{\alpha_j k(x, u_j)}{\sum_{j'} \alpha_{j'} k(x, u_{j'})}\, o(x)`.
        Distance layer: :math:`R_d = \sum_j \frac{(x_d - u_{jd})^2}{\|x - u_j\|^2} R_j`; the constant
        :math:`\gamma^{-1}\log(1/\alpha_j)` is absorbed in proportion, so :math:`\sum_d R_d = o(x)`
        exactly, except where x coincides with a support vector j of non-zero share: that
        distance unit is zero and its relevance :math:`R_j` is lost.
        """
        per_dim, h = self.units(x)
        score = -torch.logsumexp(-self.gamma * h, dim=1, keepdim=True) / self.gamma
        pooled = torch.softmax(-self.gamma * h, dim=1) * score
        return weights * torch.einsum("bjd,bj->bd", per_dim, divide(pooled, per_dim.sum(dim=2)))


def neuralize_one_class_svm(estimator: OneClassSVM) -> NeuralizedOneClassSVM:
    """Neuralize a fitted ``sklearn.svm.OneClassSVM`` with the RBF kernel, weights normalised to sum 1.

    ``model(x)[:, 0] == -log((estimator.decision_function(x) + estimator.offset_) / A) / gamma`` with
    ``A = estimator.dual_coef_.sum()`` and gamma the fitted bandwidth (``'scale'``/``'auto'`` resolved).
    """
    check_fitted_estimator(estimator, (OneClassSVM,), "neuralize_one_class_svm")
    gamma = check_rbf_kernel(estimator, "neuralize_one_class_svm")
    weights = estimator.dual_coef_[0]
    return NeuralizedOneClassSVM(estimator.support_vectors_, weights / weights.sum(), gamma)
