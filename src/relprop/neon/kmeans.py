r"""k-means as a two-layer network: linear competitor units and a min-pool (NEON).

For centroids :math:`\mu_1, \dots, \mu_K` the logit of cluster :math:`c` is

.. math::

    f_c(x) = \min_{k \ne c} \big\{ \|x - \mu_k\|^2 - \|x - \mu_c\|^2 \big\}
           = \min_{k \ne c} \big\{ w_{ck}^\top x + b_{ck} \big\},\qquad
    w_{ck} = 2(\mu_c - \mu_k),\quad b_{ck} = \|\mu_k\|^2 - \|\mu_c\|^2,

positive exactly when :math:`x` is strictly closer to :math:`\mu_c` than to every other centroid.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans, MiniBatchKMeans

from relprop.rules import divide

from ._checks import as_float_tensor, check_fitted_estimator
from .explainer import NeuralizedModel
from .pooling import softmin_shares


class NeuralizedKMeans(NeuralizedModel):
    r"""k-means cluster logits as a linear layer followed by min-pooling.

    Parameters
    ----------
    centroids : array-like of shape (K, D)
        Cluster centres, ``K >= 2``.

    Attributes
    ----------
    centroids : torch.Tensor (K, D), float64 buffer
    weight : torch.Tensor (K, K-1, D)
        ``weight[c, j]`` is :math:`w_{ck} = 2(\mu_c - \mu_k)` for the j-th competitor k of c.
    bias : torch.Tensor (K, K-1)
        :math:`b_{ck} = \|\mu_k\|^2 - \|\mu_c\|^2`.
    midpoint : torch.Tensor (K, K-1, D)
        :math:`m_{ck} = (\mu_c + \mu_k) / 2`, the root point of unit (c, k) used by the midpoint rule.

    Notes
    -----
    ``model(x)`` returns the logits :math:`f_c(x)` of all clusters (B, K); ``argmax`` is the nearest
    centroid, as in ``KMeans.predict``. Relevance (see :meth:`relevance`) follows Kauffmann et al.,
    "From clustering to cluster explanations via neural networks" (IEEE TNNLS 2022).
    """

    def __init__(self, centroids: object) -> None:
        super().__init__()
        centroids = as_float_tensor(centroids, "NeuralizedKMeans: centroids", ndim=2)
        n_clusters, self.n_features = centroids.shape
        if n_clusters < 2:
            raise ValueError(f"NeuralizedKMeans: needs at least 2 centroids, got {n_clusters}")
        competitors = torch.tensor([[k for k in range(n_clusters) if k != c] for c in range(n_clusters)])
        own, other = centroids[:, None, :], centroids[competitors]
        squared_norm = (centroids**2).sum(dim=1)
        self.register_buffer("centroids", centroids)
        self.register_buffer("weight", 2 * (own - other))
        self.register_buffer("bias", squared_norm[competitors] - squared_norm[:, None])
        self.register_buffer("midpoint", (own + other) / 2)

    def competitor_units(self, x: torch.Tensor) -> torch.Tensor:
        r"""Values :math:`h_{ck}(x) = w_{ck}^\top x + b_{ck}`, shape (B, K, K-1), for flattened x (B, D)."""
        return torch.einsum("ckd,bd->bck", self.weight.to(x), x) + self.bias.to(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Cluster logits (B, K): hard min over each cluster's competitor units."""
        return self.competitor_units(x).amin(dim=2)

    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """Cluster index of each sample (B,), the largest logit; x of shape (B, ...)."""
        return self(x).argmax(dim=1)

    def relevance(self, x: torch.Tensor, weights: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        r"""Relevance (B, D) of :math:`\sum_c \text{weights}_c f_c(x)` by the NEON rules.

        Min-pool (softmin with stiffness ``beta``; the forward pass stays the hard min):

        .. math:: R_{ck} = \frac{e^{-\beta h_{ck}}}{\sum_{k' \ne c} e^{-\beta h_{ck'}}}\, f_c(x)

        Linear layer, midpoint rule (exact first-order expansion of the affine unit at the midpoint
        :math:`m_{ck}`, which lies on the unit's zero set):

        .. math:: R_i = \sum_{k \ne c} \frac{w_{ck,i}\,(x_i - m_{ck,i})}{h_{ck}(x)}\, R_{ck}

        Hence :math:`\sum_i R_i = f_c(x)` exactly for every ``beta`` (a unit with
        :math:`h_{ck} = 0` exactly passes nothing on), and ``beta = inf`` gives
        :math:`R_i = w_{ck^*,i}(x_i - m_{ck^*,i})` for the nearest competitor :math:`k^*`. The
        relevance is unchanged when x and all centroids are shifted by the same vector.

        Parameters
        ----------
        x : torch.Tensor (B, D)
        weights : torch.Tensor (B, K)
        beta : float
            Min-pool stiffness in [0, inf]; it has the units of 1 / squared distance.
        """
        relevance = torch.zeros_like(x)
        units = self.competitor_units(x)
        for cluster in torch.nonzero(weights.any(dim=0)).flatten().tolist():
            h = units[:, cluster]
            pooled = softmin_shares(h, beta) * h.amin(dim=1, keepdim=True)
            terms = self.weight[cluster].to(x) * (x[:, None, :] - self.midpoint[cluster].to(x))
            per_feature = torch.einsum("bkd,bk->bd", terms, divide(pooled, h))
            relevance += weights[:, cluster, None] * per_feature
        return relevance


def neuralize_kmeans(estimator: KMeans | MiniBatchKMeans | np.ndarray | torch.Tensor) -> NeuralizedKMeans:
    """Neuralize a fitted ``KMeans``/``MiniBatchKMeans``, or plain centroids (K, D).

    ``BisectingKMeans`` is refused: its ``predict`` follows the bisection tree, not the nearest
    centroid, so no min-pool network reproduces it.
    """
    if isinstance(estimator, (np.ndarray, torch.Tensor)):
        return NeuralizedKMeans(estimator)
    check_fitted_estimator(estimator, (KMeans, MiniBatchKMeans), "neuralize_kmeans")
    return NeuralizedKMeans(estimator.cluster_centers_)
