"""Layers by name: the graph node of a module name (``"features.10"``) or of a graph node name."""

from __future__ import annotations

import difflib

from torch import Tensor, fx, nn
from torch.nn import functional as F

from relprop.graph import Kind, Node
from relprop.lrp import LRP


def check_explainer(explainer: LRP, x: Tensor) -> None:
    """Concepts are explained by :class:`relprop.LRP` on one input tensor (batch first)."""
    if not isinstance(explainer, LRP):
        raise TypeError(f"concepts are explained by a relprop.LRP explainer, got {type(explainer).__name__}")
    if not isinstance(x, Tensor) or x.dim() < 1:
        raise TypeError(f"x must be a batch of inputs as one torch.Tensor, got {type(x).__name__}")


def layer_node(explainer: LRP, x: Tensor, name: str) -> fx.Node:
    """The graph node that ``name`` names in the graph ``explainer`` explains ``x`` with.

    A name is what :class:`~relprop.composites.Composite`'s ``name_map`` takes: a module's qualified name
    (``"features.10"``), or the graph node's name for a function or a method (``"add_1"``; the names are
    listed by ``explainer.audit(x)``). A module called more than once is named by the graph node of one call
    (``"layer1_0_relu_1"``). A model that torch.fx cannot trace is captured by torch.export, whose graph
    calls functions, not modules: its operations are named by their graph nodes (``"conv2d"``), or by the
    module name of a module that computes one operation (``"bert.encoder.layer.0.intermediate.dense"``).

    Raises
    ------
    ValueError
        If no operation of the model, or more than one, has that name.
    """
    if not isinstance(name, str):
        raise TypeError(f"a layer is named by a string (a module or graph node name), got {name!r}")
    explainer._prepare((x,), {})
    named = [n for n in explainer.graph if n.kind not in (Kind.INPUT, Kind.CONSTANT, Kind.OUTPUT)]
    matches = [n for n in named if name in (n.name, n.fx.name)]
    inside = [n for n in named if n.scope == name] if not matches else []
    if len(inside) > 1:
        nodes = ", ".join(repr(n.fx.name) for n in inside)
        raise ValueError(f"module {name!r} computes {len(inside)} operations: name one by its node, {nodes}")
    matches = matches or inside
    if not matches:
        close = difflib.get_close_matches(name, {n.name for n in named}, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"the model has no layer {name!r} (a module name or a graph node name, as "
            f"explainer.audit(x) lists them){hint}"
        )
    if len(matches) > 1:
        calls = ", ".join(repr(n.fx.name) for n in matches)
        raise ValueError(f"layer {name!r} is called {len(matches)} times: name one call by its node, {calls}")
    return matches[0].fx


def attention_node(explainer: LRP, x: Tensor, name: str) -> fx.Node:
    """The node whose output ``(B, H, T, d)`` holds the heads of the attention layer ``name``: the node it
    names, or the one attention operation (``scaled_dot_product_attention``) inside the module it names.

    Raises
    ------
    ValueError
        If ``name`` names no node and no module with exactly one attention operation.
    """
    explainer._prepare((x,), {})
    named = [n for n in explainer.graph if n.kind not in (Kind.INPUT, Kind.CONSTANT, Kind.OUTPUT)]
    if any(name in (n.name, n.fx.name) for n in named):
        return layer_node(explainer, x, name)
    inside = [
        n for n in named if n.kind == Kind.ATTENTION and (n.scope == name or n.scope.startswith(name + "."))
    ]
    if len(inside) != 1:
        raise ValueError(
            f"heads are kept at an attention layer: {name!r} names no node, and {len(inside)} attention "
            f"operations (not one) lie inside a module of that name; name the node of the attention output"
        )
    return inside[0].fx


def feature_dim(explainer: LRP, fx_node: fx.Node) -> int:
    """The dimension of a layer's output that holds its channels: the last for a dense layer (whose output
    may be a transformer's ``(B, T, D)``), dimension 1 for all others (convolutions)."""
    node: Node = explainer.graph[fx_node]
    dense = isinstance(node.module, nn.Linear) or node.function is F.linear
    return -1 if dense else 1


def channel_dim(explainer: LRP, x: Tensor, name: str) -> int:
    """The dimension of layer ``name``'s output that holds its channels (see :func:`feature_dim`)."""
    return feature_dim(explainer, layer_node(explainer, x, name))


def per_channel(relevance: Tensor, dim: int) -> Tensor:
    """``(N, C)``: the relevance ``(N, ...)`` of a layer summed over all dimensions but its channels ``dim``
    (the positions of a convolution, the tokens of a transformer's dense layer)."""
    moved = relevance.movedim(dim, 1)
    return moved.flatten(2).sum(dim=2) if moved.dim() > 2 else moved


def describe(explainer: LRP, fx_node: fx.Node) -> str:
    """The layer's description for messages (``Conv2d 'features.10'``)."""
    node: Node = explainer.graph[fx_node]
    return node.describe()
