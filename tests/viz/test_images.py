import numpy as np
import pytest
import torch
from PIL import Image

from relprop.viz import heatmap, overlay, save_heatmap
from relprop.viz.colormaps import colorize
from relprop.viz.images import as_rgb_image, reduce_channels

# channels (1, -2, 2) at pixel (0, 0) and (3, 0, -4) at pixel (0, 1)
ATTRIBUTION = np.array([[[1.0, 3.0]], [[-2.0, 0.0]], [[2.0, -4.0]]])  # (C=3, H=1, W=2)


@pytest.mark.parametrize(
    ("reduction", "expected"),
    [("sum", [1.0, -1.0]), ("abs-sum", [5.0, 7.0]), ("max-abs", [2.0, 4.0]), ("norm", [3.0, 5.0])],
)
def test_channel_reductions_on_a_hand_made_example(reduction, expected):
    np.testing.assert_allclose(reduce_channels(ATTRIBUTION, reduction), [expected])
    np.testing.assert_array_equal(heatmap(ATTRIBUTION, reduction=reduction), colorize(np.array([expected])))


def test_channel_sum_heatmap_pixels():
    # summed map [[1, -1]]: red end and blue end
    np.testing.assert_array_equal(heatmap(ATTRIBUTION), [[[255, 0, 0], [0, 0, 255]]])
    np.testing.assert_array_equal(
        heatmap(torch.tensor(ATTRIBUTION, dtype=torch.float32)), heatmap(ATTRIBUTION)
    )


def test_two_dimensional_attribution_is_one_channel():
    relevance = np.random.default_rng(0).normal(size=(4, 5))
    np.testing.assert_array_equal(heatmap(relevance), colorize(relevance))
    np.testing.assert_array_equal(heatmap(relevance, reduction="abs-sum"), colorize(np.abs(relevance)))


def test_batch_heatmaps_are_normalized_one_by_one():
    batch = torch.randn(2, 3, 6, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rendered = heatmap(batch)
    assert rendered.shape == (2, 6, 7, 3) and rendered.dtype == np.uint8
    np.testing.assert_array_equal(rendered[0], heatmap(batch[0]))
    scaled = batch.clone()
    scaled[1] *= 1000
    np.testing.assert_array_equal(heatmap(scaled)[0], rendered[0])
    np.testing.assert_array_equal(heatmap(scaled)[1], rendered[1])


def test_percentile_clipping_saturates_the_top_pixels():
    relevance = np.ones((10, 10))
    relevance.flat[[3, 20, 41, 77, 98]] = 100.0
    # 95th percentile = 1 + 0.05 * 99 = 5.95: the five outliers saturate, the ones show as 1 / 5.95
    clipped = heatmap(relevance, clip_percentile=95)
    red = np.all(clipped == (255, 0, 0), axis=-1)
    np.testing.assert_array_equal(np.flatnonzero(red), [3, 20, 41, 77, 98])
    np.testing.assert_array_equal(clipped[0, 0], (255, 212, 212))  # rint(255 * (1 - 1 / 5.95))
    np.testing.assert_array_equal(heatmap(relevance)[0, 0], (255, 252, 252))  # rint(255 * 0.99)


def test_heatmap_rejects_bad_input():
    with pytest.raises(ValueError, match=r"attribution must have shape .* got shape \(5,\)"):
        heatmap(np.ones(5))
    with pytest.raises(ValueError, match=r"got shape \(1, 1, 3, 4, 4\)"):
        heatmap(np.ones((1, 1, 3, 4, 4)))
    with pytest.raises(ValueError, match="unknown channel reduction 'mean'"):
        heatmap(np.ones((3, 4, 4)), reduction="mean")
    bad = torch.zeros(2, 3, 4, 4)
    bad[1, 2, 0, 3] = float("inf")
    with pytest.raises(ValueError, match=r"attribution contains 1 NaN or infinite .* index \(1, 2, 0, 3\)"):
        heatmap(bad)


def test_image_formats_convert_to_the_same_rgb_array():
    rgb = np.random.default_rng(1).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    as_float_tensor = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    np.testing.assert_array_equal(as_rgb_image(rgb), rgb)
    np.testing.assert_array_equal(as_rgb_image(Image.fromarray(rgb)), rgb)
    np.testing.assert_array_equal(as_rgb_image(as_float_tensor), rgb)
    np.testing.assert_array_equal(as_rgb_image(rgb / 255.0), rgb)
    grey = rgb[..., 0]
    np.testing.assert_array_equal(as_rgb_image(grey), np.stack([grey] * 3, axis=-1))
    np.testing.assert_array_equal(as_rgb_image(torch.from_numpy(grey)[None] / 255), as_rgb_image(grey))


def test_image_conversion_rejects_bad_images():
    with pytest.raises(
        ValueError, match=r"\(H, W, C\) or \(H, W\) for a numpy array .* got shape \(3, 5, 7\)"
    ):
        as_rgb_image(np.zeros((3, 5, 7), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"values in \[0, 1\], got range \[0.0, 2.0\]"):
        as_rgb_image(torch.linspace(0, 2, 12).reshape(1, 3, 4))
    with pytest.raises(TypeError, match="got dtype int64"):
        as_rgb_image(np.zeros((4, 4, 3), dtype=np.int64))


def test_overlay_blends_image_and_heatmap():
    image = np.random.default_rng(2).integers(0, 256, size=(2, 3, 3), dtype=np.uint8)
    attribution = np.random.default_rng(3).normal(size=(3, 2, 3))
    np.testing.assert_array_equal(overlay(image, attribution, alpha=0.0), image)
    np.testing.assert_array_equal(overlay(image, attribution, alpha=1.0), heatmap(attribution))
    expected = np.rint(0.25 * image + 0.75 * heatmap(attribution).astype(float))
    np.testing.assert_array_equal(overlay(image, attribution, alpha=0.75), expected)
    # zero relevance is white: black image at alpha 0.5 gives rint(127.5) = 128
    np.testing.assert_array_equal(overlay(torch.zeros(3, 2, 2), torch.zeros(2, 2)), np.full((2, 2, 3), 128))


def test_overlay_rejects_bad_input():
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="alpha must lie in"):
        overlay(image, np.ones((4, 4)), alpha=1.5)
    with pytest.raises(ValueError, match="image is 4x4 pixels but the attribution is 4x5"):
        overlay(image, np.ones((4, 5)))
    with pytest.raises(ValueError, match="overlay takes one attribution.* batch of 2"):
        overlay(image, np.ones((2, 3, 4, 4)))


def test_saved_png_reads_back_with_size_and_pixels(tmp_path):
    attribution = torch.randn(3, 5, 7, generator=torch.Generator().manual_seed(4))
    path = tmp_path / "heatmap.png"
    save_heatmap(path, attribution, clip_percentile=99)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB" and image.size == (7, 5)
        np.testing.assert_array_equal(np.asarray(image), heatmap(attribution, clip_percentile=99))
    with pytest.raises(ValueError, match="save_heatmap takes one attribution"):
        save_heatmap(path, attribution[None])
