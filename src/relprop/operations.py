"""Views of graph operations as the linear maps that LRP rules act on.

Every rule for a linear operation sees it through :class:`Affine` or :class:`Weightless`:

* :class:`Affine` is ``z = f(x; W, b)``, linear in ``x`` for ``b = None`` (dense layers, convolutions,
  transposed convolutions, batch normalization as a per-channel scaling, and layers with a batch
  normalization folded into them);
* :class:`Weightless` is ``z = sum_k s_k f(x_k) + c`` with scalar weights ``s_k`` and a positive linear map
  ``f`` (average pooling, sum and mean reductions, residual additions and subtractions).

A rule modifies the weights with a function (``w -> w.clamp(min=0)``, ``w -> w + gamma * w.clamp(min=0)``,
...), which may carry a variant that works in place (:func:`with_in_place`); on a weightless operation that
function acts on the scalar weights ``s_k``, so that the positive part of an average pooling is the pooling
itself and its negative part is zero, as the equations say.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Modifier = Callable[[Tensor], Tensor]


def keep(tensor: Tensor) -> Tensor:
    """The identity modifier: leaves weights or biases as they are."""
    return tensor


def with_in_place(modifier: Modifier, in_place: Modifier) -> Modifier:
    """``modifier``, with ``in_place`` as its variant that overwrites its argument: used on weights computed
    at each use (folded layers), which saves allocating a second weight-sized tensor."""
    modifier.in_place = in_place  # type: ignore[attr-defined]
    return modifier


class Affine:
    """An operation ``z = fn(x, weight, bias)`` that is linear in ``x`` once the bias is dropped.

    Parameters
    ----------
    fn:
        ``fn(x, weight, bias)``; ``bias`` may be ``None``.
    weight:
        The weight, detached from autograd, or a function without arguments that computes it at each use
        (folded layers: an operation held from the forward to the backward pass then holds no copy of it).
    bias:
        The bias, detached from autograd, or ``None``.
    channel_dim:
        The dimension of ``z`` along which ``bias`` is laid out (1 for convolutions, -1 for dense layers).
    transpose:
        ``transpose(cotangent, weight, x)``: the transpose of the linear map ``x -> fn(x, weight, None)``
        applied to ``cotangent``, i.e. its vector-Jacobian product, computed without a forward pass; of
        ``x`` only the shape and memory layout are read. It also takes stacked cotangents, with a leading
        dimension (of concepts) more than ``x``, and returns as many results stacked the same way. ``None``
        if unknown (then rules differentiate ``fn``).
    input_dims:
        ``(dimension of x, dimension of the weight)`` that hold the input features, such that stacking
        inputs along the first and weights along the second sums the operations:
        ``fn(cat([x1, x2]), cat([w1, w2]), None) = fn(x1, w1, None) + fn(x2, w2, None)``. A rule can so
        apply several weights in one pass. ``None`` where this does not hold (grouped convolutions).
    plain:
        ``plain(x)``: the operation with its parameters unmodified, computed as the model computes it (a
        layer with a folded batch normalization: the layer, then the normalization). It equals
        ``fn(x, weight, bias)`` up to rounding, needs no folded weight, and gives the model's own outputs.
        ``None``: ``fn(x, weight, bias)``.
    """

    weighted = True

    def __init__(
        self,
        fn: Callable,
        weight: Tensor | Callable[[], Tensor],
        bias: Tensor | None,
        channel_dim: int,
        transpose: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None,
        input_dims: tuple[int, int] | None = None,
        plain: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.fn = fn
        self._weight = weight
        self.bias = bias
        self.channel_dim = channel_dim
        self.transpose = transpose
        self.input_dims = input_dims
        self.plain = plain

    @property
    def weight(self) -> Tensor:
        return self._weight() if callable(self._weight) else self._weight

    def forward(
        self, inputs: Sequence[Tensor], weight: Modifier = keep, bias: Modifier | None = keep
    ) -> Tensor:
        """Evaluate with modified parameters; ``bias=None`` drops the bias."""
        (x,) = inputs
        if weight is keep and bias is keep:
            return self.evaluate(x)
        return self.fn(x, *self.parameters(weight, bias))

    def evaluate(self, x: Tensor) -> Tensor:
        """The operation with its parameters unmodified."""
        return self.plain(x) if self.plain is not None else self.fn(x, self.weight, self.bias)

    def parameters(
        self, weight: Modifier = keep, bias: Modifier | None = keep
    ) -> tuple[Tensor, Tensor | None]:
        """The modified weight and bias; ``bias=None`` drops the bias."""
        if callable(self._weight):  # computed now, so no one else holds it: modified in place if possible
            modified = getattr(weight, "in_place", weight)(self._weight())
        else:
            modified = weight(self._weight)
        return modified, None if bias is None or self.bias is None else bias(self.bias)

    def bias_term(self, bias: Modifier, like: Tensor) -> Tensor | float:
        """The (modified) bias as it is added to an output shaped like ``like``."""
        if self.bias is None:
            return 0.0
        shape = [1] * like.dim()
        shape[self.channel_dim] = -1
        return bias(self.bias).reshape(shape)


class Weightless:
    """An operation ``z = sum_k s_k fn(x_k) + constant`` with scalar weights ``s_k``.

    ``fn`` is a linear map with positive weights (identity, average pooling, sum or mean); the scalars
    ``s_k`` are +1 for an addition, -1 for a subtracted operand.
    """

    weighted = False

    def __init__(
        self, fn: Callable[[Tensor], Tensor], scalars: Sequence[float], constant: Tensor | float = 0.0
    ) -> None:
        self.fn = fn
        self.scalars = tuple(float(s) for s in scalars)
        self.constant = constant

    def forward(
        self, inputs: Sequence[Tensor], weight: Modifier = keep, bias: Modifier | None = keep
    ) -> Tensor | None:
        """Evaluate with modified scalar weights; ``None`` when every modified weight is zero."""
        factors = weight(torch.tensor(self.scalars, dtype=torch.float64)).tolist()
        out = None
        for x, factor in zip(inputs, factors):
            if factor == 0.0:
                continue
            term = self.fn(x)
            term = term if factor == 1.0 else factor * term
            out = term if out is None else out + term
        if out is not None and bias is not None and not _is_zero(self.constant):
            out = out + self.bias_term(bias, out)
        return out

    def bias_term(self, bias: Modifier, like: Tensor) -> Tensor | float:
        """The (modified) constant added to the output."""
        if _is_zero(self.constant):
            return 0.0
        return bias(torch.as_tensor(self.constant, dtype=like.dtype, device=like.device))


class MaxPool:
    """Max pooling over windows of ``kernel_size`` (any dimension), for the winner-take-all rule."""

    def __init__(self, kernel_size, stride, padding, dilation, ceil_mode: bool, dims: int) -> None:
        def expand(value):
            return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims

        self.kernel_size = expand(kernel_size)
        self.stride = expand(stride if stride else kernel_size)
        self.padding = expand(padding)
        self.dilation = expand(dilation)
        self.ceil_mode = ceil_mode
        self.dims = dims

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        (x,) = inputs
        pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[self.dims - 1]
        return pool(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)


class Call:
    """Any other operation: ``fn(*inputs)``; ``module`` is the module it calls, if it is a module call.

    ``product`` is ``"multiply"`` or ``"divide"`` for the element-wise ``a * b`` and ``a / b`` (the first
    input is the numerator), else empty.
    """

    def __init__(self, fn: Callable[..., Tensor], module: nn.Module | None = None, product: str = "") -> None:
        self.fn = fn
        self.module = module
        self.product = product

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        return self.fn(*inputs)


class Normalization:
    """A normalization ``y = (x - mean(x)) / std(x) * weight + bias`` (or without centering: RMS norms and
    ``F.normalize``), viewed with its scale ``1 / std`` held fixed: then it is affine in ``x``.

    Parameters
    ----------
    fn:
        The normalization as the model computes it: ``fn(x)``.
    scale:
        ``scale(x)``: the scale ``1 / std(x)``, shaped to broadcast over ``x``.
    transpose:
        ``transpose(cotangent, scale)``: the transpose of the linear part of the normalization at the fixed
        ``scale``, applied to ``cotangent`` (its vector-Jacobian product), in closed form.
    evaluate:
        ``evaluate(x)``: ``(fn(x), scale(x))`` in one pass, where the normalization's kernel gives both
        (layer norms); by default the two are computed one after the other.
    """

    def __init__(
        self,
        fn: Callable[[Tensor], Tensor],
        scale: Callable[[Tensor], Tensor],
        transpose: Callable[[Tensor, Tensor], Tensor],
        evaluate: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None,
    ) -> None:
        self.fn = fn
        self.scale = scale
        self.transpose = transpose
        self.evaluate = evaluate if evaluate is not None else lambda x: (fn(x), scale(x))

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        (x,) = inputs
        return self.fn(x)


class Softmax:
    """``softmax(x)`` along dimension ``dim``: ``fn(x)``."""

    def __init__(self, fn: Callable[[Tensor], Tensor], dim: int) -> None:
        self.fn = fn
        self.dim = dim

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        (x,) = inputs
        return self.fn(x)


class Attention:
    """Scaled dot-product attention ``softmax(q k^T scale + mask) v`` (``F.scaled_dot_product_attention``).

    Parameters
    ----------
    query, key, value:
        The three tensors, ``(..., L, E)``, ``(..., S, E)`` and ``(..., S, Ev)``.
    mask:
        ``None``, a boolean mask (``True``: attend) or an additive float mask, broadcast to ``(..., L, S)``.
    causal:
        Whether a query attends only to keys at or before its position.
    scale:
        The factor of the scores; ``None``: ``1 / sqrt(E)``.
    grouped:
        Grouped-query attention: key and value have fewer heads (dimension -3) than the query.
    roles:
        For each operand that carries relevance, which of ``"query"``, ``"key"``, ``"value"`` it is (``None``
        for an operand that is only the mask).
    """

    def __init__(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None,
        causal: bool,
        scale: float | None,
        grouped: bool,
        roles: Sequence[str | None],
    ) -> None:
        self.query, self.key, self.value = query, key, value
        self.mask = mask
        self.causal = causal
        self.scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
        self.grouped = grouped
        self.roles = tuple(roles)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        return F.scaled_dot_product_attention(
            self.query,
            self.key,
            self.value,
            self.mask,
            is_causal=self.causal,
            scale=self.scale,
            enable_gqa=self.grouped,
        )

    def expand_groups(self, tensor: Tensor) -> Tensor:
        """Key or value heads repeated to the query's heads (grouped-query attention); else ``tensor``."""
        if self.grouped and tensor.shape[-3] != self.query.shape[-3]:
            return tensor.repeat_interleave(self.query.shape[-3] // tensor.shape[-3], dim=-3)
        return tensor

    def sum_groups(self, tensor: Tensor, like: Tensor) -> Tensor:
        """The transpose of :meth:`expand_groups`: per-query-head values summed into ``like``'s heads."""
        if tensor.shape[-3] != like.shape[-3]:
            return tensor.unflatten(-3, (like.shape[-3], -1)).sum(-3)
        return tensor

    def scores(self, query: Tensor, key: Tensor, rows: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The steps before the weighted sum: ``(q k^T scale, scores, softmax weights)``, with ``key``'s heads
        already those of the query; with ``rows`` (indices of query positions), of those rows only, for
        ``query`` of those rows (``self.query[..., rows, :]``).

        The scores are ``q k^T scale`` plus a float mask (the same tensor as the products without one). Masked
        entries (a boolean mask, causal attention, ``-inf`` in a float mask) are excluded from the weights
        (exactly zero) but keep finite scores, so that products with them stay finite.
        """
        products = (query * self.scale) @ key.transpose(-2, -1)
        scores = products
        allowed = None
        mask = self.mask
        if rows is not None and mask is not None and mask.dim() >= 2 and mask.shape[-2] > 1:
            mask = mask[..., rows, :]
        if self.causal:
            length, source = self.query.shape[-2], products.shape[-1]
            allowed = torch.ones(length, source, dtype=torch.bool, device=products.device).tril()
            allowed = allowed if rows is None else allowed[rows]
        if mask is not None and mask.dtype == torch.bool:
            allowed = mask if allowed is None else allowed & mask
        elif mask is not None:
            finite = torch.isfinite(mask)
            if finite.all():
                scores = products + mask
            else:
                scores = products + mask.masked_fill(~finite, 0.0)
                allowed = finite if allowed is None else allowed & finite
        if allowed is not None and not allowed.all():  # an all-True mask (no padding) masks nothing
            return products, scores, torch.softmax(scores.masked_fill(~allowed, -torch.inf), dim=-1)
        return products, scores, torch.softmax(scores, dim=-1)


Operation = Affine | Weightless | MaxPool | Call | Normalization | Softmax | Attention


def linear(module: nn.Linear) -> Affine:
    """``nn.Linear`` as an affine operation."""
    return Affine(
        F.linear,
        module.weight.detach(),
        _detach(module.bias),
        channel_dim=-1,
        transpose=linear_transpose,
        input_dims=(-1, 1),
    )


def linear_transpose(cotangent: Tensor, weight: Tensor, x: Tensor) -> Tensor:
    """The transpose of ``x -> x @ weight.T`` (a dense layer) applied to ``cotangent``."""
    return cotangent @ weight


def convolution(module: nn.modules.conv._ConvNd) -> Affine:
    """A convolution or transposed convolution as an affine operation."""
    if module.transposed:
        if module.padding_mode != "zeros":
            raise ValueError(f"transposed convolution with padding_mode={module.padding_mode!r}")
        transpose = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[module.weight.dim() - 3]

        def fn(x, weight, bias):
            return transpose(
                x,
                weight,
                bias,
                module.stride,
                module.padding,
                module.output_padding,
                module.groups,
                module.dilation,
            )
    else:
        fn = module._conv_forward
    return Affine(
        fn,
        module.weight.detach(),
        _detach(module.bias),
        channel_dim=1,
        transpose=_conv_transpose(module),
        # the weight's input channels: dimension 1, or 0 for a transposed convolution
        input_dims=(1, 0 if module.transposed else 1) if module.groups == 1 else None,
    )


def _conv_transpose(module: nn.modules.conv._ConvNd) -> Callable[[Tensor, Tensor, Tensor], Tensor] | None:
    """The transpose of a convolution (a transposed convolution) or of a transposed one (a convolution)."""
    dims = module.weight.dim() - 2
    stride, padding, dilation, groups = module.stride, module.padding, module.dilation, module.groups
    if module.transposed:
        conv = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
        return _folding(
            lambda cotangent, weight, x: conv(cotangent, weight, None, stride, padding, dilation, groups)
        )
    if module.padding_mode != "zeros" or isinstance(padding, str):
        return None
    conv_transpose = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[dims - 1]
    kernel = module.kernel_size

    # a transposed convolution, not aten's convolution_backward: oneDNN runs it as fast or faster (1.3x to
    # 2x on the 64 channels at 224x224 of vgg16), and it reads only the input's size
    def transpose(cotangent: Tensor, weight: Tensor, x: Tensor) -> Tensor:
        # the input's last rows and columns that the stride skipped, which the transpose must restore
        output_padding = [
            size - ((z - 1) * s - 2 * p + d * (k - 1) + 1)
            for size, z, s, p, d, k in zip(
                x.shape[-dims:], cotangent.shape[-dims:], stride, padding, dilation, kernel
            )
        ]
        return conv_transpose(cotangent, weight, None, stride, padding, output_padding, groups, dilation)

    return _folding(transpose)


def _folding(
    transpose: Callable[[Tensor, Tensor, Tensor], Tensor],
) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """A convolution's transpose that also takes stacked cotangents ``(K, *z.shape)``: the concepts folded
    into the batch, one pass for all (of the input ``x`` the transpose reads only its spatial size)."""

    def folded(cotangent: Tensor, weight: Tensor, x: Tensor) -> Tensor:
        if cotangent.dim() == x.dim():
            return transpose(cotangent, weight, x)
        return transpose(cotangent.flatten(0, 1), weight, x).unflatten(0, cotangent.shape[:2])

    return folded


def batch_norm_scale(module: nn.modules.batchnorm._BatchNorm) -> tuple[Tensor, Tensor]:
    """The per-channel scale and shift ``(a, c)`` with ``bn(x) = a x + c`` (evaluation mode)."""
    std = (module.running_var.detach() + module.eps).sqrt()
    scale = 1.0 / std if module.weight is None else module.weight.detach() / std
    shift = -module.running_mean.detach() * scale
    if module.bias is not None:
        shift = shift + module.bias.detach()
    return scale, shift


def batch_norm(module: nn.modules.batchnorm._BatchNorm) -> Affine:
    """A batch normalization in evaluation mode as a per-channel affine operation."""
    return per_channel(*batch_norm_scale(module))


def per_channel(scale: Tensor, shift: Tensor) -> Affine:
    """The per-channel affine operation ``x * scale + shift`` along dimension 1."""

    def fn(x, weight, bias):
        out = x * _per_channel(weight, x)
        return out if bias is None else out + _per_channel(bias, x)

    def transpose(cotangent, weight, x):
        return cotangent * _per_channel(weight, x)

    return Affine(fn, scale, shift, channel_dim=1, transpose=transpose)


def _per_channel(values: Tensor, like: Tensor) -> Tensor:
    shape = [1] * like.dim()
    shape[1] = -1
    return values.reshape(shape)


def fold_batch_norm(op: Affine, module: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> Affine:
    """The operation ``bn(op(x))`` as one affine operation (canonization).

    The folded weight is computed at each use, so that an operation held from the forward to the backward pass
    holds no copy of it; with unmodified parameters the operation is evaluated unfolded, as the model does.
    """
    scale, shift = batch_norm_scale(bn)
    out_dim = 1 if getattr(module, "transposed", False) else 0

    def weight() -> Tensor:
        base = op.weight
        shape = [1] * base.dim()
        shape[out_dim] = -1
        return base * scale.reshape(shape)

    def plain(x: Tensor) -> Tensor:
        statistics = (bn.running_mean, bn.running_var, _detach(bn.weight), _detach(bn.bias))
        return F.batch_norm(op.evaluate(x), *statistics, False, 0.0, bn.eps)

    bias = shift if op.bias is None else op.bias * scale + shift
    return Affine(op.fn, weight, bias, op.channel_dim, op.transpose, op.input_dims, plain)


def _is_zero(value: Tensor | float) -> bool:
    return isinstance(value, (int, float)) and value == 0


def _detach(tensor: Tensor | None) -> Tensor | None:
    return None if tensor is None else tensor.detach()
