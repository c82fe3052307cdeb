import math

import pytest
import torch
from torch import nn

from relprop.evaluate import conservation_error


def affine_model() -> nn.Module:
    """Two outputs: f0 = 3 x0 - x1 + 0.5, f1 = x0 + x1 - 1."""
    linear = nn.Linear(2, 2).double()
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[3.0, -1.0], [1.0, 1.0]]))
        linear.bias.copy_(torch.tensor([0.5, -1.0]))
    return linear


X = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64)


def test_known_numbers():
    model = affine_model()
    # Gradient x input of f0 misses the bias: sum R = f0 - 0.5, with f0 = [1.5, 5.5].
    attribution = torch.tensor([[3.0, -1.0]], dtype=torch.float64) * X
    error = conservation_error(model, X, attribution, 0)
    torch.testing.assert_close(error, torch.tensor([0.5 / 1.5, 0.5 / 5.5], dtype=torch.float64))
    # Predicted classes: sample 0 has f = [1.5, 2.0] -> class 1, sample 1 has [5.5, 2.0] -> class 0.
    by_prediction = conservation_error(model, X, attribution, None)
    torch.testing.assert_close(by_prediction, torch.tensor([abs(1.0 - 2.0) / 2.0, 0.5 / 5.5]).double())
    by_index = conservation_error(model, X, attribution, torch.tensor([1, 0]))
    torch.testing.assert_close(by_index, by_prediction)


def test_weighted_target_and_exact_conservation():
    model = affine_model()
    weights = torch.tensor([[1.0, 2.0], [0.5, 0.0]], dtype=torch.float64)
    explained = (model(X) * weights).sum(1).detach()  # [1.5 + 4, 2.75]
    exact = torch.stack([explained / 2, explained / 2], dim=1)
    torch.testing.assert_close(
        conservation_error(model, X, exact, weights), torch.zeros(2, dtype=torch.float64)
    )
    doubled = conservation_error(model, X, 2 * exact, weights)
    torch.testing.assert_close(doubled, torch.ones(2, dtype=torch.float64))


def test_zero_output_gives_infinity():
    model = affine_model()
    x = torch.tensor([[0.5, 0.5]], dtype=torch.float64)  # f1 = 0
    assert math.isinf(conservation_error(model, x, torch.ones_like(x), 1).item())


@pytest.mark.parametrize(
    ("attribution", "target", "error", "message"),
    [
        (torch.zeros(2, 3, dtype=torch.float64), 0, ValueError, "shaped like x"),
        (torch.full((2, 2), float("nan"), dtype=torch.float64), 0, ValueError, "NaN"),
        (torch.zeros(2, 2, dtype=torch.long), 0, TypeError, "floating-point"),
        (torch.zeros(2, 2, dtype=torch.float64), 2, ValueError, "out of range"),
        (torch.zeros(2, 2, dtype=torch.float64), "cat", TypeError, "target must be"),
    ],
)
def test_bad_input_is_rejected(attribution, target, error, message):
    with pytest.raises(error, match=message):
        conservation_error(affine_model(), X, attribution, target)
