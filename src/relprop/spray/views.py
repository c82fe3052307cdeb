"""Step 6 of SpRAy: 2-D views for inspection (t-SNE, UMAP)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn.manifold import TSNE

from relprop.deprecation import renamed_keyword


@renamed_keyword("random_state", "seed")
def embed_2d(
    features: np.ndarray,
    method: Literal["tsne", "umap"] = "tsne",
    seed: int | None = None,
    **params: Any,
) -> np.ndarray:
    """Two-dimensional coordinates (N, 2) of the rows of ``features`` for plotting.

    ``"tsne"`` uses scikit-learn's ``TSNE`` (PCA initialisation); ``"umap"`` needs the optional
    package ``umap-learn``. ``params`` go to the estimator (e.g. ``perplexity=10``).
    """
    features = np.asarray(features)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"features must have shape (N, D) with N >= 2, got shape {features.shape}")
    if method == "tsne":
        estimator = TSNE(n_components=2, init="pca", random_state=seed, **params)
    elif method == "umap":
        try:
            import umap
        except ImportError as error:
            raise ImportError(
                "UMAP views need the optional package umap-learn: pip install umap-learn"
            ) from error
        estimator = umap.UMAP(n_components=2, random_state=seed, **params)
    else:
        raise ValueError(f"method must be 'tsne' or 'umap', got {method!r}")
    return np.asarray(estimator.fit_transform(features))
