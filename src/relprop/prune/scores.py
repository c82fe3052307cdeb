"""How much each unit matters: the pruning criteria, computed over reference samples.

Every criterion gives one non-negative score per unit (output channel of a convolution, neuron of a dense
layer; :mod:`relprop.prune.structure`), summed over the reference samples and all positions:

``lrp``
    :math:`\\sum |R|` of the relevance at the layer's output (Yeom et al. 2021), for any composite. The
    route: the composite is wrapped so that the rule of each scored layer records the relevance it receives,
    which is the relevance at the layer's output (batch norms folded into the layer by
    :class:`~relprop.canonizers.MergeBatchNorm` pass theirs to it unchanged), and then redistributes it as
    before; one explanation of the references gives every layer's relevance, nothing is computed twice.
``weight-l1``, ``weight-l2``
    The L1 or L2 norm of the unit's weights (its filter or weight row); no samples needed.
``gradient``
    :math:`\\sum |\\partial y_t / \\partial a|` of the target logit with respect to the layer's output
    :math:`a`.
``taylor``
    :math:`\\sum |a \\, \\partial y_t / \\partial a|` (first-order Taylor estimate of the change of the
    logit when the unit is zeroed, Molchanov et al. 2017).

The target :math:`t` of each sample is its label or, without labels, the predicted class; LRP starts from the
same logit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from relprop.checks import check_eval_mode, check_int
from relprop.composites import Composite, EpsilonPlusFlat
from relprop.graph import Graph, Node
from relprop.lrp import LRP
from relprop.prune.structure import layer_structure, prunable_layers, trace
from relprop.rules import Rule

CRITERIA = ("lrp", "weight-l1", "weight-l2", "gradient", "taylor")
"""The names of the criteria, for :func:`unit_scores`."""


def unit_scores(
    model: nn.Module,
    x: Tensor | None = None,
    target: Tensor | None = None,
    *,
    criterion: str = "lrp",
    layers: Sequence[str] | None = None,
    composite: Composite | None = None,
    batch_size: int = 64,
) -> dict[str, Tensor]:
    """The score of every unit of ``layers`` by ``criterion`` (see the module docstring), unnormalized.

    Parameters
    ----------
    model : nn.Module
        The model, in evaluation mode; not modified.
    x : Tensor or None
        The reference samples, batch first; only ``weight-l1`` and ``weight-l2`` do without.
    target : Tensor or None
        The class of each reference sample (``LongTensor`` of shape ``(N,)``); by default the predicted one.
    criterion : str, default "lrp"
        One of :data:`CRITERIA`.
    layers : Sequence[str] or None
        The layers to score; by default all that can be pruned
        (:func:`~relprop.prune.structure.prunable_layers`).
    composite : Composite or None
        The rules of ``lrp``; :class:`~relprop.composites.EpsilonPlusFlat` by default.
    batch_size : int, default 64
        References per pass.

    Returns
    -------
    dict[str, Tensor]
        Per layer, a float64 tensor of one score per unit, on the CPU.

    Raises
    ------
    ValueError
        For an unknown criterion, a layer that cannot be pruned, or no reference samples.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    if composite is not None and criterion != "lrp":
        raise ValueError(f"composite is for the lrp criterion, not {criterion!r}")
    check_int(batch_size, "batch_size")
    layers = prunable_layers(model) if layers is None else list(layers)
    if not layers:
        raise ValueError("the model has no layer that can be pruned")
    graph = trace(model)
    for name in layers:
        layer_structure(model, name, graph)
    modules = dict(model.named_modules())
    if criterion.startswith("weight"):
        order = 1 if criterion == "weight-l1" else 2
        return {
            name: modules[name].weight.detach().flatten(1).norm(p=order, dim=1).double().cpu()
            for name in layers
        }
    if x is None or not isinstance(x, Tensor) or x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"criterion {criterion!r} needs reference samples: x must be a non-empty batch")
    if target is not None and (not isinstance(target, Tensor) or target.shape != (x.shape[0],)):
        raise ValueError(f"target must be a LongTensor of shape ({x.shape[0]},), one class per reference")
    check_eval_mode(model)
    totals = {name: torch.zeros(_size(modules[name]), dtype=torch.float64) for name in layers}
    explainer = None
    if criterion == "lrp":
        recorders = {name: _adder(totals, name) for name in layers}
        explainer = LRP(model, Recording(composite or EpsilonPlusFlat(), recorders))
    for start in range(0, x.shape[0], batch_size):
        batch = x[start : start + batch_size]
        labels = None if target is None else target[start : start + batch_size]
        if explainer is not None:
            explainer(batch, labels)
        else:
            _add_gradient_scores(model, modules, batch, labels, criterion, totals)
    return totals


def _size(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def _per_unit(tensor: Tensor) -> Tensor:
    """Sum of the absolute values over every dimension but the unit's (dimension 1)."""
    return tensor.detach().abs().transpose(0, 1).flatten(1).sum(1).double().cpu()


def _add_gradient_scores(model, modules, batch, labels, criterion: str, totals: dict[str, Tensor]) -> None:
    outputs: dict[str, Tensor] = {}

    def keep_output(name):
        def hook(module, inputs, output):
            output.retain_grad()
            outputs[name] = output

        return hook

    handles = [modules[name].register_forward_hook(keep_output(name)) for name in totals]
    try:
        with torch.enable_grad():
            logits = model(batch)
            chosen = logits.argmax(1) if labels is None else labels.to(logits.device)
            logits.gather(1, chosen[:, None]).sum().backward(inputs=list(outputs.values()))
    finally:
        for handle in handles:
            handle.remove()
    for name, output in outputs.items():
        gradient = output.grad
        totals[name] += _per_unit(gradient if criterion == "gradient" else gradient * output)


def _adder(totals: dict[str, Tensor], name: str) -> Callable[[Tensor], None]:
    def add(relevance: Tensor) -> None:
        totals[name] += _per_unit(relevance)

    return add


class _Recorder(Rule):
    """A rule that passes the relevance at its operation's output (or, ``at_input``, the relevance it gives
    its first input) to ``record``, and redistributes as the rule it wraps."""

    def __init__(self, rule: Rule, record: Callable[[Tensor], None], at_input: bool) -> None:
        self.rule, self._record, self._at_input = rule, record, at_input
        for flag in ("kinds", "needs_output", "reads_inputs", "uses_output", "records_forward", "detaches"):
            setattr(self, flag, getattr(rule, flag))

    def forward(self, op, inputs):
        return self.rule.forward(op, inputs)

    def backward(self, op, inputs, output, context, relevance):
        if not self._at_input:
            self._record(relevance)
        result = self.rule.backward(op, inputs, output, context, relevance)
        if self._at_input:
            self._record(result[0])
        return result


class Recording(Composite):
    """``composite``, with the rule of each layer named in ``recorders`` wrapped so that it passes the
    relevance at the layer's output (or, ``at_input``, at its input) to the layer's recorder.

    A layer is found by its module's name: a module call of a ``torch.fx`` graph, or, in a graph captured by
    ``torch.export`` (Hugging Face models), the one weighted operation inside that module.
    """

    def __init__(
        self, composite: Composite, recorders: Mapping[str, Callable[[Tensor], None]], at_input: bool = False
    ) -> None:
        super().__init__(stabilizer=composite.stabilizer)
        self.composite, self._recorders, self._at_input = composite, dict(recorders), at_input

    def leaf_types(self) -> tuple[type, ...]:
        return self.composite.leaf_types()

    def assign(self, graph: Graph) -> dict[Node, Rule]:
        rules = self.composite.assign(graph)
        found: dict[str, list[Node]] = {name: [] for name in self._recorders}
        for node in rules:
            if node.name in found:
                found[node.name].append(node)
            elif node.fx.op == "call_function" and node.weighted and node.scope in found:
                found[node.scope].append(node)
        missing = sorted(name for name, nodes in found.items() if len(nodes) != 1)
        if missing:
            raise ValueError(f"the LRP graph has no single rule for layer(s) {', '.join(missing)}")
        for name, (node,) in found.items():
            rules[node] = _Recorder(rules[node], self._recorders[name], self._at_input)
        return rules
