"""Merging shards: the merged store reads as the unsharded one; gaps and duplicates are named."""

import numpy as np
import pytest

from relprop import store
from relprop.store.merge import _runs

from .test_store import _assert_same


def _shards(tmp_path, dataset, model, count):
    return [
        store.attribute_dataset(dataset, model, tmp_path / f"part{i}.h5", shard=(i, count), progress=False)
        for i in range(count)
    ]


def test_merged_shards_equal_the_unsharded_run(tmp_path, dataset, model, monkeypatch):
    full = store.attribute_dataset(dataset, model, tmp_path / "full.h5", progress=False)
    shards = _shards(tmp_path, dataset, model, 3)
    merged = store.merge(tmp_path / "merged.h5", list(reversed(shards)))
    monkeypatch.chdir(tmp_path.parent)  # the virtual datasets find the shards next to the merged file
    _assert_same(merged, full)
    with store.open(merged) as run:
        assert run.attribution.is_virtual
        assert run.params["shard"] == "merged from 3"


def test_missing_and_duplicate_samples_are_named(tmp_path, dataset, model):
    shards = _shards(tmp_path, dataset, model, 3)
    with pytest.raises(ValueError, match=r"missing samples 1, 4, 7, 10, 13, 16, 19, 22$"):
        store.merge(tmp_path / "m.h5", [shards[0], shards[2]])
    other = store.attribute_dataset(dataset, model, tmp_path / "other.h5", shard=(0, 2), progress=False)
    with pytest.raises(ValueError, match=r"more than once 0, 2, 4, 6, 8, 10, 12, 14, 16, 18 and 2 more$"):
        store.merge(tmp_path / "m.h5", [*shards, other])
    assert not (tmp_path / "m.h5").exists()


def test_shards_of_different_runs_are_refused(tmp_path, dataset, model):
    one = store.attribute_dataset(dataset, model, tmp_path / "a.h5", shard=(0, 2), progress=False)
    two = store.attribute_dataset(dataset, model, tmp_path / "b.h5", shard=(1, 2), dtype="float32")
    with pytest.raises(ValueError, match="dtype"):
        store.merge(tmp_path / "m.h5", [one, two])


def test_arithmetic_runs():
    assert _runs(np.array([1, 4, 7, 8, 9, 20])) == [(0, 3, 1, 3), (3, 2, 8, 1), (5, 1, 20, 1)]
    assert _runs(np.array([5])) == [(0, 1, 5, 1)]
