"""Canonizers: rewrite the traced graph into an equivalent one that the rules explain better.

A canonizer changes only relprop's view of the model, never the model itself: its parameters, hooks and
outputs stay as they are.
"""

from __future__ import annotations

from torch import nn

from relprop import types
from relprop.graph import Graph, Kind


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
    feed nothing but the batch normalization. The folded parameters are computed at each call, so later
    changes to the model's parameters are seen.
    """

    def apply(self, graph: Graph) -> None:
        for node in graph:
            if node.kind != Kind.LINEAR or not isinstance(node.module, types.BatchNorm):
                continue
            producer = node.fx.args[0]
            before = graph[producer]
            if (
                len(producer.users) == 1
                and isinstance(before.module, types.Linear)
                and not (getattr(before.module, "transposed", False) and before.module.groups != 1)
                and _channels(before.module) == node.module.num_features
            ):
                before.folded.append(node.module)
                node.kind = Kind.FOLDED


def _channels(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.out_features
    return module.out_channels
