"""``relprop virelay``: a ViRelAy project of a store, and the inputs it refuses."""

import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from relprop import store
from relprop.cli import app

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")


@pytest.fixture
def computed(attribute_arrays):
    """A store of 60 RGB samples of 6 x 6 (30 of class 0, 30 of class 1) and the .npz it was computed on."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2, dtype=np.int64), 30)
    return attribute_arrays(rng.random((60, 3, 6, 6), dtype=np.float32), y)


def _virelay(out, *options):
    return runner.invoke(app, ["virelay", str(out), "--size", "3", "--neighbors", "5", *options])


def test_writes_a_project_of_the_classes(computed, tmp_path):
    out, data = computed
    project = tmp_path / "project"
    result = _virelay(out, "--class", "1", "--class", "0", "--out", str(project))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("Class 1: 30 samples, ")
    assert f"Open it: virelay {project / 'project.yaml'}\n" in result.output
    assert "relprop's cluster k is ViRelAy's Cluster k+1" in result.output
    x = np.load(data)["x"]
    with h5py.File(project / "inputs.h5", "r") as inputs, h5py.File(project / "analysis.h5", "r") as analysis:
        assert list(analysis) == ["0", "1"]
        np.testing.assert_array_equal(analysis["1/index"][:], np.arange(30, 60))  # store rows
        with store.open(out) as run:
            index = run.index[:]
            np.testing.assert_array_equal(inputs["label"][:], run.label[:])
        first = x[index[0]]
        expected = np.round((first - first.min()) / (first.max() - first.min()) * 255)
        np.testing.assert_array_equal(inputs["data"][0], expected)
    labels = json.loads((project / "label-map.json").read_text())
    assert labels[1] == {"index": 1, "word_net_id": "1", "name": "class 1"}


def test_a_folder_that_holds_anything_is_refused_and_kept(computed, tmp_path, one_line_error):
    out, _ = computed
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    one_line_error(_virelay(out, "--class", "0", "--out", str(mine)), "mine is not an empty folder")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"


def test_a_project_without_a_class_is_refused(computed, tmp_path, one_line_error):
    out, _ = computed
    one_line_error(_virelay(out, "--out", str(tmp_path / "p")), "no class to analyse", "pass --class")
    assert not (tmp_path / "p").exists()


def test_a_class_without_samples_is_named(computed, tmp_path, one_line_error):
    out, _ = computed
    project = tmp_path / "project"
    one_line_error(
        _virelay(out, "--class", "0", "--class", "2", "--out", str(project)), "no sample is labelled class 2"
    )
    assert not project.exists()


def test_a_file_that_is_not_a_store_is_named(tmp_path, one_line_error):
    with h5py.File(tmp_path / "other.h5", "w") as file:
        file["x"] = np.zeros(3)
    one_line_error(_virelay(tmp_path / "other.h5", "--class", "0", "--out", str(tmp_path / "p")), "other.h5")
    assert not (tmp_path / "p").exists()


def test_a_store_whose_data_set_is_gone_asks_for_it(computed, tmp_path, one_line_error):
    out, data = computed
    moved = data.rename(tmp_path / "moved.npz")
    project = tmp_path / "project"
    one_line_error(_virelay(out, "--class", "0", "--out", str(project)), "cannot be loaded here", "--data")
    result = _virelay(out, "--class", "0", "--out", str(project), "--data", str(moved))
    assert result.exit_code == 0, result.output
