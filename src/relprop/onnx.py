"""ONNX models: :func:`load` turns an ONNX file into a torch module that relprop explains.

The conversion is onnx2torch's: each operator of the ONNX graph becomes a torch module, in a
``torch.fx.GraphModule``. An ONNX graph computes the shapes it reshapes, expands and slices to as tensors
(``Shape``, ``Gather``, ``Concat``, ...), and onnx2torch's modules read those tensors as Python numbers,
which ``torch.export`` cannot follow. relprop captures a model with ``torch.export`` for the shapes of each
call anyway (:mod:`relprop.capture`), so :meth:`OnnxModel.specialized` does that arithmetic first, on the
call's inputs: what depends on the inputs' shapes and the model's constants alone becomes a constant, and what
depends on the inputs' values is left as a graph that ``torch.export`` records as ATen operations, which
relprop classifies as it classifies every model's. There, some ONNX operators are written as the torch
operations they compute, so that the rules see what the original model computed (each rewrite is exact):

* ``Gather`` of the rows of a constant matrix by integer ids is an embedding (``F.embedding``: each id gets
  the relevance of its vector);
* ``MatMul`` by a constant matrix, with the ``Add`` of a constant vector after it, and ``Gemm`` with constant
  weights, are dense layers (``F.linear``), as exporters write ``nn.Linear``;
* a layer norm written as arithmetic (opsets before 17: ``ReduceMean``, ``Sub``, ``Pow``, ``ReduceMean``,
  ``Add``, ``Sqrt``, ``Div``, then ``Mul`` by a weight and ``Add`` of a bias) is ``F.layer_norm``, which the
  :class:`~relprop.rules.Norm` rule explains with :math:`1 / \\sigma` held constant, as ``LayerNormalization``
  (``nn.LayerNorm`` in onnx2torch) is explained;
* ``Reshape``, ``Expand``, ``Squeeze``, ``Unsqueeze``, ``Tile``, ``Slice``, ``Split``, ``ReduceSum`` and
  ``Gather`` by constant indices take their shape, index and axis inputs as numbers.

The rest is explained as onnx2torch computes it: ``Softmax`` is ``nn.Softmax``, ``Conv`` ``nn.Conv2d``, a
``BatchNormalization`` after it is folded into it (:class:`~relprop.canonizers.MergeBatchNorm`), a GELU that
the exporter wrote as ``Div``, ``Erf``, ``Add`` and ``Mul`` is one element-wise function, as GPT-2's is. An
operator on the input's path that no rule explains raises :class:`~relprop.UnsupportedOperationError` naming
it, as in every model; relprop never falls back to the gradient.
"""

from __future__ import annotations

import inspect
import operator
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

_INSTALL = 'pip install "relprop[onnx]"'


def load(path: str | os.PathLike) -> OnnxModel:
    """Load an ONNX model as a torch module that :class:`relprop.LRP` explains.

    Reading an ONNX file is safe: it is a protocol buffer of operators and tensors, parsed as data, and
    loading it runs no code from the file (unlike ``torch.load`` of a pickle). The model is checked with
    ``onnx.checker`` and converted with onnx2torch.

    Parameters
    ----------
    path:
        The ``.onnx`` file (weights stored as external data next to it are read too).

    Returns
    -------
    OnnxModel
        The model in evaluation mode: call it with the ONNX inputs, positionally or by name; it returns the
        ONNX outputs, one tensor or a tuple in the graph's order (:attr:`OnnxModel.output_names`). Explain
        one output with ``LRP(model, composite, output=index)``.

    Raises
    ------
    ImportError
        If the packages onnx and onnx2torch are not installed (``pip install "relprop[onnx]"``).
    OSError
        If there is no file at ``path``.
    ValueError
        If the file is not an ONNX model (empty, truncated, another format), or onnx2torch cannot convert
        one of its operators (named).

    Examples
    --------
    >>> model = relprop.onnx.load("classifier.onnx")
    >>> explainer = relprop.LRP(model, relprop.composites.AttnLRP())
    >>> relevance = explainer((input_ids, attention_mask), target=1)  # per token
    """
    onnx, convert, get_converter = _onnx2torch()
    path = Path(path)
    if not path.is_file():
        raise OSError(f"no ONNX file at {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes), not an ONNX model")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except (OSError, FileNotFoundError) as error:  # external data that is missing
        raise OSError(f"{path}: {_first_line(error)}") from error
    except Exception as error:  # protobuf's DecodeError, onnx's ValidationError and the like
        raise ValueError(f"{path} is not an ONNX model: {_first_line(error)}") from error
    opsets = {opset.domain: opset.version for opset in proto.opset_import}
    for node in proto.graph.node:
        try:
            version = opsets.get(node.domain, 1)
            get_converter(domain=node.domain, operation_type=node.op_type, version=version)
        except NotImplementedError:
            domain = f"{node.domain}." if node.domain else ""
            where = f", node {node.name!r}" if node.name else ""
            raise ValueError(
                f"{path}: onnx2torch cannot convert the ONNX operator {domain}{node.op_type} (opset {version}"
                f"{where})"
            ) from None
        while node.input and not node.input[-1]:  # omitted optional inputs, which onnx2torch reads as names
            node.input.pop()
    operators = _operators(proto)
    try:
        converted = convert(proto)
    except Exception as error:  # onnx2torch raises many kinds of errors on graphs it cannot convert
        raise ValueError(f"{path}: onnx2torch could not convert the model: {_first_line(error)}") from error
    weights = {tensor.name for tensor in proto.graph.initializer}  # older files list them as inputs too
    inputs = [value.name for value in proto.graph.input if value.name not in weights]
    outputs = [value.name for value in proto.graph.output]
    return OnnxModel(converted, inputs, outputs, operators, str(path)).eval()


class OnnxModel(nn.Module):
    """An ONNX model converted by onnx2torch (:func:`load`).

    Attributes
    ----------
    converted:
        onnx2torch's ``torch.fx.GraphModule``, one module per ONNX node, named as the node.
    input_names, output_names:
        The ONNX graph's inputs and outputs, in order.
    """

    def __init__(
        self,
        converted: fx.GraphModule,
        input_names: list[str],
        output_names: list[str],
        operators: dict[str, _Operator],
        source: str = "",
    ) -> None:
        super().__init__()
        self.converted = converted
        self.input_names = tuple(input_names)
        self.output_names = tuple(output_names)
        self._operators = operators  # the ONNX nodes, by module name
        self._source = source
        _output_each_value(converted, self.output_names, operators)

    def forward(self, *args: Tensor, **kwargs: Tensor) -> Tensor | tuple[Tensor, ...]:
        """The ONNX outputs for the ONNX inputs, given in order or by name."""
        inputs = self._bind(args, kwargs)
        if any(isinstance(x, fx.Proxy) for x in inputs):
            raise TypeError(
                "an ONNX graph computes shapes as tensors: relprop captures it with torch.export at the "
                "first call, for the shapes of that call's inputs"
            )
        out = self.converted(*inputs)
        return tuple(out) if isinstance(out, list) else out

    def specialized(self, *args: Tensor, **kwargs: Tensor) -> fx.GraphModule:
        """The model for inputs of the shapes of ``args`` and ``kwargs``, which ``torch.export`` captures.

        Its inputs are the given ones, in the order ``(*args, *kwargs.values())``; values computed from the
        inputs' shapes and the model's constants alone are constants in it, and the operators that take
        shapes, indices or weights as tensors are written as torch operations (see :mod:`relprop.onnx`).

        The rewrites are relprop's view only: the model itself computes as onnx2torch converted it.

        Raises
        ------
        ValueError
            If an operator whose shape or index inputs onnx2torch reads as numbers, and relprop does not
            rewrite (``Pad``, ``Resize``, ``TopK``, ...), takes a value that depends on the inputs' values.
        """
        inputs = self._bind(args, kwargs)
        order = list(range(len(args))) + [self.input_names.index(name) for name in kwargs]
        return _Specializer(self, inputs, order).module()

    def extra_repr(self) -> str:
        return f"{self._source!r}, inputs={list(self.input_names)}, outputs={list(self.output_names)}"

    def _bind(self, args: tuple, kwargs: dict) -> list[Tensor]:
        names = self.input_names
        if len(args) > len(names):
            raise TypeError(f"the ONNX model takes {len(names)} inputs {list(names)}, got {len(args)}")
        bound = dict(zip(names, args))
        for name, value in kwargs.items():
            if name not in names:
                raise TypeError(f"the ONNX model has no input {name!r}; its inputs are {list(names)}")
            if name in bound:
                raise TypeError(f"the ONNX input {name!r} is given twice")
            bound[name] = value
        missing = [name for name in names if name not in bound]
        if missing:
            raise TypeError(f"the ONNX input {missing[0]!r} is missing; the inputs are {list(names)}")
        return [bound[name] for name in names]


def _onnx2torch():
    try:
        import onnx
        from onnx2torch import convert
        from onnx2torch.node_converters import get_converter
    except ImportError as error:
        raise ImportError(f"relprop.onnx needs the packages onnx and onnx2torch: {_INSTALL}") from error
    return onnx, convert, get_converter


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class _Operator(NamedTuple):
    """An ONNX node, as :class:`_Specializer` needs it."""

    type: str
    attributes: dict[str, Any]  # numbers and lists of numbers
    outputs: tuple[str, ...]


def _operators(proto) -> dict[str, _Operator]:
    """The graph's nodes by the names onnx2torch gives their modules."""
    from onnx import AttributeProto, helper
    from onnx2torch.onnx_graph import OnnxGraph

    simple = {AttributeProto.INT, AttributeProto.FLOAT, AttributeProto.INTS, AttributeProto.FLOATS}
    return {
        name: _Operator(
            node.operation_type,
            {a.name: helper.get_attribute_value(a) for a in node.proto.attribute if a.type in simple},
            node.output_values,
        )
        for name, node in OnnxGraph(proto.graph).nodes.items()
    }


def _output_each_value(converted: fx.GraphModule, outputs: tuple[str, ...], operators: dict) -> None:
    """Make the graph return one tensor per ONNX output, in order: onnx2torch returns one value per node that
    has outputs, a tuple for a node of several outputs."""
    graph = converted.graph
    output = next(n for n in graph.nodes if n.op == "output")
    modules = {n.target: n for n in graph.nodes if n.op == "call_module"}
    producers = {
        value: (name, k) for name, op in operators.items() for k, value in enumerate(op.outputs) if value
    }
    values = []
    with graph.inserting_before(output):
        for value in outputs:
            name, index = producers[value]
            node = modules[name]
            if len(operators[name].outputs) > 1:
                node = graph.call_function(operator.getitem, (node, index))
            values.append(node)
    output.args = (values[0] if len(values) == 1 else values,)
    converted.recompile()


class _Specializer:
    """Builds :meth:`OnnxModel.specialized`: runs the converted graph on the inputs, keeps the operations that
    depend on their values, with constants for what depends on their shapes only, and rewrites what
    :mod:`relprop.onnx` lists."""

    def __init__(self, model: OnnxModel, inputs: list[Tensor], order: list[int]) -> None:
        self.model = model
        converted = model.converted
        interpreter = fx.Interpreter(converted, garbage_collect_values=False)
        with torch.no_grad():
            interpreter.run(*inputs)
        self.values = interpreter.env
        self.static: set[fx.Node] = set()  # computed from constants and the inputs' shapes alone
        for node in converted.graph.nodes:
            if node.op == "get_attr" or (
                node.op in ("call_module", "call_function")
                and (self._type(node) == "Shape" or all(n in self.static for n in node.all_input_nodes))
            ):
                self.static.add(node)
        self.graph = fx.Graph()
        self.attributes: dict[str, Any] = {}  # the new module's submodules and constants, by name
        self.new: dict[fx.Node, fx.Node] = {}
        placeholders = [n for n in converted.graph.nodes if n.op == "placeholder"]
        for k in order:
            self.new[placeholders[k]] = self.graph.placeholder(_identifier(model.input_names[k]))
        norms: dict[fx.Node, tuple] = {}  # the last node of each layer norm written as arithmetic: its call
        for div in [n for n in converted.graph.nodes if self._type(n) == "Div"]:
            found = _layer_norm(self, div)
            if found is not None:
                nodes, call = found
                norms[nodes[-1]] = call
                self.new.update(dict.fromkeys(nodes[:-1]))  # the other nodes are not copied
        for node in converted.graph.nodes:
            if node.op == "placeholder" or node in self.static or node in self.new:
                continue
            if node.op == "output":
                self.graph.output(fx.node.map_arg(node.args[0], self.argument))
                continue
            if node in norms:
                self.new[node] = self.call(F.layer_norm, *norms[node])
                continue
            rewrite = _REWRITES.get(self._type(node))
            rewritten = rewrite(self, node) if rewrite is not None else None
            if rewritten is None:
                self._refuse_value_arguments(node)
                rewritten = self.graph.node_copy(node, self.argument)
                if node.op == "call_module":
                    self.attributes[node.target] = converted.get_submodule(node.target)
            self.new[node] = rewritten

    def module(self) -> fx.GraphModule:
        return fx.GraphModule(self.attributes, self.graph, class_name="SpecializedOnnxModel")

    def argument(self, node: fx.Node) -> Any:
        """The new graph's node for an argument of the converted graph: its copy, or a constant."""
        if node.graph is self.graph:
            return node
        if node in self.new:
            return self.new[node]
        value = self.values[node]
        if not isinstance(value, Tensor):
            return value
        return self.constant(value, node)

    def constant(self, value: Tensor, node: fx.Node | None = None) -> fx.Node:
        name = f"constant_{len(self.attributes)}"
        self.attributes[name] = value
        constant = self.graph.get_attr(name)
        if node is not None:
            self.new[node] = constant
        return constant

    def inputs(self, node: fx.Node) -> list[fx.Node | None]:
        """The node's ONNX inputs in order, ``None`` for omitted ones."""
        module = self.model.converted.get_submodule(node.target)
        names = list(inspect.signature(module.forward).parameters)
        bound = dict(zip(names, node.args)) | dict(node.kwargs)
        return [bound.get(name) for name in names]

    def number(self, node: fx.Node | None) -> Tensor | None:
        """The value of a constant input (``None`` for an input that depends on the input's values)."""
        return self.values[node] if node is not None and node in self.static else None

    def call(self, function: Callable, *args: Any) -> fx.Node:
        return self.graph.call_function(function, fx.node.map_arg(args, self.argument))

    def _type(self, node: fx.Node) -> str:
        operator_ = self.model._operators.get(node.target) if node.op == "call_module" else None
        return operator_.type if operator_ is not None else ""

    def _refuse_value_arguments(self, node: fx.Node) -> None:
        kind = self._type(node)
        if kind in _READS_VALUES and any(n in self.static for n in node.all_input_nodes):
            raise ValueError(
                f"relprop cannot explain the ONNX operator {kind} (node {node.target!r}) on the path of the "
                "input's values: onnx2torch reads its shape or index inputs as numbers, which torch.export "
                "cannot capture"
            )


def _identifier(name: str) -> str:
    name = re.sub(r"\W", "_", name)
    return name if name.isidentifier() else f"input_{name}"


def _layer_norm(specializer: _Specializer, div: fx.Node) -> tuple[list[fx.Node], tuple] | None:
    """A layer norm as exporters write it before opset 17, ``c / sqrt(mean(c^2) + e)`` for
    ``c = x - mean(x)``, then the multiplication by a constant weight and the addition of a constant bias, if
    there are: its nodes (the last one last) and the arguments of ``F.layer_norm`` that computes the same."""
    kind, number = specializer._type, specializer.number

    def argument(node: fx.Node, operator_: str, index: int, alone: bool = True) -> fx.Node | None:
        """The ``index``-th argument of ``node`` if it is an ``operator_`` used by ``node`` alone."""
        if node is None or node.op != "call_module" or len(node.args) <= index:
            return None
        found = node.args[index]
        if not isinstance(found, fx.Node) or kind(found) != operator_ or (alone and len(found.users) != 1):
            return None
        return found

    def axes(mean: fx.Node) -> list[int] | None:
        attributes = specializer.model._operators[mean.target].attributes
        return sorted(attributes["axes"]) if attributes.get("keepdims", 1) and "axes" in attributes else None

    centred, root = argument(div, "Sub", 0, alone=False), argument(div, "Sqrt", 1)
    shifted = argument(root, "Add", 0)
    variance = argument(shifted, "ReduceMean", 0)
    square = argument(variance, "Pow", 0)
    mean = argument(centred, "ReduceMean", 1)
    if None in (centred, shifted, variance, square, mean) or set(centred.users) != {div, square}:
        return None
    x, epsilon = centred.args[0], number(shifted.args[1])
    dims = specializer.values[x].dim()
    if (
        x in specializer.static
        or square.args[0] is not centred
        or mean.args[0] is not x
        or number(square.args[1]) is None
        or float(number(square.args[1])) != 2.0
        or epsilon is None
        or epsilon.numel() != 1
        or axes(mean) is None
        or axes(mean) != axes(variance)
        or [a % dims for a in axes(mean)] != list(range(dims - len(axes(mean)), dims))
    ):
        return None
    shape = tuple(specializer.values[x].shape[dims - len(axes(mean)) :])
    nodes = [mean, centred, square, variance, shifted, root, div]
    weight, bias = _affine_after(specializer, nodes, shape)
    return nodes, (x, shape, weight, bias, float(epsilon))


def _affine_after(specializer: _Specializer, nodes: list[fx.Node], shape: tuple[int, ...]) -> tuple:
    """The constant weight (``Mul``) and then bias (``Add``) of ``shape`` that follow the last of ``nodes``,
    each if there is one (else None); the nodes found are appended to ``nodes``."""
    parameters = {"Mul": None, "Add": None}
    for operator_ in parameters:
        last = nodes[-1]
        user = next(iter(last.users)) if len(last.users) == 1 else None
        if user is None or specializer._type(user) != operator_:
            continue
        other = specializer.number(next((n for n in user.args if n is not last), None))
        if other is None or other.shape != shape:
            continue
        nodes.append(user)
        parameters[operator_] = specializer.constant(other)
    return parameters["Mul"], parameters["Add"]


def _reshaped(specializer: _Specializer, node: fx.Node) -> fx.Node | None:
    """``Reshape``, ``Squeeze``, ``Unsqueeze``: to the output's shape."""
    data, *rest = specializer.inputs(node)
    if not any(specializer.number(n) is not None for n in rest):
        return None
    return specializer.call(torch.reshape, data, tuple(specializer.values[node].shape))


def _expanded(specializer: _Specializer, node: fx.Node) -> fx.Node | None:
    data, shape = specializer.inputs(node)
    if specializer.number(shape) is None:
        return None
    return specializer.call(torch.broadcast_to, data, tuple(specializer.values[node].shape))


def _tiled(specializer: _Specializer, node: fx.Node) -> fx.Node | None:
    data, repeats = specializer.inputs(node)
    if specializer.number(repeats) is None:
        return None
    return specializer.call(torch.tile, data, tuple(specializer.number(repeats).tolist()))


def _sliced(specializer: _Specializer, node: fx.Node) -> fx.Node | None:
    data, starts, ends, axes, steps = (specializer.inputs(node) + [None] * 5)[:5]
    if any(n is not None and specializer.number(n) is None for n in (starts, ends, axes, steps)):
        return None
    if starts is None:  # opsets before 10: attributes, which onnx2torch's module holds
        return None
    shape = specializer.values[data].shape
    starts, ends = specializer.number(starts).tolist(), specializer.number(ends).tolist()
    axes = list(range(len(starts))) if axes is None else specializer.number(axes).tolist()
    steps = [1] * len(starts) if steps is None else specializer.number(steps).tolist()
    index: list[slice] = [slice(None)] * len(shape)
    backwards = []
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = axis % len(shape)
        if step > 0:
            index[axis] = slice(start, end, step)
        else:  # ONNX's negative steps count as Python's do; torch slices forward only
            backwards.append((axis, torch.tensor(range(*slice(start, end, step).indices(shape[axis])))))
    out = specializer.call(operator.getitem, data, tuple(index))
    for axis, positions in backwards:
        out = specializer.graph.call_function(
            torch.index_select, (out, axis, specializer.constant(positions))
        )
    return out


def _split(specializer: _Specializer, node: fx.Node) -> fx.Node | None:
    data, sizes = (specializer.inputs(node) + [None])[:2]
    if specializer.number(sizes) is None:
        return None
    axis = specializer.model._operators[node.target].attributes.get("axis", 0)
    return specializer.call(torch.split, data, specializer.number(sizes).tolist(), axis)


def _summed(specializer: _Specializer, node: fx.Node) -> fx.Node | None:
    inputs = specializer.inputs(node)
    if len(inputs) < 2 or (inputs[1] is not None and specializer.number(inputs[1]) is None):
        return None  # axes as an attribute (opsets before 13), or computed from the input's values
    data, axes = inputs
    attributes = specializer.model._operators[node.target].attributes
    keep = bool(attributes.get("keepdims", 1))
    axes = [] if axes is None else specializer.number(axes).tolist()
    if not axes and attributes.get("noop_with_empty_axes", 0):
        return specializer.argument(data)
    dims = axes or list(range(specializer.values[data].dim()))
    return specializer.call(torch.sum, data, sorted(dims), keep)


def _gathered(specializer: _Specializer, node: fx.Node) -> fx.Node | None:
    """``Gather``: of a constant matrix's rows by ids, an embedding; by constant indices, a selection."""
    data, indices = specializer.inputs(node)
    axis = specializer.model._operators[node.target].attributes.get("axis", 0)
    table, positions = specializer.number(data), specializer.number(indices)
    if table is not None and positions is None:
        ids = specializer.values[indices]
        if table.dim() == 2 and table.is_floating_point() and axis == 0 and not ids.is_floating_point():
            return specializer.call(F.embedding, indices, data)
        return None
    if positions is None:
        return None
    size = specializer.values[data].shape[axis]
    positions = positions.remainder(size)  # ONNX counts negative indices from the end
    if positions.dim() == 0:
        return specializer.call(torch.select, data, axis, int(positions))
    chosen = specializer.graph.call_function(
        torch.index_select, (specializer.argument(data), axis, specializer.constant(positions.flatten()))
    )
    return specializer.graph.call_function(torch.reshape, (chosen, tuple(specializer.values[node].shape)))


def _dense(specializer: _Specializer, node: fx.Node) -> fx.Node | None:
    """``MatMul`` by a constant matrix, and ``Add`` of a constant vector after it: ``F.linear``."""
    x, matrix = specializer.inputs(node)
    weight = specializer.number(matrix)
    if weight is None or specializer.number(x) is not None or weight.dim() != 2:
        return None
    bias, users = None, list(node.users)
    if len(users) == 1 and specializer._type(users[0]) == "Add":
        other = next((n for n in users[0].all_input_nodes if n is not node), None)
        value = specializer.number(other)
        if value is not None and value.shape == weight.shape[1:] and value.dtype == weight.dtype:
            bias = value
    args = (specializer.argument(x), specializer.constant(weight.T.contiguous()))
    if bias is None:
        return specializer.graph.call_function(F.linear, args)
    linear = specializer.graph.call_function(F.linear, (*args, specializer.constant(bias)))
    specializer.new[users[0]] = linear
    return linear


def _gemm(specializer: _Specializer, node: fx.Node) -> fx.Node | None:
    """``Gemm`` with constant weights whose bias onnx2torch did not find among the initializers (an exporter
    may pass it through ``Identity``): ``F.linear``."""
    x, matrix, bias = (specializer.inputs(node) + [None, None])[:3]  # nn.Linear (onnx2torch's): one input
    weight, attributes = specializer.number(matrix), specializer.model._operators[node.target].attributes
    if weight is None or attributes.get("transA", 0):
        return None
    if bias is not None and specializer.number(bias) is None:
        return None
    weight = weight * attributes.get("alpha", 1.0)
    if not attributes.get("transB", 0):
        weight = weight.T.contiguous()
    args = [specializer.argument(x), specializer.constant(weight)]
    if bias is not None:
        shift = specializer.number(bias) * attributes.get("beta", 1.0)
        if shift.numel() not in (1, weight.shape[0]):  # a bias per sample: not a dense layer's
            return None
        args.append(specializer.constant(shift.reshape(-1).expand(weight.shape[0]).contiguous()))
    return specializer.graph.call_function(F.linear, tuple(args))


_REWRITES: dict[str, Callable[[_Specializer, fx.Node], fx.Node | None]] = {
    "Reshape": _reshaped,
    "Squeeze": _reshaped,
    "Unsqueeze": _reshaped,
    "Expand": _expanded,
    "Tile": _tiled,
    "Slice": _sliced,
    "Split": _split,
    "ReduceSum": _summed,
    "Gather": _gathered,
    "MatMul": _dense,
    "Gemm": _gemm,
}
"""The ONNX operators rewritten as torch operations for relprop, by operator (``None``: as onnx2torch
computes it)."""

_READS_VALUES = {
    "ConstantOfShape",
    "CumSum",
    "NonMaxSuppression",
    "Pad",
    "Range",
    "Resize",
    "RoiAlign",
    "ScatterND",
    "TopK",
}
"""ONNX operators whose shape, index or axis inputs onnx2torch reads as numbers, which relprop does not
rewrite."""
