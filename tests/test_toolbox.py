"""Tests for relprop.toolbox: the reader/writer of the LRP Toolbox's plain-text model format.

The reference forward pass below is written from the toolbox's definitions in numpy, channels-last,
float64: 'valid' cross-correlation, sum pooling scaled by 1/sqrt(window area), max pooling, C-order
flatten of (N, H, W, D), y = x W + b, softmax over axis 1.
"""

import numpy as np
import pytest
import torch
import torch.fx

from relprop.toolbox import FlattenChannelsLast, SumPool2d, read_model, write_model


def _windows(x, size, stride):
    """Yield (i, j, window) over the (N, H, W, D) array for a 'valid' sliding window."""
    (h, w), (sh, sw) = size, stride
    rows, cols = (x.shape[1] - h) // sh + 1, (x.shape[2] - w) // sw + 1
    for i in range(rows):
        for j in range(cols):
            yield i, j, x[:, i * sh : i * sh + h, j * sw : j * sw + w, :]


def _pool_output(x, size, stride):
    rows, cols = (x.shape[1] - size[0]) // stride[0] + 1, (x.shape[2] - size[1]) // stride[1] + 1
    return np.zeros((x.shape[0], rows, cols, x.shape[3]))


def reference_forward(layers, x):
    """Toolbox forward pass; ``layers`` is a list of (name, sizes, W, B) with W in toolbox layout."""
    for name, sizes, weight, bias in layers:
        if name == "Linear":
            x = x @ weight + bias
        elif name == "Convolution":
            y = _pool_output(x, sizes[:2], sizes[4:])[..., :1].repeat(sizes[3], axis=3)
            for i, j, window in _windows(x, sizes[:2], sizes[4:]):
                y[:, i, j, :] = np.einsum("nhwd,hwdk->nk", window, weight) + bias
            x = y
        elif name in ("SumPool", "MaxPool"):
            y = _pool_output(x, sizes[:2], sizes[2:])
            for i, j, window in _windows(x, sizes[:2], sizes[2:]):
                if name == "SumPool":
                    y[:, i, j, :] = window.sum(axis=(1, 2)) / np.sqrt(sizes[0] * sizes[1])
                else:
                    y[:, i, j, :] = window.max(axis=(1, 2))
            x = y
        elif name == "Flatten":
            x = x.reshape(x.shape[0], -1)
        elif name == "Rect":
            x = np.maximum(x, 0)
        elif name == "Tanh":
            x = np.tanh(x)
        elif name == "SoftMax":
            x = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    return x


def random_layers(spec, rng):
    """Random weights for a list of (name, sizes); returns (name, sizes, W, B) tuples."""
    layers = []
    for name, sizes in spec:
        weight = bias = None
        if name == "Linear":
            weight, bias = rng.normal(size=sizes), rng.normal(size=sizes[1])
        elif name == "Convolution":
            weight, bias = rng.normal(size=sizes[:4]) / np.sqrt(np.prod(sizes[:3])), rng.normal(size=sizes[3])
        layers.append((name, sizes, weight, bias))
    return layers


def to_text(layers):
    """The toolbox's text format, written independently of relprop.toolbox.write_model."""
    lines = []
    for name, sizes, weight, bias in layers:
        lines.append(" ".join([name, *map(str, sizes)]))
        if weight is not None:
            lines.append(" ".join(repr(float(v)) for v in weight.ravel()))
            lines.append(" ".join(repr(float(v)) for v in bias.ravel()))
    return "\n".join(lines) + "\n"


# Non-square filters, windows, strides and images, and a flatten over 2 x 2 x 3 channels, so that any
# mixed-up axis or channels-first flatten changes the numbers.
LENET_LIKE = [
    ("Convolution", (3, 2, 2, 4, 1, 1)),
    ("Rect", ()),
    ("SumPool", (2, 3, 2, 1)),
    ("Convolution", (2, 2, 4, 3, 1, 2)),
    ("Rect", ()),
    ("MaxPool", (2, 2, 2, 2)),
    ("Flatten", ()),
    ("Linear", (12, 5)),
    ("Tanh", ()),
    ("Linear", (5, 3)),
    ("SoftMax", ()),
]
MLP = [
    ("Linear", (4, 6)),
    ("Tanh", ()),
    ("Linear", (6, 5)),
    ("Rect", ()),
    ("Linear", (5, 3)),
    ("SoftMax", ()),
]


def write_text(tmp_path, text, name="model.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_lenet_like_matches_reference(tmp_path, rng):
    layers = random_layers(LENET_LIKE, rng)
    model = read_model(write_text(tmp_path, to_text(layers)), dtype=torch.float64)
    x = rng.normal(size=(3, 13, 11, 2))  # NHWC, as the toolbox takes it
    with torch.no_grad():
        out = model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    expected = reference_forward(layers, x)
    assert out.shape == expected.shape == (3, 3)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10)


def test_mlp_matches_reference(tmp_path, rng):
    layers = random_layers(MLP, rng)
    model = read_model(write_text(tmp_path, to_text(layers)), dtype=torch.float64)
    x = rng.normal(size=(7, 4))
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, reference_forward(layers, x), rtol=0, atol=1e-10)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)


def test_module_types_and_default_dtype(tmp_path, rng):
    model = read_model(write_text(tmp_path, to_text(random_layers(LENET_LIKE, rng))))
    types = [type(module) for module in model]
    assert types == [
        torch.nn.Conv2d,
        torch.nn.ReLU,
        SumPool2d,
        torch.nn.Conv2d,
        torch.nn.ReLU,
        torch.nn.MaxPool2d,
        FlattenChannelsLast,
        torch.nn.Linear,
        torch.nn.Tanh,
        torch.nn.Linear,
        torch.nn.Softmax,
    ]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model[0].padding == (0, 0) and model[3].stride == (1, 2)


def test_sum_pool_hand_computed():
    # 2 x 2 windows of ones sum to 4, scaled by 1 / sqrt(4): 2; a 1 x 3 window of (1, 2, 3): 6 / sqrt(3).
    assert torch.equal(SumPool2d((2, 2), (2, 2))(torch.ones(1, 1, 4, 4)), torch.full((1, 1, 2, 2), 2.0))
    x = torch.tensor([[[[1.0, 2.0, 3.0]]]], dtype=torch.float64)
    assert SumPool2d((1, 3), (1, 1))(x).item() == pytest.approx(6 / np.sqrt(3), abs=1e-15)


def test_epsilon_at_sum_pooling_divides_by_the_unscaled_window_sum(tmp_path):
    """The toolbox's epsilon-rule at SumPool (sumpool.py, _epsilon_lrp): R_i = x_i R_j / (s_j + eps sgn(s_j))
    with s_j the window's plain sum, not its average s_j / 4 nor the output s_j / 2. By hand, eps = 1 at
    every layer: windows [[1, 2], [3, 4]] (s = 10, y = 5) and [[-1, 0], [-2, -3]] (s = -6, y = -3), then
    f = y_1 + y_2 = 2; the Linear layer passes y_k / (2 + 1) * 2 = (10/3, -2) on, and the windows
    10/3 * x_i / 11 and -2 * x_i / -7."""
    from torch import nn

    from relprop import LRP, types
    from relprop.composites import Composite
    from relprop.rules import Epsilon

    (tmp_path / "pool.txt").write_text("SumPool 2 2 2 2\nFlatten\nLinear 2 1\n1 1\n0\n")
    model = read_model(tmp_path / "pool.txt", dtype=torch.float64)
    x = torch.tensor([[[[1, 2, -1, 0], [3, 4, -2, -3]]]], dtype=torch.float64)
    assert model(x).item() == 2
    every_layer = Composite(layer_map=[((nn.Linear, *types.AvgPool), Epsilon(1.0))])
    relevance = LRP(model, composite=every_layer)(x, 0)
    expected = [[10 / 33, 20 / 33, -2 / 7, 0], [30 / 33, 40 / 33, -4 / 7, -6 / 7]]
    torch.testing.assert_close(
        relevance[0, 0], torch.tensor(expected, dtype=torch.float64), rtol=1e-14, atol=0
    )


def test_flatten_channels_last_order():
    x = torch.arange(12.0).reshape(1, 3, 2, 2)  # x[0, c, i, j] = 4 c + 2 i + j
    expected = [4 * c + 2 * i + j for i in range(2) for j in range(2) for c in range(3)]
    assert FlattenChannelsLast()(x).tolist() == [expected]


def test_flatten_of_vectors_is_identity(tmp_path, rng):
    layers = random_layers([("Linear", (3, 4)), ("Flatten", ()), ("Linear", (4, 2))], rng)
    model = read_model(write_text(tmp_path, to_text(layers)), dtype=torch.float64)
    assert isinstance(model[1], torch.nn.Flatten)
    x = rng.normal(size=(2, 3))
    np.testing.assert_allclose(
        model(torch.from_numpy(x)).detach().numpy(), reference_forward(layers, x), atol=1e-12
    )


def test_fx_traceable(tmp_path, rng):
    model = read_model(write_text(tmp_path, to_text(random_layers(LENET_LIKE, rng))), dtype=torch.float64)
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 2, 13, 11, dtype=torch.float64)
    assert torch.equal(traced(x), model(x))


def test_blank_lines_and_crlf_are_accepted(tmp_path, rng):
    layers = random_layers(MLP, rng)
    text = "\n" + to_text(layers).replace("Tanh\n", "\nTanh\n\n").replace("\n", "\r\n")
    model = read_model(write_text(tmp_path, text), dtype=torch.float64)
    x = rng.normal(size=(2, 4))
    np.testing.assert_allclose(
        model(torch.from_numpy(x)).detach().numpy(), reference_forward(layers, x), atol=1e-12
    )


@pytest.mark.parametrize("spec", [LENET_LIKE, MLP], ids=["lenet_like", "mlp"])
def test_write_read_round_trip(tmp_path, rng, spec):
    layers = random_layers(spec, rng)
    original = write_text(tmp_path, to_text(layers))
    model = read_model(original, dtype=torch.float64)
    written = tmp_path / "written.txt"
    write_model(model, written)
    assert written.read_text() == original.read_text()
    reread = read_model(written, dtype=torch.float64)
    for a, b in zip(model.parameters(), reread.parameters(), strict=True):
        assert torch.equal(a, b)


def test_write_rejects_what_the_toolbox_cannot_express(tmp_path):
    path = tmp_path / "out.txt"
    with pytest.raises(TypeError, match="Sequential"):
        write_model(torch.nn.Linear(2, 2), path)
    with pytest.raises(TypeError, match=r"model\[1\].*no such layer"):
        write_model(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Sigmoid()), path)
    with pytest.raises(TypeError, match=r"model\[0\].*unpadded"):
        write_model(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1)), path)
    with pytest.raises(ValueError, match=r"model\[1\].*FlattenChannelsLast"):
        write_model(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten()), path)
    with pytest.raises(ValueError, match=r"model\[1\].*Linear m is 5"):
        write_model(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(5, 1)), path)
    assert not path.exists()


LINEAR_2_1 = "Linear 2 1\n0.5 -1.0\n0.25\n"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("Linear 2 1\n0.5 -1.0\n0.25\nDropout\n", 4, "unknown layer 'Dropout'"),
        ("Linear 2\n0.5 -1.0\n0.25\n", 1, "followed by 2 integer sizes, got 1"),
        ("Linear 2 x\n0.5 -1.0\n0.25\n", 1, "integer sizes"),
        ("Linear 2 0\n\n\n", 1, "positive sizes"),
        ("Linear 2 1\n0.5 -1.0 3.0\n0.25\n", 2, "expected 2 Linear weights, got 3"),
        ("Linear 2 1\n0.5 -1.0\n0.25 1.0\n", 3, "expected 1 Linear biases, got 2"),
        ("Linear 2 1\n0.5 abc\n0.25\n", 2, "non-numeric"),
        ("Linear 2 1\n0.5 nan\n0.25\n", 2, "NaN or infinity"),
        ("Rect\nLinear 2 1\n0.5 -1.0\n", 4, "file ends"),
        ("Convolution 1 1 1 2 1 1\n1 2\n0 0\n" + LINEAR_2_1, 4, "without Flatten"),
        ("Convolution 1 1 1 2 1 1\n1 2\n0 0\nConvolution 1 1 3 1 1 1\n1 2 3\n0\n", 4, "depth d is 3"),
        (LINEAR_2_1 + "Linear 3 1\n1 2 3\n0\n", 4, "Linear m is 3, but the previous layer outputs 1"),
        (LINEAR_2_1 + "MaxPool 2 2 2 2\n", 4, "needs image data"),
        ("Convolution 1 1 1 2 1 1\n1 2\n0 0\nSoftMax\n", 4, "SoftMax needs vectors"),
    ],
)
def test_malformed_file_names_file_and_line(tmp_path, text, line, message):
    path = write_text(tmp_path, text, name="bad_model.txt")
    with pytest.raises(ValueError, match=message) as info:
        read_model(path)
    assert f"bad_model.txt, line {line}:" in str(info.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ValueError, match="nowhere.txt: no such model file"):
        read_model(tmp_path / "nowhere.txt")
    with pytest.raises(ValueError, match="empty.txt: no layers found"):
        read_model(write_text(tmp_path, "\n  \n", name="empty.txt"))
    binary = tmp_path / "model.nn"
    binary.write_bytes(b"\x80\x04\x95pickle")
    with pytest.raises(ValueError, match="model.nn: not a plain-text model file"):
        read_model(binary)
