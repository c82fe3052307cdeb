"""Devices are checked when they are named, before a model moves or a store is written."""

import pytest
import torch

from relprop.devices import parse_device


def test_usable_devices_are_parsed():
    assert parse_device("cpu") == torch.device("cpu")
    assert parse_device(torch.device("cpu", 0)) == torch.device("cpu", 0)
    assert parse_device("cuda:3", available=False) == torch.device("cuda", 3)  # checked where it runs


def test_unknown_unusable_and_meta_devices_are_refused():
    with pytest.raises(ValueError, match=r"unknown device 'banana': Expected one of cpu, cuda"):
        parse_device("banana")
    with pytest.raises(ValueError, match=r"unknown device 'cuda:x'"):
        parse_device("cuda:x", available=False)
    with pytest.raises(ValueError, match=r"device 'cuda:99' is not usable here: "):
        parse_device("cuda:99")  # no GPU here, or not a hundred of them
    with pytest.raises(ValueError, match="holds no data"):
        parse_device("meta")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(ValueError, match=r"device 'cuda' is not usable here: "):
        parse_device("cuda")
