"""Occlusion: how much the output drops when a sliding window of the input is replaced by a fill value."""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn

from relprop.checks import check_int
from relprop.methods._common import (
    Method,
    baseline_like,
    chunks,
    explained,
    forward,
    per_forward,
    tile,
    weights_at,
)
from relprop.targets import Target

Size = int | tuple[int, ...]


class Occlusion(Method):
    r"""Occlusion (Zeiler and Fergus 2014), defined as Captum defines it.

    A window slides over each sample; for every position :math:`w` the window is replaced by the fill
    value, giving :math:`x_{\setminus w}`, and each element :math:`i` receives the mean drop over the windows
    that cover it:

    .. math:: R_i = \frac{1}{|\{w : i \in w\}|} \sum_{w \ni i} \big(f(x) - f(x_{\setminus w})\big)

    Windows start every ``stride`` elements from the first one along each dimension; where the input does
    not end on a stride, the last window is cut at the border, so that every element is covered. Occluding
    a region that the model ignores gives zero there.

    Parameters
    ----------
    model:
        The model, in evaluation mode.
    patch:
        The window: an ``int`` (a square over the spatial dimensions, through all channels; a segment of a
        1-D sample), a tuple over the dimensions after the channel dimension (through all channels), or a
        tuple over all dimensions of one sample.
    stride:
        The step between windows, given like ``patch``; by default ``patch`` (windows that do not overlap).
        It may not exceed the patch where the window is smaller than the input, or elements would be left
        uncovered.
    fill:
        The value of the occluded elements: a scalar, or a tensor shaped like one sample.
    batch_size:
        At most this many occluded inputs (counting every sample of the batch) go through the model at
        once, but at least one copy of the batch.
    """

    def __init__(
        self,
        model: nn.Module,
        patch: Size,
        stride: Size | None = None,
        fill: float | Tensor = 0.0,
        batch_size: int = 256,
    ) -> None:
        super().__init__(model)
        self.patch = patch
        self.stride = patch if stride is None else stride
        self.fill = fill
        self.batch_size = check_int(batch_size, "batch_size")
        for name, value in (("patch", self.patch), ("stride", self.stride)):
            for v in value if isinstance(value, tuple) else (value,):
                check_int(v, f"{name} entry")

    def windows(self, shape: tuple[int, ...]) -> list[tuple[slice, ...]]:
        """The occluded regions of one sample of shape ``shape``, as tuples of slices."""
        patch = _per_dimension(self.patch, shape, "patch")
        stride = _per_dimension(self.stride, shape, "stride")
        starts = []
        for size, window, step in zip(shape, patch, stride):
            if window > size:
                raise ValueError(f"patch {tuple(patch)} is larger than the input sample {tuple(shape)}")
            if step > window and window < size:
                raise ValueError(
                    f"stride {tuple(stride)} exceeds patch {tuple(patch)}: elements would be left uncovered"
                )
            count = math.ceil((size - window) / step) + 1
            starts.append([slice(k * step, min(k * step + window, size)) for k in range(count)])
        return list(itertools.product(*starts))

    def _attribute(self, x: Tensor, target: Target) -> Tensor:
        windows = self.windows(tuple(x.shape[1:]))
        fill = baseline_like(self.fill, x, "fill")
        weights = weights_at(self.model, x, target)
        total = torch.zeros_like(x)
        count = torch.zeros_like(x[0])
        with torch.no_grad():
            reference = explained(forward(self.model, x), weights)
            for part in chunks(len(windows), per_forward(self.batch_size, x.shape[0])):
                masks = torch.zeros((len(part), 1, *x.shape[1:]), dtype=torch.bool, device=x.device)
                for row, k in enumerate(part):
                    masks[(row, 0, *windows[k])] = True
                occluded = torch.where(masks, fill, x)  # (windows, batch, ...)
                output = forward(self.model, occluded.flatten(0, 1))
                drop = reference - explained(output, tile(weights, len(part))).view(len(part), -1)
                total += (drop.view(*drop.shape, *([1] * (x.dim() - 1))) * masks).sum(dim=0)
                count += masks.sum(dim=(0, 1))
        return total / count


def _per_dimension(value: Size, shape: tuple[int, ...], name: str) -> tuple[int, ...]:
    """``patch`` or ``stride`` for every dimension of a sample; the channel dimension is covered whole."""
    if isinstance(value, int):
        return (value,) if len(shape) == 1 else (shape[0],) + (value,) * (len(shape) - 1)
    if len(value) == len(shape):
        return tuple(value)
    if len(value) == len(shape) - 1:
        return (shape[0], *value)
    raise ValueError(
        f"{name} {value} must be an int or a tuple of {len(shape) - 1} or {len(shape)} sizes for input "
        f"samples of shape {tuple(shape)}"
    )
