import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn

from relprop.evaluate import model_randomization


def gradient_times_input(model: nn.Module):
    def explain(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = x.detach().clone().requires_grad_()
        model(x).gather(1, target[:, None]).sum().backward()
        return (x.grad * x).detach()

    return explain


class Recorder:
    """An explainer factory that records the parameters it saw and the attributions it gave."""

    def __init__(self):
        self.models, self.states, self.attributions = [], [], []

    def __call__(self, model):
        self.models.append(model)
        self.states.append({k: v.clone() for k, v in model.state_dict().items()})
        explain = gradient_times_input(model)

        def recorded(x, target):
            attribution = explain(x, target)
            self.attributions.append(attribution)
            return attribution

        return recorded


def test_users_model_is_untouched_and_step_zero_is_identical(cnn, images):
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    cnn.train()
    recorder = Recorder()
    result = model_randomization(cnn, recorder, images)
    assert cnn.training
    for key, value in cnn.state_dict().items():
        assert torch.equal(value, before[key])
    assert all(model is not cnn for model in recorder.models)
    torch.testing.assert_close(result.spearman[0], torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(result.ssim[0], torch.ones(3, dtype=torch.float64))


def test_cascading_order_from_the_top(cnn, images):
    recorder = Recorder()
    result = model_randomization(cnn, recorder, images)
    assert result.layers == ("original", "4", "0")  # Linear, then Conv2d
    assert result.spearman.shape == result.ssim.shape == (3, 3)
    original, top, both = recorder.states[0], recorder.states[2], recorder.states[3]
    for key in original:
        layer_changed_in_step_1 = key.startswith("4.")
        assert torch.equal(top[key], original[key]) != layer_changed_in_step_1
        assert not torch.equal(both[key], original[key])
        # The random parameters keep the root mean square of the trained ones.
        rms = [t.pow(2).mean().sqrt().item() for t in (both[key], original[key])]
        assert rms[0] == pytest.approx(rms[1], rel=0.5)
    assert (result.spearman[1:] < 0.9).all()


def test_similarities_equal_scipy_and_skimage_on_the_heatmaps(cnn, images):
    for absolute in (False, True):
        recorder = Recorder()
        result = model_randomization(cnn, recorder, images, torch.tensor([2, 0, 1]), absolute=absolute)
        heatmaps = [a.sum(1).numpy() for a in recorder.attributions]
        if absolute:
            heatmaps = [np.abs(h) for h in heatmaps]
        for step in range(3):
            for b in range(3):
                a, r = heatmaps[0][b], heatmaps[step + 1][b]
                rho = spearmanr(a.ravel(), r.ravel()).statistic
                unit = [(h - h.min()) / (h.max() - h.min()) for h in (a, r)]
                ssim = structural_similarity(*unit, data_range=1.0)
                assert result.spearman[step, b].item() == pytest.approx(rho, abs=1e-12)
                assert result.ssim[step, b].item() == pytest.approx(ssim, abs=1e-12)


def test_a_model_independent_explanation_fails_the_check(cnn, images):
    result = model_randomization(cnn, lambda model: lambda x, target: x * x, images)
    torch.testing.assert_close(result.spearman, torch.ones(3, 3, dtype=torch.float64))
    torch.testing.assert_close(result.ssim, torch.ones(3, 3, dtype=torch.float64))


def test_constant_explanation_gives_nan(cnn, images):
    result = model_randomization(cnn, lambda model: lambda x, target: torch.zeros_like(x), images)
    assert all(math.isnan(v) for v in result.spearman.flatten().tolist() + result.ssim.flatten().tolist())


def test_seed_reproducibility_and_chosen_layers(cnn, images):
    first = model_randomization(cnn, gradient_times_input, images, seed=3)
    again = model_randomization(cnn, gradient_times_input, images, seed=torch.Generator().manual_seed(3))
    other = model_randomization(cnn, gradient_times_input, images, seed=4)
    torch.testing.assert_close(first.spearman, again.spearman, rtol=0, atol=0)
    assert not torch.equal(first.spearman, other.spearman)
    only_conv = model_randomization(cnn, gradient_times_input, images, layers=["0"])
    assert only_conv.layers == ("original", "0")


@pytest.mark.parametrize(
    ("explainer", "kwargs", "error", "message"),
    [
        (gradient_times_input, dict(layers=["1"]), ValueError, "layer '1'"),
        (gradient_times_input, dict(layers=["nope"]), ValueError, "layer 'nope'"),
        (lambda m: lambda x, t: x[:, :, :8], {}, ValueError, "shaped like x"),
        (lambda m: lambda x, t: x.numpy(), {}, TypeError, "returned ndarray"),
        (gradient_times_input, dict(seed="a"), TypeError, "seed"),
    ],
)
def test_bad_input_is_rejected(cnn, images, explainer, kwargs, error, message):
    with pytest.raises(error, match=message):
        model_randomization(cnn, explainer, images, **kwargs)


def test_model_without_parameters_is_rejected(images):
    with pytest.raises(ValueError, match="no module with parameters"):
        model_randomization(nn.Flatten(), gradient_times_input, images)
