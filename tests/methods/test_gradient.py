import pytest
import torch
from captum.attr import InputXGradient as CaptumInputXGradient
from captum.attr import Saliency
from torch import nn

import relprop
from relprop import methods
from relprop.methods import Gradient, InputXGradient


def test_signed_gradient_matches_captum_saliency(make_model, images, untouched):
    model = make_model()
    with untouched(model):
        ours = Gradient(model)(images, 2)
    expected = Saliency(model).attribute(images.clone().requires_grad_(), target=2, abs=False)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-14)
    assert ours.abs().sum() > 0


def test_absolute_and_squared(make_model, images):
    model = make_model()
    signed = Gradient(model)(images, 1)
    expected = Saliency(model).attribute(images.clone().requires_grad_(), target=1)
    torch.testing.assert_close(Gradient(model, "abs")(images, 1), expected)
    torch.testing.assert_close(Gradient(model, "square")(images, 1), signed.square())


def test_input_x_gradient_matches_captum(make_model, images):
    model = make_model()
    expected = CaptumInputXGradient(model).attribute(images.clone().requires_grad_(), target=0)
    torch.testing.assert_close(InputXGradient(model)(images, 0), expected, rtol=1e-12, atol=1e-14)


def test_linear_model_by_hand():
    model = nn.Linear(3, 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]]))

    def row(*values):
        return torch.tensor([values], dtype=torch.float64)

    x = row(2.0, 1.0, 4.0)
    torch.testing.assert_close(Gradient(model)(x, 1), row(3.0, 0.0, -1.0))
    torch.testing.assert_close(InputXGradient(model)(x, 0), row(2.0, -2.0, 2.0))
    # a contrast between the two outputs is the difference of their gradients
    torch.testing.assert_close(Gradient(model)(x, row(1.0, -1.0)), row(-2.0, -2.0, 1.5))


def test_target_forms_agree(make_model, images):
    model = make_model()
    explainer = Gradient(model)
    predicted = model(images).argmax(dim=1)
    by_class = explainer(images, predicted)
    torch.testing.assert_close(explainer(images), by_class)
    one_hot = torch.nn.functional.one_hot(predicted, 3).double()
    torch.testing.assert_close(explainer(images, one_hot), by_class)
    torch.testing.assert_close(explainer(images, 1), explainer(images, torch.tensor([1, 1])))


def test_works_under_no_grad_and_keeps_input(make_model, images):
    model = make_model()
    x = images.clone().requires_grad_()
    with torch.no_grad():
        result = Gradient(model)(x, 0)
    torch.testing.assert_close(result, Gradient(model)(images, 0))
    assert x.grad is None and not result.requires_grad
    assert result.dtype == images.dtype and result.device == images.device


def test_bad_arguments(make_model, images):
    model = make_model()
    with pytest.raises(ValueError, match="postprocess"):
        Gradient(model, "sqrt")
    with pytest.raises(ValueError, match="NaN"):
        Gradient(model)(torch.full_like(images, float("nan")))
    with pytest.raises(ValueError, match="batch dimension"):
        Gradient(model)(torch.zeros(5, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating-point"):
        Gradient(model)(torch.zeros(2, 1, 12, 12, dtype=torch.long))
    with pytest.raises(ValueError, match="out of range"):
        InputXGradient(model)(images, 3)
    with pytest.raises(TypeError, match="nn.Module"):
        Gradient(lambda x: x)


def test_lrp_is_reachable_from_methods():
    assert methods.LRP is relprop.LRP
    assert set(methods.__all__) >= {"LRP", "Gradient", "KernelSHAP", "GradCAM", "SmoothGrad"}
