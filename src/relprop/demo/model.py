"""The demo's model: a small all-convolutional network, trained on the CPU in seconds.

Registered for the command line as ``demo-cnn`` (without pretrained weights: pass the weights the demo
saved, ``demo-cnn:relprop-demo/model.pt``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from relprop.demo.data import TaggedDigits, paste_tag
from relprop.models.loading import register_model

__all__ = ["demo_cnn", "train_demo_cnn"]

_MAX_SHIFT = 2


def demo_cnn() -> nn.Sequential:
    """Three strided 4x4 convolutions (1 -> 8 -> 16 -> 32 channels, 32x32 -> 4x4) and a linear layer."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


def _shift(images: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Translate images by whole pixels, filling with zeros (the background)."""
    padded = functional.pad(images, (_MAX_SHIFT,) * 4)
    top, left = _MAX_SHIFT - rows, _MAX_SHIFT - cols
    return padded[..., top : top + images.shape[-2], left : left + images.shape[-1]]


def train_demo_cnn(
    data: TaggedDigits, epochs: int, seed: int = 0, batch_size: int = 64, learning_rate: float = 1e-3
) -> nn.Sequential:
    """Train :func:`demo_cnn` on the training images of ``data`` with Adam and cross-entropy.

    Each batch is shifted by up to two pixels (the same random shift for the batch) before the tag is
    pasted where it is planted, so the digit moves but the tag stays in its corner, as a watermark would.
    The initial weights and the batches are drawn from ``seed`` without touching torch's global random
    state; on one machine the same seed gives the same model.

    Returns
    -------
    torch.nn.Sequential
        The trained model, in evaluation mode.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    rows = data.train_rows
    images = torch.from_numpy(data.images[rows])
    labels = torch.from_numpy(data.labels[rows])
    tagged = data.tagged[rows]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = demo_cnn()
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(rows), generator=generator)
        for start in range(0, len(rows), batch_size):
            batch = order[start : start + batch_size]
            rows_shift, cols_shift = torch.randint(-_MAX_SHIFT, _MAX_SHIFT + 1, (2,), generator=generator)
            x = _shift(images[batch], int(rows_shift), int(cols_shift)).numpy()
            marked = tagged[batch.numpy()]
            x[marked] = paste_tag(x[marked])
            optimizer.zero_grad()
            loss = functional.cross_entropy(model(torch.from_numpy(np.ascontiguousarray(x))), labels[batch])
            loss.backward()
            optimizer.step()
    return model.eval()


def _registered_demo_cnn(pretrained: bool) -> nn.Module:
    if pretrained:
        raise ValueError(
            "demo-cnn has no pretrained weights: run `relprop demo` and pass the weights it saves, "
            "e.g. demo-cnn:relprop-demo/model.pt"
        )
    return demo_cnn()


register_model("demo-cnn", _registered_demo_cnn)
