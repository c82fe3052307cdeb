"""Ray: the same store as a local run, every sample once, also when a worker dies (about 30-60 s)."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from relprop import concepts, store
from relprop.data import ArrayDataset
from relprop.store.run import _fingerprint_rows

from .test_store import _assert_same

ray = pytest.importorskip("ray")


class DiesOnce(ArrayDataset):
    """Kills the worker process the first time sample 12 is loaded (a marker file remembers it).

    The driver, which fingerprints the data set, never loads sample 12 (see the test).
    """

    def __init__(self, x, y, marker):
        super().__init__(x, y)
        self.marker = marker

    def __getitem__(self, index):
        if index == 12 and not self.marker.exists():
            self.marker.touch()
            os._exit(1)
        return super().__getitem__(index)


@pytest.fixture(scope="module")
def local_ray():
    # the workers import this worktree's relprop and this test module, as the test process does
    paths = [str(Path(store.__file__).parents[2]), str(Path(__file__).parents[1])]
    environment = {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
        runtime_env=environment,
    )
    yield
    ray.shutdown()


def test_ray_run_equals_the_local_run_even_when_a_worker_dies(tmp_path, dataset, model, local_ray):
    local = store.attribute_dataset(dataset, model, tmp_path / "local.h5", batch_size=4, progress=False)
    same = {"dataset": "ArrayDataset"}
    assert 12 not in _fingerprint_rows(len(dataset))
    dying = DiesOnce(dataset.x, dataset.y, tmp_path / "died")
    on_ray = store.attribute_dataset(
        dying, model, tmp_path / "ray.h5", batch_size=4, ray=True, workers=2, description=same, progress=False
    )
    assert (tmp_path / "died").exists()  # a worker did die, and its batch was computed again
    _assert_same(on_ray, local)
    with store.open(on_ray) as run:
        np.testing.assert_array_equal(run.index[:], np.arange(len(dataset)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a Ray cluster without GPUs")
def test_cuda_on_a_cluster_without_gpus_is_refused_instead_of_waiting(tmp_path, dataset, model, local_ray):
    with pytest.raises(ValueError, match="device 'cuda' needs GPUs, and the Ray cluster has none"):
        store.attribute_dataset(dataset, model, tmp_path / "r.h5", ray=True, device="cuda", progress=False)


def test_relmax_on_ray_equals_the_local_run(tmp_path, dataset, model, local_ray):
    local = concepts.relmax_dataset(
        dataset, model, tmp_path / "local.h5", ["0"], batch_size=4, progress=False
    )
    on_ray = concepts.relmax_dataset(
        dataset, model, tmp_path / "ray.h5", ["0"], batch_size=4, ray=True, workers=2, progress=False
    )
    with store.open(local) as a, store.open(on_ray) as b:
        np.testing.assert_array_equal(a.attribution[:], b.attribution[:])
    assert concepts.top_references(on_ray, 3)["0"].by_relevance.tolist() == (
        concepts.top_references(local, 3)["0"].by_relevance.tolist()
    )
