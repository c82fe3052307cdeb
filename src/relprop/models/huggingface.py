"""Hugging Face text models from a local folder, as ``transformers`` loads them, for the text commands.

A folder holds a ``config.json``, the weights (``model.safetensors`` is the format that is safe to load
from strangers; ``pytorch_model.bin`` is read with ``weights_only`` by ``transformers``) and the tokenizer.
The task is read from the config's ``architectures``: ``*ForSequenceClassification`` is a classifier,
``*ForCausalLM`` / ``*LMHeadModel`` a generator. Nothing is downloaded: ``local_files_only`` is set.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

__all__ = ["TextModel", "load_text_model"]


@dataclass(frozen=True)
class TextModel:
    """A text model, its tokenizer and what it does.

    Attributes
    ----------
    model : torch.nn.Module
        In eval mode.
    tokenizer : transformers.PreTrainedTokenizerBase
    task : str
        ``"classification"`` or ``"generation"``.
    class_names : list of str or None
        A classifier's label names by index (the config's ``id2label``).
    """

    model: nn.Module
    tokenizer: object
    task: str
    class_names: list[str] | None


def load_text_model(path: str | os.PathLike) -> TextModel:
    """Load a classifier or a causal language model and its tokenizer from a local folder.

    Parameters
    ----------
    path : str or os.PathLike
        A folder written by ``save_pretrained`` (model and tokenizer).

    Returns
    -------
    TextModel

    Raises
    ------
    OSError
        When the folder, its config or its tokenizer is missing or unreadable.
    ValueError
        When the config names an architecture that is neither a classifier nor a causal language model.
    """
    try:
        import transformers
    except ImportError as error:
        raise ImportError(
            'text models need transformers: pip install "relprop[text]" '
            '(in a checkout: pip install -e ".[text]")'
        ) from error
    folder = Path(path)
    config_file = folder / "config.json"
    if not folder.is_dir():
        raise OSError(f"{folder}: no such model folder")
    if not config_file.is_file():
        raise OSError(f"{folder} is not a Hugging Face model folder: it has no config.json")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OSError(f"{config_file} is not valid JSON: {error}") from None
    architectures = (config.get("architectures") or []) if isinstance(config, dict) else []
    task = _task(architectures)
    if task is None:
        raise ValueError(
            f"{folder}: the config's architectures {architectures} are neither a sequence classifier "
            "(*ForSequenceClassification) nor a causal language model (*ForCausalLM, *LMHeadModel)"
        )
    auto = (
        transformers.AutoModelForSequenceClassification
        if task == "classification"
        else transformers.AutoModelForCausalLM
    )
    try:
        model = auto.from_pretrained(folder, local_files_only=True).eval()
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        reason = " ".join(str(error).split())
        raise OSError(f"{folder}: cannot load the model or its tokenizer: {reason}") from None
    names = None
    if task == "classification":
        labels = model.config.id2label
        names = [str(labels.get(index, index)) for index in range(model.config.num_labels)]
    return TextModel(model, tokenizer, task, names)


def _task(architectures: list) -> str | None:
    for name in architectures:
        if isinstance(name, str) and name.endswith("ForSequenceClassification"):
            return "classification"
        if isinstance(name, str) and (name.endswith("ForCausalLM") or name.endswith("LMHeadModel")):
            return "generation"
    return None
