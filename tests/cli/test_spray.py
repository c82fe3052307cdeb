"""``relprop spray`` shows the inputs of a store only from the data set the store was computed on."""

import numpy as np
import pytest
from typer.testing import CliRunner

from relprop.cli import app

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")


@pytest.fixture
def computed(attribute_arrays):
    """A store of 60 samples of 3 x 6 x 6 and the .npz it was computed on."""
    rng = np.random.default_rng(0)
    return attribute_arrays(rng.random((60, 3, 6, 6), dtype=np.float32), np.zeros(60, dtype=np.int64))


def _spray(out, *options):
    return runner.invoke(app, ["spray", str(out), "--class", "0", "--size", "4", "--out",
                               str(out.with_name("report")), "--max-images", "2", *options])  # fmt: skip


def _other_data(path):
    rng = np.random.default_rng(1)
    np.savez(path, x=rng.random((60, 3, 6, 6), dtype=np.float32), y=np.zeros(60, dtype=np.int64))
    return path


def test_data_of_the_same_size_but_other_samples_is_refused(computed, tmp_path, one_line_error):
    out, data = computed
    other = _other_data(tmp_path / "other.npz")
    one_line_error(
        _spray(out, "--data", str(other)), "other.npz", "is not the data set the store was computed on"
    )
    result = _spray(out, "--data", str(data))
    assert result.exit_code == 0, result.output


def test_a_rewritten_data_set_of_the_store_is_not_shown(computed):
    out, data = computed
    _other_data(data)
    result = _spray(out)
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert "is not the data set the store was computed on" in first and "showing heatmaps only" in first


def test_a_store_whose_rows_do_not_decompress_is_named(computed, one_line_error):
    import h5py

    out, _ = computed
    with h5py.File(out, "r") as file:
        chunk = file["attribution"].id.get_chunk_info(0)
    with open(out, "r+b") as raw:  # damage in the middle of the file: its length is right
        raw.seek(chunk.byte_offset + 8)
        raw.write(b"\xff" * min(64, chunk.size - 8))
    one_line_error(_spray(out), str(out), "is damaged: reading its rows failed")


def test_more_clusters_than_the_spectrum_holds_is_one_line_naming_n_clusters(computed, one_line_error):
    out, _ = computed
    one_line_error(_spray(out, "--clusters", "500"), "n_clusters must be an int in [1, 32]", "got 500")
