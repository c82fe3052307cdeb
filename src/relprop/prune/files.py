"""Writing a pruned model in a form that :func:`relprop.models.loading.load_model` (and so every command)
loads again."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn


def save_pruned(model: nn.Module, path: Path, example: Tensor, architecture: str | None = None) -> str:
    """Write ``model`` to ``path`` and return the model specification that loads it.

    * an ``nn.Sequential`` is written as TorchScript (``FILE``; safe to load);
    * a model of the registered ``architecture`` (given only if its layers kept their sizes: masked units)
      as its state dict (``NAME:FILE``; safe to load);
    * any other (a smaller model of another architecture) as a ``torch.export`` program of ``example``
      (``FILE.pt2``, loaded with ``--trust-model``), for any batch size; ``path`` must end in ``.pt2``.

    Raises
    ------
    ValueError
        If the model needs a ``.pt2`` file and ``path`` does not end so.
    """
    path = Path(path)
    if isinstance(model, nn.Sequential):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still writes
            torch.jit.script(model).save(str(path))
        return str(path)
    if architecture is not None:
        torch.save(model.state_dict(), path)
        return f"{architecture}:{path}"
    if path.suffix != ".pt2":
        raise ValueError(
            f"a smaller {type(model).__name__} is written as a torch.export program: name the output "
            f"{path.with_suffix('.pt2')} (or prune with masks to keep the architecture's state dict)"
        )
    example = example[:1].expand(2, *example.shape[1:])  # batch 2: torch.export specializes sizes 0 and 1
    batch = {0: torch.export.Dim("batch")}
    torch.export.save(torch.export.export(model, (example,), dynamic_shapes=(batch,)), str(path))
    return f"{path} (with --trust-model)"
