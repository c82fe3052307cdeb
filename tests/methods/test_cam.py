import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from relprop.methods import GradCAM


def _captum(model, layer, x, target):
    leaf = x.clone().requires_grad_()
    cam = LayerGradCam(model, layer).attribute(leaf, target=target, relu_attributions=True)
    return LayerAttribution.interpolate(cam, x.shape[2:], interpolate_mode="bilinear").expand_as(x)


@pytest.mark.parametrize("layer", ["conv1", "act1", "conv2"])
def test_matches_captum_layer_grad_cam(make_model, layer, untouched):
    model = make_model(channels=3, size=16)
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with untouched(model):
        ours = GradCAM(model, layer)(x, 2)
    torch.testing.assert_close(ours, _captum(model, getattr(model, layer), x, 2), rtol=1e-10, atol=1e-12)
    assert ours.shape == x.shape and (ours > 0).any()


def test_an_inplace_relu_after_the_layer_does_not_change_the_result(make_model, images):
    plain = GradCAM(make_model(), "conv2")(images)
    inplace = GradCAM(make_model(relu="inplace"), "conv2")(images)
    torch.testing.assert_close(inplace, plain)


class GlobalAveragePooling(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


def test_equals_class_activation_mapping_under_global_average_pooling():
    # with global average pooling and a linear classifier, alpha_k = w_ck / (H W): Grad-CAM is CAM / (H W)
    torch.manual_seed(0)
    model = GlobalAveragePooling().double().eval()
    x = torch.rand(1, 2, 5, 5, dtype=torch.float64)
    features = model.relu(model.conv(x))
    cam = torch.relu((model.fc.weight[1].view(1, 4, 1, 1) * features).sum(1, keepdim=True)) / 25
    torch.testing.assert_close(GradCAM(model, "relu")(x, 1), cam.expand_as(x).detach())


def test_hook_is_removed_when_the_call_raises(make_model, images, untouched):
    model = make_model()
    with untouched(model):
        with pytest.raises(RuntimeError):  # the model itself rejects three channels
            GradCAM(model, "conv2")(torch.rand(1, 3, 12, 12, dtype=torch.float64))
        with pytest.raises(ValueError, match="out of range"):
            GradCAM(model, "conv2")(images, 5)


def test_bad_layers_and_inputs(make_model, images):
    model = make_model()
    with pytest.raises(ValueError, match="'features.28' is not a module"):
        GradCAM(model)
    with pytest.raises(ValueError, match="conv1"):  # the message lists the modules
        GradCAM(model, "conv9")
    with pytest.raises(ValueError, match="'fc' has output of shape"):
        GradCAM(model, "fc")(images)
    with pytest.raises(ValueError, match="NaN"):
        GradCAM(model, "conv2")(images.masked_fill(images > 0.5, float("nan")))
    with pytest.raises(ValueError, match="batch, channels"):
        GradCAM(nn.Sequential(nn.Linear(3, 2)).double(), "0")(torch.ones(1, 3, dtype=torch.float64))
