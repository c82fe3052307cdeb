"""Capturing a model's graph with ``torch.export``, for models that ``torch.fx`` cannot trace.

``torch.fx`` traces Python symbolically: it fails on models that branch on shapes or iterate over tensors
(Hugging Face ``transformers``, timm's ViTs) and keeps functions marked ``torch.fx.wrap`` whole (torchvision's
Swin attention). ``torch.export`` runs the model on the example inputs and records the ATen operations it
computes, with shapes specialized to those inputs. Its operations are classified by :data:`EQUIVALENTS`, the
``torch`` function that computes the same thing, so that both captures get the same rules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.utils import _pytree as pytree

aten = torch.ops.aten

EQUIVALENTS = {
    aten.linear.default: F.linear,
    aten.addmm.default: torch.addmm,
    aten.batch_norm.default: F.batch_norm,
    aten.dropout.default: F.dropout,
    aten.conv1d.default: F.conv1d,
    aten.conv2d.default: F.conv2d,
    aten.conv3d.default: F.conv3d,
    aten.relu.default: F.relu,
    aten.relu_.default: F.relu,
    aten.gelu.default: F.gelu,
    aten.gelu_.default: F.gelu,
    aten.silu.default: F.silu,
    aten.silu_.default: F.silu,
    aten.tanh.default: torch.tanh,
    aten.sigmoid.default: torch.sigmoid,
    aten.hardtanh.default: F.hardtanh,
    aten.hardtanh_.default: F.hardtanh,
    aten.hardswish.default: F.hardswish,
    aten.hardsigmoid.default: F.hardsigmoid,
    aten.leaky_relu.default: F.leaky_relu,
    aten.elu.default: F.elu,
    aten.mish.default: F.mish,
    aten.softplus.default: F.softplus,
    aten.clamp.default: torch.clamp,
    aten.add.Tensor: torch.add,
    aten.add_.Tensor: torch.add,
    aten.sub.Tensor: torch.sub,
    aten.neg.default: torch.neg,
    aten.mul.Tensor: torch.mul,
    aten.mul_.Tensor: torch.mul,
    aten.div.Tensor: torch.div,
    aten.mean.dim: torch.mean,
    aten.sum.dim_IntList: torch.sum,
    aten.adaptive_avg_pool1d.default: F.adaptive_avg_pool1d,
    aten.adaptive_avg_pool2d.default: F.adaptive_avg_pool2d,
    aten.avg_pool1d.default: F.avg_pool1d,
    aten.avg_pool2d.default: F.avg_pool2d,
    aten.avg_pool3d.default: F.avg_pool3d,
    aten.max_pool1d.default: F.max_pool1d,
    aten.max_pool2d.default: F.max_pool2d,
    aten.max_pool3d.default: F.max_pool3d,
    aten.layer_norm.default: F.layer_norm,
    aten.group_norm.default: F.group_norm,
    aten.rms_norm.default: F.rms_norm,
    aten.softmax.int: F.softmax,
    aten._softmax.default: F.softmax,
    aten.matmul.default: torch.matmul,
    aten.bmm.default: torch.bmm,
    aten.mm.default: torch.mm,
    aten.einsum.default: torch.einsum,
    aten.baddbmm.default: torch.baddbmm,
    aten.scaled_dot_product_attention.default: F.scaled_dot_product_attention,
    aten.embedding.default: F.embedding,
    aten.view.default: torch.reshape,
    aten.reshape.default: torch.reshape,
    aten._unsafe_view.default: torch.reshape,
    aten.permute.default: torch.permute,
    aten.transpose.int: torch.transpose,
    aten.t.default: torch.t,
    aten.mT.default: torch.adjoint,  # the same for real tensors, which are all relprop explains
    aten.unsqueeze.default: torch.unsqueeze,
    aten.squeeze.dim: torch.squeeze,
    aten.squeeze.dims: torch.squeeze,
    aten.squeeze.default: torch.squeeze,
    aten.cat.default: torch.cat,
    aten.stack.default: torch.stack,
    aten.split.Tensor: torch.split,
    aten.split_with_sizes.default: torch.split,
    aten.chunk.default: torch.chunk,
    aten.unbind.int: torch.unbind,
    aten.narrow.default: torch.narrow,
    aten.index_select.default: torch.index_select,
    aten.select.int: torch.select,
    aten.slice.Tensor: torch.narrow,
    aten.flatten.using_ints: torch.flatten,
    aten.unflatten.int: torch.unflatten,
    aten.pad.default: F.pad,
    aten.constant_pad_nd.default: F.pad,
    aten.roll.default: torch.roll,
    aten.flip.default: torch.flip,
    aten.movedim.int: torch.movedim,
    aten.swapaxes.default: torch.swapaxes,
    aten.clone.default: torch.clone,
    aten.alias.default: torch.clone,
    aten.contiguous.default: torch.clone,
    aten.expand.default: torch.broadcast_to,
    aten.repeat.default: torch.tile,
    aten._to_copy.default: torch.clone,
    aten.to.dtype: torch.clone,
    aten.to.dtype_layout: torch.clone,
    aten.to.device: torch.clone,
    aten.type_as.default: torch.clone,
    aten.masked_fill.Scalar: torch.masked_fill,
    aten.pow.Tensor_Scalar: torch.pow,
    aten.exp.default: torch.exp,
    aten.log.default: torch.log,
    aten.sqrt.default: torch.sqrt,
    aten.rsqrt.default: torch.rsqrt,
    aten.erf.default: torch.erf,
    aten.abs.default: torch.abs,
    aten.reciprocal.default: torch.reciprocal,
    aten.sin.default: torch.sin,
    aten.cos.default: torch.cos,
}
"""Each ATen operation that relprop explains, and the ``torch`` function that computes the same, by which it
is classified (the ATen operation itself is what runs). ATen's batch normalization takes its arguments in
another order than ``F.batch_norm``: :mod:`relprop.graph` binds it by target."""


def export(model: nn.Module, args: tuple, kwargs: dict) -> fx.GraphModule:
    """The graph of ``model(*args, **kwargs)`` as ``torch.export`` records it (static shapes).

    A model that computes its shapes as tensors provides ``model.specialized(*args, **kwargs)``: the model
    for inputs of these shapes, taking the inputs in the order of :func:`flatten_inputs`, which is exported
    instead (:class:`relprop.onnx.OnnxModel`).

    Raises
    ------
    TypeError
        If ``torch.export`` cannot capture the model, naming the cause.
    """
    captured, specialized = model, getattr(model, "specialized", None)
    if callable(specialized):
        captured, args, kwargs = specialized(*args, **kwargs), tuple(flatten_inputs(args, kwargs)), {}
    try:
        program = torch.export.export(captured, args, kwargs, strict=False)
    except Exception as error:  # torch.export raises many kinds of errors on code it cannot capture
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TypeError(
            f"relprop could not capture {type(model).__name__} with torch.export: {first}"
        ) from error
    return program.module()


def flatten_inputs(args: tuple, kwargs: dict) -> list:
    """The leaves of a call's arguments, in the order of an exported graph's placeholders."""
    return pytree.tree_leaves((args, kwargs))


def output_structure(graph_module: fx.GraphModule, leaves: list) -> object:
    """The model's output structure (a tuple, a dict, a Hugging Face ``ModelOutput``) with ``leaves`` in place
    of its tensors."""
    spec = getattr(graph_module, "_out_spec", None)
    return leaves if spec is None else pytree.tree_unflatten(leaves, spec)
