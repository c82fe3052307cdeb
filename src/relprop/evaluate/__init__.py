"""Measure explanations: perturbation curves (of several methods at once: :mod:`relprop.evaluate.curves`),
localization, conservation and randomization sanity checks.

Every metric scores each sample on its own and returns one value (or one curve) per sample; randomness
comes from a ``seed`` (an int or a ``torch.Generator``), so results are reproducible.
"""

from relprop.evaluate.conservation import conservation_error
from relprop.evaluate.curves import aopc_columns, aopc_table, perturbation_curves, plot_curves
from relprop.evaluate.localization import pointing_game, relevance_mass_accuracy, relevance_rank_accuracy
from relprop.evaluate.perturbation import PerturbationCurve, insertion, region_perturbation
from relprop.evaluate.replacement import Constant, GaussianBlur, UniformNoise
from relprop.evaluate.sanity import RandomizationResult, model_randomization

__all__ = [
    "Constant",
    "GaussianBlur",
    "PerturbationCurve",
    "RandomizationResult",
    "UniformNoise",
    "aopc_columns",
    "aopc_table",
    "conservation_error",
    "insertion",
    "model_randomization",
    "perturbation_curves",
    "plot_curves",
    "pointing_game",
    "region_perturbation",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
]
