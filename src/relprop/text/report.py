"""The HTML page of text explanations: each text's words coloured by relevance, and the corpus view.

One standalone, static page (no script, no external resources) in the style of the SpRAy report: a panel
per text (prediction, explained class, the words coloured by relevance with the ``'bwr'`` map, red for
the class and blue against it, and a table of its most relevant words) and, for two texts or more, the
words that carry the most relevance per class over all texts (:func:`relprop.text.corpus.word_relevance`).
Every text from the user is escaped.
"""

from __future__ import annotations

import functools
import html
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from relprop.report._page import STYLE
from relprop.text.corpus import word_relevance
from relprop.text.explain import TextExplanation
from relprop.viz.text import text_heatmap_spans

#: The tag that marks a page as relprop's, so that only such a page is ever replaced.
GENERATOR = '<meta name="generator" content="relprop">'

_EXTRA_STYLE = """
main { grid-template-columns: minmax(0, 1fr); }
.relprop-token { white-space: pre-wrap; padding: 0.1em 0.15em; border-radius: 0.2em; }
.heatmap { font-size: 16px; line-height: 2; margin: 6px 0 10px; }
table.words { border-collapse: collapse; font-size: 13px; }
table.words td, table.words th { border-bottom: 1px solid var(--line); padding: 3px 14px 3px 0;
                                 text-align: left; }
table.words td.number { text-align: right; font-variant-numeric: tabular-nums; }
.classes { display: flex; flex-wrap: wrap; gap: 28px; }
"""


def text_report_html(
    explanations: Sequence[TextExplanation],
    *,
    class_names: Sequence[str] | None = None,
    title: str = "relprop text explanations",
    description: str = "",
    top: int = 5,
    corpus_top: int = 15,
) -> str:
    """Render explanations as one HTML page.

    Parameters
    ----------
    explanations : sequence of TextExplanation
        One per text, in the order to show.
    class_names : sequence of str, optional
        Names of the model's classes, by index.
    title : str
        The page's title.
    description : str
        A line under the title (e.g. the model and the rules).
    top : int, default 5
        Most relevant words listed per text.
    corpus_top : int, default 15
        Words listed per class in the corpus view.

    Returns
    -------
    str
        The HTML document.
    """
    if not explanations:
        raise ValueError("no explanations to show")
    name = functools.partial(class_label, class_names)
    panels = [_text_panel(index, explanation, name, top) for index, explanation in enumerate(explanations)]
    if len(explanations) > 1:
        panels.append(_corpus_panel(explanations, name, corpus_top))
    meta = f"<span>{len(explanations)} texts</span>"
    if description:
        meta += f"<span>{html.escape(description)}</span>"
    return (
        f"<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n{GENERATOR}\n"
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}{_EXTRA_STYLE}</style>\n</head>\n<body>\n"
        f"<header><h1>{html.escape(title)}</h1><div class='meta'>{meta}</div>"
        "<p class='hint'>Red words speak for the explained class, blue words against it; each text is scaled "
        "to its own largest word relevance. Hover a word for its value.</p></header>\n"
        f"<main>\n{''.join(panels)}</main>\n</body>\n</html>\n"
    )


def write_text_report(path: str | os.PathLike, explanations: Sequence[TextExplanation], **options) -> Path:
    """Write :func:`text_report_html` to ``path`` (see :func:`write_page`) and return the path.

    ``options`` are those of :func:`text_report_html`.
    """
    return write_page(path, text_report_html(explanations, **options))


def write_page(path: str | os.PathLike, document: str) -> Path:
    """Write a page that relprop made to ``path`` (UTF-8), replacing only a page that relprop made.

    A file at ``path`` without relprop's generator tag (a user's own file) is never overwritten: OSError.
    The page is written to a temporary file beside ``path`` and moved over it at the end.
    """
    path = check_page_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(document, encoding="utf-8")
    os.replace(partial, path)
    return path


def class_label(class_names: Sequence[str] | None, index: int) -> str:
    """``"positive (1)"`` for class 1 named "positive", ``"class 1"`` without names."""
    if class_names is not None and 0 <= index < len(class_names):
        return f"{class_names[index]} ({index})"
    return f"class {index}"


def check_page_path(path: str | os.PathLike) -> Path:
    """``path`` as a :class:`~pathlib.Path` if :func:`write_page` may write there; OSError otherwise (a
    folder, or a file that relprop did not write). Call it before long work whose result goes there."""
    path = Path(path)
    if path.is_dir():
        raise OSError(f"{path} is a folder: give the file to write")
    if path.exists() and GENERATOR not in path.read_text(encoding="utf-8", errors="replace")[:2000]:
        raise OSError(f"{path} exists and is not a page that relprop wrote: choose another file name")
    return path


def _text_panel(index: int, explanation: TextExplanation, name, top: int) -> str:
    words = explanation.words
    probabilities = np.exp(explanation.logits - explanation.logits.max())
    probabilities /= probabilities.sum()
    absorbed = explanation.explained - explanation.token_relevance.sum()
    lines = [
        f"predicted {html.escape(name(explanation.prediction))}, probability "
        f"{probabilities[explanation.prediction]:.3f}; explained {html.escape(name(explanation.target))}: "
        f"logit {explanation.explained:.4g} = words {words.relevance.sum():.4g} + special tokens "
        f"{words.special:.4g} + absorbed {absorbed:.4g}"
    ]
    if explanation.truncated:
        lines.append(f"truncated to {len(explanation.tokens)} tokens: the words after them were not seen")
    heatmap = text_heatmap_spans(words.words, words.relevance) if words.words else ""
    order = np.argsort(-np.abs(words.relevance), kind="stable")[:top]
    rows = "".join(
        f"<tr><td>{html.escape(words.words[i])}</td><td class='number'>{words.relevance[i]:.4g}</td></tr>"
        for i in order
    )
    notes = "".join(f"<p class='hint'>{line}</p>" for line in lines)
    return (
        f"<section class='panel text' id='text-{index + 1}'><h2>Text {index + 1}</h2>{notes}"
        f"<div class='heatmap'>{heatmap}</div>"
        "<table class='words'><tr><th>most relevant words</th><th>relevance</th></tr>"
        f"{rows}</table></section>\n"
    )


def _corpus_panel(explanations: Sequence[TextExplanation], name, corpus_top: int) -> str:
    columns = []
    for target, rows in word_relevance(explanations).items():
        body = "".join(
            f"<tr><td>{html.escape(row.word)}</td><td class='number'>{row.share:.3f}</td>"
            f"<td class='number'>{row.texts}</td><td class='number'>{row.mean:.3f}</td></tr>"
            for row in rows[:corpus_top]
        )
        count = sum(explanation.target == target for explanation in explanations)
        columns.append(
            f"<div><h3>{html.escape(name(target))}: {count} texts</h3><table class='words'>"
            "<tr><th>word</th><th>share</th><th>texts</th><th>mean</th></tr>"
            f"{body}</table></div>"
        )
    hint = (
        "Per explained class, a word's share is its part of each text's absolute word relevance, averaged "
        "over the class's texts; <em>texts</em> counts the texts that contain it and <em>mean</em> is its "
        "share where it occurs. A word that says nothing about the class but tops its list is a shortcut to "
        "check."
    )
    return (
        "<section class='panel corpus' id='corpus'><h2>Over all texts: the words that carry the most "
        f"relevance</h2><p class='hint'>{hint}</p><div class='classes'>{''.join(columns)}</div></section>\n"
    )
