"""Merging shards: the merged store reads as the unsharded one; gaps and duplicates are named."""

import shutil

import h5py
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


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_out_may_be_no_shard_however_spelled(tmp_path, dataset, model):
    full = store.attribute_dataset(dataset, model, tmp_path / "full.h5", progress=False)
    shards = _shards(tmp_path, dataset, model, 2)
    before = {path: path.read_bytes() for path in [full, *shards]}
    (tmp_path / "link.h5").symlink_to(shards[0])
    for out, inputs in [
        (full, [full]),
        (shards[0], [shards[0], shards[1]]),
        (tmp_path / "." / "part1.h5", shards),
        (tmp_path / "link.h5", shards),
    ]:
        with pytest.raises(ValueError, match="is one of the shards"):
            store.merge(out, inputs, force=True)
    assert {path: path.read_bytes() for path in before} == before


def test_a_shard_given_twice_is_refused(tmp_path, dataset, model):
    shards = _shards(tmp_path, dataset, model, 2)
    (tmp_path / "link.h5").symlink_to(shards[1])
    for inputs in ([shards[0], shards[0], shards[1]], [*shards, tmp_path / "link.h5"]):
        with pytest.raises(ValueError, match="given twice"):
            store.merge(tmp_path / "m.h5", inputs)
    assert not (tmp_path / "m.h5").exists()


def test_shards_of_another_run_are_named_with_advice_that_fits_merge(tmp_path, dataset, model):
    shards = _shards(tmp_path, dataset, model, 2)
    other = store.attribute_dataset(
        dataset, model, tmp_path / "other.h5", shard=(1, 2), dtype="float32", progress=False
    )
    with pytest.raises(ValueError, match=r"other.h5 holds a different run \(dtype: ") as error:
        store.merge(tmp_path / "m.h5", [shards[0], other])
    assert str(error.value).endswith(f"merge only the shards of the run of {shards[0]}")
    assert "--out" not in str(error.value)  # merge has no --out


def test_a_merged_store_is_no_shard(tmp_path, dataset, model):
    shards = _shards(tmp_path, dataset, model, 2)
    merged = store.merge(tmp_path / "m.h5", shards)
    with pytest.raises(ValueError, match="m.h5 is a merged store, not a shard"):
        store.merge(tmp_path / "again.h5", [merged])


def test_an_existing_out_is_replaced_only_if_it_is_a_merged_store_of_the_run(tmp_path, dataset, model):
    shards = _shards(tmp_path, dataset, model, 2)
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    full = store.attribute_dataset(dataset, model, tmp_path / "full.h5", progress=False)
    other = [
        store.attribute_dataset(dataset, model, tmp_path / f"o{i}.h5", shard=(i, 2), dtype="float32")
        for i in range(2)
    ]
    other_merged = store.merge(tmp_path / "other.h5", other)
    for out in (notes, full, other_merged):
        before = out.read_bytes()
        with pytest.raises(ValueError, match="exists and is not a merged store of this run.*--force"):
            store.merge(out, shards)
        assert out.read_bytes() == before
    merged = store.merge(tmp_path / "m.h5", shards)
    store.merge(merged, list(reversed(shards)))  # merging a run again replaces its merged store
    store.merge(notes, shards, force=True)
    _assert_same(notes, full)


def test_out_is_written_aside_and_nothing_is_left_when_it_fails(tmp_path, dataset, model, monkeypatch):
    shards = _shards(tmp_path, dataset, model, 2)
    (tmp_path / "folder").mkdir()
    before = _files(tmp_path)
    with pytest.raises(ValueError, match="folder is a folder"):
        store.merge(tmp_path / "folder", shards, force=True)
    (tmp_path / "m.h5").write_text("old")

    def full_disk(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(h5py.Group, "create_virtual_dataset", full_disk)
    with pytest.raises(OSError, match="No space left"):
        store.merge(tmp_path / "m.h5", shards, force=True)
    assert (tmp_path / "m.h5").read_text() == "old"
    assert _files(tmp_path) == sorted([*before, "m.h5"])
    assert _files(tmp_path / "folder") == []


@pytest.fixture
def merged(tmp_path, dataset, model):
    folder = tmp_path / "run"
    folder.mkdir()
    return store.merge(folder / "all.h5", _shards(folder, dataset, model, 3))


def test_a_missing_shard_is_named_on_open_not_read_as_zeros(merged):
    (merged.parent / "part1.h5").unlink()
    with pytest.raises(ValueError, match=r"all.h5: its shard .*run/part1.h5 is missing"):
        store.open(merged)


def test_a_merged_store_away_from_its_shards_names_them(merged, tmp_path):
    moved = tmp_path / "moved.h5"
    shutil.copy(merged, moved)
    with pytest.raises(ValueError, match=f"its shard {tmp_path}/part0.h5 is missing"):
        store.open(moved)


def test_shards_are_found_beside_the_merged_store_never_in_the_current_folder(merged, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(merged.parent / "part1.h5", elsewhere / "part1.h5")  # a file of that name, here
    (merged.parent / "part1.h5").unlink()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(ValueError, match="part1.h5 is missing"):
        store.open(merged)


def test_a_truncated_or_replaced_shard_is_named_on_open(merged, dataset, model):
    shard = merged.parent / "part2.h5"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(ValueError, match="all.h5: its shard .*part2.h5 is truncated"):
        store.open(merged)
    shard.unlink()
    store.attribute_dataset(dataset, model, shard, shard=(1, 3), progress=False)  # another shard
    with pytest.raises(ValueError, match="its shard .*part2.h5 holds another run"):
        store.open(merged)
