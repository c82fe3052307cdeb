"""``relprop prune`` through the command line."""

import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from relprop.cli import app
from relprop.composites import AttnLRP
from relprop.models.loading import load_model
from relprop.prune import prune
from relprop.prune.curve import accuracy, split_references

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture
def digits_model(tmp_path):
    """A small CNN of 8 x 8 images (untrained, 10 classes) as TorchScript, and 120 digits as .npz."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(6 * 16, 12), nn.ReLU(), nn.Linear(12, 10),
    ).eval()  # fmt: skip
    path = tmp_path / "cnn.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(model).save(str(path))
    digits = load_digits()
    x = (digits.images[:120] / 16.0).astype(np.float32)[:, None]
    np.savez(tmp_path / "digits.npz", x=x, y=digits.target[:120].astype(np.int64))
    return path, tmp_path / "digits.npz", torch.from_numpy(x), torch.from_numpy(digits.target[:120])


def test_prints_the_accuracies_and_shares_of_the_library_and_writes_a_loadable_model(tmp_path, digits_model):
    path, data, x, y = digits_model
    out = tmp_path / "pruned.pt"
    result = runner.invoke(app, ["prune", str(path), str(data), "--rate", "0.4", "--references", "3",
                                 "--criterion", "taylor", "--out", str(out), "--remove"])  # fmt: skip
    assert result.exit_code == 0, result.output
    model = load_model(str(path))
    chosen, rest = split_references(y, 3, seed=0)
    expected = prune(model, x[chosen], y[chosen], rate=0.4, criterion="taylor", remove=True)
    assert f"accuracy before: {100 * accuracy(model, x[rest], y[rest]):.1f} %" in result.output
    assert f"by taylor: {100 * accuracy(expected.model, x[rest], y[rest]):.1f} %" in result.output
    for layer, share in expected.removed_share().items():
        assert re.search(rf"^  {layer}: {100 * share:.1f} %", result.output, re.MULTILINE)
    written = load_model(str(out))
    assert written[0].out_channels == int(expected.keep["0"].sum())
    torch.testing.assert_close(written(x), expected.model(x))


def test_curve_writes_a_png(tmp_path, digits_model):
    path, data, _, _ = digits_model
    curve = tmp_path / "curve.png"
    result = runner.invoke(app, ["prune", str(path), str(data), "--references", "2", "--curve", str(curve),
                                 "--rates", "0,0.5"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert curve.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["--rate", "1"], "rate must be a number in [0, 1), got 1.0"),
        (["--criterion", "size"], "unknown criterion 'size'"),
        (["--references", "50"], "too few for 50 references per class"),
        (["--rates", "0,x"], "--rates must be numbers"),
    ],
)
def test_bad_input_is_one_line(digits_model, one_line_error, arguments, fragment, tmp_path):
    path, data, _, _ = digits_model
    extra = ["--curve", str(tmp_path / "c.png")] if arguments[0] == "--rates" else []
    command = ["prune", str(path), str(data), "--references", "2", *arguments, *extra]
    one_line_error(runner.invoke(app, command), fragment)


@pytest.fixture
def tiny_vit(tmp_path, monkeypatch):
    """A torchvision ViT of 16 x 16 images (2 layers of 2 heads, 3 classes) registered as ``tiny-vit`` with
    its weights in a state dict, and 36 random images as .npz."""
    from torchvision.models.vision_transformer import VisionTransformer

    from relprop.models import loading

    def tiny(pretrained):
        return VisionTransformer(16, 8, 2, 2, 8, 16, num_classes=3)

    monkeypatch.setitem(loading._MODELS, "tiny-vit", tiny)
    torch.manual_seed(0)
    model = tiny(False)
    nn.init.normal_(model.heads.head.weight)  # torchvision starts the head at zero
    torch.save(model.state_dict(), tmp_path / "vit.pth")
    x = torch.randn(36, 3, 16, 16)
    y = torch.arange(36) % 3
    np.savez(tmp_path / "images.npz", x=x.numpy(), y=y.numpy())
    return f"tiny-vit:{tmp_path / 'vit.pth'}", tmp_path / "images.npz", x, y


def test_units_heads_prints_the_library_s_heads_and_writes_the_masked_model(tmp_path, tiny_vit):
    spec, data, x, y = tiny_vit
    out = tmp_path / "pruned.pth"
    command = ["prune", spec, str(data), "--units", "heads", "--rate", "0.5", "--references", "3"]
    result = runner.invoke(app, [*command, "--criterion", "gradient", "--out", str(out)])
    assert result.exit_code == 0, result.output
    model = load_model(spec)
    chosen, rest = split_references(y, 3, seed=0)
    expected = prune(model, x[chosen], y[chosen], rate=0.5, criterion="gradient", units="heads")
    assert f"by gradient: {100 * accuracy(expected.model, x[rest], y[rest]):.1f} %" in result.output
    assert "heads removed per attention layer:" in result.output
    for layer, mask in expected.keep.items():
        assert (
            f"  {layer}: {100 * (1 - mask.double().mean()):.1f} % ({int((~mask).sum())} of 2)"
            in result.output
        )
    assert f"load it as tiny-vit:{out}" in result.output
    torch.testing.assert_close(load_model(f"tiny-vit:{out}")(x), expected.model(x))


def test_units_heads_takes_attn_lrp_as_the_composite_of_lrp(tiny_vit):
    spec, data, x, y = tiny_vit
    command = ["prune", spec, str(data), "--units", "heads", "--rate", "0.5", "--references", "3"]
    result = runner.invoke(app, [*command, "--composite", "attn-lrp"])
    assert result.exit_code == 0, result.output
    chosen, rest = split_references(y, 3, seed=0)
    expected = prune(load_model(spec), x[chosen], y[chosen], rate=0.5, units="heads", composite=AttnLRP())
    assert f"by lrp: {100 * accuracy(expected.model, x[rest], y[rest]):.1f} %" in result.output
    for layer, mask in expected.keep.items():
        assert f"  {layer}: 50.0 % ({int((~mask).sum())} of 2)" in result.output


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["--units", "neurons"], "unknown units 'neurons'; choose one of filters, heads"),
        (["--units", "heads"], "Sequential has no attention layer whose heads can be pruned"),
        (["--units", "heads", "--curve", "c.png"], "--curve prunes filters and neurons"),
    ],
)
def test_bad_units_are_one_line(digits_model, one_line_error, arguments, fragment):
    path, data, _, _ = digits_model
    one_line_error(
        runner.invoke(app, ["prune", str(path), str(data), "--references", "2", *arguments]), fragment
    )
