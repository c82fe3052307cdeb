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
    cluster_labels, labels, predictions, groups = _check_sample_arrays(
        features, cluster_labels, labels, predictions, groups
    )
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
    members_of = [np.flatnonzero(cluster_labels == cluster) for cluster in cluster_ids]
    sizes = np.array([len(members) for members in members_of], dtype=np.int64)
    prototypes, nearest = _prototypes_and_representatives(features, members_of, n_nearest)
    artefacts = [artefact_score(features[members].astype(np.float64), top_fraction) for members in members_of]
    accuracy, majority_group, group_purity = _annotation_summaries(members_of, labels, predictions, groups)
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


def _prototypes_and_representatives(
    features: np.ndarray, members_of: list[np.ndarray], n_nearest: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster (its members' indices in ``members_of``): the mean heatmap, shape (K, h, w), and the
    members closest to it, nearest first, shape (K, n_nearest), padded with -1."""
    prototypes = np.zeros((len(members_of), *features.shape[1:]), dtype=np.float64)
    nearest = np.full((len(members_of), n_nearest), -1, dtype=np.int64)
    for row, members in enumerate(members_of):
        member_maps = features[members].astype(np.float64)
        prototypes[row] = member_maps.mean(axis=0)
        closest = _closest_members(members, member_maps, prototypes[row], n_nearest)
        nearest[row, : len(closest)] = closest
    return prototypes, nearest


def _closest_members(
    members: np.ndarray, member_maps: np.ndarray, prototype: np.ndarray, n_nearest: int
) -> np.ndarray:
    """The (at most) ``n_nearest`` of ``members`` whose heatmaps are closest (Euclidean) to the prototype,
    nearest first; ties keep the order of ``members``."""
    distances = np.linalg.norm((member_maps - prototype).reshape(len(members), -1), axis=1)
    return members[np.argsort(distances, kind="stable")[:n_nearest]]


def _majority(values: np.ndarray) -> tuple[object, float]:
    """The most frequent of ``values`` (the smallest among equally frequent ones) and its share."""
    distinct, counts = np.unique(values, return_counts=True)
    return distinct[np.argmax(counts)], counts.max() / len(values)


def _check_sample_arrays(
    features: np.ndarray,
    cluster_labels: np.ndarray,
    labels: np.ndarray | torch.Tensor | None,
    predictions: np.ndarray | torch.Tensor | None,
    groups: np.ndarray | torch.Tensor | None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Check that the heatmaps are (N, h, w) and that every per-sample array has one entry per heatmap, and
    that labels and predictions come together; return the arrays as numpy arrays (None where not given)."""
    if features.ndim != 3:
        raise ValueError(f"features must have shape (N, h, w), got shape {features.shape}")
    n_samples = len(features)
    cluster_labels = as_sample_array(cluster_labels, n_samples, "cluster_labels")
    labels = as_sample_array(labels, n_samples, "labels")
    predictions = as_sample_array(predictions, n_samples, "predictions")
    groups = as_sample_array(groups, n_samples, "groups")
    if (labels is None) != (predictions is None):
        raise ValueError("accuracy needs both labels and predictions; got only one of them")
    return cluster_labels, labels, predictions, groups


def _annotation_summaries(
    members_of: list[np.ndarray],
    labels: np.ndarray | None,
    predictions: np.ndarray | None,
    groups: np.ndarray | None,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Per cluster (its members' indices in ``members_of``): the accuracy of the predictions, and the
    majority group and its purity; None for what was not given."""
    accuracy = None
    if labels is not None:
        accuracy = np.zeros(len(members_of))
        for row, members in enumerate(members_of):
            accuracy[row] = np.mean(labels[members] == predictions[members])
    if groups is None:
        return accuracy, None, None
    majority_group = np.empty(len(members_of), dtype=groups.dtype)
    group_purity = np.zeros(len(members_of))
    for row, members in enumerate(members_of):
        majority_group[row], group_purity[row] = _majority(groups[members])
    return accuracy, majority_group, group_purity
