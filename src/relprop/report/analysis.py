"""SpRAy on the heatmaps of one class of an attribution store, with the 2-D view the report draws."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from relprop.deprecation import renamed_keyword
from relprop.spray import SpRAy
from relprop.store import AttributionStore

__all__ = ["ClassAnalysis", "analyse_class", "class_rows"]


def class_rows(store: AttributionStore, class_index: int) -> np.ndarray:
    """The store's rows whose heatmaps explain class ``class_index``, ascending.

    A store that explains the label (``target="label"``) contributes the samples labelled with the class;
    one that explains the prediction, the samples predicted as the class. Either way every selected
    heatmap shows the evidence for ``class_index``.

    Raises
    ------
    ValueError
        If the model has no output ``class_index`` or no sample explains it.
    """
    classes = store.output.shape[1]
    if not 0 <= class_index < classes:
        raise ValueError(
            f"{store.path}: class {class_index} does not exist; the model has {classes} outputs "
            f"(classes 0 to {classes - 1})"
        )
    by_label = store.params.get("target") == "label"
    column = store.label if by_label else store.prediction
    rows = np.flatnonzero(column[:] == class_index)
    if len(rows) == 0:
        kind = "labelled" if by_label else "predicted as"
        raise ValueError(f"{store.path}: no sample is {kind} class {class_index}; nothing to analyse")
    return rows


@dataclass
class ClassAnalysis:
    """A fitted SpRAy of one class's heatmaps and their 2-D t-SNE view.

    Attributes
    ----------
    class_index:
        The analysed class.
    rows:
        The analysed rows of the store (M,), ascending.
    index:
        Their data-set indices (M,).
    labels, predictions:
        Their labels (-1 if unknown) and predicted classes (M,).
    heatmaps:
        Their attributions as stored, float32 (M, ...).
    spray:
        The fitted :class:`relprop.spray.SpRAy`; its sample order is that of ``rows``.
    tsne:
        2-D t-SNE coordinates of the samples' spectral embeddings (M, 2).
    params:
        The store's run parameters (model, method, composite, data set, ...).
    groups:
        The known annotation of each sample passed to :func:`analyse_class` (M,), or ``None``.
    """

    class_index: int
    rows: np.ndarray
    index: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray
    heatmaps: np.ndarray
    spray: SpRAy
    tsne: np.ndarray
    params: dict[str, Any]
    groups: np.ndarray | None = None

    @property
    def suspicious_cluster(self) -> int | None:
        """The cluster whose artefact score stands out most (the flagged one with the highest lift, see
        :func:`relprop.spray.artefact_test`); ``None`` if no cluster stands out, as for a single cluster."""
        return self.spray.clusters_.artefact_test.strongest

    def members(self, cluster: int) -> np.ndarray:
        """Positions (into ``rows``) of the cluster's samples, nearest to the cluster's prototype first."""
        clusters = self.spray.clusters_
        found = np.flatnonzero(clusters.cluster_ids == cluster)
        if len(found) == 0:
            raise ValueError(f"no cluster {cluster}; the clusters are {clusters.cluster_ids.tolist()}")
        positions = np.flatnonzero(self.spray.labels_ == cluster)
        features = self.spray.features_[positions].reshape(len(positions), -1)
        distances = np.linalg.norm(features - clusters.prototypes[found[0]].reshape(1, -1), axis=1)
        return positions[np.argsort(distances, kind="stable")]


@renamed_keyword("random_state", "seed")
def analyse_class(
    store: AttributionStore,
    class_index: int,
    spray: SpRAy | None = None,
    groups: np.ndarray | None = None,
    seed: int | None = 0,
) -> ClassAnalysis:
    """Run SpRAy on the heatmaps that explain ``class_index`` (see :func:`class_rows`) and embed them in 2-D.

    Parameters
    ----------
    store:
        A finished attribution store.
    class_index:
        The class to analyse.
    spray:
        The (unfitted) analysis and its parameters; ``SpRAy(seed=seed)`` by default.
    groups:
        Any known annotation of the selected samples (M,), e.g. whether a tag is planted, for the
        clusters' purity.
    seed:
        Seed of the t-SNE view (and of the default ``spray``).
    """
    from relprop.spray import embed_2d

    rows = class_rows(store, class_index)
    spray = SpRAy(seed=seed) if spray is None else spray
    heatmaps = np.asarray(store.attribution[rows], dtype=np.float32)
    labels, predictions = store.label[rows], store.prediction[rows]
    known = labels >= 0
    spray.fit(
        heatmaps,
        labels=labels if known.all() else None,
        predictions=predictions if known.all() else None,
        groups=groups,
    )
    eigenvectors = spray.spectrum_.eigenvectors
    perplexity = min(30.0, max(1.0, (len(rows) - 1) / 3))
    tsne = embed_2d(eigenvectors, "tsne", seed, perplexity=perplexity)
    return ClassAnalysis(
        class_index=class_index,
        rows=rows,
        index=store.index[rows],
        labels=labels,
        predictions=predictions,
        heatmaps=heatmaps,
        spray=spray,
        tsne=tsne,
        params=dict(store.params),
        groups=None if groups is None else np.asarray(groups),
    )


def analyse_stored_class(
    path: str | Path,
    class_index: int,
    *,
    size: int | None = None,
    n_neighbors: int = 10,
    n_clusters: int | None = None,
    seed: int = 0,
) -> ClassAnalysis:
    """:func:`analyse_class` of the store at ``path``, with ``SpRAy(size, n_neighbors, n_clusters, seed)``.

    ``size`` (the heatmaps are sum-pooled to ``size x size`` first) is at most 32 by default, and at most
    the heatmaps' size. Rows that HDF5 cannot read (a damaged chunk) raise a ``ValueError`` naming the store.
    """
    from relprop.store import open as open_store

    with open_store(path) as store:
        size = size or min(32, *store.attribution.shape[-2:])
        spray = SpRAy(size=size, n_neighbors=n_neighbors, n_clusters=n_clusters, seed=seed)
        try:
            return analyse_class(store, class_index, spray, seed=seed)
        except OSError as error:
            raise ValueError(f"{path} is damaged: reading its rows failed: {error}") from error
