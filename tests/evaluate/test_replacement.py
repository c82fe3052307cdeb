import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from relprop.evaluate import Constant, GaussianBlur, UniformNoise


def test_uniform_noise_uses_each_images_own_range():
    x = torch.stack([torch.linspace(0, 1, 48), torch.linspace(-5, -3, 48)]).view(2, 3, 4, 4).double()
    noise = UniformNoise()(x, torch.Generator().manual_seed(0))
    assert noise.shape == x.shape and noise.dtype == x.dtype
    assert noise[0].min() >= 0 and noise[0].max() <= 1
    assert noise[1].min() >= -5 and noise[1].max() <= -3
    # Uniform: the mean of 48 draws on [-5, -3] is near -4.
    assert abs(noise[1].mean().item() + 4) < 0.3


def test_uniform_noise_with_fixed_bounds_is_reproducible():
    x = torch.zeros(2, 1, 8, 8)
    first = UniformNoise(2.0, 3.0)(x, torch.Generator().manual_seed(5))
    again = UniformNoise(2.0, 3.0)(x, torch.Generator().manual_seed(5))
    assert torch.equal(first, again)
    assert first.min() >= 2 and first.max() <= 3


@pytest.mark.parametrize("sigma", [1.0, 1.5])
def test_gaussian_blur_matches_scipy(sigma):
    x = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    blurred = GaussianBlur(sigma)(x, torch.Generator())
    # scipy truncates at int(3 sigma + 0.5) pixels, which equals ceil(3 sigma) for these sigmas.
    expected = gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="nearest", truncate=3.0)
    np.testing.assert_allclose(blurred.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_constant_broadcasts_a_per_channel_mean():
    mean = torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1)
    filled = Constant(mean)(torch.zeros(2, 3, 4, 4, dtype=torch.float64), torch.Generator())
    assert filled.dtype == torch.float64
    torch.testing.assert_close(filled[1, :, 2, 3], torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    with pytest.raises(ValueError, match="does not broadcast"):
        Constant(torch.zeros(2, 1, 1))(torch.zeros(1, 3, 4, 4), torch.Generator())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: UniformNoise(0.0), "both low and high"),
        (lambda: UniformNoise(1.0, 0.0), "low < high"),
        (lambda: GaussianBlur(0.0), "positive finite sigma"),
        (lambda: Constant(float("nan")), "NaN"),
        (lambda: Constant(torch.zeros(1, 1, 1, 1)), "one image"),
    ],
)
def test_bad_parameters_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()
