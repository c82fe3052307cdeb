"""The LRP engine: one forward pass through the traced graph, one backward pass of relevance."""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, fx, nn

from relprop import capture
from relprop.audit import Audit, AuditRow
from relprop.canonizers import Canonizer, MergeBatchNorm
from relprop.checks import all_finite, check_eval_mode, check_input, check_token_ids
from relprop.composites import Composite, EpsilonPlusFlat
from relprop.describe import describe_call
from relprop.graph import Graph, Kind, Node, OutputChoice, UnsupportedOperationError
from relprop.rules import Rule
from relprop.targets import Target, target_weights


class LRP:
    """Layer-wise Relevance Propagation for any traceable PyTorch model.

    The model is traced with ``torch.fx``, so functional operations and arithmetic are explained as well
    as modules; every operation that relevance reaches needs a rule, and one without raises
    :class:`~relprop.graph.UnsupportedOperationError` naming it. The model is never modified.

    Parameters
    ----------
    model:
        The model, in evaluation mode.
    composite:
        Which rule explains which operation; :class:`~relprop.composites.EpsilonPlusFlat` by default.
    canonizers:
        Rewrites of the traced graph; by default :class:`~relprop.canonizers.MergeBatchNorm`. Pass ``()``
        to explain the graph as it is.

    Examples
    --------
    >>> explainer = LRP(model, composite=composites.EpsilonGammaBox(low=-3.0, high=3.0))
    >>> relevance = explainer(x)                 # the predicted class of each sample
    >>> relevance = explainer(x, target=207)     # class 207 for every sample
    >>> print(explainer.audit(x))                # where relevance goes, operation by operation
    """

    def __init__(
        self,
        model: nn.Module,
        composite: Composite | None = None,
        canonizers: Iterable[Canonizer] | None = None,
        *,
        output: OutputChoice = None,
        inputs: str | Sequence[str] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"LRP explains a torch.nn.Module, got {type(model).__name__}")
        if composite is not None and not isinstance(composite, Composite):
            raise TypeError(f"composite must be a relprop Composite, got {type(composite).__name__}")
        check_eval_mode(model)
        self.model = model
        self.composite = EpsilonPlusFlat() if composite is None else composite
        self.canonizers = (MergeBatchNorm(),) if canonizers is None else tuple(canonizers)
        self.output = output
        self.inputs = (inputs,) if isinstance(inputs, str) else None if inputs is None else tuple(inputs)
        self.graph: Graph | None = None
        self._traced: _Plan | None = None
        self._exported: dict[tuple, _Plan] = {}
        self._trace_error: Exception | None = None
        try:
            graph = Graph(model, leaf_types=self.composite.leaf_types(), output=output)
        except TypeError as error:  # torch.fx cannot trace it: torch.export captures it at the first call
            self._trace_error = error
            return
        opaque = graph.opaque()
        if len(graph.inputs) == 1 and not opaque and self.inputs is None:
            self._traced = self._plan(graph)
            self._use(self._traced)
        elif opaque:
            self._trace_error = TypeError(f"torch.fx keeps {opaque[0].describe()} whole")

    def _plan(self, graph: Graph) -> _Plan:
        for canonizer in self.canonizers:
            canonizer.apply(graph)
        rules = self.composite.assign(graph)
        graph.detach(node for node, rule in rules.items() if rule.detaches)
        plan = _Plan(graph, rules)
        _check_rules(plan, self.composite)
        plan.kept = _values_kept(plan)
        plan.copied = {node.fx for node in graph if _overwrites_needed_value(plan, node)}
        return plan

    def _use(self, plan: _Plan) -> None:
        self.graph, self.rules, self._kept, self._copied = plan.graph, plan.rules, plan.kept, plan.copied

    def _prepare(self, args: tuple, kwargs: dict) -> None:
        """Choose the graph for this call: the traced one for a tensor, else the one exported for calls like
        it."""
        if self._traced is not None and not kwargs and len(args) == 1 and isinstance(args[0], Tensor):
            self._use(self._traced)
            return
        key = _signature(args, kwargs)
        if key not in self._exported:
            try:
                graph = Graph.exported(self.model, args, kwargs, self.output, self.inputs)
            except TypeError as error:
                if self._trace_error is not None:
                    raise TypeError(f"{error} ({self._trace_error})") from None
                raise
            self._exported[key] = self._plan(graph)
        self._use(self._exported[key])

    def __call__(self, x: Inputs, target: Target = None) -> Tensor | dict[str, Tensor]:
        """Relevance of each input element for ``target``; shaped like ``x``, same dtype and device.

        ``x`` is the model's input: a tensor, a tuple of positional arguments, or a dict of keyword arguments
        (e.g. a tokenizer's output). For a tuple or dict, relevance goes to the inputs named by ``inputs`` (by
        default the first that carries features: pixels, or token ids through their embedding, one value per
        token); masks and other ids are constants. With several such inputs the result is a dict by name.

        ``target`` is ``None`` (the predicted class of each sample), an ``int``, a ``LongTensor`` of shape
        ``(B,)``, or a float tensor shaped like the model's output that weights the outputs to explain. The
        relevance at the output is the selected logit(s) times that weighting.
        """
        return self._explain(x, _selected(target))[0]

    def __repr__(self) -> str:
        """The explainer's parameters, each described completely (:mod:`relprop.describe`)."""
        return describe_call(
            self, {"composite": self.composite, "canonizers": self.canonizers, "output": self.output,
                   "inputs": self.inputs},
        )  # fmt: skip

    def propagate(self, x: Tensor, output_relevance: Tensor | Callable[[Tensor], Tensor]) -> Tensor:
        """Relevance at the input when the output holds ``output_relevance``.

        ``output_relevance`` is a tensor shaped like ``model(x)``, or a function of the output that
        returns one (for a relevance that depends on the output, e.g. of a model stacked on this one).
        """
        return self._explain(x, _given(output_relevance))[0]

    def audit(
        self,
        x: Tensor,
        target: Target = None,
        *,
        output_relevance: Tensor | Callable[[Tensor], Tensor] | None = None,
    ) -> Audit:
        """Explain as :meth:`__call__` (or, given ``output_relevance``, as :meth:`propagate`) does and keep
        the books: per operation, the relevance that entered, left and was absorbed (by biases, stabilizers
        and constants), per sample.
        """
        if output_relevance is not None and target is not None:
            raise ValueError("audit takes a target or an output relevance, not both")
        start = _selected(target) if output_relevance is None else _given(output_relevance)
        return self._explain(x, start, audit=True)[1]

    # ------------------------------------------------------------------------------------------ internals
    def _explain(
        self,
        x: Inputs,
        start: Callable[[Tensor], Tensor],
        audit: bool = False,
        filters: Mapping[fx.Node, Callable[[Tensor], Tensor]] | None = None,
        concepts: int | None = None,
    ):
        """``filters`` maps graph nodes to functions of the relevance a node received, whose result the
        node propagates instead (to read, mask or replace the relevance at a layer: :mod:`relprop.concepts`).

        With ``concepts`` (``K``), relevance is *stacked*: ``K`` relevances of one forward pass, along a
        leading dimension (of concepts) that a node's value lacks. It starts stacked if ``start`` returns
        ``(K, *output shape)``, and becomes stacked at the first filter (which receives ``(K, ...)``); the
        rules explain all ``K`` at once (:meth:`relprop.rules.Rule.backward_stacked`), and the relevance
        maps are ``(K, *input shape)``. Not with ``audit``.
        """
        if audit and concepts is not None:
            raise ValueError("the audit keeps the books of one relevance, not of stacked concepts")
        check_eval_mode(self.model)
        args, kwargs = _arguments(x)
        self._prepare(args, kwargs)
        feed = dict(zip(self.graph.inputs, capture.flatten_inputs(args, kwargs)))
        for source in self.graph.sources:
            check_input(feed[source], self.model, tokens=self.graph.embedded(source))
        with torch.no_grad():
            values, saved, dims = self._forward(feed)
            output = values[self.graph.output]
            if not isinstance(output, Tensor):
                raise TypeError(
                    f"the explained output is a {type(output).__name__}, not a tensor: choose one with "
                    "output="
                )
            if not all_finite(output):
                raise ValueError("the model's output contains NaN or infinite values")
            relevance = start(output)
        return self._backward(values, saved, feed, relevance, audit, filters or {}, _Stacking(concepts, dims))

    def _forward(self, feed: dict[fx.Node, Any]) -> tuple[dict, dict[fx.Node, tuple], dict[fx.Node, Any]]:
        """The values of the forward pass, what each rule saved of it, and the dimensions of each value
        (:func:`_dims`), by which stacked relevance is told from plain."""
        values: dict[fx.Node, Any] = {}
        saved: dict[fx.Node, tuple] = {}
        dims: dict[fx.Node, Any] = {}
        waiting = {node.fx: len(node.fx.users) for node in self.graph}
        for node in self.graph:
            try:
                self._run(node, feed, values, saved)
            except (
                RuntimeError
            ) as error:  # torch's errors on wrong shapes name neither the place nor the input
                shapes = [tuple(v.shape) for v in feed.values() if isinstance(v, Tensor)]
                first = str(error).strip().splitlines()[0]
                raise ValueError(
                    f"{node.describe()} failed on the input of shape {', '.join(map(str, shapes))}: {first} "
                    "(is the batch dimension missing, or the input of another size than the model takes?)"
                ) from error
            dims[node.fx] = _dims(values[node.fx])
            for used in node.fx.all_input_nodes:
                waiting[used] -= 1
                if waiting[used] == 0 and used not in self._kept:
                    values[used] = None  # rules hold the inputs they need; free the rest early
        return values, saved, dims

    def _run(self, node: Node, feed: dict, values: dict, saved: dict) -> None:
        """Compute one node's value in the forward pass, recording what its rule needs."""
        fx_node = node.fx
        if node.type is nn.Embedding:
            check_token_ids(node.describe(), node.module, fx.node.map_arg(fx_node.args, values.__getitem__))
        if node.kind == Kind.INPUT:
            value = feed[fx_node]
            values[fx_node] = value.detach() if isinstance(value, Tensor) else value
        elif node.kind == Kind.CONSTANT:
            values[fx_node] = self.graph.constant(fx_node)
        elif node.kind == Kind.OUTPUT:
            values[fx_node] = None
        elif node.kind == Kind.FOLDED:
            values[fx_node] = values[fx_node.args[0]]
        elif node in self.rules and not node.interior and (operands := node.operands(values, self.graph)):
            inputs = [values[n].clone() if fx_node in self._copied else values[n] for n in operands]
            op = node.operation(values, operands, self.graph)
            rule = self.rules[node]
            values[fx_node], context = rule.forward(op, inputs)
            # an output the rule can use is referenced weakly, so that it lives no longer than its
            # consumers need it, with its version, which tells whether an in-place operation overwrote it
            output = values[fx_node]
            produced = (weakref.ref(output), output._version) if rule.uses_output else None
            if not rule.reads_inputs:
                inputs = [x.to("meta") if isinstance(x, Tensor) else x for x in inputs]
            saved[fx_node] = (op, operands, inputs, context, produced)
        else:
            args, kwargs = fx.node.map_arg((fx_node.args, fx_node.kwargs), values.__getitem__)
            if fx_node in self._copied:
                args = tuple(a.clone() if isinstance(a, Tensor) else a for a in args)
            values[fx_node] = node.run(args, kwargs)

    def _backward(
        self,
        values,
        saved,
        feed,
        output_relevance: Tensor,
        audit: bool,
        filters: Mapping,
        stacking: _Stacking,
    ):
        pending: dict[fx.Node, Any] = {self.graph.output: output_relevance}
        rows: list[AuditRow] = []
        batch = output_relevance.shape[0]  # the output is batch-first even when the input is time-first
        reached: dict[fx.Node, Tensor] = {}
        for node in reversed(self.graph.nodes):
            fx_node = node.fx
            relevance = pending.pop(fx_node, None)
            value = values.pop(fx_node, None)
            if relevance is None:
                continue
            stacked = stacking.is_stacked(fx_node, relevance)
            if fx_node in filters:
                if stacking.concepts is not None:
                    relevance, stacked = stacking.stack(fx_node, relevance), True
                relevance = filters[fx_node](relevance)
            if node.kind == Kind.INPUT:
                reached[fx_node] = relevance
                continue
            if stacked and isinstance(relevance, (tuple, list)):
                relevance = stacking.stack(fx_node, relevance)  # all parts of a tuple stacked alike
            received = self._propagate(node, value, relevance, values, saved.pop(fx_node, None), stacked)
            for target_node, share in received:
                _accumulate(pending, target_node, share, values)
            if audit:
                rows.append(self._row(node, relevance, [share for _, share in received], batch))
        maps = {}
        for source in self.graph.sources:
            x = feed[source]
            dtype = x.dtype if x.is_floating_point() else output_relevance.dtype
            shape = x.shape if stacking.concepts is None else (stacking.concepts, *x.shape)
            relevance = reached.get(source)
            if relevance is None:
                relevance = torch.zeros(shape, dtype=dtype, device=x.device)
            elif relevance.shape != shape:  # plain relevance that reached the input around every filter
                relevance = relevance.expand(shape)
            maps[source.target] = relevance
        relevance_maps = next(iter(maps.values())) if len(maps) == 1 else maps
        if not audit:
            return relevance_maps, None
        total = sum(_per_sample(r, batch) for r in maps.values())
        books = Audit(rows, _per_sample(output_relevance, batch), total, relevance_maps)
        return relevance_maps, books

    def _propagate(
        self, node: Node, value, relevance, values, saved, stacked: bool
    ) -> list[tuple[fx.Node, Any]]:
        fx_node = node.fx
        if node.kind in (Kind.OUTPUT, Kind.FOLDED):
            return [(fx_node.args[0], relevance)]
        if saved is not None:
            op, operands, inputs, context, produced = saved
            if value is None and produced is not None:
                output = produced[0]()
                if output is not None and output._version == produced[1]:
                    value = output
            rule = self.rules[node]
            backward = rule.backward_stacked if stacked else rule.backward
            try:
                shares = backward(op, inputs, value, context, relevance)
            except UnsupportedOperationError as error:
                raise UnsupportedOperationError(f"{node.describe()}: {error}") from None
            return [(n, share) for n, share in zip(operands, shares) if share is not None]
        if node.kind == Kind.ROUTE:
            return _route(node, relevance, values, self.graph, stacked)
        reason = f" ({node.reason})" if node.reason else ""
        raise UnsupportedOperationError(
            f"relprop has no rule for {node.describe()}{reason}. Map one with a Composite: "
            f"name_map={{'{node.name}': rule}} or layer_map=[({_type_name(node)}, rule)] (e.g. rules.Pass() "
            "for an element-wise operation); relprop never falls back to the gradient."
        )

    def _row(self, node: Node, relevance, shares, batch: int) -> AuditRow:
        rule = self.rules.get(node)
        name = repr(rule) if rule is not None else node.kind.value
        entered = _per_sample(relevance, batch)
        left = sum((_per_sample(s, batch) for s in shares), torch.zeros_like(entered))
        return AuditRow(node.name, node.describe(), name, entered, left)


def _selected(target: Target) -> Callable[[Tensor], Tensor]:
    """The output relevance of a target: the selected outputs times their weighting."""
    return lambda output: output * target_weights(output, target)


def _given(output_relevance: Tensor | Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    def start(output: Tensor) -> Tensor:
        relevance = output_relevance(output) if callable(output_relevance) else output_relevance
        if not isinstance(relevance, Tensor) or relevance.shape != output.shape:
            shape = getattr(relevance, "shape", type(relevance).__name__)
            raise ValueError(
                f"output relevance of shape {shape} must be shaped like the output {tuple(output.shape)}"
            )
        if not all_finite(relevance):
            raise ValueError("output relevance contains NaN or infinite values")
        return relevance.to(output)

    return start


def _route(node: Node, relevance, values, graph: Graph, stacked: bool) -> list[tuple[fx.Node, Any]]:
    """Relevance through an operation that only moves values: the transpose of the move (of each concept's
    relevance if ``stacked``)."""
    fx_node = node.fx
    source = fx_node.args[0] if fx_node.args else None
    if isinstance(source, fx.Node) and isinstance(values[source], (tuple, list)):  # an element of a tuple
        sequence, index = values[source], fx_node.args[1]
        if fx_node.target is getattr:  # a field of a named tuple
            index = next(k for k, v in enumerate(sequence) if v is getattr(sequence, index))
        shares = [None] * len(sequence)
        shares[index] = relevance
        return [(source, shares)]
    operands = node.operands(values, graph)
    if len(operands) == 1:
        moved = _moved_back(node, relevance, values, values[operands[0]], stacked)
        if moved is not None:
            return [(operands[0], moved)]
    dtype = next(
        r.dtype for r in (relevance if isinstance(relevance, (tuple, list)) else [relevance]) if r is not None
    )
    # integer values (token ids moved before their embedding) are moved as floats of the relevance's dtype
    leaves = {
        n: (values[n] if values[n].is_floating_point() else values[n].to(dtype)).detach().requires_grad_()
        for n in dict.fromkeys(operands)
    }
    args, kwargs = fx.node.map_arg((fx_node.args, fx_node.kwargs), lambda n: leaves.get(n, values[n]))
    with torch.enable_grad():
        out = node.run(args, kwargs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    given = list(relevance) if isinstance(relevance, (tuple, list)) else [relevance]
    pairs = [(o, r) for o, r in zip(outs, given) if r is not None and o.requires_grad]
    if not pairs:
        return []
    grads = torch.autograd.grad(
        [o for o, _ in pairs],
        list(leaves.values()),
        [r for _, r in pairs],
        allow_unused=True,
        is_grads_batched=stacked,
    )
    return [(n, g) for n, g in zip(leaves, grads) if g is not None]


_SAME = {"dropout", "clone", "contiguous", "to", "float", "double", "type_as"}
_REORDERED = {"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "view_as", "reshape_as"}
_SWAPPED = {"transpose", "swapaxes", "t", "adjoint"}
_SPLIT = {"split", "chunk"}


def _moved_back(node: Node, relevance, values, x: Tensor, stacked: bool) -> Tensor | None:
    """The transpose of a route that passes its one input on unchanged, reshaped (the same elements in the
    same order), transposed, permuted or split, written directly: ``None`` for other routes, which autograd
    transposes. (The most frequent routes of a transformer; autograd would re-run each.)"""
    fx_node = node.fx
    if fx_node.op == "call_module":
        module = node.module
        name = "flatten" if isinstance(module, (nn.Flatten, nn.Unflatten)) else "dropout"
        if not isinstance(module, (nn.Identity, nn.Flatten, nn.Unflatten, nn.modules.dropout._DropoutNd)):
            return None
    else:
        name = fx_node.target if fx_node.op == "call_method" else getattr(node.function, "__name__", None)
    if name in _SPLIT and isinstance(relevance, (tuple, list)) and set(fx_node.kwargs) <= {"dim"}:
        args, kwargs = fx.node.map_arg((fx_node.args, fx_node.kwargs), values.__getitem__)
        dim = args[2] if len(args) > 2 else kwargs.get("dim", 0)
        parts = node.run(args, kwargs)  # views of x, for the shapes of the parts without relevance
        given = next(r for r in relevance if r is not None)
        shift = given.dim() - parts[0].dim()  # one for stacked relevance
        pieces = [
            given.new_zeros((*given.shape[:shift], *p.shape)) if r is None else r
            for p, r in zip(parts, relevance)
        ]
        return torch.cat(pieces, dim % x.dim() + shift)
    if not isinstance(relevance, Tensor):
        return None
    concepts = relevance.shape[:1] if stacked else ()
    if name in _SAME or name in _REORDERED:
        dtype = x.dtype if x.is_floating_point() else relevance.dtype  # token ids move as floats
        return relevance.reshape(*concepts, *x.shape).to(device=x.device, dtype=dtype)
    if name not in _SWAPPED and name != "permute" or fx_node.kwargs:
        return None
    arguments = fx.node.map_arg(fx_node.args, values.__getitem__)[1:]
    if name == "permute":
        order = arguments[0] if len(arguments) == 1 and isinstance(arguments[0], Sequence) else arguments
        order = [d % x.dim() for d in order]
        back = sorted(range(len(order)), key=order.__getitem__)  # the inverse permutation
        return relevance.permute(*range(len(concepts)), *(d + len(concepts) for d in back))
    if name == "t" and x.dim() < 2:
        return relevance
    first, second = {"t": (0, 1), "adjoint": (-2, -1)}.get(name, arguments)
    shift = len(concepts)
    return relevance.transpose(first % x.dim() + shift, second % x.dim() + shift)


def _dims(value):
    """The number of dimensions of a value, nested like it for a tuple; ``None`` for a value without."""
    if isinstance(value, (tuple, list)):
        return [_dims(v) for v in value]
    return value.dim() if isinstance(value, Tensor) else None


@dataclass
class _Stacking:
    """How many concepts stacked relevance holds (``None``: relevance is never stacked), and the dimensions
    of each node's value, which stacked relevance exceeds by one."""

    concepts: int | None
    dims: dict[fx.Node, Any]

    def is_stacked(self, fx_node: fx.Node, relevance) -> bool:
        return self.concepts is not None and _exceeds(relevance, self.dims[fx_node])

    def stack(self, fx_node: fx.Node, relevance):
        """The relevance stacked: each plain part repeated (as a view) for every concept."""
        return _expanded(relevance, self.dims[fx_node], self.concepts)


def _exceeds(relevance, dims) -> bool:
    if isinstance(relevance, (tuple, list)):
        return any(_exceeds(r, d) for r, d in zip(relevance, dims))
    return relevance is not None and dims is not None and relevance.dim() > dims


def _expanded(relevance, dims, concepts: int):
    if isinstance(relevance, (tuple, list)):
        return [_expanded(r, d, concepts) for r, d in zip(relevance, dims)]
    if relevance is None or dims is None or relevance.dim() > dims:
        return relevance
    return relevance.expand(concepts, *relevance.shape)


def _accumulate(pending: dict, fx_node: fx.Node, share, values) -> None:
    if isinstance(share, list):
        pending[fx_node] = _merge(pending.get(fx_node), share)
        return
    current = pending.get(fx_node)
    pending[fx_node] = share if current is None else current + share


def _merge(current, share):
    """The sum of two relevances of a tuple, element by element, nested tuples too (``None``: none)."""
    if current is None or share is None:
        return share if current is None else current
    if isinstance(share, list):
        return [_merge(a, b) for a, b in zip(current, share)]
    return current + share


def _per_sample(relevance, batch: int) -> Tensor:
    """Total relevance per sample. The batch is dimension 0, or dimension 1 for time-first sequences and
    recurrent states (``(steps or layers, batch, ...)``); a tensor with neither counts evenly per sample."""
    if isinstance(relevance, (tuple, list)):
        parts = [_per_sample(r, batch) for r in relevance if r is not None]
        return sum(parts[1:], parts[0])
    if relevance.dim() >= 1 and relevance.shape[0] == batch:
        return relevance.reshape(batch, -1).sum(dim=1)
    if relevance.dim() >= 2 and relevance.shape[1] == batch:
        return relevance.transpose(0, 1).reshape(batch, -1).sum(dim=1)
    return relevance.sum().expand(batch) / batch


def _type_name(node: Node) -> str:
    """What a layer map keys the node by: its type, or the function it calls."""
    if node.type is not None:
        return f"{node.type.__module__}.{node.type.__qualname__}"
    function = node.fx.target
    if node.fx.op != "call_function":
        return "<its module type>"
    if isinstance(function, torch._ops.OpOverload):
        return f"torch.ops.{function}"
    name = getattr(function, "__name__", str(function))
    for public in (torch, torch.nn.functional, operator):  # the spelling a user writes, not the C module's
        if getattr(public, name, None) is function:
            return f"{public.__name__}.{name}"
    module = getattr(function, "__module__", None)
    return name if module in (None, "builtins") else f"{module}.{name}"


Inputs = Tensor | tuple | Mapping[str, Any]
"""A model's input: a tensor, a tuple of positional arguments, or a dict of keyword arguments."""


@dataclass(eq=False)
class _Plan:
    """A graph with its rules, and what the engine needs to know of them."""

    graph: Graph
    rules: dict[Node, Rule]
    kept: set[fx.Node] = field(default_factory=set)
    copied: set[fx.Node] = field(default_factory=set)


def _arguments(x: Inputs) -> tuple[tuple, dict]:
    if isinstance(x, Mapping):
        return (), dict(x)
    if isinstance(x, tuple):
        return x, {}
    if isinstance(x, Tensor):
        return (x,), {}
    raise TypeError(
        f"input must be a torch.Tensor, or a tuple or dict of the model's inputs, got {type(x).__name__}"
    )


def _signature(args: tuple, kwargs: dict) -> tuple:
    """What an exported graph is specialized to: names, shapes, dtypes and devices of the tensors, and the
    other arguments' values."""

    def describe(value):
        if isinstance(value, Tensor):
            return ("tensor", tuple(value.shape), value.dtype, value.device)
        return ("value", repr(value))

    return tuple(describe(a) for a in args), tuple((k, describe(v)) for k, v in kwargs.items())


def _check_rules(plan: _Plan, composite: Composite) -> None:
    missing = [n for n in plan.graph if n.kind == Kind.AFFINE and n not in plan.rules]
    if missing:
        names = ", ".join(n.describe() for n in missing[:5])
        raise ValueError(
            f"{type(composite).__name__} has no rule for {names}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            + ": add their types to its layer_map or their names to its name_map"
        )
    for node, rule in plan.rules.items():
        if node.kind not in rule.kinds:
            raise ValueError(f"{rule!r} cannot explain {node.describe()} (a {node.kind.value} operation)")


def _values_kept(plan: _Plan) -> set[fx.Node]:
    """Nodes whose value the backward pass reads: the others are freed once their consumers ran. The argument
    of an element-wise function written as arithmetic is kept too: the function's last node, which takes it,
    may run after the argument's last direct use (``x * (1 + erf(x / sqrt 2)) * 0.5``)."""
    kept = {plan.graph.output} | set(plan.graph.inputs)
    for node in plan.graph:
        if node.source is not None:
            kept.add(node.source)
        rule = plan.rules.get(node)
        if rule is None:
            if node.kind in (Kind.ROUTE, Kind.CUSTOM):  # routes re-run the operation on its operands
                kept.update(node.fx.all_input_nodes)
        elif rule.needs_output:
            kept.add(node.fx)
    return kept


def _overwrites_needed_value(plan: _Plan, node: Node) -> bool:
    """Whether an in-place operation would overwrite a value that is read again (then it gets a copy)."""
    if not node.inplace:
        return False
    overwritten = node.fx.args[0] if node.fx.args else None
    if not isinstance(overwritten, fx.Node):
        return False
    graph = plan.graph
    producer = overwritten  # a folded batch normalization passes its layer's tensor on unchanged
    while graph[producer].kind == Kind.FOLDED:
        if len(producer.users) > 1 or producer in plan.kept:
            return True
        producer = producer.args[0]
    rule = plan.rules.get(graph[producer])
    return (
        rule is None
        or (rule.records_forward and graph[producer].weighted)
        or rule.needs_output
        or len(producer.users) > 1
        or producer in plan.kept
    )
