"""Load a model from a command-line specification, without ever unpickling arbitrary objects.

A specification is one of

* ``NAME``: a registered architecture with its default (pretrained) weights, e.g. ``efficientnet-lite0``;
* ``NAME:WEIGHTS``: a registered architecture with a state dict from ``WEIGHTS`` (``torch.save`` of
  ``model.state_dict()``), read with ``torch.load(weights_only=True)``;
* ``ARCH:WEIGHTS``: a torchvision classification architecture (``torchvision.models.list_models()``, e.g.
  ``resnet50``) with a state dict from the local file ``WEIGHTS``; nothing is downloaded;
* ``FILE``: a TorchScript file (``torch.jit.save``) of a ``torch.nn.Sequential`` of standard ``torch.nn``
  layers (nested ``Sequential`` allowed). relprop explains plain modules traced with ``torch.fx``, which
  cannot trace compiled TorchScript code, so the layers are rebuilt as the ``torch.nn`` modules they were
  scripted from, with the same weights. (TorchScript is deprecated since torch 2.14.)
* ``FILE.pt2``: a ``torch.export`` program (``torch.export.save``), TorchScript's successor, of any
  architecture, loaded only when the caller says the file is trusted (``trust=True``, ``--trust-model``):
  ``torch.export.load`` has no safe mode, and a planted pickle in the program's sample inputs or planted
  guard code runs while it loads.

Safe to load from strangers: state dicts (``NAME:WEIGHTS``, ``ARCH:WEIGHTS``, read as tensors only) and the
TorchScript files above (their code is not run: the layers are rebuilt). Not safe: ``.pt2`` programs, and
pickled modules (``torch.save(model)``), which are always refused: unpickling them could run any code.
"""

from __future__ import annotations

import inspect
import pickle
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

__all__ = ["load_model", "model_names", "register_model", "torchvision_names"]

_MODELS: dict[str, Callable[[bool], nn.Module]] = {}


def register_model(name: str, factory: Callable[[bool], nn.Module]) -> None:
    """Make an architecture loadable by ``name``.

    Parameters
    ----------
    name:
        The name in specifications; must contain no ``:``.
    factory:
        ``factory(pretrained)`` returns the model, with its default weights if ``pretrained`` is true and
        with any weights otherwise (they are replaced by a state dict).
    """
    if not name or ":" in name:
        raise ValueError(f"a model name must be non-empty and contain no ':', got {name!r}")
    _MODELS[name] = factory


def model_names() -> list[str]:
    """The names registered with :func:`register_model`."""
    return sorted(_MODELS)


def torchvision_names() -> list[str]:
    """The torchvision classification architectures that load as ``ARCH:WEIGHTS``."""
    from torchvision import models

    return models.list_models(module=models)


def _efficientnet_lite0(pretrained: bool) -> nn.Module:
    from relprop.models.efficientnet_lite import efficientnet_lite0

    return efficientnet_lite0(pretrained=pretrained)


register_model("efficientnet-lite0", _efficientnet_lite0)


def load_model(spec: str, trust: bool = False) -> nn.Module:
    """The model that ``spec`` names (see the module docstring), in evaluation mode on the CPU.

    ``trust`` allows ``torch.export`` programs (``.pt2``), whose loading runs code stored in the file.

    Raises
    ------
    ValueError
        If ``spec`` names no registered architecture and no file, if a weights file holds anything other
        than tensors, if a TorchScript file holds layers relprop cannot rebuild, or if ``spec`` is a
        ``torch.export`` program and ``trust`` is false.
    """
    name, _, weights = spec.partition(":")
    if name in _MODELS:
        model = _MODELS[name](not weights)
        if weights:
            _load_weights(model, Path(weights))
        return model.eval()
    if name in torchvision_names():
        if not weights:
            raise ValueError(
                f"torchvision architecture {name!r} needs a local weights file: pass {name}:WEIGHTS "
                "(a state dict; relprop downloads nothing)"
            )
        from torchvision import models

        model = models.get_model(name, weights=None)
        _load_weights(model, Path(weights))
        return model.eval()
    path = Path(spec)
    if not path.is_file():
        raise ValueError(
            f"model {spec!r} is neither a registered architecture ({', '.join(model_names())}, optionally "
            "followed by :WEIGHTS), a torchvision architecture with :WEIGHTS (e.g. resnet50:weights.pth), "
            "nor an existing file"
        )
    return _load_file(path, trust)


def _load_file(path: Path, trust: bool) -> nn.Module:
    """The model in the file ``path``: a ``torch.export`` program (only with ``trust``) or a TorchScript
    archive; any other file (a state dict above all) is refused, saying what it holds."""
    _check_torch_file(path)
    if _is_exported(path):
        return _load_exported(path, trust)
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():
                # torch.jit is deprecated but still reads files
                warnings.simplefilter("ignore", FutureWarning)
                script = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError) as error:
            raise ValueError(f"{path} is a damaged TorchScript archive: {_summary(error)}") from error
        return _rebuild(script, where="model").eval()
    _load_state_dict(path)  # refuses pickles with a clear message; a state dict lands below
    raise ValueError(
        f"{path} holds a state dict, which has no architecture: pass NAME:{path} with NAME one of "
        f"{', '.join(model_names())}, or save the model with torch.jit.script(model).save(...)"
    )


def _load_exported(path: Path, trust: bool) -> nn.Module:
    """The module of the ``torch.export`` program ``path``, refused unless ``trust`` (loading it runs code
    stored in the file)."""
    if not trust:
        raise ValueError(
            f"{path} is a torch.export program, and loading one runs code stored in the file (its "
            "pickled sample inputs, its guards): relprop loads it only if you trust the file "
            "(--trust-model, or load_model(..., trust=True)); state dicts are the safe format"
        )
    try:
        return torch.export.load(str(path)).module()
    except (RuntimeError, ValueError, KeyError) as error:
        raise ValueError(f"{path} is a damaged torch.export program: {_summary(error)}") from error


def _check_torch_file(path: Path) -> None:
    """Refuse, saying what it is, a file that no torch serializer wrote: empty, text, a truncated archive.

    ``torch.save``, ``torch.jit.save`` and ``torch.export.save`` write zip archives (``torch.save`` of old
    versions a pickle, which starts with the byte 0x80).
    """
    with path.open("rb") as file:
        head = file.read(16)
    if not head:
        raise ValueError(f"{path} is empty (0 bytes): not a model or weights file")
    if zipfile.is_zipfile(path) or head[:1] == b"\x80":
        return
    if head.startswith(b"PK\x03\x04"):
        raise ValueError(f"{path} is a damaged zip archive (truncated?): torch cannot read it")
    raise ValueError(
        f"{path} is not a file of torch.save, torch.jit.save or torch.export.save: it starts with "
        f"{head[:16]!r}"
    )


def _summary(error: BaseException, limit: int = 300) -> str:
    """The error's message on one line, cut at ``limit`` characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


def _is_exported(path: Path) -> bool:
    """Whether ``path`` is a ``torch.export`` archive (``torch.export.save``), by its name or its layout."""
    if path.suffix == ".pt2":
        return True
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/")[1:] == ["archive_format"] for name in archive.namelist())


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/")[1:2] == ["code"] for name in archive.namelist())


def _load_weights(model: nn.Module, path: Path) -> None:
    """Load the state dict in ``path`` into ``model`` (``strict=True``); a mismatch is a ValueError."""
    try:
        model.load_state_dict(_load_state_dict(path), strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"the weights in {path} do not fit {type(model).__name__}: {_summary(error)}"
        ) from error


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    _check_torch_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as error:  # what weights_only raises for anything but tensors
        raise ValueError(
            f"{path} is not a plain weights file: it holds pickled Python objects, and loading them could "
            "run arbitrary code, so relprop only reads tensors (torch.load(weights_only=True)); save "
            f"model.state_dict() or a TorchScript module instead ({type(error).__name__})"
        ) from error
    except (RuntimeError, OSError, EOFError, KeyError, ValueError, AttributeError, TypeError) as error:
        raise ValueError(f"{path} cannot be read as a torch file: {_summary(error)}") from error
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    return state


def _rebuild(script: torch.jit.ScriptModule, where: str) -> nn.Module:
    """The ``torch.nn`` module a scripted standard layer (or ``Sequential`` of them) was made from."""
    kind = script.original_name
    if kind == "Sequential":
        return nn.Sequential(*(_rebuild(child, f"{where}.{n}") for n, child in script.named_children()))
    cls = getattr(nn, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)) or list(script.named_children()):
        raise ValueError(
            f"TorchScript {where} is a {kind} with its own forward code, which relprop cannot trace; "
            "script a torch.nn.Sequential of standard layers, or register the architecture with "
            "relprop.models.loading.register_model and pass NAME:WEIGHTS"
        )
    arguments = {}
    for parameter in list(inspect.signature(cls).parameters.values()):
        if parameter.name == "bias":
            arguments["bias"] = getattr(script, "bias", None) is not None
        elif parameter.name in ("affine", "elementwise_affine") and not hasattr(script, parameter.name):
            arguments[parameter.name] = getattr(script, "weight", None) is not None
        elif hasattr(script, parameter.name):
            arguments[parameter.name] = getattr(script, parameter.name)
        elif parameter.default is inspect.Parameter.empty:
            raise ValueError(
                f"cannot rebuild TorchScript {where} ({kind}): its {parameter.name!r} is unknown"
            )
    module = cls(**arguments)
    module.load_state_dict(script.state_dict(), strict=True)
    return module
