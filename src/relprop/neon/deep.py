r"""Deep k-means: k-means on the features of a network, explained end to end (NEON head + LRP body).

For a feature network :math:`\phi` and centroids :math:`\mu_1, \dots, \mu_K` in feature space the
logit of cluster :math:`c` is the k-means logit of :class:`~relprop.neon.NeuralizedKMeans` on the
features,

.. math::

    f_c(x) = \min_{k \ne c} \big\{ \|\phi(x) - \mu_k\|^2 - \|\phi(x) - \mu_c\|^2 \big\},

positive exactly when :math:`\phi(x)` is strictly closer to :math:`\mu_c` than to every other
centroid. Its relevance is first computed on the features by the NEON rules (softmin min-pool,
midpoint rule), then propagated through :math:`\phi` to the input by :class:`relprop.LRP`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
from sklearn.cluster import KMeans, MiniBatchKMeans
from torch import Tensor, nn

from relprop.canonizers import Canonizer
from relprop.checks import check_finite
from relprop.composites import Composite, Uniform
from relprop.lrp import LRP
from relprop.rules import Epsilon
from relprop.targets import Target, target_weights

from .kmeans import NeuralizedKMeans, neuralize_kmeans
from .pooling import check_stiffness


class DeepKMeans:
    r"""Explain the cluster assignment of k-means fitted on the features of a PyTorch network.

    ``DeepKMeans(features, kmeans, composite, beta)(x, target)`` returns the relevance of the logit
    :math:`f_c(x)` of cluster ``target`` (None: the assigned cluster of each sample), shaped like ``x``.

    Parameters
    ----------
    features : torch.nn.Module
        The feature network :math:`\phi`, in evaluation mode and traceable by :class:`relprop.LRP`;
        it returns one tensor (B, ...) with D values per sample.
    kmeans : NeuralizedKMeans, KMeans, MiniBatchKMeans or array-like of shape (K, D)
        The clustering of the features: a neuralized head, a fitted scikit-learn estimator or the
        centroids (see :func:`~relprop.neon.neuralize_kmeans`).
    composite : relprop.composites.Composite, optional
        The LRP rules for the feature network. Default: ``Uniform(rules.Epsilon())``, which passes
        signed relevance on faithfully (see Notes). Any composite is accepted.
    beta : float
        Stiffness of the min-pool over competitors, in [0, inf] (units of 1 / squared feature
        distance); ``1 / mean logit`` over the data is a good start.
    canonizers : iterable of relprop.canonizers.Canonizer, optional
        Passed to :class:`relprop.LRP` (default: fold batch normalizations).

    Attributes
    ----------
    head : NeuralizedKMeans
        The neuralized k-means on the features.
    lrp : relprop.LRP
        The explainer of the feature network.

    Notes
    -----
    The explanation has two stages. The NEON rules give the relevance of feature :math:`j`,

    .. math::

        R_j = \sum_{k \ne c} \frac{w_{ck,j}\,(\phi_j - m_{ck,j})}{h_{ck}}\,
              \frac{e^{-\beta h_{ck}}}{\sum_{k' \ne c} e^{-\beta h_{ck'}}}\, f_c(x),
        \qquad w_{ck} = 2(\mu_c - \mu_k),\; m_{ck} = \tfrac12(\mu_c + \mu_k),

    with :math:`h_{ck} = \|\phi - \mu_k\|^2 - \|\phi - \mu_c\|^2` and :math:`\sum_j R_j = f_c(x)`
    exactly. Then ``LRP(features, composite).propagate(x, R)`` brings :math:`R` to the input, and
    :math:`\sum_i R_i = f_c(x)` minus what the network's biases and stabilizers absorb (nothing for a
    bias-free network under ``rules.LRP0()``, or under any rule with ``redistribute=True``).

    The feature relevance is *signed*: a feature on the far side of the midpoint :math:`m_{ck}`
    argues for cluster :math:`k` and receives negative relevance, whatever the sign of the feature
    value. Rules derived for positive relevance proportional to a positive activation, such as
    :math:`z^+` (``rules.ZPlus``, and the composites built on it, e.g. ``EpsilonPlusFlat``) or
    :math:`\alpha\beta`, are therefore inappropriate: they send each feature's relevance only along
    the contributions that *raise* the feature, so when a feature argues for the cluster because it
    is *low*, the credit goes to the inputs that pushed it up. For example, with centroids
    :math:`\mu_c = (0, 2)`, :math:`\mu_k = (2, 0)`, features :math:`\phi(x) = (x_1 - x_2, x_2)` and
    :math:`x = (1, 2)`, the features :math:`(-1, 2)` receive :math:`R = (8, 4)`; :math:`\phi_1` is
    relevant because it is low, yet :math:`z^+` gives :math:`(8, 4)`, crediting :math:`x_1`, which
    raises :math:`\phi_1`, while LRP-:math:`\epsilon` gives :math:`(-8, 20)`. LRP-:math:`\epsilon`
    (gradient times input on bias-free ReLU networks) explains both directions of a feature's
    deviation.

    Examples
    --------
    >>> features.eval()
    >>> phi = features(x_train).flatten(1).numpy()
    >>> kmeans = KMeans(n_clusters=10, n_init=10).fit(phi)
    >>> explainer = DeepKMeans(features, kmeans, beta=1.0)
    >>> relevance = explainer(x)            # assigned cluster of each sample, shaped like x
    >>> relevance = explainer(x, target=3)  # membership of cluster 3 (negative if not assigned)
    """

    def __init__(
        self,
        features: nn.Module,
        kmeans: NeuralizedKMeans | KMeans | MiniBatchKMeans | np.ndarray | Tensor,
        composite: Composite | None = None,
        beta: float = 1.0,
        canonizers: Iterable[Canonizer] | None = None,
    ) -> None:
        if not isinstance(features, nn.Module):
            raise TypeError(f"DeepKMeans: features must be a torch.nn.Module, got {type(features).__name__}")
        if composite is not None and not isinstance(composite, Composite):
            raise TypeError(
                f"DeepKMeans: composite must be a relprop Composite or None, got {type(composite).__name__}"
            )
        check_stiffness(beta, "DeepKMeans: beta")
        self.features = features
        self.head = kmeans if isinstance(kmeans, NeuralizedKMeans) else neuralize_kmeans(kmeans)
        self.composite = Uniform(Epsilon()) if composite is None else composite
        self.beta = beta
        self.lrp = LRP(features, self.composite, canonizers)

    def logits(self, x: Tensor) -> Tensor:
        """Cluster logits :math:`f_c(x)` (B, K) of input x (B, ...)."""
        _check_input(x)
        with torch.no_grad():
            return self.head.logits(self._flat_features(self.features(x)))

    def assign(self, x: Tensor) -> Tensor:
        """Cluster index of each sample (B,): the nearest centroid to its features."""
        return self.logits(x).argmax(dim=1)

    def __call__(self, x: Tensor, target: Target = None) -> Tensor:
        """Relevance of the logit of ``target`` for each input element; shaped like ``x``.

        ``target`` is None (the assigned cluster of each sample), an int cluster, a LongTensor of
        shape (B,), or a float tensor shaped like :meth:`logits` that weights the cluster logits.
        """
        _check_input(x)

        def feature_relevance(phi: Tensor) -> Tensor:
            flat = self._flat_features(phi)
            weights = target_weights(self.head.logits(flat), target)
            return self.head.relevance(flat, weights, beta=self.beta).reshape(phi.shape)

        return self.lrp.propagate(x, feature_relevance)

    def _flat_features(self, phi: object) -> Tensor:
        if not isinstance(phi, Tensor):
            raise TypeError(f"DeepKMeans: features must return one tensor, got {type(phi).__name__}")
        if phi.ndim < 2:
            raise ValueError(
                f"DeepKMeans: features must return a batch (B, ...), got shape {tuple(phi.shape)}"
            )
        per_sample = math.prod(phi.shape[1:])
        if per_sample != self.head.n_features:
            raise ValueError(
                f"DeepKMeans: the features have {per_sample} values per sample (shape {tuple(phi.shape)}) "
                f"but the centroids have {self.head.n_features}"
            )
        if not torch.isfinite(phi).all():
            raise ValueError("DeepKMeans: the features contain NaN or infinite values")
        return phi.reshape(phi.shape[0], per_sample)

    def __repr__(self) -> str:
        return (
            f"DeepKMeans(features={type(self.features).__name__}, clusters={self.head.centroids.shape[0]}, "
            f"composite={self.composite!r}, beta={self.beta!r})"
        )


def _check_input(x: object) -> None:
    check_finite(x, "DeepKMeans: x")
    if x.ndim < 2:
        raise ValueError(f"DeepKMeans: x must have a batch dimension (B, ...), got shape {tuple(x.shape)}")
