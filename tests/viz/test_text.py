import re

import numpy as np
import pytest
import torch

from relprop.viz import save_text_heatmap, text_heatmap_ansi, text_heatmap_html

SPAN = re.compile(
    r'<span class="relprop-token" style="background-color: (#[0-9a-f]{6}); color: (#[0-9a-f]{6})"'
)


def test_html_has_one_coloured_span_per_token():
    tokens = ["the", "movie", "was", "not", "good"]
    document = text_heatmap_html(tokens, [0.0, 0.5, 0.0, -2.0, 1.0])
    assert document.startswith("<!DOCTYPE html>") and document.rstrip().endswith("</html>")
    colours = SPAN.findall(document)
    # s = 2: 0.5 -> position 0.625 -> (255, 191, 191); text turns white on the saturated blue
    assert colours == [
        ("#ffffff", "#000000"),
        ("#ffbfbf", "#000000"),
        ("#ffffff", "#000000"),
        ("#0000ff", "#ffffff"),
        ("#ff8080", "#000000"),
    ]
    assert document.count("<span") == len(tokens)
    assert re.findall(r">([^<>]*)</span>", document) == tokens


def test_html_escapes_tokens():
    tokens = ["<script>alert(1)</script>", '" onmouseover="x', "a&b"]
    document = text_heatmap_html(tokens, np.array([1.0, -1.0, 0.0]), title="<i>t</i>")
    assert "<script>" not in document and "<i>" not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "&quot; onmouseover=&quot;x" in document and "a&amp;b" in document
    assert len(SPAN.findall(document)) == 3


def test_text_is_normalized_on_its_own_and_accepts_tensors():
    tokens = ["a", "b", "c"]
    relevance = np.array([0.3, -0.1, 0.05])
    assert SPAN.findall(text_heatmap_html(tokens, relevance * 1000)) == SPAN.findall(
        text_heatmap_html(tokens, torch.tensor(relevance))
    )
    assert text_heatmap_ansi(tokens, relevance * 1000) == text_heatmap_ansi(tokens, relevance)


def test_save_text_heatmap_writes_utf8_html(tmp_path):
    path = tmp_path / "text.html"
    save_text_heatmap(path, ["café", "naïve"], [1.0, -1.0], cmap="hot")
    written = path.read_text(encoding="utf-8")
    assert written == text_heatmap_html(["café", "naïve"], [1.0, -1.0], cmap="hot")
    # heat only: the negative token is black with white text
    assert SPAN.findall(written) == [("#ffffff", "#000000"), ("#000000", "#ffffff")]


def test_ansi_uses_24_bit_background_codes():
    rendered = text_heatmap_ansi(["good", "bad", "meh"], [2.0, -2.0, 0.0])
    assert rendered == (
        "\x1b[48;2;255;0;0m\x1b[38;2;255;255;255mgood\x1b[0m "
        "\x1b[48;2;0;0;255m\x1b[38;2;255;255;255mbad\x1b[0m "
        "\x1b[48;2;255;255;255m\x1b[38;2;0;0;0mmeh\x1b[0m"
    )


def test_ansi_escapes_control_characters_in_tokens():
    rendered = text_heatmap_ansi(["\x1b[2Jx", "line\nbreak"], [1.0, 1.0], separator="")
    assert rendered.count("\x1b") == 6  # background, foreground and reset per token only
    assert "\\x1b[2Jx" in rendered and "line\\nbreak" in rendered


def test_text_rejects_bad_input():
    with pytest.raises(ValueError, match="got 3 tokens but 2 relevance values"):
        text_heatmap_html(["a", "b", "c"], [1.0, 2.0])
    with pytest.raises(
        ValueError, match=r"relevance contains 1 NaN or infinite value\(s\), the first at index \(1,\)"
    ):
        text_heatmap_ansi(["a", "b"], [1.0, float("nan")])
    with pytest.raises(ValueError, match=r"shape \(T,\), got shape \(1, 2\)"):
        text_heatmap_html(["a", "b"], [[1.0, 2.0]])
    with pytest.raises(TypeError, match="tokens must be a sequence of str, got str"):
        text_heatmap_html("ab", [1.0, 2.0])
    with pytest.raises(TypeError, match=r"tokens\[1\] must be a str, got int"):
        text_heatmap_ansi(["a", 3], [1.0, 2.0])
    with pytest.raises(ValueError, match="unknown colormap 'nope'"):
        text_heatmap_ansi(["a"], [1.0], cmap="nope")
    with pytest.raises(ValueError, match="relevance is empty"):
        text_heatmap_html([], [])
