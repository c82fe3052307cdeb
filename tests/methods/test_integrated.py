import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIntegratedGradients
from torch import nn

from relprop.methods import IntegratedGradients
from relprop.methods.integrated import path_points


def _captum(model, x, target, baseline, steps, method):
    ig = CaptumIntegratedGradients(model)
    return ig.attribute(x, baselines=baseline, target=target, n_steps=steps, method=method)


@pytest.mark.parametrize("method", ["riemann_left", "riemann_right", "riemann_middle"])
def test_riemann_sums_match_captum(make_model, images, method, untouched):
    model = make_model()
    with untouched(model):
        ours = IntegratedGradients(model, steps=16, method=method)(images, 1)
    torch.testing.assert_close(ours, _captum(model, images, 1, 0.0, 16, method), rtol=1e-10, atol=1e-12)


def test_trapezoid_is_captums_rescaled(make_model, images):
    # Captum 0.9 gives the trapezoid weights 1/n (halved at the ends) on points spaced 1/(n-1): they sum to
    # 1 - 1/n. Ours are 1/(n-1), so ours are Captum's times n/(n-1).
    model = make_model()
    baseline = torch.full((1, 12, 12), 0.25, dtype=torch.float64)
    ours = IntegratedGradients(model, baseline=baseline, steps=8)(images, 2)
    expected = _captum(model, images, 2, baseline.unsqueeze(0), 8, "riemann_trapezoid") * 8 / 7
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-12)


def test_path_points():
    assert path_points(4, "riemann_left") == ([0.0, 0.25, 0.5, 0.75], [0.25] * 4)
    assert path_points(2, "riemann_middle") == ([0.25, 0.75], [0.5, 0.5])
    assert path_points(3, "riemann_trapezoid") == ([0.0, 0.5, 1.0], [0.25, 0.5, 0.25])
    for method in ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"):
        assert sum(path_points(7, method)[1]) == pytest.approx(1.0)


def test_completeness_error_shrinks_with_steps(make_model, images):
    model = make_model()
    with torch.no_grad():
        delta = model(images)[:, 0] - model(torch.zeros_like(images))[:, 0]
    errors = []
    for steps in (2, 8, 128):
        total = IntegratedGradients(model, steps=steps)(images, 0).sum(dim=(1, 2, 3))
        errors.append((total - delta).abs().max().item())
    assert errors[0] > errors[1] > errors[2]
    # ReLU kinks make the error fall like 1/steps: measured 0.018, 0.0022, 4.4e-5 against |delta| ~ 0.027
    assert errors[2] < 5e-3 * delta.abs().min().item()


def test_exact_on_a_linear_model():
    model = nn.Linear(4, 2).double()
    x = torch.tensor([[1.0, -2.0, 0.5, 3.0]], dtype=torch.float64)
    baseline = torch.tensor([0.5, 0.5, 0.5, 0.5], dtype=torch.float64)
    for method in ("riemann_left", "riemann_trapezoid"):
        result = IntegratedGradients(model, baseline=baseline, steps=3, method=method)(x, 1)
        torch.testing.assert_close(result, (x - baseline) * model.weight[1].detach())


def test_batch_size_bounds_memory_not_the_result(make_model, images):
    model = make_model()
    small = IntegratedGradients(model, steps=10, batch_size=3)(images)
    large = IntegratedGradients(model, steps=10, batch_size=1000)(images)
    torch.testing.assert_close(small, large, rtol=1e-12, atol=1e-14)


def test_target_is_chosen_at_the_input(make_model, images):
    model = make_model()
    predicted = model(images).argmax(dim=1)
    explainer = IntegratedGradients(model, steps=4)
    torch.testing.assert_close(explainer(images), explainer(images, predicted))


def test_bad_arguments(make_model, images):
    model = make_model()
    with pytest.raises(ValueError, match="method"):
        IntegratedGradients(model, method="gausslegendre")
    with pytest.raises(ValueError, match="steps >= 2"):
        IntegratedGradients(model, steps=1)
    with pytest.raises(ValueError, match="steps"):
        IntegratedGradients(model, steps=0, method="riemann_left")
    with pytest.raises(ValueError, match="baseline of shape"):
        IntegratedGradients(model, baseline=torch.zeros(12, 12))(images)
    with pytest.raises(ValueError, match="baseline"):
        IntegratedGradients(model, baseline=float("nan"))(images)
    with pytest.raises(ValueError, match="NaN"):
        IntegratedGradients(model)(images.masked_fill(images > 0.9, float("nan")))
