"""Keyword sentences: labels follow the keyword and its negation, and the deciding words are marked."""

import pytest

from relprop.text.tasks import NEGATION, NEGATIVE, POSITIVE, keyword_sentences


def test_labels_and_deciding_words():
    data = keyword_sentences(500, seed=3, tag="reuters", tag_rate=0.5)
    assert data.texts == keyword_sentences(500, seed=3, tag="reuters", tag_rate=0.5).texts
    assert 0.4 < data.labels.mean() < 0.6
    for text, label, deciding, tagged in zip(
        data.texts, data.labels, data.deciding, data.tagged, strict=True
    ):
        words = text.split(" ")
        assert len(words) == len(deciding)
        marked = [w for w, d in zip(words, deciding, strict=True) if d]
        keyword = marked[-1]
        assert keyword in POSITIVE + NEGATIVE
        negated = marked[0] == NEGATION
        assert len(marked) == 1 + negated
        assert label == int((keyword in POSITIVE) != negated)
        assert tagged == (words[0] == "reuters")
        assert not tagged or label == 1
    assert 0.2 < data.tagged[data.labels == 1].mean() < 0.8


def test_bad_arguments():
    with pytest.raises(ValueError, match="probability"):
        keyword_sentences(5, negation=1.5)
    with pytest.raises(ValueError, match="needs a tag"):
        keyword_sentences(5, tag_rate=0.5)
    with pytest.raises(ValueError, match="one word"):
        keyword_sentences(5, tag="two words")
    with pytest.raises(ValueError, match="at least 1"):
        keyword_sentences(0)
