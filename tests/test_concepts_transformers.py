"""Concepts on transformers: conditions on MLP neurons, tokens and attention heads (float64, random weights).

A tiny torchvision VisionTransformer (traced by torch.fx, its nn.MultiheadAttention as its parts) and a tiny
Hugging Face BertForSequenceClassification (captured by torch.export), both built here, nothing downloaded."""

import pytest
import torch
from torchvision.models import VisionTransformer

from relprop import LRP, composites, concepts
from relprop.concepts import Heads, Neurons, Tokens

VIT_MLP = "encoder.layers.encoder_layer_0.mlp.0"  # nn.Linear, output (B, 5 tokens, 12 neurons)
VIT_ATTENTION = "encoder.layers.encoder_layer_0.self_attention"  # 2 heads of 4


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    model = VisionTransformer(16, 8, 1, 2, 8, 12, num_classes=3).double().eval()
    for parameter in model.parameters():  # torchvision starts the head at zero
        torch.nn.init.normal_(parameter, std=0.3)
    return LRP(model, composites.AttnLRP()), torch.randn(2, 3, 16, 16, dtype=torch.float64)


@pytest.fixture(scope="module")
def bert():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=12,
        max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config).double().eval()
    return LRP(model, composites.AttnLRP()), torch.randint(0, 30, (1, 5))


def _flowing_through(explainer, x, layer, target=0):
    """The input relevance of what the layer propagates, alone."""
    at = concepts.relevance_at(explainer, x, [layer], target)[layer]
    return concepts.propagate_from(explainer, x, layer, at)


def _sum_of_concepts(explainer, x, conditions, target=0):
    return concepts.conditional_heatmaps(explainer, x, conditions, target).heatmaps.sum(dim=1)


def test_a_dense_layer_of_a_transformer_keeps_neurons_of_the_last_dimension_for_every_token(vit):
    """Ints on an nn.Linear with output (B, T, D) are its D neurons (they were taken as the T tokens)."""
    explainer, x = vit
    at = concepts.relevance_at(explainer, x, [VIT_MLP], 0)[VIT_MLP]
    result = concepts.conditional_heatmaps(
        explainer, x, [{VIT_MLP: 7}, {VIT_MLP: Neurons(7)}], 0, record=[VIT_MLP]
    )
    by_hand = torch.zeros_like(at)
    by_hand[..., 7] = at[..., 7]
    torch.testing.assert_close(result.layers[VIT_MLP][:, 0], by_hand, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(result.heatmaps[:, 0], result.heatmaps[:, 1], rtol=0, atol=0)
    expected = concepts.propagate_from(explainer, x, VIT_MLP, by_hand)
    torch.testing.assert_close(result.heatmaps[:, 0], expected, rtol=1e-10, atol=1e-12)


def test_vit_neurons_tokens_and_heads_of_a_layer_add_up_to_what_flows_through_it(vit):
    explainer, x = vit
    flowing = _flowing_through(explainer, x, VIT_MLP)
    neurons = _sum_of_concepts(explainer, x, [{VIT_MLP: n} for n in range(12)])
    tokens = _sum_of_concepts(explainer, x, [{VIT_MLP: Tokens(t)} for t in range(5)])
    torch.testing.assert_close(neurons, flowing, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(tokens, flowing, rtol=1e-9, atol=1e-12)
    heads = _sum_of_concepts(explainer, x, [{VIT_ATTENTION: Heads(h)} for h in range(2)])
    torch.testing.assert_close(heads, _flowing_through(explainer, x, "scaled_dot_product_attention"))


def test_concepts_keeping_tokens_and_neurons_of_one_layer_run_together(vit):
    explainer, x = vit
    conditions = [{VIT_MLP: Tokens(1)}, {VIT_MLP: 3}, {}]
    together = concepts.conditional_heatmaps(explainer, x, conditions, 0).heatmaps
    for k, condition in enumerate(conditions):
        alone = concepts.conditional_heatmaps(explainer, x, [condition], 0).heatmaps[:, 0]
        torch.testing.assert_close(together[:, k], alone, rtol=1e-12, atol=1e-14)


def test_the_tokens_of_the_last_norm_add_up_to_the_plain_heatmap(vit):
    """All relevance passes through encoder.ln: its five tokens partition the plain heatmap."""
    explainer, x = vit
    tokens = _sum_of_concepts(explainer, x, [{"encoder.ln": Tokens(t)} for t in range(5)])
    torch.testing.assert_close(tokens, explainer(x, target=0), rtol=1e-9, atol=1e-12)
    assert tokens.abs().sum() > 0


def test_a_head_condition_masks_the_out_projection_input_to_the_head_slice(vit):
    """Head h is the slice h*d:(h+1)*d of the out-projection's input (node "flatten", (B, T, H*d))."""
    explainer, x = vit
    at = concepts.relevance_at(explainer, x, ["flatten"], 0)["flatten"]
    for head in range(2):
        masked = torch.zeros_like(at)
        masked[..., head * 4 : (head + 1) * 4] = at[..., head * 4 : (head + 1) * 4]
        expected = concepts.propagate_from(explainer, x, "flatten", masked)
        for name in (VIT_ATTENTION, "scaled_dot_product_attention"):
            got = concepts.conditional_heatmaps(explainer, x, [{name: Heads(head)}], 0).heatmaps[:, 0]
            torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_bert_heads_neurons_and_tokens_add_up(bert):
    explainer, ids = bert
    attention, dense = "bert.encoder.layer.0.attention.self", "bert.encoder.layer.0.intermediate.dense"
    heads = _sum_of_concepts(explainer, ids, [{attention: Heads(h)} for h in range(2)])
    torch.testing.assert_close(heads, _flowing_through(explainer, ids, "scaled_dot_product_attention"))
    neurons = _sum_of_concepts(explainer, ids, [{dense: n} for n in range(12)])
    torch.testing.assert_close(neurons, _flowing_through(explainer, ids, dense))
    tokens = _sum_of_concepts(explainer, ids, [{"layer_norm_2": Tokens(t)} for t in range(5)])
    torch.testing.assert_close(tokens, explainer(ids, target=0), rtol=1e-9, atol=1e-12)
    assert heads.abs().sum() > 0 and neurons.abs().sum() > 0


def test_bad_heads_and_tokens_are_refused_naming_the_layer(vit):
    explainer, x = vit
    with pytest.raises(
        ValueError, match="head 2 is out of range for layer 'scaled_dot_product_attention', which has 2"
    ):
        concepts.conditional_heatmaps(explainer, x, [{VIT_ATTENTION: Heads(2)}])
    with pytest.raises(ValueError, match=f"token 5 is out of range for layer '{VIT_MLP}', which has 5"):
        concepts.conditional_heatmaps(explainer, x, [{VIT_MLP: Tokens([3, 5])}])
    with pytest.raises(ValueError, match="neuron 12 is out of range"):
        concepts.conditional_heatmaps(explainer, x, [{VIT_MLP: Neurons(12)}])
    with pytest.raises(ValueError, match="heads are kept at an attention output .* layer 'flatten' has"):
        concepts.conditional_heatmaps(explainer, x, [{"flatten": Heads(0)}])
    with pytest.raises(ValueError, match="0 attention operations"):
        concepts.conditional_heatmaps(explainer, x, [{"encoder.layers.encoder_layer_0.mlp": Heads(0)}])
    with pytest.raises(ValueError, match="module 'encoder.layers.encoder_layer_0' computes"):
        concepts.conditional_heatmaps(explainer, x, [{"encoder.layers.encoder_layer_0": 0}])
    with pytest.raises(TypeError, match="the tokens of layer"):
        concepts.conditional_heatmaps(explainer, x, [{VIT_MLP: Tokens("3")}])


def test_concept_importance_of_a_dense_layer_sums_each_neuron_over_the_tokens(vit):
    explainer, x = vit
    at = concepts.relevance_at(explainer, x, [VIT_MLP], 0)[VIT_MLP]  # (B, 5, 12)
    importance = concepts.concept_importance(explainer, x, VIT_MLP, 0)
    torch.testing.assert_close(importance, at.sum(dim=1), rtol=1e-12, atol=1e-14)


def test_the_attribution_graph_of_a_transformer_ranks_the_neurons_of_a_dense_layer(vit):
    explainer, x = vit
    upper = ("encoder.layers.encoder_layer_0.mlp.3", 2)
    edges = concepts.attribution_graph(explainer, x[:1], upper, [VIT_MLP], 0, top=3)
    recorded = concepts.conditional_heatmaps(explainer, x[:1], [{upper[0]: 2}], 0, record=[VIT_MLP])
    totals = recorded.layers[VIT_MLP][0, 0].sum(dim=0)  # (12,): each neuron over the tokens
    best = totals.topk(3)
    assert [edge.lower for edge in edges] == [(VIT_MLP, n) for n in best.indices.tolist()]
    torch.testing.assert_close(torch.tensor([e.relevance for e in edges], dtype=totals.dtype), best.values)


def test_gpt2_heads_and_tokens_add_up():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=60, n_embd=16, n_layer=1, n_head=2, n_positions=16, use_cache=False
    )
    explainer = LRP(transformers.GPT2LMHeadModel(config).double().eval(), composites.AttnLRP())
    ids = torch.randint(0, 60, (1, 6))
    target = torch.zeros(1, 6, 60, dtype=torch.float64)
    target[0, -1, 3] = 1.0  # the next token after the last, as 3
    heads = _sum_of_concepts(explainer, ids, [{"transformer.h.0.attn": Heads(h)} for h in range(2)], target)
    flowing = _flowing_through(explainer, ids, "scaled_dot_product_attention", target)
    torch.testing.assert_close(heads, flowing)
    tokens = _sum_of_concepts(explainer, ids, [{"transformer.ln_f": Tokens(t)} for t in range(6)], target)
    torch.testing.assert_close(tokens, explainer(ids, target=target), rtol=1e-9, atol=1e-12)
    assert heads.abs().sum() > 0
