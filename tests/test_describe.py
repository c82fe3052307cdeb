"""Rules and composites describe themselves completely: every parameter, nested rules, tensors by value."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from relprop import composites, rules, types
from relprop.describe import describe

PRESETS = [
    composites.EpsilonPlus,
    composites.EpsilonPlusFlat,
    composites.EpsilonAlpha2Beta1,
    composites.EpsilonAlpha2Beta1Flat,
    composites.AttnLRP,
    composites.CPLRP,
    composites.CPLRPGamma,
]


def test_values_are_described_by_value():
    assert describe(0) == describe(0.0) == describe(np.float32(0.0)) == "0.0"
    assert describe(True) == "True" and describe(None) == "None"
    big = torch.arange(2000.0)  # torch's own print abbreviates it
    assert "..." in repr(big) and "..." not in describe(big)
    assert describe(big) != describe(big + torch.eye(1)[0, 0] * (torch.arange(2000) == 1000))
    assert describe(torch.zeros(3, 1, 1)) == "tensor([[[0.0]], [[0.0]], [[0.0]]], shape=[3, 1, 1])"
    assert describe(F.layer_norm) == "torch.nn.functional.layer_norm"
    assert describe(torch.nn.Linear) == "torch.nn.modules.linear.Linear"


@pytest.mark.parametrize("preset", PRESETS)
def test_every_parameter_of_a_preset_changes_its_description(preset):
    default = repr(preset())
    assert "epsilon=1e-06" in default and "stabilizer=1e-06" in default
    for name in ("epsilon", "stabilizer") + (("gamma",) if preset is composites.CPLRPGamma else ()):
        assert repr(preset(**{name: 0.5})) != default, name


def test_epsilon_gamma_box_is_described_by_its_bounds_and_rules():
    box = composites.EpsilonGammaBox(low=-100, high=100, epsilon=0.5)
    assert repr(box) == "EpsilonGammaBox(low=-100.0, high=100.0, epsilon=0.5, gamma=0.25, stabilizer=1e-06)"
    assert repr(composites.EpsilonGammaBox(low=0, high=1)) != repr(box)
    per_channel = composites.EpsilonGammaBox(low=torch.zeros(3, 1, 1), high=torch.ones(3, 1, 1))
    assert "low=tensor([[[0.0]], [[0.0]], [[0.0]]], shape=[3, 1, 1])" in repr(per_channel)


def test_a_composite_of_maps_is_described_by_its_maps():
    composite = composites.Composite(
        layer_map=[(types.Dense, rules.Gamma(0.5)), (F.layer_norm, rules.Pass())],
        name_map={"fc": rules.Epsilon(0.1)},
        first_map=[(types.Convolution, rules.ZBox(0, torch.ones(2)))],
    )
    description = repr(composite)
    for part in (
        "Gamma(stabilizer=1e-06, redistribute=False, gamma=0.5)",
        "torch.nn.functional.layer_norm",
        "'fc': Epsilon(epsilon=0.1, redistribute=False)",
        "high=tensor([1.0, 1.0], shape=[2])",
    ):
        assert part in description
    other = composites.Composite(layer_map=[(types.Dense, rules.Gamma(0.25))])
    assert repr(other) != description


def test_a_subclass_that_keeps_no_arguments_is_described_by_its_maps():
    class Mine(composites.Composite):
        def __init__(self, gamma: float) -> None:
            super().__init__(layer_map=[(types.Linear, rules.Gamma(gamma))])

    assert repr(Mine(0.5)) != repr(Mine(0.25)) and "gamma=0.5" in repr(Mine(0.5))
