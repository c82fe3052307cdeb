"""Gradient-based sensitivity: the gradient itself and gradient times input."""

from __future__ import annotations

from torch import Tensor, nn

from relprop.methods._common import Method, gradient
from relprop.targets import Target

_POSTPROCESS = (None, "abs", "square")


class Gradient(Method):
    r"""Sensitivity analysis (Simonyan et al. 2014): the gradient of the explained quantity,

    .. math:: R_i = \frac{\partial f(x)}{\partial x_i}
              \quad\text{or}\quad \Big|\frac{\partial f}{\partial x_i}\Big|
              \quad\text{or}\quad \Big(\frac{\partial f}{\partial x_i}\Big)^2,

    where :math:`f(x)` is the selected output times the target weighting.

    Parameters
    ----------
    model:
        The model, in evaluation mode.
    postprocess:
        ``None`` for the signed gradient, ``"abs"`` for its absolute value (Captum's ``Saliency``) or
        ``"square"`` for its square (the sensitivity of Montavon et al. 2018).
    """

    def __init__(self, model: nn.Module, postprocess: str | None = None) -> None:
        super().__init__(model)
        if postprocess not in _POSTPROCESS:
            raise ValueError(f"postprocess must be one of {_POSTPROCESS}, got {postprocess!r}")
        self.postprocess = postprocess

    def _attribute(self, x: Tensor, target: Target) -> Tensor:
        grad = gradient(self.model, x, target)
        if self.postprocess == "abs":
            return grad.abs()
        if self.postprocess == "square":
            return grad.square()
        return grad


class InputXGradient(Method):
    r"""Gradient times input (Shrikumar et al. 2016): :math:`R_i = x_i\,\partial f(x) / \partial x_i`.

    On networks of ReLUs without biases this equals LRP-0.
    """

    def _attribute(self, x: Tensor, target: Target) -> Tensor:
        return x * gradient(self.model, x, target)
