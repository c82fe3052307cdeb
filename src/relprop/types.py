"""Layer types that composites map rules to.

A composite maps rules to graph operations by *type*: a module class (``torch.nn.Conv2d``), a tuple of
classes, or one of the groups below. Operations written functionally are given the type of the module
that would compute them (``F.relu`` is a ``torch.nn.ReLU``, ``F.adaptive_avg_pool2d`` an
``torch.nn.AdaptiveAvgPool2d``); the arithmetic operators and products of tensors, which have no module,
get the marker classes :class:`Add`, :class:`Multiply`, :class:`Reduce`, :class:`MatMul`, :class:`Attention`
and :class:`Normalize`.
"""

from __future__ import annotations

from torch import nn


class Add:
    """Marker type of ``a + b`` and ``a - b`` (``operator.add``, ``torch.add``, ``Tensor.sub``, ...)."""


class Multiply:
    """Marker type of ``a * b`` and ``a / b`` (gates such as squeeze-and-excitation, scalings)."""


class Reduce:
    """Marker type of sum and mean reductions (``torch.sum``, ``Tensor.mean``, ...)."""


class Scale:
    """Marker type of element-wise affine maps with constant factors: ``torch.addcmul(b, a, x) = b + a * x``
    (timm's ResMLP)."""


class MatMul:
    """Marker type of products of tensors: ``a @ b``, ``torch.matmul``, ``bmm``, ``einsum``, ``baddbmm``."""


class Attention:
    """Marker type of ``F.scaled_dot_product_attention``: ``softmax(q k^T scale + mask) v`` in one call."""


class Pointwise:
    """Marker type of an element-wise function written as arithmetic (GPT-2's GELU: ``pow``, ``tanh``)."""


class Normalize:
    """Marker type of ``F.normalize``: ``x / max(||x||_p, eps)``."""


Convolution = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
"""Convolutions and transposed convolutions, any dimension."""

Dense = (nn.Linear,)
"""Fully connected layers."""

Linear = Convolution + Dense
"""Every layer with a weight matrix: what zennit calls ``Linear``. "The first layer" is the first of these."""

BatchNorm = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
"""Batch normalizations that canonization could not fold into a preceding layer."""

AvgPool = (
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    Reduce,
)
"""Weightless linear operations with positive weights: average pooling and sum/mean reductions."""

MaxPool = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
"""Max pooling."""

Norm = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, Normalize)
"""Normalizations by statistics of the sample: layer, group and RMS norms, ``F.normalize``."""

Softmax = (nn.Softmax,)
"""Softmax, as a module or a function."""

Activation = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.Softsign,
    nn.LogSigmoid,
    nn.Tanhshrink,
    Pointwise,
)
"""Element-wise activations."""
