"""Step 5 of SpRAy: cluster the spectral embedding."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import DBSCAN, HDBSCAN, AgglomerativeClustering, KMeans

from relprop.deprecation import renamed_keyword

ClusteringMethod = Literal["kmeans", "agglomerative", "dbscan", "hdbscan"]


@renamed_keyword("random_state", "seed")
def cluster_embedding(
    embedding: np.ndarray,
    method: ClusteringMethod = "kmeans",
    n_clusters: int | None = None,
    connectivity: sp.spmatrix | sp.sparray | None = None,
    seed: int | None = None,
    params: dict[str, Any] | None = None,
) -> np.ndarray:
    """Cluster labels (N,) of the rows of a spectral embedding.

    Parameters
    ----------
    embedding
        Array of shape (N, d), e.g. from :func:`relprop.spray.spectral_embedding`.
    method
        ``"kmeans"`` (scikit-learn ``KMeans``, ``n_init=10``), ``"agglomerative"`` (Ward linkage,
        restricted to ``connectivity`` when given, which keeps it sparse for large N),
        ``"dbscan"`` or ``"hdbscan"`` (scikit-learn; label -1 marks noise).
    n_clusters
        Required for ``"kmeans"`` and ``"agglomerative"``; must be None for the density-based methods,
        which find the number themselves.
    connectivity
        Sparse (N, N) graph for ``"agglomerative"`` (typically the kNN affinity).
    seed
        Seed for ``"kmeans"``.
    params
        Further keyword arguments for the scikit-learn estimator (e.g. ``{"eps": 0.3}`` for DBSCAN,
        ``{"min_cluster_size": 20}`` for HDBSCAN).
    """
    if embedding.ndim != 2 or len(embedding) == 0:
        raise ValueError(f"embedding must have shape (N, d) with N >= 1, got shape {embedding.shape}")
    params = dict(params or {})
    if method in ("kmeans", "agglomerative"):
        if not isinstance(n_clusters, (int, np.integer)) or not 1 <= n_clusters <= len(embedding):
            raise ValueError(
                f"method={method!r} needs n_clusters, an int in [1, {len(embedding)}], got {n_clusters!r}"
            )
        if method == "kmeans":
            estimator = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed, **params)
        else:
            estimator = AgglomerativeClustering(n_clusters=n_clusters, connectivity=connectivity, **params)
    elif method in ("dbscan", "hdbscan"):
        if n_clusters is not None:
            raise ValueError(f"method={method!r} finds the number of clusters itself; pass n_clusters=None")
        estimator = DBSCAN(**params) if method == "dbscan" else HDBSCAN(**params)
    else:
        raise ValueError(f"method must be 'kmeans', 'agglomerative', 'dbscan' or 'hdbscan', got {method!r}")
    return estimator.fit_predict(embedding).astype(np.int64)
