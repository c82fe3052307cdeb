import numpy as np
import pytest
import torch
from PIL import Image

from relprop.viz import grid, heatmap, overlay

B, H, W, SCALE, PAD = 3, 12, 20, 2, 4
CELL_H, CELL_W = H * SCALE, W * SCALE


def _batch(seed):
    return torch.randn(B, 3, H, W, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _images():
    return torch.rand(B, 3, H, W, generator=torch.Generator().manual_seed(9))


def _cell(canvas, row_from_bottom, column_from_right):
    """Pixels of a cell, located from the bottom right corner (independent of the title height)."""
    array = np.asarray(canvas)
    bottom = array.shape[0] - PAD - row_from_bottom * (CELL_H + PAD)
    right = array.shape[1] - PAD - column_from_right * (CELL_W + PAD)
    return array[bottom - CELL_H : bottom, right - CELL_W : right]


def _enlarge(rgb):
    return rgb.repeat(SCALE, axis=0).repeat(SCALE, axis=1)


def test_grid_size_and_cell_contents():
    attributions = {"a": _batch(0), "b": _batch(1)}
    canvas = grid(attributions, _images(), scale=SCALE, pad=PAD)
    assert isinstance(canvas, Image.Image) and canvas.mode == "RGB"
    width, height = canvas.size
    # columns: input, a, b; titles are narrower than the 40 px cells
    assert width == PAD + 3 * (CELL_W + PAD)
    header = height - B * (CELL_H + PAD)
    assert 2 * PAD + 5 <= header <= 2 * PAD + 30  # one line of the default font
    np.testing.assert_array_equal(_cell(canvas, 0, 0), _enlarge(heatmap(attributions["b"][2])))
    np.testing.assert_array_equal(_cell(canvas, 2, 1), _enlarge(heatmap(attributions["a"][0])))
    np.testing.assert_array_equal(
        _cell(canvas, 1, 2), _enlarge(overlay(_images()[1], attributions["a"][1], alpha=0))
    )
    # the column titles are drawn: dark pixels in the header above every column
    array = np.asarray(canvas)
    for column in range(3):
        left = PAD + column * (CELL_W + PAD)
        assert array[:header, left : left + CELL_W].min() < 128


def test_grid_with_row_titles_and_overlay():
    attributions = {"lrp": _batch(2)}
    plain = grid(attributions, _images(), scale=SCALE, pad=PAD)
    titled = grid(
        attributions, _images(), row_titles=["cat", "dog", "airplane"], alpha=0.5, scale=SCALE, pad=PAD
    )
    assert titled.height == plain.height and titled.width > plain.width + PAD
    np.testing.assert_array_equal(
        _cell(titled, 0, 0), _enlarge(overlay(_images()[2], attributions["lrp"][2]))
    )
    # the row titles are drawn in the left margin
    margin = np.asarray(titled)[:, : titled.width - plain.width]
    assert margin.min() < 128


def test_grid_without_images_and_saved_png(tmp_path):
    attributions = {"gradient": np.random.default_rng(0).normal(size=(2, 1, 30, 50))}
    canvas = grid(attributions)
    assert canvas.width == 4 + 50 + 4
    path = tmp_path / "grid.png"
    canvas.save(path)
    with Image.open(path) as image:
        assert image.size == canvas.size
        np.testing.assert_array_equal(np.asarray(image), np.asarray(canvas))


def test_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty mapping"):
        grid({})
    with pytest.raises(ValueError, match=r"attributions\['a'\] must have shape \(B, C, H, W\), got shape"):
        grid({"a": np.ones((2, 4, 4))})
    with pytest.raises(ValueError, match="all methods need the same"):
        grid({"a": np.ones((2, 1, 4, 4)), "b": np.ones((3, 1, 4, 4))})
    with pytest.raises(ValueError, match="got 2 images for 3 samples"):
        grid({"a": np.ones((3, 1, 4, 4))}, torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="'input' is taken by the images"):
        grid({"input": np.ones((3, 1, 4, 4))}, torch.rand(3, 3, 4, 4))
    with pytest.raises(ValueError, match="pass images as well"):
        grid({"a": np.ones((3, 1, 4, 4))}, alpha=0.5)
    with pytest.raises(ValueError, match="got 1 row titles for 3 samples"):
        grid({"a": np.ones((3, 1, 4, 4))}, row_titles=["x"])
    with pytest.raises(ValueError, match="scale must be an int >= 1"):
        grid({"a": np.ones((3, 1, 4, 4))}, scale=0)
    bad = np.zeros((3, 1, 4, 4))
    bad[2, 0, 1, 3] = np.nan
    with pytest.raises(ValueError, match=r"attributions\['a'\] contains 1 NaN .* index \(2, 0, 1, 3\)"):
        grid({"a": bad})
