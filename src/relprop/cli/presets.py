"""Names of the command line for relprop's explanation methods and composites, shared by all commands."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from relprop import composites
from relprop.composites import Composite

__all__ = [
    "COMPOSITES",
    "EXPLAINERS",
    "METHODS",
    "MethodOptions",
    "last_convolution",
    "make_composite",
    "make_explainer",
]

#: Explanation methods the commands offer.
METHODS = ("lrp",)

#: Command-line name of each composite preset of :mod:`relprop.composites`.
COMPOSITES = {
    "epsilon-plus": composites.EpsilonPlus,
    "epsilon-plus-flat": composites.EpsilonPlusFlat,
    "epsilon-alpha2-beta1": composites.EpsilonAlpha2Beta1,
    "epsilon-alpha2-beta1-flat": composites.EpsilonAlpha2Beta1Flat,
    "epsilon-gamma-box": composites.EpsilonGammaBox,
}


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
            raise ValueError("composite epsilon-gamma-box needs the input bounds: pass --low and --high")
        return composites.EpsilonGammaBox(low=bounds[0], high=bounds[1])
    return COMPOSITES[name]()


@dataclass(frozen=True)
class MethodOptions:
    """The command-line parameters of the explanation methods; each method reads those it takes.

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


Explainer = Callable[..., Tensor]


def last_convolution(model: nn.Module) -> str:
    """The name of the model's last convolution module (in the order of ``model.named_modules()``)."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.modules.conv._ConvNd)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no convolution module; pass GradCAM's layer")
    return names[-1]


def _methods():
    """:mod:`relprop.methods`, imported when a method is made (it pulls in scikit-image, slow to load)."""
    import relprop.methods

    return relprop.methods


def _samples(options: MethodOptions, name: str) -> dict[str, int]:
    """``{name: options.samples}``, or nothing when the method's default is kept."""
    return {} if options.samples is None else {name: options.samples}


def _random(options: MethodOptions) -> dict[str, int]:
    """The keyword arguments of the methods that draw random samples."""
    return {"seed": options.seed, "batch_size": options.batch_size, **_samples(options, "samples")}


#: Every explanation method by command-line name: ``factory(model, options)`` returns the explainer,
#: called as ``explainer(x, target)`` (see :mod:`relprop.methods`).
EXPLAINERS: dict[str, Callable[[nn.Module, MethodOptions], Explainer]] = {
    "lrp": lambda model, o: _methods().LRP(model, composite=make_composite(o.composite, o.bounds)),
    "gradient": lambda model, o: _methods().Gradient(model),
    "input-x-gradient": lambda model, o: _methods().InputXGradient(model),
    "integrated-gradients": lambda model, o: _methods().IntegratedGradients(
        model, batch_size=o.batch_size, **_samples(o, "steps")
    ),
    "smoothgrad": lambda model, o: _methods().SmoothGrad(_methods().Gradient(model), **_random(o)),
    "occlusion": lambda model, o: _methods().Occlusion(model, patch=o.patch, batch_size=o.batch_size),
    "gradcam": lambda model, o: _methods().GradCAM(model, layer=o.layer or last_convolution(model)),
    "guided-backprop": lambda model, o: _methods().GuidedBackprop(model),
    "deconvnet": lambda model, o: _methods().Deconvnet(model),
    "excitation-backprop": lambda model, o: _methods().ExcitationBackprop(model),
    "kernel-shap": lambda model, o: _methods().KernelSHAP(model, **_random(o)),
    "lime": lambda model, o: _methods().LIME(model, **_random(o)),
}


def make_explainer(name: str, model: nn.Module, options: MethodOptions | None = None) -> Explainer:
    """The explainer of method ``name`` (a key of :data:`EXPLAINERS`) for ``model``."""
    if name not in EXPLAINERS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(EXPLAINERS)}")
    return EXPLAINERS[name](model, MethodOptions() if options is None else options)
