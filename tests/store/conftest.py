"""Tiny models and data sets for the store tests."""

import numpy as np
import pytest
import torch
from torch import nn

from relprop.data import ArrayDataset


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5)
    ).eval()


@pytest.fixture
def model() -> nn.Module:
    return tiny_model()


@pytest.fixture
def dataset() -> ArrayDataset:
    rng = np.random.default_rng(0)
    return ArrayDataset(rng.random((23, 1, 4, 4), dtype=np.float32), rng.integers(0, 5, 23))
