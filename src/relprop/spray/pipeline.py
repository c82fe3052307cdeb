"""The SpRAy pipeline object: steps 1 to 5 and 7 in ``fit``, step 6 on demand."""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import torch
from sklearn.decomposition import PCA

from relprop.deprecation import renamed_keyword
from relprop.spray.clustering import ClusteringMethod, cluster_embedding
from relprop.spray.graph import Weights, knn_affinity
from relprop.spray.preprocessing import Norm, preprocess_heatmaps
from relprop.spray.spectral import eigengap, laplacian_spectrum, spectral_embedding
from relprop.spray.statistics import as_sample_array, cluster_statistics
from relprop.spray.views import embed_2d


class SpRAy:
    """Spectral Relevance Analysis (Lapuschkin et al., Nat. Commun. 10:1096, 2019).

    Groups the heatmaps of one class by where their relevance lies, to reveal distinct prediction
    strategies such as a "Clever Hans" reliance on a watermark.

    Parameters
    ----------
    size, absolute, norm
        Preprocessing (:func:`relprop.spray.preprocess_heatmaps`): sum pooling target, absolute
        value, normalization (``"l1"``, ``"l2"``, ``"max"`` or None).
    pca_components
        Project the flattened preprocessed heatmaps onto this many principal components before the
        neighbour search (fast for large N; 32x32 heatmaps have 1024 dimensions). None searches
        neighbours with exact Euclidean distances. If it is at least ``min(N, h*w)`` the projection
        would be lossless and is skipped.
    n_neighbors, weights, bandwidth
        kNN affinity graph (:func:`relprop.spray.knn_affinity`).
    n_eigenvalues
        Number of smallest Laplacian eigenpairs computed (CoRelAy's default is 32), at most one per heatmap:
        a class of fewer heatmaps gets as many eigenpairs as it has heatmaps.
    max_clusters
        Largest number of clusters the eigengap may suggest (default 10). In large datasets the
        spectrum of every continuous group keeps growing, so gaps far out are rarely meaningful.
    n_clusters
        Number of clusters; None takes the eigengap suggestion. It also sets the dimension of the
        spectral embedding that is clustered (for every ``clustering`` method).
    clustering, clustering_params
        Clustering of the spectral embedding (:func:`relprop.spray.cluster_embedding`).
    n_nearest, top_fraction
        Per-cluster statistics (:func:`relprop.spray.cluster_statistics`).
    n_permutations, level, min_lift, min_contrast
        The test of whether a cluster's artefact score stands out from its class
        (:func:`relprop.spray.artefact_test`): a cluster is flagged when its Bonferroni-corrected permutation
        p-value against random groups of as many heatmaps is below ``level``, its score is at least
        ``min_lift`` times theirs, and its samples' neighbourhoods (in the neighbour space) are at least
        ``min_contrast`` times as artefact-like as the other samples'.
    seed
        Seed for PCA, the Lanczos start vector, k-means, the random groups of the artefact test and the 2-D
        views.

    Attributes
    ----------
    features_ : ndarray (N, h, w)
        Preprocessed heatmaps.
    affinity_ : scipy.sparse.csr_matrix (N, N)
        Symmetric kNN affinity.
    spectrum_ : LaplacianSpectrum
        Smallest eigenpairs of the normalized Laplacian.
    eigenvalues_ : ndarray (min(n_eigenvalues, N),)
        Ascending Laplacian eigenvalues (``spectrum_.eigenvalues``).
    eigengap_ : Eigengap
        Eigengap suggestion and its score.
    n_clusters_ : int
        Number of clusters used.
    embedding_ : ndarray (N, n_clusters_)
        Row-normalized spectral embedding that was clustered.
    labels_ : ndarray (N,)
        Cluster of each heatmap (-1: noise, density-based methods only).
    clusters_ : ClusterStatistics
        Per-cluster summaries, with the artefact test (``clusters_.artefact_test``, ``clusters_.flagged``).
    """

    @renamed_keyword("random_state", "seed")
    def __init__(
        self,
        size: int | tuple[int, int] | None = 32,
        absolute: bool = False,
        norm: Norm | None = "l2",
        pca_components: int | None = 64,
        n_neighbors: int = 10,
        weights: Weights = "binary",
        bandwidth: float | None = None,
        n_eigenvalues: int = 32,
        max_clusters: int = 10,
        n_clusters: int | None = None,
        clustering: ClusteringMethod = "kmeans",
        clustering_params: dict[str, Any] | None = None,
        n_nearest: int = 8,
        top_fraction: float = 0.05,
        n_permutations: int = 999,
        level: float = 0.01,
        min_lift: float = 2.0,
        min_contrast: float = 1.5,
        seed: int | None = None,
    ) -> None:
        self.size = size
        self.absolute = absolute
        self.norm = norm
        self.pca_components = pca_components
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.bandwidth = bandwidth
        self.n_eigenvalues = n_eigenvalues
        self.max_clusters = max_clusters
        self.n_clusters = n_clusters
        self.clustering = clustering
        self.clustering_params = clustering_params
        self.n_nearest = n_nearest
        self.top_fraction = top_fraction
        self.n_permutations = n_permutations
        self.level = level
        self.min_lift = min_lift
        self.min_contrast = min_contrast
        self.seed = seed

    @property
    def random_state(self) -> int | None:
        """Former name of :attr:`seed` (deprecated)."""
        warnings.warn("SpRAy.random_state is now called SpRAy.seed", DeprecationWarning, stacklevel=2)
        return self.seed

    def fit(
        self,
        heatmaps: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor | None = None,
        predictions: np.ndarray | torch.Tensor | None = None,
        groups: np.ndarray | torch.Tensor | None = None,
    ) -> SpRAy:
        """Analyse the heatmaps (N, H, W) or (N, C, H, W) of one class.

        ``labels``/``predictions`` (true and predicted classes) give the model's accuracy per
        cluster, ``groups`` (any known annotation) each cluster's majority group and purity.
        """
        self.features_ = preprocess_heatmaps(heatmaps, self.size, self.absolute, self.norm)
        n_samples = len(self.features_)
        for name, values in (("labels", labels), ("predictions", predictions), ("groups", groups)):
            as_sample_array(values, n_samples, name)
        space = self.neighbour_space(self.features_)
        self.affinity_ = knn_affinity(space, self.n_neighbors, self.weights, self.bandwidth)
        wanted = self.n_eigenvalues
        if isinstance(wanted, (int, np.integer)):  # anything else is refused by laplacian_spectrum
            wanted = min(wanted, n_samples)
        self.spectrum_ = laplacian_spectrum(self.affinity_, wanted, self.seed)
        self.eigenvalues_ = self.spectrum_.eigenvalues
        computed = len(self.eigenvalues_)
        self.eigengap_ = eigengap(self.eigenvalues_, min(self.max_clusters, computed - 1))
        self.n_clusters_ = self._chosen_n_clusters(computed, n_samples)
        self.embedding_ = spectral_embedding(self.spectrum_, self.n_clusters_)
        self.labels_ = self._cluster_labels()
        self.clusters_ = cluster_statistics(
            self.features_,
            self.labels_,
            labels,
            predictions,
            groups,
            self.n_nearest,
            self.top_fraction,
            self.n_permutations,
            self.level,
            self.min_lift,
            self.min_contrast,
            space,
            self.seed,
        )
        return self

    def _chosen_n_clusters(self, computed: int, n_samples: int) -> int:
        """``n_clusters``, by default the eigengap's choice; refused unless in [1, ``computed``], the number
        of eigenvectors computed."""
        chosen = self.eigengap_.n_clusters if self.n_clusters is None else self.n_clusters
        if not isinstance(chosen, (int, np.integer)) or not 1 <= chosen <= computed:
            raise ValueError(
                f"n_clusters must be an int in [1, {computed}] (the spectral eigenvectors computed for "
                f"{n_samples} heatmaps: n_eigenvalues={self.n_eigenvalues}, at most one per heatmap), "
                f"got {chosen!r}"
            )
        return chosen

    def _cluster_labels(self) -> np.ndarray:
        """Cluster the fitted embedding: into ``n_clusters_`` clusters, or as many as DBSCAN/HDBSCAN find;
        agglomerative clustering joins only neighbours in the affinity graph."""
        density_based = self.clustering in ("dbscan", "hdbscan")
        return cluster_embedding(
            self.embedding_,
            self.clustering,
            n_clusters=None if density_based else self.n_clusters_,
            connectivity=self.affinity_ if self.clustering == "agglomerative" else None,
            seed=self.seed,
            params=self.clustering_params,
        )

    def neighbour_space(self, features: np.ndarray) -> np.ndarray:
        """Flattened features, projected onto ``pca_components`` principal components if set."""
        flat = features.reshape(len(features), -1)
        if self.pca_components is None or self.pca_components >= min(flat.shape):
            return flat
        return PCA(self.pca_components, random_state=self.seed).fit_transform(flat)

    def embed_2d(self, method: Literal["tsne", "umap"] = "tsne", **params: Any) -> np.ndarray:
        """2-D view (N, 2) of the fitted spectral eigenvectors (all ``n_eigenvalues``) for plotting."""
        if not hasattr(self, "spectrum_"):
            raise RuntimeError("SpRAy is not fitted yet; call fit(heatmaps) first")
        return embed_2d(self.spectrum_.eigenvectors, method, self.seed, **params)
