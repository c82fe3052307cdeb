"""Damaged and forged stores: a clear ValueError naming the file, never rows read as zeros."""

import os
import shutil

import h5py
import numpy as np
import pytest

from relprop import composites, store
from relprop.store._file import FORMAT, FORMAT_VERSION, StoreWriter

from .test_store import _params_of


def _forge(path, params="{}", datasets=("index", "label", "output", "prediction", "attribution", "done")):
    """An HDF5 file that claims to be a store of 3 rows, with the given params and datasets only."""
    with h5py.File(path, "w", libver="latest") as file:
        file.attrs.update(relprop_format=FORMAT, relprop_format_version=FORMAT_VERSION, params=params, size=3)
        for name in datasets:
            file[name] = np.int64(3) if name == "done" else np.zeros(3)
    return path


@pytest.mark.parametrize(
    ("forgery", "message"),
    [
        ({"datasets": ("index", "label")}, "lacks the datasets output, prediction, attribution, done"),
        ({"params": "not json"}, "run parameters are not a JSON object"),
        ({"params": "[1, 2]"}, "run parameters are not a JSON object"),
    ],
)
def test_a_forged_store_is_named_with_what_is_wrong(tmp_path, forgery, message):
    path = _forge(tmp_path / "forged.h5", **forgery)
    with pytest.raises(ValueError, match=message) as raised:
        store.open(path)
    assert str(path) in str(raised.value)
    with pytest.raises(ValueError, match=message):
        store.merge(tmp_path / "m.h5", [path])
    with pytest.raises(ValueError, match=message):
        StoreWriter(path, {}, 3).__enter__()


def test_a_store_without_its_size_or_version_is_named(tmp_path):
    path = _forge(tmp_path / "forged.h5")
    with h5py.File(path, "r+") as file:
        del file.attrs["size"]
    with pytest.raises(ValueError, match=f"{path} .*lacks the attribute size"):
        store.open(path)
    with h5py.File(path, "r+") as file:
        file.attrs["size"] = 3
        del file.attrs["relprop_format_version"]
    with pytest.raises(ValueError, match="lacks the attribute relprop_format_version"):
        store.open(path)


def test_rows_of_another_length_than_the_store_are_named(tmp_path):
    path = _forge(tmp_path / "forged.h5")
    with h5py.File(path, "r+") as file:
        del file["label"]
        file["label"] = np.zeros(2)
    with pytest.raises(ValueError, match="label has 2 rows, the store 3"):
        store.open(path)


@pytest.fixture
def finished(tmp_path, dataset, model):
    return store.attribute_dataset(dataset, model, tmp_path / "run.h5", batch_size=4, progress=False)


def _truncated(path, fraction):
    cut = path.with_name(f"cut-{fraction}.h5")
    shutil.copy(path, cut)
    os.truncate(cut, int(cut.stat().st_size * fraction))
    return cut


@pytest.mark.parametrize("fraction", [0.99, 0.9, 0.7, 0.5, 0.2, 0.001])
def test_a_truncated_store_is_refused_on_open(finished, fraction):
    cut = _truncated(finished, fraction)
    with pytest.raises(ValueError, match=f"{cut} is truncated"):
        store.open(cut)
    with pytest.raises(ValueError, match=f"{cut} is truncated"):
        store.merge(cut.with_name("m.h5"), [cut])


def test_a_truncated_unfinished_store_is_called_damaged_not_incomplete(tmp_path, dataset, model):
    path = tmp_path / "part.h5"
    params = {**_params_of(store.attribute_dataset(dataset, model, tmp_path / "full.h5", progress=False))}
    attributor = store.Attributor(dataset, model, composites.EpsilonPlusFlat(), (1, 4, 4))
    with StoreWriter(path, params, 23) as writer:
        writer.append(attributor.compute(np.arange(4)))
        writer.append(attributor.compute(np.arange(4, 8)))
    cut = _truncated(path, 0.7)
    with pytest.raises(ValueError, match="is truncated.*cannot be read or resumed"):
        store.open(cut)
    with pytest.raises(ValueError, match="is truncated"):  # resuming it would copy zeros or fail in HDF5
        StoreWriter(cut, params, 23).__enter__()


def test_a_store_whose_writer_was_killed_and_was_then_truncated_is_not_recovered(tmp_path, dataset, model):
    path = tmp_path / "part.h5"
    attributor = store.Attributor(dataset, model, composites.EpsilonPlusFlat(), (1, 4, 4))
    writer = StoreWriter(path, {"a": 1}, 23).__enter__()
    writer.append(attributor.compute(np.arange(8)))
    cut = _truncated(path, 0.7)  # a copy of a store still open for writing, as a killed writer leaves it
    writer.close()
    with pytest.raises(ValueError, match="is truncated"):
        StoreWriter(cut, {"a": 1}, 23).__enter__()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("cut") and p.suffix == ".new"]


def test_a_longer_file_is_not_damaged(finished):
    with open(finished, "ab") as extra:  # HDF5 reads nothing past the end it records
        extra.write(b"\0" * 100)
    with store.open(finished) as run:
        assert len(run) == 23
