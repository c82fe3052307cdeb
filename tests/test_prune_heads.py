"""relprop.prune's attention heads: scores against their definitions, masks, removal, errors."""

import pytest
import torch
from torch import nn

from relprop import LRP, composites
from relprop.prune import (
    attention_layers,
    head_mask,
    head_mask_hooks,
    head_scores,
    mask_heads,
    prune,
    remove_heads,
    select_units,
)

_E, _H, _L, _C = 6, 3, 4, 2  # embedding width, heads, tokens, classes
_D = _E // _H


class _Upper(nn.Module):
    """The model above the heads: the output projection, the mean over tokens, the classifier."""

    def __init__(self, out_proj: nn.Linear, classifier: nn.Linear) -> None:
        super().__init__()
        self.out_proj, self.classifier = out_proj, classifier

    def forward(self, mixed):
        return self.classifier(self.out_proj(mixed).mean(1))


class _Attending(nn.Module):
    """Self-attention over tokens, averaged over them, then a dense classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(_E, _H, batch_first=True)
        self.classifier = nn.Linear(_E, _C)

    def forward(self, x):
        return self.classifier(self.attention(x, x, x, need_weights=False)[0].mean(1))


def _attending():
    torch.manual_seed(0)
    model = _Attending().double().eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_()
    x = torch.randn(5, _L, _E, dtype=torch.float64)
    return model, x, model(x).argmax(1)


def _mixed(model: _Attending, x):
    """The heads' outputs side by side, ``(B, L, H*D)``, computed by hand: softmax(q k^T / sqrt(D)) v."""
    weight, bias = model.attention.in_proj_weight, model.attention.in_proj_bias
    q, k, v = (
        (x @ w.T + b).unflatten(-1, (_H, _D)).transpose(1, 2) for w, b in zip(weight.chunk(3), bias.chunk(3))
    )
    attention = torch.softmax(q @ k.transpose(-2, -1) / _D**0.5, dim=-1)
    return (attention @ v).transpose(1, 2).flatten(-2)


def _upper(model: _Attending) -> _Upper:
    return _Upper(model.attention.out_proj, model.classifier)


def test_the_hand_computed_heads_reproduce_the_model():
    model, x, _ = _attending()
    torch.testing.assert_close(_upper(model)(_mixed(model, x)), model(x))


def _per_head(tensor):
    return tensor.abs().unflatten(-1, (_H, _D)).sum((0, 1, 3))


def test_lrp_score_is_the_relevance_at_the_output_projections_input():
    """The relevance the output projection passes down to each head's columns equals the input relevance of
    the model above the heads, explained on the heads' outputs."""
    model, x, target = _attending()
    composite = composites.AttnLRP()
    scores = head_scores(model, x, target, criterion="lrp", composite=composite)
    relevance = LRP(_upper(model), composite)(_mixed(model, x).detach(), target)
    assert list(scores) == ["attention"]
    torch.testing.assert_close(scores["attention"], _per_head(relevance))


@pytest.mark.parametrize("criterion", ["gradient", "taylor"])
def test_gradient_scores_are_taken_at_each_heads_output(criterion):
    model, x, target = _attending()
    mixed = _mixed(model, x).detach().requires_grad_()
    _upper(model)(mixed).gather(1, target[:, None]).sum().backward()
    expected = mixed.grad if criterion == "gradient" else mixed.grad * mixed
    torch.testing.assert_close(
        head_scores(model, x, target, criterion=criterion)["attention"], _per_head(expected)
    )


@pytest.mark.parametrize("order", [1, 2])
def test_weight_scores_are_the_norm_of_the_heads_own_parameters(order):
    model, _, _ = _attending()
    attention = model.attention
    qkv = attention.in_proj_weight.view(3, _H, _D, _E)
    qkv_bias = attention.in_proj_bias.view(3, _H, _D)
    out = attention.out_proj.weight.view(_E, _H, _D)
    expected = torch.stack(
        [
            torch.cat([qkv[:, h].flatten(), qkv_bias[:, h].flatten(), out[:, h].flatten()]).norm(p=order)
            for h in range(_H)
        ]
    ).detach()
    scores = head_scores(model, criterion=f"weight-l{order}")["attention"]
    torch.testing.assert_close(scores, expected)


def test_masking_a_head_zeroes_exactly_its_output():
    model, x, _ = _attending()
    masked = mask_heads(model, {"attention": head_mask(_H, [1])})
    zeroed = _mixed(model, x).clone()
    zeroed[..., _D : 2 * _D] = 0
    torch.testing.assert_close(masked(x), _upper(model)(zeroed), rtol=1e-12, atol=1e-12)
    assert model.attention.out_proj.weight[:, _D : 2 * _D].abs().min() > 0  # the original is untouched


def _fine_tune(model, x, steps=3):
    """A few steps of SGD with momentum and weight decay on random targets, in training mode."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    targets = torch.randint(0, _C, (x.shape[0],), generator=torch.Generator().manual_seed(1))
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), targets).backward()
        optimizer.step()
    model.eval()


def test_a_masked_head_stays_masked_while_fine_tuning():
    """nn.MultiheadAttention reads out_proj.weight without calling out_proj; the masked head's columns stay
    exactly zero through optimizer steps, so its output reaches nothing; the weight is plain afterwards."""
    model, x, _ = _attending()
    keep = {"attention": head_mask(_H, [1])}
    masked = mask_heads(model, keep)
    with head_mask_hooks(masked, keep):
        _fine_tune(masked, x)
    weight = masked.attention.out_proj.weight
    assert type(weight) is nn.Parameter and not hasattr(masked.attention.out_proj, "parametrizations")
    assert (weight[:, _D : 2 * _D] == 0).all()
    assert weight[:, :_D].ne(model.attention.out_proj.weight[:, :_D]).all()  # the kept heads did train
    zeroed = _mixed(masked, x).clone()
    zeroed[..., _D : 2 * _D] = 0
    torch.testing.assert_close(masked(x), _upper(masked)(zeroed), rtol=1e-12, atol=1e-12)


def test_without_the_hooks_fine_tuning_revives_a_masked_head():
    """The control of the test above: the same steps give the masked head's columns non-zero weights."""
    model, x, _ = _attending()
    masked = mask_heads(model, {"attention": head_mask(_H, [1])})
    _fine_tune(masked, x)
    assert masked.attention.out_proj.weight[:, _D : 2 * _D].abs().min() > 0


def _vit():
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(16, 8, 2, 2, 8, 16, num_classes=3).double().eval()
    nn.init.normal_(model.heads.head.weight)  # torchvision starts the head at zero
    return model, torch.randn(3, 3, 16, 16, dtype=torch.float64)


@pytest.mark.parametrize("criterion", ["lrp", "gradient", "taylor"])
def test_a_masked_head_of_a_torchvision_vit_scores_zero(criterion):
    """The recording and the hooks sit at the output projection's input of torchvision's attention: a head
    masked there gets no relevance and no gradient; the others do."""
    model, x = _vit()
    layer = "encoder.layers.encoder_layer_1.self_attention"
    assert [s.name for s in attention_layers(model)] == [
        "encoder.layers.encoder_layer_0.self_attention",
        layer,
    ]
    masked = mask_heads(model, {layer: head_mask(2, [0])})
    composite = composites.AttnLRP() if criterion == "lrp" else None
    scores = head_scores(masked, x, criterion=criterion, composite=composite)
    assert scores[layer][0] == 0
    assert scores[layer][1] > 0 and (scores["encoder.layers.encoder_layer_0.self_attention"] > 0).all()


def _bert():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50, num_labels=2, hidden_size=12, num_hidden_layers=2, num_attention_heads=3,
        intermediate_size=16,
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config).double().eval()
    ids = torch.randint(0, 50, (4, 6))
    mask = torch.ones(4, 6, dtype=torch.long)
    mask[1, 4:] = 0
    return model, {"input_ids": ids, "attention_mask": mask}


_KEEP = {"bert.encoder.layer.0.attention": [1], "bert.encoder.layer.1.attention": [0, 2]}  # heads pruned


def test_removing_bert_heads_computes_what_masking_them_does():
    model, inputs = _bert()
    keep = {name: head_mask(3, pruned, name) for name, pruned in _KEEP.items()}
    removed, masked = remove_heads(model, keep), mask_heads(model, keep)
    torch.testing.assert_close(removed(**inputs).logits, masked(**inputs).logits, rtol=1e-12, atol=1e-12)
    assert removed.bert.encoder.layer[1].attention.self.query.out_features == 4
    assert removed.bert.encoder.layer[1].attention.output.dense.in_features == 4
    assert [s.heads for s in attention_layers(removed)] == [2, 1]


@pytest.mark.parametrize("criterion", ["lrp", "gradient", "taylor"])
def test_scores_of_the_kept_bert_heads_are_those_of_the_smaller_model(criterion):
    """Masked heads get no relevance and no gradient; kept heads score the same in the masked and in the
    smaller model."""
    model, inputs = _bert()
    keep = {name: head_mask(3, pruned, name) for name, pruned in _KEEP.items()}
    composite = composites.AttnLRP() if criterion == "lrp" else None
    masked, removed = (
        head_scores(pruned, inputs, criterion=criterion, composite=composite)
        for pruned in (mask_heads(model, keep), remove_heads(model, keep))
    )
    for name, mask in keep.items():
        assert (masked[name][~mask] == 0).all() and (masked[name][mask] > 0).all()
        torch.testing.assert_close(masked[name][mask], removed[name])


def test_bad_heads_and_models_are_named():
    model, x, _ = _attending()
    with pytest.raises(
        ValueError, match="^head 3 of attention layer 'attention' is out of range: it has heads 0 to 2$"
    ):
        head_mask(3, [3], "attention")
    with pytest.raises(ValueError, match=r"must be a bool tensor of shape \(3,\)"):
        mask_heads(model, {"attention": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="removes all 3 heads"):
        mask_heads(model, {"attention": torch.zeros(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="can only be masked"):
        remove_heads(model, {"attention": head_mask(3, [0])})
    with pytest.raises(ValueError, match="no attention layer 'classifier'; the model's are attention"):
        head_scores(model, x, criterion="gradient", layers=["classifier"])
    with pytest.raises(ValueError, match="^Sequential has no attention layer whose heads can be pruned"):
        head_scores(nn.Sequential(nn.Linear(2, 2)), torch.ones(1, 2))
    with pytest.raises(ValueError, match="^MultiheadAttention has no attention layer"):
        head_scores(nn.MultiheadAttention(4, 2, add_bias_kv=True), criterion="weight-l1")
    with pytest.raises(ValueError, match="needs reference samples"):
        head_scores(model, None, criterion="taylor")


class _TwoAttentions(nn.Module):
    """Two self-attention layers of 3 and 2 heads, one after the other, averaged over tokens, classified."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.MultiheadAttention(_E, 3, batch_first=True)
        self.second = nn.MultiheadAttention(_E, 2, batch_first=True)
        self.classifier = nn.Linear(_E, _C)

    def forward(self, x):
        x = self.first(x, x, x, need_weights=False)[0]
        return self.classifier(self.second(x, x, x, need_weights=False)[0].mean(1))


def _two_attentions():
    torch.manual_seed(0)
    model = _TwoAttentions().double().eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_()
    x = torch.randn(6, _L, _E, dtype=torch.float64)
    return model, x, model(x).argmax(1)


def test_prune_over_heads_is_rounds_of_scoring_global_ranking_and_masking():
    """Two rounds of pruning 2 of the 5 heads: each round scores the masked model, ranks the heads of both
    layers by their per-layer normalized scores, and masks the lowest; fine-tuning runs after each round."""
    model, x, target = _two_attentions()
    composite = composites.AttnLRP()
    expected, keep = model, None
    for rate in (0.2, 0.4):
        scores = head_scores(expected, x, target, criterion="lrp", composite=composite)
        keep = select_units(scores, rate, keep)
        expected = mask_heads(expected, keep)
    rounds = []
    result = prune(model, x, target, rate=0.4, criterion="lrp", composite=composite, steps=2, units="heads")
    assert result.units == "heads" and list(result.keep) == ["first", "second"]
    assert sum(int((~mask).sum()) for mask in result.keep.values()) == 2
    for name in keep:
        assert torch.equal(result.keep[name], keep[name])
    torch.testing.assert_close(result.model(x), expected(x), rtol=1e-12, atol=1e-12)
    assert result.removed_share() == {
        name: 1 - int(mask.sum()) / len(mask) for name, mask in result.keep.items()
    }

    def fine_tune(network):
        rounds.append(network.training)
        _fine_tune(network, x)

    tuned = prune(
        model, x, target, rate=0.4, criterion="weight-l1", steps=2, fine_tune=fine_tune, units="heads"
    )
    assert rounds == [False, False] and not tuned.model.training
    for name, mask in tuned.keep.items():
        weight = tuned.model.get_submodule(name).out_proj.weight.view(_E, len(mask), -1)
        assert (weight[:, ~mask] == 0).all() and (weight[:, mask] != 0).all()


def test_prune_removes_bert_heads_to_the_function_of_the_masked_model():
    model, inputs = _bert()
    masked = prune(model, inputs, rate=0.5, criterion="taylor", units="heads")
    removed = prune(model, inputs, rate=0.5, criterion="taylor", units="heads", remove=True)
    assert sum(int((~mask).sum()) for mask in removed.keep.values()) == 3
    assert [s.heads for s in attention_layers(removed.model)] == [int(m.sum()) for m in removed.keep.values()]
    torch.testing.assert_close(
        removed.model(**inputs).logits, masked.model(**inputs).logits, rtol=1e-12, atol=1e-12
    )


def test_prune_over_heads_names_bad_units_and_models():
    model, x, _ = _attending()
    with pytest.raises(ValueError, match="^unknown units 'neurons'; choose one of filters, heads$"):
        prune(model, x, rate=0.5, units="neurons")
    with pytest.raises(ValueError, match="^Sequential has no attention layer whose heads can be pruned"):
        prune(nn.Sequential(nn.Linear(2, 2)), torch.ones(1, 2), rate=0.5, units="heads")
    tuned = []
    with pytest.raises(ValueError, match="'attention' \\(nn.MultiheadAttention\\) can only be masked"):
        prune(model, x, rate=0.3, criterion="weight-l2", units="heads", remove=True, fine_tune=tuned.append)
    assert tuned == []  # refused before pruning and fine-tuning
