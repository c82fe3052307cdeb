"""Explain a text classifier sentence by sentence: prediction, token relevance and word relevance.

:class:`TextExplainer` tokenizes texts with the model's own (fast) tokenizer, runs :class:`relprop.LRP` on
the token ids (relevance through the embeddings, summed over the hidden dimension, one value per token;
masks and segment ids carry none) and merges the word pieces into words (:mod:`relprop.text.words`).
Texts longer than the model's limit are truncated, and each explanation says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from relprop.composites import AttnLRP, Composite
from relprop.lrp import LRP
from relprop.targets import target_weights
from relprop.text.words import Words, merge_word_pieces

#: Batches are padded to a multiple of this many tokens, so that a few captured graphs serve all lengths.
PAD_MULTIPLE = 16


@dataclass(frozen=True)
class TextExplanation:
    """One text's prediction and explanation.

    Attributes
    ----------
    text : str
        The text as given.
    tokens : list of str
        Its tokens, special tokens included, padding excluded.
    token_relevance : numpy.ndarray
        ``(len(tokens),)``: relevance of each token for ``target``.
    words : Words
        The relevance merged into whitespace-separated words.
    logits : numpy.ndarray
        The model's output for this text, ``(classes,)``.
    target : int
        The explained class.
    """

    text: str
    tokens: list[str]
    token_relevance: np.ndarray
    words: Words
    logits: np.ndarray
    target: int

    @property
    def explained(self) -> float:
        """The explained quantity, ``logits[target]``: ``token_relevance.sum()`` plus what the rules absorb
        (biases, constant position embeddings, stabilizers) equals it."""
        return float(self.logits[self.target])

    @property
    def truncated(self) -> bool:
        """True when the text was cut to the model's token limit (its last words have no token)."""
        return self.words.truncated

    @property
    def prediction(self) -> int:
        """The predicted class."""
        return int(np.argmax(self.logits))


class TextExplainer:
    """Explain a Hugging Face-style text classifier's predictions with LRP, word by word.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier called with a tokenizer's output as keyword arguments (``input_ids``,
        ``attention_mask``, ...) that returns logits ``(batch, classes)``, a dict or a ``ModelOutput`` with
        ``logits``. It must be in eval mode.
    tokenizer : transformers.PreTrainedTokenizerFast
        The model's tokenizer; a fast one (it gives the character offsets that place tokens in words).
    composite : Composite, optional
        The rules; default :class:`relprop.composites.AttnLRP`.
    max_length : int, optional
        Token limit per text; default the tokenizer's ``model_max_length`` (capped at the model's position
        embeddings when it has them).
    batch_size : int, default 8
        Texts explained together.

    Examples
    --------
    >>> explainer = TextExplainer(model, tokenizer)
    >>> [explanation] = explainer(["the food was not good"])
    >>> explanation.words.words, explanation.words.relevance
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        composite: Composite | None = None,
        *,
        max_length: int | None = None,
        batch_size: int = 8,
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError(
                "TextExplainer needs a fast tokenizer (with character offsets), got "
                f"{type(tokenizer).__name__}: load it with AutoTokenizer.from_pretrained(path, use_fast=True)"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.composite = AttnLRP() if composite is None else composite
        self.max_length = _token_limit(model, tokenizer) if max_length is None else int(max_length)
        if self.max_length < 2:
            raise ValueError(f"max_length must be at least 2 tokens, got {self.max_length}")
        self.batch_size = batch_size
        self.lrp = LRP(model, composite=self.composite)

    def __call__(
        self,
        texts: Sequence[str],
        target: int | None = None,
        *,
        progress: Callable[[Iterable], Iterable] | None = None,
    ) -> list[TextExplanation]:
        """Explain each text: ``target`` is a class index, or None for each text's predicted class.

        ``progress`` wraps the iteration over batches (e.g. ``tqdm.tqdm``).
        """
        texts = _checked_texts(texts)
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))  # similar lengths batch well
        batches = range(0, len(texts), self.batch_size)
        results: dict[int, TextExplanation] = {}
        for start in progress(batches) if progress is not None else batches:
            chosen = order[start : start + self.batch_size]
            explained = self._explain_batch([texts[index] for index in chosen], target)
            results.update(zip(chosen, explained, strict=True))
        return [results[index] for index in range(len(texts))]

    def _explain_batch(self, texts: list[str], target: int | None) -> list[TextExplanation]:
        encoded = self.tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_length,
            pad_to_multiple_of=PAD_MULTIPLE if self.max_length % PAD_MULTIPLE == 0 else None,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_overflowing_tokens=False,
        )
        offsets = encoded.pop("offset_mapping")
        special = encoded.pop("special_tokens_mask").bool()
        inputs = dict(encoded)
        seen: dict[str, Tensor] = {}

        def start(logits: Tensor) -> Tensor:  # LRP's own forward gives the logits: no second forward pass
            seen["logits"], seen["weights"] = logits, target_weights(logits, target)
            return logits * seen["weights"]

        relevance = self.lrp.propagate(inputs, start)
        logits, targets = seen["logits"], seen["weights"].argmax(dim=1)
        if isinstance(relevance, dict):
            relevance = relevance["input_ids"]
        mask = encoded["attention_mask"].bool() if "attention_mask" in encoded else torch.ones_like(special)
        results = []
        for row, text in enumerate(texts):
            keep = mask[row]
            values = relevance[row][keep].double().numpy()
            ids = encoded["input_ids"][row][keep]
            words = merge_word_pieces(
                text, offsets[row][keep].tolist(), values, special=special[row][keep].tolist()
            )
            results.append(
                TextExplanation(
                    text=text,
                    tokens=self.tokenizer.convert_ids_to_tokens(ids.tolist()),
                    token_relevance=values,
                    words=words,
                    logits=logits[row].double().numpy(),
                    target=int(targets[row]),
                )
            )
        return results

    def __repr__(self) -> str:
        return (
            f"TextExplainer(composite={self.composite!r}, max_length={self.max_length}, "
            f"batch_size={self.batch_size})"
        )


def _checked_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a sequence of str, got {type(texts).__name__}")
    if not texts:
        raise ValueError("no texts to explain")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] must be a str, got {type(text).__name__}")
        if not text.strip():
            raise ValueError(f"text {index + 1} is empty")
    return list(texts)


def _token_limit(model: nn.Module, tokenizer) -> int:
    """The tokenizer's limit, capped by the model's position embeddings where the config names them."""
    limit = getattr(tokenizer, "model_max_length", None)
    limit = limit if isinstance(limit, int) and 0 < limit < 1_000_000 else None
    config = getattr(model, "config", None) or getattr(getattr(model, "encoder", None), "config", None)
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int):
        limit = positions if limit is None else min(limit, positions)
    if limit is None:
        raise ValueError("the tokenizer and the model name no token limit: pass max_length=")
    return limit
