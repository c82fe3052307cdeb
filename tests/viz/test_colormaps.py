import matplotlib
import numpy as np
import pytest
import torch
from zennit.image import palette as zennit_palette

from relprop.viz.colormaps import colorize, normalize

WHITE, RED, BLUE, BLACK, YELLOW = (255, 255, 255), (255, 0, 0), (0, 0, 255), (0, 0, 0), (255, 255, 0)


def test_bwr_zero_is_exactly_white_and_extremes_hit_the_ends():
    relevance = np.array([-4.0, -1.0, 0.0, 1.0, 2.0])
    # s = 4: positions 0, 0.375, 0.5, 0.625, 0.75 on blue -> white -> red
    expected = [BLUE, (191, 191, 255), WHITE, (255, 191, 191), (255, 128, 128)]
    np.testing.assert_array_equal(colorize(relevance), expected)
    np.testing.assert_array_equal(colorize(-relevance)[0], RED)


def test_bwr_positive_is_red_dominant_and_negative_blue_dominant():
    relevance = np.random.default_rng(0).normal(size=(32, 32))
    rgb = colorize(relevance).astype(int)
    positive, negative = relevance > 0, relevance < 0
    assert (rgb[positive, 0] == 255).all() and (rgb[positive, 1] == rgb[positive, 2]).all()
    assert (rgb[negative, 2] == 255).all() and (rgb[negative, 0] == rgb[negative, 1]).all()
    # strictly coloured once |R| exceeds one colour step (1/255 of the range around zero)
    visible = np.abs(relevance) > 0.01 * np.abs(relevance).max()
    assert (rgb[positive & visible, 0] > rgb[positive & visible, 2]).all()
    assert (rgb[negative & visible, 2] > rgb[negative & visible, 0]).all()


def test_hot_shows_positive_relevance_only_from_black_to_white():
    relevance = np.array([-5.0, 0.0, 1.0, 2.0, 3.0])
    # heat only: max(R, 0) / 3 = 0, 0, 1/3, 2/3, 1 on black -> red -> yellow -> white
    np.testing.assert_array_equal(colorize(relevance, "hot"), [BLACK, BLACK, RED, YELLOW, WHITE])
    np.testing.assert_array_equal(colorize(relevance, "hot", signed=True)[[0, 1]], [BLACK, (255, 128, 0)])


@pytest.mark.parametrize("cmap", ["bwr", "hot"])
def test_builtin_maps_agree_with_zennit_palettes(cmap):
    # zennit quantizes to 256 palette entries (index = floor(255 * position)): up to one step apart
    relevance = np.random.default_rng(1).normal(size=(64, 64))
    if cmap == "hot":
        relevance = np.abs(relevance)
        position = relevance / relevance.max()
    else:
        position = (relevance / np.abs(relevance).max() + 1) / 2
    index = (position * 255).clip(0, 255).astype(np.uint8)
    expected = np.asarray(zennit_palette(cmap)).reshape(-1, 3)[index]
    np.testing.assert_allclose(colorize(relevance, cmap), expected, atol=3)


@pytest.mark.parametrize("cmap", ["seismic", "coolwarm", "viridis"])
def test_matplotlib_colormaps_by_name_with_symmetric_norm(cmap):
    relevance = np.random.default_rng(2).normal(size=(8, 8))
    limit = np.abs(relevance).max()
    norm = matplotlib.colors.Normalize(vmin=-limit, vmax=limit)
    expected = matplotlib.colormaps[cmap](norm(relevance), bytes=True)[..., :3]
    np.testing.assert_array_equal(colorize(relevance, cmap), expected)


def test_torch_and_numpy_inputs_render_the_same():
    relevance = np.random.default_rng(3).normal(size=(6, 5))
    np.testing.assert_array_equal(colorize(torch.from_numpy(relevance)), colorize(relevance))


def test_percentile_clipping_saturates_the_top_values():
    relevance = np.arange(1.0, 1001.0)
    # 99.5th percentile (linear interpolation) = 1 + 0.995 * 999 = 995.005: 996..1000 saturate
    normalized = normalize(relevance, signed=True, clip_percentile=99.5)
    np.testing.assert_array_equal(np.flatnonzero(normalized == 1.0), np.arange(995, 1000))
    assert normalized[994] == pytest.approx(995 / 995.005)
    rgb = colorize(relevance, clip_percentile=99.5)
    np.testing.assert_array_equal(rgb[995:], [RED] * 5)
    assert rgb[990, 1] > 0  # below the percentile: not saturated


def test_normalize_heat_only_clips_negative_and_uses_positive_maximum():
    normalized = normalize(np.array([-10.0, 0.0, 1.0, 4.0]), signed=False)
    np.testing.assert_array_equal(normalized, [0.0, 0.0, 0.25, 1.0])


def test_zero_scale_saturates_nonzero_values_and_zero_heatmap_is_white():
    sparse = np.zeros(100)
    sparse[[3, 7]] = [2.0, -0.5]
    # the median of |R| is 0: the limit sign(R) is used
    np.testing.assert_array_equal(normalize(sparse, signed=True, clip_percentile=50)[[0, 3, 7]], [0, 1, -1])
    np.testing.assert_array_equal(colorize(np.zeros((3, 4))), np.full((3, 4, 3), 255))


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="unknown colormap 'no-such-map'"):
        colorize(np.ones(3), "no-such-map")
    with pytest.raises(TypeError, match="cmap must be a colormap name"):
        colorize(np.ones(3), matplotlib.colormaps["viridis"])
    with pytest.raises(ValueError, match=r"1 NaN or infinite value\(s\), the first at index \(1, 0\)"):
        colorize(np.array([[0.0, 1.0], [np.nan, 2.0]]))
    with pytest.raises(ValueError, match="clip_percentile must lie in"):
        colorize(np.ones(3), clip_percentile=0)
    with pytest.raises(ValueError, match="relevance is empty"):
        colorize(np.ones((0, 3)))
    with pytest.raises(TypeError, match="real numbers"):
        colorize(np.array([True, False]))
