import pytest
import torch
from captum.attr import NoiseTunnel, Saliency

from relprop import LRP
from relprop.methods import Gradient, IntegratedGradients, SmoothGrad


def _unit_range(x):
    flat = x.flatten(1)
    low, high = flat.amin(1).view(-1, 1, 1, 1), flat.amax(1).view(-1, 1, 1, 1)
    return (x - low) / (high - low)


def _documented_noise(x, samples, seed):
    """The standard normal draws SmoothGrad documents: ``samples`` times randn(x.shape) from one generator."""
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randn(x.shape, generator=generator, dtype=x.dtype) for _ in range(samples)])


def test_matches_captum_noise_tunnel_with_the_same_draws(make_model, images, monkeypatch, untouched):
    # Captum draws torch.normal(0, stdev) for all copies at once, sample-major (copy k of input b at row
    # b * samples + k); we replace that one draw by our documented draws, scaled by Captum's stdev. Both
    # inputs span [0, 1], so sigma = noise * 1 for each.
    model = make_model()
    x = _unit_range(images)
    samples, noise = 6, 0.15
    unit = _documented_noise(x, samples, seed=3)  # (samples, batch, ...)

    def same_draws(mean, std):
        return std.to(x.dtype) * unit.transpose(0, 1).reshape(std.shape)

    with untouched(model):
        ours = SmoothGrad(Gradient(model), noise=noise, samples=samples, seed=3)(x, 2)
    monkeypatch.setattr(torch, "normal", same_draws)
    leaf = x.clone().requires_grad_()
    expected = NoiseTunnel(Saliency(model)).attribute(
        leaf, nt_type="smoothgrad", nt_samples=samples, stdevs=noise, target=2, abs=False
    )
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-9)


def test_smooths_lrp_over_the_documented_noise(make_model, images):
    model = make_model()
    lrp = LRP(model)
    result = SmoothGrad(lrp, noise=0.2, samples=5, seed=7, batch_size=4)(images, 1)
    sigma = 0.2 * (images.flatten(1).amax(1) - images.flatten(1).amin(1)).view(-1, 1, 1, 1)
    expected = torch.stack([lrp(images + sigma * e, 1) for e in _documented_noise(images, 5, 7)]).mean(0)
    torch.testing.assert_close(result, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("base", [Gradient, LRP, lambda m: IntegratedGradients(m, steps=4)])
def test_zero_noise_is_the_base(make_model, images, base):
    explainer = base(make_model())
    torch.testing.assert_close(SmoothGrad(explainer, noise=0.0, samples=3)(images, 0), explainer(images, 0))


def test_seeded_results_repeat_and_do_not_depend_on_batch_size(make_model, images):
    base = Gradient(make_model())
    first = SmoothGrad(base, samples=7, seed=11, batch_size=2)(images)
    torch.testing.assert_close(SmoothGrad(base, samples=7, seed=11, batch_size=100)(images), first)
    assert not torch.allclose(SmoothGrad(base, samples=7, seed=12)(images), first)


def test_target_is_chosen_on_the_clean_input(make_model, images):
    model = make_model()
    smooth = SmoothGrad(Gradient(model), noise=3.0, samples=4, seed=0)  # noise that changes predictions
    torch.testing.assert_close(smooth(images), smooth(images, model(images).argmax(1)))


def test_bad_arguments(make_model, images):
    model = make_model()
    with pytest.raises(TypeError, match="base"):
        SmoothGrad(model)
    with pytest.raises(TypeError, match="base"):
        SmoothGrad(lambda x, t: x)
    with pytest.raises(ValueError, match="noise"):
        SmoothGrad(Gradient(model), noise=-0.1)
    with pytest.raises(ValueError, match="samples"):
        SmoothGrad(Gradient(model), samples=0)
    with pytest.raises(TypeError, match="seed"):
        SmoothGrad(Gradient(model), seed=1.5)
    with pytest.raises(ValueError, match="NaN"):
        SmoothGrad(Gradient(model))(images.masked_fill(images > 0.5, float("nan")))
