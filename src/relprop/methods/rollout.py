"""Attention rollout: how much each input token reaches a chosen token through the layers' attention."""

from __future__ import annotations

import math

import torch
from torch import Tensor, fx, nn

from relprop import capture
from relprop.checks import check_int
from relprop.graph import Graph, Kind, Node
from relprop.methods._common import Method
from relprop.targets import Target, target_weights

HEAD_FUSIONS = ("mean", "max", "min")


class AttentionRollout(Method):
    r"""Attention rollout (Abnar and Zuidema 2020).

    With :math:`A_l` the attention matrix of layer :math:`l` (``(T, T)``, rows the attending tokens), fused
    over its heads :math:`h` (the mean of the paper, or the maximum or minimum),

    .. math::

        \bar A_l = \operatorname{fuse}_h A_l^{(h)}, \qquad
        A'_l = \frac{0.5\,\bar A_l + 0.5\,I}{\big((0.5\,\bar A_l + 0.5\,I)\,\mathbf 1\big)}, \qquad
        \tilde A = A'_L A'_{L-1} \cdots A'_1,

    where the division normalizes each row to sum to one (the residual connection counts as much as the
    attention) and the attribution of input token :math:`j` is :math:`\tilde A_{t j}`, the row of the
    explained token :math:`t` (``token``, the class token by default).

    The method ignores the ``target``: rollout depends on the input only, not on the class explained. A
    target that is given is still checked as every method checks it, so a class out of range raises; the
    default ``None`` is accepted whatever the model's output (a language model's ``(B, T, V)`` too).

    The attention matrices are read from relprop's graph of the model (:class:`relprop.graph.Graph`, traced
    with ``torch.fx``, or captured with ``torch.export`` where fx cannot trace the model): every softmax over
    the last dimension of a ``(B, H, T, T)`` tensor (or ``(B, T, T)``, one head), and the weights
    :math:`\operatorname{softmax}(q k^\top s + \text{mask})` of every ``F.scaled_dot_product_attention``
    (:meth:`relprop.operations.Attention.parts`), in the order the model computes them. torchvision's
    ``nn.MultiheadAttention`` is traced as its parts, so its softmax is found. Every layer must attend over
    the same ``T`` tokens; attention over windows (Swin) or between sequences is not rolled out.

    How the token scores map to the input:

    * images ``(B, C, H, W)``: the tokens after the first ``prefix_tokens`` (the class token) are square
      patches in row-major order, ``n = T - prefix_tokens`` of them, of side :math:`p = \sqrt{HW/n}`, on a
      grid of ``H/p`` by ``W/p`` (the square of :math:`\sqrt n` for square images). Each pixel gets its
      patch's score, the same in every channel; the prefix tokens' own scores are dropped;
    * sequences ``(B, T, D)`` or ``(B, T)``: token :math:`j` gets :math:`\tilde A_{t j}` (over all ``T``
      tokens, prefix tokens included), the same for each of its ``D`` features.

    Parameters
    ----------
    model:
        The model, in evaluation mode.
    head_fusion:
        How the heads of a layer are combined: ``"mean"`` (the paper's), ``"max"`` or ``"min"``.
    token:
        The index of the explained token, whose row of the rollout is the attribution (0: the class token of a
        ViT).
    prefix_tokens:
        For images: how many tokens come before the patch tokens (1 for a class token, more with
        distillation or register tokens).
    """

    def __init__(
        self, model: nn.Module, head_fusion: str = "mean", token: int = 0, prefix_tokens: int = 1
    ) -> None:
        super().__init__(model)
        if head_fusion not in HEAD_FUSIONS:
            raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
        if isinstance(token, bool) or not isinstance(token, int):
            raise TypeError(f"token must be an int, got {type(token).__name__}")
        check_int(prefix_tokens, "prefix_tokens", minimum=0)
        self.head_fusion = head_fusion
        self.token = token
        self.prefix_tokens = prefix_tokens
        self._traced: Graph | None = None
        self._exported: dict[tuple, Graph] = {}
        self._trace_error: Exception | None = None
        try:
            graph = Graph(model)
        except TypeError as error:  # torch.fx cannot trace it: torch.export captures it at the first call
            self._trace_error = error
            return
        if len(graph.inputs) == 1 and not graph.opaque():
            self._traced = graph

    def attention(self, x: Tensor, target: Target = None) -> list[Tensor]:
        """The attention matrices of the model on ``x``, one ``(B, H, T, T)`` tensor per layer, in the order
        the model computes them. A ``target`` other than ``None`` is only checked."""
        graph = self._graph(x)
        maps, rejected, output = _attention_maps(graph, x)
        if target is not None:
            target_weights(output, target)  # the target does not matter, but a wrong one is refused
        name = type(self.model).__name__
        if not maps:
            why = f" (rejected: {'; '.join(rejected[:3])})" if rejected else ""
            raise ValueError(
                f"AttentionRollout found no attention in {name}: no softmax over the last dimension of a "
                f"(B, H, T, T) or (B, T, T) tensor and no F.scaled_dot_product_attention{why}"
            )
        tokens = {m.shape[-1] for m in maps}
        if len(tokens) > 1:
            raise ValueError(
                f"AttentionRollout needs every layer of {name} to attend over the same tokens, found "
                f"attention over {sorted(tokens)} tokens"
            )
        return maps

    def _attribute(self, x: Tensor, target: Target) -> Tensor:
        maps = self.attention(x, target)
        tokens = maps[0].shape[-1]
        if not -tokens <= self.token < tokens:
            raise ValueError(f"token {self.token} is out of range: the model attends over {tokens} tokens")
        scores = rollout(maps, self.head_fusion)[:, self.token]  # (B, T)
        return _to_input(scores, x, self.prefix_tokens).to(x.dtype)

    def _graph(self, x: Tensor) -> Graph:
        if self._traced is not None:
            return self._traced
        key = (tuple(x.shape), x.dtype, x.device)
        if key not in self._exported:
            try:
                self._exported[key] = Graph.exported(self.model, (x,), {})
            except TypeError as error:
                if self._trace_error is not None:
                    raise TypeError(f"{error} ({self._trace_error})") from None
                raise
        return self._exported[key]


def rollout(attention: list[Tensor], head_fusion: str = "mean") -> Tensor:
    r"""The rollout :math:`A'_L \cdots A'_1` of attention matrices ``(B, H, T, T)``, first layer first.

    Each layer's heads are fused (``"mean"``, ``"max"`` or ``"min"``), the identity added with equal weight,
    :math:`0.5 \bar A_l + 0.5 I`, and the rows renormalized to sum to one (see :class:`AttentionRollout`).

    Returns
    -------
    Tensor
        ``(B, T, T)``; row :math:`t` says how much each token reaches token :math:`t` at the last layer.
    """
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    result = None
    for weights in attention:
        if head_fusion == "mean":
            fused = weights.mean(dim=1)
        else:
            fused = weights.amax(dim=1) if head_fusion == "max" else weights.amin(dim=1)
        eye = torch.eye(fused.shape[-1], dtype=fused.dtype, device=fused.device)
        layer = 0.5 * fused + 0.5 * eye
        layer = layer / layer.sum(dim=-1, keepdim=True)
        result = layer if result is None else layer @ result
    if result is None:
        raise ValueError("rollout needs at least one attention matrix")
    return result


def _attention_maps(graph: Graph, x: Tensor) -> tuple[list[Tensor], list[str], Tensor]:
    """Run the graph on ``x`` and collect the attention matrices; also what looked like attention but was
    not taken, and the explained output."""
    feed = dict(zip(graph.inputs, capture.flatten_inputs((x,), {})))
    values: dict[fx.Node, object] = {}
    waiting = {node.fx: len(node.fx.users) for node in graph}
    maps: list[Tensor] = []
    rejected: list[str] = []
    with torch.no_grad():
        for node in graph:
            fx_node = node.fx
            if node.kind == Kind.INPUT:
                value = feed[fx_node]
            elif node.kind == Kind.CONSTANT:
                value = graph.constant(fx_node)
            elif node.kind == Kind.OUTPUT:
                value = None
            else:
                args, kwargs = fx.node.map_arg((fx_node.args, fx_node.kwargs), values.__getitem__)
                value = node.run(args, kwargs)
            values[fx_node] = value
            if node.kind in (Kind.SOFTMAX, Kind.ATTENTION):
                if node.kind == Kind.SOFTMAX:
                    weights, dim = value, _softmax_dim(node)
                else:
                    op = node.operation(values, node.operands(values, graph), graph)
                    weights, dim = op.scores(op.query, op.expand_groups(op.key))[2], -1
                found, reason = _self_attention(node, weights, x.shape[0], dim)
                if found is not None:
                    maps.append(found)
                elif reason:
                    rejected.append(reason)
            for used in fx_node.all_input_nodes:
                waiting[used] -= 1
                if waiting[used] == 0 and used is not graph.output:
                    values[used] = None
    output = values[graph.output]
    if not isinstance(output, Tensor):
        raise TypeError(f"the model's output is a {type(output).__name__}, not a tensor")
    return maps, rejected, output


def _self_attention(node: Node, value: object, batch: int, dim: int | None) -> tuple[Tensor | None, str]:
    """The weights ``(B, H, T, T)`` if ``value``, a softmax over dimension ``dim`` (or attention weights),
    is a self-attention (``(B, T, T)``: one head); else ``None`` and why not (empty for what is plainly no
    attention, such as a classifier's softmax over ``(B, K)``)."""
    if not isinstance(value, Tensor) or value.dim() not in (3, 4):
        return None, ""
    shape = tuple(value.shape)
    if dim is None or dim % value.dim() != value.dim() - 1:
        return None, f"{node.describe()}: softmax over dimension {dim} of {shape}, not the last"
    if value.shape[0] != batch or value.shape[-1] != value.shape[-2]:
        return None, f"{node.describe()}: shape {shape}, not (B={batch}, H, T, T)"
    return (value if value.dim() == 4 else value[:, None]), ""


def _softmax_dim(node: Node) -> int | None:
    """The dimension a softmax node normalizes: a module's ``dim``, else the argument after the input."""
    if node.module is not None:
        return getattr(node.module, "dim", None)
    if "dim" in node.fx.kwargs:
        return node.fx.kwargs["dim"]
    return node.fx.args[1] if len(node.fx.args) > 1 else None


def _to_input(scores: Tensor, x: Tensor, prefix_tokens: int) -> Tensor:
    """Token scores ``(B, T)`` laid out like ``x``: patches of an image, or tokens of a sequence."""
    batch, tokens = scores.shape
    if x.dim() in (2, 3) and x.shape[1] == tokens:
        return scores if x.dim() == 2 else scores[:, :, None].expand_as(x).contiguous()
    if x.dim() != 4:
        raise ValueError(
            f"AttentionRollout maps {tokens} tokens to images (B, C, H, W) or sequences (B, {tokens}, D), "
            f"got an input of shape {tuple(x.shape)}"
        )
    height, width = x.shape[2:]
    patches = tokens - prefix_tokens
    side = math.isqrt(height * width // patches) if patches > 0 else 0
    if side == 0 or side * side * patches != height * width or height % side or width % side:
        raise ValueError(
            f"AttentionRollout cannot lay {tokens} tokens ({prefix_tokens} prefix tokens, {patches} patches) "
            f"out as square patches of a {height}x{width} image: set prefix_tokens to the number of tokens "
            "before the patches"
        )
    grid = scores[:, prefix_tokens:].reshape(batch, height // side, width // side)
    pixels = grid.repeat_interleave(side, dim=1).repeat_interleave(side, dim=2)
    return pixels[:, None].expand_as(x).contiguous()
