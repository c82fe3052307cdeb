"""``relprop attribute`` and ``relprop merge`` through the command line."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from relprop import LRP, composites, store
from relprop.cli import app

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")


@pytest.fixture
def scripted(small_scripted) -> Path:
    """This module's classifier: the 3 x 6 x 6 one (overrides the shared 224 x 224 one)."""
    return small_scripted


@pytest.fixture
def folder(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    for number, name in enumerate(["cat", "dog", "cat", "dog", "cat"]):
        (tmp_path / "images" / name).mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "images" / name / f"{number}.png")
    return tmp_path / "images"


def _attribute(*args):
    return runner.invoke(app, ["attribute", *map(str, args), "--no-progress"])


def test_image_folder_values_and_parameters(tmp_path, folder, scripted):
    out = tmp_path / "run.h5"
    result = _attribute(folder, "--model", scripted, "--out", out, "--dtype", "float32", "--composite",
                        "epsilon-gamma-box")  # fmt: skip
    assert result.exit_code == 0, result.output
    from relprop.models.loading import load_model

    model = load_model(str(scripted))
    x = torch.stack(_folder_inputs(folder))
    expected = LRP(model, composite=composites.EpsilonGammaBox(low=0.0, high=1.0))(x)
    with store.open(out) as run:
        np.testing.assert_allclose(run.attribution[:], expected.numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(run.label[:], [0, 0, 0, 1, 1])
        assert run.params["composite"] == repr(composites.EpsilonGammaBox(low=0.0, high=1.0))
        assert run.params["preprocessing"] == "to-tensor"
        assert run.params["model"] == str(scripted)


def test_any_method_fills_a_store(tmp_path, folder, scripted):
    out = tmp_path / "run.h5"
    result = _attribute(folder, "--model", scripted, "--out", out, "--dtype", "float32", "--method",
                        "input-x-gradient")  # fmt: skip
    assert result.exit_code == 0, result.output
    from relprop.methods import InputXGradient
    from relprop.models.loading import load_model

    model = load_model(str(scripted))
    with store.open(out) as run:
        x = torch.stack(_folder_inputs(folder))
        np.testing.assert_allclose(run.attribution[:], InputXGradient(model)(x).numpy(), rtol=1e-5, atol=1e-7)
        assert run.params["method"] == "InputXGradient()" and "composite" not in run.params
    result = _attribute(folder, "--model", scripted, "--out", tmp_path / "x.h5", "--method", "gradient",
                        "--composite", "epsilon-plus")  # fmt: skip
    assert result.exit_code == 1 and "--composite is LRP's" in result.output, result.output


def _folder_inputs(folder):
    files = sorted(folder.glob("*/*.png"))  # ImageFolder order: class, then file name
    pixels = [np.asarray(Image.open(f), dtype=np.float32) / 255 for f in files]
    return [torch.from_numpy(image).permute(2, 0, 1) for image in pixels]


def test_corrupt_image_is_named_before_any_work(tmp_path, folder, scripted):
    # the last sample, which the data's fingerprint reads first (test_store checks that the batches
    # before a bad sample that the fingerprint does not read stay)
    (folder / "dog" / "9.png").write_bytes(b"not a png")
    out = tmp_path / "run.h5"
    result = _attribute(folder, "--model", scripted, "--out", out, "--batch-size", "2")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert result.output.startswith("error: sample 5 (") and "9.png): cannot read image" in result.output
    assert not out.exists()


def test_foreign_file_and_other_run_are_refused(tmp_path, arrays, scripted):
    notes = tmp_path / "notes.h5"
    notes.write_text("keep me")
    result = _attribute(arrays, "--model", scripted, "--out", notes)
    assert result.exit_code == 1 and "not a readable HDF5 file" in result.output
    assert notes.read_text() == "keep me"


def test_bad_options_are_one_line_errors(tmp_path, scripted):
    torch.save(nn.Linear(2, 2), tmp_path / "pickled.pt")
    cases = [
        (["digits", "--model", tmp_path / "pickled.pt"], "could run arbitrary code"),
        (["digits", "--model", scripted, "--composite", "nope"], "unknown composite 'nope'"),
        (["digits", "--model", scripted, "--method", "nope"], "unknown method 'nope'; choose one of lrp, "),
        (["digits", "--model", scripted, "--shard", "3/2"], "shard '3/2'"),
        (["nowhere", "--model", scripted], "data set 'nowhere' is neither"),
        (["digits", "--model", scripted, "--device", "banana"], "unknown device 'banana'"),
        (["digits", "--model", scripted, "--device", "cuda:99"], "device 'cuda:99' is not usable here"),
        (["digits", "--model", tmp_path / "notes.pt"], "notes.pt is not a file of torch.save"),
        ([tmp_path / "notes.npz", "--model", scripted], "notes.npz is not a .npz file of np.savez"),
        ([tmp_path / "empty.npy", "--model", scripted], "empty.npy is empty (0 bytes)"),
    ]
    (tmp_path / "notes.pt").write_text("my notes\n")
    (tmp_path / "notes.npz").write_text("my notes\n")
    (tmp_path / "empty.npy").write_bytes(b"")
    for args, message in cases:
        result = _attribute(*args, "--out", tmp_path / "x.h5")
        assert result.exit_code == 1 and message in result.output, result.output
        assert result.output.count("\n") == 1 and "allow_pickle" not in result.output
        assert not (tmp_path / "x.h5").exists()


def test_digits_model_mismatch_is_named(tmp_path, scripted):
    # digits are (1, 8, 8) but the model wants 3 channels
    result = _attribute("digits", "--model", scripted, "--out", tmp_path / "x.h5")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "the model fails on samples of shape (1, 8, 8) (sample 0)" in result.output


def test_an_operation_without_rule_is_a_one_line_error(
    tmp_path, arrays, scripted, monkeypatch, one_line_error
):
    from relprop.graph import UnsupportedOperationError

    def no_rule(self, x, start):
        raise UnsupportedOperationError("relprop has no rule for conv (Conv2d)")

    monkeypatch.setattr(LRP, "propagate", no_rule)
    one_line_error(
        _attribute(arrays, "--model", scripted, "--out", tmp_path / "x.h5"), "has no rule for conv"
    )


@pytest.fixture
def arrays(tmp_path) -> Path:
    rng = np.random.default_rng(1)
    path = tmp_path / "data.npz"
    np.savez(path, x=rng.random((120, 3, 6, 6), dtype=np.float32), y=rng.integers(0, 3, 120))
    return path


def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path, arrays, scripted):
    out = tmp_path / "run.h5"
    command = [sys.executable, "-c", "from relprop.cli import app; app()", "attribute", str(arrays),
               "--model", str(scripted), "--out", str(out), "--batch-size", "2", "--no-progress"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(store.__file__).parents[2])}
    process = subprocess.Popen(command, env=env)
    done = 0
    deadline = time.monotonic() + 60
    while done < 10 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            with h5py.File(out, "r", swmr=True) as file:
                done = int(file["done"][()])
        except (OSError, KeyError):
            pass
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    result = runner.invoke(app, command[3:])
    assert result.exit_code == 0, result.output
    full = tmp_path / "full.h5"
    assert _attribute(arrays, "--model", scripted, "--out", full, "--batch-size", "2").exit_code == 0
    with store.open(out) as one, store.open(full) as two:
        np.testing.assert_array_equal(one.index[:], np.arange(120))
        np.testing.assert_array_equal(one.attribution[:], two.attribution[:])
        np.testing.assert_array_equal(one.output[:], two.output[:])


def test_shards_merge_to_the_whole_run(tmp_path, arrays, scripted):
    parts = [tmp_path / f"part{i}.h5" for i in range(2)]
    for i, part in enumerate(parts):
        assert _attribute(arrays, "--model", scripted, "--out", part, "--shard", f"{i}/2").exit_code == 0
    assert _attribute(arrays, "--model", scripted, "--out", tmp_path / "full.h5").exit_code == 0
    result = runner.invoke(app, ["merge", str(tmp_path / "all.h5"), *map(str, parts)])
    assert result.exit_code == 0, result.output
    with store.open(tmp_path / "all.h5") as merged, store.open(tmp_path / "full.h5") as full:
        np.testing.assert_array_equal(merged.attribution[:], full.attribution[:])
    result = runner.invoke(app, ["merge", str(tmp_path / "half.h5"), str(parts[0])])
    assert result.exit_code == 1 and "missing samples 1, 3, 5" in result.output


def _forged(path, params="{}", datasets=("index", "label", "output", "prediction", "attribution", "done")):
    from relprop.store._file import FORMAT, FORMAT_VERSION

    with h5py.File(path, "w", libver="latest") as file:
        file.attrs.update(relprop_format=FORMAT, relprop_format_version=FORMAT_VERSION, params=params, size=3)
        for name in datasets:
            file[name] = np.int64(3) if name == "done" else np.zeros(3)
    return path


def test_damaged_stores_are_one_line_errors_naming_the_file(tmp_path, arrays, scripted, one_line_error):
    full = tmp_path / "full.h5"
    assert _attribute(arrays, "--model", scripted, "--out", full).exit_code == 0
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size * 7 // 10])
    cases = [
        (_forged(tmp_path / "no-rows.h5", datasets=("index",)), "lacks the datasets label, output"),
        (_forged(tmp_path / "not-json.h5", params="{model: x"), "run parameters are not a JSON object"),
        (truncated, "is truncated"),
    ]
    for path, message in cases:
        for command in (["spray", str(path), "--class", "0"], ["merge", str(tmp_path / "m.h5"), str(path)]):
            one_line_error(runner.invoke(app, command), str(path), message)
        result = _attribute(arrays, "--model", scripted, "--out", path)
        one_line_error(result, str(path), message)


def test_merge_never_destroys_a_shard_or_another_file(tmp_path, arrays, scripted, one_line_error):
    parts = [tmp_path / f"run-{i}.h5" for i in range(2)]
    for i, part in enumerate(parts):
        assert _attribute(arrays, "--model", scripted, "--out", part, "--shard", f"{i}/2").exit_code == 0
    before = parts[0].read_bytes()
    one_line_error(runner.invoke(app, ["merge", str(parts[0]), *map(str, parts)]), "is one of the shards")
    one_line_error(runner.invoke(app, ["merge", str(parts[0]), str(parts[0])]), "is one of the shards")
    one_line_error(runner.invoke(app, ["merge", str(tmp_path / "all.h5"), str(parts[0]), str(parts[0]),
                                       str(parts[1])]), "given twice")  # fmt: skip
    assert parts[0].read_bytes() == before
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    one_line_error(runner.invoke(app, ["merge", str(notes), *map(str, parts)]), "--force")
    assert notes.read_text() == "keep me"
    result = runner.invoke(app, ["merge", str(notes), *map(str, parts), "--force"])
    assert result.exit_code == 0, result.output
    with store.open(notes) as merged:
        assert len(merged) == 120


def test_a_rewritten_data_file_is_another_run(tmp_path, arrays, scripted, one_line_error):
    out = tmp_path / "run.h5"
    assert _attribute(arrays, "--model", scripted, "--out", out).exit_code == 0
    rng = np.random.default_rng(2)
    np.savez(arrays, x=rng.random((120, 3, 6, 6), dtype=np.float32), y=rng.integers(0, 3, 120))
    one_line_error(_attribute(arrays, "--model", scripted, "--out", out), str(out), "dataset_fingerprint")


def test_another_spelling_of_the_model_file_is_the_same_run(tmp_path, arrays, scripted, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link.pt").symlink_to(scripted)
    out = tmp_path / "run.h5"
    assert _attribute(arrays, "--model", scripted.name, "--out", out).exit_code == 0
    for spelling in (
        f"./{scripted.name}",
        scripted,
        "link.pt",
        tmp_path / ".." / tmp_path.name / scripted.name,
    ):
        result = _attribute(arrays, "--model", spelling, "--out", out)
        assert result.exit_code == 0, result.output
    with store.open(out) as run:
        assert run.params["model"] == str(scripted.resolve())
