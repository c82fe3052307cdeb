"""Layers by name: the graph node of a module name (``"features.10"``) or of a graph node name."""

from __future__ import annotations

import difflib

from torch import Tensor, fx

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
    calls functions, not modules: its operations are named by their graph nodes (``"conv2d"``).

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


def describe(explainer: LRP, fx_node: fx.Node) -> str:
    """The layer's description for messages (``Conv2d 'features.10'``)."""
    node: Node = explainer.graph[fx_node]
    return node.describe()
