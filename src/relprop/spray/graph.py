"""Step 2 of SpRAy: a sparse, symmetric k-nearest-neighbour affinity graph."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from relprop.checks import check_int

Weights = Literal["binary", "heat"]

# largest distance block (entries) held at once by _nearest_neighbours
_BLOCK = 1 << 23


def knn_affinity(
    features: np.ndarray,
    n_neighbors: int = 10,
    weights: Weights = "binary",
    bandwidth: float | None = None,
) -> sp.csr_matrix:
    """Symmetric kNN affinity matrix, built without a dense N x N matrix.

    Each sample is joined to its ``n_neighbors`` nearest other samples (Euclidean distance
    :math:`d_{ij}`, exact search, see ``_nearest_neighbours``), giving a directed matrix :math:`A` with

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
    check_int(n_neighbors, "n_neighbors")
    if len(features) <= n_neighbors:
        raise ValueError(
            f"n_neighbors={n_neighbors} needs more than {n_neighbors} samples, got {len(features)}"
        )
    if not np.isfinite(features).all():
        raise ValueError("features contain NaN or infinite values")
    if weights not in ("binary", "heat"):
        raise ValueError(f"weights must be 'binary' or 'heat', got {weights!r}")
    indices, distances = _nearest_neighbours(np.asarray(features, dtype=np.float64), n_neighbors)
    n_samples = len(features)
    graph = sp.csr_matrix(
        (distances.ravel(), indices.ravel(), np.arange(0, n_samples * n_neighbors + 1, n_neighbors)),
        shape=(n_samples, n_samples),
    )
    graph.data = np.ones_like(graph.data) if weights == "binary" else _heat_kernel(graph.data, bandwidth)
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


def _heat_kernel(distances: np.ndarray, bandwidth: float | None) -> np.ndarray:
    """:math:`\\exp(-d^2 / (2\\sigma^2))` of the neighbour ``distances``, :math:`\\sigma` = ``bandwidth`` or,
    if None, their median."""
    sigma = float(np.median(distances)) if bandwidth is None else bandwidth
    if not sigma > 0:
        raise ValueError(
            f"heat-kernel bandwidth must be positive, got {sigma!r}"
            + (" (median neighbour distance; many duplicate samples?)" if bandwidth is None else "")
        )
    return np.exp(-(distances**2) / (2.0 * sigma**2))


def _nearest_neighbours(features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest other samples of every sample: indices and Euclidean distances, (N, k) each.

    Brute force over a partition that skips what cannot hold a neighbour. The samples are split into
    about :math:`\\sqrt N` cells by k-means (fit on a subsample); cell :math:`b` has centre
    :math:`\\mu_b` and radius :math:`\\rho_b` (largest member distance). For the samples of one cell,
    a search among their own and the nearest other cells bounds each sample's k-th neighbour
    distance by :math:`r_q`; by the triangle inequality, a cell can only hold a neighbour of
    :math:`q` if :math:`\\lVert q-\\mu_b\\rVert - \\rho_b \\le r_q`, so the search is repeated over those
    cells only. Clustered data (the usual case for heatmaps) skips most cells; data without
    structure searches nearly all, as plain brute force. Distances are computed as
    :math:`\\lVert a\\rVert^2 - 2a^\\top b + \\lVert b\\rVert^2` in blocks (a relative slack of
    :math:`10^{-10}` keeps the cell test safe against its rounding); the returned ones directly.
    """
    n_samples = len(features)
    n_cells = max(1, int(np.sqrt(n_samples)))
    subsample = np.random.default_rng(0).choice(n_samples, min(n_samples, 20 * n_cells), replace=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # duplicate samples: fewer distinct cells
        centres = KMeans(n_cells, n_init=1, max_iter=20, random_state=0).fit(features[subsample])
    centres = centres.cluster_centers_
    squared_norms = np.einsum("ij,ij->i", features, features)
    to_centres = np.maximum(
        squared_norms[:, None] - 2.0 * features @ centres.T + np.einsum("ij,ij->i", centres, centres), 0.0
    )
    cells = np.argmin(to_centres, axis=1)
    radius = np.zeros(n_cells)
    np.maximum.at(radius, cells, np.sqrt(to_centres[np.arange(n_samples), cells]))
    slack = 1e-10 * squared_norms.max()
    members = [np.flatnonzero(cells == cell) for cell in range(n_cells)]
    sizes = np.array([len(cell_members) for cell_members in members])
    indices = np.empty((n_samples, k), dtype=np.int64)
    distances = np.empty((n_samples, k))
    # blocks of a few hundred rows: BLAS threads gain little and, on a busy machine, wait for each
    # other (several times slower)
    with threadpool_limits(1, user_api="blas"):
        for cell in np.flatnonzero(sizes):
            queries = members[cell]
            nearest_cells = np.argsort(to_centres[queries].min(axis=0))
            nearest_cells = nearest_cells[nearest_cells != cell]
            enough = np.searchsorted(np.cumsum(sizes[nearest_cells]), k + 1 - sizes[cell]) + 1
            first = [members[other] for other in nearest_cells[: max(2, enough)]]
            kth = _search(features, squared_norms, queries, np.concatenate([queries, *first]), k)[:, -1]
            reach = (np.sqrt(kth + slack)[:, None] + radius) ** 2 + slack
            needed = (to_centres[queries] <= reach).any(axis=0)
            needed[cell] = False
            candidates = np.concatenate([queries, *(members[other] for other in np.flatnonzero(needed))])
            found = _search(features, squared_norms, queries, candidates, k, indices=True)
            indices[queries] = found
            distances[queries] = np.linalg.norm(features[queries, None] - features[found], axis=-1)
    return indices, distances


def _search(
    features: np.ndarray,
    squared_norms: np.ndarray,
    queries: np.ndarray,
    candidates: np.ndarray,
    k: int,
    indices: bool = False,
) -> np.ndarray:
    """Ascending squared distances (or, with ``indices``, the indices) of each query's ``k`` nearest
    candidates other than itself; ``candidates`` starts with ``queries``."""
    pool = features[candidates]
    result = np.empty((len(queries), k), dtype=np.int64 if indices else np.float64)
    rows = max(1, _BLOCK // len(candidates))
    for start in range(0, len(queries), rows):
        block = np.arange(start, min(start + rows, len(queries)))
        squared = pool[block] @ pool.T
        squared *= -2.0
        squared += squared_norms[queries[block], None]
        squared += squared_norms[candidates]
        squared[np.arange(len(block)), block] = np.inf
        nearest = np.argpartition(squared, k - 1, axis=1)[:, :k]
        values = np.take_along_axis(squared, nearest, axis=1)
        order = np.argsort(values, axis=1)
        result[block] = (
            candidates[np.take_along_axis(nearest, order, axis=1)]
            if indices
            else np.take_along_axis(values, order, axis=1)
        )
    return result
