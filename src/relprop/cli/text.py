"""``relprop explain-text``: explain a text classifier word by word, or what a language model generated.

A classifier (the bundled MiniLM keyword-sentiment model, or a Hugging Face ``*ForSequenceClassification``
folder) explains each text: the command prints the prediction and the words coloured by relevance (24-bit
colour on a terminal, ``word(+0.123)`` otherwise) and writes an HTML page with every text and, for two or
more, the words that carry the most relevance per class. A causal language model folder
(``*ForCausalLM``) continues each text with ``--generate N`` tokens and writes the token-by-token
relevance matrix instead.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated

import typer

from relprop.cli.app import EXPECTED_ERRORS, app, fail
from relprop.graph import UnsupportedOperationError

#: The ``--model`` of the bundled classifier.
BUNDLED = "minilm-keywords"

#: ``--rules`` names of the transformer composites.
RULES = ("attnlrp", "cplrp")


@app.command("explain-text")
def explain_text(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to explain (or give --file).")] = None,
    file: Annotated[
        Path | None, typer.Option(help="A UTF-8 file of texts, one per line; empty lines are skipped.")
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            help=f"{BUNDLED} (MiniLM with relprop's keyword-sentiment head; needs the extra 'text'), or a "
            "Hugging Face model folder: a sequence classifier, or a causal language model with --generate."
        ),
    ] = BUNDLED,
    rules: Annotated[
        str, typer.Option(help="attnlrp or cplrp (relevance through the values only).")
    ] = "attnlrp",
    target: Annotated[
        int | None, typer.Option(help="The class to explain; default: each text's predicted class.")
    ] = None,
    generate: Annotated[
        int | None, typer.Option(min=1, help="With a causal language model: tokens to generate and explain.")
    ] = None,
    html: Annotated[Path, typer.Option(help="The HTML page to write.")] = Path("text-explanations.html"),
    max_length: Annotated[
        int | None,
        typer.Option(min=2, help="Token limit per text; default: the model's. Longer texts are cut."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    progress: Annotated[bool, typer.Option(help="A progress bar on stderr for more than one batch.")] = True,
) -> None:
    """Explain a text model on texts: print each prediction with its words coloured, write an HTML page."""
    try:
        from relprop.text.report import check_page_path

        check_page_path(html)
        given = _texts(texts or [], file)
        composite = _composite(rules)
        loaded = _load(model)
        if generate is not None:
            _explain_generations(loaded, given, generate, composite, html)
        else:
            _explain_classifications(loaded, given, composite, target, max_length, batch_size, progress, html)
    except (*EXPECTED_ERRORS, UnsupportedOperationError) as error:
        raise fail(error) from None


def _explain_classifications(
    loaded, texts, composite, target, max_length, batch_size, progress, html
) -> None:
    from tqdm import tqdm

    from relprop.text import TextExplainer, word_relevance, write_text_report
    from relprop.text.report import class_label
    from relprop.viz import text_heatmap_ansi

    if loaded.task != "classification":
        raise ValueError("the model is a causal language model: give --generate N to explain what it writes")
    explainer = TextExplainer(
        loaded.model, loaded.tokenizer, composite, max_length=max_length, batch_size=batch_size
    )
    bar = None
    if progress and len(texts) > batch_size:
        bar = functools.partial(tqdm, desc="explaining", unit="batch", file=sys.stderr)
    explanations = explainer(texts, target, progress=bar)
    names = loaded.class_names
    colour = sys.stdout.isatty()
    for number, explanation in enumerate(explanations, start=1):
        predicted = class_label(names, explanation.prediction)
        line = f"text {number}: predicted {predicted}"
        if explanation.target != explanation.prediction:
            line += f", explaining {class_label(names, explanation.target)}"
        typer.echo(line)
        if explanation.truncated:
            typer.echo(
                f"note: text {number} is longer than {explainer.max_length} tokens: only its first "
                f"{len(explanation.words.words)} words were seen",
                err=True,
            )
        words = explanation.words
        if colour:
            typer.echo("  " + text_heatmap_ansi(words.words, words.relevance))
        else:
            typer.echo("  " + " ".join(f"{w}({r:+.3g})" for w, r in zip(words.words, words.relevance)))
    if len(explanations) > 1:
        for explained, rows in word_relevance(explanations).items():
            shares = ", ".join(f"{row.word} {row.share:.3f}" for row in rows[:5])
            typer.echo(f"words with the most relevance for {class_label(names, explained)}: {shares}")
    description = f"rules {composite!r}"
    written = write_text_report(html, explanations, class_names=names, description=description)
    typer.echo(f"page in {written}")


def _explain_generations(loaded, texts, generate, composite, html) -> None:
    from relprop.lrp import LRP
    from relprop.text import explain_generation, generation_matrix_html, write_page

    if loaded.task != "generation":
        raise ValueError("--generate needs a causal language model; this model is a classifier")
    if len(texts) != 1:
        raise ValueError(f"--generate explains one prompt at a time, got {len(texts)} texts")
    explainer = LRP(loaded.model, composite=composite)
    explanation = explain_generation(
        loaded.model, loaded.tokenizer, texts[0], max_new_tokens=generate, explainer=explainer
    )
    typer.echo(f"generated: {explanation.text!r}")
    written = write_page(html, generation_matrix_html(explanation))
    typer.echo(f"page in {written}")


def _texts(arguments: list[str], file: Path | None) -> list[str]:
    if file is not None:
        if arguments:
            raise ValueError("give texts as arguments or with --file, not both")
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise ValueError(f"{file} is not a UTF-8 text file") from None
        arguments = [line for line in lines if line.strip()]
        if not arguments:
            raise ValueError(f"{file} holds no text")
    if not arguments:
        raise ValueError("no text to explain: give texts as arguments or with --file")
    for number, text in enumerate(arguments, start=1):
        if not text.strip():
            raise ValueError(f"text {number} is empty")
    return arguments


def _composite(name: str):
    from relprop import composites

    presets = {"attnlrp": composites.AttnLRP, "cplrp": composites.CPLRP}
    if name not in presets:
        raise ValueError(f"unknown rules {name!r}; choose one of {', '.join(RULES)}")
    return presets[name]()


def _load(model: str):
    from relprop.models.huggingface import TextModel, load_text_model

    try:  # the command prints its own lines: no "Loading weights" bars from transformers
        from transformers.utils import logging

        logging.disable_progress_bar()
    except ImportError:
        pass  # load_text_model and minilm_keyword_classifier say what to install

    if model == BUNDLED:
        from relprop.models.minilm import CLASSES, minilm_keyword_classifier

        classifier, tokenizer = minilm_keyword_classifier()
        return TextModel(classifier, tokenizer, "classification", list(CLASSES))
    return load_text_model(model)
