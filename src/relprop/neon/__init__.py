"""NEON: explain k-means, kernel k-means, one-class and kernel SVMs, and linear text models.

Each model is rewritten as a network (``neuralize_*``) whose outputs equal the estimator's, and
:class:`NEON` explains it with relprop's calling convention ``NEON(model, **rule_params)(x, target)``.
:class:`DeepKMeans` explains k-means on the features of a PyTorch network, through the network by LRP.
"""

from .deep import DeepKMeans
from .explainer import NEON, NeuralizedModel
from .kernel_kmeans import NeuralizedKernelKMeans, neuralize_kernel_kmeans
from .kmeans import NeuralizedKMeans, neuralize_kmeans
from .linear import NeuralizedLinear, neuralize_linear, word_relevances
from .one_class import NeuralizedOneClassSVM, neuralize_one_class_svm
from .pooling import softmin_shares
from .svm import NeuralizedSVC, neuralize_svc

__all__ = [
    "DeepKMeans",
    "NEON",
    "NeuralizedKMeans",
    "NeuralizedKernelKMeans",
    "NeuralizedLinear",
    "NeuralizedModel",
    "NeuralizedOneClassSVM",
    "NeuralizedSVC",
    "neuralize_kernel_kmeans",
    "neuralize_kmeans",
    "neuralize_linear",
    "neuralize_one_class_svm",
    "neuralize_svc",
    "softmin_shares",
    "word_relevances",
]
