"""The data set a store was computed on: found from the store's parameters, loaded, and checked to be it.

A store records the data set it explains (a registered name or a path), its size, a fingerprint of its
samples and, for image folders, the preprocessing (see :func:`relprop.store.attribute_dataset`).
Whatever shows a store's inputs next to its heatmaps (the SpRAy report, a ViRelAy project) loads them
through here, so that heatmaps are never paired with the samples of another data set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

__all__ = [
    "OtherDataError",
    "check_same_data",
    "load_store_dataset",
    "stored_dataset",
    "stored_preprocessing",
]


class OtherDataError(ValueError):
    """The data set is not the one the store was computed on."""


def stored_dataset(params: dict[str, Any]) -> str | None:
    """The store's data set, if this machine can load it (a registered name or an existing path)."""
    from relprop.data import dataset_names

    spec = str(params.get("dataset", ""))
    return spec if spec in dataset_names() or Path(spec).exists() else None


def stored_preprocessing(params: dict[str, Any]) -> str | None:
    """The store's preprocessing, if it is one this relprop knows (image folders; ``none`` otherwise)."""
    from relprop.data import PREPROCESSING

    preprocessing = params.get("preprocessing")
    return preprocessing if preprocessing in PREPROCESSING else None


def check_same_data(spec: str, dataset: Dataset, params: dict[str, Any]) -> None:
    """Raise :class:`OtherDataError` unless ``dataset`` (named ``spec`` in the message) has the size and the
    fingerprint the store recorded."""
    from relprop.store.run import dataset_fingerprint

    expected = params.get("dataset_size")
    if expected is not None and len(dataset) != expected:
        raise OtherDataError(
            f"data set {spec!r} has {len(dataset)} samples, but the store was computed on {expected}"
        )
    fingerprint = params.get("dataset_fingerprint")
    if fingerprint is not None and dataset_fingerprint(dataset) != fingerprint:
        raise OtherDataError(
            f"data set {spec!r} is not the data set the store was computed on (same size, but other "
            "samples, types or labels)"
        )


def load_store_dataset(
    params: dict[str, Any], data: str | Path | None = None, preprocessing: str | None = None
) -> Dataset:
    """The store's data set, checked to be the one it was computed on.

    Parameters
    ----------
    params:
        The store's parameters (``AttributionStore.params``).
    data:
        The data set to load instead of the one the store names (a registered name or a path), e.g. where
        it lies elsewhere on this machine.
    preprocessing:
        For an image folder: how to prepare its images (default: as the store's samples were). The check
        compares the samples as the store's run prepared them.

    Raises
    ------
    ValueError
        If the store's data set cannot be loaded here and ``data`` is not given.
    OtherDataError
        If the data set is not the one the store was computed on.
    """
    from relprop.data import load_dataset

    spec = str(data) if data is not None else stored_dataset(params)
    if spec is None:
        raise ValueError(
            f"the store's data set {params.get('dataset')!r} cannot be loaded here: pass the data set "
            "(data=, or --data on the command line)"
        )
    stored = stored_preprocessing(params)
    dataset = load_dataset(spec, preprocessing or stored or "to-tensor")
    as_computed = dataset if preprocessing in (None, stored) else load_dataset(spec, stored or "to-tensor")
    check_same_data(spec, as_computed, params)
    return dataset
