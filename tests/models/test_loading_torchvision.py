"""Model loading: torchvision architectures with a local weights file."""

import pytest
import torch
from torch import nn

from relprop.models import loading


def test_torchvision_architecture_with_local_weights(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(2)
    trained = resnet18().eval()
    torch.save(trained.state_dict(), tmp_path / "r18.pth")
    model = loading.load_model(f"resnet18:{tmp_path / 'r18.pth'}")
    assert type(model) is type(trained) and not model.training
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(model(x), trained(x), rtol=0, atol=0)


def test_torchvision_architecture_needs_fitting_local_weights(tmp_path):
    with pytest.raises(ValueError, match="needs a local weights file: pass resnet18:WEIGHTS"):
        loading.load_model("resnet18")
    torch.save(nn.Linear(2, 2).state_dict(), tmp_path / "linear.pt")
    with pytest.raises(ValueError, match="do not fit ResNet: Error"):
        loading.load_model(f"resnet18:{tmp_path / 'linear.pt'}")
    torch.save({"weight": [1, 2]}, tmp_path / "pickled.pt")
    with pytest.raises(ValueError, match="could run arbitrary code|not a state dict of tensors"):
        loading.load_model(f"resnet18:{tmp_path / 'pickled.pt'}")
