"""Write a class analysis in ViRelAy's analysis layout (see :mod:`relprop.store.virelay` for the layout).

One group per analysed class, named by the class index::

    /<class>/index                       (M,)    uint32   data-set indices of the analysed samples
    /<class>/embedding/spectral          (M, m)  float64  Laplacian eigenvectors; attribute 'eigenvalue'
    /<class>/embedding/tsne              (M, 2)  float64  t-SNE of 'spectral'; attributes 'embedding'
                                                          ('spectral') and 'index' (the axes used)
    /<class>/cluster/<method>-<K>        (M,)    int64    cluster of each sample, e.g. 'kmeans-2'
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from relprop.report.analysis import ClassAnalysis

__all__ = ["write_virelay_analysis"]


def write_virelay_analysis(analysis: ClassAnalysis, path: str | Path) -> Path:
    """Add (or replace) the group of ``analysis.class_index`` in the analysis file ``path``."""
    if len(analysis.index) and int(analysis.index.max()) > np.iinfo(np.uint32).max:
        raise ValueError("ViRelAy stores indices as uint32; this data set has larger ones")
    path = Path(path)
    spray = analysis.spray
    with h5py.File(path, "a") as file:
        name = str(analysis.class_index)
        if name in file:
            del file[name]
        group = file.create_group(name)
        group.create_dataset("index", data=analysis.index.astype(np.uint32))
        spectral = group.create_dataset("embedding/spectral", data=spray.spectrum_.eigenvectors)
        spectral.attrs["eigenvalue"] = spray.eigenvalues_
        tsne = group.create_dataset("embedding/tsne", data=analysis.tsne)
        tsne.attrs["embedding"] = "spectral"
        tsne.attrs["index"] = np.arange(spray.spectrum_.eigenvectors.shape[1])
        group.create_dataset(f"cluster/{spray.clustering}-{spray.n_clusters_}", data=spray.labels_)
    return path
