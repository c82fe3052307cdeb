r"""Linear classifiers on bag-of-words features, explained per word.

For logits :math:`f_k(x) = w_k^\top x + b_k` over word features x (counts or tf-idf), the relevance of
word d is its contribution plus an equal share of the bias among the words present in the document
(Bach et al. 2015; Arras et al. 2017, "What is relevant in a text document?"),

.. math:: R_d = w_{kd}\, x_d + \frac{b_k\, [x_d \ne 0]}{\#\{d' : x_{d'} \ne 0\}},

so :math:`\sum_d R_d = f_k(x)` exactly for any document with at least one known word. For an empty
document (x = 0) all relevance is zero and the bias stays unattributed.
"""

from __future__ import annotations

from collections import Counter

import torch
from sklearn.base import is_classifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model._base import LinearClassifierMixin
from sklearn.utils.validation import check_is_fitted

from ._checks import as_float_tensor
from .explainer import NeuralizedModel


class NeuralizedLinear(NeuralizedModel):
    """Linear logits ``x @ weight.T + bias`` (B, K) with per-word relevance.

    Parameters
    ----------
    weight : array-like (K, D)
    bias : array-like (K,)
    """

    def __init__(self, weight: object, bias: object) -> None:
        super().__init__()
        weight = as_float_tensor(weight, "NeuralizedLinear: weight", ndim=2)
        bias = as_float_tensor(bias, "NeuralizedLinear: bias", ndim=1)
        if bias.shape != weight.shape[:1]:
            raise ValueError(
                f"NeuralizedLinear: bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}"
            )
        self.n_features = weight.shape[1]
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.to(x).T + self.bias.to(x)

    def relevance(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Relevance (B, D): each word's contribution plus its equal share of the bias."""
        present = (x != 0).to(x)
        bias_share = (
            (weights @ self.bias.to(x))[:, None] * present / present.sum(dim=1, keepdim=True).clamp(min=1)
        )
        return x * (weights @ self.weight.to(x)) + bias_share


def neuralize_linear(estimator: LinearClassifierMixin) -> NeuralizedLinear:
    """Neuralize a fitted linear classifier (``LogisticRegression``, ``LinearSVC``, ``SGDClassifier``, ...).

    The outputs index ``estimator.classes_``: a binary model (one coefficient row w, b) becomes the two
    logits ``(-f, f)`` with ``f = decision_function(x)``, so argmax equals ``predict`` in both cases.
    """
    if not (isinstance(estimator, LinearClassifierMixin) and is_classifier(estimator)):
        raise TypeError(
            f"neuralize_linear: expected a fitted linear classifier, got {type(estimator).__name__}"
        )
    check_is_fitted(estimator)
    weight, bias = (
        torch.as_tensor(estimator.coef_),
        torch.as_tensor(estimator.intercept_, dtype=torch.float64),
    )
    if weight.shape[0] == 1:
        weight, bias = torch.cat([-weight, weight]), torch.cat([-bias, bias])
    return NeuralizedLinear(weight, bias)


def word_relevances(
    vectorizer: CountVectorizer, document: str, relevance: torch.Tensor
) -> list[tuple[str, float]]:
    """Split a document's feature relevance (D,) over its tokens, in reading order.

    Each occurrence of a vocabulary term receives an equal share of the term's relevance, so the
    values sum to the relevance of the document; tokens outside the vocabulary receive 0. Tokens are
    those of ``vectorizer.build_analyzer()`` (n-grams included when the vectorizer uses them).
    """
    check_is_fitted(vectorizer, "vocabulary_")
    if not isinstance(relevance, torch.Tensor) or relevance.shape != (len(vectorizer.vocabulary_),):
        raise ValueError(
            f"word_relevances: relevance must be a tensor of shape ({len(vectorizer.vocabulary_)},)"
        )
    tokens = vectorizer.build_analyzer()(document)
    counts = Counter(tokens)
    vocabulary = vectorizer.vocabulary_
    return [
        (token, float(relevance[vocabulary[token]]) / counts[token] if token in vocabulary else 0.0)
        for token in tokens
    ]
