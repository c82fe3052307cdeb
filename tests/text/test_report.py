"""The HTML page of text explanations: what it shows, what it escapes, and whose files it may replace."""

import numpy as np
import pytest

from relprop.text.explain import TextExplanation
from relprop.text.report import GENERATOR, text_report_html, write_page, write_text_report
from relprop.text.words import Words


def _explanation(words, relevance, target=1, truncated=False):
    relevance = np.asarray(relevance, dtype=float)
    merged = Words(list(words), relevance, [(0, 0)] * len(words), list(range(len(words))), 0.25, truncated)
    logits = np.array([2.0 - np.log(3.0), 2.0])  # probabilities 0.25, 0.75; class 1's logit is 2
    return TextExplanation(" ".join(words), list(words), relevance, merged, logits, target)


def test_page_shows_prediction_words_books_and_corpus():
    page = text_report_html(
        [_explanation(["<script>x</script>", "good"], [1.0, -0.5]), _explanation(["bad"], [2.0], target=0)],
        class_names=["negative", "positive"],
    )
    assert GENERATOR in page
    assert "<script>x" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "predicted positive (1), probability 0.750" in page
    assert "logit 2 = words 0.5 + special tokens 0.25 + absorbed 1.5" in page
    assert 'title="-0.5"' in page  # the word's value on hover
    assert "id='corpus'" in page and "negative (0): 1 texts" in page


def test_one_text_has_no_corpus_view_and_truncation_is_said():
    page = text_report_html([_explanation(["a"], [1.0], truncated=True)])
    assert "id='corpus'" not in page
    assert "truncated to 1 tokens" in page


def test_a_users_file_is_never_replaced(tmp_path):
    users = tmp_path / "notes.html"
    users.write_text("<p>my notes</p>")
    with pytest.raises(OSError, match="not a page that relprop wrote"):
        write_text_report(users, [_explanation(["a"], [1.0])])
    assert users.read_text() == "<p>my notes</p>"
    ours = tmp_path / "page.html"
    write_text_report(ours, [_explanation(["a"], [1.0])])
    write_page(ours, f"<html>{GENERATOR}new</html>")  # relprop's own page is replaced
    assert ours.read_text() == f"<html>{GENERATOR}new</html>"
    assert not list(tmp_path.glob(".*.partial"))
    with pytest.raises(OSError, match="is a folder"):
        write_page(tmp_path, "x")
