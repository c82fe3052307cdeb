"""The store: values against a direct LRP call, resuming, refusing other runs, shards, bad samples."""

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from relprop import LRP, composites, methods, store
from relprop.data import ArrayDataset, SampleError
from relprop.store import _file
from relprop.store._file import Rows, StoreWriter
from relprop.store.run import _fingerprint_rows, _on_device

from .conftest import tiny_model


def _direct(dataset, model, target=None):
    x = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.no_grad():
        output = model(x)
    explainer = LRP(model, composite=composites.EpsilonPlusFlat())
    return output.numpy(), explainer(x, target).numpy()


def test_rows_match_a_direct_lrp_call(tmp_path, dataset, model):
    path = store.attribute_dataset(dataset, model, tmp_path / "run.h5", batch_size=5, dtype="float32")
    output, attribution = _direct(dataset, model)
    with store.open(path) as run:
        assert len(run) == 23
        np.testing.assert_array_equal(run.index[:], np.arange(23))
        np.testing.assert_array_equal(run.label[:], dataset.y)
        np.testing.assert_allclose(run.output[:], output, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(run.prediction[:], output.argmax(1))
        np.testing.assert_allclose(run.attribution[:], attribution, rtol=1e-5, atol=1e-7)
        assert isinstance(run.attribution, h5py.Dataset)  # lazy: read on slicing
        assert run.attribution.compression == "gzip"
        assert run.params["method"] == "lrp" and run.params["relprop_version"]
        assert run.params["sample_shape"] == [1, 4, 4]


@pytest.mark.parametrize("target", ["prediction", "label"])
def test_any_explainer_fills_a_store(tmp_path, dataset, model, target):
    method = functools.partial(methods.IntegratedGradients, steps=8)
    path = store.attribute_dataset(
        dataset, model, tmp_path / "run.h5", method=method, target=target, dtype="float32", progress=False
    )
    x = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.no_grad():
        output = model(x)
    explained = None if target == "prediction" else torch.as_tensor(dataset.y)
    expected = methods.IntegratedGradients(model, steps=8)(x, explained)
    with store.open(path) as run:
        np.testing.assert_allclose(run.output[:], output.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(run.attribution[:], expected.numpy(), rtol=1e-5, atol=1e-7)
        # the explainer's complete description, whatever the caller's description says
        assert run.params["method"] == repr(methods.IntegratedGradients(model, steps=8))
        assert "steps=8.0" in run.params["method"] and "composite" not in run.params
    other = functools.partial(methods.IntegratedGradients, steps=16)
    with pytest.raises(ValueError, match="different run .method: .*steps=8.0.*steps=16.0"):
        store.attribute_dataset(
            dataset, model, path, method=other, target=target, dtype="float32", progress=False
        )


def test_a_method_is_an_explainer_factory_and_not_a_composite_too(tmp_path, dataset, model):
    with pytest.raises(ValueError, match="not both"):
        store.attribute_dataset(
            dataset, model, tmp_path / "a.h5", composite=composites.EpsilonPlusFlat(), method=methods.Gradient
        )
    with pytest.raises(TypeError, match="not an explainer"):
        store.attribute_dataset(dataset, model, tmp_path / "b.h5", method=lambda model: model)
    with pytest.raises(TypeError, match="Composite or a callable"):
        store.Attributor(dataset, model, "epsilon", (1, 4, 4))
    assert not (tmp_path / "a.h5").exists() and not (tmp_path / "b.h5").exists()


def test_the_model_is_left_where_it_is(model):
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    assert _on_device(model, torch.device("cpu")) is model
    elsewhere = _on_device(model, torch.device("meta"))  # another device: a copy moves, the model stays
    assert elsewhere is not model and next(elsewhere.parameters()).device.type == "meta"
    assert all(tensor.device.type == "cpu" for tensor in model.state_dict().values())
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name])


def test_label_target_float16_pool_and_channel_sum(tmp_path, dataset, model):
    path = store.attribute_dataset(
        dataset, model, tmp_path / "run.h5", target="label", pool=(2, 1), sum_channels=True, progress=False
    )
    _, attribution = _direct(dataset, model, torch.as_tensor(dataset.y))
    with store.open(path) as run:
        assert run.attribution.dtype == np.float16
        assert run.attribution.shape == (23, 1, 2, 1)
        # each stored cell is the sum of its 2 x 4 block: total relevance is kept
        expected = attribution.reshape(23, 1, 2, 2, 1, 4).sum(axis=(3, 5))
        np.testing.assert_allclose(run.attribution[:].astype(np.float64), expected, rtol=2e-3, atol=1e-4)


def test_pool_must_divide_the_sample(tmp_path, dataset, model):
    with pytest.raises(ValueError, match="divide"):
        store.attribute_dataset(dataset, model, tmp_path / "run.h5", pool=(3, 3))


def test_resume_continues_after_the_last_complete_batch(tmp_path, dataset, model, monkeypatch):
    full = store.attribute_dataset(dataset, model, tmp_path / "full.h5", batch_size=4, progress=False)
    with StoreWriter(tmp_path / "part.h5", _params_of(full), 23) as writer:
        attributor = store.Attributor(dataset, model, composites.EpsilonPlusFlat(), (1, 4, 4))
        writer.append(attributor.compute(np.arange(8)))
    computed, compute = [], store.Attributor.compute
    monkeypatch.setattr(
        store.Attributor, "compute", lambda self, rows: computed.extend(rows) or compute(self, rows)
    )
    store.attribute_dataset(dataset, model, tmp_path / "part.h5", batch_size=4, progress=False)
    assert computed == list(range(8, 23))
    _assert_same(tmp_path / "part.h5", full)


def test_other_data_of_the_same_size_is_another_run(tmp_path, dataset, model):
    path = tmp_path / "run.h5"
    broken = _Broken(dataset.x, dataset.y, bad=9, what="read")
    same = {"dataset": "ArrayDataset"}
    with pytest.raises(SampleError):  # interrupted after 8 samples
        store.attribute_dataset(broken, model, path, batch_size=4, progress=False, description=same)
    rewritten = ArrayDataset(dataset.x[::-1].copy(), dataset.y)  # the file rewritten in another order
    relabelled = ArrayDataset(dataset.x, (dataset.y + 1) % 5)
    for other in (rewritten, relabelled):
        with pytest.raises(ValueError, match=r"different run \(dataset_fingerprint differs\)"):
            store.attribute_dataset(other, model, path, batch_size=4, progress=False)
    copy = ArrayDataset(dataset.x.copy(), dataset.y.copy())
    store.attribute_dataset(copy, model, path, batch_size=4, progress=False)  # the same data resumes
    full = store.attribute_dataset(dataset, model, tmp_path / "full.h5", batch_size=4, progress=False)
    _assert_same(path, full)


def _params_of(path):
    with h5py.File(path, "r") as file:
        return json.loads(file.attrs["params"])


def _assert_same(a, b):
    with store.open(a) as one, store.open(b) as two:
        for field in ("index", "label", "output", "prediction", "attribution"):
            np.testing.assert_array_equal(getattr(one, field)[:], getattr(two, field)[:], err_msg=field)


KILLER = """
import os, signal, sys
import numpy as np
sys.path.insert(0, {tests!r})
from relprop import store
from relprop.data import ArrayDataset
from store.conftest import tiny_model

class Killing(ArrayDataset):
    def __getitem__(self, index):
        if index == int(os.environ.get("KILL_AT", -1)):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(index)

rng = np.random.default_rng(0)
data = Killing(rng.random((23, 1, 4, 4), dtype=np.float32), rng.integers(0, 5, 23))
store.attribute_dataset(data, tiny_model(), sys.argv[1], batch_size=4, progress=False)
"""


def test_killed_with_sigkill_then_resumed_equals_an_uninterrupted_run(tmp_path, dataset, model):
    script = tmp_path / "killer.py"
    script.write_text(textwrap.dedent(KILLER.format(tests=str(Path(__file__).parents[1]))))
    env = {**os.environ, "PYTHONPATH": str(Path(store.__file__).parents[2])}
    path = tmp_path / "run.h5"
    assert 12 not in _fingerprint_rows(23)  # killed while computing, not while fingerprinting the data
    killed = subprocess.run([sys.executable, str(script), str(path)], env={**env, "KILL_AT": "12"})
    assert killed.returncode == -signal.SIGKILL
    with h5py.File(path, "r", swmr=True) as file:  # left "open for writing" by the killed writer
        # batches 0-3 and 4-7 were written; 8-11, compressed while 12-15 was loaded, was not yet
        assert int(file["done"][()]) == 8
    resumed = subprocess.run([sys.executable, str(script), str(path)], env=env)
    assert resumed.returncode == 0
    full = store.attribute_dataset(dataset, model, tmp_path / "full.h5", batch_size=4, progress=False)
    _assert_same(path, full)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["full.h5", "full.h5.lock", "killer.py", "run.h5", "run.h5.lock"]  # nothing half-written


def test_a_store_of_another_run_is_refused_and_left_intact(tmp_path, dataset, model):
    path = store.attribute_dataset(dataset, model, tmp_path / "run.h5", progress=False)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="dtype: store has 'float16', this run 'float32'"):
        store.attribute_dataset(dataset, model, path, dtype="float32")
    with pytest.raises(ValueError, match="model_fingerprint"):
        store.attribute_dataset(dataset, tiny_model(seed=1), path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "other",
    [
        composites.EpsilonGammaBox(low=-100, high=100, epsilon=0.5),
        composites.EpsilonGammaBox(low=torch.zeros(1, 1, 1), high=torch.full((1, 1, 1), 2.0)),
        composites.EpsilonGammaBox(low=0, high=1, gamma=0.5),
        composites.EpsilonPlusFlat(epsilon=0.25),
    ],
    ids=["bounds-and-epsilon", "tensor-bounds", "gamma", "another-preset"],
)
def test_a_composite_with_other_parameters_is_another_run(tmp_path, dataset, model, other):
    path = tmp_path / "run.h5"
    first = composites.EpsilonGammaBox(low=0, high=1)
    store.attribute_dataset(
        dataset, model, path, composite=first, description={"composite": "ignored"}, progress=False
    )
    assert _params_of(path)["composite"] == repr(first)  # a description cannot stand in for the composite
    before = path.read_bytes()
    refused = r"different run \(composite: store has 'EpsilonGammaBox\(low=0.0, high=1.0,"
    with pytest.raises(ValueError, match=refused):
        store.attribute_dataset(dataset, model, path, composite=other, progress=False)
    assert path.read_bytes() == before
    same = composites.EpsilonGammaBox(low=0.0, high=1.0)  # the same numbers, spelled otherwise
    store.attribute_dataset(dataset, model, path, composite=same, progress=False)


def test_a_foreign_file_is_refused_and_left_intact(tmp_path, dataset, model):
    text = tmp_path / "notes.h5"
    text.write_text("my notes")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        store.attribute_dataset(dataset, model, text)
    assert text.read_text() == "my notes"
    other = tmp_path / "other.h5"
    with h5py.File(other, "w", libver="latest") as file:
        file["x"] = np.arange(3)
    with pytest.raises(ValueError, match="not a relprop attribution store"):
        store.attribute_dataset(dataset, model, other)
    with h5py.File(other, "r") as file:
        np.testing.assert_array_equal(file["x"][:], np.arange(3))


class _Broken(ArrayDataset):
    def __init__(self, x, y, bad, what):
        super().__init__(x, y)
        self.bad, self.what = bad, what

    def __getitem__(self, index):
        x, label = super().__getitem__(index)
        if index != self.bad:
            return x, label
        if self.what == "shape":
            return x[:, :3], label
        if self.what == "label":
            return x, 7
        raise OSError("truncated file")


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("shape", r"sample 9 has shape \(1, 3, 4\)"),
        ("label", "sample 9: label 7 is out of range for a model with 5 outputs"),
        ("read", "sample 9: cannot load it: truncated file"),
    ],
)
def test_a_bad_sample_is_named_and_finished_batches_stay(tmp_path, dataset, model, what, message):
    broken = _Broken(dataset.x, dataset.y, bad=9, what=what)
    assert 9 not in _fingerprint_rows(23)  # a sample the fingerprint reads is part of the data's identity
    same = {"dataset": "ArrayDataset"}  # the data set, fixed, is the same
    path = tmp_path / "run.h5"
    with pytest.raises(SampleError, match=message):
        store.attribute_dataset(broken, model, path, batch_size=4, progress=False, description=same)
    with h5py.File(path, "r") as file:  # closed cleanly, batches 0-3 and 4-7 kept
        assert int(file["done"][()]) == 8
    store.attribute_dataset(dataset, model, path, batch_size=4, progress=False, description=same)  # resumes
    full = store.attribute_dataset(dataset, model, tmp_path / "full.h5", batch_size=4, progress=False)
    _assert_same(path, full)


def test_a_failure_of_the_explainer_is_no_bad_sample(tmp_path, dataset, model, monkeypatch):
    def bug_in_a_rule(self, x, start):
        raise RuntimeError("a bug in a rule")

    monkeypatch.setattr(LRP, "propagate", bug_in_a_rule)
    with pytest.raises(RuntimeError, match="a bug in a rule") as raised:
        store.attribute_dataset(dataset, model, tmp_path / "run.h5", progress=False)
    assert not isinstance(raised.value, SampleError)


def test_samples_the_model_cannot_take_or_in_training_mode_are_refused_first(tmp_path, dataset, model):
    wide = ArrayDataset(np.zeros((3, 2, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"the model fails on samples of shape \(2, 4, 4\) \(sample 0\)"):
        store.attribute_dataset(wide, model, tmp_path / "run.h5", progress=False)
    training = torch.nn.Sequential(torch.nn.BatchNorm2d(1), *model).train()
    with pytest.raises(ValueError, match="training mode"):
        store.attribute_dataset(dataset, training, tmp_path / "run.h5", progress=False)
    assert not (tmp_path / "run.h5").exists()


def test_a_sample_with_nan_or_infinite_values_is_named(tmp_path, dataset, model):
    x = dataset.x.copy()
    x[6, 0, 1, 2] = np.inf
    with pytest.raises(SampleError, match="sample 6 contains NaN or infinite values"):
        store.attribute_dataset(ArrayDataset(x, dataset.y), model, tmp_path / "run.h5", progress=False)


def test_float16_overflow_is_an_error(tmp_path, dataset, model):
    big = ArrayDataset(dataset.x * 1e7, dataset.y)
    with pytest.raises(
        SampleError, match="sample 0: its attribution .* not finite in float16; store float32"
    ):
        store.attribute_dataset(big, model, tmp_path / "run.h5", progress=False)


def test_an_incomplete_store_cannot_be_opened(tmp_path, dataset, model):
    with StoreWriter(tmp_path / "part.h5", {"a": 1}, 23) as writer:
        attributor = store.Attributor(dataset, model, composites.EpsilonPlusFlat(), (1, 4, 4))
        writer.append(attributor.compute(np.arange(4)))
        with pytest.raises(ValueError, match="is being written by another process"):
            StoreWriter(tmp_path / "part.h5", {"a": 1}, 23).__enter__()
    with pytest.raises(ValueError, match=r"incomplete \(4 of 23 samples\)"):
        store.open(tmp_path / "part.h5")


def test_writer_refuses_rows_beyond_its_size(tmp_path):
    rows = Rows(np.arange(3), np.zeros(3, int), np.zeros((3, 2)), np.zeros(3, int), np.zeros((3, 1)))
    with StoreWriter(tmp_path / "s.h5", {}, 2) as writer, pytest.raises(ValueError, match="exceed"):
        writer.append(rows)


def test_a_store_that_cannot_be_created_leaves_nothing_half_written(tmp_path):
    unstorable = np.empty((2, 1), dtype=object)
    rows = Rows(np.arange(2), np.zeros(2, int), np.zeros((2, 2)), np.zeros(2, int), unstorable)
    with StoreWriter(tmp_path / "s.h5", {}, 2) as writer, pytest.raises(TypeError, match="Object dtype"):
        writer.append(rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5.lock"]


def test_shards_are_a_round_robin_partition():
    np.testing.assert_array_equal(store.shard_indices(10, (1, 3)), [1, 4, 7])
    parts = np.concatenate([store.shard_indices(10, (i, 3)) for i in range(3)])
    np.testing.assert_array_equal(np.sort(parts), np.arange(10))
    assert store.parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "1", "a/b", "-1/2"):
        with pytest.raises(ValueError, match="shard"):
            store.parse_shard(bad)


def _writer_with_rows(path, dataset, model, rows=4):
    writer = StoreWriter(path, {"a": 1}, 23).__enter__()
    attributor = store.Attributor(dataset, model, composites.EpsilonPlusFlat(), (1, 4, 4))
    writer.append(attributor.compute(np.arange(rows)))
    return writer


def test_a_symlink_to_a_live_store_is_the_same_store(tmp_path, dataset, model):
    real, link = tmp_path / "real.h5", tmp_path / "link.h5"
    link.symlink_to(real)
    writer = _writer_with_rows(real, dataset, model)
    try:
        with pytest.raises(ValueError, match="link.h5 is being written by another process"):
            StoreWriter(link, {"a": 1}, 23).__enter__()
        assert link.is_symlink() and link.resolve() == real
    finally:
        writer.close()
    with h5py.File(real, "r") as file:
        assert int(file["done"][()]) == 4


def test_a_store_written_through_a_symlink_is_written_where_it_points(tmp_path, dataset, model):
    real, link = tmp_path / "real.h5", tmp_path / "link.h5"
    link.symlink_to(real)  # dangling until the store exists
    _writer_with_rows(link, dataset, model).close()
    assert link.is_symlink() and real.is_file()
    with StoreWriter(link, {"a": 1}, 23) as resumed:  # resuming through the link finds the rows
        assert resumed.done == 4
    assert link.is_symlink()


def test_a_writer_that_closes_leaves_the_lock_to_whoever_opened_it_meanwhile(tmp_path, dataset, model):
    import fcntl

    path = tmp_path / "run.h5"
    writer = _writer_with_rows(path, dataset, model)
    waiting = (tmp_path / "run.h5.lock").open("a")  # another process opened it and is about to lock it
    writer.close()
    fcntl.flock(waiting, fcntl.LOCK_EX | fcntl.LOCK_NB)  # it got the lock of the store
    try:
        with pytest.raises(ValueError, match="is being written by another process"):
            StoreWriter(path, {"a": 1}, 23).__enter__()
    finally:
        waiting.close()
    with StoreWriter(path, {"a": 1}, 23) as writer:
        assert writer.done == 4


def test_batches_compressed_in_threads_read_back_exactly_and_are_counted_once_written(tmp_path, monkeypatch):
    compressed = []
    compress = _file._shuffle_and_deflate
    monkeypatch.setattr(
        _file,
        "_shuffle_and_deflate",
        lambda block, level: compressed.append(len(block)) or compress(block, level),
    )
    rng = np.random.default_rng(0)
    attribution = rng.standard_normal((23, 2, 3, 5)).astype(np.float16)

    def rows(start, stop):
        index = np.arange(start, stop)
        return Rows(
            index, index % 3, rng.standard_normal((stop - start, 4)), index % 4, attribution[start:stop]
        )

    path = tmp_path / "s.h5"
    with StoreWriter(path, {}, 23) as writer:
        writer.append(rows(0, 5))  # the first batch is written at once; it sets chunks of 5 rows
        assert writer.done == 5
        writer.append(rows(5, 15))  # two whole chunks, compressed in threads
        assert writer.done == 5  # written when the next batch comes
        writer.append(rows(15, 20))
        assert writer.done == 15
    with StoreWriter(path, {}, 23) as writer:  # resumed
        writer.append(rows(20, 23))  # the last chunk, stored whole beyond the last row
    with StoreWriter(path, {}, 23) as writer:
        assert writer.done == 23
    with h5py.File(path, "r") as file:
        np.testing.assert_array_equal(file["attribution"][:], attribution)  # bit for bit
        assert file["attribution"].chunks == (5, 2, 3, 5)
        assert [file["attribution"].compression, file["attribution"].shuffle] == ["gzip", True]
    assert compressed == [5, 5, 5, 5]  # every batch after the first, chunk by chunk, the last one padded


def test_a_batch_that_does_not_cover_whole_chunks_is_compressed_by_hdf5(tmp_path):
    attribution = np.arange(23 * 4, dtype=np.float32).reshape(23, 1, 2, 2)
    index = np.arange(23)
    batches = [(0, 4), (4, 10), (10, 13), (13, 23)]  # chunks of 4 rows; the later batches cross chunks
    path = tmp_path / "s.h5"
    with StoreWriter(path, {}, 23) as writer:
        for start, stop in batches:
            part = slice(start, stop)
            writer.append(
                Rows(index[part], index[part], np.zeros((stop - start, 2)), index[part], attribution[part])
            )
    with h5py.File(path, "r") as file:
        np.testing.assert_array_equal(file["attribution"][:], attribution)
        np.testing.assert_array_equal(file["index"][:], index)
