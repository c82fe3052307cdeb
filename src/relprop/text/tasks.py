"""Text tasks whose deciding words are known: the ground truth for explanations of text classifiers.

:func:`keyword_sentences` generates short sentences of neutral words that each carry exactly one deciding
keyword of either polarity, optionally negated by ``not``; neutral adjectives are distractors that sit
where keywords sit but decide nothing. The label is the keyword's polarity, flipped by ``not``. Because
the generator knows which words decide, an explanation can be scored by how much of its relevance falls on
them (the planted-keyword tasks of Arras et al. 2019, "Evaluating recurrent neural network explanations",
and of the AttnLRP paper's ground-truth checks).

A *tag* (a source marker such as ``"reuters"``) can be planted in a share of one class's sentences: a model
trained on such data may learn the tag as a shortcut, which :mod:`relprop.text.corpus` should expose.

All words are single word pieces in BERT's uncased vocabulary, so that word and token relevance coincide
for keywords.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POSITIVE = ("good", "great", "excellent", "wonderful", "perfect", "lovely", "nice", "superb")
NEGATIVE = ("bad", "terrible", "awful", "horrible", "poor", "nasty", "dreadful", "ugly")
DISTRACTORS = ("big", "old", "new", "small", "red", "long", "quiet", "early")
NEGATION = "not"

_SUBJECTS = (
    "the food",
    "the room",
    "the service",
    "the trip",
    "the hotel",
    "the show",
    "the meal",
    "the staff",
)
_VERBS = ("was", "is", "seemed", "looked", "felt")
_OPENERS = ("we went there in june and", "after a long day", "on the second night", "my friend said that", "")
_CLOSERS = ("for the price", "this time", "as usual", "in the end", "")


@dataclass(frozen=True)
class KeywordSentences:
    """Sentences with labels and the known deciding words.

    Attributes
    ----------
    texts : list of str
        Lower-case sentences, words separated by single spaces.
    labels : numpy.ndarray
        ``(N,)`` int64; 1 where the (possibly negated) keyword is positive.
    deciding : list of numpy.ndarray
        Per sentence, a bool array over its words (``text.split(" ")``): the keyword and its ``not``.
    tagged : numpy.ndarray
        ``(N,)`` bool; where the tag was planted.
    """

    texts: list[str]
    labels: np.ndarray
    deciding: list[np.ndarray]
    tagged: np.ndarray


def keyword_sentences(
    n: int,
    *,
    seed: int = 0,
    negation: float = 0.3,
    distractors: float = 0.5,
    tag: str | None = None,
    tag_rate: float = 0.0,
    tag_class: int = 1,
) -> KeywordSentences:
    """Generate ``n`` sentences whose label is decided by one keyword and an optional ``not``.

    A sentence is ``[opener] <subject> <verb> [not] <keyword> [closer]``, with a distractor adjective put
    before the subject's noun or after the keyword with probability ``distractors``; the label is 1 for a
    positive keyword, 0 for a negative one, flipped when ``not`` precedes the keyword. Classes are balanced
    in expectation.

    Parameters
    ----------
    n : int
        Number of sentences.
    seed : int, default 0
        Seed of the generator: the same arguments give the same sentences.
    negation : float, default 0.3
        Probability that the keyword is negated.
    distractors : float, default 0.5
        Probability of a distractor adjective.
    tag : str, optional
        A word planted at the start of a share of the sentences of class ``tag_class``.
    tag_rate : float, default 0.0
        Share of the sentences of class ``tag_class`` that get the tag.
    tag_class : int, default 1
        The class whose sentences carry the tag.

    Returns
    -------
    KeywordSentences
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    for name, value in (("negation", negation), ("distractors", distractors), ("tag_rate", tag_rate)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
    if tag_rate > 0 and not tag:
        raise ValueError("tag_rate > 0 needs a tag word")
    if tag is not None and (not tag or " " in tag):
        raise ValueError(f"tag must be one word, got {tag!r}")
    rng = np.random.default_rng(seed)
    texts, labels, deciding, tagged = [], [], [], []
    for _ in range(n):
        label, words = _keyword_sentence(rng, negation, distractors)
        is_tagged = bool(tag and label == tag_class and rng.random() < tag_rate)
        if is_tagged:
            words.insert(0, (tag, False))
        texts.append(" ".join(word for word, _ in words))
        labels.append(label)
        deciding.append(np.array([flag for _, flag in words], dtype=bool))
        tagged.append(is_tagged)
    return KeywordSentences(texts, np.array(labels, dtype=np.int64), deciding, np.array(tagged, dtype=bool))


def _keyword_sentence(
    rng: np.random.Generator, negation: float, distractors: float
) -> tuple[int, list[tuple[str, bool]]]:
    """One sentence of :func:`keyword_sentences`, untagged: its label and its words, each with whether it
    decides the label (the keyword and its ``not``)."""
    label = int(rng.integers(2))
    negated = bool(rng.random() < negation)
    polarity = label if not negated else 1 - label
    keyword = str(rng.choice(POSITIVE if polarity == 1 else NEGATIVE))
    words: list[tuple[str, bool]] = [(word, False) for word in str(rng.choice(_OPENERS)).split()]
    article, noun = str(rng.choice(_SUBJECTS)).split()
    words.append((article, False))
    distractor = str(rng.choice(DISTRACTORS)) if rng.random() < distractors else None
    if distractor is not None and rng.random() < 0.5:
        words.append((distractor, False))
        distractor = None
    words += [(noun, False), (str(rng.choice(_VERBS)), False)]
    if negated:
        words.append((NEGATION, True))
    words.append((keyword, True))
    if distractor is not None:
        words += [("and", False), (distractor, False)]
    words += [(word, False) for word in str(rng.choice(_CLOSERS)).split()]
    return label, words
