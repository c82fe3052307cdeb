"""The NEON explainer: relprop's calling convention around a neuralized model."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod

import torch

from relprop.targets import target_weights

from ._checks import flatten_input


class NeuralizedModel(torch.nn.Module, ABC):
    """A model rewritten as a network whose relevance can be propagated exactly.

    Subclasses define ``n_features``, :meth:`logits` on flattened input (B, D) -> (B, K) and
    :meth:`relevance`, which receives the flattened input and the weights (B, K) of the outputs to
    explain and returns the input relevance (B, D). ``forward`` accepts any input of shape (B, ...)
    with D values per sample, e.g. images (B, C, H, W).
    """

    n_features: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(flatten_input(x, self.n_features, type(self).__name__))

    @abstractmethod
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs (B, K) for flattened input (B, D)."""

    @abstractmethod
    def relevance(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Input relevance (B, D) of the weighted outputs ``sum_k weights[:, k] * logits[:, k]``."""


class NEON:
    """Neuralization-propagation explainer (Kauffmann et al.).

    ``NEON(model, **rule_params)(x, target)`` returns the relevance of ``target`` shaped like ``x``.

    Parameters
    ----------
    model : NeuralizedModel
        E.g. :class:`~relprop.neon.NeuralizedKMeans` or :class:`~relprop.neon.NeuralizedOneClassSVM`.
    **rule_params
        Keyword arguments of ``model.relevance``, e.g. ``beta`` for the k-means models.

    Notes
    -----
    ``target`` follows relprop's convention: None explains the largest output of each sample (for
    k-means the assigned cluster, for classifiers the predicted class), an int or a LongTensor of shape
    (B,) selects one output, and a float tensor shaped like ``model(x)`` weights the outputs.
    """

    def __init__(self, model: NeuralizedModel, **rule_params: object) -> None:
        if not isinstance(model, NeuralizedModel):
            raise TypeError(f"NEON: model must be a NeuralizedModel, got {type(model).__name__}")
        try:
            inspect.signature(model.relevance).bind(None, None, **rule_params)
        except TypeError as error:
            raise TypeError(f"NEON: invalid rule parameters for {type(model).__name__}: {error}") from None
        self.model = model
        self.rule_params = rule_params

    def __call__(self, x: torch.Tensor, target: int | torch.Tensor | None = None) -> torch.Tensor:
        name = type(self.model).__name__
        flat = flatten_input(x, self.model.n_features, name)
        with torch.no_grad():
            weights = target_weights(self.model.logits(flat), target)
            return self.model.relevance(flat, weights, **self.rule_params).reshape(x.shape)
