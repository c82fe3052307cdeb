"""Data sets to explain: image folders, arrays, and named data sets, with the preprocessing they need.

A data set is any map-style :class:`torch.utils.data.Dataset` whose items are ``(x, label)`` pairs, ``x`` a
float tensor (one sample, without batch dimension) and ``label`` an ``int`` class (``-1`` when unknown).
:func:`load_dataset` makes one from a command-line specification:

* a directory in torchvision's ``ImageFolder`` layout (``root/<class>/<image>``), classes numbered in
  sorted order, each image read by :func:`relprop.images.read_image` (upright, 16-bit and float pixels
  scaled, not clipped) and prepared by a named :data:`PREPROCESSING`;
* a ``.npz`` file with arrays ``x`` (samples) and ``y`` (integer labels), or a ``.npy`` file of samples
  without labels (label ``-1``);
* the name of a data set registered with :func:`register_dataset` (``digits`` is built in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from relprop.images import read_image, to_rgb
from relprop.models import efficientnet_lite

__all__ = [
    "PREPROCESSING",
    "ArrayDataset",
    "Preprocessing",
    "SampleError",
    "dataset_names",
    "load_dataset",
    "register_dataset",
]


class SampleError(ValueError):
    """A sample of a data set cannot be used; the message names the sample (and its file)."""


@dataclass(frozen=True)
class Preprocessing:
    """How an image file becomes a model input.

    Parameters
    ----------
    name:
        The name on the command line.
    transform:
        PIL image to float tensor ``(C, H, W)``.
    bounds:
        The smallest and largest value an input can take, as needed by bounded rules such as
        :class:`~relprop.rules.ZBox`.
    """

    name: str
    transform: Callable
    bounds: tuple[float, float]


def _to_tensor(image) -> torch.Tensor:
    from torchvision.transforms import functional as tvf

    return tvf.pil_to_tensor(to_rgb(image)).float() / 255.0


def _efficientnet_lite(image) -> torch.Tensor:
    from relprop.models.efficientnet_lite import preprocess

    return preprocess(image)


#: Named preprocessings for image folders: ``to-tensor`` (RGB scaled to [0, 1], size kept) and
#: ``efficientnet-lite`` (the evaluation transform of :func:`relprop.models.efficientnet_lite0`).
PREPROCESSING: dict[str, Preprocessing] = {
    "to-tensor": Preprocessing("to-tensor", _to_tensor, (0.0, 1.0)),
    "efficientnet-lite": Preprocessing(
        "efficientnet-lite", _efficientnet_lite, efficientnet_lite.INPUT_BOUNDS
    ),
}


def preprocessing_for(model: str, preprocessing: str | None = None) -> str:
    """The name of the preprocessing of image folders for ``model`` (a model spec, as the commands take it):
    ``preprocessing`` if given, else ``efficientnet-lite`` for those models and ``to-tensor`` for the others.

    Raises
    ------
    ValueError
        If ``preprocessing`` is not one of :data:`PREPROCESSING`.
    """
    if preprocessing is None:
        return "efficientnet-lite" if model.startswith("efficientnet-lite") else "to-tensor"
    if preprocessing not in PREPROCESSING:
        raise ValueError(f"unknown preprocessing {preprocessing!r}; choose one of {', '.join(PREPROCESSING)}")
    return preprocessing


class ArrayDataset(Dataset):
    """Samples and labels held in arrays (or read lazily from a memory-mapped ``.npy``).

    Parameters
    ----------
    x:
        Samples, ``(N, ...)``; converted to float32 one sample at a time.
    y:
        Integer labels, ``(N,)``; ``None`` for unknown labels (``-1``).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        if x.ndim < 2:
            raise ValueError(
                f"samples must have shape (N, ...) with at least one feature axis, got {x.shape}"
            )
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise TypeError(f"samples must be numbers, got dtype {x.dtype}")
        if y is not None:
            if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
                raise ValueError(
                    f"labels must be integers of shape ({len(x)},), got {y.dtype} of shape {y.shape}"
                )
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        label = -1 if self.y is None else int(self.y[index])
        # a copy: a memory-mapped file's rows are read-only, which torch tensors cannot be
        return torch.from_numpy(np.array(self.x[index], dtype=np.float32)), label


class _ImageFolder(Dataset):
    """torchvision's ImageFolder whose errors name the image file that caused them."""

    def __init__(self, root: Path, preprocessing: Preprocessing) -> None:
        from torchvision.datasets import ImageFolder

        self.folder = ImageFolder(str(root), transform=preprocessing.transform, loader=read_image)

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        try:
            return self.folder[index]
        except Exception as error:  # any failure to decode or transform: name the file
            path = self.folder.samples[index][0]
            raise SampleError(f"sample {index} ({path}): cannot read image: {error}") from error


_DATASETS: dict[str, Callable[[], Dataset]] = {}


def register_dataset(name: str, factory: Callable[[], Dataset]) -> None:
    """Make a data set available by ``name`` to :func:`load_dataset` and the command line.

    Parameters
    ----------
    name:
        The name; must not look like a path (no ``/`` or ``.``).
    factory:
        Called without arguments when the data set is needed; returns a map-style data set of
        ``(x, label)`` pairs.
    """
    if not name or "/" in name or "." in name:
        raise ValueError(f"a data set name must be non-empty and contain no '/' or '.', got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory of data set {name!r} must be callable, got {type(factory).__name__}")
    _DATASETS[name] = factory


def dataset_names() -> list[str]:
    """The names registered with :func:`register_dataset`."""
    return sorted(_DATASETS)


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8) in [0, 1]
    return ArrayDataset(images, digits.target.astype(np.int64))


register_dataset("digits", _digits)


#: The first bytes of the files of ``np.save`` (``.npy``) and ``np.savez`` (``.npz``, a zip archive).
_NUMPY_MAGIC = {".npy": b"\x93NUMPY", ".npz": b"PK\x03\x04"}


def _check_numpy_file(path: Path) -> None:
    """Refuse a ``.npy`` / ``.npz`` file that numpy did not write (numpy would try to unpickle it)."""
    magic = _NUMPY_MAGIC[path.suffix]
    with path.open("rb") as file:
        head = file.read(len(magic))
    if not head:
        raise ValueError(f"{path} is empty (0 bytes)")
    if head != magic:
        writer = "np.save" if path.suffix == ".npy" else "np.savez"
        raise ValueError(f"{path} is not a {path.suffix} file of {writer}: it starts with {head!r}")


def load_dataset(spec: str | Path, preprocessing: str = "to-tensor") -> Dataset:
    """The data set that ``spec`` names.

    Parameters
    ----------
    spec:
        A registered name, an image folder, or a ``.npz`` / ``.npy`` file (see the module docstring).
    preprocessing:
        The name of the :data:`PREPROCESSING` for image folders; arrays and named data sets are used as
        they are.

    Returns
    -------
    torch.utils.data.Dataset
        Map-style data set of ``(x, label)`` pairs.
    """
    spec = str(spec)
    if spec in _DATASETS:
        return _DATASETS[spec]()
    path = Path(spec)
    if path.is_dir():
        if preprocessing not in PREPROCESSING:
            raise ValueError(
                f"unknown preprocessing {preprocessing!r}; choose one of {', '.join(sorted(PREPROCESSING))}"
            )
        try:
            return _ImageFolder(path, PREPROCESSING[preprocessing])
        except FileNotFoundError as error:  # torchvision: no class folders or no images
            raise ValueError(f"{path}: not an image folder in ImageFolder layout ({error})") from error
    if path.suffix in _NUMPY_MAGIC:
        if not path.is_file():
            raise FileNotFoundError(f"data set file {path} does not exist")
        _check_numpy_file(path)
        try:
            if path.suffix == ".npy":
                return ArrayDataset(np.load(path, mmap_mode="r", allow_pickle=False))
            with np.load(path, allow_pickle=False) as arrays:
                missing = {"x", "y"} - set(arrays.files)
                if missing:
                    raise ValueError(
                        f"{path}: an .npz data set needs arrays 'x' and 'y', missing {sorted(missing)} "
                        f"(has {arrays.files})"
                    )
                return ArrayDataset(arrays["x"], arrays["y"])
        except (ValueError, TypeError) as error:
            if "allow_pickle" in str(error):  # numpy's advice to unpickle: not for files from strangers
                raise ValueError(
                    f"{path} holds arrays of Python objects, which relprop does not unpickle (that could run "
                    "code): save numeric arrays"
                ) from None
            raise ValueError(f"{path}: {error}") from error
    known = ", ".join(dataset_names())
    raise ValueError(
        f"data set {spec!r} is neither a registered name ({known}), an image folder, nor a .npz/.npy file"
    )
