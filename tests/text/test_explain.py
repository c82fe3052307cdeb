"""TextExplainer on a real tokenizer and a random Hugging Face BERT: the numbers are LRP's, padding changes
nothing, the books balance and bad input is named."""

import types

import numpy as np
import pytest
import torch

from relprop import LRP, composites
from relprop.text import TextExplainer

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def bert(tiny_bert_folder):
    model = transformers.AutoModelForSequenceClassification.from_pretrained(tiny_bert_folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_bert_folder)
    return model, tokenizer


TEXTS = ["the food was not good", "a very long sentence about the hotel and its staff, really", "ok"]


def test_relevance_is_lrps_per_token_and_words_keep_the_books(bert):
    model, tokenizer = bert
    explanations = TextExplainer(model, tokenizer, batch_size=2)(TEXTS, target=1)
    lrp = LRP(model, composite=composites.AttnLRP())
    for text, explanation in zip(TEXTS, explanations, strict=True):
        alone = dict(tokenizer([text], return_tensors="pt"))
        expected = lrp(alone, target=1)[0].double().numpy()
        np.testing.assert_allclose(explanation.token_relevance, expected, rtol=1e-4, atol=1e-6)
        assert explanation.tokens == tokenizer.convert_ids_to_tokens(alone["input_ids"][0].tolist())
        with torch.no_grad():
            logits = model(**alone).logits[0].double().numpy()
        np.testing.assert_allclose(explanation.logits, logits, rtol=1e-5, atol=1e-6)
        assert explanation.explained == pytest.approx(logits[1], rel=1e-5)
        audit = lrp.audit(alone, target=1)
        assert explanation.token_relevance.sum() == pytest.approx(float(audit.input[0]), rel=1e-4, abs=1e-6)
        assert float(audit.output[0]) == pytest.approx(explanation.explained, rel=1e-5)
        assert abs(float(audit.residual[0])) < 1e-4 * abs(explanation.explained) + 1e-6
        assert explanation.words.words == text.split()
        total = explanation.words.relevance.sum() + explanation.words.special
        assert total == pytest.approx(explanation.token_relevance.sum(), rel=1e-9, abs=1e-12)
        assert not explanation.truncated


def test_predicted_class_by_default(bert):
    model, tokenizer = bert
    [explanation] = TextExplainer(model, tokenizer)(["the food was not good"])
    assert explanation.target == explanation.prediction == int(np.argmax(explanation.logits))


def test_long_text_is_truncated_and_says_so(bert):
    model, tokenizer = bert
    explainer = TextExplainer(model, tokenizer)
    assert explainer.max_length == 32  # the model's position embeddings cap the tokenizer's 512
    [explanation] = explainer([" ".join(["word"] * 100)])
    assert explanation.truncated and explanation.words.truncated
    assert len(explanation.tokens) == 32 and len(explanation.words.words) == 30


def test_bad_input_is_named(bert):
    model, tokenizer = bert
    explainer = TextExplainer(model, tokenizer)
    with pytest.raises(ValueError, match="text 2 is empty"):
        explainer(["fine", "   "])
    with pytest.raises(ValueError, match="no texts"):
        explainer([])
    with pytest.raises(TypeError, match="sequence of str"):
        explainer("a bare string")
    with pytest.raises(ValueError, match="target class 5 of sample 0 is out of range"):
        explainer(["fine"], target=5)
    slow = types.SimpleNamespace(is_fast=False)  # a tokenizer without character offsets
    with pytest.raises(TypeError, match="fast tokenizer"):
        TextExplainer(model, slow)
