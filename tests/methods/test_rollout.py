"""Attention rollout against the explicit product of known attention matrices."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from relprop.methods import AttentionRollout
from relprop.methods.rollout import rollout


class TokenAttention(nn.Module):
    """Self-attention layers with residuals over tokens ``(B, T, D)``, then a linear head on token 0.

    ``attention`` writes each layer's attention as ``"softmax"`` (scores, softmax, product) or ``"sdpa"``
    (``F.scaled_dot_product_attention``); ``branch`` adds a branch on the input's shape, which torch.fx
    cannot trace (relprop then captures the model with torch.export).
    """

    def __init__(self, dim=4, heads=2, layers=2, attention="softmax", branch=False, per_token=False):
        super().__init__()
        self.heads, self.attention_kind, self.branch, self.per_token = heads, attention, branch, per_token
        self.qk = nn.ModuleList(nn.Linear(dim, 2 * dim) for _ in range(layers))
        self.v = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.head = nn.Linear(dim, 3)

    def split(self, t):
        return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, H, T, d)

    def forward(self, x):
        if self.branch and x.shape[1] > 100:
            x = x[:, :100]
        for qk, v in zip(self.qk, self.v):
            q, k = (self.split(t) for t in qk(x).chunk(2, dim=-1))
            values = self.split(v(x))
            if self.attention_kind == "sdpa":
                out = F.scaled_dot_product_attention(q, k, values)
            else:
                weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
                out = weights @ values
            x = x + out.transpose(1, 2).flatten(2)
        return self.head(x) if self.per_token else self.head(x[:, 0])


class PatchAttention(nn.Module):
    """Images cut into ``patch`` x ``patch`` patches, embedded, a class token in front, then
    :class:`TokenAttention`."""

    def __init__(self, patch=4, channels=2, dim=4, **kwargs):
        super().__init__()
        self.embed = nn.Conv2d(channels, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.body = TokenAttention(dim, **kwargs)

    def tokens(self, x):
        patches = self.embed(x).flatten(2).transpose(1, 2)
        return torch.cat([self.cls.expand(x.shape[0], -1, -1), patches], dim=1)

    def forward(self, x):
        return self.body(self.tokens(x))


def explicit_attention(model: TokenAttention, x):
    """The attention matrices of each layer ``(B, H, T, T)``, computed here step by step."""
    maps = []
    for qk, v in zip(model.qk, model.v):
        q, k = qk(x).chunk(2, dim=-1)
        q, k, values = (t.unflatten(-1, (model.heads, -1)).transpose(1, 2) for t in (q, k, v(x)))
        scores = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(q.shape[-1])
        weights = scores.exp() / scores.exp().sum(dim=-1, keepdim=True)
        maps.append(weights)
        x = x + (weights @ values).transpose(1, 2).flatten(2)
    return maps


def explicit_rollout(maps, head_fusion="mean"):
    """``A'_L ... A'_1`` per sample with ``A' = (0.5 A + 0.5 I)`` row-normalized, as an explicit product."""
    fuse = {"mean": lambda a: a.mean(0), "max": lambda a: a.max(0).values, "min": lambda a: a.min(0).values}
    result = []
    for b in range(maps[0].shape[0]):
        layers = []
        for weights in maps:
            fused = fuse[head_fusion](weights[b])
            layer = 0.5 * fused + 0.5 * torch.eye(fused.shape[0], dtype=fused.dtype)
            layers.append(layer / layer.sum(dim=1, keepdim=True))
        product = layers[0] if len(layers) == 1 else torch.linalg.multi_dot(layers[::-1])
        result.append(product)
    return torch.stack(result)


def tokens_model(seed=0, **kwargs):
    torch.manual_seed(seed)
    return TokenAttention(**kwargs).double().eval()


def token_batch(tokens=5, dim=4):
    return torch.randn(2, tokens, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_uniform_attention_has_the_closed_form(layers):
    """Zero queries and keys attend uniformly, ``A = U = 1 1^T / T``; then ``A' = (U + I) / 2`` and
    ``A'^L = 2^-L I + (1 - 2^-L) U``: token 0 gets ``2^-L + (1 - 2^-L) / T``, the others
    ``(1 - 2^-L) / T``."""
    model = tokens_model(layers=layers)
    with torch.no_grad():
        for qk in model.qk:
            qk.weight.zero_()
            qk.bias.zero_()
    x = token_batch(tokens=5)
    relevance = AttentionRollout(model)(x)
    share = (1 - 2.0**-layers) / 5
    expected = torch.full((2, 5), share, dtype=torch.float64)
    expected[:, 0] += 2.0**-layers
    assert relevance.shape == x.shape
    torch.testing.assert_close(relevance, expected[:, :, None].expand_as(x))


@pytest.mark.parametrize("head_fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("attention", ["softmax", "sdpa"])
def test_rollout_is_the_product_of_the_explicit_attention(attention, head_fusion, untouched):
    model = tokens_model(attention=attention, layers=3)
    x = token_batch()
    with untouched(model):
        explainer = AttentionRollout(model, head_fusion=head_fusion)
        maps = explainer.attention(x)
        relevance = explainer(x)
    expected_maps = explicit_attention(model, x)
    assert len(maps) == 3
    for found, expected in zip(maps, expected_maps):
        torch.testing.assert_close(found, expected)
    product = explicit_rollout(expected_maps, head_fusion)
    torch.testing.assert_close(rollout(maps, head_fusion), product)
    torch.testing.assert_close(relevance, product[:, 0, :, None].expand_as(x))


def test_another_token_is_another_row():
    model = tokens_model()
    x = token_batch()
    product = explicit_rollout(explicit_attention(model, x))
    torch.testing.assert_close(AttentionRollout(model, token=3)(x)[:, :, 0], product[:, 3])
    torch.testing.assert_close(AttentionRollout(model, token=-1)(x)[:, :, 0], product[:, -1])


def test_models_that_fx_cannot_trace_are_captured_with_torch_export():
    model = tokens_model(branch=True)
    explainer = AttentionRollout(model)
    assert explainer._traced is None  # the shape branch stops torch.fx
    x = token_batch()
    product = explicit_rollout(explicit_attention(model, x))
    torch.testing.assert_close(explainer(x), product[:, 0, :, None].expand_as(x))


def test_images_get_the_score_of_their_patch_in_every_channel():
    """An 8 x 12 image in 4 x 4 patches: a grid of 2 x 3 patches after the class token."""
    torch.manual_seed(0)
    model = PatchAttention(patch=4, channels=2).double().eval()
    x = torch.rand(2, 2, 8, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    relevance = AttentionRollout(model)(x)
    with torch.no_grad():
        product = explicit_rollout(explicit_attention(model.body, model.tokens(x)))
    grid = product[:, 0, 1:].reshape(2, 2, 3)
    expected = grid.repeat_interleave(4, dim=1).repeat_interleave(4, dim=2)[:, None].expand(2, 2, 8, 12)
    assert relevance.shape == x.shape and relevance.dtype == x.dtype
    torch.testing.assert_close(relevance, expected)


def _vision_transformer():
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32
    ).double()


@pytest.mark.parametrize("head_fusion", ["mean", "max", "min"])
def test_torchvision_vision_transformer_against_its_own_attention_weights(head_fusion, untouched):
    """Each layer's ``nn.MultiheadAttention`` called with ``need_weights=True`` on the input it received."""
    model = _vision_transformer().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with untouched(model):
        relevance = AttentionRollout(model, head_fusion=head_fusion)(x)

    inputs = []
    layers = [layer.self_attention for layer in model.encoder.layers]
    handles = [m.register_forward_pre_hook(lambda m, args: inputs.append(args[0])) for m in layers]
    try:
        with torch.no_grad():
            model(x)
            if head_fusion == "mean":
                maps = [
                    m(t, t, t, need_weights=True, average_attn_weights=True)[1][:, None]
                    for m, t in zip(layers, inputs)
                ]
            else:
                maps = [
                    m(t, t, t, need_weights=True, average_attn_weights=False)[1]
                    for m, t in zip(layers, inputs)
                ]
    finally:
        for handle in handles:
            handle.remove()
    assert [m.shape[-1] for m in maps] == [17, 17]  # a class token and 4 x 4 patches
    product = explicit_rollout(maps, head_fusion)
    grid = product[:, 0, 1:].reshape(2, 4, 4)
    expected = grid.repeat_interleave(8, dim=1).repeat_interleave(8, dim=2)[:, None].expand(2, 3, 32, 32)
    assert relevance.shape == x.shape
    torch.testing.assert_close(relevance, expected)


def test_scaled_dot_product_attention_equals_its_parts_in_timm():
    """timm's ViT computes attention with ``F.scaled_dot_product_attention`` or, unfused, as a softmax."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2, num_classes=10
    )
    model = model.double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    fused = AttentionRollout(model)(x)
    for block in model.blocks:
        block.attn.fused_attn = False
    unfused = AttentionRollout(model)
    assert len(unfused.attention(x)) == 2
    torch.testing.assert_close(unfused(x), fused)
    assert (fused[:, 0] > 0).all()


def test_the_target_is_checked_and_ignored():
    model = tokens_model()
    x = token_batch()
    explainer = AttentionRollout(model)
    expected = explainer(x)
    for target in (0, 2, torch.tensor([1, 0]), torch.eye(3, dtype=torch.float64)[:2]):
        torch.testing.assert_close(explainer(x, target), expected)
    with pytest.raises(ValueError, match="out of range"):
        explainer(x, 3)


def test_no_target_is_needed_for_outputs_that_are_not_classes():
    """A model with an output per token ``(B, T, K)`` has no predicted class, and rollout needs none."""
    model = tokens_model(per_token=True)
    x = token_batch()
    product = explicit_rollout(explicit_attention(model, x))
    torch.testing.assert_close(AttentionRollout(model)(x), product[:, 0, :, None].expand_as(x))
    with pytest.raises(ValueError, match="class target needs an output"):
        AttentionRollout(model)(x, 1)


def test_a_model_without_attention_is_named(make_model, images):
    with pytest.raises(ValueError, match="no attention in TinyCNN"):
        AttentionRollout(make_model())(images)


def test_bad_arguments():
    model = tokens_model()
    x = token_batch()
    with pytest.raises(ValueError, match="head_fusion"):
        AttentionRollout(model, head_fusion="sum")
    with pytest.raises(ValueError, match="token 5 is out of range"):
        AttentionRollout(model, token=5)(x)
    with pytest.raises(ValueError, match="prefix_tokens"):
        AttentionRollout(model, prefix_tokens=-1)
    with pytest.raises(TypeError, match="float64"):
        AttentionRollout(model)(x.float())
    image_model = PatchAttention(patch=4, channels=2).double().eval()
    images = torch.rand(2, 2, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="set prefix_tokens"):
        AttentionRollout(image_model, prefix_tokens=0)(images)
