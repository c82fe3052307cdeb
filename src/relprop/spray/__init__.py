"""Spectral Relevance Analysis (SpRAy): find groups of heatmaps that reveal distinct model strategies.

Steps (Lapuschkin et al., Nat. Commun. 10:1096, 2019): preprocess heatmaps, build a kNN affinity
graph, take the smallest eigenpairs of its normalized Laplacian, suggest a number of clusters by
the eigengap, cluster the spectral embedding, view it in 2-D and summarise each cluster, testing whether
its relevance sits in one small fixed region more than that of random groups of the class.
"""

from relprop.spray.artefact import ArtefactScore, ArtefactTest, artefact_score, artefact_test
from relprop.spray.clustering import cluster_embedding
from relprop.spray.graph import knn_affinity
from relprop.spray.pipeline import SpRAy
from relprop.spray.preprocessing import as_heatmap_array, normalize, preprocess_heatmaps, sum_pool
from relprop.spray.spectral import (
    Eigengap,
    LaplacianSpectrum,
    eigengap,
    laplacian_spectrum,
    spectral_embedding,
)
from relprop.spray.statistics import ClusterStatistics, cluster_statistics
from relprop.spray.views import embed_2d

__all__ = [
    "ArtefactScore",
    "ArtefactTest",
    "ClusterStatistics",
    "Eigengap",
    "LaplacianSpectrum",
    "SpRAy",
    "artefact_score",
    "artefact_test",
    "as_heatmap_array",
    "cluster_embedding",
    "cluster_statistics",
    "eigengap",
    "embed_2d",
    "knn_affinity",
    "laplacian_spectrum",
    "normalize",
    "preprocess_heatmaps",
    "spectral_embedding",
    "sum_pool",
]
