"""The argument checks of relprop, in one wording: numbers, integers, finite tensors, the model, its input.

Each raises one line that names the argument and the value it got, e.g. ``epsilon must be a number >= 0, got
-1``; a value of the wrong kind is a ValueError as well as one out of range, unless stated otherwise.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor, nn

_TRAINING_SENSITIVE = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)


def check_number(value: float, name: str, minimum: float = 0.0, strict: bool = False) -> float:
    """Return ``value`` as a float, checked to be a finite real number ``>= minimum`` (``> minimum`` if
    ``strict``).

    Parameters
    ----------
    value : float
        The argument; bools are refused.
    name : str
        Its name, for the message.
    minimum : float
        The bound.
    strict : bool
        Whether ``value`` must exceed ``minimum`` rather than reach it.

    Raises
    ------
    ValueError
        ``"{name} must be a number >= {minimum}, got {value!r}"`` (``>`` if ``strict``).
    """
    real = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not (real and (value > minimum if strict else value >= minimum)):
        raise ValueError(f"{name} must be a number {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return float(value)


def check_int(value: int, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int, checked to be an integer (Python or NumPy, not a bool) ``>= minimum``.

    Raises
    ------
    ValueError
        ``"{name} must be an int >= {minimum}, got {value!r}"``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_seed(seed: int | None, name: str = "seed") -> int | None:
    """Return ``seed``, checked to be ``None`` (unseeded) or an int (not a bool).

    Raises
    ------
    TypeError
        ``"{name} must be None or an int, got {seed!r}"``.
    """
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"{name} must be None or an int, got {seed!r}")
    return seed


def all_finite(tensor: Tensor) -> bool:
    """Whether every element of ``tensor`` is finite.

    A NaN or an infinity makes every sum that contains it NaN or infinite, so a finite sum proves the
    tensor finite in one reduction; only a sum that is not finite (one of them, or an overflow of large
    values) takes the element-wise test, which is many times slower on large tensors (a language model's
    logits).
    """
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return True
    return bool(torch.isfinite(tensor.sum())) or bool(torch.isfinite(tensor).all())


def check_finite(tensor: Tensor, name: str) -> None:
    """Refuse anything but a floating-point tensor of finite values.

    Raises
    ------
    TypeError
        If ``tensor`` is not a floating-point ``torch.Tensor``.
    ValueError
        ``"{name} contains NaN or infinite values"``.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {tensor.dtype}")
    if not all_finite(tensor):
        raise ValueError(f"{name} contains NaN or infinite values")


def check_eval_mode(model: nn.Module) -> None:
    """Refuse a model whose batch normalizations or dropouts are in training mode."""
    training = [
        name or type(model).__name__
        for name, m in model.named_modules()
        if m.training and isinstance(m, _TRAINING_SENSITIVE)
    ]
    if training:
        raise ValueError(
            f"the model is in training mode ({', '.join(training[:3])}, ...): call model.eval() "
            "before explaining it"
        )


def check_input(x: Tensor, model: nn.Module, tokens: bool = False) -> None:
    """Refuse an input that is not a finite floating-point batch matching the model's dtype and device.

    With ``tokens`` (the model starts with an embedding) the input must instead be a batch of integer token
    ids on the model's device.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
    if tokens and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise TypeError(
            f"input must be an integer tensor of token ids (the model starts with an embedding), got "
            f"{x.dtype}"
        )
    if not tokens and not x.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got {x.dtype}")
    if x.device.type == "meta":
        raise TypeError("input is a meta tensor, which has a shape but no values")
    if x.dim() < 2:
        raise ValueError(f"input must have a batch dimension, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"input batch is empty (shape {tuple(x.shape)})")
    if not all_finite(x):
        finite = torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
        sample = int((~finite).nonzero()[0, 0])
        raise ValueError(f"input contains NaN or infinite values (sample {sample})")
    parameter = next(model.parameters(), None)
    if parameter is not None and (
        (parameter.dtype != x.dtype and not tokens) or parameter.device != x.device
    ):
        raise TypeError(
            f"input is {x.dtype} on {x.device} but the model's parameters are {parameter.dtype} on "
            f"{parameter.device}: convert one to match the other (e.g. model.to(x))"
        )


def check_token_ids(where: str, module: nn.Module | None, args: tuple) -> None:
    """Refuse token ids outside an embedding's vocabulary (``args``: the embedding call's arguments)."""
    ids = next((a for a in args if isinstance(a, Tensor) and not a.is_floating_point()), None)
    if module is not None:
        vocabulary = module.num_embeddings
    else:
        vocabulary = next((a.shape[0] for a in args if isinstance(a, Tensor) and a.is_floating_point()), None)
    if ids is None or vocabulary is None or ids.numel() == 0:
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocabulary:
        bad = low if low < 0 else high
        raise ValueError(f"token id {bad} is outside the vocabulary of {where} ({vocabulary} entries)")
