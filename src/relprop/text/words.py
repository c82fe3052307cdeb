"""From token relevance to word relevance: word pieces merged into the words a reader sees.

The documented choice: a *word* is a maximal run of non-space characters of the original text (what
``text.split()`` returns, punctuation attached), and a word's relevance is the **sum** of the relevance of
the tokens whose first non-space character falls inside it. Summing keeps the books: the words' relevance
plus that of the special tokens (``[CLS]``, ``[SEP]``, ``<s>``: tokens that cover no text) is the tokens'
total. Words that no token covers (cut off by truncation) are not listed, and :attr:`Words.truncated` says
so.

Tokens are placed by the character offsets that Hugging Face's fast tokenizers return
(``return_offsets_mapping=True``), which works for WordPiece, BPE (GPT-2's leading-space tokens included)
and SentencePiece alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Words:
    """The words of one text with their relevance.

    Attributes
    ----------
    words : list of str
        The words, in order, as they appear in the text.
    relevance : numpy.ndarray
        ``(len(words),)`` float64: the sum over each word's tokens.
    spans : list of (int, int)
        Each word's ``[start, end)`` character offsets in the text.
    index : list of int
        Each word's position in ``text.split()`` (differs from its position in ``words`` only after words
        that no token covers).
    special : float
        Relevance of the tokens that cover no text (special tokens).
    truncated : bool
        True when some words of the text have no token.
    """

    words: list[str]
    relevance: np.ndarray
    spans: list[tuple[int, int]]
    index: list[int]
    special: float
    truncated: bool


def merge_word_pieces(
    text: str,
    offsets: Sequence[tuple[int, int]],
    relevance: ArrayLike,
    *,
    special: Sequence[bool] | None = None,
) -> Words:
    """Sum token relevance into the whitespace-separated words of ``text``.

    Parameters
    ----------
    text : str
        The text as it was tokenized.
    offsets : sequence of (int, int)
        Per token, its ``[start, end)`` character span in ``text`` (a fast tokenizer's offset mapping);
        ``(0, 0)`` or a span of only spaces marks a token that covers no text.
    relevance : array_like
        One value per token (padding included: give padding tokens ``special=True`` or zero relevance).
    special : sequence of bool, optional
        Tokens that cover no text whatever their offsets say (a tokenizer's special-tokens mask).

    Returns
    -------
    Words
    """
    values = np.asarray(relevance, dtype=np.float64)
    if values.ndim != 1 or len(values) != len(offsets):
        raise ValueError(f"got {len(offsets)} token offsets but relevance of shape {values.shape}")
    if special is not None and len(special) != len(offsets):
        raise ValueError(f"got {len(offsets)} token offsets but {len(special)} special-token flags")
    spans = [(match.start(), match.end()) for match in _WORD.finditer(text)]
    starts = np.array([start for start, _ in spans], dtype=np.int64)
    totals = np.zeros(len(spans))
    covered = np.zeros(len(spans), dtype=bool)
    special_total = 0.0
    for position, ((start, end), value) in enumerate(zip(offsets, values, strict=True)):
        first = _first_visible(text, int(start), int(end))
        if first is None or (special is not None and special[position]):
            special_total += float(value)
            continue
        word = int(np.searchsorted(starts, first, side="right")) - 1
        totals[word] += value
        covered[word] = True
    kept = np.flatnonzero(covered)
    return Words(
        words=[text[spans[i][0] : spans[i][1]] for i in kept],
        relevance=totals[kept],
        spans=[spans[i] for i in kept],
        index=[int(i) for i in kept],
        special=special_total,
        truncated=bool(len(kept) and kept[-1] < len(spans) - 1) or (not len(kept) and bool(spans)),
    )


def _first_visible(text: str, start: int, end: int) -> int | None:
    """The offset of the first non-space character in ``text[start:end]``, or None."""
    for position in range(start, min(end, len(text))):
        if not text[position].isspace():
            return position
    return None
