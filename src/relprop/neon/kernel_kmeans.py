r"""Kernel k-means (log-kernel-mean discriminant) as a network of soft pools (NEON).

Each cluster :math:`k` is represented by points :math:`\{u_j\}_{j \in C_k}` (its members, or a
reduced set). With a Gaussian kernel of bandwidth :math:`\gamma` the soft distance to cluster k is

.. math:: g_k(x) = -\tfrac{1}{\gamma} \log \tfrac{1}{|C_k|} \sum_{j \in C_k} e^{-\gamma \|x - u_j\|^2},

minus the log kernel mean divided by :math:`\gamma`, and the logit of cluster c is
:math:`f_c(x) = \min_{k \ne c} \{g_k(x) - g_c(x)\}`. Since the log-mean-exp pools are separable,

.. math:: g_k - g_c = \operatorname{smin}^\gamma_{j \in C_k} \operatorname{smax}^\gamma_{i \in C_c} h_{ij},
    \qquad h_{ij}(x) = \|x - u_j\|^2 - \|x - u_i\|^2 = 2 (u_i - u_j)^\top x + \|u_j\|^2 - \|u_i\|^2,

a linear layer of pair units followed by soft max-, soft min- and hard min-pooling.

Note: the exact feature-space distance of kernel k-means is affine in the kernel mean, not in its
logarithm; this module implements the log-domain discriminant that Kauffmann et al. neuralize.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.cluster import KMeans

from relprop.checks import check_int, check_number
from relprop.deprecation import renamed_keyword
from relprop.rules import divide

from ._checks import as_float_tensor
from .explainer import NeuralizedModel
from .pooling import softmin_shares


class NeuralizedKernelKMeans(NeuralizedModel):
    """Kernel k-means cluster logits (log-kernel-mean discriminant) with NEON relevance.

    Parameters
    ----------
    support : sequence of array-like (n_k, D)
        The points representing each cluster, one array per cluster (at least 2 clusters).
    gamma : float
        Bandwidth of the Gaussian kernel :math:`e^{-\\gamma \\|x - u\\|^2}`, > 0.

    Attributes
    ----------
    support : torch.Tensor (N, D)
        All support points, float64 buffer.
    cluster_of : torch.Tensor (N,)
        Cluster index of each support point.
    """

    def __init__(self, support: Sequence[object], gamma: float) -> None:
        super().__init__()
        if isinstance(support, (np.ndarray, torch.Tensor)) or len(support) < 2:
            raise ValueError(
                "NeuralizedKernelKMeans: support must be a sequence of at least 2 arrays (n_k, D)"
            )
        arrays = [
            as_float_tensor(s, f"NeuralizedKernelKMeans: support[{k}]", ndim=2) for k, s in enumerate(support)
        ]
        widths = {a.shape[1] for a in arrays}
        if len(widths) != 1 or any(a.shape[0] == 0 for a in arrays):
            raise ValueError(
                "NeuralizedKernelKMeans: all support arrays must be non-empty with the same width D"
            )
        check_number(gamma, "NeuralizedKernelKMeans: gamma", strict=True)
        self.n_features = widths.pop()
        self.n_clusters = len(arrays)
        self.gamma = float(gamma)
        self.register_buffer("support", torch.cat(arrays))
        self.register_buffer(
            "cluster_of", torch.cat([torch.full((len(a),), k) for k, a in enumerate(arrays)])
        )

    def squared_distances(self, x: torch.Tensor) -> torch.Tensor:
        """Per-dimension squared differences (B, N, D) between flattened x (B, D) and the support points."""
        return (x[:, None, :] - self.support.to(x)) ** 2

    def soft_distances(self, distances: torch.Tensor) -> torch.Tensor:
        """Soft distances g_k (B, K) from squared distances (B, N) by log-mean-exp pooling per cluster."""
        columns = []
        for k in range(self.n_clusters):
            own = distances[:, self.cluster_of == k]
            columns.append(-(torch.logsumexp(-self.gamma * own, dim=1) - math.log(own.shape[1])) / self.gamma)
        return torch.stack(columns, dim=1)

    def competitor_differences(self, x: torch.Tensor) -> torch.Tensor:
        """``g_k - g_c`` (B, K, K) with +inf on the diagonal (a cluster is not its own competitor)."""
        g = self.soft_distances(self.squared_distances(x).sum(dim=2))
        differences = g[:, None, :] - g[:, :, None]
        return differences.diagonal_scatter(torch.full_like(g, math.inf), dim1=1, dim2=2)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Cluster logits (B, K): hard min over competitors of ``g_k - g_c``."""
        return self.competitor_differences(x).amin(dim=2)

    def relevance(self, x: torch.Tensor, weights: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        r"""Relevance (B, D) of :math:`\sum_c \text{weights}_c f_c(x)`.

        Competitors: :math:`R_k = \operatorname{softmin}_\beta(g_{k'} - g_c)_k\, f_c(x)`. Pairs (the
        gradients of the two separable log-mean-exp pools):
        :math:`R_{ij} = q_i\, p_j\, R_k` with
        :math:`q = \operatorname{softmax}_{i \in C_c}(-\gamma\|x - u_i\|^2)` and
        :math:`p = \operatorname{softmax}_{j \in C_k}(-\gamma\|x - u_j\|^2)`. Input, midpoint rule per
        pair (root point :math:`(u_i + u_j)/2`):

        .. math:: R_d = \sum_k \sum_{i,j} \frac{(x_d - u_{jd})^2 - (x_d - u_{id})^2}{h_{ij}(x)} R_{ij},

        where the numerator equals :math:`2(u_i - u_j)_d x_d + u_{jd}^2 - u_{id}^2`. Conservation
        :math:`\sum_d R_d = f_c(x)` is exact for every ``beta`` (a pair with :math:`h_{ij} = 0`
        exactly passes nothing on).
        """
        relevance = torch.zeros_like(x)
        per_dim = self.squared_distances(x)
        distances = per_dim.sum(dim=2)
        differences = self.competitor_differences(x)
        for c in torch.nonzero(weights.any(dim=0)).flatten().tolist():
            own = self.cluster_of == c
            q = torch.softmax(-self.gamma * distances[:, own], dim=1)
            competitors = [k for k in range(self.n_clusters) if k != c]
            margins = differences[:, c, competitors]
            pooled = softmin_shares(margins, beta) * margins.amin(dim=1, keepdim=True)
            for column, k in enumerate(competitors):
                other = self.cluster_of == k
                p = torch.softmax(-self.gamma * distances[:, other], dim=1)
                h = distances[:, None, other] - distances[:, own, None]
                share = divide(q[:, :, None] * p[:, None, :] * pooled[:, column, None, None], h)
                contribution = torch.einsum("bj,bjd->bd", share.sum(dim=1), per_dim[:, other])
                contribution -= torch.einsum("bi,bid->bd", share.sum(dim=2), per_dim[:, own])
                relevance += weights[:, c, None] * contribution
        return relevance


@renamed_keyword("random_state", "seed")
def neuralize_kernel_kmeans(
    x: object,
    labels: object,
    gamma: float,
    n_support_per_cluster: int | None = None,
    seed: int = 0,
) -> NeuralizedKernelKMeans:
    """Build a :class:`NeuralizedKernelKMeans` from data and cluster labels 0..K-1.

    Parameters
    ----------
    x : array-like (N, D)
        Clustered data.
    labels : array-like (N,)
        Cluster of each row, integers 0..K-1, every cluster non-empty.
    gamma : float
        Kernel bandwidth.
    n_support_per_cluster : int or None
        If given, each cluster with more members is reduced to this many points, the centroids of
        a k-means run inside the cluster (cost of the explanation is O(n_c n_k D) per pair of
        clusters). The reduced model approximates the one over all members; weights stay uniform.
    seed : int
        Seed of the reducing k-means.
    """
    data = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels)
    if data.ndim != 2 or labels.shape != (data.shape[0],):
        raise ValueError(
            f"neuralize_kernel_kmeans: need x (N, D) and labels (N,), got {data.shape}, {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"neuralize_kernel_kmeans: labels must be integers, got dtype {labels.dtype}")
    n_clusters = int(labels.max()) + 1 if labels.size else 0
    if labels.size == 0 or labels.min() < 0 or len(np.unique(labels)) != n_clusters:
        raise ValueError("neuralize_kernel_kmeans: labels must be 0..K-1 with every cluster non-empty")
    if n_support_per_cluster is not None:
        check_int(n_support_per_cluster, "neuralize_kernel_kmeans: n_support_per_cluster")
    support = []
    for k in range(n_clusters):
        members = data[labels == k]
        if n_support_per_cluster is not None and len(members) > n_support_per_cluster:
            reducer = KMeans(n_clusters=n_support_per_cluster, n_init=1, random_state=seed).fit(members)
            members = reducer.cluster_centers_
        support.append(members)
    return NeuralizedKernelKMeans(support, gamma)
