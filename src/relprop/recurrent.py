r"""LRP for recurrent layers and embeddings: ``nn.LSTM``, ``nn.GRU``, ``nn.Embedding``, ``nn.EmbeddingBag``.

:class:`Recurrent` follows Arras et al. (2017, 2019) ("LSTM-LRP"): multiplicative gates receive no relevance
(*signal-take-all*), activations of the signal (:math:`\tanh`) pass it unchanged, and every sum (a cell
update, a pre-activation) splits it with the :math:`\epsilon` rule. For an LSTM, per time step,

.. math::
    c_t = f_t \odot c_{t-1} + i_t \odot g_t, \quad h_t = o_t \odot \tanh(c_t), \quad
    g_t = \tanh(W_{ig} x_t + W_{hg} h_{t-1} + b_g),

so :math:`R(h_t)` goes entirely to :math:`c_t` (the output gate takes none), :math:`R(c_t)` is split between
:math:`f_t \odot c_{t-1}` (to :math:`c_{t-1}`) and :math:`i_t \odot g_t` (to :math:`g_t`) in proportion to the
two terms, and :math:`R(g_t)` is split over :math:`x_t` and :math:`h_{t-1}` by the :math:`\epsilon` rule on
the pre-activation of :math:`g_t`. The gates' pre-activations are never traversed.

For a GRU (gate order r, z, n as in PyTorch),

.. math::
    n_t = \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})), \quad
    h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1},

:math:`R(h_t)` is split between :math:`(1 - z_t) \odot n_t` (to :math:`n_t`) and :math:`z_t \odot h_{t-1}`
(to :math:`h_{t-1}`); the reset gate :math:`r_t` is a gate too, so the candidate's pre-activation is read as
the affine map :math:`W_{in} x_t + (r_t \odot W_{hn}) h_{t-1} + (b_{in} + r_t \odot b_{hn})` of
:math:`x_t` and :math:`h_{t-1}` with :math:`r_t` a constant weighting, and split by the :math:`\epsilon` rule.
(This equals splitting first between :math:`W_{in} x_t + b_{in}` and :math:`r_t \odot (W_{hn} h + b_{hn})`,
giving all of the product to its signal :math:`W_{hn} h + b_{hn}` and splitting that, up to where the
stabilizer is added.)

Several layers, both directions, ``batch_first`` and initial states are supported; relevance of the
initial states goes to them when they depend on the model's input. An initial state that is exactly zero
(or omitted) is not an input: it contributes nothing and receives nothing.

Stabilized denominators are :math:`z + \epsilon \operatorname{sgn}_+(z)`. Biases and stabilizers absorb
their share of relevance (Arras's ``bias_factor=0``), unless ``redistribute=True``, which spreads the share
of each neuron evenly over the inputs connected to it (as relprop's other rules do) and so conserves
relevance exactly. Arras's ``bias_factor=1`` also conserves exactly; it differs only at the cell update,
where it spreads the stabilizer share over all :math:`2d` cells instead of the two terms of each cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from relprop.checks import check_number
from relprop.graph import Kind, UnsupportedOperationError
from relprop.operations import Call
from relprop.rules import Rule, divide, stabilize


class _ModuleRule(Rule):
    """Rules for a whole torch.nn module (a graph leaf): parameters shared, and the call's arguments kept."""

    kinds = frozenset({Kind.CUSTOM})

    def __init__(self, epsilon: float = 1e-3, redistribute: bool = False) -> None:
        self.epsilon = check_number(epsilon, "epsilon")
        self.redistribute = redistribute

    def forward(self, op: Call, inputs: Sequence[Tensor]) -> tuple[Any, Any]:
        return _call_recording_arguments(op, inputs)


class Recurrent(_ModuleRule):
    r"""LSTM-LRP (Arras et al. 2017) for ``nn.LSTM`` and ``nn.GRU``; see the module documentation.

    Parameters
    ----------
    epsilon:
        The stabilizer :math:`\epsilon` of every split; ``1e-3`` as in Arras et al.
    redistribute:
        Spread the bias and stabilizer share of each neuron evenly over its inputs, so that relevance is
        conserved exactly (for checking).

    The relevance of the layer's input is per time step and feature. The forward pass is recomputed step by
    step (in the input's dtype) when relevance is propagated. Recurrent layers with projections
    (``proj_size > 0``), packed sequences, unbatched inputs, ``nn.RNN`` and dropout in training mode are
    not supported.

    Every composite maps ``nn.LSTM`` and ``nn.GRU`` to ``Recurrent()`` by default. Note that composites
    with a rule for "the first layer" (such as the default :class:`~relprop.composites.EpsilonPlusFlat`)
    give it to the first dense layer, which in a recurrent model is often the read-out; for the setting of
    Arras et al. use :class:`~relprop.composites.Uniform` ``(rules.Epsilon(1e-3))``.

    Examples
    --------
    >>> explainer = LRP(model, composites.Uniform(rules.Epsilon(1e-3)))
    >>> relevance = explainer(tokens)  # (B, T) for token ids into an nn.Embedding: one value per token
    >>> exact = LRP(model, composites.Composite(layer_map=[
    ...     (types.Dense, rules.Epsilon(redistribute=True)), ((nn.LSTM, nn.GRU), Recurrent(redistribute=True))
    ... ]))  # conserves relevance exactly, for checking
    """

    def backward(self, op, inputs, output, context, relevance):
        # checked here, not in forward, so that the engine's error names the layer
        module = _supported(op)
        given, states = _sequence_and_states(module, context)
        lstm = isinstance(module, nn.LSTM)
        relevance_out, relevance_final = _unpack(relevance, lstm)
        x = given.transpose(0, 1) if module.batch_first else given
        if module.batch_first and relevance_out is not None:
            relevance_out = relevance_out.transpose(0, 1)
        # an exactly-zero initial state is no input: the forward pass is the same, and nothing goes to it
        present = [s if bool((s != 0).any()) else None for s in states]
        present += [None] * ((2 if lstm else 1) - len(present))
        cell = _LSTM if lstm else _GRU
        records = _run_layers(module, cell, x, present)
        relevance_sequence, relevance_initial = self._relevance_of_layers(
            module, cell, records, present, relevance_out, relevance_final
        )
        if module.batch_first:
            relevance_sequence = relevance_sequence.transpose(0, 1)
        # the operands are the input and the states that depend on the model's input, in call order; one
        # tensor passed twice (h0 as c0) is two operands
        pairs = [(given, relevance_sequence), *zip(states, relevance_initial)]
        result = []
        for value in inputs:
            k = next(k for k, (argument, _) in enumerate(pairs) if argument is value)
            result.append(pairs.pop(k)[1])
        return result

    def _relevance_of_layers(self, module, cell, records, present, relevance_out, relevance_final):
        """From the top layer down: the relevance of the input sequence and of each initial state."""
        directions, hidden = len(records[0]), module.hidden_size
        top = records[-1]
        like = torch.cat([run.hidden for run in top], dim=-1)
        relevance_sequence = torch.zeros_like(like) if relevance_out is None else relevance_out.to(like)
        relevance_initial = [torch.zeros_like(s) if s is not None else None for s in present]
        for layer in reversed(range(len(records))):
            relevance_input = None
            for direction, run in enumerate(records[layer]):
                k = layer * directions + direction
                final = [None if r is None else r[k] for r in relevance_final]
                own = relevance_sequence[..., direction * hidden : (direction + 1) * hidden]
                r_input, r_initial = cell.relevance(run, own, final, self.epsilon, self.redistribute)
                relevance_input = r_input if relevance_input is None else relevance_input + r_input
                for total, share in zip(relevance_initial, r_initial):
                    if total is not None:
                        total[k] = share
            relevance_sequence = relevance_input
        return relevance_sequence, relevance_initial


def _sequence_and_states(module: nn.RNNBase, context) -> tuple[Tensor, tuple[Tensor, ...]]:
    """The input sequence and the initial states of the recorded call, refused unless batched tensors."""
    args, kwargs = context
    given = args[0] if args else kwargs.get("input")
    hx = args[1] if len(args) > 1 else kwargs.get("hx")
    if not isinstance(given, Tensor):
        raise UnsupportedOperationError(
            f"{type(module).__name__} of a {type(given).__name__} (packed sequences)"
        )
    if given.dim() != 3:
        raise UnsupportedOperationError(
            f"{type(module).__name__} of an unbatched input of shape {tuple(given.shape)}"
        )
    return given, (hx,) if isinstance(hx, Tensor) else tuple(hx) if hx is not None else ()


def _run_layers(module: nn.RNNBase, cell, x: Tensor, present: list) -> list[list[_Run]]:
    """The forward pass, layer by layer and direction by direction, with what the relevance needs."""
    directions = 2 if module.bidirectional else 1
    records, layer_input = [], x
    for layer in range(module.num_layers):
        runs = []
        for direction in range(directions):
            k = layer * directions + direction
            initial = [None if s is None else s[k] for s in present]
            runs.append(cell.run(module, layer, direction, layer_input, initial))
        records.append(runs)
        layer_input = torch.cat([run.hidden for run in runs], dim=-1)
    return records


class Embedding(_ModuleRule):
    r"""``nn.Embedding`` and ``nn.EmbeddingBag``: the relevance of each token.

    For ``nn.Embedding`` the relevance of a token is the sum of the relevance of its embedding vector,
    :math:`R_t = \sum_e R_{t,e}`, exactly conserving. For ``nn.EmbeddingBag`` (2-D input, no offsets), with
    mode ``'sum'`` or ``'mean'`` the output :math:`y_e = \sum_t a_t E_{x_t,e}` (:math:`a_t` the
    per-sample weight, or :math:`1/L` for the mean; padding tokens have :math:`a_t = 0`) is split with the
    :math:`\epsilon` rule,
    :math:`R_t = \sum_e a_t E_{x_t,e} R_e / (y_e + \epsilon \operatorname{sgn}_+(y_e))`;
    with mode ``'max'`` each dimension's relevance goes to the tokens that attain the maximum (split evenly
    on ties). The relevance of a token input is a floating-point tensor shaped like the tokens.

    Parameters
    ----------
    epsilon:
        The stabilizer of ``EmbeddingBag``'s sums.
    redistribute:
        Spread the stabilizer share of each output evenly over the bag's (non-padding) tokens.
    """

    def backward(self, op, inputs, output, context, relevance):
        module = op.module
        if module is None:  # F.embedding or ATen's embedding: the ids are the only input-dependent operand
            return [None if x.is_floating_point() else relevance.sum(dim=-1) for x in inputs]
        if not isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            raise UnsupportedOperationError(
                f"Embedding explains nn.Embedding and nn.EmbeddingBag, not {type(module).__name__}"
            )
        args, kwargs = context
        tokens = args[0] if args else kwargs["input"]
        if not any(v is tokens for v in inputs):
            return [None] * len(inputs)
        if isinstance(module, nn.Embedding):
            share = relevance.sum(dim=-1)
        else:
            share = self._bag(module, tokens, args, kwargs, relevance)
        return [share if v is tokens else None for v in inputs]

    def _bag(self, module: nn.EmbeddingBag, tokens, args, kwargs, relevance) -> Tensor:
        names = ("input", "offsets", "per_sample_weights")
        bound = dict(zip(names, args)) | kwargs
        if tokens.dim() != 2 or bound.get("offsets") is not None:
            raise UnsupportedOperationError("EmbeddingBag is explained for 2-D token inputs without offsets")
        vectors = module.weight.detach()[tokens].to(relevance)  # (B, L, E)
        weights = torch.ones(tokens.shape, dtype=relevance.dtype, device=relevance.device)
        if bound.get("per_sample_weights") is not None:
            weights = bound["per_sample_weights"].to(relevance)
        if module.padding_idx is not None:
            weights = weights * (tokens != module.padding_idx)
        if module.mode == "max":
            vectors = vectors.masked_fill(weights.eq(0).unsqueeze(-1), -torch.inf)  # padding: not in the bag
            hit = (vectors == vectors.amax(dim=1, keepdim=True)).to(relevance)
            return (hit * divide(relevance, hit.sum(dim=1)).unsqueeze(1)).sum(dim=-1)
        if module.mode == "mean":
            weights = weights / weights.ne(0).sum(dim=1, keepdim=True).clamp(min=1)
        contributions = weights.unsqueeze(-1) * vectors
        share, spread = _split_sum(contributions, relevance.unsqueeze(1), self.epsilon, dim=1)
        share = share.sum(dim=-1)
        if self.redistribute:
            connected = weights.ne(0)
            count = connected.sum(dim=1, keepdim=True).clamp(min=1)
            share = share + connected * spread.sum(dim=-1) / count
        return share


# -------------------------------------------------------------------------------------- cells, step by step
@dataclass
class _Run:
    """One direction of one layer, time-major: what the backward pass reads."""

    inputs: Tensor  # (T, B, in)
    hidden: Tensor  # (T, B, H), in time order
    steps: list[dict]  # per time step, in processing order
    w_x: Tensor  # the weights of the signal's pre-activation (g for the LSTM, n for the GRU) on x_t
    w_h: Tensor  # and on h_{t-1}


class _LSTM:
    """The LSTM equations (gate order i, f, g, o as in ``nn.LSTM``)."""

    @staticmethod
    def run(module: nn.LSTM, layer: int, direction: int, x: Tensor, initial: list) -> _Run:
        w_ih, w_hh, bias = _parameters(module, layer, direction, x)
        hidden_size = module.hidden_size
        h, c = initial
        w_ig, w_hg, b_g = (w[2 * hidden_size : 3 * hidden_size] for w in (w_ih, w_hh, bias))
        steps, outputs = [], [None] * x.shape[0]
        for t in _order(x.shape[0], direction):
            z = x[t] @ w_ih.T + bias
            if h is not None:
                z = z + h @ w_hh.T
            i, f, pre, o = z.chunk(4, dim=-1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(pre), torch.sigmoid(o)
            terms = [i * g] if c is None else [i * g, f * c]
            c_new = terms[0] if c is None else terms[0] + terms[1]
            steps.append({"t": t, "h": h, "terms": terms, "pre": pre, "b": b_g})
            h, c = o * torch.tanh(c_new), c_new
            outputs[t] = h
        return _Run(x, torch.stack(outputs), steps, w_ig, w_hg)

    @staticmethod
    def relevance(run: _Run, relevance_h: Tensor, final: list, epsilon: float, redistribute: bool):
        r_x = torch.zeros_like(run.inputs)
        r_h = _zeros_or(final[0], relevance_h[0])
        r_c = _zeros_or(final[1], relevance_h[0])
        for step in reversed(run.steps):
            t = step["t"]
            r_c = r_c + r_h + relevance_h[t]  # h_t = o_t tanh(c_t): all of it to c_t
            split = _split_terms(step["terms"], r_c, epsilon, redistribute)  # i g, then f c_{t-1}
            parts = [(run.inputs[t], run.w_x, None)]
            if step["h"] is not None:
                parts.append((step["h"], run.w_h, None))
            shares = _dense(
                parts, step["pre"], step["b"], split[0], epsilon, redistribute
            )  # gate i takes none
            r_x[t] = shares[0]
            r_h = shares[1] if len(shares) > 1 else torch.zeros_like(r_h)
            r_c = split[1] if len(split) > 1 else torch.zeros_like(r_c)
        return r_x, [r_h, r_c]


class _GRU:
    """The GRU equations (gate order r, z, n as in ``nn.GRU``)."""

    @staticmethod
    def run(module: nn.GRU, layer: int, direction: int, x: Tensor, initial: list) -> _Run:
        w_ih, w_hh, b_ih, b_hh = _parameters(module, layer, direction, x, merged=False)
        hidden_size = module.hidden_size
        (h,) = initial
        w_in, w_hn = w_ih[2 * hidden_size :], w_hh[2 * hidden_size :]
        b_in, b_hn = b_ih[2 * hidden_size :], b_hh[2 * hidden_size :]
        steps, outputs = [], [None] * x.shape[0]
        for t in _order(x.shape[0], direction):
            gi = x[t] @ w_ih.T + b_ih
            gh = b_hh if h is None else h @ w_hh.T + b_hh
            gi_r, gi_z, gi_n = gi.chunk(3, dim=-1)
            gh_r, gh_z, gh_n = gh.expand_as(gi).chunk(3, dim=-1)
            r, z = torch.sigmoid(gi_r + gh_r), torch.sigmoid(gi_z + gh_z)
            pre = gi_n + r * gh_n
            n = torch.tanh(pre)
            terms = [(1 - z) * n] if h is None else [(1 - z) * n, z * h]
            steps.append({"t": t, "h": h, "terms": terms, "pre": pre, "r": r, "b": b_in + r * b_hn})
            h = terms[0] if len(terms) == 1 else terms[0] + terms[1]
            outputs[t] = h
        return _Run(x, torch.stack(outputs), steps, w_in, w_hn)

    @staticmethod
    def relevance(run: _Run, relevance_h: Tensor, final: list, epsilon: float, redistribute: bool):
        r_x = torch.zeros_like(run.inputs)
        r_h = _zeros_or(final[0], relevance_h[0])
        for step in reversed(run.steps):
            t = step["t"]
            r_h = r_h + relevance_h[t]
            split = _split_terms(step["terms"], r_h, epsilon, redistribute)  # (1 - z) n, then z h_{t-1}
            parts = [(run.inputs[t], run.w_x, None)]
            if step["h"] is not None:
                parts.append((step["h"], run.w_h, step["r"]))  # the reset gate weights, takes none
            shares = _dense(parts, step["pre"], step["b"], split[0], epsilon, redistribute)
            r_x[t] = shares[0]
            r_h = shares[1] + split[1] if len(shares) > 1 else torch.zeros_like(r_h)
        return r_x, [r_h]


# ----------------------------------------------------------------------------------------------- helpers
def _supported(op: Call) -> nn.Module:
    module = getattr(op, "module", None)
    if not isinstance(module, (nn.LSTM, nn.GRU)):
        raise UnsupportedOperationError(f"Recurrent explains nn.LSTM and nn.GRU, not {type(module).__name__}")
    if getattr(module, "proj_size", 0) > 0:
        raise UnsupportedOperationError("LSTM with projections (proj_size > 0) has no rule")
    if module.training and module.dropout > 0:
        raise UnsupportedOperationError(
            f"{type(module).__name__} with dropout in training mode (call model.eval())"
        )
    return module


def _call_recording_arguments(op: Call, inputs: Sequence[Tensor]) -> tuple[Any, tuple[tuple, dict]]:
    """Run the module call and record the arguments it received (positional and keyword)."""
    if getattr(op, "module", None) is None:  # not a module call: backward refuses it, naming the node
        return op.forward(inputs), ((), {})
    recorded: list[tuple[tuple, dict]] = []

    def record(module, args, kwargs):
        recorded.append((args, kwargs))

    handle = op.module.register_forward_pre_hook(record, with_kwargs=True)
    try:
        output = op.forward(inputs)
    finally:
        handle.remove()
    return output, recorded[-1]


def _parameters(module: nn.RNNBase, layer: int, direction: int, like: Tensor, merged: bool = True):
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    w_ih = getattr(module, "weight_ih" + suffix).detach().to(like)
    w_hh = getattr(module, "weight_hh" + suffix).detach().to(like)
    if module.bias:
        b_ih = getattr(module, "bias_ih" + suffix).detach().to(like)
        b_hh = getattr(module, "bias_hh" + suffix).detach().to(like)
    else:
        b_ih = b_hh = torch.zeros(w_ih.shape[0], dtype=like.dtype, device=like.device)
    return (w_ih, w_hh, b_ih + b_hh) if merged else (w_ih, w_hh, b_ih, b_hh)


def _order(steps: int, direction: int) -> range:
    return range(steps - 1, -1, -1) if direction else range(steps)


def _zeros_or(value: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if value is None else value.to(like)


def _split_sum(terms: Tensor, relevance: Tensor, epsilon: float, dim: int) -> tuple[Tensor, Tensor]:
    r"""The :math:`\epsilon` rule on a sum of ``terms`` along ``dim`` (identity weights, no bias): the share
    of each term and the relevance the stabilizer took, per output."""
    total = terms.sum(dim=dim, keepdim=True)
    denominator = stabilize(total, epsilon)
    scaled = divide(relevance, denominator)
    return terms * scaled, scaled * (denominator - total)


def _split_terms(terms: list[Tensor], relevance: Tensor, epsilon: float, redistribute: bool) -> list[Tensor]:
    """The :math:`\\epsilon` rule on an element-wise sum of ``terms``; with ``redistribute`` the stabilizer
    share is spread evenly over the terms."""
    shares, leak = _split_sum(torch.stack(terms), relevance, epsilon, dim=0)
    if redistribute:
        shares = shares + leak / len(terms)
    return list(shares)


def _dense(
    parts: list[tuple[Tensor, Tensor, Tensor | None]],
    pre: Tensor,
    bias: Tensor,
    relevance: Tensor,
    epsilon: float,
    redistribute: bool,
) -> list[Tensor]:
    r"""The :math:`\epsilon` rule on ``pre = sum_k gate_k * (x_k @ w_k.T) + bias`` (``gate_k`` ``None`` or a
    constant weighting of the outputs): :math:`R_{x_k} = x_k \odot ((R / d \odot gate_k) w_k)`. With
    ``redistribute`` the bias and stabilizer share of each output is spread evenly over all inputs."""
    denominator = stabilize(pre, epsilon)
    scaled = divide(relevance, denominator)
    shares = [x * ((scaled if gate is None else scaled * gate) @ w) for x, w, gate in parts]
    if redistribute:
        leak = scaled * (denominator - (pre - bias))
        spread = leak.sum(dim=-1, keepdim=True) / sum(x.shape[-1] for x, _, _ in parts)
        shares = [share + spread for share in shares]
    return shares


def _unpack(relevance, lstm: bool) -> tuple[Tensor | None, list]:
    """Relevance of ``(output, h_n)`` (GRU) or ``(output, (h_n, c_n))`` (LSTM), any part ``None``."""
    if isinstance(relevance, Tensor):  # the whole output was used as one tensor: impossible for a tuple
        raise UnsupportedOperationError("relevance of a recurrent layer must come per output of its tuple")
    out, final = relevance
    if lstm:
        final = [None, None] if final is None else list(final)
    else:
        final = [final]
    return out, final
