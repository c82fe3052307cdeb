"""Results repeated over seeds, as the faithfulness benchmarks report them: mean ± standard error."""

from __future__ import annotations

import math
import sys

import numpy as np


def mean_and_error(values: np.ndarray) -> list[str]:
    """Per column of ``values`` ``(seeds, columns)``: ``"mean ± s / sqrt(n)"``, the error NaN for one seed."""
    values = np.asarray(values, dtype=np.float64)
    mean = values.mean(axis=0)
    error = values.std(axis=0, ddof=1) / math.sqrt(len(values)) if len(values) > 1 else mean * math.nan
    return [f"{m:.3f} ± {e:.3f}" for m, e in zip(mean, error)]


def log(message: str) -> None:
    """A progress line on stderr, so that stdout holds only the tables."""
    print(message, file=sys.stderr, flush=True)
