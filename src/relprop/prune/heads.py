"""Attention heads as units of pruning: their scores, masks and (where the architecture allows) removal.

A head of an attention layer writes its output to its own block of columns, ``h*d:(h+1)*d``, of the input of
the layer's output projection (``out_proj`` of ``nn.MultiheadAttention``, ``output.dense`` of a Hugging Face
BERT-style attention). Its score, summed over the reference samples and all positions:

``lrp``
    :math:`\\sum |R|` of the relevance at those columns, the relevance the output projection's rule passes
    down, normalized per layer when ranked like the other units (:func:`~relprop.prune.iterate.select_units`).
``weight-l1``, ``weight-l2``
    The norm of the head's own parameters: its rows of the query, key and value projections (weights and
    biases) and its columns of the output projection's weight.
``gradient``, ``taylor``
    :math:`\\sum |\\partial y_t / \\partial a|` and :math:`\\sum |a \\, \\partial y_t / \\partial a|` at the
    head's output :math:`a` (its columns of the output projection's input).

Masking a head zeroes its columns of the output projection's weight, which is exactly the model without the
head's output; :func:`head_mask_hooks` keeps them zero while the model is fine-tuned. Removal
(:func:`remove_heads`) deletes the head's rows and columns, for BERT-style Hugging Face attention
(``self.query/key/value``, ``output.dense``); ``nn.MultiheadAttention`` can only be masked.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from relprop.checks import check_eval_mode, check_int
from relprop.composites import Composite, EpsilonPlusFlat
from relprop.graph import _multihead_attention
from relprop.lrp import LRP
from relprop.prune.scores import CRITERIA, Recording

Inputs = Tensor | Mapping[str, Tensor]


@dataclass(frozen=True)
class AttentionHeads:
    """Where the heads of one attention layer live.

    Attributes
    ----------
    name : str
        The attention module (as in ``model.named_modules()``).
    heads : int
        Its number of heads.
    head_dim : int
        The width of each head's output.
    out_projection : str
        The layer whose input columns ``h*d:(h+1)*d`` hold head ``h``'s output.
    removable : bool
        Whether :func:`remove_heads` can delete heads (BERT-style attention) or they can only be masked.
    """

    name: str
    heads: int
    head_dim: int
    out_projection: str
    removable: bool


def attention_layers(model: nn.Module) -> list[AttentionHeads]:
    """The attention layers of ``model`` whose heads can be pruned: ``nn.MultiheadAttention`` (without
    ``add_bias_kv`` and ``add_zero_attn``, which relprop does not explain) and BERT-style Hugging Face
    attention (a module with ``self.query``, ``self.key``, ``self.value`` and ``output.dense``)."""
    found = []
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, nn.MultiheadAttention) and module.bias_k is None and not module.add_zero_attn:
            found.append(
                AttentionHeads(name, module.num_heads, module.head_dim, f"{prefix}out_proj", removable=False)
            )
        elif _is_bert_style(module):
            inner = module.self
            heads = inner.query.out_features // inner.attention_head_size
            found.append(
                AttentionHeads(
                    name, heads, inner.attention_head_size, f"{prefix}output.dense", removable=True
                )
            )
    return found


def _is_bert_style(module: nn.Module) -> bool:
    inner, output = getattr(module, "self", None), getattr(module, "output", None)
    return (
        isinstance(inner, nn.Module)
        and all(isinstance(getattr(inner, p, None), nn.Linear) for p in ("query", "key", "value"))
        and isinstance(getattr(inner, "attention_head_size", None), int)
        and isinstance(getattr(output, "dense", None), nn.Linear)
    )


def _structures(model: nn.Module, layers: Sequence[str] | None) -> list[AttentionHeads]:
    """The structures of ``layers`` (all attention layers by default), checked to exist."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"the model must be a torch.nn.Module, got {type(model).__name__}")
    found = {structure.name: structure for structure in attention_layers(model)}
    if not found:
        raise ValueError(
            f"{type(model).__name__} has no attention layer whose heads can be pruned "
            "(nn.MultiheadAttention or BERT-style Hugging Face attention)"
        )
    if layers is None:
        return list(found.values())
    unknown = [name for name in layers if name not in found]
    if unknown:
        raise ValueError(f"no attention layer {unknown[0]!r}; the model's are {', '.join(found)}")
    return [found[name] for name in layers]


def _query_key_value(module: nn.Module) -> list[tuple[Tensor, Tensor | None, int]]:
    """``(weight, bias, first row)`` of the query, key and value projections; head ``h`` owns rows
    ``first + h*d`` to ``first + (h+1)*d`` of each."""
    if isinstance(module, nn.MultiheadAttention):
        size = module.embed_dim
        if module._qkv_same_embed_dim:
            return [(module.in_proj_weight, module.in_proj_bias, k * size) for k in range(3)]
        weights = (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight)
        return [(weight, module.in_proj_bias, k * size) for k, weight in enumerate(weights)]
    inner = module.self
    return [(layer.weight, layer.bias, 0) for layer in (inner.query, inner.key, inner.value)]


def head_scores(
    model: nn.Module,
    x: Inputs | None = None,
    target: Tensor | None = None,
    *,
    criterion: str = "lrp",
    layers: Sequence[str] | None = None,
    composite: Composite | None = None,
    batch_size: int = 64,
) -> dict[str, Tensor]:
    """The score of every head of the attention ``layers`` by ``criterion`` (see the module docstring),
    unnormalized; rank them with :func:`~relprop.prune.iterate.select_units`.

    Parameters
    ----------
    model : nn.Module
        The model, in evaluation mode; not modified.
    x : Tensor or Mapping[str, Tensor] or None
        The reference samples, batch first (a dict of keyword arguments for Hugging Face models); only
        ``weight-l1`` and ``weight-l2`` do without.
    target : Tensor or None
        The class of each reference sample (``LongTensor`` of shape ``(N,)``); by default the predicted one.
    criterion : str, default "lrp"
        One of :data:`~relprop.prune.scores.CRITERIA`.
    layers : Sequence[str] or None
        The attention modules to score; by default all (:func:`attention_layers`).
    composite : Composite or None
        The rules of ``lrp``; :class:`~relprop.composites.EpsilonPlusFlat` by default (use
        :class:`~relprop.composites.AttnLRP` for transformers).
    batch_size : int, default 64
        References per pass.

    Returns
    -------
    dict[str, Tensor]
        Per attention module, a float64 tensor of one score per head, on the CPU.

    Raises
    ------
    ValueError
        For an unknown criterion, a model without attention, an unknown layer, or no reference samples.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    if composite is not None and criterion != "lrp":
        raise ValueError(f"composite is for the lrp criterion, not {criterion!r}")
    check_int(batch_size, "batch_size")
    structures = _structures(model, layers)
    modules = dict(model.named_modules())
    if criterion.startswith("weight"):
        order = 1 if criterion == "weight-l1" else 2
        return {
            s.name: _weight_norms(modules[s.name], modules[s.out_projection], s, order) for s in structures
        }
    count = _count(x, criterion)
    if target is not None and (not isinstance(target, Tensor) or target.shape != (count,)):
        raise ValueError(f"target must be a LongTensor of shape ({count},), one class per reference")
    check_eval_mode(model)
    totals = {s.name: torch.zeros(s.heads, dtype=torch.float64) for s in structures}
    explainer = None
    if criterion == "lrp":
        recorders = {s.out_projection: _adder(totals, s) for s in structures}
        explainer = LRP(model, Recording(composite or EpsilonPlusFlat(), recorders, at_input=True))
    for start in range(0, count, batch_size):
        batch = _rows(x, start, start + batch_size)
        labels = None if target is None else target[start : start + batch_size]
        if explainer is not None:
            explainer(batch, labels)
        else:
            _add_gradient_scores(model, structures, batch, labels, criterion, totals)
    return totals


def _count(x: Inputs | None, criterion: str) -> int:
    """The number of reference samples in ``x``: the first dimension of the tensor or of a dict's first."""
    first = next((v for v in x.values() if isinstance(v, Tensor)), None) if isinstance(x, Mapping) else x
    if not isinstance(first, Tensor) or first.dim() == 0 or first.shape[0] == 0:
        raise ValueError(f"criterion {criterion!r} needs reference samples: x must be a non-empty batch")
    return first.shape[0]


def _rows(x: Inputs, start: int, stop: int) -> Inputs:
    if isinstance(x, Mapping):
        return {k: v[start:stop] if isinstance(v, Tensor) else v for k, v in x.items()}
    return x[start:stop]


def _per_head(relevance: Tensor, heads: int) -> Tensor:
    """Sum of the absolute values over everything but the head, of a tensor whose last dimension holds the
    heads' columns one after another."""
    return (
        relevance.detach().abs().unflatten(-1, (heads, -1)).transpose(0, -2).flatten(1).sum(1).double().cpu()
    )


def _adder(totals: dict[str, Tensor], structure: AttentionHeads):
    def add(relevance: Tensor) -> None:
        totals[structure.name] += _per_head(relevance, structure.heads)

    return add


def _weight_norms(module: nn.Module, projection: nn.Linear, structure: AttentionHeads, order: int) -> Tensor:
    d = structure.head_dim
    norms = []
    for h in range(structure.heads):
        parts = [projection.weight[:, h * d : (h + 1) * d].flatten()]
        for weight, bias, first in _query_key_value(module):
            rows = slice(first + h * d, first + (h + 1) * d)
            parts += [weight[rows].flatten()] + ([] if bias is None else [bias[rows]])
        norms.append(torch.cat(parts).detach().norm(p=order))
    return torch.stack(norms).double().cpu()


@contextmanager
def _calling_out_projections(model: nn.Module) -> Iterator[None]:
    """Within the block, every ``nn.MultiheadAttention`` computes through its parts (relprop's decomposition),
    so that its output projection is called as a module and its hooks run; PyTorch's own forward reads
    ``out_proj``'s weight without calling it."""
    patched = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    for module in patched:
        module.forward = functools.partial(_multihead_attention, module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward


def _add_gradient_scores(model, structures, batch, labels, criterion: str, totals: dict[str, Tensor]) -> None:
    modules = dict(model.named_modules())
    inputs: dict[str, Tensor] = {}

    def keep_input(name):
        def hook(module, args):
            inputs[name] = args[0]

        return hook

    handles = [modules[s.out_projection].register_forward_pre_hook(keep_input(s.name)) for s in structures]
    try:
        with torch.enable_grad(), _calling_out_projections(model):
            output = model(**batch) if isinstance(batch, Mapping) else model(batch)
            logits = getattr(output, "logits", output)
            chosen = logits.argmax(1) if labels is None else labels.to(logits.device)
            explained = logits.gather(1, chosen[:, None]).sum()
            gradients = torch.autograd.grad(explained, [inputs[s.name] for s in structures])
    finally:
        for handle in handles:
            handle.remove()
    for structure, gradient in zip(structures, gradients):
        value = gradient if criterion == "gradient" else gradient * inputs[structure.name]
        totals[structure.name] += _per_head(value, structure.heads)


def _checked(model: nn.Module, keep: Mapping[str, Tensor]) -> list[tuple[AttentionHeads, Tensor]]:
    """The structure of each attention layer in ``keep``, with its mask checked."""
    structures = {s.name: s for s in _structures(model, list(keep))}
    checked = []
    for name, mask in keep.items():
        heads = structures[name].heads
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != (heads,):
            got = f"{getattr(mask, 'dtype', type(mask).__name__)} {tuple(getattr(mask, 'shape', ()))}"
            raise ValueError(
                f"the mask of attention layer {name!r} must be a bool tensor of shape ({heads},), one entry "
                f"per head, got {got}"
            )
        if not mask.any():
            raise ValueError(f"the mask of attention layer {name!r} removes all {heads} heads")
        checked.append((structures[name], mask))
    return checked


def head_mask(heads: int, pruned: Sequence[int], name: str = "") -> Tensor:
    """The bool mask (``True``: kept) of a layer with ``heads`` heads without the heads ``pruned``.

    Raises
    ------
    ValueError
        For a head index outside ``[0, heads)``.
    """
    mask = torch.ones(heads, dtype=torch.bool)
    for head in pruned:
        if isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < heads:
            where = f" of attention layer {name!r}" if name else ""
            raise ValueError(f"head {head!r}{where} is out of range: it has heads 0 to {heads - 1}")
        mask[head] = False
    return mask


def mask_heads(model: nn.Module, keep: Mapping[str, Tensor], inplace: bool = False) -> nn.Module:
    """``model`` with the heads that ``keep`` marks ``False`` masked: their columns of the output
    projection's weight are zero, so their outputs no longer reach the rest of the model.

    Parameters
    ----------
    model : nn.Module
        The model; copied unless ``inplace``.
    keep : Mapping[str, Tensor]
        Per attention module name, a bool tensor with one entry per head, ``True`` for the heads kept
        (:func:`head_mask` builds one from head indices).
    inplace : bool, default False
        Modify ``model`` itself.

    Raises
    ------
    ValueError
        For a module that is no attention layer (:func:`attention_layers`), or a mask of the wrong type or
        shape, or that keeps no head.
    """
    checked = _checked(model, keep)
    model = model if inplace else copy.deepcopy(model)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for structure, mask in checked:
            weight = modules[structure.out_projection].weight
            weight.mul_(mask.to(weight.device).repeat_interleave(structure.head_dim).to(weight.dtype))
    return model


class _ColumnMask(nn.Module):
    """A parametrization of a weight that multiplies its columns by ``columns`` (0 or 1 each)."""

    def __init__(self, columns: Tensor) -> None:
        super().__init__()
        self.register_buffer("columns", columns)

    def forward(self, weight: Tensor) -> Tensor:
        return weight * self.columns


@contextmanager
def head_mask_hooks(model: nn.Module, keep: Mapping[str, Tensor]) -> Iterator[nn.Module]:
    """Within the block, the output-projection columns of the heads that ``keep`` marks ``False`` stay zero
    whatever an optimizer does; on leaving it the masks are made permanent and the weights are plain again.

    The weight is parametrized (``torch.nn.utils.parametrize``): ``nn.MultiheadAttention`` reads its
    ``out_proj.weight`` without calling ``out_proj``, so hooks on the projection (as ``torch.nn.utils.prune``
    sets) would never run, but every read of a parametrized weight is masked, and the gradient of the masked
    columns is zero.

    Raises
    ------
    ValueError
        As :func:`mask_heads`.
    """
    checked = _checked(model, keep)
    modules = dict(model.named_modules())
    parametrized = []
    try:
        for structure, mask in checked:
            projection = modules[structure.out_projection]
            weight = projection.weight
            columns = mask.to(weight.device).repeat_interleave(structure.head_dim).to(weight.dtype)
            with torch.no_grad():
                weight.mul_(columns)
            parametrize.register_parametrization(projection, "weight", _ColumnMask(columns))
            parametrized.append(projection)
        yield model
    finally:
        for projection in parametrized:
            parametrize.remove_parametrizations(projection, "weight", leave_parametrized=True)


def check_removable(model: nn.Module, layers: Sequence[str] | None = None) -> None:
    """Check that :func:`remove_heads` can remove heads of the attention ``layers`` (all by default).

    Raises
    ------
    ValueError
        For an ``nn.MultiheadAttention``, whose heads can only be masked, or as :func:`head_scores` for a
        model without attention or an unknown layer.
    """
    _check_removable(_structures(model, layers))


def _check_removable(structures: Iterable[AttentionHeads]) -> None:
    for structure in structures:
        if not structure.removable:
            raise ValueError(
                f"the heads of attention layer {structure.name!r} (nn.MultiheadAttention) can only be masked "
                "(mask_heads), not removed"
            )


def remove_heads(model: nn.Module, keep: Mapping[str, Tensor], inplace: bool = False) -> nn.Module:
    """``model`` without the heads that ``keep`` marks ``False``: smaller query, key, value and output
    projections, the same function as :func:`mask_heads` gives. BERT-style Hugging Face attention only.

    Parameters and errors as :func:`mask_heads`; a ``ValueError`` also for an ``nn.MultiheadAttention``,
    whose heads can only be masked (PyTorch's fused forward needs ``embed_dim`` columns).
    """
    checked = _checked(model, keep)
    _check_removable(structure for structure, _ in checked)
    model = model if inplace else copy.deepcopy(model)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for structure, mask in checked:
            inner, columns = modules[structure.name].self, mask.repeat_interleave(structure.head_dim)
            for layer in (inner.query, inner.key, inner.value):
                columns = columns.to(layer.weight.device)
                layer.weight = nn.Parameter(layer.weight[columns].clone(), layer.weight.requires_grad)
                if layer.bias is not None:
                    layer.bias = nn.Parameter(layer.bias[columns].clone(), layer.bias.requires_grad)
                layer.out_features = int(columns.sum())
            dense = modules[structure.out_projection]
            dense.weight = nn.Parameter(dense.weight[:, columns].clone(), dense.weight.requires_grad)
            dense.in_features = int(columns.sum())
            inner.num_attention_heads = int(mask.sum())
            inner.all_head_size = int(columns.sum())
    return model
