"""The generation matrix of a random GPT-2: greedy tokens, causal zeros, rows that equal LRP on the prefix
alone, and its page."""

import numpy as np
import pytest
import torch

from relprop import LRP, composites
from relprop.text import explain_generation, generation_matrix_html

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2_folder):
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_gpt2_folder).eval()
    return model, transformers.AutoTokenizer.from_pretrained(tiny_gpt2_folder)


def test_matrix_is_causal_and_each_row_is_lrp_of_its_prefix(gpt2):
    model, tokenizer = gpt2
    explanation = explain_generation(model, tokenizer, "the food was", max_new_tokens=4)
    prompt = explanation.prompt_length
    ids = torch.from_numpy(explanation.token_ids)[None]
    generated = len(explanation.token_ids) - prompt
    assert explanation.relevance.shape == (generated, prompt + generated)
    with torch.no_grad():
        greedy = model.generate(
            ids[:, :prompt], max_new_tokens=generated, do_sample=False, pad_token_id=0, eos_token_id=None
        )
    assert torch.equal(greedy[0], ids[0])
    lrp = LRP(model, composite=composites.AttnLRP())
    for i in range(generated):
        assert np.all(explanation.relevance[i, prompt + i :] == 0.0)
        prefix = ids[:, : prompt + i]
        with torch.no_grad():
            logits = model(input_ids=prefix, use_cache=False).logits
        weights = torch.zeros_like(logits)
        weights[0, -1, ids[0, prompt + i]] = 1.0
        expected = lrp({"input_ids": prefix, "use_cache": False}, target=weights)[0].double().numpy()
        np.testing.assert_allclose(explanation.relevance[i, : prompt + i], expected, rtol=1e-4, atol=1e-7)
        assert explanation.logits[i] == pytest.approx(float(logits[0, -1, ids[0, prompt + i]]), rel=1e-5)
    page = generation_matrix_html(explanation)
    assert page.count("<tr><th class='row'>") == generated
    assert page.count("class='future'") == sum(range(1, generated + 1))


def test_bad_prompts(gpt2):
    model, tokenizer = gpt2
    with pytest.raises(ValueError, match="prompt is empty"):
        explain_generation(model, tokenizer, "  ")
    with pytest.raises(ValueError, match="exceeds the model's limit of 64"):
        explain_generation(model, tokenizer, "word " * 60, max_new_tokens=10)
