import math

import numpy as np
import pytest
import torch

from relprop import checks, rules


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: checks.check_number(-1, "epsilon"), r"^epsilon must be a number >= 0, got -1$"),
        (lambda: checks.check_number(0.0, "alpha", strict=True), r"^alpha must be a number > 0, got 0.0$"),
        (lambda: checks.check_number(math.inf, "noise"), r"^noise must be a number >= 0, got inf$"),
        (lambda: checks.check_number(True, "gamma"), r"^gamma must be a number >= 0, got True$"),
        (lambda: checks.check_int(0, "steps"), r"^steps must be an int >= 1, got 0$"),
        (lambda: checks.check_int(2.0, "steps"), r"^steps must be an int >= 1, got 2.0$"),
        (lambda: checks.check_int(-1, "pad", minimum=0), r"^pad must be an int >= 0, got -1$"),
        (
            lambda: checks.check_finite(torch.tensor([1.0, math.nan]), "x"),
            r"^x contains NaN or infinite values$",
        ),
    ],
)
def test_refusals_name_the_argument_and_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_accepted_values_come_back_as_python_numbers():
    assert checks.check_number(np.float32(0.5), "epsilon") == 0.5
    assert type(checks.check_int(np.int64(3), "steps")) is int
    assert checks.check_seed(None) is None and checks.check_seed(7) == 7


@pytest.mark.parametrize("seed", [True, 1.5, "0"])
def test_seed_must_be_an_int(seed):
    with pytest.raises(TypeError, match="seed must be None or an int"):
        checks.check_seed(seed)


def test_divide_passes_nothing_where_the_denominator_is_zero():
    numerator = torch.tensor([1.0, 2.0, math.inf])
    denominator = torch.tensor([4.0, 0.0, 0.0])
    assert torch.equal(rules.divide(numerator, denominator), torch.tensor([0.25, 0.0, 0.0]))


@pytest.mark.parametrize(
    "values, finite",
    [
        ([1.0, -2.0, 3.0], True),
        ([3e38, 3e38, -1.0], True),  # the sum overflows: the element-wise test decides
        ([1.0, float("nan")], False),
        ([float("inf"), 1.0], False),
        ([float("inf"), float("-inf")], False),  # the sum is NaN
        ([], True),
    ],
)
def test_all_finite(values, finite):
    assert checks.all_finite(torch.tensor(values, dtype=torch.float32)) is finite
    assert checks.all_finite(torch.tensor([1, 2])) is True  # integers are always finite
