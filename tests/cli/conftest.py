"""What every command's tests share."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from relprop.cli import app


@pytest.fixture
def one_line_error():
    """Check that a command failed with one line that starts with ``error:`` and names each fragment."""

    def check(result, *fragments):
        assert result.exit_code != 0
        assert "Traceback" not in result.output
        assert result.output.count("\n") == 1 and result.output.startswith("error: "), result.output
        for fragment in fragments:
            assert fragment in result.output, result.output

    return check


@pytest.fixture(scope="session")
def scripted(tmp_path_factory) -> Path:
    """A tiny TorchScript classifier of 224 x 224 images with 10 classes (no class names)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 8, stride=8), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 10)
    )
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated but still writes files
        torch.jit.script(model.eval()).save(str(path))
    return path


@pytest.fixture
def small_scripted(tmp_path) -> Path:
    """A tiny TorchScript classifier of 3 x 6 x 6 images with 3 classes, in the test's own folder."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    path = tmp_path / "model.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated but still writes files
        torch.jit.script(model.eval()).save(str(path))
    return path


@pytest.fixture
def attribute_arrays(tmp_path, small_scripted):
    """``attribute(x, y)``: the store ``relprop attribute`` computes with :func:`small_scripted` on the
    arrays (saved as ``data.npz``), explaining each sample's label; returns the store and the .npz."""

    def attribute(x: np.ndarray, y: np.ndarray) -> tuple[Path, Path]:
        data = tmp_path / "data.npz"
        np.savez(data, x=x, y=y)
        out = tmp_path / "run.h5"
        result = CliRunner().invoke(app, ["attribute", str(data), "--model", str(small_scripted), "--out",
                                          str(out), "--target", "label", "--no-progress"])  # fmt: skip
        assert result.exit_code == 0, result.output
        return out, data

    return attribute
