"""relprop: Layer-wise Relevance Propagation and its family for PyTorch models.

The names below are imported when first used (PEP 562), so that importing ``relprop`` alone, as the command
line does before it knows what to run, does not import torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

__all__ = ["LRP", "Audit", "UnsupportedOperationError", "canonizers", "composites", "rules", "types"]

#: Where each name of ``__all__`` comes from: a class of a module, or (``None``) the submodule itself.
_SOURCES = {
    "LRP": "relprop.lrp",
    "Audit": "relprop.audit",
    "UnsupportedOperationError": "relprop.graph",
    "canonizers": None,
    "composites": None,
    "rules": None,
    "types": None,
}


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module 'relprop' has no attribute {name!r}")
    module = _SOURCES[name]
    value = (
        importlib.import_module(f"relprop.{name}")
        if module is None
        else getattr(importlib.import_module(module), name)
    )
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
