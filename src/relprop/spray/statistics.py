"""Step 7 of SpRAy: per-cluster summaries (prototype, representatives, accuracy, artefact score)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ArtefactScore:
    """How strongly a cluster's relevance sits in one small fixed region.

    Attributes
    ----------
    score
        ``concentration * consistency``, in [0, 1].
    concentration
        Fraction of the prototype's positive mass in its top-q pixels.
    consistency
        Mean over members of the fraction of the member's positive mass in those same pixels.
    region
        Flat indices of the prototype's top-q pixels, shape (q,).
    """

    score: float
    concentration: float
    consistency: float
    region: np.ndarray


def artefact_score(members: np.ndarray, top_fraction: float = 0.05) -> ArtefactScore:
    """Artefact score of one cluster from its members' heatmaps (n, h, w).

    With the prototype :math:`P=\\frac1n\\sum_i R_i`, positive parts :math:`x^+=\\max(x,0)` and
    :math:`S` the :math:`q=\\max(1,\\operatorname{round}(\\text{top\\_fraction}\\cdot hw))` pixels
    where :math:`P^+` is largest (ties broken by the lower flat index):

    .. math::

        \\text{concentration} = \\frac{\\sum_{p\\in S} P^+_p}{\\sum_p P^+_p},\\qquad
        \\text{consistency} = \\frac1n\\sum_i \\frac{\\sum_{p\\in S} R^+_{i,p}}{\\sum_p R^+_{i,p}},\\qquad
        \\text{score} = \\text{concentration}\\cdot\\text{consistency}.

    A heatmap without positive mass contributes 0. The score is 1 exactly when every member puts
    all its positive relevance into the same q pixels (a fixed tag or watermark); relevance spread
    over an object, or concentrated at places that differ between members, scores low. For uniform
    heatmaps it is about ``top_fraction**2``.
    """
    if members.ndim != 3 or len(members) == 0:
        raise ValueError(f"members must have shape (n, h, w) with n >= 1, got shape {members.shape}")
    if not 0 < top_fraction <= 1:
        raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction!r}")
    flat = np.clip(members.reshape(len(members), -1).astype(np.float64), 0.0, None)
    prototype = flat.mean(axis=0)
    n_top = max(1, round(top_fraction * flat.shape[1]))
    region = np.sort(np.argsort(-prototype, kind="stable")[:n_top])
    concentration = _fraction(prototype[None], region)[0]
    consistency = _fraction(flat, region).mean()
    return ArtefactScore(float(concentration * consistency), float(concentration), float(consistency), region)


def _fraction(positive: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Per row: mass inside ``region`` over total mass, 0 for rows without mass."""
    total = positive.sum(axis=1)
    inside = positive[:, region].sum(axis=1)
    return np.divide(inside, total, out=np.zeros_like(total), where=total > 0)


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


def cluster_statistics(
    features: np.ndarray,
    cluster_labels: np.ndarray,
    labels: np.ndarray | torch.Tensor | None = None,
    predictions: np.ndarray | torch.Tensor | None = None,
    groups: np.ndarray | torch.Tensor | None = None,
    n_nearest: int = 8,
    top_fraction: float = 0.05,
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
    if not isinstance(n_nearest, (int, np.integer)) or n_nearest < 1:
        raise ValueError(f"n_nearest must be a positive int, got {n_nearest!r}")

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
    )
