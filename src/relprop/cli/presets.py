"""Former home of the registry of methods and composites, now :mod:`relprop.methods.registry`; its names
stay importable from here."""

from relprop.methods.registry import (
    COMPOSITES,
    EXPLAINERS,
    METHODS,
    Explainer,
    MethodOptions,
    last_convolution,
    make_composite,
    make_explainer,
)

__all__ = [
    "COMPOSITES",
    "EXPLAINERS",
    "METHODS",
    "Explainer",
    "MethodOptions",
    "last_convolution",
    "make_composite",
    "make_explainer",
]
