"""Grad-CAM: a layer's activation maps weighted by their spatially averaged gradients."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from relprop.methods._common import Method, explained, forward
from relprop.targets import Target, target_weights

_INTERPOLATION = {1: "linear", 2: "bilinear", 3: "trilinear"}


class GradCAM(Method):
    r"""Grad-CAM (Selvaraju et al. 2017).

    With :math:`A^k` the activation map of channel :math:`k` at the chosen layer and :math:`f` the explained
    quantity,

    .. math:: \alpha_k = \operatorname{mean}_{u} \frac{\partial f}{\partial A^k_u}, \qquad
              L = \operatorname{relu}\Big(\sum_k \alpha_k A^k\Big),

    upsampled (bi/trilinearly, ``align_corners=False``, as Captum's ``LayerAttribution.interpolate``) to
    the input's spatial size and repeated over the input's channels. This is Captum's ``LayerGradCam`` with
    ``relu_attributions=True``.

    The activation is captured by a forward hook that exists only during the call (it is removed even when
    the call raises); the hook hands a copy of the activation to the rest of the model, so that an in-place
    operation after the layer (``nn.ReLU(inplace=True)``) does not change what is explained.

    Parameters
    ----------
    model:
        The model, in evaluation mode.
    layer:
        The name of the layer, as in ``model.named_modules()``; its output must be shaped
        ``(batch, channels, *spatial)`` with as many spatial dimensions as the input. The default is
        torchvision VGG-16's last convolution.
    """

    def __init__(self, model: nn.Module, layer: str = "features.28") -> None:
        super().__init__(model)
        names = [name for name, _ in model.named_modules() if name]
        if layer not in names:
            listed = ", ".join(repr(n) for n in names[:10]) + (", ..." if len(names) > 10 else "")
            raise ValueError(f"GradCAM layer {layer!r} is not a module of the model; its modules: {listed}")
        self.layer = layer

    def _attribute(self, x: Tensor, target: Target) -> Tensor:
        if x.dim() - 2 not in _INTERPOLATION:
            raise ValueError(
                f"GradCAM explains inputs of shape (batch, channels, *spatial), got {tuple(x.shape)}"
            )
        captured: list[Tensor] = []

        def capture(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor:
            if not isinstance(output, Tensor):
                raise TypeError(f"GradCAM layer {self.layer!r} returns {type(output).__name__}, not a tensor")
            captured.append(output)
            return output.clone()

        handle = self.model.get_submodule(self.layer).register_forward_hook(capture)
        try:
            with torch.enable_grad():
                output = forward(self.model, x.detach().requires_grad_())
        finally:
            handle.remove()
        if len(captured) != 1:
            raise ValueError(
                f"GradCAM layer {self.layer!r} ran {len(captured)} times in one forward pass, not once"
            )
        (activation,) = captured
        if activation.shape[0] != x.shape[0] or activation.dim() != x.dim():
            raise ValueError(
                f"GradCAM layer {self.layer!r} has output of shape {tuple(activation.shape)}; it needs "
                f"(batch, channels, *spatial) with {x.dim() - 2} spatial dimensions, like the input "
                f"{tuple(x.shape)}"
            )
        weights = target_weights(output.detach(), target)
        with torch.enable_grad():
            quantity = explained(output, weights).sum()
            (grad,) = torch.autograd.grad(quantity, activation, materialize_grads=True)
        spatial = tuple(range(2, x.dim()))
        alpha = grad.mean(dim=spatial, keepdim=True)
        cam = torch.relu((alpha * activation.detach()).sum(dim=1, keepdim=True))
        cam = F.interpolate(cam, size=x.shape[2:], mode=_INTERPOLATION[x.dim() - 2], align_corners=False)
        return cam.expand_as(x).contiguous()
