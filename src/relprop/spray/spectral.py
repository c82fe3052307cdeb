"""Steps 3 and 4 of SpRAy: spectrum of the normalized graph Laplacian and the eigengap heuristic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, reverse_cuthill_mckee
from scipy.sparse.linalg import LinearOperator, eigsh, spilu
from threadpoolctl import threadpool_limits

from relprop.deprecation import renamed_keyword

# components up to this size (or up to 4x the number of wanted eigenvalues) are solved densely
_DENSE_LIMIT = 256
# Lanczos tolerance on the eigenvalues of the spectral transform (_top_eigenpairs)
_TOLERANCE = 1e-10
# shift-invert shift of the Laplacian, and the factor's largest fill relative to the Laplacian
_SHIFT = -1e-3
_FILL_FACTOR = 30
# largest envelope, as a fraction of the dense triangle, for which the factorization is tried
_ENVELOPE_FRACTION = 0.25
# degree of the polynomial filter used where the factorization would not fit
_POWER = 20


@dataclass(frozen=True)
class LaplacianSpectrum:
    """Smallest eigenpairs of the symmetric normalized Laplacian, in ascending order.

    Attributes
    ----------
    eigenvalues
        Shape (m,), ascending, in [0, 2].
    eigenvectors
        Shape (N, m), orthonormal columns; column ``i`` belongs to ``eigenvalues[i]``.
    trivial
        Shape (m,) bool: the eigenpairs that are trivial, one per connected component
        (eigenvalue 0, eigenvector :math:`D^{1/2}\\mathbf 1_C` normalized, supported on component C).
    graph_components
        Shape (N,): the connected component of each sample.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    trivial: np.ndarray
    graph_components: np.ndarray

    @property
    def n_graph_components(self) -> int:
        """Number of connected components of the graph (= number of zero eigenvalues)."""
        return int(self.trivial.sum())


@renamed_keyword("random_state", "seed")
def laplacian_spectrum(
    affinity: sp.spmatrix | sp.sparray, n_eigenvalues: int = 32, seed: int | None = None
) -> LaplacianSpectrum:
    """The ``n_eigenvalues`` smallest eigenpairs of :math:`L = I - D^{-1/2} W D^{-1/2}`.

    :math:`W` is the symmetric affinity and :math:`D=\\operatorname{diag}(W\\mathbf 1)`. The smallest
    eigenvalues of :math:`L` are :math:`1-\\mu` for the largest eigenvalues :math:`\\mu` of the
    normalized affinity :math:`D^{-1/2} W D^{-1/2}`, which Lanczos (``eigsh``) finds in shift-invert
    mode with a sparse LU factorization, or with a polynomial filter where the factorization would
    need too much memory (see ``_top_eigenpairs``). The graph is split into its connected
    components first:
    each component contributes an exact zero eigenvalue with eigenvector :math:`D^{1/2}\\mathbf 1_C`
    (normalized), and its other eigenpairs are computed on the component alone, so repeated zero
    eigenvalues are resolved exactly. Signs are fixed (largest-magnitude entry positive) and the
    Lanczos start vector is drawn from ``seed``, so results are reproducible.

    Raises
    ------
    ValueError
        If the affinity is not square and symmetric with non-negative weights, a sample has no
        neighbour, or ``n_eigenvalues`` is not in [1, N].
    """
    affinity, degree = _checked_affinity(affinity, n_eigenvalues)
    n = affinity.shape[0]
    scale = 1.0 / np.sqrt(degree)
    normalized = sp.diags(scale) @ affinity @ sp.diags(scale)
    n_components, components = connected_components(affinity, directed=False)
    rng = np.random.default_rng(seed)

    values, vectors, trivial = [], [], []
    for component in range(n_components):
        members = np.flatnonzero(components == component)
        wanted = min(n_eigenvalues, len(members))
        mu, basis = _component_eigenpairs(normalized, degree, members, wanted, n_eigenvalues, rng)
        full = np.zeros((n, wanted))
        full[members] = basis
        values.append(np.clip(1.0 - mu, 0.0, 2.0))
        vectors.append(full)
        trivial.append(np.arange(wanted) == 0)

    values, vectors, trivial = np.concatenate(values), np.hstack(vectors), np.concatenate(trivial)
    order = np.lexsort((~trivial, values))[:n_eigenvalues]
    vectors = vectors[:, order]
    peak = np.argmax(np.abs(vectors), axis=0)
    vectors *= np.sign(vectors[peak, np.arange(vectors.shape[1])])
    return LaplacianSpectrum(values[order], vectors, trivial[order], components)


def _checked_affinity(
    affinity: sp.spmatrix | sp.sparray, n_eigenvalues: int
) -> tuple[sp.csr_matrix, np.ndarray]:
    """The affinity as a float64 CSR matrix and its degrees, refused unless square, symmetric, finite and
    non-negative with every degree positive, and ``n_eigenvalues`` in [1, N]."""
    affinity = sp.csr_matrix(affinity, dtype=np.float64)
    n = affinity.shape[0]
    if affinity.shape != (n, n):
        raise ValueError(f"affinity must be square, got shape {affinity.shape}")
    if not isinstance(n_eigenvalues, (int, np.integer)) or not 1 <= n_eigenvalues <= n:
        raise ValueError(
            f"n_eigenvalues must be an int in [1, {n}] (the number of samples), got {n_eigenvalues!r}"
        )
    if (affinity.data < 0).any() or not np.isfinite(affinity.data).all():
        raise ValueError("affinity weights must be finite and non-negative")
    if abs(affinity - affinity.T).max() > 1e-12 * max(abs(affinity).max(), 1.0):
        raise ValueError("affinity must be symmetric")
    degree = np.asarray(affinity.sum(axis=1)).ravel()
    if (degree <= 0).any():
        raise ValueError(f"{int((degree <= 0).sum())} sample(s) have no neighbour (zero degree)")
    return affinity, degree


def _component_eigenpairs(
    normalized: sp.csr_matrix,
    degree: np.ndarray,
    members: np.ndarray,
    wanted: int,
    n_eigenvalues: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``wanted`` largest eigenpairs of the normalized affinity of one connected component (its
    ``members``), descending: dense for small components, else by ``_top_eigenpairs``; the top pair is
    set to its closed form, 1 and :math:`D^{1/2}\\mathbf 1` normalized."""
    block = normalized[members][:, members]
    if len(members) <= max(_DENSE_LIMIT, 4 * n_eigenvalues):
        mu, basis = scipy.linalg.eigh(block.toarray())
        mu, basis = mu[::-1][:wanted], basis[:, ::-1][:, :wanted]
    else:
        mu, basis = _top_eigenpairs(block, wanted, rng)
    mu[0] = 1.0
    basis[:, 0] = np.sqrt(degree[members]) / np.sqrt(degree[members].sum())
    return mu, basis


def _top_eigenpairs(
    normalized: sp.csr_matrix, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenpairs of a normalized affinity :math:`M` (spectrum in [-1, 1]), descending.

    The wanted eigenvalues crowd at the top of the spectrum of large kNN graphs (gaps of
    :math:`10^{-5}` on a range of 2), where plain Lanczos converges very slowly. It is therefore run
    on a transform with the same eigenvectors that spreads them apart (see ``_spectral_transform``):
    shift-invert when a sparse LU factorization fits in memory, else a polynomial filter.
    Lanczos from one start vector cannot see a second copy of an exactly repeated eigenvalue
    (graph symmetries, e.g. duplicated samples), so the orthogonal complement of the found
    subspace is searched for an eigenvalue that should have been among the top ``k`` until none is
    left. The eigenvalues of :math:`M` are recovered by Rayleigh-Ritz on the found subspace.
    """
    size = normalized.shape[0]
    transform = _spectral_transform(normalized)

    def restricted(basis: np.ndarray | None) -> LinearOperator:
        def apply(vector: np.ndarray) -> np.ndarray:
            vector = vector.ravel()
            if basis is not None:
                vector = vector - basis @ (basis.T @ vector)
            vector = transform(vector)
            return vector if basis is None else vector - basis @ (basis.T @ vector)

        return LinearOperator((size, size), matvec=apply, dtype=np.float64)

    # Lanczos works on single vectors: BLAS threads gain nothing and, on a busy machine, wait for
    # each other (several times slower)
    with threadpool_limits(1, user_api="blas"):
        start = rng.uniform(-1.0, 1.0, size)
        theta, basis = eigsh(restricted(None), k=k, which="LA", v0=start, tol=_TOLERANCE)
        while len(theta) < size - 1:
            # a loose solve suffices to see whether anything is left above the smallest found value
            complement = restricted(basis)
            missed, vector = eigsh(complement, k=1, which="LA", v0=rng.uniform(-1.0, 1.0, size), tol=1e-6)
            if missed[0] <= theta.min() * (1.0 - 1e-5):
                break
            missed, vector = eigsh(complement, k=1, which="LA", v0=vector.ravel(), tol=_TOLERANCE)
            basis, _ = np.linalg.qr(np.hstack([basis, vector]))
            theta = np.append(theta, missed)
    mu, rotation = np.linalg.eigh(basis.T @ (normalized @ basis))
    return mu[::-1][:k], (basis @ rotation[:, ::-1])[:, :k]


def _spectral_transform(normalized: sp.csr_matrix) -> Callable[[np.ndarray], np.ndarray]:
    """A map with the eigenvectors of :math:`M` that keeps the order of its eigenvalues but spreads the top.

    Preferred is shift-invert, :math:`v \\mapsto (L - \\sigma I)^{-1} v` with :math:`L = I - M` and
    :math:`\\sigma=` ``_SHIFT`` < 0: it maps an eigenvalue :math:`\\lambda` of :math:`L` to
    :math:`1/(\\lambda-\\sigma)`, which pulls the small, crowded eigenvalues far apart, and
    :math:`L-\\sigma I` is positive definite with condition number at most :math:`(2-\\sigma)/(-\\sigma)`.
    It needs a sparse LU factorization, which is cheap for graphs of low-dimensional structure
    (the ones with crowded spectra) and nearly dense for expander-like graphs. So it is only tried
    if the envelope of :math:`L` in reverse Cuthill-McKee order (an upper bound on the fill of an
    envelope factorization) is at most ``_ENVELOPE_FRACTION`` of the dense triangle; SuperLU's
    incomplete LU without a drop tolerance (minimum-degree ordering) then computes it, exactly
    unless it would exceed ``_FILL_FACTOR`` times the non-zeros of :math:`L`, which a solve of a
    random right-hand side detects. Otherwise the map is the polynomial filter :math:`S^p`,
    :math:`S=(I+M)/2`, :math:`p=` ``_POWER``, which maps the spectrum monotonically into [0, 1] and
    pushes the unwanted part towards zero, with no extra memory.
    """
    size = normalized.shape[0]
    shifted = (sp.identity(size, format="csc") * (1.0 - _SHIFT) - normalized).tocsc()
    if _envelope_size(shifted) <= _ENVELOPE_FRACTION * size * (size - 1) / 2:
        factor = spilu(
            shifted,
            drop_tol=0.0,
            fill_factor=_FILL_FACTOR,
            permc_spec="MMD_AT_PLUS_A",
            diag_pivot_thresh=0.0,
            options={"SymmetricMode": True},
        )
        probe = np.random.default_rng(0).standard_normal(size)
        if np.linalg.norm(shifted @ factor.solve(probe) - probe) <= 1e-10 * np.linalg.norm(probe):
            return factor.solve
    averaged = ((normalized + sp.identity(size, format="csr")) * 0.5).tocsr()

    def filtered(vector: np.ndarray) -> np.ndarray:
        for _ in range(_POWER):
            vector = averaged @ vector
        return vector

    return filtered


def _envelope_size(matrix: sp.csc_matrix) -> int:
    """Entries :math:`\\sum_i (i - \\min\\{j: a_{ij} \\neq 0\\})` of the lower envelope of a symmetric matrix.

    The matrix is reordered by reverse Cuthill-McKee first, which keeps the envelope small.
    """
    order = reverse_cuthill_mckee(matrix, symmetric_mode=True)
    reordered = matrix[order][:, order].tocsr()
    rows = np.arange(matrix.shape[0])
    first = np.minimum(np.minimum.reduceat(reordered.indices, reordered.indptr[:-1]), rows)
    return int((rows - first).sum())


@dataclass(frozen=True)
class Eigengap:
    """Result of the eigengap heuristic.

    Attributes
    ----------
    n_clusters
        Suggested number of clusters :math:`K = \\arg\\max_i g_i + 1`.
    gap
        The largest gap :math:`g_{K-1} = \\lambda_K - \\lambda_{K-1}`.
    score
        Clarity of the suggestion: the largest gap divided by the mean gap,
        :math:`g_{K-1} / \\bar g`; 1 means no gap stands out, large values a clear one.
    gaps
        All gaps :math:`g_i = \\lambda_{i+1} - \\lambda_i`, shape (m - 1,).
    """

    n_clusters: int
    gap: float
    score: float
    gaps: np.ndarray


def eigengap(eigenvalues: np.ndarray, max_clusters: int | None = None) -> Eigengap:
    """Eigengap heuristic: the number of eigenvalues before the largest gap in the ascending spectrum.

    With :math:`g_i=\\lambda_{i+1}-\\lambda_i` (:math:`i=0,\\dots,m-2`) over the ascending Laplacian
    eigenvalues, the suggestion is :math:`K=\\arg\\max_{i<K_{max}} g_i+1` and its score is
    :math:`g_{K-1}/\\bar g`, :math:`\\bar g` the mean of the considered gaps. K clusters that are
    separate from each other but internally well connected give K eigenvalues near zero and then a
    jump.

    Parameters
    ----------
    eigenvalues
        Ascending eigenvalues, at least two.
    max_clusters
        Largest K considered (default m - 1).
    """
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    if eigenvalues.ndim != 1 or len(eigenvalues) < 2:
        raise ValueError(
            f"eigengap needs at least two eigenvalues in a 1-D array, got shape {eigenvalues.shape}"
        )
    if not np.isfinite(eigenvalues).all() or (np.diff(eigenvalues) < 0).any():
        raise ValueError("eigenvalues must be finite and in ascending order")
    limit = len(eigenvalues) - 1 if max_clusters is None else max_clusters
    if not isinstance(limit, (int, np.integer)) or not 1 <= limit <= len(eigenvalues) - 1:
        raise ValueError(f"max_clusters must be an int in [1, {len(eigenvalues) - 1}], got {max_clusters!r}")
    gaps = np.diff(eigenvalues)[:limit]
    best = int(np.argmax(gaps))
    mean_gap = gaps.mean()
    score = float(gaps[best] / mean_gap) if mean_gap > 0 else 1.0
    return Eigengap(n_clusters=best + 1, gap=float(gaps[best]), score=score, gaps=gaps)


def spectral_embedding(spectrum: LaplacianSpectrum, n_dimensions: int) -> np.ndarray:
    """Rows of the first ``n_dimensions`` eigenvectors, scaled to unit length (Ng, Jordan and Weiss 2002).

    Row normalization removes the :math:`\\sqrt{d_i}` factor that the eigenvectors of the
    symmetric normalized Laplacian carry, so samples of one well-separated cluster map to (nearly)
    the same point on the unit sphere.
    """
    available = spectrum.eigenvectors.shape[1]
    if not isinstance(n_dimensions, (int, np.integer)) or not 1 <= n_dimensions <= available:
        raise ValueError(
            f"n_dimensions must be an int in [1, {available}] (computed eigenvectors), got {n_dimensions!r}"
        )
    rows = spectrum.eigenvectors[:, :n_dimensions]
    return rows / np.linalg.norm(rows, axis=1, keepdims=True).clip(min=np.finfo(np.float64).tiny)
