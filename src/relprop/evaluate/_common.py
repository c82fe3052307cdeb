"""Argument handling shared by the evaluation metrics: seeds, input checks, the explained output.

Targets mean what they mean everywhere in relprop: :func:`relprop.targets.target_weights`.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from relprop.checks import check_finite
from relprop.targets import Target, target_weights

__all__ = ["Target", "as_generator", "as_seed", "explained_output", "image_generators", "target_weights"]


def as_generator(seed: int | torch.Generator) -> torch.Generator:
    """Return ``seed`` if it is a generator, else a fresh CPU generator seeded with the integer ``seed``."""
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, int) and not isinstance(seed, bool):
        return torch.Generator().manual_seed(seed)
    raise TypeError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")


def as_seed(seed: int | torch.Generator) -> int:
    """The integer ``seed``, or one integer drawn from the generator ``seed`` (which advances it)."""
    if isinstance(seed, torch.Generator):
        return int(torch.randint(2**62, (), generator=seed))
    if isinstance(seed, int) and not isinstance(seed, bool):
        return seed
    raise TypeError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")


def image_generators(seed: int, x: Tensor, stream: str) -> list[torch.Generator]:
    """One CPU generator per image of the batch ``x`` (B, ...), seeded by ``seed``, the name ``stream``
    and the image's own values (shape, dtype and bytes, hashed with BLAKE2b).

    What an image draws therefore depends on nothing else: not on the other images of the batch or their
    order, not on what was drawn before, and not on the explanation method. Streams of different names are
    independent, so one image can draw, say, a random order and its replacement values separately.
    """
    images = x.detach().cpu().contiguous()
    generators = []
    for image in images:
        digest = hashlib.blake2b(
            f"{seed}:{stream}:{image.dtype}:{tuple(image.shape)}".encode(), digest_size=8
        )
        digest.update(image.flatten().view(torch.uint8).numpy().tobytes())
        generators.append(torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little") >> 1))
    return generators


def check_images(x: Tensor) -> None:
    """Check that ``x`` is a finite floating-point image batch shaped (B, C, H, W)."""
    check_finite(x, "x")
    if x.dim() != 4 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty image batch shaped (B, C, H, W), got shape {tuple(x.shape)}")


def pooled_heatmap(attribution: Tensor, name: str = "attribution") -> Tensor:
    """Sum a (B, C, H, W) attribution over channels; a (B, H, W) heatmap is returned as it is."""
    check_finite(attribution, name)
    if attribution.dim() == 4:
        return attribution.sum(dim=1)
    if attribution.dim() == 3:
        return attribution
    raise ValueError(f"{name} must be shaped (B, C, H, W) or (B, H, W), got shape {tuple(attribution.shape)}")


def heatmap_like(attribution: Tensor, x: Tensor) -> Tensor:
    """Channel-summed heatmap (B, H, W) of an attribution shaped like ``x`` or like ``x`` without channels."""
    if attribution.shape != x.shape and attribution.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(
            f"attribution must be shaped like x {tuple(x.shape)} or (B, H, W) "
            f"{(x.shape[0], *x.shape[2:])}, got {tuple(attribution.shape)}"
        )
    return pooled_heatmap(attribution)


def explained_output(output: Tensor, weights: Tensor) -> Tensor:
    """The explained quantity per sample, ``sum_k output[b, k] * weights[b, k]``, shaped (B,)."""
    if output.shape != weights.shape:
        raise ValueError(f"the model output has shape {tuple(output.shape)}, expected {tuple(weights.shape)}")
    return (output * weights).sum(dim=1)
