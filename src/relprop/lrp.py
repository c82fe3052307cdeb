"""The LRP engine: one forward pass through the traced graph, one backward pass of relevance."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, fx, nn

from relprop.audit import Audit, AuditRow
from relprop.canonizers import Canonizer, MergeBatchNorm
from relprop.checks import check_eval_mode, check_input
from relprop.composites import Composite, EpsilonPlusFlat
from relprop.graph import Graph, Kind, Node, UnsupportedOperationError
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
    ) -> None:
        check_eval_mode(model)
        self.model = model
        self.composite = EpsilonPlusFlat() if composite is None else composite
        self.canonizers = (MergeBatchNorm(),) if canonizers is None else tuple(canonizers)
        self.graph = Graph(model, leaf_types=self.composite.leaf_types())
        for canonizer in self.canonizers:
            canonizer.apply(self.graph)
        self.rules: dict[Node, Rule] = self.composite.assign(self.graph)
        self._check_rules()
        self._kept = self._values_kept()
        self._copied = {node.fx for node in self.graph if self._overwrites_needed_value(node)}
        self._tokens = _takes_tokens(self.graph)

    def __call__(self, x: Tensor, target: Target = None) -> Tensor:
        """Relevance of each input element for ``target``; shaped like ``x``, same dtype and device.

        ``target`` is ``None`` (the predicted class of each sample), an ``int``, a ``LongTensor`` of shape
        ``(B,)``, or a float tensor shaped like the model's output that weights the outputs to explain. The
        relevance at the output is the selected logit(s) times that weighting.
        """
        return self._explain(x, _selected(target))[0]

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
    def _check_rules(self) -> None:
        missing = [n for n in self.graph if n.kind == Kind.LINEAR and n not in self.rules]
        if missing:
            names = ", ".join(n.describe() for n in missing[:5])
            raise ValueError(
                f"{type(self.composite).__name__} has no rule for {names}"
                + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                + ": add their types to its layer_map or their names to its name_map"
            )
        for node, rule in self.rules.items():
            if node.kind not in rule.kinds:
                raise ValueError(f"{rule!r} cannot explain {node.describe()} (a {node.kind.value} operation)")

    def _values_kept(self) -> set[fx.Node]:
        """Nodes whose value the backward pass reads: the others are freed once their consumers ran."""
        kept = {_output_node(self.graph)} | {n.fx for n in self.graph if n.kind == Kind.INPUT}
        for node in self.graph:
            rule = self.rules.get(node)
            if rule is None:
                if node.kind in (Kind.ROUTE, Kind.UNKNOWN):  # routes re-run the operation on its operands
                    kept.update(node.fx.all_input_nodes)
            elif rule.needs_output:
                kept.add(node.fx)
        return kept

    def _overwrites_needed_value(self, node: Node) -> bool:
        """Whether an in-place operation would overwrite a value that is read again (then it gets a copy)."""
        if not node.inplace:
            return False
        overwritten = node.fx.args[0] if node.fx.args else None
        if not isinstance(overwritten, fx.Node):
            return False
        producer = overwritten  # a folded batch normalization passes its layer's tensor on unchanged
        while self.graph[producer].kind == Kind.FOLDED:
            if len(producer.users) > 1 or producer in self._kept:
                return True
            producer = producer.args[0]
        rule = self.rules.get(self.graph[producer])
        return (
            rule is None
            or (rule.records_forward and self.graph[producer].weighted)
            or rule.needs_output
            or len(producer.users) > 1
            or producer in self._kept
        )

    def _explain(self, x: Tensor, start: Callable[[Tensor], Tensor], audit: bool = False):
        check_eval_mode(self.model)
        check_input(x, self.model, tokens=self._tokens)
        with torch.no_grad():
            values, saved = self._forward(x)
            output = values[_output_node(self.graph)]
            if not isinstance(output, Tensor):
                raise TypeError(
                    "relprop explains models that return one tensor; wrap the model to return the logits"
                )
            if not torch.isfinite(output).all():
                raise ValueError("the model's output contains NaN or infinite values")
            relevance = start(output)
        return self._backward(values, saved, relevance, audit)

    def _forward(self, x: Tensor) -> tuple[dict[fx.Node, Any], dict[fx.Node, tuple]]:
        values: dict[fx.Node, Any] = {}
        saved: dict[fx.Node, tuple] = {}
        waiting = {node.fx: len(node.fx.users) for node in self.graph}
        for node in self.graph:
            fx_node = node.fx
            if node.kind == Kind.INPUT:
                values[fx_node] = x.detach()
            elif node.kind == Kind.CONSTANT:
                values[fx_node] = _attribute(self.model, fx_node.target)
            elif node.kind == Kind.OUTPUT:
                values[fx_node] = values[fx_node.args[0]] if isinstance(fx_node.args[0], fx.Node) else None
            elif node.kind == Kind.FOLDED:
                values[fx_node] = values[fx_node.args[0]]
            elif node in self.rules:
                operands = node.operands(values, self.graph)
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
            for used in fx_node.all_input_nodes:
                waiting[used] -= 1
                if waiting[used] == 0 and used not in self._kept:
                    values[used] = None  # rules hold the inputs they need; free the rest early
        return values, saved

    def _backward(self, values, saved, output_relevance: Tensor, audit: bool):
        output_node = _output_node(self.graph)
        pending: dict[fx.Node, Any] = {output_node: output_relevance}
        rows: list[AuditRow] = []
        x = values[self.graph.nodes[0].fx]
        batch = output_relevance.shape[0]  # the output is batch-first even when the input is time-first
        input_relevance = torch.zeros_like(x, dtype=output_relevance.dtype if self._tokens else x.dtype)
        for node in reversed(self.graph.nodes):
            fx_node = node.fx
            relevance = pending.pop(fx_node, None)
            value = values.pop(fx_node, None)
            if relevance is None:
                continue
            if node.kind == Kind.INPUT:
                input_relevance = relevance
                continue
            received = self._propagate(node, value, relevance, values, saved.pop(fx_node, None))
            for target_node, share in received:
                _accumulate(pending, target_node, share, values)
            if audit and node.kind != Kind.OUTPUT:
                rows.append(self._row(node, relevance, [share for _, share in received], batch))
        if not audit:
            return input_relevance, None
        books = Audit(
            rows, _per_sample(output_relevance, batch), _per_sample(input_relevance, batch), input_relevance
        )
        return input_relevance, books

    def _propagate(self, node: Node, value, relevance, values, saved) -> list[tuple[fx.Node, Any]]:
        fx_node = node.fx
        if node.kind in (Kind.OUTPUT, Kind.FOLDED):
            return [(fx_node.args[0], relevance)]
        if saved is not None:
            op, operands, inputs, context, produced = saved
            if value is None and produced is not None:
                output = produced[0]()
                if output is not None and output._version == produced[1]:
                    value = output
            try:
                shares = self.rules[node].backward(op, inputs, value, context, relevance)
            except UnsupportedOperationError as error:
                raise UnsupportedOperationError(f"{node.describe()}: {error}") from None
            return [(n, share) for n, share in zip(operands, shares) if share is not None]
        if node.kind == Kind.ROUTE:
            return _route(node, relevance, values, self.graph)
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


def _takes_tokens(graph: Graph) -> bool:
    """Whether the model's input goes into an embedding: then it is a batch of integer token ids."""
    return any(isinstance(graph[u].module, (nn.Embedding, nn.EmbeddingBag)) for u in graph.nodes[0].fx.users)


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
        if not torch.isfinite(relevance).all():
            raise ValueError("output relevance contains NaN or infinite values")
        return relevance.to(output)

    return start


def _route(node: Node, relevance, values, graph: Graph) -> list[tuple[fx.Node, Any]]:
    """Relevance through an operation that only moves values: the transpose of the move."""
    fx_node = node.fx
    source = fx_node.args[0] if fx_node.args else None
    if isinstance(source, fx.Node) and isinstance(values[source], (tuple, list)):  # getitem on a tuple
        shares = [None] * len(values[source])
        shares[fx_node.args[1]] = relevance
        return [(source, shares)]
    operands = node.operands(values, graph)
    leaves = {n: values[n].detach().requires_grad_() for n in dict.fromkeys(operands)}
    args, kwargs = fx.node.map_arg((fx_node.args, fx_node.kwargs), lambda n: leaves.get(n, values[n]))
    with torch.enable_grad():
        out = node.run(args, kwargs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    given = list(relevance) if isinstance(relevance, (tuple, list)) else [relevance]
    pairs = [(o, r) for o, r in zip(outs, given) if r is not None and o.requires_grad]
    if not pairs:
        return []
    grads = torch.autograd.grad(
        [o for o, _ in pairs], list(leaves.values()), [r for _, r in pairs], allow_unused=True
    )
    return [(n, g) for n, g in zip(leaves, grads) if g is not None]


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


def _output_node(graph: Graph) -> fx.Node:
    output = graph.nodes[-1].fx
    return output.args[0] if isinstance(output.args[0], fx.Node) else output


def _attribute(model: nn.Module, target: str) -> Any:
    value: Any = model
    for part in target.split("."):
        value = getattr(value, part)
    return value.detach() if isinstance(value, Tensor) else value


def _type_name(node: Node) -> str:
    return (
        f"{node.type.__module__}.{node.type.__qualname__}" if node.type is not None else "<its module type>"
    )
