"""The computation graph relprop explains.

:func:`trace` records a model with ``torch.fx`` and classifies every operation, so that nothing is
hidden from the engine: functional calls (``F.relu``, ``torch.cat``) and arithmetic (``a + b``) become
nodes just as modules do. Each :class:`Node` says what *kind* of operation it is, which type composites
map rules to, where it sits in the model, and how to view it as an :mod:`~relprop.operations` object.
"""

from __future__ import annotations

import contextlib
import copy
import enum
import functools
import inspect
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from relprop import capture, operations, types


class Kind(enum.Enum):
    """How relevance passes through a node."""

    INPUT = "input"
    CONSTANT = "constant"  # a parameter or buffer of the model used as a tensor
    AFFINE = "affine"  # an affine map of its inputs, takes an LRP rule: dense, convolution, pooling, sums
    MAXPOOL = "maxpool"
    ELEMENTWISE = "elementwise"
    GATE = "gate"  # multiplication or division: signal and gate
    PRODUCT = "product"  # a product of tensors: matmul, bmm, einsum
    ATTENTION = "attention"  # scaled dot-product attention in one call
    SOFTMAX = "softmax"
    NORM = "normalization"  # layer, group and RMS norms: statistics of the sample
    ROUTE = "route"  # moves values without arithmetic: reshape, cat, slicing, dropout, identity
    FOLDED = "folded"  # folded into the operation before it by a canonizer: passes value and relevance
    OUTPUT = "output"
    CUSTOM = "custom"  # no built-in kind: explained by a rule mapped to its type or name (LSTM, embedding,
    #                    a user's module), unsupported without one
    LINEAR = "affine"  # deprecated alias of AFFINE (not types.Linear, the layers with weights)
    UNKNOWN = "custom"  # deprecated alias of CUSTOM


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
    source: fx.Node | None = None  # of an element-wise function written as arithmetic: its argument
    interior: bool = False  # inside such a function, before its last node: computed, never explained

    @property
    def name(self) -> str:
        """The module's qualified name for module calls, otherwise the graph node's name."""
        return self.fx.target if self.fx.op == "call_module" else self.fx.name

    def describe(self) -> str:
        """Human-readable name and place, for tables and error messages."""
        if self.fx.op == "call_module":
            return f"{type(self.module).__name__} '{self.fx.target}'"
        where = f" in '{self.scope}'" if self.scope else ""
        return f"{_function_name(self.fx.target)} (node '{self.fx.name}'){where}"

    @property
    def weighted(self) -> bool:
        """Whether the node is a linear operation with weights (an :class:`~relprop.operations.Affine`)."""
        return self.kind == Kind.AFFINE and (
            (self.module is not None and isinstance(self.module, types.Linear + types.BatchNorm))
            or self.function in _FUNCTIONAL_AFFINE
            or self.function in (F.batch_norm, torch.addmm, torch.addcmul)
        )

    @property
    def function(self) -> Any:
        """The ``torch`` function the node computes: its target, or the equivalent of an ATen operation."""
        return capture.EQUIVALENTS.get(self.fx.target, self.fx.target)

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
        if self.source is not None:
            return [self.source]
        if self.kind in (Kind.AFFINE, Kind.MAXPOOL) and self._unary():
            first = 1 if self.function in (torch.addmm, torch.addcmul) else 0  # addmm(bias, x, weight)
            candidates = list(self.fx.args[first : first + (2 if self.function is torch.addcmul else 1)])
        else:
            candidates = []
            fx.node.map_arg((self.fx.args, self.fx.kwargs), candidates.append)
        return [
            n
            for n in candidates
            if isinstance(n, fx.Node)
            and isinstance(values[n], Tensor)
            and values[n].dtype != torch.bool  # masks carry no relevance
            and graph.depends_on_input(n)
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

    def _product(self) -> str:
        if self.kind == Kind.PRODUCT:
            two_matrices = self.function in (
                torch.matmul,
                operator.matmul,
                torch.bmm,
                torch.mm,
                "matmul",
                "bmm",
            )
            return "matmul" if two_matrices or self.function == "__matmul__" else ""
        if self.kind != Kind.GATE:
            return ""
        return "divide" if self.function in _DIVIDE or self.function in ("div", "div_") else "multiply"

    def _unary(self) -> bool:
        return not (isinstance(self.type, type) and issubclass(self.type, types.Add))

    def operation(self, values: dict, operand_nodes: Sequence[fx.Node], graph: Graph) -> operations.Operation:
        """View the node as an :mod:`~relprop.operations` object, given the values of the forward pass."""
        args, kwargs = fx.node.map_arg((self.fx.args, self.fx.kwargs), values.__getitem__)
        if self.kind == Kind.MAXPOOL:
            return _maxpool_operation(self, args, kwargs)
        if self.kind == Kind.NORM:
            return _normalization(self, args, kwargs)
        if self.kind == Kind.ATTENTION:
            return _attention(self, args, kwargs, operand_nodes)
        if self.kind == Kind.SOFTMAX:
            return _softmax(self, args, kwargs)
        if self.kind != Kind.AFFINE:
            # the other arguments as they are now: the engine frees values once their consumers ran
            fixed = {n: values[n] for n in self.fx.all_input_nodes if n not in operand_nodes}

            def call(*inputs):
                substitute = fixed | dict(zip(operand_nodes, inputs))
                return self.run(*fx.node.map_arg((self.fx.args, self.fx.kwargs), substitute.__getitem__))

            return operations.Call(call, self.module, self._product())
        if self.weighted:
            if self.function is F.batch_norm:
                return _functional_batch_norm(self.fx.target, args, kwargs)
            if self.function is torch.addmm:
                return _addmm(args, kwargs)
            if self.function is torch.addcmul:
                return _addcmul(self, args, kwargs, operand_nodes, graph)
            if self.function in _FUNCTIONAL_AFFINE:
                op = _functional_affine(self.function, args, kwargs)
            else:
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
    """A model's graph: its nodes in execution order, with their classification.

    ``Graph(model)`` traces the model with ``torch.fx``; :meth:`exported` captures one call with
    ``torch.export`` instead (:mod:`relprop.capture`). The model is not modified.

    Parameters
    ----------
    model:
        The model.
    leaf_types:
        Module types to keep whole (not traced into), in addition to ``torch.nn``'s own modules.
    output:
        Which of the model's outputs is explained, for models that return a tuple, a dict or a Hugging Face
        ``ModelOutput``: see :func:`select_output`.

    Attributes
    ----------
    inputs:
        The graph's inputs (placeholders), in the order of the model's arguments.
    sources:
        The inputs that relevance flows to; the others (masks, ids of positions and segments) are constants.
    output:
        The node of the explained output.
    """

    def __init__(
        self, model: nn.Module, leaf_types: tuple[type, ...] = (), output: OutputChoice = None
    ) -> None:
        try:
            with _state_kept(model):
                graph = _Tracer(leaf_types).trace(model)
        except Exception as error:  # torch.fx raises many kinds of errors on untraceable code
            raise TypeError(
                f"relprop could not trace {type(model).__name__} with torch.fx: {error}. A forward that "
                "branches on tensor values cannot be traced: keep such parts as leaf modules and map a rule "
                "to them."
            ) from error
        self._build(model, model, graph)
        self.output = _selected_node(select_output(self.nodes[-1].fx.args[0], output))

    @classmethod
    def exported(
        cls,
        model: nn.Module,
        args: tuple,
        kwargs: dict,
        output: OutputChoice = None,
        sources: Sequence[str] | None = None,
    ) -> Graph:
        """The graph of the call ``model(*args, **kwargs)``, captured with ``torch.export``.

        ``sources`` names the inputs that relevance flows to; by default the first input that carries
        features: a floating-point tensor not named as a mask, or integer ids that go into an embedding.
        """
        with _state_kept(model):
            module = capture.export(model, args, kwargs)
        graph = cls.__new__(cls)
        graph._build(model, module, module.graph)
        leaves = capture.flatten_inputs(args, kwargs)
        if len(leaves) != len(graph.inputs):
            raise TypeError(
                f"the exported graph takes {len(graph.inputs)} inputs, the call gave {len(leaves)}"
            )
        graph.examples = dict(zip(graph.inputs, leaves))
        graph.sources = graph._sources(sources)
        graph.detach(())
        positions = list(range(len(graph.nodes[-1].fx.args[0])))
        index = select_output(capture.output_structure(module, positions), output)
        if not isinstance(index, int):
            raise TypeError(f"the selected output is a {type(index).__name__}, not a tensor")
        graph.output = graph.nodes[-1].fx.args[0][index]
        return graph

    def _build(self, model: nn.Module, root: nn.Module, graph: fx.Graph) -> None:
        self.model = model
        self.root = root
        self.fx_graph = graph
        self.nodes: list[Node] = []
        self._by_fx: dict[fx.Node, Node] = {}
        for fx_node in graph.nodes:
            node = _classify(fx_node, root)
            self.nodes.append(node)
            self._by_fx[fx_node] = node
        self.inputs = [node.fx for node in self.nodes if node.kind == Kind.INPUT]
        self.sources = list(self.inputs)
        _fuse_pointwise(self)
        self.detach(())

    def _sources(self, names: Sequence[str] | None) -> list[fx.Node]:
        by_name = {n.target: n for n in self.inputs}
        if names is not None:
            unknown = [name for name in names if name not in by_name]
            if unknown:
                raise ValueError(f"the model has no input {unknown[0]!r}; its inputs are {list(by_name)}")
            return [by_name[name] for name in names]
        for fx_node in self.inputs:
            value = self.examples[fx_node]
            if not isinstance(value, Tensor):
                continue
            if value.is_floating_point() and "mask" not in str(fx_node.target):
                return [fx_node]
            if not value.is_floating_point() and self.embedded(fx_node):
                return [fx_node]
        raise ValueError(
            f"none of the inputs {list(by_name)} carries features (a floating-point tensor or ids that go "
            "into an embedding): name the inputs to explain"
        )

    def embedded(self, fx_node: fx.Node) -> bool:
        """Whether the node's value goes into an embedding, directly or through reshapes and the like."""
        users = list(fx_node.users)
        while users:
            node = self[users.pop()]
            if isinstance(node.type, type) and issubclass(node.type, (nn.Embedding, nn.EmbeddingBag)):
                return True
            if node.kind == Kind.ROUTE:
                users.extend(node.fx.users)
        return False

    def constant(self, fx_node: fx.Node) -> Any:
        """The value of a parameter, buffer or constant of the model: read from the model itself, so that
        changes to its parameters are seen; constants that only the captured graph holds from there."""
        for owner in (self.model, self.root):
            try:
                return _attribute(owner, fx_node.target)
            except AttributeError:
                continue
        raise AttributeError(f"the model has no attribute {fx_node.target!r}")

    def __getitem__(self, fx_node: fx.Node) -> Node:
        return self._by_fx[fx_node]

    def __iter__(self):
        return iter(self.nodes)

    def depends_on_input(self, fx_node: fx.Node) -> bool:
        """Whether the node's value depends on the inputs that relevance flows to (not through a detached
        node)."""
        return fx_node in self._dependent

    def detach(self, nodes: Iterable[Node]) -> None:
        """Treat the outputs of ``nodes`` as constants: what depends on the input only through them does
        not."""
        cut = {node.fx for node in nodes}
        sources = set(self.sources)
        self._dependent: set[fx.Node] = set()
        for fx_node in self.fx_graph.nodes:
            if fx_node in sources or (
                fx_node.op != "placeholder"
                and fx_node not in cut
                and self[fx_node].function not in _SHAPE_ONLY
                and any(n in self._dependent for n in fx_node.all_input_nodes)
            ):
                self._dependent.add(fx_node)

    def opaque(self) -> list[Node]:
        """Calls of Python functions that the trace kept whole (``torch.fx.wrap``) on the input's path."""
        return [
            node
            for node in self.nodes
            if node.kind == Kind.CUSTOM
            and node.fx.op == "call_function"
            and self.depends_on_input(node.fx)
            and inspect.isfunction(node.fx.target)
            and node.fx.target.__module__.split(".")[0] not in ("torch", "_operator", "builtins", "math")
        ]


OutputChoice = str | int | Callable[[Any], Any] | None


def select_output(structure: Any, output: OutputChoice = None) -> Any:
    """The explained output of a model that returns ``structure``.

    ``output`` is ``None`` (a tensor as it is; of a dict or a Hugging Face ``ModelOutput``, its
    ``"logits"``; of a tuple or list, the first element), a key or attribute name, an index, or a function of
    the output.
    """
    if callable(output):
        return output(structure)
    if output is None:
        if isinstance(structure, Mapping):
            if "logits" not in structure:
                raise ValueError(f"the model's output has no 'logits' among {list(structure)}: pass output=")
            return structure["logits"]
        return structure[0] if isinstance(structure, (tuple, list)) else structure
    try:
        if isinstance(output, str) and not isinstance(structure, Mapping):
            return getattr(structure, output)
        return structure[output]
    except (KeyError, IndexError, AttributeError, TypeError):
        raise ValueError(f"the model's output has no {output!r}") from None


def _selected_node(selected: Any) -> fx.Node:
    if not isinstance(selected, fx.Node):
        raise TypeError(f"the selected output is a {type(selected).__name__}, not a tensor")
    return selected


def _attribute(owner: nn.Module, target: str) -> Any:
    value: Any = owner
    for part in target.split("."):
        value = getattr(value, part)
    return value.detach() if isinstance(value, Tensor) else value


class _Tracer(fx.Tracer):
    """``torch.fx``'s tracer, keeping ``leaf_types`` whole and tracing ``nn.MultiheadAttention`` as its parts
    (projections, scores, softmax, weighted sum), which the rules explain one by one."""

    def __init__(self, leaf_types: tuple[type, ...]) -> None:
        super().__init__()
        self.leaf_types = leaf_types

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        if isinstance(module, self.leaf_types):
            return True
        if isinstance(module, nn.MultiheadAttention):
            return False
        return super().is_leaf_module(module, qualified_name)

    def call_module(self, module: nn.Module, forward: Callable, args: tuple, kwargs: dict) -> Any:
        if isinstance(module, nn.MultiheadAttention) and not isinstance(module, self.leaf_types):
            forward = functools.partial(_multihead_attention, module)
        return super().call_module(module, forward, args, kwargs)


def _multihead_attention(
    module: nn.MultiheadAttention,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    key_padding_mask: Tensor | None = None,
    need_weights: bool = True,
    attn_mask: Tensor | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """``nn.MultiheadAttention`` (evaluation mode, batched inputs) written as the operations it computes."""
    if module.bias_k is not None or module.add_zero_attn:
        raise TypeError("relprop explains nn.MultiheadAttention without add_bias_kv and add_zero_attn")
    if is_causal and attn_mask is None:
        raise TypeError("nn.MultiheadAttention with is_causal=True needs its attn_mask")
    if not module.batch_first:
        query, key, value = (t.transpose(0, 1) for t in (query, key, value))
    thirds = [slice(k * module.embed_dim, (k + 1) * module.embed_dim) for k in range(3)]
    if module._qkv_same_embed_dim:
        weights = [module.in_proj_weight[third] for third in thirds]
    else:
        weights = [module.q_proj_weight, module.k_proj_weight, module.v_proj_weight]
    biases = [None] * 3 if module.in_proj_bias is None else [module.in_proj_bias[third] for third in thirds]
    heads, size = module.num_heads, module.head_dim
    q, k, v = (
        F.linear(t, w, b).unflatten(-1, (heads, size)).transpose(1, 2)
        for t, w, b in zip((query, key, value), weights, biases)
    )
    masked = attn_mask is not None or key_padding_mask is not None
    bias = _attention_bias(attn_mask, key_padding_mask, q, k) if masked else None
    if need_weights:  # the weights are an output: the softmax is an operation of its own
        scores = torch.matmul(q, k.transpose(-2, -1)) * size**-0.5
        attention = F.softmax(scores if bias is None else scores + bias, dim=-1)
        mixed = torch.matmul(attention, v)
    else:  # one operation, whose rule recomputes the (B, H, L, S) weights instead of keeping two copies
        mixed = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    out = module.out_proj(mixed.transpose(1, 2).flatten(-2))
    if not module.batch_first:
        out = out.transpose(0, 1)
    if not need_weights:
        return out, None
    return out, attention.mean(dim=1) if average_attn_weights else attention


def _attention_bias(
    attn_mask: Tensor | None, key_padding_mask: Tensor | None, query: Tensor, key: Tensor
) -> Tensor:
    """The additive mask of ``nn.MultiheadAttention``'s masks (``True`` or ``-inf``: not attended), shaped to
    broadcast over the scores ``(B, H, L, S)`` of ``query`` ``(B, H, L, D)`` and ``key`` ``(B, H, S, D)``."""
    dtype, device = query.dtype, query.device
    bias = torch.zeros((), dtype=dtype, device=device)
    for mask, shape in ((attn_mask, None), (key_padding_mask, (query.shape[0], 1, 1, key.shape[-2]))):
        if mask is None:
            continue
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill(mask, -torch.inf)
        mask = mask.to(dtype)
        if shape is not None:
            mask = mask.reshape(shape)
        elif mask.dim() == 3:  # (B * H, L, S)
            mask = mask.reshape(query.shape[0], -1, *mask.shape[-2:])
        bias = bias + mask
    return bias


fx.wrap("_attention_bias")


@contextlib.contextmanager
def _state_kept(model: nn.Module):
    """Restore every attribute of every module after tracing: some models cache tensors as they run (timm's
    LeViT its attention biases), and a trace would leave proxies there. Containers keep their identity."""
    saved = []
    for module in model.modules():
        attributes = {k: v for k, v in vars(module).items() if not k.startswith("_")}
        contents = {k: copy.copy(v) for k, v in attributes.items() if isinstance(v, (dict, list, set))}
        saved.append((module, attributes, contents))
    try:
        yield
    finally:
        for module, attributes, contents in saved:
            for name in [k for k in vars(module) if not k.startswith("_") and k not in attributes]:
                delattr(module, name)
            for name, value in attributes.items():
                if name in contents:
                    value.clear()
                    if isinstance(value, list):
                        value.extend(contents[name])
                    else:
                        value.update(contents[name])
                setattr(module, name, value)


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
_NORM_FUNCTIONS = {
    F.layer_norm: nn.LayerNorm,
    F.group_norm: nn.GroupNorm,
    F.rms_norm: nn.RMSNorm,
    F.normalize: types.Normalize,
}
_SOFTMAX_FUNCTIONS = {F.softmax, torch.softmax}
_PRODUCT_FUNCTIONS = {torch.matmul, operator.matmul, torch.bmm, torch.mm, torch.einsum, torch.baddbmm}
_PRODUCT_METHODS = {"matmul", "bmm", "mm", "__matmul__"}
_MAXPOOL_FUNCTIONS = {F.max_pool1d: nn.MaxPool1d, F.max_pool2d: nn.MaxPool2d, F.max_pool3d: nn.MaxPool3d}
_FUNCTIONAL_AFFINE = {F.linear: nn.Linear, F.conv1d: nn.Conv1d, F.conv2d: nn.Conv2d, F.conv3d: nn.Conv3d}
_ADD = {
    operator.add,
    operator.iadd,
    torch.add,
    operator.sub,
    operator.isub,
    torch.sub,
    operator.neg,
    torch.neg,
}
_ADD_METHODS = {"add", "add_", "sub", "sub_", "neg"}
_DIVIDE = {operator.truediv, operator.itruediv, torch.div}
_GATE = {operator.mul, operator.imul, torch.mul} | _DIVIDE
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
    torch.index_select,
    operator.getitem,
    F.pad,
    torch.swapaxes,
    torch.movedim,
    torch.roll,
    torch.flip,
    torch.unflatten,
    torch.t,
    torch.adjoint,
    torch.clone,
    torch.broadcast_to,
    torch.tile,
    torch.masked_fill,
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
    "unflatten",
    "swapaxes",
    "movedim",
    "roll",
    "flip",
    "masked_fill",
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


def _classify(fx_node: fx.Node, root: nn.Module) -> Node:
    op, target = fx_node.op, fx_node.target
    scope = _scope(fx_node)
    if op == "placeholder":
        return Node(fx_node, Kind.INPUT)
    if op == "get_attr":
        return Node(fx_node, Kind.CONSTANT, scope=scope)
    if op == "output":
        return Node(fx_node, Kind.OUTPUT)
    if op == "call_module":
        return _classify_module(fx_node, root.get_submodule(target))
    if op == "call_function":
        return _classify_function(fx_node, capture.EQUIVALENTS.get(target, target), scope)
    return _classify_method(fx_node, target, scope)


def _classify_module(fx_node: fx.Node, module: nn.Module) -> Node:
    kind, reason = Kind.CUSTOM, ""
    if isinstance(module, types.Linear):
        kind = Kind.AFFINE
    elif isinstance(module, types.BatchNorm):
        if module.running_var is None:
            reason = "batch normalization without running statistics"
        else:
            kind = Kind.AFFINE
    elif isinstance(module, types.AvgPool):
        kind = Kind.AFFINE
    elif isinstance(module, nn.Upsample) and module.mode in ("nearest", "linear", "bilinear", "trilinear"):
        kind = Kind.AFFINE
    elif isinstance(module, types.MaxPool):
        kind = Kind.CUSTOM if module.return_indices else Kind.MAXPOOL
        reason = "max pooling that returns indices" if module.return_indices else ""
    elif isinstance(module, types.Activation):
        kind = Kind.ELEMENTWISE
    elif isinstance(module, types.Norm):
        kind = Kind.NORM
    elif isinstance(module, types.Softmax):
        kind = Kind.SOFTMAX
    elif isinstance(module, _ROUTE_MODULES):
        kind = Kind.ROUTE
    return Node(fx_node, kind, type(module), module, scope=fx_node.target, reason=reason)


_FUNCTION_KINDS: tuple[tuple[Kind, dict[Any, type | None]], ...] = (
    (Kind.ELEMENTWISE, _ACTIVATION_FUNCTIONS),
    (Kind.AFFINE, {**_POOL_FUNCTIONS, F.interpolate: nn.Upsample}),
    (Kind.MAXPOOL, _MAXPOOL_FUNCTIONS),
    (Kind.AFFINE, _FUNCTIONAL_AFFINE),
    (Kind.AFFINE, {**dict.fromkeys(_ADD, types.Add), torch.addcmul: types.Scale, torch.addmm: nn.Linear}),
    (Kind.GATE, dict.fromkeys(_GATE, types.Multiply)),
    (Kind.NORM, _NORM_FUNCTIONS),
    (Kind.SOFTMAX, dict.fromkeys(_SOFTMAX_FUNCTIONS, nn.Softmax)),
    (Kind.PRODUCT, dict.fromkeys(_PRODUCT_FUNCTIONS, types.MatMul)),
    (Kind.ATTENTION, {F.scaled_dot_product_attention: types.Attention}),
    (Kind.CUSTOM, {F.embedding: nn.Embedding}),  # explained by the embedding rule, as the module is
    # getattr: a field of a named tuple (torch.sort(x).values) or of a tensor (x.T)
    (Kind.ROUTE, dict.fromkeys({*_ROUTE_FUNCTIONS, getattr})),
)
"""Functions by the kind of operation they are, each with the type composites map rules to."""


def _classify_function(fx_node: fx.Node, target: Callable, scope: str) -> Node:
    for kind, types_of in _FUNCTION_KINDS:
        if target in types_of:
            return Node(fx_node, kind, types_of[target], scope=scope)
    if (
        target is F.batch_norm
    ):  # batch_norm(x, mean, var, weight, bias, training) and ATen's, in another order
        if _training(fx_node, 5, default=False) is False:
            return Node(fx_node, Kind.AFFINE, nn.BatchNorm2d, scope=scope)
        return Node(fx_node, Kind.CUSTOM, scope=scope, reason="batch normalization in training mode")
    if target is F.dropout or getattr(target, "__name__", "") == "stochastic_depth":
        # dropout(x, p, training) and ATen's dropout(x, p, train); stochastic_depth(x, p, mode, training)
        if _training(fx_node, 2 if target is F.dropout else 3, default=True) is False:
            return Node(fx_node, Kind.ROUTE, scope=scope)
        return Node(fx_node, Kind.CUSTOM, scope=scope, reason="dropout in training mode (call model.eval())")
    return Node(fx_node, Kind.CUSTOM, scope=scope)


def _training(fx_node: fx.Node, position: int, default: bool) -> Any:
    """The training flag of a call: the keyword ``training`` (``train`` in ATen), or the argument at
    ``position``."""
    for name in ("training", "train"):
        if name in fx_node.kwargs:
            return fx_node.kwargs[name]
    return fx_node.args[position] if len(fx_node.args) > position else default


def _classify_method(fx_node: fx.Node, name: str, scope: str) -> Node:
    if name in _ACTIVATION_METHODS:
        return Node(fx_node, Kind.ELEMENTWISE, _ACTIVATION_METHODS[name], scope=scope)
    if name in _REDUCE_METHODS:
        return Node(fx_node, Kind.AFFINE, types.Reduce, scope=scope)
    if name in _ADD_METHODS:
        return Node(fx_node, Kind.AFFINE, types.Add, scope=scope)
    if name in _GATE_METHODS:
        return Node(fx_node, Kind.GATE, types.Multiply, scope=scope)
    if name == "softmax":
        return Node(fx_node, Kind.SOFTMAX, nn.Softmax, scope=scope)
    if name in _PRODUCT_METHODS:
        return Node(fx_node, Kind.PRODUCT, types.MatMul, scope=scope)
    if name in _ROUTE_METHODS:
        return Node(fx_node, Kind.ROUTE, scope=scope)
    return Node(fx_node, Kind.CUSTOM, scope=scope)


def _scope(fx_node: fx.Node) -> str:
    stack = fx_node.meta.get("nn_module_stack")  # {key: (qualified name, type)}, innermost last
    if not stack:
        return ""
    innermost = next(reversed(stack.values()))
    return innermost[0] if isinstance(innermost, tuple) else str(innermost)


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

    bias = None if bias is None else bias.detach()
    if target is F.linear:
        return operations.Affine(
            fn, weight, bias, -1, transpose=operations.linear_transpose, input_dims=(-1, 1)
        )
    return operations.Affine(fn, weight, bias, channel_dim=1)


def _add_operation(node: Node, args: tuple, kwargs: dict, operand_nodes) -> operations.Weightless:
    target = node.function
    if target in (torch.neg, operator.neg, "neg"):
        return operations.Weightless(_identity, [-1.0])
    subtract = target in (operator.sub, operator.isub, torch.sub) or target in ("sub", "sub_")
    alpha = kwargs.get("alpha", 1.0)
    signs = [1.0, -alpha if subtract else alpha]
    scalars, constant = [], 0.0
    for arg, value, sign in zip(node.fx.args[:2], args[:2], signs):
        if arg in operand_nodes:
            scalars.append(sign)
        else:
            constant = constant + sign * value

    return operations.Weightless(_identity, scalars, constant)


def _identity(x: Tensor) -> Tensor:
    return x


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
    dims = 1 + list(_MAXPOOL_FUNCTIONS).index(node.function)
    return operations.MaxPool(
        bound["kernel_size"], bound["stride"], bound["padding"], bound["dilation"], bound["ceil_mode"], dims
    )


def _function_name(target: Any) -> str:
    """The name of a graph node's operation: a method's name, a function's, an ATen operator's."""
    if isinstance(target, str):
        return target
    if isinstance(target, torch._ops.OpOverload):
        return target.name()
    return getattr(target, "__name__", str(target))


def _bind(names: Sequence[str], defaults: dict, args: tuple, kwargs: dict) -> dict:
    """Arguments by name, positional ones first, then keywords, over the defaults."""
    return {**defaults, **dict(zip(names, args)), **kwargs}


def batch_norm_arguments(target: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The arguments of a call of ``F.batch_norm`` or of ATen's batch norm (another order) by name."""
    names = ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")
    if target is capture.aten.batch_norm.default:
        names = ("input", "weight", "bias", "running_mean", "running_var", "training", "momentum", "eps")
    return _bind(names, {"weight": None, "bias": None, "eps": 1e-5}, args, kwargs)


def _functional_batch_norm(target: Any, args: tuple, kwargs: dict) -> operations.Affine:
    bound = batch_norm_arguments(target, args, kwargs)
    std = (bound["running_var"].detach() + bound["eps"]).sqrt()
    scale = 1.0 / std if bound["weight"] is None else bound["weight"].detach() / std
    shift = -bound["running_mean"].detach() * scale
    if bound["bias"] is not None:
        shift = shift + bound["bias"].detach()
    return operations.per_channel(scale, shift)


def _normalization(node: Node, args: tuple, kwargs: dict) -> operations.Normalization:
    """A layer, group or RMS norm, or ``F.normalize``, with the transpose of its linear part at a fixed
    scale."""
    family = node.type
    bound = _normalization_arguments(node, args, kwargs)
    weight = None if bound.get("weight") is None else bound["weight"].detach()

    def per_channel(values: Tensor | None, like: Tensor) -> Tensor | float:
        """Group norms have one weight per channel (dimension 1), the others one per normalized element."""
        if values is None:
            return 0.0
        if family is not nn.GroupNorm:
            return values
        shape = [1] * like.dim()
        shape[1] = -1
        return values.reshape(shape)

    def scaled(cotangent: Tensor, scale: Tensor) -> Tensor:
        product = cotangent * scale
        return product if weight is None else product.mul_(per_channel(weight, cotangent))

    if family is types.Normalize:
        scale, center = _normalize_scale_and_center(bound)
    elif family is nn.GroupNorm:
        scale, center = _group_norm_scale_and_center(bound)
    else:
        scale, center = _layer_norm_scale_and_center(bound, rms=family is nn.RMSNorm)

    def transpose(cotangent: Tensor, fixed_scale: Tensor) -> Tensor:
        # centering is symmetric (I - 1/n), so its transpose is itself
        return center(scaled(cotangent, fixed_scale))

    rest = args[1:]

    def fn(x: Tensor) -> Tensor:
        return node.run((x, *rest), kwargs)

    evaluate = None
    if family is nn.LayerNorm:  # layer norm's kernel returns 1 / std with the output
        shape = bound["normalized_shape"]
        shape = (shape,) if isinstance(shape, int) else tuple(shape)

        def evaluate(x: Tensor) -> tuple[Tensor, Tensor]:
            output, _, inverse_std = torch.native_layer_norm(
                x, shape, bound.get("weight"), bound.get("bias"), bound["eps"]
            )
            return output, inverse_std

    return operations.Normalization(fn, scale, transpose, evaluate)


def _normalization_arguments(node: Node, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The parameters of a normalization by name, from its module or from the arguments of its call:
    ``num_groups`` or ``normalized_shape``, ``weight``, ``bias`` and ``eps``; ``p``, ``dim`` and ``eps`` of
    ``F.normalize``."""
    module, family = node.module, node.type
    if module is not None:
        if isinstance(module, nn.GroupNorm):
            bound = {"num_groups": module.num_groups}
        elif isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
            bound = {"normalized_shape": module.normalized_shape}
        return bound | {"weight": module.weight, "bias": getattr(module, "bias", None), "eps": module.eps}
    if family is types.Normalize:
        return _bind(("input", "p", "dim", "eps"), {"p": 2.0, "dim": 1, "eps": 1e-12}, args, kwargs)
    first = "num_groups" if family is nn.GroupNorm else "normalized_shape"
    if family is nn.RMSNorm:
        return _bind(
            ("input", first, "weight", "eps"), {"weight": None, "bias": None, "eps": None}, args, kwargs
        )
    defaults = {"weight": None, "bias": None, "eps": 1e-5}
    return _bind(("input", first, "weight", "bias", "eps"), defaults, args, kwargs)


_Scale = Callable[[Tensor], Tensor]
_Center = Callable[[Tensor], Tensor]


def _normalize_scale_and_center(bound: dict[str, Any]) -> tuple[_Scale, _Center]:
    """``F.normalize``: the scale 1 / max(norm, eps) along ``dim``; no centering."""
    p, dim, eps = bound["p"], bound["dim"], bound["eps"]

    def scale(reference: Tensor) -> Tensor:
        return 1.0 / reference.detach().norm(p, dim, keepdim=True).clamp_min(eps)

    def center(x: Tensor) -> Tensor:
        return x

    return scale, center


def _group_norm_scale_and_center(bound: dict[str, Any]) -> tuple[_Scale, _Center]:
    """Group norm: the inverse standard deviation of each group, and centering within the group."""
    groups, eps = bound["num_groups"], bound["eps"]

    def scale(reference: Tensor) -> Tensor:
        grouped = reference.detach().reshape(reference.shape[0], groups, -1)
        inverse = (grouped.var(-1, unbiased=False, keepdim=True) + eps).rsqrt()
        return inverse.expand(grouped.shape).reshape(reference.shape)

    def center(x: Tensor) -> Tensor:
        grouped = x.reshape(x.shape[0], groups, -1)
        return (grouped - grouped.mean(-1, keepdim=True)).reshape(x.shape)

    return scale, center


def _layer_norm_scale_and_center(bound: dict[str, Any], rms: bool) -> tuple[_Scale, _Center]:
    """Layer norm (``rms=False``): the inverse standard deviation over the normalized dimensions, and
    centering over them; RMS norm: the inverse root mean square (``eps`` by default the dtype's), no
    centering."""
    shape = bound["normalized_shape"]
    dims = tuple(range(-(1 if isinstance(shape, int) else len(shape)), 0))
    eps = bound["eps"]

    def scale(reference: Tensor) -> Tensor:
        reference = reference.detach()
        if rms:
            epsilon = torch.finfo(reference.dtype).eps if eps is None else eps
            return (reference.square().mean(dims, keepdim=True) + epsilon).rsqrt()
        # layer norm's own kernel gives 1 / std several times faster than Tensor.var
        return torch.native_layer_norm(reference, reference.shape[-len(dims) :], None, None, eps)[2]

    def center(x: Tensor) -> Tensor:
        return x if rms else x - x.mean(dims, keepdim=True)

    return scale, center


def _softmax(node: Node, args: tuple, kwargs: dict) -> operations.Softmax:
    """A softmax, as a module, a function, a method or an ATen operation, with its dimension."""
    dim = (
        node.module.dim if node.module is not None else kwargs.get("dim", args[1] if len(args) > 1 else None)
    )
    if dim is None:
        raise UnsupportedOperationError(f"{node.describe()}: softmax without a dimension")
    rest = args[1:]

    def fn(x: Tensor) -> Tensor:
        return node.run((x, *rest), kwargs)

    return operations.Softmax(fn, dim)


def _attention(
    node: Node, args: tuple, kwargs: dict, operand_nodes: Sequence[fx.Node]
) -> operations.Attention:
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal")
    defaults = {"attn_mask": None, "dropout_p": 0.0, "is_causal": False, "scale": None, "enable_gqa": False}
    bound = _bind(names, defaults, args, kwargs)
    if bound["dropout_p"]:
        raise UnsupportedOperationError(f"{node.describe()}: attention with dropout (call model.eval())")
    by_node = _bind(names, {}, node.fx.args, node.fx.kwargs)
    roles: list[str | None] = []
    for n in operand_nodes:  # in argument order; the same tensor may be query, key and value
        free = [r for r in ("query", "key", "value") if by_node.get(r) is n and r not in roles]
        roles.append(free[0] if free else None)
    return operations.Attention(
        bound["query"],
        bound["key"],
        bound["value"],
        bound["attn_mask"],
        bool(bound["is_causal"]),
        bound["scale"],
        bool(bound["enable_gqa"]),
        roles,
    )


def _addmm(args: tuple, kwargs: dict) -> operations.Affine:
    """``addmm(bias, x, weight) = bias + x @ weight`` (GPT-2's ``Conv1D``) as an affine operation."""
    bias, _, weight = args[:3]
    if kwargs.get("beta", 1) != 1 or kwargs.get("alpha", 1) != 1:
        raise UnsupportedOperationError("addmm with beta or alpha other than 1")

    def fn(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        return x @ w if b is None else torch.addmm(b, x, w)

    return operations.Affine(
        fn,
        weight.detach(),
        bias.detach(),
        channel_dim=-1,
        transpose=lambda c, w, x: c @ w.T,
        input_dims=(-1, 0),
    )


_SHAPE_ONLY = {
    torch.zeros_like,
    torch.ones_like,
    torch.full_like,
    torch.empty_like,
    "new_zeros",
    "new_ones",
    "new_full",
    "new_empty",
    "new_tensor",
    capture.aten.new_zeros.default,
    capture.aten.new_ones.default,
    capture.aten.new_full.default,
    capture.aten.new_empty.default,
    capture.aten.zeros_like.default,
    capture.aten.ones_like.default,
    capture.aten.full_like.default,
    capture.aten.empty_like.default,
    "size",
    "dim",
}
"""Operations whose result depends on their argument's shape, dtype and device only, not on its values."""

_POINTWISE_FUNCTIONS = {
    torch.pow,
    torch.exp,
    torch.log,
    torch.sqrt,
    torch.rsqrt,
    torch.erf,
    torch.abs,
    torch.reciprocal,
    torch.sin,
    torch.cos,
    operator.pow,
}
_POINTWISE_METHODS = {"pow", "exp", "log", "sqrt", "rsqrt", "erf", "abs", "reciprocal", "sin", "cos"}


def _fuse_pointwise(graph: Graph) -> None:
    """Find element-wise functions of one tensor written as arithmetic, and view each as one activation.

    GPT-2's GELU is ``0.5 * x * (1 + tanh(c * (x + 0.044715 * x ** 3)))``; a SiLU may be ``x * sigmoid(x)``.
    Their products of two input-dependent factors are not interactions of two inputs, and their powers have no
    rule: the node that computes the whole function gets the type :class:`~relprop.types.Pointwise` and takes
    relevance straight to the function's argument, as the module forms do (``nn.GELU`` passes it through);
    the nodes before it are ``interior``: computed, but no relevance reaches them, so nothing of them is kept.
    A region qualifies when every operation in it is element-wise, every other operand is a number (or, where
    shapes are recorded, a tensor that does not change the shape), and only its last node is used outside it.
    """
    root: dict[fx.Node, fx.Node] = {}  # each node's argument, for nodes inside an element-wise region
    for node in graph.nodes:
        if not _is_pointwise(node):
            continue
        tensors = [n for n in node.fx.all_input_nodes if _is_tensor_like(graph, n)]
        roots = {root.get(n, n) for n in tensors}
        if len(roots) == 1 and all(_keeps_shape(graph, node.fx, n) for n in node.fx.all_input_nodes):
            root[node.fx] = roots.pop()
    regions: dict[tuple[fx.Node, fx.Node], list[fx.Node]] = {}
    for fx_node, argument in root.items():
        regions.setdefault(argument, []).append(fx_node)
    for argument, members in regions.items():
        inside = set(members)
        exits = [n for n in members if any(u not in inside for u in n.users) or not n.users]
        interacting = any(
            graph[n].kind in (Kind.GATE, Kind.CUSTOM, Kind.AFFINE)
            and len({a for a in n.all_input_nodes if a in inside or a is argument}) > 1
            or graph[n].kind == Kind.CUSTOM
            for n in members
        )
        if len(exits) == 1 and interacting:
            exit_node = graph[exits[0]]
            exit_node.kind, exit_node.type, exit_node.source = Kind.ELEMENTWISE, types.Pointwise, argument
            for member in inside - {exits[0]}:
                graph[member].interior = True


def _is_pointwise(node: Node) -> bool:
    if node.kind == Kind.ELEMENTWISE and node.fx.op != "call_module":
        return True
    if node.kind == Kind.GATE or (node.kind == Kind.AFFINE and node.type is types.Add):
        return True
    function = node.function
    return node.kind == Kind.CUSTOM and (
        function in _POINTWISE_FUNCTIONS or (node.fx.op == "call_method" and function in _POINTWISE_METHODS)
    )


def _is_tensor_like(graph: Graph, fx_node: fx.Node) -> bool:
    """Whether a node may hold a tensor (shape arithmetic and constants aside)."""
    node = graph[fx_node]
    if node.kind == Kind.CONSTANT:
        return False
    value = fx_node.meta.get("val")
    return value is None or isinstance(value, Tensor)


def _keeps_shape(graph: Graph, fx_node: fx.Node, argument: fx.Node) -> bool:
    """Whether the operand ``argument`` of ``fx_node`` does not change the output's shape by broadcasting."""
    out, value = fx_node.meta.get("val"), argument.meta.get("val")
    if isinstance(out, Tensor) and isinstance(value, Tensor):
        return value.shape == out.shape or value.dim() == 0
    return graph[argument].kind != Kind.CONSTANT  # without recorded shapes: no tensor constants


def _addcmul(
    node: Node, args: tuple, kwargs: dict, operand_nodes: Sequence[fx.Node], graph: Graph
) -> operations.Affine:
    """``addcmul(b, t1, t2, value=v) = b + v t1 t2``, one of ``t1, t2`` the input, the rest constant."""
    bias, first, second = args[:3]
    added = node.fx.args[0]
    if len(operand_nodes) != 1 or (isinstance(added, fx.Node) and graph.depends_on_input(added)):
        raise UnsupportedOperationError(f"{node.describe()}: addcmul of more than one input-dependent tensor")
    factor = (second if operand_nodes[0] is node.fx.args[1] else first) * kwargs.get("value", 1)

    def fn(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        return x * w if b is None else torch.addcmul(b, x, w)

    def transpose(cotangent: Tensor, w: Tensor, x: Tensor) -> Tensor:
        return cotangent * w

    return operations.Affine(fn, factor.detach(), bias.detach(), channel_dim=-1, transpose=transpose)
