"""Pruning a chosen set of units: by masks (their parameters zeroed) or by removing them (a smaller model).

``keep`` maps each pruned layer's name to a boolean tensor with one entry per unit (``True``: kept). Masking
zeroes the unit's weight row and bias in the layer and its channel's parameters in every follower (batch norm
scale and shift, depthwise kernel and bias; see :mod:`relprop.prune.structure`), so that its channel is zero
where the next layers read it; removing deletes the same parameters and the consumers' input columns, so the
smaller model computes the same function as the masked one. :func:`mask_hooks` keeps masked parameters at zero
while the model trains (``torch.nn.utils.prune``), for fine-tuning between pruning rounds.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.nn.utils import prune as torch_prune

from relprop.prune.structure import layer_structure, trace

Keep = Mapping[str, Tensor]


def _checked(model: nn.Module, keep: Keep):
    """The structure of each layer in ``keep``, with its mask checked."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"the model must be a torch.nn.Module, got {type(model).__name__}")
    structures = []
    graph = trace(model)
    for name, mask in keep.items():
        structure = layer_structure(model, name, graph)
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != (structure.size,):
            raise ValueError(
                f"the mask of layer {name!r} must be a bool tensor of shape ({structure.size},), got "
                f"{getattr(mask, 'dtype', type(mask).__name__)} {tuple(getattr(mask, 'shape', ()))}"
            )
        if not mask.any():
            raise ValueError(f"the mask of layer {name!r} removes all {structure.size} units")
        structures.append((structure, mask))
    return structures


def _unit_parameters(model: nn.Module, keep: Keep) -> Iterator[tuple[nn.Module, str, Tensor]]:
    """``(module, parameter name, mask shaped like it)`` for every parameter that holds pruned units."""
    modules = dict(model.named_modules())
    for structure, mask in _checked(model, keep):
        for name in (structure.name, *structure.followers):
            module = modules[name]
            for parameter in ("weight", "bias"):
                value = getattr(module, parameter, None)
                if value is not None:
                    shape = (-1,) + (1,) * (value.dim() - 1)
                    yield module, parameter, mask.to(value.device).view(shape).expand_as(value)


def mask_units(model: nn.Module, keep: Keep, inplace: bool = False) -> nn.Module:
    """``model`` with the parameters of the units that ``keep`` marks ``False`` set to zero.

    Parameters
    ----------
    model : nn.Module
        The model; copied unless ``inplace``.
    keep : Mapping[str, Tensor]
        Per layer name, a bool tensor with one entry per unit, ``True`` for the units kept.
    inplace : bool, default False
        Modify ``model`` itself.

    Raises
    ------
    ValueError
        If a layer cannot be pruned (:func:`~relprop.prune.structure.layer_structure`) or a mask has the wrong
        type or shape, or keeps no unit.
    """
    model = model if inplace else copy.deepcopy(model)
    with torch.no_grad():
        for module, parameter, mask in _unit_parameters(model, keep):
            getattr(module, parameter).mul_(mask)
    return model


@contextmanager
def mask_hooks(model: nn.Module, keep: Keep) -> Iterator[nn.Module]:
    """Within the block, the pruned parameters of ``model`` stay zero whatever an optimizer does
    (``torch.nn.utils.prune.custom_from_mask``); on leaving it the masks are made permanent and the
    parameters are plain again."""
    hooked = []
    try:
        for module, parameter, mask in _unit_parameters(model, keep):
            torch_prune.custom_from_mask(module, parameter, mask)
            hooked.append((module, parameter))
        yield model
    finally:
        for module, parameter in hooked:
            torch_prune.remove(module, parameter)


def remove_units(model: nn.Module, keep: Keep, inplace: bool = False) -> nn.Module:
    """``model`` without the units that ``keep`` marks ``False``: smaller layers, the same function as
    :func:`mask_units` gives.

    Parameters and errors as :func:`mask_units`.
    """
    structures = _checked(model, keep)
    model = model if inplace else copy.deepcopy(model)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for structure, mask in structures:
            _shrink_outputs(modules[structure.name], mask)
            for follower in structure.followers:
                _shrink_outputs(modules[follower], mask)
            for consumer in structure.consumers:
                _shrink_inputs(modules[consumer], mask, structure.size)
    return model


def _shrink_outputs(module: nn.Module, mask: Tensor) -> None:
    """Keep the output channels (features) ``mask`` marks, in a layer, batch norm or depthwise convolution."""
    mask = mask.to(module.weight.device)
    count = int(mask.sum())
    for parameter in ("weight", "bias"):
        value = getattr(module, parameter, None)
        if value is not None:
            setattr(module, parameter, nn.Parameter(value[mask].clone(), value.requires_grad))
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        module.num_features = count
        for buffer in ("running_mean", "running_var"):
            if getattr(module, buffer) is not None:
                setattr(module, buffer, getattr(module, buffer)[mask].clone())
    elif isinstance(module, nn.Linear):
        module.out_features = count
    else:  # a convolution; a depthwise one has as many groups and inputs as outputs
        if module.groups > 1:
            module.groups = module.in_channels = count
        module.out_channels = count


def _shrink_inputs(module: nn.Module, mask: Tensor, units: int) -> None:
    """Keep the input columns of the units ``mask`` marks, in a layer that reads ``units`` units (a dense
    layer after flattening reads ``in_features / units`` columns per unit, channel by channel)."""
    width = module.in_features if isinstance(module, nn.Linear) else module.in_channels
    if width % units:
        raise ValueError(f"layer reads {width} inputs, not a multiple of the {units} units before it")
    columns = mask.to(module.weight.device).repeat_interleave(width // units)
    module.weight = nn.Parameter(module.weight[:, columns].clone(), module.weight.requires_grad)
    if isinstance(module, nn.Linear):
        module.in_features = int(columns.sum())
    else:
        module.in_channels = int(columns.sum())
