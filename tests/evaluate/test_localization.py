import math

import pytest
import torch

from relprop.evaluate import pointing_game, relevance_mass_accuracy, relevance_rank_accuracy


def square_mask() -> torch.Tensor:
    """A 20x20 mask with the square rows 5..9, columns 5..9."""
    mask = torch.zeros(1, 20, 20, dtype=torch.bool)
    mask[0, 5:10, 5:10] = True
    return mask


def spike(row: int, col: int) -> torch.Tensor:
    heatmap = torch.zeros(1, 1, 20, 20)
    heatmap[0, 0, row, col] = 1.0
    return heatmap


@pytest.mark.parametrize(
    ("row", "col", "tolerance", "hit"),
    [
        (7, 7, 0, 1.0),  # inside
        (7, 15, 15, 1.0),  # 6 pixels right of the square, default tolerance
        (7, 15, 6, 1.0),
        (7, 15, 5.9, 0.0),
        (13, 13, 5.7, 1.0),  # diagonal: distance to (9, 9) is sqrt(32) = 5.66
        (13, 13, 5.6, 0.0),
        (0, 19, 0, 0.0),
    ],
)
def test_pointing_game_tolerance(row, col, tolerance, hit):
    score = pointing_game(spike(row, col), square_mask(), tolerance=tolerance)
    torch.testing.assert_close(score, torch.tensor([hit], dtype=torch.float64))


def test_pointing_game_default_tolerance_is_15_pixels():
    mask = torch.zeros(1, 40, 40, dtype=torch.bool)
    mask[0, 0, 0] = True
    near, far = torch.zeros(1, 40, 40), torch.zeros(1, 40, 40)
    near[0, 9, 12], far[0, 12, 12] = 1.0, 1.0  # distances 15 and 16.97
    assert pointing_game(near, mask).item() == 1.0
    assert pointing_game(far, mask).item() == 0.0


def test_pointing_game_scores_ties_by_their_expectation():
    heatmap = spike(7, 7) + spike(0, 19)  # one tied maximum inside, one 11.2 pixels outside
    torch.testing.assert_close(
        pointing_game(heatmap, square_mask(), 11), torch.tensor([0.5], dtype=torch.float64)
    )
    torch.testing.assert_close(
        pointing_game(heatmap, square_mask(), 12), torch.tensor([1.0], dtype=torch.float64)
    )
    # A constant map hits at the rate of the (tolerance-widened) mask area: 25 / 400 without tolerance.
    flat = torch.zeros(1, 20, 20)
    torch.testing.assert_close(
        pointing_game(flat, square_mask(), 0), torch.tensor([25 / 400], dtype=torch.float64)
    )


def test_pointing_game_sums_channels_and_scores_each_sample():
    attribution = torch.zeros(2, 3, 20, 20)
    attribution[0, 0, 7, 7], attribution[0, 1, 0, 0], attribution[0, 2, 0, 0] = (
        2.0,
        1.5,
        1.5,
    )  # sum 3 at (0, 0)
    attribution[1, 2, 6, 6] = 1.0
    masks = square_mask().expand(2, 20, 20)[:, None]  # (B, 1, H, W) works too
    torch.testing.assert_close(
        pointing_game(attribution, masks, 0), torch.tensor([0.0, 1.0], dtype=torch.float64)
    )


def test_relevance_mass_accuracy_by_hand():
    # Channels sum to [[1, 2], [3, -4]]; positive mass 6, inside the diagonal mask 1 + 0.
    attribution = torch.tensor([[[[0.5, 2.0], [1.0, -1.0]], [[0.5, 0.0], [2.0, -3.0]]]])
    mask = torch.tensor([[[1, 0], [0, 1]]])
    torch.testing.assert_close(
        relevance_mass_accuracy(attribution, mask), torch.tensor([1 / 6], dtype=torch.float64)
    )
    # Scale invariant per sample.
    torch.testing.assert_close(relevance_mass_accuracy(7 * attribution, mask), torch.tensor([1 / 6]).double())
    # No positive relevance: undefined.
    assert math.isnan(relevance_mass_accuracy(-attribution.abs(), mask).item())


def test_relevance_rank_accuracy_by_hand():
    heatmap = torch.tensor([[[9.0, 1.0, 5.0], [2.0, 8.0, 3.0], [7.0, 4.0, 6.0]]])
    mask = torch.tensor([[[True, False, False], [False, True, True], [False, False, False]]])
    # K = 3: the top 3 are 9, 8, 7; 9 and 8 are inside.
    torch.testing.assert_close(
        relevance_rank_accuracy(heatmap, mask), torch.tensor([2 / 3], dtype=torch.float64)
    )


def test_relevance_rank_accuracy_ties_of_non_positive_relevance():
    # One positive pixel (inside); K = 2, the other place goes to one of 8 tied zeros, one of which is inside.
    heatmap = -torch.arange(9.0).view(1, 3, 3)
    heatmap[0, 0, 0] = 5.0
    mask = torch.zeros(1, 3, 3, dtype=torch.bool)
    mask[0, 0, 0] = mask[0, 2, 2] = True
    expected = (1 + 1 / 8) / 2
    torch.testing.assert_close(
        relevance_rank_accuracy(heatmap, mask), torch.tensor([expected], dtype=torch.float64)
    )


@pytest.mark.parametrize(
    ("attribution", "mask", "error", "message"),
    [
        (
            torch.rand(2, 1, 4, 4),
            torch.zeros(2, 4, 4, dtype=torch.bool),
            ValueError,
            r"samples \[0, 1\] are empty",
        ),
        (torch.rand(2, 1, 4, 4), torch.ones(2, 5, 4, dtype=torch.bool), ValueError, "mask must be shaped"),
        (torch.rand(2, 1, 4, 4), torch.full((2, 4, 4), 0.5), ValueError, "only 0 and 1"),
        (torch.full((2, 1, 4, 4), float("nan")), torch.ones(2, 4, 4), ValueError, "NaN"),
        (torch.rand(4, 4), torch.ones(4, 4), ValueError, "attribution must be shaped"),
        (torch.rand(2, 1, 4, 4), [[1]], TypeError, "mask must be a torch.Tensor"),
    ],
)
@pytest.mark.parametrize("metric", [pointing_game, relevance_mass_accuracy, relevance_rank_accuracy])
def test_bad_input_is_rejected(metric, attribution, mask, error, message):
    with pytest.raises(error, match=message):
        metric(attribution, mask)


def test_negative_tolerance_is_rejected():
    with pytest.raises(ValueError, match="tolerance"):
        pointing_game(spike(0, 0), square_mask(), tolerance=-1)
