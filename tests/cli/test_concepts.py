"""``relprop concepts``: RelMax over a store's data set with its model, the atlas of a class, and the inputs
it refuses in one line."""

import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from relprop import LRP, concepts, store
from relprop.cli import app
from relprop.composites import EpsilonPlusFlat
from relprop.models.loading import load_model

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")


@pytest.fixture
def computed(attribute_arrays, small_scripted):
    """A store of 40 RGB samples of 6 x 6 (20 of class 0, 20 of class 1), of the tiny scripted model."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3, 6, 6), dtype=np.float32)
    return (*attribute_arrays(x, np.repeat([0, 1], 20)), small_scripted)


def test_writes_relmax_and_the_atlas_of_the_class(computed, tmp_path):
    out, data, model_path = computed
    folder = tmp_path / "atlas"
    result = runner.invoke(app, ["concepts", str(out), "--layer", "0", "--class", "1", "--out", str(folder),
                                 "--references", "3", "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "Class 1: concepts of layers 0 over 20 samples"
    page_path = (folder / "concepts.html").resolve()
    assert f"Open it in a browser: {page_path.as_uri()}\n" in result.output
    # the two channels by their mean share of the relevance for class 1 over the store's 20 samples of class 1
    model = load_model(str(model_path))
    x = torch.from_numpy(np.load(data)["x"])
    with store.open(out) as run:
        rows = run.index[run.label[:] == 1]
    shares = concepts.concept_importance(LRP(model, EpsilonPlusFlat()), x[rows], "0", 1, abs_norm=True)
    expected = shares.mean(dim=0).argsort(descending=True).tolist()
    page = page_path.read_text()
    assert [
        int(c) for c in re.findall(r'class="concept" data-layer="0" data-channel="(\d+)"', page)
    ] == expected
    references = concepts.top_references(folder / "relmax.h5", k=3)["0"]
    first = page.split(f'data-channel="{expected[0]}"')[1].split('class="concept"')[0]
    shown = [int(i) for i in re.findall(r'figure class="reference" data-sample="(\d+)"', first)]
    assert shown == references.by_relevance[expected[0]].tolist()
    # the RelMax references: the samples of largest summed relevance of the channel for their prediction
    with torch.no_grad():
        predicted = model(x).argmax(dim=1)
    relevance = concepts.concept_importance(LRP(model, EpsilonPlusFlat()), x, "0", predicted)
    top = relevance[:, expected[0]].argsort(descending=True)[:3].tolist()
    assert shown == top


def test_default_class_is_the_one_of_most_samples(computed, tmp_path):
    """20 samples each of classes 0 and 1 (the model predicts 2 for most): the smallest of the tie, 0."""
    out, *_ = computed
    most = 0
    result = runner.invoke(app, ["concepts", str(out), "--layer", "0", "--out", str(tmp_path / "a"),
                                 "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Class {most}: ")


def test_bad_input_in_one_line(computed, tmp_path, one_line_error):
    out, *_ = computed
    folder = str(tmp_path / "b")
    one_line_error(
        runner.invoke(app, ["concepts", str(tmp_path / "none.h5"), "--layer", "0"]), "no such file"
    )
    one_line_error(
        runner.invoke(app, ["concepts", str(out), "--layer", "9", "--out", folder, "--no-progress"]),
        "no module '9'",
    )
    one_line_error(
        runner.invoke(app, ["concepts", str(out), "--layer", "0", "--class", "2", "--out", folder,
                            "--no-progress"]),
        "class 2 has no samples", "labelled classes: [0, 1]",
    )  # fmt: skip
