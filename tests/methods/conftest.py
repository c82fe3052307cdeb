"""Tiny float64 CNNs and a snapshot of everything a method could leave changed on a model."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
from torch import nn


class TinyCNN(nn.Module):
    """conv-relu-maxpool-conv-relu-linear on ``channels x size x size`` images.

    ``relu`` picks how the ReLUs are written: ``"module"`` (``nn.ReLU``), ``"inplace"``
    (``nn.ReLU(inplace=True)``) or ``"functional"`` (``F.relu`` and ``Tensor.relu``).
    """

    def __init__(self, channels: int = 1, size: int = 12, bias: bool = True, relu: str = "module") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 4, 3, bias=bias)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 6, 3, bias=bias)
        self.fc = nn.Linear(6 * ((size - 2) // 2 - 2) ** 2, 3, bias=bias)
        self.relu = relu
        if relu != "functional":
            self.act1 = nn.ReLU(inplace=relu == "inplace")
            self.act2 = nn.ReLU(inplace=relu == "inplace")

    def forward(self, x):
        if self.relu == "functional":
            x = self.pool(F.relu(self.conv1(x)))
            x = self.conv2(x).relu()
        else:
            x = self.pool(self.act1(self.conv1(x)))
            x = self.act2(self.conv2(x))
        return self.fc(x.flatten(1))


def tiny_cnn(channels: int = 1, size: int = 12, bias: bool = True, relu: str = "module", seed: int = 0):
    torch.manual_seed(seed)
    model = TinyCNN(channels, size, bias, relu).double().eval()
    if bias:  # make biases matter
        with torch.no_grad():
            for module in (model.conv1, model.conv2, model.fc):
                module.bias.uniform_(-0.2, 0.2)
    return model


@pytest.fixture
def make_model():
    return tiny_cnn


@pytest.fixture
def images():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(2, 1, 12, 12, dtype=torch.float64, generator=generator)


def snapshot(model: nn.Module) -> dict:
    """Parameters, buffers, hooks, modules, modes and gradients of ``model``: equal before and after."""
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "modules": [(name, type(m), m.training) for name, m in model.named_modules()],
        "hooks": [
            (
                name,
                dict(m._forward_hooks),
                dict(m._forward_pre_hooks),
                dict(m._backward_hooks),
                dict(m._backward_pre_hooks),
            )
            for name, m in model.named_modules()
        ],
        "grads": [p.grad for p in model.parameters()],
        "forward": type(model).forward,
    }


def assert_unchanged(before: dict, model: nn.Module) -> None:
    after = snapshot(model)
    assert before["state"].keys() == after["state"].keys()
    for key in before["state"]:
        assert torch.equal(before["state"][key], after["state"][key]), key
    assert before["modules"] == after["modules"]
    assert before["hooks"] == after["hooks"]
    assert all(g is None for g in after["grads"])
    assert "forward" not in vars(model)


@contextmanager
def _untouched(model: nn.Module):
    before = snapshot(model)
    yield
    assert_unchanged(before, model)


@pytest.fixture
def untouched():
    """``with untouched(model): ...`` asserts that the block leaves ``model`` exactly as it was."""
    return _untouched
