"""Canonizers: rewrite the traced graph into an equivalent one that the rules explain better.

A canonizer changes only relprop's view of the model, never the model itself: its parameters, hooks and
outputs stay as they are.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import fx, nn

from relprop import types
from relprop.graph import Graph, Kind, Node, batch_norm_arguments


class Canonizer:
    """A rewrite of the traced graph into an equivalent one."""

    def apply(self, graph: Graph) -> None:
        """Rewrite ``graph`` in place."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MergeBatchNorm(Canonizer):
    """Fold each batch normalization into the dense or convolutional layer before it.

    ``bn(conv(x))`` becomes one convolution with weight :math:`w a` and bias :math:`(b - \\mu) a + \\beta`,
    where :math:`a = \\gamma / \\sqrt{\\sigma^2 + \\epsilon}` (running statistics). The layer's output must
    feed nothing but the batch normalization. Modules and functional calls (``F.conv2d`` then
    ``F.batch_norm``, as ``torch.export`` records them) are folded alike. The folded parameters are computed
    at each call, so later changes to the model's parameters are seen.
    """

    def apply(self, graph: Graph) -> None:
        for node in graph:
            if node.kind != Kind.AFFINE:
                continue
            bn = node.module if isinstance(node.module, types.BatchNorm) else _functional(graph, node)
            if bn is None:
                continue
            producer = node.fx.args[0]
            before = graph[producer]
            if (
                len(producer.users) == 1
                and _channels(graph, before) == bn.num_features
                and not (getattr(before.module, "transposed", False) and before.module.groups != 1)
            ):
                before.folded.append(bn)
                node.kind = Kind.FOLDED


def _functional(graph: Graph, node: Node) -> nn.modules.batchnorm._BatchNorm | None:
    """A batch normalization called as a function, with constant statistics, as a module holding them."""
    if node.function is not F.batch_norm:
        return None
    bound = batch_norm_arguments(node.fx.target, node.fx.args, node.fx.kwargs)
    tensors = {}
    for name in ("running_mean", "running_var", "weight", "bias"):
        argument = bound[name]
        constant = isinstance(argument, fx.Node) and graph[argument].kind == Kind.CONSTANT
        if argument is not None and not constant:
            return None
        tensors[name] = None if argument is None else graph.constant(argument)
    bn = nn.BatchNorm1d(tensors["running_mean"].numel(), eps=bound["eps"], affine=False)
    bn.running_mean, bn.running_var = tensors["running_mean"], tensors["running_var"]
    for name in ("weight", "bias"):
        if tensors[name] is not None:  # the model's tensor itself, not a copy
            setattr(bn, name, nn.Parameter(tensors[name], requires_grad=False))
    return bn.eval()


def _channels(graph: Graph, node: Node) -> int | None:
    """The output channels of a dense or convolutional layer, module or function; ``None`` for others."""
    if isinstance(node.module, nn.Linear):
        return node.module.out_features
    if isinstance(node.module, types.Linear):
        return node.module.out_channels
    if node.module is None and node.weighted and node.function in (F.linear, F.conv1d, F.conv2d, F.conv3d):
        weight = node.fx.args[1] if len(node.fx.args) > 1 else node.fx.kwargs.get("weight")
        if isinstance(weight, fx.Node) and graph[weight].kind == Kind.CONSTANT:
            return graph.constant(weight).shape[0]
    return None
