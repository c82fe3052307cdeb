"""What every relprop explainer is: ``explainer(x, target)`` returns an attribution shaped like ``x``.

:class:`relprop.LRP`, every method of :mod:`relprop.methods` and :class:`relprop.neon.NEON` satisfy
:class:`Explainer`, so that whatever takes an explainer (a store, a metric, a sanity check) takes any of
them. Those that take a model build the explainer from it with an :data:`ExplainerFactory`, such as a
method's class or a ``functools.partial`` of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from torch import Tensor, nn

from relprop.targets import Target

__all__ = ["Explainer", "ExplainerFactory"]


@runtime_checkable
class Explainer(Protocol):
    """An attribution of ``target`` to each element of ``x``, shaped like ``x``.

    ``target`` follows :func:`relprop.targets.target_weights`: ``None`` for the predicted class of each
    sample, an ``int``, a ``LongTensor`` of shape ``(B,)``, or a float weighting shaped like the model's
    output. The explained model is the explainer's ``model``.
    """

    model: nn.Module

    def __call__(self, x: Tensor, target: Target = None) -> Tensor: ...


#: Builds an explainer of a model: ``relprop.methods.Gradient``, ``functools.partial(IntegratedGradients,
#: steps=32)``, ``lambda model: LRP(model, composite=composites.EpsilonPlusFlat())``, ...
ExplainerFactory = Callable[[nn.Module], Explainer]
