import pytest
import torch
from torch import nn


def tiny_cnn(channels: int = 1, size: int = 16, classes: int = 3, dtype=torch.float64) -> nn.Module:
    """A small random ReLU CNN on (channels, size, size) images, in evaluation mode."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * (size // 2) ** 2, classes),
    )
    return model.to(dtype).eval()


@pytest.fixture
def cnn() -> nn.Module:
    return tiny_cnn()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
