"""Step 2 of SpRAy: a sparse, symmetric k-nearest-neighbour affinity graph."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors

Weights = Literal["binary", "heat"]


def knn_affinity(
    features: np.ndarray,
    n_neighbors: int = 10,
    weights: Weights = "binary",
    bandwidth: float | None = None,
) -> sp.csr_matrix:
    """Symmetric kNN affinity matrix, built without a dense N x N matrix.

    Each sample is joined to its ``n_neighbors`` nearest other samples (Euclidean distance
    :math:`d_{ij}`), giving a directed matrix :math:`A` with

    * ``"binary"`` (CoRelAy's default): :math:`A_{ij}=1`;
    * ``"heat"``: :math:`A_{ij}=\\exp(-d_{ij}^2 / (2\\sigma^2))`, :math:`\\sigma` = ``bandwidth``
      or, if None, the median of all neighbour distances.

    The result is symmetrized as in CoRelAy, :math:`W = (A + A^\\top)/2`, so a one-way
    neighbourship gets half the weight of a mutual one.

    Parameters
    ----------
    features
        Array of shape (N, D).
    n_neighbors
        Number of neighbours per sample; N must exceed it.

    Returns
    -------
    scipy.sparse.csr_matrix
        Symmetric (N, N) matrix with at most ``2 N n_neighbors`` non-zeros, no self-loops.
    """
    if features.ndim != 2:
        raise ValueError(f"features must have shape (N, D), got shape {features.shape}")
    if not isinstance(n_neighbors, (int, np.integer)) or n_neighbors < 1:
        raise ValueError(f"n_neighbors must be a positive int, got {n_neighbors!r}")
    if len(features) <= n_neighbors:
        raise ValueError(
            f"n_neighbors={n_neighbors} needs more than {n_neighbors} samples, got {len(features)}"
        )
    if weights not in ("binary", "heat"):
        raise ValueError(f"weights must be 'binary' or 'heat', got {weights!r}")
    graph = NearestNeighbors(n_neighbors=n_neighbors).fit(features).kneighbors_graph(mode="distance")
    graph.data = graph.data.astype(np.float64)
    if weights == "binary":
        graph.data[:] = 1.0
    else:
        sigma = float(np.median(graph.data)) if bandwidth is None else bandwidth
        if not sigma > 0:
            raise ValueError(
                f"heat-kernel bandwidth must be positive, got {sigma!r}"
                + (" (median neighbour distance; many duplicate samples?)" if bandwidth is None else "")
            )
        graph.data = np.exp(-(graph.data**2) / (2.0 * sigma**2))
    affinity = ((graph + graph.T) * 0.5).tocsr()
    affinity.eliminate_zeros()
    isolated = np.flatnonzero(np.diff(affinity.indptr) == 0)
    if len(isolated):
        raise ValueError(
            f"{len(isolated)} sample(s) have no neighbour with positive weight (first indices "
            f"{isolated[:5].tolist()}): the heat-kernel weights underflowed; increase bandwidth or use "
            "weights='binary'"
        )
    return affinity
