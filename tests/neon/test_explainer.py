import pytest
import torch

from relprop.neon import NEON, NeuralizedKMeans, NeuralizedOneClassSVM, softmin_shares

CENTROIDS = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]], dtype=torch.float64)


@pytest.fixture
def model():
    return NeuralizedKMeans(CENTROIDS)


def test_target_forms_agree(model):
    x = torch.tensor([[0.5, 1.0], [2.0, 0.5]], dtype=torch.float64)
    by_long = NEON(model)(x, torch.tensor([1, 1]))
    torch.testing.assert_close(by_long, NEON(model)(x, 1))
    one_hot = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(NEON(model)(x, one_hot), by_long)
    torch.testing.assert_close(NEON(model)(x, None), NEON(model)(x, torch.tensor([0, 1])))


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        ([[0.5, 1.0]], TypeError, "torch.Tensor"),
        (torch.tensor([[1, 2]]), TypeError, "floating-point"),
        (torch.tensor([0.5, 1.0]), ValueError, "batch dimension"),
        (torch.zeros(2, 3), ValueError, "2 features"),
        (torch.tensor([[float("nan"), 1.0]]), ValueError, "NaN"),
    ],
)
def test_bad_input(model, x, error, match):
    with pytest.raises(error, match=match):
        NEON(model)(x)
    if isinstance(x, torch.Tensor) and x.is_floating_point() and x.ndim == 2 and x.shape[1] != 2:
        with pytest.raises(error, match=match):
            model(x)


@pytest.mark.parametrize(
    ("target", "error", "match"),
    [
        (3, ValueError, "out of range"),
        (torch.tensor([0]), ValueError, "shape"),
        (torch.zeros(2, 2, dtype=torch.float64), ValueError, "shaped like"),
        (torch.tensor([True, False]), ValueError, "integer target tensor"),
        ("0", TypeError, "target"),
        (True, TypeError, "target"),
    ],
)
def test_bad_target(model, target, error, match):
    with pytest.raises(error, match=match):
        NEON(model)(torch.zeros(2, 2, dtype=torch.float64), target)


def test_rule_parameters_are_checked(model):
    with pytest.raises(TypeError, match="stiffness"):
        NEON(model, stiffness=2.0)
    with pytest.raises(TypeError, match="beta"):
        NEON(NeuralizedOneClassSVM([[0.0, 0.0]], [1.0], gamma=1.0), beta=2.0)
    with pytest.raises(TypeError, match="NeuralizedModel"):
        NEON(torch.nn.Linear(2, 2))


def test_softmin_shares():
    values = torch.tensor([2.0, 3.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(softmin_shares(values, 0.0), torch.full((3,), 1 / 3, dtype=torch.float64))
    torch.testing.assert_close(
        softmin_shares(values, float("inf")), torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64)
    )
    large = torch.tensor([1e4, 1e4 + 1], dtype=torch.float64)
    assert torch.isfinite(softmin_shares(large, 50.0)).all()
    with pytest.raises(ValueError, match="beta"):
        softmin_shares(values, float("nan"))
