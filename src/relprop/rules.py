r"""Relevance propagation rules.

Notation: an operation maps its inputs :math:`x_i` to outputs :math:`z_j = \sum_i x_i w_{ij} + b_j`;
the relevance :math:`R_j` of each output is redistributed to the inputs as
:math:`R_i = \sum_j R_{i \leftarrow j}`.
:math:`(\cdot)^+ = \max(0, \cdot)` and :math:`(\cdot)^- = \min(0, \cdot)`. Denominators are stabilized as
:math:`d + \epsilon \operatorname{sgn}_+(d)` with :math:`\operatorname{sgn}_+(0) = +1`; a denominator that is
exactly zero (possible only with :math:`\epsilon = 0`) passes no relevance.

Biases take their share of the denominator and absorb relevance, as in Bach et al. (2015) and the LRP
Toolbox; the share absorbed by biases and stabilizers is what :meth:`relprop.LRP.audit` reports. With
``redistribute=True`` a rule instead spreads the bias and stabilizer share of each output evenly over the
inputs connected to it, so that the operation conserves relevance exactly (useful for checking).

The rules for linear operations (dense layers, convolutions, pooling, additions, reductions) follow zennit's
definitions where zennit has the rule, so that the composites of the same name give the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from relprop.checks import check_number
from relprop.describe import describe_call
from relprop.graph import Kind, UnsupportedOperationError
from relprop.operations import Affine, Call, MaxPool, Modifier, Weightless, keep, with_in_place

LinearOperation = Affine | Weightless


def stabilize(denominator: Tensor, epsilon: float, sign: int = 0, out: Tensor | None = None) -> Tensor:
    r""":math:`d + \epsilon \operatorname{sgn}_+(d)` with :math:`\operatorname{sgn}_+(0) = +1`.

    ``sign`` is +1 or -1 when every element of ``d`` is known to have that sign (or be zero), which saves the
    sign test. The sign is read from the sign bit, so an output of exactly :math:`-0` is pushed to
    :math:`-\epsilon`; such an output has no non-zero contribution, so what it passes on is zero either way.
    The result is a new tensor unless ``epsilon`` is zero, or written into ``out`` (a tensor shaped like
    ``d`` that is read no more).
    """
    if epsilon == 0:
        return denominator
    if sign:
        return torch.add(denominator, sign * epsilon, out=out)
    return torch.copysign(denominator.new_tensor(epsilon), denominator, out=out).add_(denominator)


def divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator``, zero where the denominator is exactly zero: relprop's one safe division.

    With no additive stabilizer, whatever passes on relevance in proportion to a value conserves it exactly
    (to rounding) wherever the value is non-zero, and a value of exactly zero passes nothing on.
    """
    zero = denominator == 0
    return torch.where(zero, 0.0, numerator / torch.where(zero, 1.0, denominator))


class Rule:
    """A rule: how relevance at an operation's output is redistributed to its inputs.

    Subclasses implement :meth:`backward`; :meth:`forward` may record what the backward pass needs.
    ``kinds`` lists the kinds of operation (:class:`relprop.graph.Kind`) the rule can explain.
    """

    kinds: frozenset[Kind] = frozenset()
    needs_output = False
    """Whether :meth:`backward` reads the operation's output; otherwise the engine frees it early."""
    reads_inputs = True
    """Whether :meth:`backward` reads the values of the inputs; otherwise it gets stand-ins that carry only
    their shapes and dtypes (meta tensors), and the engine frees the inputs once their consumers ran."""
    uses_output = False
    """Whether :meth:`backward` uses the operation's output where it is still alive and as computed (kept by
    its consumers, not overwritten by an in-place operation); the engine never keeps it alive for the rule."""
    records_forward = False
    """Whether :meth:`forward` keeps the output of weighted operations (:class:`~relprop.operations.Affine`)
    in its context (then nothing may overwrite it). Weightless ones are cheaper to recompute than to keep."""
    detaches = False
    """Whether the rule makes the operation's output a constant for the operations that use it
    (:class:`Detach`)."""

    def forward(self, op: Any, inputs: Sequence[Tensor]) -> tuple[Tensor, Any]:
        """Compute the operation's output; returns ``(output, context for backward)``."""
        return op.forward(inputs), None

    def backward(
        self, op: Any, inputs: Sequence[Tensor], output: Tensor, context: Any, relevance: Tensor
    ) -> list[Tensor | None]:
        """Redistribute ``relevance`` (shaped like the output) to the inputs; ``output`` is the operation's
        output if the rule ``needs_output``, or ``uses_output`` and it is unchanged, else ``None``."""
        raise NotImplementedError

    def backward_stacked(
        self, op: Any, inputs: Sequence[Tensor], output: Tensor, context: Any, relevance: Tensor
    ) -> list[Tensor | None]:
        """:meth:`backward` of ``K`` relevances at once (the concepts of :mod:`relprop.concepts`):
        ``relevance`` is ``(K, *output shape)`` (for a tuple output, its parts so, nested like it), each
        share ``(K, *input shape)``.

        By default one :meth:`backward` per concept. Rules override it where the work that does not depend
        on the relevance (a denominator, a modified forward pass) can be done once for all ``K``.
        """
        count = _concept_count(relevance)
        per_concept = [
            self.backward(op, inputs, output, context, _concept(relevance, k)) for k in range(count)
        ]
        return [_stack([shares[i] for shares in per_concept], x) for i, x in enumerate(inputs)]

    def __repr__(self) -> str:
        """The rule's complete description (:mod:`relprop.describe`): its parameters, tensors by value."""
        return describe_call(self, {k: v for k, v in vars(self).items() if not k.startswith("_")})


# --------------------------------------------------------------------------------------------- linear rules
@dataclass(frozen=True)
class Term:
    r"""One term :math:`z'_j = \sum_i x'_i w'_{ij} + b'_j` of a linear rule's denominator: the operation
    evaluated on modified inputs :math:`x'` with modified weights :math:`w'` and bias :math:`b'`.

    Parameters
    ----------
    inputs : Sequence[Tensor]
        The modified inputs :math:`x'`, one per input of the operation (e.g. ``[x.clamp(min=0)]``).
    weight : Callable[[Tensor], Tensor]
        The weight modifier :math:`w \mapsto w'` (e.g. ``lambda w: w.clamp(min=0)``); ``keep`` leaves it.
    bias : Callable[[Tensor], Tensor] or None
        The bias modifier :math:`b \mapsto b'`, or ``None`` for no bias in this term.
    """

    inputs: Sequence[Tensor]
    weight: Modifier = keep
    bias: Modifier | None = None


def share(
    op: LinearOperation,
    inputs: Sequence[Tensor],
    relevance: Tensor,
    terms: Sequence[Term],
    stabilizer: float,
    sign: int = 0,
    redistribute: bool = False,
    linearization: Linearization | None = None,
) -> list[Tensor]:
    r"""The relevance of a linear operation's inputs by the rule that ``terms`` define:

    .. math:: R_i = \sum_{\text{terms}} x'_i \sum_j w'_{ij} \frac{R_j}{d_j}, \qquad
              d_j = z'_j + \epsilon \operatorname{sgn}_+(z'_j), \quad
              z'_j = \sum_{\text{terms}} \Big(\sum_i x'_i w'_{ij} + b'_j\Big)

    Every linear rule of this module is one call: LRP-:math:`\epsilon` is
    ``share(op, inputs, relevance, [Term(inputs, keep, keep)], epsilon)``, :math:`w^2` is
    ``share(op, inputs, relevance, [Term(ones, torch.square)], stabilizer)``.

    Parameters
    ----------
    op : Affine or Weightless
        The operation, as a rule's :meth:`Rule.backward` receives it.
    inputs : Sequence[Tensor]
        The operation's inputs :math:`x` (the shapes of the result).
    relevance : Tensor
        :math:`R_j`, shaped like the operation's output.
    terms : Sequence[Term]
        The terms :math:`(x', w', b')` of the numerator and denominator.
    stabilizer : float
        :math:`\epsilon \ge 0`; with zero, an output whose denominator is zero passes nothing.
    sign : int
        +1 or -1 if every :math:`z'_j` is known to have that sign (saves the sign test), else 0.
    redistribute : bool
        Spread the share of biases and stabilizer evenly over each output's receptive field instead of
        absorbing it, so that the operation conserves relevance.
    linearization : Linearization or None
        The first term already evaluated (its :math:`z'` and transpose), e.g. kept by :meth:`Rule.forward`.

    Returns
    -------
    list[Tensor]
        :math:`R_i`, one tensor per input, shaped like it.
    """
    evaluated = []
    for index, term in enumerate(terms):
        z, transpose = (
            linearization
            if linearization is not None and index == 0
            else _linearize(op, term.inputs, term.weight, term.bias)
        )
        if z is not None:
            evaluated.append((term, z, transpose))
    if not evaluated:
        return [torch.zeros_like(x) for x in inputs]
    total = evaluated[0][1] if len(evaluated) == 1 else sum(z for _, z, _ in evaluated)
    denominator = stabilize(total, stabilizer, sign)
    if redistribute:
        biases = sum(op.bias_term(term.bias, total) for term, _, _ in evaluated if term.bias is not None)
        leak = divide(relevance * (denominator - (total - biases)), denominator)
    scaled = _quotient(relevance, denominator, stabilizer)
    result: list[Tensor] = [None] * len(inputs)
    for index, (term, _, transpose) in enumerate(evaluated):
        last = index == len(evaluated) - 1
        for k, product in enumerate(_times_inputs(term.inputs, transpose(scaled), scaled, last_use=last)):
            result[k] = product if result[k] is None else result[k].add_(product)
    if redistribute:
        result = [r + spread for r, spread in zip(result, _flat(op, inputs, leak))]
    return result


def _rows_with_relevance(op: LinearOperation, x: Tensor, relevance: Tensor) -> Tensor | None:
    """For a dense layer applied to a sequence (``(..., T, features)``), whose rows (all dimensions but the
    last) are explained independently: which rows hold relevance, if at most half of them do (a language
    model explained at its last token, where the output layer is the largest of the model); else ``None``
    (also for stacked relevance, which has a dimension more than the input ``x``)."""
    dense = isinstance(op, Affine) and op.channel_dim == -1 and op.input_dims in ((-1, 0), (-1, 1))
    if not dense or relevance.dim() < 3 or relevance.dim() != x.dim():
        return None
    flat = relevance.reshape(-1, relevance.shape[-1])
    if 2 * int(flat[:, 0].count_nonzero()) > len(flat):  # a cheap first look: a row whose first feature
        return None  # holds relevance holds some, and more than half of them do
    rows = torch.linalg.vector_norm(flat, 1, dim=-1) > 0  # a sum of magnitudes: exact, and no temporary
    return rows if 2 * int(rows.sum()) <= len(rows) else None


class LinearRule(Rule):
    r"""Base of the rules for linear operations: each is one call of :func:`share` with its terms.

    ``stabilizer`` is the :math:`\epsilon` of :func:`share`; ``redistribute`` spreads what biases and
    stabilizer absorb evenly over the inputs instead. The :meth:`backward` of this module's rules also
    explains stacked relevance (:meth:`Rule.backward_stacked`): their arithmetic broadcasts over a leading
    dimension of the relevance, as :func:`share`'s does. A subclass that writes its own :meth:`backward`
    gets the default, one call per concept.
    """

    kinds = frozenset({Kind.AFFINE})

    def __init__(self, stabilizer: float = 1e-6, redistribute: bool = False) -> None:
        self.stabilizer = check_number(stabilizer, "stabilizer")
        self.redistribute = redistribute

    def backward_stacked(self, op, inputs, output, context, relevance):
        # the linear rules' arithmetic (:func:`share`) broadcasts over the leading dimension of concepts:
        # denominators and modified forward passes are computed once, and only the transposes run per
        # concept. A backward written outside this module is not known to broadcast: it runs per concept.
        if type(self).backward.__module__ != __name__:
            return super().backward_stacked(op, inputs, output, context, relevance)
        return self.backward(op, inputs, output, context, relevance)

    def forward(self, op: LinearOperation, inputs: Sequence[Tensor]) -> tuple[Tensor, Any]:
        # rules that record keep the linearization of the unmodified operation (its output and transpose)
        if not (self.records_forward and op.weighted):
            return op.forward(inputs), None
        z, transpose = _linearize(op, inputs, keep, keep)
        return z, (z, transpose)


class Epsilon(LinearRule):
    r"""LRP-:math:`\epsilon` (Bach et al. 2015).

    .. math:: R_i = \sum_j \frac{x_i w_{ij}}{z_j + \epsilon \operatorname{sgn}_+(z_j)} R_j,
              \qquad z_j = \sum_i x_i w_{ij} + b_j

    ``epsilon=0`` is LRP-0 (see :class:`LRP0`). On weightless operations (pooling, additions) this is the
    proportional split that zennit calls ``Norm``.
    """

    records_forward = True

    def __init__(self, epsilon: float = 1e-6, redistribute: bool = False) -> None:
        self.epsilon = check_number(epsilon, "epsilon")
        self.redistribute = redistribute

    def backward(self, op, inputs, output, context, relevance):
        rows = _rows_with_relevance(op, inputs[0], relevance)
        if rows is None:
            terms = [Term(inputs, keep, keep)]
            return share(op, inputs, relevance, terms, self.epsilon, 0, self.redistribute, context)
        # a dense layer explains each row on its own: only the rows that hold relevance, the others get none
        (x,) = inputs
        x_rows = x.reshape(-1, x.shape[-1])[rows]
        z_rows = None if context is None else context[0].reshape(-1, relevance.shape[-1])[rows]
        (part,) = share(
            op,
            [x_rows],
            relevance.reshape(-1, relevance.shape[-1])[rows],
            [Term([x_rows], keep, keep)],
            self.epsilon,
            0,
            self.redistribute,
            _linearize(op, [x_rows], keep, keep, output=z_rows),
        )
        result = torch.zeros(x.shape, dtype=part.dtype, device=part.device)
        result.view(-1, x.shape[-1])[rows] = part
        return [result]


class LRP0(Epsilon):
    r"""LRP-0 (Bach et al. 2015): :math:`R_i = \sum_j \frac{x_i w_{ij}}{z_j} R_j`.

    Equal to gradient times input on networks of ReLUs without biases.
    """

    def __init__(self, redistribute: bool = False) -> None:
        self.redistribute = redistribute

    epsilon = 0.0


_positive = with_in_place(lambda w: w.clamp(min=0), lambda w: w.clamp_(min=0))
_negative = with_in_place(lambda w: w.clamp(max=0), lambda w: w.clamp_(max=0))


class ZPlus(LinearRule):
    r"""The :math:`z^+` rule (Deep Taylor Decomposition; Montavon et al. 2017), i.e. :math:`\alpha_1\beta_0`.

    .. math:: R_i = \sum_j \frac{x_i^+ w_{ij}^+ + x_i^- w_{ij}^-}
              {\sum_{i'} (x_{i'}^+ w_{i'j}^+ + x_{i'}^- w_{i'j}^-) + b_j^+} R_j

    The positive part of the bias takes its share, as in zennit; ``bias=False`` gives it none (zennit's
    ``zero_params=['bias']``), so that the rule conserves relevance wherever the denominator is positive.
    """

    def __init__(self, stabilizer: float = 1e-6, redistribute: bool = False, bias: bool = True) -> None:
        super().__init__(stabilizer, redistribute)
        self.bias = bias

    def backward(self, op, inputs, output, context, relevance):
        terms = _excitatory(inputs, _has_negative(inputs))
        if not self.bias:
            terms = [Term(term.inputs, term.weight) for term in terms]
        return share(op, inputs, relevance, terms, self.stabilizer, 1, self.redistribute)


def _amplify(gamma: float, sign: int) -> Modifier:
    r"""The modifier ``w -> w + gamma * w+`` (``sign=1``) or ``w -> w + gamma * w-`` (``sign=-1``).

    As leaky ReLUs with slope :math:`1 + \gamma`: :math:`w + \gamma w^- = \operatorname{leaky}(w)` and
    :math:`w + \gamma w^+ = -\operatorname{leaky}(-w)`, exact on the unamplified side and with no temporary.
    """
    slope = 1.0 + gamma
    if sign < 0:
        return with_in_place(lambda w: F.leaky_relu(w, slope), lambda w: F.leaky_relu_(w, slope))
    return with_in_place(
        lambda w: F.leaky_relu_(w.neg(), slope).neg_(), lambda w: F.leaky_relu_(w.neg_(), slope).neg_()
    )


def _excitatory(inputs: Sequence[Tensor], negative: bool) -> list[Term]:
    """The positive contributions: :math:`x^+ w^+` (and bias :math:`b^+`) and :math:`x^- w^-`."""
    return _contributions(inputs, negative, _positive, _negative)


def _inhibitory(inputs: Sequence[Tensor], negative: bool) -> list[Term]:
    """The negative contributions: :math:`x^+ w^-` (and bias :math:`b^-`) and :math:`x^- w^+`."""
    return _contributions(inputs, negative, _negative, _positive)


def _contributions(
    inputs: Sequence[Tensor], negative: bool, same: Modifier, opposite: Modifier
) -> list[Term]:
    """Parts pairing non-negative inputs with ``same`` weights and (if any input is ``negative``)
    non-positive inputs with ``opposite`` weights; only the first part takes the bias."""
    if not negative:
        return [Term(inputs, same, same)]
    return [
        Term([x.clamp(min=0) for x in inputs], same, same),
        Term([x.clamp(max=0) for x in inputs], opposite),
    ]


class AlphaBeta(LinearRule):
    r"""LRP-:math:`\alpha\beta` (Bach et al. 2015), in Bach's convention.

    .. math:: R_i = \sum_j \Big(\alpha \frac{z_{ij}^+}{z_j^+} - \beta \frac{z_{ij}^-}{z_j^-}\Big) R_j,
              \quad z_j^\pm = \sum_i z_{ij}^\pm + b_j^\pm

    with :math:`z_{ij}^+` the positive contributions (:math:`x^+ w^+` and :math:`x^- w^-`) and
    :math:`z_{ij}^-` the negative ones. :math:`\alpha - \beta = 1` conserves relevance; any pair of
    non-negative values is allowed. The LRP Toolbox's single ``alpha`` is Bach's ``alpha`` with
    ``beta = alpha - 1``.
    """

    def __init__(
        self, alpha: float = 2.0, beta: float = 1.0, stabilizer: float = 1e-6, redistribute: bool = False
    ) -> None:
        super().__init__(stabilizer, redistribute)
        self.alpha = check_number(alpha, "alpha")
        self.beta = check_number(beta, "beta")

    def backward(self, op, inputs, output, context, relevance):
        # the inhibitory share is computed on its own (not as z minus the excitatory one): where an output has
        # no negative contributions its denominator is the stabilizer, and a difference would cancel badly
        negative = _has_negative(inputs)
        excitatory = _excitatory(inputs, negative)
        result = share(op, inputs, relevance, excitatory, self.stabilizer, 1, self.redistribute)
        result = [r.mul_(self.alpha) for r in result]
        if self.beta:
            inhibitory = _inhibitory(inputs, negative)
            shares = share(op, inputs, relevance, inhibitory, self.stabilizer, -1, self.redistribute)
            result = [r.sub_(n, alpha=self.beta) for r, n in zip(result, shares)]
        return result


class Gamma(LinearRule):
    r"""LRP-:math:`\gamma` (Montavon et al. 2019), generalized to signed inputs and outputs as in zennit.

    For outputs :math:`z_j > 0` the positive contributions are amplified,

    .. math:: R_{i \leftarrow j} = \frac{x_i^+ (w_{ij} + \gamma w_{ij}^+) + x_i^- (w_{ij} + \gamma w_{ij}^-)}
              {\sum_{i'} [x_{i'}^+ (w_{i'j} + \gamma w_{i'j}^+) + x_{i'}^- (w_{i'j} + \gamma w_{i'j}^-)]
              + b_j + \gamma b_j^+} R_j,

    for outputs :math:`z_j < 0` the negative ones (swap :math:`w^+` and :math:`w^-`, and :math:`b^+` for
    :math:`b^-`). On non-negative inputs and positive outputs this is the original rule
    :math:`R_i = \sum_j x_i (w_{ij} + \gamma w^+_{ij}) / \sum_{i'} x_{i'} (w_{i'j} + \gamma w^+_{i'j}) R_j`.
    """

    def __init__(self, gamma: float = 0.25, stabilizer: float = 1e-6, redistribute: bool = False) -> None:
        super().__init__(stabilizer, redistribute)
        self.gamma = check_number(gamma, "gamma")

    def forward(self, op, inputs):
        # which outputs are positive and which negative is all backward needs to know of the forward pass:
        # kept as int8, a quarter of the output's memory
        output = op.forward(inputs)
        return output, output.sign().to(torch.int8)

    def backward(self, op, inputs, output, context, relevance):
        gamma, sign = self.gamma, context
        negative_inputs = _has_negative(inputs)
        if not negative_inputs and not self.redistribute:
            return self._non_negative_inputs(op, inputs, output, sign, relevance)

        more_positive, more_negative = _amplify(gamma, 1), _amplify(gamma, -1)
        positive_inputs = [x.clamp(min=0) for x in inputs]
        negative_parts = [x.clamp(max=0) for x in inputs]
        result = [torch.zeros_like(x) for x in inputs]
        for selected, amplify, other in (
            (_where_positive(sign, relevance), more_positive, more_negative),
            (_where_positive(sign.neg(), relevance), more_negative, more_positive),
        ):
            if _all_zero(selected):
                continue
            terms = [Term(positive_inputs, amplify, amplify)]
            if negative_inputs:
                terms.append(Term(negative_parts, other))
            shares = share(op, inputs, selected, terms, self.stabilizer, redistribute=self.redistribute)
            result = [r + s for r, s in zip(result, shares)]
        return result

    uses_output = True  # z, where relevance reaches negative outputs

    def _non_negative_inputs(self, op, inputs, output, sign, relevance):
        # On non-negative inputs, with P = f(x; W+, b+), the denominators are z + gamma P for outputs z > 0
        # and (1 + gamma) z - gamma P for outputs z < 0 (as f(x; W-, b-) = z - P). One modified forward
        # pass, Q = f(x; W + gamma W+, b + gamma b+) = z + gamma P, gives both: the second is
        # (2 + gamma) z - Q. With u and v the relevance of the outputs z > 0 and z < 0 over their
        # denominators, x (W + gamma W+)^T u + x (W + gamma W-)^T v regroups as
        # x (W + gamma W+)^T (u - v) + (2 + gamma) x W^T v, and v is zero where no relevance reaches a
        # negative output (a layer followed by a ReLU): then one backward pass suffices.
        # Neither denominator subtracts numbers of the same sign, so nothing cancels.
        gamma, stabilizer = self.gamma, self.stabilizer
        up = _where_positive(sign, relevance)  # the relevance of the outputs z > 0
        amplified = _amplify(gamma, 1)
        q, q_transpose = _linearize(op, inputs, amplified, amplified)
        if _all_zero(relevance - up):  # none on outputs z <= 0
            # Q >= z > 0 wherever up is non-zero; elsewhere the clamp keeps the quotient finite
            u = _divide_(up, q.clamp_(min=0).add_(stabilizer), stabilizer)
            return _times_inputs(inputs, q_transpose(u), u)
        down = _where_positive(sign.neg(), relevance)  # the relevance of the outputs z < 0
        z, transpose = _linearize(op, inputs, keep, keep, output)
        # as above, each denominator has a known sign where its relevance is non-zero; the clamps keep the
        # quotients finite elsewhere
        negative = torch.mul(z, 2 + gamma).sub_(q).clamp_(max=0).sub_(stabilizer)
        v = _divide_(down, negative, stabilizer)
        u = _divide_(up, q.clamp_(min=0).add_(stabilizer), stabilizer)
        amplified_part = q_transpose(u.sub_(v))
        plain_part = transpose(v.mul_(2 + gamma))
        return [(a + b).mul_(x) for x, a, b in zip(inputs, amplified_part, plain_part)]


def _where_positive(sign: Tensor, values: Tensor) -> Tensor:
    """``values`` where ``sign`` (int8) is positive, else zero. The sign is converted before it multiplies:
    on CPUs a product of mixed dtypes (or a ``torch.where``) takes 5 to 10 times as long."""
    factor = sign.clamp(min=0).to(values.dtype)
    return factor.mul_(values) if factor.shape == values.shape else values * factor


def _all_zero(tensor: Tensor) -> bool:
    """Whether every element is zero, from the sum of magnitudes: comparisons are slow on CPUs."""
    return not tensor.abs().sum()


class Flat(LinearRule):
    r"""The flat rule (Lapuschkin et al. 2019): relevance spread evenly over each output's receptive field.

    .. math:: R_i = \sum_j \frac{1}{\sum_{i'} 1_{i' \to j}} R_j

    where :math:`1_{i \to j}` is one if input :math:`i` is connected to output :math:`j`. Biases take no
    share.
    """

    def backward(self, op, inputs, output, context, relevance):
        ones = [torch.ones_like(x) for x in inputs]
        terms = [Term(ones, torch.ones_like)]
        return share(op, inputs, relevance, terms, self.stabilizer, 1, self.redistribute)


class WSquare(LinearRule):
    r"""The :math:`w^2` rule (Montavon et al. 2017), for unbounded inputs.

    .. math:: R_i = \sum_j \frac{w_{ij}^2}{\sum_{i'} w_{i'j}^2} R_j

    Biases take no share (zennit adds :math:`b_j^2` to the denominator; the Deep Taylor derivation has none).
    """

    def backward(self, op, inputs, output, context, relevance):
        ones = [torch.ones_like(x) for x in inputs]
        terms = [Term(ones, torch.square)]
        return share(op, inputs, relevance, terms, self.stabilizer, 1, self.redistribute)


class ZBox(LinearRule):
    r"""The :math:`z^\mathcal{B}` rule (Montavon et al. 2017) for inputs bounded by :math:`l \le x \le h`.

    .. math:: R_i = \sum_j \frac{x_i w_{ij} - l_i w_{ij}^+ - h_i w_{ij}^-}
              {\sum_{i'} (x_{i'} w_{i'j} - l_{i'} w_{i'j}^+ - h_{i'} w_{i'j}^-)} R_j

    computed as :math:`(x_i - l_i) w_{ij}^+ + (x_i - h_i) w_{ij}^-`, the same numerator: within the bounds
    a sum of non-negative terms, which cancels nowhere. Biases take no share (in the
    denominator they cancel: :math:`b - b^+ - b^- = 0`).

    Parameters
    ----------
    low, high:
        The bounds: scalars, or tensors that broadcast to one sample's shape (e.g. ``(3, 1, 1)`` or
        ``(1, 3, 1, 1)`` per colour channel, after normalization).
    """

    def __init__(
        self, low: float | Tensor, high: float | Tensor, stabilizer: float = 1e-6, redistribute: bool = False
    ) -> None:
        super().__init__(stabilizer, redistribute)
        self.low = low
        self.high = high
        low_values, high_values = (
            torch.as_tensor(low, dtype=torch.float64),
            torch.as_tensor(high, dtype=torch.float64),
        )
        if not (torch.isfinite(low_values).all() and torch.isfinite(high_values).all()):
            raise ValueError("ZBox bounds must be finite numbers")
        try:
            ordered = bool((low_values < high_values).all())
        except RuntimeError:
            raise ValueError(
                f"ZBox low of shape {tuple(low_values.shape)} and high of shape "
                f"{tuple(high_values.shape)} do not broadcast"
            ) from None
        if not ordered:
            raise ValueError("ZBox needs low < high for every input element")

    def backward(self, op, inputs, output, context, relevance):
        if len(inputs) != 1:
            raise UnsupportedOperationError("ZBox explains operations with one input")
        (x,) = inputs
        low, high = (_bound(bound, x, name) for bound, name in ((self.low, "low"), (self.high, "high")))
        below, above = x - low, x - high
        if isinstance(op, Affine) and op.transpose is not None and op.input_dims and not self.redistribute:
            return [self._both_parts(op, below, above, relevance)]
        terms = [Term([below], _positive), Term([above], _negative)]
        return share(op, inputs, relevance, terms, self.stabilizer, redistribute=self.redistribute)

    def _both_parts(self, op: Affine, below: Tensor, above: Tensor, relevance: Tensor) -> Tensor:
        # both parts in one forward and one transposed pass: [x - l, x - h] stacked along the input features
        # against the weights [W+, W-]
        input_dim, weight_dim = op.input_dims
        w = op.weight
        weight = torch.cat([_positive(w), _negative(w)], dim=weight_dim)
        stacked = torch.cat([below, above], dim=input_dim)
        with torch.no_grad():
            z = op.fn(stacked, weight, None)
        scaled = _quotient(relevance, stabilize(z, self.stabilizer), self.stabilizer)
        products = op.transpose(scaled, weight, stacked).mul_(stacked)
        concepts = products.dim() - stacked.dim()  # a leading dimension of concepts moves the features
        shares = products.chunk(2, dim=input_dim if input_dim < 0 else input_dim + concepts)
        return shares[0] + shares[1]


def _bound(bound: float | Tensor, x: Tensor, name: str) -> Tensor:
    bound = torch.as_tensor(bound, dtype=x.dtype, device=x.device)
    if bound.dim() == x.dim() and bound.shape[0] == 1:
        bound = bound[0]
    try:
        return bound.expand(x.shape[1:]).expand_as(x)
    except RuntimeError:
        raise ValueError(
            f"ZBox {name} of shape {tuple(bound.shape)} does not broadcast to the layer's input "
            f"{tuple(x.shape[1:])} (without batch dimension)"
        ) from None


# ------------------------------------------------------------------------------------------ other rules
class Pass(Rule):
    """Pass relevance through unchanged: :math:`R_i = R_i` (element-wise operations such as activations)."""

    kinds = frozenset({Kind.ELEMENTWISE, Kind.AFFINE, Kind.CUSTOM, Kind.NORM, Kind.SOFTMAX})
    reads_inputs = False

    def backward(self, op, inputs, output, context, relevance):
        _check_passes(inputs, relevance.shape)
        return [relevance]

    def backward_stacked(self, op, inputs, output, context, relevance):
        _check_passes(inputs, relevance.shape[1:])
        return [relevance]


def _check_passes(inputs: Sequence[Tensor], shape: torch.Size) -> None:
    if len(inputs) != 1 or inputs[0].shape != shape:
        raise UnsupportedOperationError(
            "Pass needs one input shaped like the output, got inputs "
            f"{[tuple(x.shape) for x in inputs]} for output {tuple(shape)}"
        )


class WinnerTakeAll(Rule):
    """Max pooling: each window's relevance goes to the inputs that attain its maximum, split evenly on
    ties."""

    kinds = frozenset({Kind.MAXPOOL})
    needs_output = True

    def backward(self, op: MaxPool, inputs, output, context, relevance):
        (x,) = inputs
        dims = op.dims
        spatial = x.shape[-dims:]
        out_size = output.shape[-dims:]
        pads = []
        for size, out, k, s, p, d in zip(
            spatial, out_size, op.kernel_size, op.stride, op.padding, op.dilation
        ):
            needed = (out - 1) * s + (k - 1) * d + 1
            pads.append((p, max(p, needed - size - p)))
        padding = [v for pair in reversed(pads) for v in pair]
        padded = torch.nn.functional.pad(x, padding, value=-torch.inf) if any(padding) else x
        windows = []
        count = None
        for offset in _offsets(op.kernel_size):
            index = (
                ...,
                *(
                    slice(o * d, o * d + (n - 1) * s + 1, s)
                    for o, d, n, s in zip(offset, op.dilation, out_size, op.stride)
                ),
            )
            hit = torch.sub(padded[index], output).sign_().add_(1)  # 1 at the maxima, else 0
            windows.append((index, hit))
            count = hit.clone() if count is None else count.add_(hit)
        share = relevance / count  # every window has at least one maximum
        concepts = relevance.shape[: relevance.dim() - output.dim()]  # the stacked relevance's leading one
        result = padded.new_zeros((*concepts, *padded.shape))
        for index, hit in windows:
            result[index].addcmul_(hit, share)
        if not any(padding):
            return [result]
        crop = (..., *(slice(before, before + size) for (before, _), size in zip(pads, spatial)))
        return [result[crop]]

    def backward_stacked(self, op, inputs, output, context, relevance):
        return self.backward(op, inputs, output, context, relevance)  # the windows' maxima found once


def _offsets(kernel_size: Sequence[int]):
    grids = torch.meshgrid(*(torch.arange(k) for k in kernel_size), indexing="ij")
    return zip(*(g.flatten().tolist() for g in grids))


class Gate(Rule):
    """Multiplicative gates (``signal * gate``, ``signal / gate``): all relevance to the signal, none to the
    gate. Of a division, the signal is the numerator.

    Parameters
    ----------
    signal:
        Index, among the operands that depend on the model's input, of the one that carries the signal. By
        default: the only such operand (the other factor being a constant or a parameter), or, of two, the one
        shaped like the output while the other is broadcast (squeeze-and-excitation, division by a norm).
    """

    kinds = frozenset({Kind.GATE})
    reads_inputs = False

    def __init__(self, signal: int | None = None) -> None:
        self.signal = signal

    def backward(self, op: Call, inputs, output, context, relevance):
        if self.signal is not None:
            index = self.signal
        elif getattr(op, "product", "") == "divide":  # the numerator, if it depends on the input
            index = 0
        else:
            index = _signal_index(inputs, relevance.shape)
        if not 0 <= index < len(inputs):
            raise UnsupportedOperationError(
                f"Gate(signal={index}) but the operation has {len(inputs)} operands"
            )
        result: list[Tensor | None] = [None] * len(inputs)
        result[index] = _sum_to(relevance, inputs[index].shape)
        return result


def _signal_index(inputs: Sequence[Tensor], shape: torch.Size) -> int:
    if len(inputs) == 1:
        return 0
    smallest = min(x.numel() for x in inputs)
    full = [k for k, x in enumerate(inputs) if x.shape == shape and x.numel() > smallest]
    if len(full) == 1:
        return full[0]
    raise UnsupportedOperationError(
        "product of two input-dependent tensors of the same shape: which one is the signal is ambiguous; map "
        "relprop.rules.Gate(signal=0 or 1) to this node with a Composite name_map"
    )


def _sum_to(relevance: Tensor, shape: torch.Size) -> Tensor:
    if relevance.shape == shape:
        return relevance
    extra = relevance.dim() - len(shape)
    reduced = relevance.sum(dim=tuple(range(extra))) if extra else relevance
    dims = tuple(d for d, n in enumerate(shape) if n == 1 and reduced.shape[d] != 1)
    return reduced.sum(dim=dims, keepdim=True) if dims else reduced


# ----------------------------------------------------------------------------------------------- helpers
def _concept(relevance, k: int):
    """Concept ``k``'s part of a stacked relevance: a tensor, or a (nested) list of them for a tuple."""
    if isinstance(relevance, (tuple, list)):
        return [_concept(r, k) for r in relevance]
    return None if relevance is None else relevance[k]


def _concept_count(relevance) -> int:
    """The number of concepts of a stacked relevance (its leading dimension)."""
    if isinstance(relevance, (tuple, list)):
        return next(c for c in map(_concept_count, relevance) if c)
    return 0 if relevance is None else relevance.shape[0]


def _stack(shares: Sequence[Tensor | None], x: Tensor) -> Tensor | None:
    """One input's shares of ``K`` concepts as one tensor ``(K, *x.shape)``; ``None`` if none has one."""
    if all(s is None for s in shares):
        return None
    like = next(s for s in shares if s is not None)
    zeros = torch.zeros(x.shape, dtype=like.dtype, device=like.device)
    return torch.stack([zeros if s is None else s for s in shares])


def _quotient(relevance: Tensor, denominator: Tensor, epsilon: float) -> Tensor:
    """``relevance / denominator`` for a denominator stabilized with ``epsilon`` (with zero, a zero
    denominator gives zero). A positive ``epsilon`` made the denominator a fresh tensor, whose memory takes
    the quotient (transposes do not read the output), unless the relevance is stacked (one per concept)."""
    if epsilon == 0:
        return divide(relevance, denominator)
    if relevance.shape == denominator.shape and relevance.dtype == denominator.dtype:
        return torch.div(relevance, denominator, out=denominator)
    return relevance / denominator


def _divide_(numerator: Tensor, denominator: Tensor, epsilon: float) -> Tensor:
    """``numerator / denominator`` in place, for a denominator stabilized with ``epsilon`` (never zero if
    positive; with zero, a zero denominator gives zero)."""
    return numerator.div_(denominator) if epsilon > 0 else divide(numerator, denominator)


def _has_negative(inputs: Sequence[Tensor]) -> bool:
    return any(x.numel() > 0 and bool(x.amin() < 0) for x in inputs)


Linearization = tuple[Tensor | None, Callable[[Tensor], list[Tensor]]]
"""A linear operation evaluated with modified parameters, ``z``, and its transpose: a function from a
cotangent shaped like ``z`` to one tensor per input (``z`` is ``None`` if every modified weight is zero)."""


def _linearize(
    op: LinearOperation,
    inputs: Sequence[Tensor],
    weight: Modifier,
    bias: Modifier | None,
    output: Tensor | None = None,
) -> Linearization:
    """Evaluate ``op`` with modified parameters; the transpose applies the modified weights, without a
    forward pass where the operation knows its transpose, else by differentiating the forward pass.

    ``output`` is the operation's output with unmodified parameters, if known: then it is not recomputed
    where the operation knows its transpose. The returned ``z`` may be ``output`` itself.
    """
    if isinstance(op, Affine) and op.transpose is not None:
        (x,) = inputs
        if weight is keep and bias is keep:  # as the model computes it; the weight only when transposing
            if output is None:
                with torch.no_grad():
                    output = op.evaluate(x)
            return output, lambda cotangent: [op.transpose(cotangent, op.weight, x)]
        w, b = op.parameters(weight, bias)
        with torch.no_grad():
            z = op.fn(x, w, b)
        return z, lambda cotangent: [op.transpose(cotangent, w, x)]
    leaves = tuple(x.detach().requires_grad_() for x in inputs)
    with torch.enable_grad():
        z = op.forward(leaves, weight, bias)
    if z is None:
        return None, lambda cotangent: [torch.zeros_like(x) for x in inputs]

    def transpose(cotangent: Tensor) -> list[Tensor]:
        stacked = cotangent.dim() > z.dim()  # one cotangent per concept, along dimension 0
        gradients = torch.autograd.grad(z, leaves, cotangent, allow_unused=True, is_grads_batched=stacked)
        concepts = cotangent.shape[:1] if stacked else ()
        return [x.new_zeros((*concepts, *x.shape)) if g is None else g for x, g in zip(leaves, gradients)]

    return z.detach(), transpose


def _times_inputs(
    xs: Sequence[Tensor], gradients: Sequence[Tensor], cotangent: Tensor, last_use: bool = False
) -> list[Tensor]:
    """``x * gradient`` for each input, written into the gradient where it is a tensor of its own.

    With ``last_use`` the cotangent is not read afterwards: a gradient that is the cotangent itself (the
    transpose of an addition) may then take the product too.
    """
    products = []
    for k, (x, gradient) in enumerate(zip(xs, gradients)):
        own = (  # stacked gradients have a leading dimension of concepts more than x
            gradient.shape[gradient.dim() - x.dim() :] == x.shape
            and gradient.is_contiguous()
            and gradient._base is None
            and (last_use or not _shares_memory(gradient, cotangent))
            and not any(_shares_memory(gradient, other) for other in gradients[k + 1 :])
        )
        products.append(gradient.mul_(x) if own else x * gradient)
    return products


def _shares_memory(a: Tensor, b: Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _flat(op: LinearOperation, inputs: Sequence[Tensor], relevance: Tensor) -> list[Tensor]:
    """Spread ``relevance`` evenly over each output's receptive field."""
    ones = [torch.ones_like(x) for x in inputs]
    z, transpose = _linearize(op, ones, torch.ones_like, None)
    return transpose(divide(relevance, z))


# ------------------------------------------------------------------------------------- transformer rules
class Softmax(Rule):
    r"""AttnLRP's rule for softmax (Achtibat et al. 2024): the Taylor decomposition at the input, with bias.

    .. math:: R^{\text{in}}_i = x_i \Big(R_i - s_i \sum_j R_j\Big), \qquad s = \operatorname{softmax}(x)

    along the softmax's dimension. Entries masked to :math:`-\infty` get no relevance. The rule does not
    conserve: the bias term of the expansion absorbs :math:`\sum_i R_i - \sum_i R^{\text{in}}_i`, which
    :meth:`relprop.LRP.audit` reports. In gradient form (:math:`R = x \cdot g`) it is softmax's plain
    gradient.
    """

    kinds = frozenset({Kind.SOFTMAX})
    needs_output = True
    reads_inputs = False  # the input is recovered from the output: x = log s + logsumexp(x)

    def forward(self, op, inputs):
        (x,) = inputs
        return op.forward(inputs), torch.logsumexp(x, dim=op.dim, keepdim=True)

    def backward(self, op, inputs, output, context, relevance):
        s, dim = output, op.dim
        x = torch.log(s).add_(context)  # -inf where s is 0: masked entries, which get nothing
        share = x.mul_(torch.addcmul(relevance, s, relevance.sum(dim, keepdim=True), value=-1))
        return [share.masked_fill_(s == 0, 0.0)]


class Product(Rule):
    r"""AttnLRP's uniform rule for products of input-dependent tensors (Achtibat et al. 2024).

    The :math:`\epsilon` rule on the product :math:`z = f(a_1, \dots, a_k)`, multilinear in its :math:`k`
    input-dependent factors (``a @ b``, ``bmm``, ``einsum``, an element-wise ``a * b`` of a gated MLP), then
    an equal share to each factor:

    .. math:: R_{a_m} = \frac{1}{k}\, a_m \odot \Big(\frac{\partial z}{\partial a_m}\Big)^{\!\top}
              \frac{R}{z + \epsilon \operatorname{sgn}_+(z)}

    Each factor's share sums to
    :math:`\frac{1}{k} \sum_j z_j R_j / (z_j + \epsilon \operatorname{sgn}_+(z_j))` (Euler's theorem for
    functions linear in each factor), so the rule conserves up to :math:`\epsilon`. With one input-dependent
    factor (``x @ W``) it is the :math:`\epsilon` rule.

    An element-wise product whose one factor is broadcast over the other (a squeeze-and-excitation gate,
    :math:`1 / \operatorname{rms}(x)` of an RMS norm written as arithmetic), and a division, are gates: all
    relevance goes to the factor shaped like the output (the numerator), as :class:`Gate` does; AttnLRP treats
    such scales as constants.
    """

    kinds = frozenset({Kind.PRODUCT, Kind.GATE})

    uses_output = True

    def __init__(self, epsilon: float = 1e-6) -> None:
        self.epsilon = check_number(epsilon, "epsilon")

    def backward(self, op: Call, inputs, output, context, relevance):
        if op.product == "divide" or (op.product == "multiply" and _is_gated(inputs, relevance.shape)):
            return Gate().backward(op, inputs, output, context, relevance)
        if op.product == "matmul" and len(inputs) == 2 and _same_batch(*inputs):
            return _matmul_shares(inputs, output, relevance, self.epsilon)
        leaves = [x.detach().requires_grad_() for x in inputs]
        with torch.enable_grad():
            z = op.forward(leaves)
        scaled = _scaled(relevance, z.detach(), self.epsilon)
        gradients = torch.autograd.grad(z, leaves, scaled, allow_unused=True)
        share = 1.0 / len(inputs)
        return [None if g is None else x * g * share for x, g in zip(inputs, gradients)]


def _same_batch(a: Tensor, b: Tensor) -> bool:
    return a.dim() == b.dim() >= 2 and a.shape[:-2] == b.shape[:-2]


def _matmul_shares(inputs: Sequence[Tensor], output: Tensor | None, relevance: Tensor, epsilon: float):
    """:class:`Product` of ``a @ b``: halves of ``a * (R / z) @ b^T`` and ``b * a^T @ (R / z)``."""
    a, b = inputs
    if output is None:
        output = a @ b
    scaled = _scaled(relevance, output, epsilon)
    return [(scaled @ b.mT).mul_(a).mul_(0.5), (a.mT @ scaled).mul_(b).mul_(0.5)]


def _is_gated(inputs: Sequence[Tensor], shape: torch.Size) -> bool:
    """Whether one of two factors is shaped like the output and the other broadcast over it."""
    if len(inputs) != 2:
        return False
    full = [x.shape == shape for x in inputs]
    return full.count(True) == 1 and min(x.numel() for x in inputs) < max(x.numel() for x in inputs)


class Norm(Rule):
    r"""AttnLRP's rule for layer, group and RMS norms and ``F.normalize``: the scale held constant.

    :math:`y = (x - \bar x) / \sigma(x) \cdot w + b` is explained with :math:`1 / \sigma(x)` treated as a
    constant (the "identity rule" of AttnLRP for the normalization, as in Ali et al. 2022). What remains is
    affine in :math:`x`, :math:`y = J x + b` with the centering in :math:`J`, and takes the :math:`\epsilon`
    rule:

    .. math:: R_i = x_i \sum_j J_{ji} \frac{R_j}{y_j + \epsilon \operatorname{sgn}_+(y_j)}

    The bias :math:`b` absorbs its share, as in every linear layer. RMS norms and ``F.normalize`` have no
    centering.
    """

    kinds = frozenset({Kind.NORM})

    def __init__(self, epsilon: float = 1e-6) -> None:
        self.epsilon = check_number(epsilon, "epsilon")

    uses_output = True

    def forward(self, op, inputs):
        (x,) = inputs
        return op.evaluate(x)  # the output, and the scale 1 / sigma that backward holds constant

    def backward(self, op, inputs, output, context, relevance):
        (x,) = inputs
        if output is None:
            with torch.no_grad():
                output = op.fn(x)
        return [op.transpose(_scaled(relevance, output, self.epsilon), context).mul_(x)]


class Attention(Rule):
    r"""Scaled dot-product attention ``softmax(q k^T s + mask) v`` explained through its parts.

    AttnLRP (``conservative=False``, Achtibat et al. 2024): the weighted sum :math:`A v` takes
    :class:`Product` (half to :math:`A`, half to :math:`v`), the softmax :class:`Softmax`, the scores
    :math:`q k^T s` :class:`Product` again (a quarter of the relevance at :math:`A v`, before the softmax's
    bias, to each of :math:`q` and :math:`k`). An additive float mask takes its share of the scores by the
    :math:`\epsilon` rule; masked entries get none.

    CP-LRP (``conservative=True``, Ali et al. 2022): :math:`A` is a constant, and all relevance goes to
    :math:`v` by the :math:`\epsilon` rule; :math:`q` and :math:`k` get none.
    """

    kinds = frozenset({Kind.ATTENTION})

    def __init__(self, epsilon: float = 1e-6, conservative: bool = False) -> None:
        self.epsilon = check_number(epsilon, "epsilon")
        self.conservative = conservative

    uses_output = True

    def backward(self, op, inputs, output, context, relevance):
        # each is multiplied twice: one copy of a strided view (heads split off the features), not two
        key, value = op.expand_groups(op.key).contiguous(), op.expand_groups(op.value).contiguous()
        rows = _query_rows_with_relevance(relevance)
        query = op.query
        if rows is not None:  # only these queries' scores and weights are computed
            query, relevance = query[..., rows, :], relevance[..., rows, :]
            output = None if output is None else output[..., rows, :]
        products, scores, weights = op.scores(query, key, rows)
        if output is None:
            output = weights @ value
        scaled = _scaled(relevance, output, self.epsilon)
        value_gradient = op.sum_groups(weights.mT @ scaled, op.value)
        shares = {"value": value_gradient.mul_(op.value).mul_(1.0 if self.conservative else 0.5)}
        if not self.conservative:
            to_weights = (scaled.mul_(0.5) @ value.mT).mul_(weights)  # Product: half to the weights
            # Softmax's rule; masked entries have weight 0, so they get nothing
            to_scores = to_weights.addcmul_(weights, to_weights.sum(-1, keepdim=True), value=-1).mul_(scores)
            # the weights are read no more: their memory takes the stabilized denominator
            if scores is not products:  # an additive mask takes its share of the scores by the epsilon rule
                to_scores = _scaled(to_scores, scores, self.epsilon).mul_(products)
            scaled = _scaled(to_scores, products, self.epsilon, weights)  # Product: a quarter to q and k
            query_gradient = (scaled @ key).mul_(0.5 * op.scale)
            key_gradient = op.sum_groups(scaled.mT @ query, op.key).mul_(0.5 * op.scale)
            shares["query"] = query_gradient.mul_(query)
            shares["key"] = key_gradient.mul_(op.key)
            if rows is not None:
                shares["query"] = op.query.new_zeros(op.query.shape).index_copy_(-2, rows, shares["query"])
        return [shares.get(role) if role is not None else None for role in op.roles]


def _query_rows_with_relevance(relevance: Tensor) -> Tensor | None:
    """The query positions (dimension -2) whose attention output holds relevance, in any sample, head or
    feature, if at most half of them do (a model explained at one token: its last block attends from that
    token alone); else ``None``."""
    if relevance.dim() < 2:
        return None
    held = torch.linalg.vector_norm(relevance.reshape(-1, *relevance.shape[-2:]), 1, dim=(0, 2)) > 0
    rows = held.nonzero().flatten()
    return rows if 2 * len(rows) <= len(held) else None


class Detach(Rule):
    """Treat the operation's output as a constant: no relevance reaches the operation, and the operations that
    use its output see it as a fixed factor, like a weight. CP-LRP maps it to attention's softmax, so that the
    weighted sum ``A @ v`` is linear in ``v`` and takes the :math:`\\epsilon` rule."""

    kinds = frozenset(Kind) - {Kind.INPUT, Kind.OUTPUT, Kind.CONSTANT}
    detaches = True

    def backward(self, op, inputs, output, context, relevance):
        raise AssertionError("no relevance reaches a detached operation")


def _scaled(relevance: Tensor, z: Tensor, epsilon: float, spare: Tensor | None = None) -> Tensor:
    """``relevance / (z + epsilon sgn(z))``, zero where the denominator is zero. ``spare``, a tensor shaped
    like ``z`` that is read no more, takes the denominator instead of new memory."""
    fits = spare is not None and spare.shape == z.shape and spare.dtype == z.dtype and spare.is_contiguous()
    return _quotient(relevance, stabilize(z, epsilon, out=spare if fits else None), epsilon)
