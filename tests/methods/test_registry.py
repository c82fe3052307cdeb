"""The registry makes each method by name with the parameters of MethodOptions, as a direct call would."""

import pytest
import torch
from torch import nn

from relprop import LRP, composites, methods
from relprop.methods import (
    COMPOSITE_NAMES,
    METHOD_NAMES,
    MethodOptions,
    last_convolution,
    make_composite,
    make_explainer,
)


def test_registry_makes_the_methods_with_their_options():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    ).eval().double()  # fmt: skip
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    assert last_convolution(model) == "2"
    options = MethodOptions(composite="epsilon-gamma-box", bounds=(0.0, 1.0), patch=4, samples=5, seed=3)
    direct = {
        "lrp": LRP(model, composite=composites.EpsilonGammaBox(low=0.0, high=1.0)),
        "integrated-gradients": methods.IntegratedGradients(model, steps=5),
        "smoothgrad": methods.SmoothGrad(methods.Gradient(model), samples=5, seed=3),
        "occlusion": methods.Occlusion(model, patch=4),
        "gradcam": methods.GradCAM(model, layer="2"),
        "kernel-shap": methods.KernelSHAP(model, samples=5, seed=3),
        "lime": methods.LIME(model, samples=5, seed=3),
    }
    for name, explainer in direct.items():
        torch.testing.assert_close(make_explainer(name, model, options)(x, 1), explainer(x, 1), msg=name)
    with pytest.raises(ValueError, match="unknown method 'magic'; choose one of lrp, gradient"):
        make_explainer("magic", model)
    with pytest.raises(ValueError, match="Linear has no convolution module"):
        make_explainer("gradcam", nn.Linear(2, 2).eval())


def test_names_are_those_the_commands_list():
    assert METHOD_NAMES[:3] == ("lrp", "gradient", "input-x-gradient") and len(METHOD_NAMES) == 12
    assert "epsilon-gamma-box" in COMPOSITE_NAMES
    box = make_composite("epsilon-gamma-box", (-1.0, 2.0))
    assert repr(box) == repr(composites.EpsilonGammaBox(low=-1.0, high=2.0))
    with pytest.raises(ValueError, match="epsilon-gamma-box needs the input bounds"):
        make_composite("epsilon-gamma-box")
    with pytest.raises(ValueError, match="unknown composite 'flat'; choose one of epsilon-plus, "):
        make_composite("flat")
