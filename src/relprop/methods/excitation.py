"""Excitation backprop: LRP with the z+ rule on every layer with weights, biases ignored."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from relprop import types
from relprop.canonizers import Canonizer
from relprop.composites import Composite
from relprop.lrp import LRP
from relprop.rules import ZPlus


class ExcitationBackprop(LRP):
    r"""Excitation backprop (Zhang et al. 2016), as LRP.

    Zhang et al. pass a "marginal winning probability" :math:`P(a_j)` from each neuron to its inputs in
    proportion to their excitatory contributions,
    :math:`P(a_i) = \sum_j \frac{a_i w_{ij}^+}{\sum_{i'} a_{i'} w_{i'j}^+} P(a_j)`, for activations
    :math:`a \ge 0`. That is LRP with the :math:`z^+` rule without biases (``rules.ZPlus(bias=False)``) on
    every dense and convolutional layer, with the proportional rule (:class:`~relprop.rules.Epsilon` with a
    tiny stabilizer) for sums and average pooling and winner-take-all for max pooling (the base map of
    :class:`~relprop.composites.Composite`), as zennit's ``ExcitationBackprop(zero_params=['bias'])``. On
    networks without biases it equals LRP with :class:`~relprop.rules.ZPlus`.

    Relevance starts, as for every relprop explainer, at the selected logit times the target weighting, and
    is conserved layer by layer; divide by the logit to read it as the probability of Zhang et al. (which
    starts at one). Negative inputs (of the first layer) contribute through their negative weights, as
    in :class:`~relprop.rules.ZPlus`.

    Parameters
    ----------
    model:
        The model, in evaluation mode.
    canonizers:
        As for :class:`relprop.LRP`: batch normalizations are folded into the layer before them by default.
    stabilizer:
        Added to the denominators, with their sign.
    """

    def __init__(
        self, model: nn.Module, canonizers: Iterable[Canonizer] | None = None, stabilizer: float = 1e-6
    ) -> None:
        rule = ZPlus(stabilizer=stabilizer, bias=False)
        composite = Composite(layer_map=[(types.Linear, rule)], stabilizer=stabilizer)
        super().__init__(model, composite=composite, canonizers=canonizers)
