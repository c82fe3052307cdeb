"""Over a whole corpus: the words that carry the most relevance for each class.

The text analogue of SpRAy's strategies: where a model decides by a shortcut (a source tag, a name, a
formatting token planted in one class's training texts), that word tops its class's list although it says
nothing about the class. The documented choices:

* a word is counted in its normalized form: lower case, with the punctuation around it stripped;
* each text's word relevance is divided by its total absolute word relevance, so that every text
  contributes equally, whatever the scale of its logit;
* texts are grouped by their explained class (:attr:`TextExplanation.target`), and a word's *share* is its
  normalized relevance summed over the texts of the class, divided by the number of those texts: the
  average share of a text's relevance that the word carries (negative: it speaks against the class).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from relprop.text.explain import TextExplanation

_PUNCTUATION = "\"'`.,;:!?()[]{}<>«»“”‘’-–—…"


@dataclass(frozen=True)
class WordRelevance:
    """One word's relevance over the texts of one class.

    Attributes
    ----------
    word : str
        The normalized word.
    share : float
        Average over the class's texts of the word's share of each text's absolute relevance.
    texts : int
        Number of the class's texts that contain the word.
    mean : float
        The word's average share in the texts that contain it.
    """

    word: str
    share: float
    texts: int
    mean: float


def normalize_word(word: str) -> str:
    """Lower case, with the punctuation around the word stripped (``"Great!"`` -> ``"great"``)."""
    return word.strip(_PUNCTUATION).lower() or word.lower()


def word_relevance(explanations: Sequence[TextExplanation]) -> dict[int, list[WordRelevance]]:
    """Per explained class, the words ranked by their average share of relevance (most relevant first).

    Parameters
    ----------
    explanations : sequence of TextExplanation
        The explanations of a corpus, e.g. from :class:`relprop.text.TextExplainer`.

    Returns
    -------
    dict of int to list of WordRelevance
        Keyed by class, in increasing order.
    """
    if not explanations:
        raise ValueError("no explanations to summarize")
    totals: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    texts: dict[int, int] = defaultdict(int)
    for explanation in explanations:
        relevance = explanation.words.relevance
        scale = np.abs(relevance).sum()
        texts[explanation.target] += 1
        if scale == 0:
            continue
        seen: dict[str, float] = defaultdict(float)
        for word, value in zip(explanation.words.words, relevance / scale, strict=True):
            seen[normalize_word(word)] += float(value)
        for word, value in seen.items():
            totals[explanation.target][word] += value
            counts[explanation.target][word] += 1
    result = {}
    for target in sorted(texts):
        rows = [
            WordRelevance(word, total / texts[target], counts[target][word], total / counts[target][word])
            for word, total in totals[target].items()
        ]
        result[target] = sorted(rows, key=lambda row: (-row.share, row.word))
    return result
