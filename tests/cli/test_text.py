"""``relprop explain-text`` on random Hugging Face models with a real tokenizer: what it prints and writes,
and one line for each kind of bad input."""

import pytest
from typer.testing import CliRunner

from relprop.cli import app

pytest.importorskip("transformers")
runner = CliRunner()


def test_classifier_prints_words_and_writes_the_page(tiny_bert_folder, tmp_path):
    page = tmp_path / "page.html"
    result = runner.invoke(
        app,
        [
            "explain-text",
            "the food was good",
            "the room was not nice",
            "--model",
            str(tiny_bert_folder),
            "--html",
            str(page),
            "--target",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    [first, second] = _library_explanations(tiny_bert_folder, ["the food was good", "the room was not nice"])
    assert lines[0] == f"text 1: predicted {('no', 'yes')[first.prediction]} ({first.prediction})" + (
        ", explaining yes (1)" if first.prediction != 1 else ""
    )
    words = first.words
    assert lines[1] == "  " + " ".join(f"{w}({r:+.3g})" for w, r in zip(words.words, words.relevance))
    assert lines[-2].startswith("words with the most relevance for yes (1): ")
    assert lines[-1] == f"page in {page}"
    document = page.read_text()
    for word, value in zip(second.words.words, second.words.relevance):  # each word with its value on hover
        assert f'title="{value:.6g}">{word}</span>' in document
    assert "id='corpus'" in document and "yes (1): 2 texts" in document


def _library_explanations(folder, texts):
    import transformers

    from relprop.text import TextExplainer

    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    return TextExplainer(model, tokenizer)(texts, target=1)


def test_texts_from_a_file_and_truncation_note(tiny_bert_folder, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("first text\n\n" + "word " * 80 + "\n")
    result = runner.invoke(
        app,
        [
            "explain-text",
            "--file",
            str(texts),
            "--model",
            str(tiny_bert_folder),
            "--html",
            str(tmp_path / "p.html"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "text 2: predicted" in result.output
    assert "note: text 2 is longer than 32 tokens: only its first 30 words were seen" in result.output


def test_generation_matrix(tiny_gpt2_folder, tmp_path):
    page = tmp_path / "gen.html"
    result = runner.invoke(
        app,
        [
            "explain-text",
            "the food was",
            "--model",
            str(tiny_gpt2_folder),
            "--generate",
            "3",
            "--html",
            str(page),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("generated: ")
    assert page.read_text().count("<tr><th class='row'>") == 3


@pytest.mark.parametrize(
    ("arguments", "fragments"),
    [
        (["   "], ["text 1 is empty"]),
        ([], ["no text to explain"]),
        (["hi", "--model", "/no/such/folder"], ["/no/such/folder: no such model folder"]),
        (["hi", "--rules", "epsilon"], ["unknown rules 'epsilon'"]),
    ],
)
def test_bad_input_is_one_line(arguments, fragments, one_line_error):
    one_line_error(runner.invoke(app, ["explain-text", *arguments]), *fragments)


def test_task_mismatch_and_a_users_file(tiny_bert_folder, tiny_gpt2_folder, tmp_path, one_line_error):
    one_line_error(
        runner.invoke(app, ["explain-text", "hi", "--model", str(tiny_bert_folder), "--generate", "2"]),
        "needs a causal language model",
    )
    one_line_error(
        runner.invoke(app, ["explain-text", "hi", "--model", str(tiny_gpt2_folder)]),
        "give --generate N",
    )
    users = tmp_path / "mine.html"
    users.write_text("my page")
    one_line_error(
        runner.invoke(app, ["explain-text", "hi", "--model", str(tiny_bert_folder), "--html", str(users)]),
        "not a page that relprop wrote",
    )
    assert users.read_text() == "my page"
