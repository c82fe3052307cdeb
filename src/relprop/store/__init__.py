"""Attributions of whole data sets: computed in resumable, shardable runs into HDF5 stores, read lazily.

>>> from relprop import store
>>> store.attribute_dataset(dataset, model, "run.h5", composite=composites.EpsilonPlusFlat())
>>> with store.open("run.h5") as run:
...     heatmaps = run.attribution[:100]          # read on slicing, never loaded whole
>>> store.merge("all.h5", ["part0.h5", "part1.h5"])  # shards computed with shard=(i, n)
>>> store.export_virelay("all.h5", "all-lrp.attribution.h5")
"""

from relprop.store._file import AttributionStore, Rows, StoreWriter, open
from relprop.store.dataset import OtherDataError, load_store_dataset
from relprop.store.merge import merge
from relprop.store.run import Attributor, attribute_dataset, parse_shard, shard_indices
from relprop.store.virelay import export_virelay

__all__ = [
    "AttributionStore",
    "Attributor",
    "OtherDataError",
    "Rows",
    "StoreWriter",
    "attribute_dataset",
    "export_virelay",
    "load_store_dataset",
    "merge",
    "open",
    "parse_shard",
    "shard_indices",
]
