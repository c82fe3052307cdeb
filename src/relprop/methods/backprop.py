"""Guided backpropagation and the deconvnet: the gradient with a modified backward pass through ReLUs."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from relprop.methods._common import Method, gradient
from relprop.targets import Target


class _GuidedReLU(torch.autograd.Function):
    """ReLU whose backward pass keeps only positive gradients, where the input was positive."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * (x > 0)


class _DeconvReLU(torch.autograd.Function):
    """ReLU whose backward pass is a ReLU of the gradient, whatever the input was."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.clamp(min=0)


def guided_relu(x: Tensor) -> Tensor:
    r"""``relu(x)`` with the guided backward pass :math:`\delta_{in} = \operatorname{relu}(\delta_{out})\,
    1_{x > 0}`."""
    return _GuidedReLU.apply(x)


def deconv_relu(x: Tensor) -> Tensor:
    r"""``relu(x)`` with the deconvnet backward pass
    :math:`\delta_{in} = \operatorname{relu}(\delta_{out})`."""
    return _DeconvReLU.apply(x)


_RELU_FUNCTIONS = {F.relu: False, torch.relu: False, F.relu_: True, torch.relu_: True}
_RELU_METHODS = {"relu": False, "relu_": True}


def replace_relus(model: nn.Module, relu: Callable[[Tensor], Tensor]) -> fx.GraphModule:
    """A traced copy of ``model``'s graph in which every ReLU (``nn.ReLU`` modules, ``F.relu``,
    ``torch.relu``, ``Tensor.relu`` and their in-place forms) is a call of ``relu``.

    The copy shares the model's other modules and parameters; the model itself is not changed. An in-place
    ReLU becomes an out-of-place one, and the later uses of its input are redirected to its result, which is
    what the in-place operation meant.
    """
    try:
        graph = fx.Tracer().trace(model)
    except Exception as error:  # torch.fx raises many kinds of errors on untraceable code
        raise TypeError(f"could not trace {type(model).__name__} with torch.fx: {error}") from error
    order = {node: k for k, node in enumerate(graph.nodes)}
    replaced = 0
    for node in list(graph.nodes):
        inplace = _relu_inplace(node, model)
        if inplace is None:
            continue
        source = node.args[0]
        with graph.inserting_after(node):
            new = graph.call_function(relu, (source,))
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        if inplace and isinstance(source, fx.Node):
            position = order[node]
            source.replace_all_uses_with(
                new, delete_user_cb=lambda user, after=position: order.get(user, -math.inf) > after
            )
        replaced += 1
    if not replaced:
        raise ValueError(f"{type(model).__name__} has no ReLU whose backward pass could be modified")
    graph.lint()
    return fx.GraphModule(model, graph)


def _relu_inplace(node: fx.Node, model: nn.Module) -> bool | None:
    """Whether the node is an in-place ReLU (True), an out-of-place one (False), or no ReLU (None)."""
    if node.op == "call_module":
        module = model.get_submodule(node.target)
        return bool(module.inplace) if type(module) is nn.ReLU else None
    if node.op == "call_function" and node.target in _RELU_FUNCTIONS:
        return _RELU_FUNCTIONS[node.target] or bool(node.kwargs.get("inplace", node.args[1:2] == (True,)))
    if node.op == "call_method" and node.target in _RELU_METHODS:
        return _RELU_METHODS[node.target]
    return None


class _ModifiedBackprop(Method):
    _relu: Callable[[Tensor], Tensor]

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self._traced = replace_relus(model, type(self)._relu)

    def _attribute(self, x: Tensor, target: Target) -> Tensor:
        return gradient(self._traced, x, target)


class GuidedBackprop(_ModifiedBackprop):
    r"""Guided backpropagation (Springenberg et al. 2015): the gradient, except that at every ReLU only
    positive gradients pass, and only where the ReLU's input was positive:

    .. math:: \delta_{in} = \operatorname{relu}(\delta_{out})\, 1_{x > 0}

    The model is traced with ``torch.fx`` into a copy of its graph in which the ReLUs (modules and
    functional calls) are replaced (see :func:`replace_relus`); the model itself is never changed. Other
    activations keep their gradient. Equal to Captum's ``GuidedBackprop`` on models whose ReLUs are
    ``nn.ReLU`` modules (Captum does not see functional ones).
    """

    _relu = staticmethod(guided_relu)


class Deconvnet(_ModifiedBackprop):
    r"""The deconvnet (Zeiler and Fergus 2014) as a modified gradient: at every ReLU the backward signal is
    rectified, whatever the ReLU's input was:

    .. math:: \delta_{in} = \operatorname{relu}(\delta_{out})

    Built as :class:`GuidedBackprop` is; equal to Captum's ``Deconvolution`` on models whose ReLUs are
    ``nn.ReLU`` modules.
    """

    _relu = staticmethod(deconv_relu)
