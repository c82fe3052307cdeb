"""Step 7 of SpRAy: per-cluster summaries (prototype, representatives, accuracy, artefact score and test)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from relprop.checks import check_int
from relprop.deprecation import renamed_keyword
from relprop.spray.artefact import ArtefactTest, artefact_score, artefact_test


@dataclass(frozen=True)
class ClusterStatistics:
    """Per-cluster summaries; row ``k`` of every array belongs to cluster ``cluster_ids[k]``.

    Attributes
    ----------
    cluster_ids
        Cluster labels present, ascending, without the noise label -1; shape (K,).
    sizes
        Members per cluster, shape (K,).
    prototypes
        Mean heatmap of the members, shape (K, h, w).
    nearest
        Sample indices of the members closest (Euclidean) to the prototype, nearest first,
        shape (K, n_nearest); padded with -1 for clusters smaller than ``n_nearest``.
    accuracy
        Fraction of members with ``predictions == labels``, shape (K,); None without both.
    majority_group, group_purity
        Most frequent value of ``groups`` among the members and its share, shape (K,); None without
        ``groups``.
    artefact_scores, concentration, consistency
        See :func:`artefact_score`; shape (K,).
    artefact_test
        Whether each cluster's artefact score stands out from its class (:func:`artefact_test`); its rows
        are those of ``cluster_ids``.
    """

    cluster_ids: np.ndarray
    sizes: np.ndarray
    prototypes: np.ndarray
    nearest: np.ndarray
    accuracy: np.ndarray | None
    majority_group: np.ndarray | None
    group_purity: np.ndarray | None
    artefact_scores: np.ndarray
    concentration: np.ndarray
    consistency: np.ndarray
    artefact_test: ArtefactTest

    @property
    def flagged(self) -> np.ndarray:
        """Per cluster: does its artefact score stand out (``artefact_test.flagged``), shape (K,)."""
        return self.artefact_test.flagged


def as_sample_array(
    values: np.ndarray | torch.Tensor | list | None, n_samples: int, name: str
) -> np.ndarray | None:
    """Validate an optional per-sample array (labels, predictions, groups): 1-D of length N."""
    if values is None:
        return None
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.shape != (n_samples,):
        raise ValueError(
            f"{name} must have shape ({n_samples},), one entry per heatmap, got shape {array.shape}"
        )
    return array


@renamed_keyword("random_state", "seed")
def cluster_statistics(
    features: np.ndarray,
    cluster_labels: np.ndarray,
    labels: np.ndarray | torch.Tensor | None = None,
    predictions: np.ndarray | torch.Tensor | None = None,
    groups: np.ndarray | torch.Tensor | None = None,
    n_nearest: int = 8,
    top_fraction: float = 0.05,
    n_permutations: int = 999,
    level: float = 0.01,
    min_lift: float = 2.0,
    min_contrast: float = 1.5,
    space: np.ndarray | None = None,
    seed: int | None = None,
) -> ClusterStatistics:
    """Summaries of every cluster of preprocessed heatmaps.

    Parameters
    ----------
    features
        Preprocessed heatmaps, shape (N, h, w).
    cluster_labels
        Cluster of each heatmap, shape (N,); -1 (noise of DBSCAN/HDBSCAN) is left out.
    labels, predictions
        True and predicted class per heatmap, for the model's accuracy on each cluster.
    groups
        Any known per-sample annotation (e.g. "has a watermark"), for each cluster's majority
        group and purity.
    n_nearest
        Number of representatives per cluster.
    top_fraction
        Region size for :func:`artefact_score`.
    n_permutations, level, min_lift, min_contrast, space, seed
        The test of whether a cluster's artefact score stands out from its class (:func:`artefact_test`).
    """
    if features.ndim != 3:
        raise ValueError(f"features must have shape (N, h, w), got shape {features.shape}")
    n_samples = len(features)
    cluster_labels = as_sample_array(cluster_labels, n_samples, "cluster_labels")
    labels = as_sample_array(labels, n_samples, "labels")
    predictions = as_sample_array(predictions, n_samples, "predictions")
    groups = as_sample_array(groups, n_samples, "groups")
    if (labels is None) != (predictions is None):
        raise ValueError("accuracy needs both labels and predictions; got only one of them")
    check_int(n_nearest, "n_nearest")
    test = artefact_test(
        features,
        cluster_labels,
        space,
        n_permutations,
        level,
        min_lift,
        min_contrast,
        top_fraction,
        seed=seed,
    )

    cluster_ids = np.unique(cluster_labels[cluster_labels >= 0])
    n_clusters = len(cluster_ids)
    sizes = np.zeros(n_clusters, dtype=np.int64)
    prototypes = np.zeros((n_clusters, *features.shape[1:]), dtype=np.float64)
    nearest = np.full((n_clusters, n_nearest), -1, dtype=np.int64)
    accuracy = None if labels is None else np.zeros(n_clusters)
    majority_group = None if groups is None else np.empty(n_clusters, dtype=groups.dtype)
    group_purity = None if groups is None else np.zeros(n_clusters)
    artefacts = []
    for row, cluster in enumerate(cluster_ids):
        members = np.flatnonzero(cluster_labels == cluster)
        member_maps = features[members].astype(np.float64)
        sizes[row] = len(members)
        prototypes[row] = member_maps.mean(axis=0)
        distances = np.linalg.norm((member_maps - prototypes[row]).reshape(len(members), -1), axis=1)
        closest = members[np.argsort(distances, kind="stable")[:n_nearest]]
        nearest[row, : len(closest)] = closest
        if accuracy is not None:
            accuracy[row] = np.mean(labels[members] == predictions[members])
        if groups is not None:
            values, counts = np.unique(groups[members], return_counts=True)
            majority_group[row] = values[np.argmax(counts)]
            group_purity[row] = counts.max() / len(members)
        artefacts.append(artefact_score(member_maps, top_fraction))
    return ClusterStatistics(
        cluster_ids=cluster_ids,
        sizes=sizes,
        prototypes=prototypes,
        nearest=nearest,
        accuracy=accuracy,
        majority_group=majority_group,
        group_purity=group_purity,
        artefact_scores=np.array([a.score for a in artefacts]),
        concentration=np.array([a.concentration for a in artefacts]),
        consistency=np.array([a.consistency for a in artefacts]),
        artefact_test=test,
    )
