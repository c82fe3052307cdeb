"""Replacement values for removed image regions (the perturbation ``g`` of Samek et al. 2017).

A replacement is a callable ``replacement(x, generator) -> Tensor`` that returns, for an image batch ``x``
(B, C, H, W), the values that removed pixels take, shaped like ``x``. It is computed once per image, so a
pixel keeps one replacement value however often it is covered by a removed region; the perturbation curves
call it on each image alone with that image's own generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from relprop.checks import check_finite

Replacement = Callable[[Tensor, torch.Generator], Tensor]


class UniformNoise:
    r"""Per-pixel, per-channel uniform noise, :math:`\tilde x_{bchw} \sim \mathcal U(a, b)`.

    This is the perturbation of Samek et al. (2017).

    Parameters
    ----------
    low, high
        Bounds :math:`a, b` of the uniform distribution. None (both) samples each image within its own
        value range ``[x_b.min(), x_b.max()]`` (a constant image is then left unchanged).
    """

    def __init__(self, low: float | None = None, high: float | None = None) -> None:
        if (low is None) != (high is None):
            raise ValueError("UniformNoise needs both low and high, or neither (each image's own range)")
        if low is not None and not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"UniformNoise needs finite bounds with low < high, got low={low}, high={high}")
        self.low = low
        self.high = high

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        noise = torch.rand(x.shape, generator=generator, dtype=torch.float64).to(
            device=x.device, dtype=x.dtype
        )
        if self.low is None:
            flat = x.flatten(1)
            low = flat.min(dim=1).values.view(-1, 1, 1, 1)
            high = flat.max(dim=1).values.view(-1, 1, 1, 1)
        else:
            low, high = self.low, self.high
        return low + (high - low) * noise

    def __repr__(self) -> str:
        return f"UniformNoise(low={self.low}, high={self.high})"


class Constant:
    """A fixed value: a number, or a tensor broadcastable to one image (C, H, W), e.g. the dataset mean
    per channel shaped (C, 1, 1).
    """

    def __init__(self, value: float | Tensor) -> None:
        value = torch.as_tensor(value)
        if not value.is_floating_point():
            value = value.double()
        check_finite(value, "Constant value")
        if value.dim() > 3:
            raise ValueError(
                f"Constant value must broadcast to one image (C, H, W), got shape {tuple(value.shape)}"
            )
        self.value = value

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        try:
            return self.value.to(device=x.device, dtype=x.dtype).expand_as(x)
        except RuntimeError as error:
            raise ValueError(
                f"Constant value of shape {tuple(self.value.shape)} does not broadcast to images "
                f"{tuple(x.shape[1:])}"
            ) from error

    def __repr__(self) -> str:
        return f"Constant({self.value.tolist()})"


class GaussianBlur:
    r"""The image blurred by a Gaussian kernel of standard deviation ``sigma`` pixels.

    The kernel is truncated at :math:`\lceil 3\sigma \rceil` pixels and the border is replicated.
    """

    def __init__(self, sigma: float) -> None:
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"GaussianBlur needs a positive finite sigma, got {sigma}")
        self.sigma = float(sigma)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        radius = math.ceil(3 * self.sigma)
        offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
        kernel = torch.exp(-0.5 * (offsets / self.sigma) ** 2)
        kernel = kernel / kernel.sum()
        channels = x.shape[1]
        rows = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
        cols = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
        padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
        return F.conv2d(F.conv2d(padded, rows, groups=channels), cols, groups=channels)

    def __repr__(self) -> str:
        return f"GaussianBlur(sigma={self.sigma})"


def as_replacement(perturbation: str | float | Tensor | Replacement) -> Replacement:
    """Resolve the ``perturbation`` argument of the perturbation metrics to a replacement callable.

    ``"uniform"`` is :class:`UniformNoise` over each image's own range, a number or a tensor is a
    :class:`Constant`, and any callable ``(x, generator) -> Tensor`` is used as it is.
    """
    if isinstance(perturbation, str):
        if perturbation == "uniform":
            return UniformNoise()
        raise ValueError(
            f"unknown perturbation {perturbation!r}: use 'uniform', a number, a tensor, "
            "or a callable such as GaussianBlur(sigma)"
        )
    if isinstance(perturbation, bool):
        raise TypeError("perturbation must be 'uniform', a number, a tensor or a callable, got a bool")
    if isinstance(perturbation, int | float | Tensor):
        return Constant(perturbation)
    if callable(perturbation):
        return perturbation
    raise TypeError(
        f"perturbation must be 'uniform', a number, a tensor or a callable, got {type(perturbation).__name__}"
    )
