"""Peak memory of one call, for the benchmarks that compare it with the plain gradient's.

On a GPU, ``torch.cuda.max_memory_allocated`` above what was allocated before the call; on Linux CPUs, the
peak resident set size (``VmHWM``, reset through ``/proc/self/clear_refs``) above the resident size before it.
Run it in a fresh process with ``MALLOC_MMAP_THRESHOLD_=65536`` (:data:`ENVIRONMENT`): glibc then maps every
block above 64 KiB on its own and returns it when freed, so that the peak follows the tensors alive at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

ENVIRONMENT = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")


def peak_mib(call: Callable[[], object], device: torch.device | None = None) -> float:
    """The peak memory of ``call()`` in MiB above what was in use before it (on ``device``, the CPU by
    default)."""
    if device is not None and device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        call()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    with open("/proc/self/clear_refs", "w") as handle:  # Linux: reset the peak resident set size (VmHWM)
        handle.write("5")
    base = _status_kib("VmRSS")
    call()
    return (_status_kib("VmHWM") - base) / 1024


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")
