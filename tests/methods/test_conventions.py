"""What every method shares: the calling convention, the target semantics, and an untouched model."""

import pytest
import torch

from relprop import LRP
from relprop.methods import (
    LIME,
    Deconvnet,
    ExcitationBackprop,
    GradCAM,
    Gradient,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    KernelSHAP,
    Occlusion,
    SmoothGrad,
)

METHODS = {
    "Gradient": Gradient,
    "InputXGradient": InputXGradient,
    "IntegratedGradients": lambda m: IntegratedGradients(m, steps=4),
    "SmoothGrad": lambda m: SmoothGrad(Gradient(m), samples=3, seed=0),
    "SmoothGrad(LRP)": lambda m: SmoothGrad(LRP(m), samples=2, seed=0),
    "Occlusion": lambda m: Occlusion(m, 4),
    "GradCAM": lambda m: GradCAM(m, "conv2"),
    "GuidedBackprop": GuidedBackprop,
    "Deconvnet": Deconvnet,
    "ExcitationBackprop": ExcitationBackprop,
    "KernelSHAP": lambda m: KernelSHAP(m, n_segments=4, samples=20),
    "LIME": lambda m: LIME(m, n_segments=4, samples=20),
}
parametrize = pytest.mark.parametrize("name", list(METHODS))


@parametrize
def test_shaped_like_the_input_and_target_forms_agree(make_model, images, name, untouched):
    model = make_model()
    with untouched(model):
        explainer = METHODS[name](model)
        by_class = explainer(images, torch.tensor([2, 0]))
    assert by_class.shape == images.shape and by_class.dtype == images.dtype
    assert torch.isfinite(by_class).all() and (by_class != 0).any()
    one_hot = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(explainer(images, one_hot), by_class)
    predicted = model(images).argmax(dim=1)
    torch.testing.assert_close(explainer(images), explainer(images, predicted))
    torch.testing.assert_close(explainer(images, 1), explainer(images, torch.tensor([1, 1])))


@parametrize
def test_model_is_untouched_when_a_call_raises(make_model, images, name, untouched):
    model = make_model()
    with untouched(model):
        explainer = METHODS[name](model)
        # the model's own error from inside its forward pass; LRP's engine names the operation (ValueError)
        with pytest.raises((RuntimeError, ValueError)):
            explainer(torch.rand(2, 3, 12, 12, dtype=torch.float64))
        with pytest.raises(ValueError, match="out of range"):
            explainer(images, 7)


@parametrize
def test_bad_inputs(make_model, images, name):
    explainer = METHODS[name](make_model())
    with pytest.raises(ValueError, match=r"NaN or infinite values \(sample 1\)"):
        explainer(torch.cat([images[:1], images[1:].masked_fill(images[1:] > 0.9, float("inf"))]))
    with pytest.raises(ValueError, match="batch dimension"):
        explainer(torch.zeros(12, dtype=torch.float64))
    with pytest.raises(TypeError, match="float32 .* float64|torch.float32"):
        explainer(images.float())
    with pytest.raises(ValueError, match="float target of shape"):
        explainer(images, torch.zeros(2, 4, dtype=torch.float64))


def test_training_mode_is_refused(make_model):
    model = torch.nn.Sequential(make_model(), torch.nn.Dropout()).train()
    with pytest.raises(ValueError, match="training mode"):
        Gradient(model)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@parametrize
def test_on_the_gpu(make_model, images, name):
    model = make_model().cuda()
    result = METHODS[name](model)(images.cuda(), 1)
    assert result.device == images.cuda().device
    if not name.startswith("SmoothGrad"):  # its generator lives on the input's device: other draws
        torch.testing.assert_close(result.cpu(), METHODS[name](make_model())(images, 1))
