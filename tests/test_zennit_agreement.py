"""Agreement with zennit, an independent implementation, on torchvision architectures (float64).

zennit's BatchNorm canonizer leaves each folded batch normalization computing x / sqrt(1 + eps) instead of the
identity, so its explained function differs from the model by about eps / 2 per layer; the batch
normalizations here get eps = 0 so that both libraries explain the same function.
"""

import pytest
import torch
import torchvision
from zennit import composites as zennit_composites
from zennit.attribution import Gradient
from zennit.torchvision import ResNetCanonizer, VGGCanonizer

from relprop import LRP, composites


def zennit_relevance(model, composite, x, target):
    with torch.no_grad():
        output = model(x)
    weights = torch.zeros_like(output)
    weights[torch.arange(len(x)), target] = 1.0
    with Gradient(model=model, composite=composite) as attributor:
        _, relevance = attributor(x, output * weights)
    return relevance


def prepare(name):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)().eval().double()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eps = 0.0
            with torch.no_grad():
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model


LOW = -2.0 * torch.ones(1, 3, 1, 1, dtype=torch.float64)
HIGH = 2.0 * torch.ones(1, 3, 1, 1, dtype=torch.float64)


@pytest.mark.parametrize(
    ("name", "canonizer"),
    [("vgg16", VGGCanonizer), ("vgg16_bn", VGGCanonizer), ("resnet50", ResNetCanonizer)],
)
@pytest.mark.parametrize("preset", ["EpsilonPlusFlat", "EpsilonGammaBox"])
def test_presets_agree_with_zennit(name, canonizer, preset):
    model = prepare(name)
    x = torch.randn(2, 3, 40, 40, dtype=torch.float64)
    target = torch.tensor([3, 7])
    if preset == "EpsilonGammaBox":
        ours = composites.EpsilonGammaBox(LOW, HIGH)
        theirs = zennit_composites.EpsilonGammaBox(low=LOW, high=HIGH, canonizers=[canonizer()])
    else:
        ours = getattr(composites, preset)()
        theirs = getattr(zennit_composites, preset)(canonizers=[canonizer()])
    relevance = LRP(model, ours)(x, target)
    expected = zennit_relevance(model, theirs, x, target)
    difference = ((relevance - expected).norm() / expected.norm()).item()
    assert difference < 1e-4, difference
