"""The concept atlas: its shares, references and decomposition against the concepts API, and the page in
headless Chromium (skipped without it, as the report's other browser tests)."""

import numpy as np
import pytest
import torch
from torch import nn

from relprop import LRP, concepts
from relprop.data import ArrayDataset
from relprop.report import concept_atlas, write_atlas

from .test_browser import ARGS, CHROMIUM

LAYERS = ["0", "2"]


def tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 5, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(5 * 4 * 4, 3),
    ).eval()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    rng = np.random.default_rng(0)
    dataset = ArrayDataset(rng.standard_normal((20, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 20))
    model = tiny_cnn()
    path = tmp_path_factory.mktemp("atlas") / "relmax.h5"
    concepts.relmax_dataset(dataset, model, path, LAYERS, batch_size=8, progress=False)
    explainer = LRP(model)
    samples = [i for i in range(len(dataset)) if dataset[i][1] == 1]
    atlas = concept_atlas(explainer, dataset, path, 1, samples, sample=samples[1], top=3, k=4, batch_size=3)
    page = write_atlas(atlas, path.parent / "report" / "concepts.html")
    return explainer, dataset, path, samples, atlas, page


def test_concepts_are_the_channels_of_largest_mean_share_with_their_relmax_references(built):
    explainer, dataset, path, samples, atlas, _ = built
    x = torch.stack([dataset[i][0] for i in samples])
    references = concepts.top_references(path, k=4)
    assert list(atlas.layers) == LAYERS
    for layer in LAYERS:
        mean = concepts.concept_importance(explainer, x, layer, 1, abs_norm=True).mean(dim=0)
        expected = mean.argsort(descending=True)[:3].tolist()
        shown = atlas.layers[layer]
        assert [concept.channel for concept in shown] == expected
        np.testing.assert_allclose([c.share for c in shown], mean[expected].numpy(), rtol=1e-5)
        for concept in shown:
            indices = [ref.index for ref in concept.references]
            assert indices == references[layer].by_relevance[concept.channel].tolist()
            crops = concepts.reference_crops(explainer, dataset, references[layer], concept.channel, k=4)
            for ref, crop in zip(concept.references, crops):
                assert ref.box == crop.box
                torch.testing.assert_close(ref.heatmap, crop.heatmap)


def test_the_decomposition_of_a_sample_adds_up_at_each_layer(built):
    """All channels of a layer add up to the plain heatmap; the shown ones are the largest shares."""
    explainer, dataset, _, samples, atlas, _ = built
    x = dataset[samples[1]][0][None]
    for part in atlas.decomposition:
        assert part.index == samples[1]
        shares = concepts.concept_importance(explainer, x, part.layer, 1, abs_norm=True)[0]
        assert part.channels == shares.argsort(descending=True)[:3].tolist()
        np.testing.assert_allclose(part.shares, shares[part.channels].numpy(), rtol=1e-5)
        every = concepts.conditional_heatmaps(explainer, x, [{part.layer: c} for c in range(len(shares))], 1)
        torch.testing.assert_close(part.heatmaps, every.heatmaps[0, part.channels])
        torch.testing.assert_close(every.heatmaps[0].sum(dim=0), part.heatmap, rtol=1e-4, atol=1e-6)


def test_bad_arguments(built):
    explainer, dataset, path, _, _, _ = built
    with pytest.raises(ValueError, match="needs samples"):
        concept_atlas(explainer, dataset, path, 1, [])
    with pytest.raises(ValueError, match="top must be at least 1"):
        concept_atlas(explainer, dataset, path, 1, [0], top=0)


playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need `pip install playwright`"
)


@pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"the browser tests need Chromium at {CHROMIUM}")
def test_the_atlas_page_opens_in_chromium_with_every_image(built, tmp_path):
    *_, atlas, page_path = built
    with playwright_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), args=ARGS, headless=True
        )
        try:
            page = context.new_page()
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(page_path.resolve().as_uri())
            assert errors == []
            for layer in LAYERS:
                cards = page.locator(f'.layer[data-layer="{layer}"] .concept')
                assert cards.count() == 3
                shown = [int(c) for c in cards.evaluate_all("n => n.map(x => x.dataset.channel)")]
                assert shown == [concept.channel for concept in atlas.layers[layer]]
                first = atlas.layers[layer][0]
                samples = page.locator(
                    f'.layer[data-layer="{layer}"] .concept[data-channel="{first.channel}"] figure'
                ).evaluate_all("n => n.map(x => +x.dataset.sample)")
                assert samples == [ref.index for ref in first.references]
            assert page.locator("#decomposition .decomposition figure").count() == 3 * len(LAYERS)
            widths = page.locator("img").evaluate_all("n => n.map(x => x.naturalWidth)")
            assert len(widths) == 2 * 3 * 4 * len(LAYERS) + 2 + 3 * len(LAYERS) and min(widths) > 0
            page.screenshot(path=str(page_path.parent / "atlas.png"), full_page=True)
        finally:
            context.close()
