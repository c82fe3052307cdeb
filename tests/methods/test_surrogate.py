import itertools
import math

import numpy as np
import pytest
import torch
from captum.attr import ShapleyValues
from skimage import data, transform
from sklearn.linear_model import Ridge
from torch import nn

from relprop.methods import LIME, KernelSHAP
from relprop.methods.surrogate import weighted_ridge


def _linear_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(144, 3)).double().eval()


def _per_segment(attribution, labels):
    """Sum of the attribution over each superpixel (and channel) of one image."""
    flat = attribution.sum(dim=0).flatten()
    return torch.zeros(int(labels.max()) + 1, dtype=flat.dtype).index_add_(0, labels.flatten(), flat)


def _astronaut(size=16):
    image = transform.resize(data.astronaut(), (size, size), anti_aliasing=True)
    return torch.tensor(np.moveaxis(image, -1, 0)[None], dtype=torch.float64)


@pytest.mark.parametrize("method", [KernelSHAP, lambda m, **k: LIME(m, alpha=0.0, **k)])
def test_recovers_the_contributions_of_a_linear_model(images, method, untouched):
    # f(x) = w.x + b is linear in the coalition z: v(z) = v(0) + sum_s z_s c_s,
    # with c_s = sum_{i in s} w_i (x_i - b_i)
    model = _linear_model()
    baseline = torch.full((1, 12, 12), 0.5, dtype=torch.float64)
    explainer = method(model, n_segments=20, samples=60, baseline=baseline)
    with untouched(model):
        attribution = explainer(images, 2)
    segments = explainer.segment(images)
    assert 2**12 > 60 and all(int(s.max()) + 1 >= 12 for s in segments)  # coalitions are sampled
    weight = model[1].weight[2].detach().view(1, 12, 12)
    for b in range(2):
        expected = _per_segment(weight * (images[b] - baseline), segments[b])
        torch.testing.assert_close(_per_segment(attribution[b], segments[b]), expected, rtol=1e-9, atol=1e-12)


def _brute_force_shapley(model, x, labels, target):
    """Shapley values of the superpixels by their definition, with the baseline 0."""
    m = int(labels.max()) + 1

    def value(coalition):
        kept = torch.zeros(m, dtype=torch.bool)
        kept[list(coalition)] = True
        with torch.no_grad():
            return model(x * kept[labels])[0, target].item()

    phi = np.zeros(m)
    for s in range(m):
        others = [t for t in range(m) if t != s]
        for size in range(m):
            for subset in itertools.combinations(others, size):
                weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
                phi[s] += weight * (value(subset + (s,)) - value(subset))
    return torch.tensor(phi)


def test_all_coalitions_give_the_exact_shapley_values(make_model, images):
    model = make_model()
    explainer = KernelSHAP(model, n_segments=4, samples=100)
    attribution = explainer(images, 1)
    segments = explainer.segment(images)
    for b in range(2):
        labels = segments[b]
        assert 2 ** (int(labels.max()) + 1) - 2 <= 100  # every coalition is used
        sizes = torch.bincount(labels.flatten()).double()
        exact = _brute_force_shapley(model, images[b : b + 1], labels, 1)
        torch.testing.assert_close(attribution[b], (exact / sizes)[labels][None], rtol=1e-9, atol=1e-12)
        # Captum's exact ShapleyValues gives each pixel its superpixel's value (in float32)
        captum = ShapleyValues(model).attribute(
            images[b : b + 1], 0.0, target=1, feature_mask=labels[None, None], perturbations_per_eval=32
        )[0]
        torch.testing.assert_close(attribution[b], captum.double() / sizes[labels], rtol=1e-5, atol=1e-8)


def test_sampled_shapley_values_are_efficient_and_seeded(make_model):
    model = make_model(channels=3, size=16)
    x = _astronaut()
    explainer = KernelSHAP(model, n_segments=30, samples=50, seed=4, baseline=0.2)
    attribution = explainer(x, 0)
    with torch.no_grad():
        delta = model(x)[0, 0] - model(torch.full_like(x, 0.2))[0, 0]
    torch.testing.assert_close(attribution.sum(), delta, rtol=1e-10, atol=1e-12)
    labels = explainer.segment(x)[0]
    assert int(labels.max()) + 1 > 10
    # constant over each superpixel and channel
    values = attribution[0][:, labels == 3]
    assert torch.equal(values, values[0, 0].expand_as(values))
    again = KernelSHAP(model, n_segments=30, samples=50, seed=4, baseline=0.2)(x, 0)
    torch.testing.assert_close(again, attribution)
    other_seed = KernelSHAP(model, n_segments=30, samples=50, seed=5, baseline=0.2)(x, 0)
    assert not torch.allclose(other_seed, attribution)


def test_a_single_superpixel_takes_the_whole_difference(make_model, images):
    model = make_model()
    attribution = KernelSHAP(model, n_segments=1)(images, 0)
    with torch.no_grad():
        delta = model(images)[:, 0] - model(torch.zeros_like(images))[:, 0]
    torch.testing.assert_close(attribution, (delta / 144).view(2, 1, 1, 1).expand_as(images))


def test_weighted_ridge_matches_scikit_learn():
    rng = np.random.default_rng(0)
    design = (rng.random((40, 6)) < 0.5).astype(float)
    response = rng.normal(size=40)
    weights = rng.random(40)
    phi, intercept = weighted_ridge(design, response, weights, alpha=1.0)
    reference = Ridge(alpha=1.0).fit(design, response, sample_weight=weights)
    np.testing.assert_allclose(phi, reference.coef_, rtol=1e-10, atol=1e-12)
    assert intercept == pytest.approx(reference.intercept_, rel=1e-10)


def test_lime_kernel_and_shrinkage(images):
    model = _linear_model()
    explainer = LIME(model, n_segments=9, samples=80, seed=1)
    kept, kernel = explainer._coalitions(4, np.random.default_rng(0))
    expected = np.exp(-((1 - np.sqrt(kept.sum(1) / 4)) ** 2) / 0.25**2)
    np.testing.assert_allclose(kernel, expected)
    # the ridge penalty shrinks the coefficients towards zero
    ridge = explainer(images, 0).abs().sum()
    exact = LIME(model, n_segments=9, samples=80, seed=1, alpha=0.0)(images, 0).abs().sum()
    assert ridge < exact


def test_bad_arguments(make_model, images):
    model = make_model()
    with pytest.raises(ValueError, match="images of shape"):
        KernelSHAP(model)(images[:, 0])
    with pytest.raises(ValueError, match="n_segments"):
        KernelSHAP(model, n_segments=0)
    with pytest.raises(ValueError, match="baseline of shape"):
        KernelSHAP(model, baseline=torch.zeros(3, 12, 12))(images)
    with pytest.raises(ValueError, match="NaN"):
        LIME(model)(images.masked_fill(images > 0.5, float("nan")))
    with pytest.raises(ValueError, match="kernel_width"):
        LIME(model, kernel_width=0)
    with pytest.raises(TypeError, match="seed"):
        LIME(model, seed="0")
