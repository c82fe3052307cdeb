"""The registry of explanation methods and composite presets by name: the names (``lrp``, ``gradient``,
``epsilon-gamma-box``, ...) that the commands take, and the functions that make a method or a composite from
its name, for the command line and for Python users alike.

>>> from relprop.methods import MethodOptions, make_explainer
>>> explainer = make_explainer("smoothgrad", model, MethodOptions(samples=16))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from relprop import composites
from relprop.composites import Composite
from relprop.explainer import Explainer
from relprop.lrp import LRP
from relprop.methods.backprop import Deconvnet, GuidedBackprop
from relprop.methods.cam import GradCAM
from relprop.methods.excitation import ExcitationBackprop
from relprop.methods.gradient import Gradient, InputXGradient
from relprop.methods.integrated import IntegratedGradients
from relprop.methods.occlusion import Occlusion
from relprop.methods.smoothing import SmoothGrad
from relprop.methods.surrogate import LIME, KernelSHAP

__all__ = [
    "COMPOSITES",
    "COMPOSITE_NAMES",
    "EXPLAINERS",
    "METHOD_NAMES",
    "MethodOptions",
    "last_convolution",
    "make_composite",
    "make_explainer",
]

#: Command-line name of each composite preset of :mod:`relprop.composites`.
COMPOSITES = {
    "epsilon-plus": composites.EpsilonPlus,
    "epsilon-plus-flat": composites.EpsilonPlusFlat,
    "epsilon-alpha2-beta1": composites.EpsilonAlpha2Beta1,
    "epsilon-alpha2-beta1-flat": composites.EpsilonAlpha2Beta1Flat,
    "epsilon-gamma-box": composites.EpsilonGammaBox,
    "attn-lrp": composites.AttnLRP,
    "cp-lrp": composites.CPLRP,
}

#: The names :func:`make_composite` takes.
COMPOSITE_NAMES = tuple(COMPOSITES)


def make_composite(name: str, bounds: tuple[float, float] | None = None) -> Composite:
    """The composite preset called ``name`` with its default parameters.

    Parameters
    ----------
    name:
        A key of :data:`COMPOSITES`.
    bounds:
        ``(low, high)``, the range of the model's inputs; required by ``epsilon-gamma-box`` (its
        :class:`~relprop.rules.ZBox` first layer) and ignored by the others.
    """
    if name not in COMPOSITES:
        raise ValueError(f"unknown composite {name!r}; choose one of {', '.join(COMPOSITES)}")
    if name == "epsilon-gamma-box":
        if bounds is None:
            raise ValueError(
                "composite epsilon-gamma-box needs the input bounds: bounds=(low, high) "
                "(on the command line, --low and --high)"
            )
        return composites.EpsilonGammaBox(low=bounds[0], high=bounds[1])
    return COMPOSITES[name]()


@dataclass(frozen=True)
class MethodOptions:
    """The parameters of the explanation methods made by name; each method reads those it takes.

    Parameters
    ----------
    composite:
        LRP's composite, a key of :data:`COMPOSITES`.
    bounds:
        ``(low, high)``, the range of the inputs (scalars or per-channel tensors ``(C, 1, 1)``), for
        ``epsilon-gamma-box``.
    layer:
        GradCAM's layer, a name of ``model.named_modules()``; by default :func:`last_convolution`.
    patch:
        The side of occlusion's square window (and its stride).
    samples:
        Noisy copies of SmoothGrad, path points of integrated gradients, coalitions of KernelSHAP and
        LIME; ``None`` keeps each method's default.
    seed:
        Seed of the random methods (SmoothGrad, KernelSHAP, LIME).
    batch_size:
        At most this many inputs go through the model at once in the methods that evaluate many.
    """

    composite: str = "epsilon-plus-flat"
    bounds: tuple[float | Tensor, float | Tensor] | None = None
    layer: str | None = None
    patch: int = 16
    samples: int | None = None
    seed: int = 0
    batch_size: int = 64


def last_convolution(model: nn.Module) -> str:
    """The name of the model's last convolution module (in the order of ``model.named_modules()``)."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.modules.conv._ConvNd)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no convolution module; pass GradCAM's layer")
    return names[-1]


def _samples(options: MethodOptions, name: str) -> dict[str, int]:
    """``{name: options.samples}``, or nothing when the method's default is kept."""
    return {} if options.samples is None else {name: options.samples}


def _random(options: MethodOptions) -> dict[str, int]:
    """The keyword arguments of the methods that draw random samples."""
    return {"seed": options.seed, "batch_size": options.batch_size, **_samples(options, "samples")}


#: Every explanation method by name: ``factory(model, options)`` returns the explainer,
#: called as ``explainer(x, target)`` (see :mod:`relprop.methods`).
EXPLAINERS: dict[str, Callable[[nn.Module, MethodOptions], Explainer]] = {
    "lrp": lambda model, o: LRP(model, composite=make_composite(o.composite, o.bounds)),
    "gradient": lambda model, o: Gradient(model),
    "input-x-gradient": lambda model, o: InputXGradient(model),
    "integrated-gradients": lambda model, o: IntegratedGradients(
        model, batch_size=o.batch_size, **_samples(o, "steps")
    ),
    "smoothgrad": lambda model, o: SmoothGrad(Gradient(model), **_random(o)),
    "occlusion": lambda model, o: Occlusion(model, patch=o.patch, batch_size=o.batch_size),
    "gradcam": lambda model, o: GradCAM(model, layer=o.layer or last_convolution(model)),
    "guided-backprop": lambda model, o: GuidedBackprop(model),
    "deconvnet": lambda model, o: Deconvnet(model),
    "excitation-backprop": lambda model, o: ExcitationBackprop(model),
    "kernel-shap": lambda model, o: KernelSHAP(model, **_random(o)),
    "lime": lambda model, o: LIME(model, **_random(o)),
}


def make_explainer(name: str, model: nn.Module, options: MethodOptions | None = None) -> Explainer:
    r"""The explainer of method ``name`` for ``model``.

    Parameters
    ----------
    name:
        One of :data:`METHOD_NAMES`.
    model:
        The model to explain.
    options:
        The methods' parameters; each method reads those it takes (default: :class:`MethodOptions`\ ``()``).
    """
    if name not in EXPLAINERS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(EXPLAINERS)}")
    return EXPLAINERS[name](model, MethodOptions() if options is None else options)


#: The names :func:`make_explainer` takes, in the order the commands list them.
METHOD_NAMES = tuple(EXPLAINERS)
