import pytest
import torch
from captum.attr import Occlusion as CaptumOcclusion
from torch import nn

from relprop.methods import Occlusion


@pytest.mark.parametrize(("patch", "stride"), [(3, 2), (4, 4), ((2, 5), (1, 3))])
def test_matches_captum(make_model, images, patch, stride, untouched):
    # with 12 pixels, patch 3 and stride 2 the last window starts at 10 and is cut at the border
    model = make_model()
    with untouched(model):
        ours = Occlusion(model, patch, stride, fill=0.3, batch_size=7)(images, 1)
    window = (1, patch, patch) if isinstance(patch, int) else (1, *patch)
    strides = (1, stride, stride) if isinstance(stride, int) else (1, *stride)
    expected = CaptumOcclusion(model).attribute(
        images, window, strides=strides, baselines=0.3, target=1, perturbations_per_eval=64
    )
    # Captum divides in float32
    torch.testing.assert_close(ours, expected.to(ours.dtype), rtol=1e-5, atol=1e-7)


def test_three_channels_occluded_together_match_captum(make_model):
    model = make_model(channels=3, size=10)
    x = torch.rand(1, 3, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    fill = torch.rand(3, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours = Occlusion(model, (3, 3), fill=fill)(x, 0)
    expected = CaptumOcclusion(model).attribute(
        x, sliding_window_shapes=(3, 3, 3), strides=(3, 3, 3), baselines=fill.unsqueeze(0), target=0
    )
    torch.testing.assert_close(ours, expected.to(ours.dtype), rtol=1e-5, atol=1e-7)


def test_linear_model_by_hand():
    model = nn.Linear(6, 2, bias=True).double()
    x = torch.tensor([[1.0, 2.0, -1.0, 0.5, 3.0, -2.0]], dtype=torch.float64)
    w = model.weight[0].detach()
    # single elements: the drop is w_i x_i
    torch.testing.assert_close(Occlusion(model, 1)(x, 0), x * w)
    # windows of 2 with stride 1: element i is covered by the windows starting at i-1 and i
    pair = (x * w).view(-1)
    drops = pair[:-1] + pair[1:]
    expected = torch.stack([drops[0], *((drops[:-1] + drops[1:]) / 2), drops[-1]]).view(1, 6)
    torch.testing.assert_close(Occlusion(model, 2, 1)(x, 0), expected)


class LeftHalf(nn.Module):
    """A CNN that looks only at the left half of the image."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.cat([x[..., :6], torch.zeros_like(x[..., 6:])], dim=-1))


def test_occluding_an_irrelevant_region_gives_zero(make_model, images):
    result = Occlusion(LeftHalf(make_model()), 3)(images, 0)
    # zero up to rounding: on some CPUs a sample's output depends on the batch size (by 2.8e-17 here)
    torch.testing.assert_close(result[..., 6:], torch.zeros_like(result[..., 6:]), rtol=0, atol=1e-14)
    assert result[..., :6].abs().max() > 1e-3


def test_batch_size_does_not_change_the_result(make_model, images):
    model = make_model()
    one = Occlusion(model, 3, 2, batch_size=1)(images)
    torch.testing.assert_close(Occlusion(model, 3, 2, batch_size=500)(images), one, rtol=1e-12, atol=1e-14)


def test_bad_arguments(make_model, images):
    model = make_model()
    with pytest.raises(ValueError, match="larger than the input"):
        Occlusion(model, 13)(images)
    with pytest.raises(ValueError, match="larger than the input"):
        Occlusion(model, (2, 3, 3))(images)
    with pytest.raises(ValueError, match="uncovered"):
        Occlusion(model, 2, 3)(images)
    with pytest.raises(ValueError, match="tuple of 2 or 3"):
        Occlusion(model, (1, 1, 2, 2))(images)
    with pytest.raises(ValueError, match="patch entry"):
        Occlusion(model, 0)
    with pytest.raises(ValueError, match="fill of shape"):
        Occlusion(model, 3, fill=torch.zeros(12, 12))(images)
    with pytest.raises(ValueError, match="NaN"):
        Occlusion(model, 3)(images.masked_fill(images > 0.5, float("nan")))
