"""What every attribution method shares: input checks, the explained quantity, gradients and batching."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from relprop.checks import all_finite, check_eval_mode, check_input
from relprop.describe import describe_call
from relprop.targets import Target, target_weights


class Method:
    """Base of the model-based methods: ``explainer = Method(model, ...)``, ``explainer(x, target)``; each
    is a :class:`relprop.explainer.Explainer`.

    Subclasses implement :meth:`_attribute` on a checked, detached input.
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        check_eval_mode(model)
        self.model = model

    def __call__(self, x: Tensor, target: Target = None) -> Tensor:
        """Attribution of ``target`` to each element of ``x``; shaped like ``x``, same dtype and device.

        ``target`` is ``None`` (the predicted class of each sample), an ``int``, a ``LongTensor`` of shape
        ``(B,)``, or a float tensor shaped like the model's output that weights the outputs to explain
        (see :func:`relprop.targets.target_weights`). The explained quantity of sample ``b`` is
        ``(model(x)[b] * weights[b]).sum()``, with the weights chosen on ``x`` itself.
        """
        check_call(x, self.model)
        return self._attribute(x.detach(), target)

    def _attribute(self, x: Tensor, target: Target) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        """Every parameter, tensors by value and functions by name (:func:`relprop.describe.describe`)."""
        shown = {k: v for k, v in vars(self).items() if k != "model" and not k.startswith("_")}
        return describe_call(self, shown)


def check_call(x: Tensor, model: nn.Module) -> None:
    """The checks of :class:`relprop.LRP`: evaluation mode, a finite floating-point batch that matches the
    model's parameters."""
    check_eval_mode(model)
    check_input(x, model)


def forward(model: nn.Module, x: Tensor) -> Tensor:
    """``model(x)``, checked to be one finite tensor."""
    output = model(x)
    if not isinstance(output, Tensor):
        raise TypeError(
            f"relprop explains models that return one tensor, got {type(output).__name__}: wrap the model "
            "to return the logits"
        )
    if not all_finite(output):
        raise ValueError("the model's output contains NaN or infinite values")
    return output


def explained(output: Tensor, weights: Tensor) -> Tensor:
    """The explained quantity per sample: ``(output * weights).sum()`` over all but the batch dimension."""
    return (output * weights).reshape(output.shape[0], -1).sum(dim=1)


def weights_at(model: nn.Module, x: Tensor, target: Target) -> Tensor:
    """The output weights that ``target`` selects on ``x`` (the predicted class is the one at ``x``)."""
    with torch.no_grad():
        return target_weights(forward(model, x), target)


def gradient(model: nn.Module, x: Tensor, target: Target) -> Tensor:
    """Gradient of the explained quantity with respect to ``x``, per sample.

    The samples of a batch are independent, so the gradient of the sum over the batch is the per-sample
    gradient. The model's parameters receive no gradient.
    """
    leaf = x.detach().requires_grad_()
    with torch.enable_grad():
        output = forward(model, leaf)
        weights = target_weights(output.detach(), target)
        (grad,) = torch.autograd.grad(explained(output, weights).sum(), leaf, materialize_grads=True)
    return grad


def tile(t: Tensor, copies: int) -> Tensor:
    """``copies`` copies of a batch stacked along the batch dimension: ``[t, t, ..., t]``."""
    return t.repeat(copies, *([1] * (t.dim() - 1)))


def chunks(total: int, size: int) -> Iterator[range]:
    """``range(total)`` in consecutive pieces of at most ``size``."""
    for start in range(0, total, size):
        yield range(start, min(start + size, total))


def per_forward(batch_size: int, samples: int) -> int:
    """How many modified copies of a batch of ``samples`` fit in one forward pass of ``batch_size`` inputs
    (at least one)."""
    return max(1, batch_size // samples)


def baseline_like(value: float | Tensor, x: Tensor, name: str) -> Tensor:
    """A reference input shaped like ``x``: a scalar, or a tensor shaped like one sample ``x[0]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Tensor)):
        raise TypeError(f"{name} must be a number or a tensor, got {type(value).__name__}")
    if isinstance(value, Tensor):
        if value.shape not in (x.shape[1:], ()):
            raise ValueError(
                f"{name} of shape {tuple(value.shape)} must be a scalar or shaped like one sample "
                f"{tuple(x.shape[1:])}"
            )
        if not torch.isfinite(value).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    else:
        value = torch.tensor(value)
        if not torch.isfinite(value):
            raise ValueError(f"{name} must be finite, got {float(value)}")
    return value.to(dtype=x.dtype, device=x.device).expand_as(x)
