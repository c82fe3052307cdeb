"""Names of the command line for relprop's explanation methods and composites, shared by all commands."""

from __future__ import annotations

from relprop import composites
from relprop.composites import Composite

__all__ = ["COMPOSITES", "METHODS", "make_composite"]

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
