"""The computation graph relprop explains.

:func:`trace` records a model with ``torch.fx`` and classifies every operation, so that nothing is
hidden from the engine: functional calls (``F.relu``, ``torch.cat``) and arithmetic (``a + b``) become
nodes just as modules do. Each :class:`Node` says what *kind* of operation it is, which type composites
map rules to, where it sits in the model, and how to view it as an :mod:`~relprop.operations` object.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from relprop import operations, types


class Kind(enum.Enum):
    """How relevance passes through a node."""

    INPUT = "input"
    CONSTANT = "constant"  # a parameter or buffer of the model used as a tensor
    LINEAR = "linear"  # takes an LRP rule: dense, convolution, pooling, addition, reduction
    MAXPOOL = "maxpool"
    ELEMENTWISE = "elementwise"
    GATE = "gate"  # multiplication or division: signal and gate
    ROUTE = "route"  # moves values without arithmetic: reshape, cat, slicing, dropout, identity
    FOLDED = "folded"  # folded into the operation before it by a canonizer: passes value and relevance
    OUTPUT = "output"
    UNKNOWN = "unknown"  # computed, but no rule can explain it


class UnsupportedOperationError(RuntimeError):
    """Relevance reached an operation that no rule explains."""


@dataclass(eq=False)
class Node:
    """One operation of the traced model."""

    fx: fx.Node
    kind: Kind
    type: type | None = None
    module: nn.Module | None = None
    scope: str = ""
    folded: list[nn.Module] = field(default_factory=list)
    reason: str = ""

    @property
    def name(self) -> str:
        """The module's qualified name for module calls, otherwise the graph node's name."""
        return self.fx.target if self.fx.op == "call_module" else self.fx.name

    def describe(self) -> str:
        """Human-readable name and place, for tables and error messages."""
        if self.fx.op == "call_module":
            return f"{type(self.module).__name__} '{self.fx.target}'"
        what = getattr(self.fx.target, "__name__", str(self.fx.target))
        where = f" in '{self.scope}'" if self.scope else ""
        return f"{what} (node '{self.fx.name}'){where}"

    @property
    def weighted(self) -> bool:
        """Whether the node is a linear operation with weights (an :class:`~relprop.operations.Affine`)."""
        return self.kind == Kind.LINEAR and (
            (self.module is not None and isinstance(self.module, types.Linear + types.BatchNorm))
            or self.fx.target in _FUNCTIONAL_AFFINE
        )

    def run(self, args: tuple, kwargs: dict) -> Any:
        """Compute the node's value from its argument values."""
        op, target = self.fx.op, self.fx.target
        if op == "call_module":
            return self.module(*args, **kwargs)
        if op == "call_function":
            return target(*args, **kwargs)
        if op == "call_method":
            return getattr(args[0], target)(*args[1:], **kwargs)
        raise AssertionError(op)

    def operands(self, values: dict, graph: Graph) -> list[fx.Node]:
        """The arguments that relevance flows to: tensors that depend on the model's input, in order.

        Other tensors (parameters, buffers, constants) are part of the operation, like a bias.
        """
        if self.kind in (Kind.LINEAR, Kind.MAXPOOL) and self._unary():
            candidates = list(self.fx.args[:1])
        else:
            candidates = []
            fx.node.map_arg((self.fx.args, self.fx.kwargs), candidates.append)
        return [
            n
            for n in candidates
            if isinstance(n, fx.Node) and isinstance(values[n], Tensor) and graph.depends_on_input(n)
        ]

    @property
    def inplace(self) -> bool:
        """Whether the operation overwrites one of its arguments. A dropout module does not, even with
        ``inplace=True``: relprop explains models in evaluation mode, where dropout is the identity."""
        if isinstance(self.module, nn.modules.dropout._DropoutNd):
            return False
        name = getattr(self.fx.target, "__name__", self.fx.target)
        return bool(
            getattr(self.module, "inplace", False)
            or self.fx.kwargs.get("inplace")
            or (
                isinstance(name, str) and (name.endswith("_") or name in ("iadd", "isub", "imul", "itruediv"))
            )
        )

    def _unary(self) -> bool:
        return not (isinstance(self.type, type) and issubclass(self.type, types.Add))

    def operation(self, values: dict, operand_nodes: Sequence[fx.Node], graph: Graph) -> operations.Operation:
        """View the node as an :mod:`~relprop.operations` object, given the values of the forward pass."""
        args, kwargs = fx.node.map_arg((self.fx.args, self.fx.kwargs), values.__getitem__)
        if self.kind == Kind.MAXPOOL:
            return _maxpool_operation(self, args, kwargs)
        if self.kind != Kind.LINEAR:

            def call(*inputs):
                substitute = dict(zip(operand_nodes, inputs))
                a, k = fx.node.map_arg((self.fx.args, self.fx.kwargs), lambda n: substitute.get(n, values[n]))
                return self.run(a, k)

            return operations.Call(call, self.module)
        if self.weighted:
            if self.fx.target in _FUNCTIONAL_AFFINE:
                return _functional_affine(self.fx.target, args, kwargs)
            op = _module_affine(self.module)
            for bn in self.folded:
                op = operations.fold_batch_norm(op, self.module, bn)
            return op
        if issubclass(self.type, types.Add):
            return _add_operation(self, args, kwargs, operand_nodes)
        rest = args[1:]

        def fn(x):
            return self.run((x, *rest), kwargs)

        return operations.Weightless(fn, [1.0])


class Graph:
    """A traced model: its nodes in execution order, with their classification.

    Parameters
    ----------
    model:
        The model; it is not modified.
    leaf_types:
        Module types to keep whole (not traced into), in addition to ``torch.nn``'s own modules.
    """

    def __init__(self, model: nn.Module, leaf_types: tuple[type, ...] = ()) -> None:
        self.model = model
        try:
            graph = _Tracer(leaf_types).trace(model)
        except Exception as error:  # torch.fx raises many kinds of errors on untraceable code
            raise TypeError(
                f"relprop could not trace {type(model).__name__} with torch.fx: {error}. The model's forward "
                "on tensor values; keep such parts as leaf modules and map a rule to them."
            ) from error
        self.fx_graph = graph
        self.nodes: list[Node] = []
        self._by_fx: dict[fx.Node, Node] = {}
        self._dependent: set[fx.Node] = set()
        for fx_node in graph.nodes:
            node = _classify(fx_node, model)
            self.nodes.append(node)
            self._by_fx[fx_node] = node
            if fx_node.op == "placeholder" or any(n in self._dependent for n in fx_node.all_input_nodes):
                self._dependent.add(fx_node)
        inputs = [n for n in self.nodes if n.kind == Kind.INPUT]
        if len(inputs) != 1:
            raise TypeError(
                f"relprop explains models with one input tensor; {type(model).__name__} takes {len(inputs)}"
            )

    def __getitem__(self, fx_node: fx.Node) -> Node:
        return self._by_fx[fx_node]

    def __iter__(self):
        return iter(self.nodes)

    def depends_on_input(self, fx_node: fx.Node) -> bool:
        """Whether the node's value depends on the model's input."""
        return fx_node in self._dependent


class _Tracer(fx.Tracer):
    def __init__(self, leaf_types: tuple[type, ...]) -> None:
        super().__init__()
        self.leaf_types = leaf_types

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, self.leaf_types) or super().is_leaf_module(module, qualified_name)


_ACTIVATION_FUNCTIONS = {
    F.relu: nn.ReLU,
    torch.relu: nn.ReLU,
    F.relu6: nn.ReLU6,
    F.leaky_relu: nn.LeakyReLU,
    F.elu: nn.ELU,
    F.selu: nn.SELU,
    F.celu: nn.CELU,
    F.gelu: nn.GELU,
    F.silu: nn.SiLU,
    F.mish: nn.Mish,
    F.hardswish: nn.Hardswish,
    F.hardsigmoid: nn.Hardsigmoid,
    F.hardtanh: nn.Hardtanh,
    torch.sigmoid: nn.Sigmoid,
    F.sigmoid: nn.Sigmoid,
    torch.tanh: nn.Tanh,
    F.tanh: nn.Tanh,
    F.softplus: nn.Softplus,
    F.softsign: nn.Softsign,
    F.logsigmoid: nn.LogSigmoid,
    torch.clamp: nn.Hardtanh,
}
_ACTIVATION_METHODS = {
    "relu": nn.ReLU,
    "relu_": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "sigmoid_": nn.Sigmoid,
    "tanh": nn.Tanh,
    "tanh_": nn.Tanh,
    "clamp": nn.Hardtanh,
    "clamp_": nn.Hardtanh,
    "clip": nn.Hardtanh,
}
_POOL_FUNCTIONS = {
    F.avg_pool1d: nn.AvgPool1d,
    F.avg_pool2d: nn.AvgPool2d,
    F.avg_pool3d: nn.AvgPool3d,
    F.adaptive_avg_pool1d: nn.AdaptiveAvgPool1d,
    F.adaptive_avg_pool2d: nn.AdaptiveAvgPool2d,
    F.adaptive_avg_pool3d: nn.AdaptiveAvgPool3d,
    torch.mean: types.Reduce,
    torch.sum: types.Reduce,
}
_REDUCE_METHODS = {"mean", "sum"}
_MAXPOOL_FUNCTIONS = {F.max_pool1d: nn.MaxPool1d, F.max_pool2d: nn.MaxPool2d, F.max_pool3d: nn.MaxPool3d}
_FUNCTIONAL_AFFINE = {F.linear: nn.Linear, F.conv1d: nn.Conv1d, F.conv2d: nn.Conv2d, F.conv3d: nn.Conv3d}
_ADD = {operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub}
_ADD_METHODS = {"add", "add_", "sub", "sub_"}
_GATE = {operator.mul, operator.imul, torch.mul, operator.truediv, operator.itruediv, torch.div}
_GATE_METHODS = {"mul", "mul_", "div", "div_"}
_ROUTE_FUNCTIONS = {
    torch.flatten,
    torch.reshape,
    torch.permute,
    torch.transpose,
    torch.squeeze,
    torch.unsqueeze,
    torch.cat,
    torch.concat,
    torch.stack,
    torch.split,
    torch.chunk,
    torch.unbind,
    torch.narrow,
    torch.select,
    operator.getitem,
    F.pad,
}
_ROUTE_METHODS = {
    "flatten",
    "view",
    "reshape",
    "permute",
    "transpose",
    "contiguous",
    "squeeze",
    "unsqueeze",
    "expand",
    "expand_as",
    "repeat",
    "split",
    "chunk",
    "unbind",
    "narrow",
    "select",
    "clone",
    "to",
    "float",
    "double",
    "type_as",
    "view_as",
    "reshape_as",
    "t",
}
_ROUTE_MODULES = (
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.ZeroPad1d,
    nn.ZeroPad2d,
    nn.ZeroPad3d,
)


def _classify(fx_node: fx.Node, model: nn.Module) -> Node:
    op, target = fx_node.op, fx_node.target
    scope = _scope(fx_node)
    if op == "placeholder":
        return Node(fx_node, Kind.INPUT)
    if op == "get_attr":
        return Node(fx_node, Kind.CONSTANT, scope=scope)
    if op == "output":
        return Node(fx_node, Kind.OUTPUT)
    if op == "call_module":
        module = model.get_submodule(target)
        return _classify_module(fx_node, module)
    if op == "call_function":
        return _classify_function(fx_node, target, scope)
    return _classify_method(fx_node, target, scope)


def _classify_module(fx_node: fx.Node, module: nn.Module) -> Node:
    kind, reason = Kind.UNKNOWN, ""
    if isinstance(module, types.Linear):
        kind = Kind.LINEAR
    elif isinstance(module, types.BatchNorm):
        if module.running_var is None:
            reason = "batch normalization without running statistics"
        else:
            kind = Kind.LINEAR
    elif isinstance(module, types.AvgPool):
        kind = Kind.LINEAR
    elif isinstance(module, nn.Upsample) and module.mode in ("nearest", "linear", "bilinear", "trilinear"):
        kind = Kind.LINEAR
    elif isinstance(module, types.MaxPool):
        kind = Kind.UNKNOWN if module.return_indices else Kind.MAXPOOL
        reason = "max pooling that returns indices" if module.return_indices else ""
    elif isinstance(module, types.Activation):
        kind = Kind.ELEMENTWISE
    elif isinstance(module, _ROUTE_MODULES):
        kind = Kind.ROUTE
    return Node(fx_node, kind, type(module), module, scope=fx_node.target, reason=reason)


def _classify_function(fx_node: fx.Node, target: Callable, scope: str) -> Node:
    if target in _ACTIVATION_FUNCTIONS:
        return Node(fx_node, Kind.ELEMENTWISE, _ACTIVATION_FUNCTIONS[target], scope=scope)
    if target in _POOL_FUNCTIONS or target is F.interpolate:
        return Node(fx_node, Kind.LINEAR, _POOL_FUNCTIONS.get(target, nn.Upsample), scope=scope)
    if target in _MAXPOOL_FUNCTIONS:
        return Node(fx_node, Kind.MAXPOOL, _MAXPOOL_FUNCTIONS[target], scope=scope)
    if target in _FUNCTIONAL_AFFINE:
        return Node(fx_node, Kind.LINEAR, _FUNCTIONAL_AFFINE[target], scope=scope)
    if target in _ADD:
        return Node(fx_node, Kind.LINEAR, types.Add, scope=scope)
    if target in _GATE:
        return Node(fx_node, Kind.GATE, types.Multiply, scope=scope)
    if target in _ROUTE_FUNCTIONS:
        return Node(fx_node, Kind.ROUTE, scope=scope)
    if target is F.dropout or getattr(target, "__name__", "") == "stochastic_depth":
        training = fx_node.kwargs.get("training", fx_node.args[3] if len(fx_node.args) > 3 else True)
        if training is False:
            return Node(fx_node, Kind.ROUTE, scope=scope)
        return Node(fx_node, Kind.UNKNOWN, scope=scope, reason="dropout in training mode (call model.eval())")
    return Node(fx_node, Kind.UNKNOWN, scope=scope)


def _classify_method(fx_node: fx.Node, name: str, scope: str) -> Node:
    if name in _ACTIVATION_METHODS:
        return Node(fx_node, Kind.ELEMENTWISE, _ACTIVATION_METHODS[name], scope=scope)
    if name in _REDUCE_METHODS:
        return Node(fx_node, Kind.LINEAR, types.Reduce, scope=scope)
    if name in _ADD_METHODS:
        return Node(fx_node, Kind.LINEAR, types.Add, scope=scope)
    if name in _GATE_METHODS:
        return Node(fx_node, Kind.GATE, types.Multiply, scope=scope)
    if name in _ROUTE_METHODS:
        return Node(fx_node, Kind.ROUTE, scope=scope)
    return Node(fx_node, Kind.UNKNOWN, scope=scope)


def _scope(fx_node: fx.Node) -> str:
    stack = fx_node.meta.get("nn_module_stack")
    return next(reversed(stack)) if stack else ""


def _module_affine(module: nn.Module) -> operations.Affine:
    if isinstance(module, nn.Linear):
        return operations.linear(module)
    if isinstance(module, types.BatchNorm):
        return operations.batch_norm(module)
    return operations.convolution(module)


def _functional_affine(target: Callable, args: tuple, kwargs: dict) -> operations.Affine:
    names = ("input", "weight", "bias")
    bound = dict(zip(names, args)) | {k: v for k, v in kwargs.items() if k in names}
    rest = {k: v for k, v in kwargs.items() if k not in names}
    extra = args[3:]
    weight, bias = bound["weight"].detach(), bound.get("bias")

    def fn(x, w, b):
        return target(x, w, b, *extra, **rest)

    channel_dim = -1 if target is F.linear else 1
    return operations.Affine(fn, weight, None if bias is None else bias.detach(), channel_dim)


def _add_operation(node: Node, args: tuple, kwargs: dict, operand_nodes) -> operations.Weightless:
    target = node.fx.target
    subtract = target in (operator.sub, operator.isub, torch.sub) or target in ("sub", "sub_")
    alpha = kwargs.get("alpha", 1.0)
    signs = [1.0, -alpha if subtract else alpha]
    scalars, constant = [], 0.0
    for arg, value, sign in zip(node.fx.args[:2], args[:2], signs):
        if arg in operand_nodes:
            scalars.append(sign)
        else:
            constant = constant + sign * value

    def identity(x):
        return x

    return operations.Weightless(identity, scalars, constant)


def _maxpool_operation(node: Node, args: tuple, kwargs: dict) -> operations.MaxPool:
    module = node.module
    if module is not None:
        dims = 1 + types.MaxPool.index(type(module)) if type(module) in types.MaxPool else 2
        return operations.MaxPool(
            module.kernel_size, module.stride, module.padding, module.dilation, module.ceil_mode, dims
        )
    names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
    bound = {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "return_indices": False}
    bound |= dict(zip(names, args)) | kwargs
    if bound["return_indices"]:
        raise UnsupportedOperationError(f"{node.describe()}: max pooling that returns indices has no rule")
    dims = 1 + list(_MAXPOOL_FUNCTIONS).index(node.fx.target)
    return operations.MaxPool(
        bound["kernel_size"], bound["stride"], bound["padding"], bound["dilation"], bound["ceil_mode"], dims
    )
