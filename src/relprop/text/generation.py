"""Explain what a causal language model wrote: each generated token by the prompt and the tokens before it.

:func:`explain_generation` decodes greedily (the most likely next token, ``max_new_tokens`` times), then
explains the logit of every generated token :math:`g_i` at the position that predicted it,

.. math::

    R_{i,j} = \\text{relevance of token } j \\text{ for } z_{P+i-1}(g_i),

with :math:`P` the prompt's length. All rows are explained in one batched LRP pass over the whole
sequence: a causal model's output at position :math:`t` does not depend on later tokens, so their
relevance is exactly zero and the matrix is lower-triangular (``R[i, j] = 0`` for ``j >= P + i``). Each row
keeps its books: its sum plus what the rules absorb (biases, constant position embeddings) is the explained
logit.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from relprop.composites import AttnLRP, Composite
from relprop.graph import select_output
from relprop.lrp import LRP
from relprop.text.report import GENERATOR
from relprop.viz.colormaps import colorize


@dataclass(frozen=True)
class GenerationExplanation:
    """A generated continuation and the relevance of every token for every generated token.

    Attributes
    ----------
    tokens : list of str
        The prompt's tokens followed by the generated ones.
    prompt_length : int
        :math:`P`, the number of prompt tokens.
    token_ids : numpy.ndarray
        ``(P + G,)`` int64: the ids of ``tokens``.
    relevance : numpy.ndarray
        ``(G, P + G)`` float64: row ``i`` is the relevance of each token for generated token ``i``;
        lower-triangular (zero from column ``P + i`` on).
    logits : numpy.ndarray
        ``(G,)``: the explained logit of each generated token.
    text : str
        The generated continuation, decoded.
    """

    tokens: list[str]
    prompt_length: int
    token_ids: np.ndarray
    relevance: np.ndarray
    logits: np.ndarray
    text: str


def explain_generation(
    model: nn.Module,
    tokenizer,
    prompt: str,
    *,
    max_new_tokens: int = 10,
    composite: Composite | None = None,
    explainer: LRP | None = None,
) -> GenerationExplanation:
    """Generate greedily from ``prompt`` and explain each generated token.

    Parameters
    ----------
    model : torch.nn.Module
        A causal language model in eval mode, called as ``model(input_ids=..., use_cache=False)`` (Hugging
        Face ``*ForCausalLM``), returning logits ``(batch, tokens, vocabulary)`` (or a ``ModelOutput`` with
        ``logits``).
    tokenizer : transformers.PreTrainedTokenizerBase
        The model's tokenizer.
    prompt : str
        The text to continue; not empty.
    max_new_tokens : int, default 10
        Number of tokens to generate (fewer when the model emits its end-of-sequence token).
    composite : Composite, optional
        The rules; default :class:`relprop.composites.AttnLRP`.
    explainer : LRP, optional
        An explainer of ``model`` to reuse across calls (its captured graphs are kept); overrides
        ``composite``.

    Returns
    -------
    GenerationExplanation
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("the prompt is empty")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    prompt_length = ids.shape[1]
    if isinstance(limit, int) and prompt_length + max_new_tokens > limit:
        raise ValueError(
            f"the prompt has {prompt_length} tokens: with {max_new_tokens} new ones it exceeds the model's "
            f"limit of {limit}"
        )
    ids = _greedy(model, ids, max_new_tokens, getattr(tokenizer, "eos_token_id", None))
    explainer = explainer if explainer is not None else LRP(model, composite=composite or AttnLRP())
    relevance, logits = _explain_generated(explainer, ids, prompt_length)
    return GenerationExplanation(
        tokens=tokenizer.convert_ids_to_tokens(ids[0].tolist()),
        prompt_length=prompt_length,
        token_ids=ids[0].numpy().astype(np.int64),
        relevance=relevance.double().numpy(),
        logits=logits.double().numpy(),
        text=tokenizer.decode(ids[0, prompt_length:]),
    )


def _explain_generated(explainer: LRP, ids: Tensor, prompt_length: int) -> tuple[Tensor, Tensor]:
    """Explain every token of ``ids`` (1, T) after the first ``prompt_length`` in one batch: row i holds
    the relevance of the logit of generated token i at the position that predicted it. Returns the
    relevance (G, T, ...) and those logits (G,)."""
    generated = ids.shape[1] - prompt_length
    rows = torch.arange(generated)
    positions = prompt_length - 1 + rows
    following = ids[0, positions + 1]
    seen: dict[str, Tensor] = {}

    def start(logits: Tensor) -> Tensor:
        weights = torch.zeros_like(logits)
        weights[rows, positions, following] = 1.0
        seen["logits"] = logits[rows, positions, following]
        return logits * weights

    batch = {"input_ids": ids.expand(generated, -1), "use_cache": False}
    relevance = explainer.propagate(batch, start)
    return relevance, seen["logits"]


@torch.no_grad()
def _greedy(model: nn.Module, ids: Tensor, max_new_tokens: int, eos: int | None) -> Tensor:
    for _ in range(max_new_tokens):
        logits = select_output(model(input_ids=ids, use_cache=False))
        following = logits[:, -1].argmax(dim=-1, keepdim=True)
        ids = torch.cat([ids, following], dim=1)
        if eos is not None and int(following) == eos:
            break
    return ids


def generation_matrix_html(explanation: GenerationExplanation, *, title: str = "relprop generation") -> str:
    """A standalone HTML page: the token-by-token relevance matrix of a generation.

    Rows are the generated tokens, columns all tokens (the prompt's first, then the generated ones); each
    row is coloured by its own largest absolute relevance (``'bwr'``: red for the token, blue against it),
    the value shows on hover, and the cells a row may not depend on are blank.
    """
    tokens = [_shown(token) for token in explanation.tokens]
    prompt = explanation.prompt_length
    header = "".join(
        f"<th class='{'prompt' if j < prompt else 'generated'}'><div>{html.escape(token)}</div></th>"
        for j, token in enumerate(tokens)
    )
    body = []
    for i, row in enumerate(explanation.relevance):
        visible = prompt + i
        colors = colorize(row[:visible], "bwr", True, None)
        cells = "".join(
            f"<td style='background-color: #{r:02x}{g:02x}{b:02x}' title='{value:.4g}'></td>"
            for value, (r, g, b) in zip(row[:visible], colors.tolist(), strict=True)
        )
        cells += "<td class='future'></td>" * (len(tokens) - visible)
        body.append(
            f"<tr><th class='row'>{html.escape(tokens[visible])}</th>{cells}"
            f"<td class='logit'>{explanation.logits[i]:.3g}</td></tr>"
        )
    return (
        f"<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n{GENERATOR}\n"
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p>Each row explains one generated token (the logit at the right) "
        "by the tokens before it: red for it, blue against it, each row scaled to its own largest value. "
        "Prompt tokens are in bold.</p>\n"
        f"<table><tr><th></th>{header}<th>logit</th></tr>\n{''.join(body)}\n</table>\n</body>\n</html>\n"
    )


def _shown(token: str) -> str:
    """A token as a reader sees it: GPT-2's and SentencePiece's space markers as spaces."""
    return token.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\\n")


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #1d2330; margin: 20px; }
table { border-collapse: collapse; }
td { width: 22px; height: 22px; border: 1px solid #eef0f3; }
td.future { background: #f5f6f8; }
td.logit { width: auto; border: none; padding-left: 8px; font-variant-numeric: tabular-nums; color: #5b6474; }
th { font-weight: normal; white-space: pre; }
th.prompt { font-weight: bold; }
th div { writing-mode: vertical-rl; transform: rotate(180deg); max-height: 120px; overflow: hidden; }
th.row { text-align: right; padding-right: 6px; }
"""
