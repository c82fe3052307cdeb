"""Devices named by users (``cpu``, ``cuda``, ``cuda:1``, ``mps``, ...), checked before any work starts."""

from __future__ import annotations

import torch

__all__ = ["parse_device"]


def parse_device(spec: str | torch.device, available: bool = True) -> torch.device:
    """The device ``spec`` names, checked to be usable in this process.

    Parameters
    ----------
    spec:
        A device string of torch (``cpu``, ``cuda``, ``cuda:1``, ``mps``, ...) or a ``torch.device``.
    available:
        Also check that this process can allocate memory there (an empty tensor is made on it); false
        when the work runs elsewhere (Ray workers on other machines).

    Raises
    ------
    ValueError
        If torch knows no such device, if it is ``meta`` (which holds no data), or if ``available`` and
        the device cannot be used here (no GPU, no driver, an index past the last GPU, a backend this
        torch was built without).
    """
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {str(spec)!r}: {_first_sentence(error)}") from None
    if device.type == "meta":
        raise ValueError("device 'meta' holds no data: explain on cpu, cuda, ...")
    if available:
        try:
            torch.empty(0, device=device)
        except (RuntimeError, AssertionError, NotImplementedError) as error:
            raise ValueError(f"device {str(spec)!r} is not usable here: {_first_sentence(error)}") from None
    return device


def _first_sentence(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text.split(". ")[0].rstrip(".")
