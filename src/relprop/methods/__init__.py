"""Attribution methods behind relprop's calling convention, to compare LRP with the methods users know.

Every method is a class: ``explainer = Method(model, ...)`` takes the parameters, and
``explainer(x, target)`` returns an attribution shaped like ``x`` (same dtype and device), with the
``target`` semantics of :class:`relprop.LRP` (see :func:`relprop.targets.target_weights`).
:mod:`relprop.methods.registry` names them (``lrp``, ``gradient``, ...) and makes them by name.
"""

from relprop.lrp import LRP
from relprop.methods.backprop import Deconvnet, GuidedBackprop
from relprop.methods.cam import GradCAM
from relprop.methods.excitation import ExcitationBackprop
from relprop.methods.gradient import Gradient, InputXGradient
from relprop.methods.integrated import IntegratedGradients
from relprop.methods.occlusion import Occlusion
from relprop.methods.registry import (
    COMPOSITE_NAMES,
    METHOD_NAMES,
    MethodOptions,
    last_convolution,
    make_composite,
    make_explainer,
)
from relprop.methods.rollout import AttentionRollout
from relprop.methods.smoothing import SmoothGrad
from relprop.methods.surrogate import LIME, KernelSHAP

__all__ = [
    "COMPOSITE_NAMES",
    "LIME",
    "LRP",
    "AttentionRollout",
    "Deconvnet",
    "ExcitationBackprop",
    "GradCAM",
    "Gradient",
    "GuidedBackprop",
    "InputXGradient",
    "IntegratedGradients",
    "KernelSHAP",
    "METHOD_NAMES",
    "MethodOptions",
    "Occlusion",
    "SmoothGrad",
    "last_convolution",
    "make_composite",
    "make_explainer",
]
