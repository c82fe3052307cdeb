"""Text heatmaps: tokens shown with their relevance as background colour, as HTML or in a terminal.

The relevance of one text is normalized on its own and coloured with the same maps as image heatmaps
(see :mod:`relprop.viz.colormaps`): with the default ``'bwr'`` map, positive tokens are red, negative
tokens blue and irrelevant tokens white. The text colour switches to white on dark backgrounds.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike

from ._arrays import as_float_array
from .colormaps import colorize

_HTML_TEMPLATE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; line-height: 1.8; }}
.relprop-token {{ white-space: pre-wrap; padding: 0.1em 0.15em; border-radius: 0.2em; }}
</style>
</head>
<body>
<p>{body}</p>
</body>
</html>
"""


def text_heatmap_html(
    tokens: Sequence[str],
    relevance: torch.Tensor | ArrayLike,
    *,
    cmap: str = "bwr",
    signed: bool | None = None,
    clip_percentile: float | None = None,
    separator: str = " ",
    title: str = "relprop text heatmap",
) -> str:
    """Render tokens with their relevance as background colour in a standalone HTML document.

    Every token becomes one ``<span>`` with an inline ``background-color`` and its relevance as tooltip.
    Tokens are HTML-escaped: a token ``<script>`` is shown as text, never interpreted.

    Parameters
    ----------
    tokens : sequence of str
        The tokens of one text.
    relevance : torch.Tensor or array_like
        One finite relevance value per token, shape ``(len(tokens),)``.
    cmap : str, default 'bwr'
        ``'bwr'``, ``'hot'`` or the name of a matplotlib colormap.
    signed : bool, optional
        Signed relevance (True) or positive relevance only (False); default False for ``'hot'``, else True.
    clip_percentile : float, optional
        Normalize by this percentile of the magnitudes instead of their maximum.
    separator : str, default ' '
        Text put between tokens (use ``''`` for sub-word tokens that carry their own spaces).
    title : str, default 'relprop text heatmap'
        Title of the HTML document.

    Returns
    -------
    str
        The HTML document.
    """
    body = text_heatmap_spans(
        tokens, relevance, cmap=cmap, signed=signed, clip_percentile=clip_percentile, separator=separator
    )
    return _HTML_TEMPLATE.format(title=html.escape(title), body=body)


def text_heatmap_spans(
    tokens: Sequence[str],
    relevance: torch.Tensor | ArrayLike,
    *,
    cmap: str = "bwr",
    signed: bool | None = None,
    clip_percentile: float | None = None,
    separator: str = " ",
) -> str:
    """The HTML fragment of :func:`text_heatmap_html`: one coloured ``<span class="relprop-token">`` per
    token, joined by the escaped ``separator``, to put inside a page of one's own.

    Parameters
    ----------
    tokens, relevance, cmap, signed, clip_percentile, separator
        As in :func:`text_heatmap_html`.

    Returns
    -------
    str
        The spans.
    """
    colors, relevance = _token_colors(tokens, relevance, cmap, signed, clip_percentile)
    spans = [
        f'<span class="relprop-token" style="background-color: {_hex(color)}; '
        f'color: {_hex(_text_color(color))}" title="{value:.6g}">{html.escape(token)}</span>'
        for token, value, color in zip(tokens, relevance, colors, strict=True)
    ]
    return html.escape(separator).join(spans)


def save_text_heatmap(
    path: str | os.PathLike,
    tokens: Sequence[str],
    relevance: torch.Tensor | ArrayLike,
    *,
    cmap: str = "bwr",
    signed: bool | None = None,
    clip_percentile: float | None = None,
    separator: str = " ",
    title: str = "relprop text heatmap",
) -> None:
    """Write :func:`text_heatmap_html` of the tokens to ``path`` (UTF-8).

    Parameters
    ----------
    path : str or os.PathLike
        Output file, e.g. ``'explanation.html'``.
    tokens, relevance, cmap, signed, clip_percentile, separator, title
        As in :func:`text_heatmap_html`.
    """
    document = text_heatmap_html(
        tokens,
        relevance,
        cmap=cmap,
        signed=signed,
        clip_percentile=clip_percentile,
        separator=separator,
        title=title,
    )
    with open(path, "w", encoding="utf-8") as file:
        file.write(document)


def text_heatmap_ansi(
    tokens: Sequence[str],
    relevance: torch.Tensor | ArrayLike,
    *,
    cmap: str = "bwr",
    signed: bool | None = None,
    clip_percentile: float | None = None,
    separator: str = " ",
) -> str:
    r"""Render tokens with their relevance as 24-bit ANSI background colours, for ``print``.

    Each token is written as ``ESC[48;2;R;G;Bm`` (background) ``ESC[38;2;R;G;Bm`` (black or white text)
    token ``ESC[0m`` (reset). Control characters inside tokens (e.g. ``\x1b``) are shown escaped so that
    a token cannot drive the terminal.

    Parameters
    ----------
    tokens, relevance, cmap, signed, clip_percentile, separator
        As in :func:`text_heatmap_html`.

    Returns
    -------
    str
        The coloured text, one line unless tokens contain line breaks.
    """
    colors, _ = _token_colors(tokens, relevance, cmap, signed, clip_percentile)
    return separator.join(
        f"\x1b[48;2;{r};{g};{b}m\x1b[38;2;{';'.join(map(str, _text_color((r, g, b))))}m"
        f"{_printable(token)}\x1b[0m"
        for token, (r, g, b) in zip(tokens, colors.tolist(), strict=True)
    )


def _token_colors(tokens, relevance, cmap, signed, clip_percentile) -> tuple[np.ndarray, np.ndarray]:
    """Validate tokens and relevance; return the ``(T, 3)`` uint8 colours and the relevance array."""
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(f"tokens must be a sequence of str, got {type(tokens).__name__}")
    for index, token in enumerate(tokens):
        if not isinstance(token, str):
            raise TypeError(f"tokens[{index}] must be a str, got {type(token).__name__}")
    values = as_float_array(relevance, "relevance")
    if values.ndim != 1:
        raise ValueError(f"relevance must be one value per token, shape (T,), got shape {values.shape}")
    if len(values) != len(tokens):
        raise ValueError(f"got {len(tokens)} tokens but {len(values)} relevance values")
    return colorize(values, cmap, signed, clip_percentile), values


def _text_color(background) -> tuple[int, int, int]:
    """Black text on light backgrounds, white on dark ones (ITU-R BT.601 luma below 128)."""
    r, g, b = (int(channel) for channel in background)
    return (255, 255, 255) if 0.299 * r + 0.587 * g + 0.114 * b < 128 else (0, 0, 0)


def _hex(color) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(channel) for channel in color))


def _printable(token: str) -> str:
    """Replace non-printable characters (escape, newline, ...) by their Python escape, e.g. ``\\x1b``."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in token)
