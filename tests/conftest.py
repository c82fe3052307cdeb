"""Fixtures shared by the whole suite."""

import pytest
import torch


@pytest.fixture
def float64():
    """Make float64 the default dtype for one test, and restore the previous default afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture
def one_thread():
    """Run one test on one thread: tiny models train many times faster so than on two threads that wait for
    each other on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
