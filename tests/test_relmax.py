"""Relevance maximization: the store run against brute force over a small data set, and resumed after an
interruption as if never interrupted."""

import numpy as np
import pytest
import torch
from torch import nn

from relprop import LRP, concepts, store
from relprop.data import ArrayDataset

LAYERS = ["0", "2"]


def tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(inplace=True),  # overwrites the output of "0" after its activation was taken
        nn.Conv2d(6, 5, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(5 * 3 * 3, 4),
    ).eval()


@pytest.fixture
def dataset():
    rng = np.random.default_rng(0)
    return ArrayDataset(rng.standard_normal((21, 3, 6, 6)).astype(np.float32), rng.integers(0, 4, 21))


def brute_force(model, dataset, layer, k):
    """Each sample alone: its relevance per channel (summed) and its activation (largest), then sorted."""
    explainer = LRP(model)
    relevance, activation = [], []
    for i in range(len(dataset)):
        x = torch.as_tensor(dataset[i][0])[None]
        relevance.append(concepts.concept_importance(explainer, x, layer)[0])
        with torch.no_grad():
            output = model[: int(layer) + 1](x.clone())
        activation.append(output[0].flatten(1).amax(dim=1))
    relevance, activation = torch.stack(relevance).T, torch.stack(activation).T  # (C, samples)
    by_relevance = relevance.argsort(dim=1, descending=True)[:, :k]
    by_activation = activation.argsort(dim=1, descending=True)[:, :k]
    return by_relevance, relevance.gather(1, by_relevance), by_activation, activation.gather(1, by_activation)


def test_relmax_equals_brute_force(tmp_path, dataset):
    model = tiny_cnn()
    path = concepts.relmax_dataset(
        dataset, model, tmp_path / "relmax.h5", LAYERS, batch_size=4, progress=False
    )
    found = concepts.top_references(path, k=5)
    assert list(found) == LAYERS
    for layer in LAYERS:
        by_relevance, relevance, by_activation, activation = brute_force(model, dataset, layer, 5)
        np.testing.assert_array_equal(found[layer].by_relevance, by_relevance.numpy())
        np.testing.assert_allclose(found[layer].relevance, relevance.numpy(), rtol=1e-4, atol=1e-7)
        np.testing.assert_array_equal(found[layer].by_activation, by_activation.numpy())
        np.testing.assert_allclose(found[layer].activation, activation.numpy(), rtol=1e-5, atol=1e-6)
    assert found["0"].by_relevance.shape == (6, 5)


def test_top_references_read_in_chunks_equal_one_read(tmp_path, dataset, monkeypatch):
    path = concepts.relmax_dataset(dataset, tiny_cnn(), tmp_path / "relmax.h5", LAYERS, progress=False)
    whole = concepts.top_references(path, k=3)
    monkeypatch.setattr(concepts.relmax, "_READ_ROWS", 4)
    for layer in LAYERS:
        np.testing.assert_array_equal(
            concepts.top_references(path, k=3)[layer].by_relevance, whole[layer].by_relevance
        )


def test_an_interrupted_relmax_run_resumes_to_the_uninterrupted_result(tmp_path, dataset, monkeypatch):
    model = tiny_cnn()
    full = concepts.relmax_dataset(dataset, model, tmp_path / "full.h5", LAYERS, batch_size=4, progress=False)
    compute, calls = store.Attributor.compute, []

    def interrupted(self, rows):
        calls.append(list(rows))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return compute(self, rows)

    monkeypatch.setattr(store.Attributor, "compute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        concepts.relmax_dataset(dataset, model, tmp_path / "part.h5", LAYERS, batch_size=4, progress=False)
    monkeypatch.setattr(
        store.Attributor, "compute", lambda self, rows: calls.append(list(rows)) or compute(self, rows)
    )
    concepts.relmax_dataset(dataset, model, tmp_path / "part.h5", LAYERS, batch_size=4, progress=False)
    assert calls[3][0] == 8  # resumed after the two batches written before the interruption
    with store.open(full) as a, store.open(tmp_path / "part.h5") as b:
        np.testing.assert_array_equal(a.attribution[:], b.attribution[:])
    assert concepts.top_references(full, 4)["2"].by_relevance.tolist() == (
        concepts.top_references(tmp_path / "part.h5", 4)["2"].by_relevance.tolist()
    )


def test_relmax_takes_module_names(tmp_path, dataset):
    with pytest.raises(ValueError, match="the model has no module 'features.3'"):
        concepts.relmax_dataset(dataset, tiny_cnn(), tmp_path / "r.h5", ["features.3"], progress=False)
    attributions = store.attribute_dataset(dataset, tiny_cnn(), tmp_path / "plain.h5", progress=False)
    with pytest.raises(ValueError, match="not a relevance maximization store"):
        concepts.top_references(attributions)


def test_reference_crops_cut_the_receptive_field_of_the_most_relevant_position(tmp_path, dataset):
    model = tiny_cnn()
    path = concepts.relmax_dataset(dataset, model, tmp_path / "relmax.h5", LAYERS, progress=False)
    references = concepts.top_references(path, k=3)["2"]
    explainer = LRP(model)
    crops = concepts.reference_crops(explainer, dataset, references, channel=1)
    assert [c.index for c in crops] == references.by_relevance[1].tolist()
    for crop in crops:
        x = torch.as_tensor(dataset[crop.index][0])[None]
        at_layer = concepts.conditional_heatmaps(explainer, x, [{"2": 1}], record=["2"]).layers["2"][0, 0, 1]
        row, col = divmod(int(at_layer.argmax()), at_layer.shape[1])
        # two 3x3 convolutions with padding 1: the field is the 5x5 square around the position, cut at edges
        assert crop.box == (max(row - 2, 0), min(row + 3, 6), max(col - 2, 0), min(col + 3, 6))
        top, bottom, left, right = crop.box
        torch.testing.assert_close(crop.crop, x[0, :, top:bottom, left:right])
        heatmap = concepts.conditional_heatmaps(explainer, x, [{"2": 1}]).heatmaps[0, 0]
        torch.testing.assert_close(crop.heatmap, heatmap[:, top:bottom, left:right])
    with pytest.raises(ValueError, match="channel 5 is out of range for layer '2', which has 5"):
        concepts.reference_crops(explainer, dataset, references, channel=5)


def test_relmax_in_shards_merged_equals_one_run(tmp_path, dataset):
    model = tiny_cnn()
    whole = concepts.relmax_dataset(
        dataset, model, tmp_path / "whole.h5", LAYERS, batch_size=4, progress=False
    )
    shards = [
        concepts.relmax_dataset(
            dataset, model, tmp_path / f"part{i}.h5", LAYERS, batch_size=4, shard=(i, 3), progress=False
        )
        for i in range(3)
    ]
    merged = store.merge(tmp_path / "merged.h5", shards)
    for layer in LAYERS:
        a, b = concepts.top_references(whole, 4)[layer], concepts.top_references(merged, 4)[layer]
        np.testing.assert_array_equal(a.by_relevance, b.by_relevance)
        np.testing.assert_array_equal(a.by_activation, b.by_activation)
