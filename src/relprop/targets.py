"""What to explain: the ``target`` argument shared by every relprop explainer."""

from __future__ import annotations

import torch
from torch import Tensor

from relprop.checks import all_finite

Target = int | Tensor | None


def target_weights(output: Tensor, target: Target) -> Tensor:
    """The weighting of the model's outputs that ``target`` selects.

    Parameters
    ----------
    output:
        The model's output, ``(B, K)`` for classifiers.
    target:
        ``None`` for the predicted class of each sample, an ``int`` class, a ``LongTensor`` of shape ``(B,)``
        with one class per sample, or a float tensor shaped like ``output`` that weights the outputs (a
        one-hot vector, or a contrast such as ``e_a - e_b``).

    Returns
    -------
    Tensor
        Weights shaped like ``output``; the explained quantity is ``(output * weights).sum()`` per sample.
    """
    if isinstance(target, Tensor) and target.is_floating_point():
        if target.shape != output.shape:
            raise ValueError(
                f"float target of shape {tuple(target.shape)} must be shaped like the model's output "
                f"{tuple(output.shape)}"
            )
        if not all_finite(target):
            raise ValueError("float target contains NaN or infinite values")
        return target.to(output)
    if output.dim() != 2:
        raise ValueError(
            f"a class target needs an output of shape (batch, classes), got {tuple(output.shape)}; "
            "pass a float target shaped like the output instead"
        )
    batch, classes = output.shape
    if target is None:
        index = output.argmax(dim=1)
    elif isinstance(target, bool) or not isinstance(target, (int, Tensor)):
        raise TypeError(f"target must be None, an int or a tensor, got {type(target).__name__}")
    elif isinstance(target, int):
        index = torch.full((batch,), target, dtype=torch.long, device=output.device)
    else:
        if target.dtype in (torch.bool,) or target.is_complex() or target.shape not in ((batch,), ()):
            raise ValueError(
                f"integer target tensor must have shape ({batch},), got {tuple(target.shape)} "
                f"of {target.dtype}"
            )
        index = target.to(device=output.device, dtype=torch.long).expand(batch)
    bad = (index < 0) | (index >= classes)
    if bad.any():
        sample = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"target class {int(index[sample])} of sample {sample} is out of range: the model has "
            f"{classes} outputs"
        )
    return torch.nn.functional.one_hot(index, classes).to(output)
