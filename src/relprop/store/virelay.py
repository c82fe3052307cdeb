"""Export a store to the HDF5 layouts that ViRelAy (the SpRAy viewer, github.com/virelay/virelay) reads.

What ViRelAy reads, from its ``virelay/model.py`` (``AttributionDatabase``, ``AnalysisDatabase``) and the
layout example ``docs/examples/hdf5_structure.py`` of the virelay repository:

Attribution file (one per attribution method; a project lists several as ``sources``)::

    /attribution  (N, C, H, W) float32   one heatmap per row
    /label        (N,)         integer   the sample's label index (a bool (N, classes) array if multi-label;
                                         ViRelAy tests ``label[0].dtype == bool``)
    /prediction   (N, K)       float32   the model's output (logits)
    /index        (N,)         uint32    optional: the data-set index of each row; without it row i is
                                         sample i

  ViRelAy looks a sample up by its data-set index, and moves the channel axis last when it is the shortest.
  With ``/index`` each lookup scans it twice (``index in file["index"]`` reads the HDF5 dataset element by
  element up to the sample, then ``numpy.where`` reads it whole): the cost grows with N, 0.14 to 0.78 s a
  lookup at 50,000 rows (mean 0.43 s; ViRelAy 1.0, 10 random samples, 2 cores at load 6). Without
  ``/index`` a lookup is one row read, 1.3 to 9.6 ms there; a ViRelAy project
  (:func:`relprop.report.write_virelay_project`) therefore numbers its samples by store row and keeps the
  data-set indices in ``/dataset_index``.

Analysis file (written by a SpRAy analysis, one group per category, usually a class)::

    /<category>/index                 (M,)   data-set indices of the analysed samples
    /<category>/embedding/<name>      (M, D) an embedding (e.g. 'spectral', 'tsne'); attributes:
                                             'eigenvalue' (spectral), 'embedding' (the name of the
                                             embedding it is computed from) and 'index' (its axes used)
    /<category>/cluster/<name>        (M,)   cluster label of each sample (e.g. 'kmeans-8')

A ViRelAy project (YAML) points at the data set, the attribution files and the analysis files, plus a
label map (JSON) from label indices to names.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from relprop.store._file import AttributionStore

__all__ = ["export_virelay"]

_BLOCK_ROWS = 1024


def export_virelay(store: AttributionStore | str | Path, path: str | Path, by_row: bool = False) -> Path:
    """Write the attribution file of a store in ViRelAy's layout (see the module docstring).

    Rows are copied block by block, so the store is never loaded whole. Attributions are written as
    float32 (ViRelAy renders them with numpy and expects floats), gzip-compressed; ``/prediction`` holds
    the model's outputs (logits), not the predicted classes.

    Parameters
    ----------
    store:
        A finished store, or the path of one.
    path:
        The attribution file to write (e.g. ``run-lrp.attribution.h5``).
    by_row:
        Number the samples by store row (ViRelAy's sample ``i`` is row ``i``, looked up without a scan) and
        write the data-set indices as ``/dataset_index``, which ViRelAy ignores; by default they are
        ``/index``, the samples' numbers in ViRelAy.
    """
    own = not isinstance(store, AttributionStore)
    source = AttributionStore(store) if own else store
    try:
        size = len(source)
        if size and int(source.index[:].max()) > np.iinfo(np.uint32).max:
            raise ValueError("ViRelAy stores indices as uint32; this data set has larger ones")
        path = Path(path)
        with h5py.File(path, "w") as file:
            attribution = file.create_dataset(
                "attribution",
                shape=source.attribution.shape,
                dtype=np.float32,
                chunks=(1, *source.attribution.shape[1:]),
                compression="gzip",
            )
            label = file.create_dataset("label", shape=(size,), dtype=np.int64)
            prediction = file.create_dataset("prediction", shape=source.output.shape, dtype=np.float32)
            index = file.create_dataset(
                "dataset_index" if by_row else "index", shape=(size,), dtype=np.uint32
            )
            for start in range(0, size, _BLOCK_ROWS):
                rows = slice(start, min(size, start + _BLOCK_ROWS))
                attribution[rows] = source.attribution[rows].astype(np.float32)
                label[rows] = source.label[rows]
                prediction[rows] = source.output[rows]
                index[rows] = source.index[rows]
            for name in ("model", "method", "composite"):
                file.attrs[name] = str(source.params.get(name, ""))
    finally:
        if own:
            source.close()
    return path
