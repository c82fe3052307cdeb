"""Cross-checks against Quantus where it computes the same quantity (see the module docstrings for the
definitional differences: Quantus' curves omit step 0, its pointing game has no tolerance and its mass and
rank accuracies use signed relevance)."""

import numpy as np
import pytest
import torch

from relprop.evaluate import (
    pointing_game,
    region_perturbation,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
)

from .conftest import tiny_cnn

quantus = pytest.importorskip("quantus")


def data(channels: int, size: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(3, channels, size, size, generator=generator)
    attribution = torch.randn(x.shape, generator=generator)
    return x, attribution


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_region_perturbation_equals_quantus(order):
    model = tiny_cnn(channels=3, size=16, dtype=torch.float32)
    x, attribution = data(3, 16)
    target = model(x).argmax(1)
    metric = quantus.RegionPerturbation(
        patch_size=4,
        order=order,
        regions_evaluation=10,
        perturb_baseline=0.0,
        normalise=False,
        disable_warnings=True,
    )
    theirs = metric(
        model=model,
        x_batch=x.numpy(),
        y_batch=target.numpy(),
        a_batch=attribution.numpy(),
        softmax=False,
        device="cpu",
    )
    ours = region_perturbation(
        model, x, attribution, target, patch_size=4, steps=10, order=order, perturbation=0.0
    )
    # Quantus returns f(x) - f(x_k) for k = 1..L.
    np.testing.assert_allclose(ours.curve[:, 1:].numpy(), np.array(theirs), rtol=1e-5, atol=1e-5)


def test_pixel_flipping_equals_quantus():
    model = tiny_cnn(channels=1, size=6, dtype=torch.float32)
    x, attribution = data(1, 6, seed=1)
    target = model(x).argmax(1)
    metric = quantus.PixelFlipping(
        features_in_step=1, perturb_baseline=0.0, normalise=False, disable_warnings=True
    )
    theirs = metric(
        model=model,
        x_batch=x.numpy(),
        y_batch=target.numpy(),
        a_batch=attribution.numpy(),
        softmax=False,
        device="cpu",
    )
    ours = region_perturbation(model, x, attribution, target, patch_size=1, steps=None, perturbation=0.0)
    # Quantus returns f(x_k) for k = 1..L.
    np.testing.assert_allclose(ours.scores[:, 1:].numpy(), np.array(theirs), rtol=1e-5, atol=1e-5)


def localization_data():
    generator = torch.Generator().manual_seed(2)
    heatmap = torch.rand(4, 1, 12, 12, generator=generator)  # non-negative: signed and positive agree
    masks = torch.zeros(4, 1, 12, 12, dtype=torch.bool)
    masks[0, 0, 2:6, 3:9] = masks[1, 0, 5:12, 0:4] = masks[2, 0, 0:3, 0:3] = masks[3, 0, 4:8, 4:8] = True
    heatmap[0, 0, 3, 4] += 1.0  # maxima inside the masks of samples 0 and 1, relevance concentrated there
    heatmap[1, 0, 5:12, 0:4] += 0.5
    x = torch.rand(4, 1, 12, 12, generator=generator).numpy()
    return heatmap, masks, x


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda a, s: pointing_game(a, s, tolerance=0), quantus.PointingGame),
        (relevance_mass_accuracy, quantus.RelevanceMassAccuracy),
        (relevance_rank_accuracy, quantus.RelevanceRankAccuracy),
    ],
)
def test_localization_equals_quantus(ours, theirs):
    heatmap, masks, x = localization_data()
    metric = theirs(disable_warnings=True)
    expected = metric(
        model=None, x_batch=x, y_batch=np.zeros(4, dtype=int), a_batch=heatmap.numpy(), s_batch=masks.numpy()
    )
    np.testing.assert_allclose(ours(heatmap, masks).numpy(), np.array(expected, dtype=float), rtol=1e-6)
