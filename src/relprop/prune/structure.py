"""Which parameters hold a unit: a layer's output channel (convolution) or neuron (dense layer), traced with
``torch.fx`` to the layers that read it.

A unit of layer ``L`` (an ``nn.Conv2d`` with ``groups=1`` or an ``nn.Linear``) lives in ``L``'s weight row and
bias, in the channel of each *follower* its output passes through on its way to the next weighted layers
(batch normalizations, depthwise convolutions, and operations that map zero to zero channel by channel:
ReLU-like activations, dropout, zero padding, pooling, flattening), and in the input columns of those
*consumers* (``nn.Conv2d`` with ``groups=1``, ``nn.Linear``). Zeroing the unit's parameters in ``L`` and in
every follower makes the unit's channel exactly zero where the consumers read it, which is what removing it
does. A layer whose output reaches anything else (an addition, a concatenation, the model's output) has no
units that can be removed on their own, and :func:`layer_structure` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx, nn

#: Modules a unit's channel passes through unchanged in position, zero staying zero.
_PASS_THROUGH = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
    nn.ZeroPad2d,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Flatten,
)
_PASS_FUNCTIONS = (torch.relu, torch.nn.functional.relu, torch.flatten)


@dataclass(frozen=True)
class LayerStructure:
    """Where the units of one layer live.

    Attributes
    ----------
    name : str
        The layer (as in ``model.named_modules()``).
    size : int
        Its number of units (output channels or features).
    followers : tuple[str, ...]
        Batch normalizations and depthwise convolutions that carry each unit in their own channel.
    consumers : tuple[str, ...]
        The weighted layers that read the units: their input channels (or, after flattening, blocks of
        input features) belong to the units.
    """

    name: str
    size: int
    followers: tuple[str, ...]
    consumers: tuple[str, ...]


def _is_layer(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1)


def _is_depthwise(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Conv2d)
        and module.groups == module.in_channels == module.out_channels
        and module.groups > 1
    )


def prunable_layers(model: nn.Module) -> list[str]:
    """The names of ``model``'s layers whose units can be removed one by one (see the module docstring)."""
    graph = trace(model)
    found = []
    for name, module in model.named_modules():
        if _is_layer(module):
            try:
                layer_structure(model, name, graph)
            except ValueError:
                continue
            found.append(name)
    return found


def trace(model: nn.Module) -> fx.Graph:
    """``model``'s ``torch.fx`` graph, for :func:`layer_structure` (TypeError if it cannot be traced)."""
    try:
        return fx.symbolic_trace(model).graph
    except Exception as error:  # fx raises anything from the model's own code
        raise TypeError(f"torch.fx cannot trace the model: {error}") from None


def layer_structure(model: nn.Module, name: str, graph: fx.Graph | None = None) -> LayerStructure:
    """Where the units of ``model``'s layer ``name`` live, found in its traced ``graph`` (:func:`trace`; by
    default traced here).

    Raises
    ------
    ValueError
        If ``name`` is no module of the model, not a convolution (``groups=1``) or dense layer, called more
        than once, or if its output reaches an operation other than the followers and consumers above.
    TypeError
        If ``torch.fx`` cannot trace the model.
    """
    modules = dict(model.named_modules())
    layer = _checked_layer(modules, name)
    graph = trace(model) if graph is None else graph
    calls = [n for n in graph.nodes if n.op == "call_module" and n.target == name]
    if len(calls) != 1:
        raise ValueError(f"layer {name!r} is called {len(calls)} times in the model, not once")
    followers, consumers = _readers(modules, name, calls[0])
    size = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    for follower in followers:
        channels = getattr(modules[follower], "num_features", None) or modules[follower].out_channels
        if channels != size:
            raise ValueError(f"layer {name!r} cannot be pruned: it has {size} units, {follower!r} {channels}")
    return LayerStructure(name, size, tuple(followers), tuple(consumers))


def _checked_layer(modules: dict[str, nn.Module], name: str) -> nn.Module:
    """The module ``name``, which must be a convolution (``groups=1``) or a dense layer."""
    if name not in modules:
        raise ValueError(f"the model has no layer {name!r}")
    if not _is_layer(modules[name]):
        raise ValueError(
            f"layer {name!r} is a {type(modules[name]).__name__}; relprop.prune prunes nn.Conv2d (groups=1) "
            "and nn.Linear layers"
        )
    return modules[name]


def _readers(modules: dict[str, nn.Module], name: str, call: fx.Node) -> tuple[list[str], list[str]]:
    """The followers and the consumers of the layer's output, walking the graph from its ``call`` through the
    operations that carry each unit in its channel; anything else on the way is refused."""
    followers: list[str] = []
    consumers: list[str] = []
    frontier = list(call.users)
    seen = set()
    while frontier:
        node = frontier.pop()
        if node in seen:
            continue
        seen.add(node)
        module = modules.get(node.target) if node.op == "call_module" else None
        if module is not None and _is_layer(module):
            consumers.append(node.target)
            continue
        if isinstance(module, nn.modules.batchnorm._BatchNorm) or _is_depthwise(module):
            followers.append(node.target)
        elif not (
            isinstance(module, _PASS_THROUGH)
            or (node.op == "call_function" and node.target in _PASS_FUNCTIONS)
        ):
            raise ValueError(
                f"layer {name!r} cannot be pruned: its output reaches {_described(node, module)} (node "
                f"{node.name!r}), which is neither a batch norm, a depthwise convolution, a zero-preserving "
                "activation or pooling, nor a convolution or dense layer"
            )
        frontier.extend(node.users)
    if not consumers:
        raise ValueError(f"layer {name!r} cannot be pruned: no layer reads its output (is it the last?)")
    return followers, consumers


def _described(node: fx.Node, module: nn.Module | None) -> str:
    """What a graph node is, for an error: its module's type, the model's output, or its function's name."""
    if module is not None:
        return type(module).__name__
    return "the model's output" if node.op == "output" else getattr(node.target, "__name__", str(node.target))
