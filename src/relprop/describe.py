"""Complete, stable descriptions of rules, composites and their parameters.

A store recognises a run by the description of its composite, so two composites that explain differently
must never be described alike: every constructor argument appears, nested rules by their own description,
tensors by value (not by torch's abbreviated print), module types and functions by their qualified names.
Numbers are described as floats, so that ``low=0`` and ``low=0.0`` count as the same run.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

__all__ = ["constructor_arguments", "describe", "describe_call"]


def describe(value: Any) -> str:
    """A text that determines ``value``: equal for equal parameters, different for different ones."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return repr(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return repr(float(value))
    if isinstance(value, (torch.Tensor, np.ndarray)):
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        return f"tensor({describe(array.tolist())}, shape={list(array.shape)})"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(describe(item) for item in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{describe(key)}: {describe(item)}" for key, item in value.items()) + "}"
    if isinstance(value, type) or inspect.isroutine(value):
        module = getattr(value, "__module__", None)
        name = getattr(value, "__qualname__", getattr(value, "__name__", repr(value)))
        return f"{module}.{name}" if module else name
    return repr(value)


def describe_call(obj: Any, arguments: dict[str, Any]) -> str:
    """``Type(name=description, ...)`` for the given constructor ``arguments`` of ``obj``."""
    shown = ", ".join(f"{name}={describe(value)}" for name, value in arguments.items())
    return f"{type(obj).__name__}({shown})"


def constructor_arguments(obj: Any) -> dict[str, Any] | None:
    """The arguments of ``type(obj).__init__`` as ``obj`` keeps them (attributes of the same names), or
    None if one of them is not kept."""
    arguments = {}
    for name, parameter in inspect.signature(type(obj).__init__).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if name not in vars(obj):
            return None
        arguments[name] = vars(obj)[name]
    return arguments
