"""Text: explain text classifiers word by word, over a corpus, and what a language model generated.

* :class:`TextExplainer` (:mod:`relprop.text.explain`): prediction, token and word relevance per text;
* :func:`merge_word_pieces` (:mod:`relprop.text.words`): token relevance summed into words;
* :func:`word_relevance` (:mod:`relprop.text.corpus`): the words that carry the most relevance per class;
* :func:`write_text_report` (:mod:`relprop.text.report`): the HTML page of both;
* :func:`explain_generation` (:mod:`relprop.text.generation`): the token-by-token relevance matrix of a
  generation, and its HTML page;
* :func:`keyword_sentences` (:mod:`relprop.text.tasks`): sentences whose deciding words are known.
"""

from relprop.text.corpus import WordRelevance, word_relevance
from relprop.text.explain import TextExplainer, TextExplanation
from relprop.text.generation import GenerationExplanation, explain_generation, generation_matrix_html
from relprop.text.report import text_report_html, write_page, write_text_report
from relprop.text.tasks import KeywordSentences, keyword_sentences
from relprop.text.words import Words, merge_word_pieces

__all__ = [
    "GenerationExplanation",
    "KeywordSentences",
    "TextExplainer",
    "TextExplanation",
    "WordRelevance",
    "Words",
    "explain_generation",
    "generation_matrix_html",
    "keyword_sentences",
    "merge_word_pieces",
    "text_report_html",
    "word_relevance",
    "write_page",
    "write_text_report",
]
