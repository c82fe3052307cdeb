"""A small store whose class 1 has two strategies: relevance on a fixed corner tag, or on the object."""

import numpy as np
import pytest

from relprop.store import Rows, StoreWriter


def make_store(path, n_tag=25, n_object=25, n_other=10, size=16, seed=0):
    """Class 1: ``n_tag`` heatmaps with most relevance on a 3x3 corner, ``n_object`` with a blob near the
    centre; class 0: ``n_other`` noise heatmaps; class 2: no samples. Returns the tag flags of
    class 1's rows, in store order."""
    rng = np.random.default_rng(seed)
    n = n_tag + n_object + n_other
    labels = np.array([1] * (n_tag + n_object) + [0] * n_other)
    order = rng.permutation(n)
    labels = labels[order]
    tag = np.zeros(n, dtype=bool)
    tag[np.flatnonzero(order < n_tag)] = True
    heatmaps = rng.normal(0, 0.02, (n, 1, size, size))
    rows, cols = np.mgrid[:size, :size]
    for sample in range(n):
        if labels[sample] != 1:
            continue
        centre = rng.uniform(7, 9, 2)
        blob = np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / 6)
        heatmaps[sample, 0] += 0.3 * blob if tag[sample] else blob
        if tag[sample]:
            heatmaps[sample, 0, :3, :3] += 1.0
    output = np.eye(3)[labels] * 5
    output[0] = np.array([0, 0, 5])  # one wrong prediction (sample 0)
    params = {"target": "label", "dataset": "synthetic", "dataset_size": n, "model": "toy"}
    with StoreWriter(path, params, n) as writer:
        writer.append(
            Rows(
                index=np.arange(n, dtype=np.int64),
                label=labels.astype(np.int64),
                output=output.astype(np.float32),
                prediction=output.argmax(axis=1).astype(np.int64),
                attribution=heatmaps.astype(np.float32),
            )
        )
    return tag[labels == 1]


@pytest.fixture(scope="session")
def two_strategies(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "run.h5"
    tag = make_store(path)
    return path, tag
