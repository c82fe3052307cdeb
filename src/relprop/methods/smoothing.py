"""SmoothGrad: any explainer averaged over noisy copies of the input."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from relprop.checks import check_int, check_number, check_seed
from relprop.methods._common import check_call, chunks, per_forward, tile, weights_at
from relprop.targets import Target


class SmoothGrad:
    r"""SmoothGrad (Smilkov et al. 2017): the mean of an explanation over noisy copies of the input.

    .. math:: R(x) = \frac1N \sum_{k=1}^{N} E(x + \epsilon_k), \qquad
              \epsilon_k \sim \mathcal N\big(0,\ \sigma^2 I\big),\quad
              \sigma = \text{noise} \cdot (\max_i x_i - \min_i x_i)

    with the range taken per sample, as Smilkov et al. do. ``base`` (:math:`E`) may be any relprop
    explainer: ``SmoothGrad(Gradient(model))`` is the original method, ``SmoothGrad(LRP(model))`` smooths
    LRP. The output to explain is chosen once, on ``x``, and passed to ``base`` as a float target for every
    noisy copy.

    Parameters
    ----------
    base:
        The explainer to smooth: called as ``base(x, target)`` and carrying the model as ``base.model``.
    noise:
        The standard deviation of the noise as a fraction of each sample's value range.
    samples:
        Number of noisy copies :math:`N`.
    seed:
        Seed of the noise, for reproducible results; ``None`` draws from PyTorch's global generator. With
        a seed, the noise is ``torch.randn(x.shape, generator=g)`` drawn ``samples`` times in order, ``g``
        a ``torch.Generator`` on ``x``'s device seeded with ``seed``, so the result does not depend on
        ``batch_size``.
    batch_size:
        At most this many noisy inputs (counting every sample of the batch) go to ``base`` at once, but at
        least one copy of the batch.
    """

    def __init__(
        self,
        base: Callable[[Tensor, Target], Tensor],
        noise: float = 0.1,
        samples: int = 20,
        seed: int | None = None,
        batch_size: int = 256,
    ) -> None:
        if not callable(base) or not isinstance(getattr(base, "model", None), nn.Module):
            raise TypeError(
                f"base must be a relprop explainer with a .model (e.g. Gradient(model)), got {base!r}"
            )
        self.base = base
        self.noise = check_number(noise, "noise")
        self.samples = check_int(samples, "samples")
        self.seed = check_seed(seed)
        self.batch_size = check_int(batch_size, "batch_size")

    def __call__(self, x: Tensor, target: Target = None) -> Tensor:
        """The mean attribution of ``base`` over noisy copies of ``x``; shaped like ``x``."""
        model = self.base.model
        check_call(x, model)
        x = x.detach()
        weights = weights_at(model, x, target)
        flat = x.reshape(x.shape[0], -1)
        sigma = self.noise * (flat.amax(dim=1) - flat.amin(dim=1))
        sigma = sigma.view(-1, *([1] * (x.dim() - 1)))
        generator = None if self.seed is None else torch.Generator(device=x.device).manual_seed(self.seed)
        total = torch.zeros_like(x)
        for part in chunks(self.samples, per_forward(self.batch_size, x.shape[0])):
            noisy = torch.cat(
                [
                    x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
                    for _ in part
                ]
            )
            attribution = self.base(noisy, tile(weights, len(part)))
            if not isinstance(attribution, Tensor) or attribution.shape != noisy.shape:
                shape = getattr(attribution, "shape", type(attribution).__name__)
                raise ValueError(
                    f"base returned an attribution of shape {shape} for inputs {tuple(noisy.shape)}"
                )
            total += attribution.view(len(part), *x.shape).sum(dim=0)
        return total / self.samples

    def __repr__(self) -> str:
        return (
            f"SmoothGrad({self.base!r}, noise={self.noise}, samples={self.samples}, seed={self.seed}, "
            f"batch_size={self.batch_size})"
        )
