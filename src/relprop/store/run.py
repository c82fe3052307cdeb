"""Explain every sample of a data set into a store: in this process, or on a Ray cluster.

The work is the same either way: the samples of one shard, in order, cut into batches; each batch is
loaded, passed through the model and explained by :class:`relprop.LRP` (:class:`Attributor`), and the
rows it yields are appended to the store by this process only, in order (:class:`StoreWriter`). On Ray,
each worker holds one model replica and computes whole batches; a worker that dies is restarted and its
batches are computed again, but since only the driver writes, and writes batch ``k`` only after batch
``k - 1``, a retried batch can be neither lost nor stored twice.
"""

from __future__ import annotations

import copy
import hashlib
import sys
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from relprop._extras import install_hint
from relprop.checks import check_eval_mode
from relprop.composites import Composite, EpsilonPlusFlat
from relprop.data import SampleError
from relprop.describe import describe
from relprop.devices import parse_device
from relprop.explainer import Explainer, ExplainerFactory
from relprop.lrp import LRP
from relprop.methods._common import forward
from relprop.store._file import Rows, StoreWriter
from relprop.targets import target_weights

__all__ = ["Attributor", "attribute_dataset", "parse_shard", "shard_indices"]

_DTYPES = ("float16", "float32")
_TORCH_DTYPES = {"float16": torch.float16, "float32": torch.float32}
_TARGETS = ("prediction", "label")
_FINGERPRINT_SAMPLES = 16


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` as ``(i, n)``, checking ``0 <= i < n``."""
    part, _, count = text.partition("/")
    try:
        shard = (int(part), int(count))
    except ValueError:
        raise ValueError(f"shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= shard[0] < shard[1]:
        raise ValueError(f"shard {text!r} must satisfy 0 <= i < n")
    return shard


def shard_indices(dataset_size: int, shard: tuple[int, int] = (0, 1)) -> np.ndarray:
    """The data-set indices of shard ``i`` of ``n``: every ``n``-th sample from ``i`` on.

    Round robin keeps the shards within one sample of each other in size whatever the data set's order.
    """
    part, count = shard
    return np.arange(part, dataset_size, count, dtype=np.int64)


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 of the model's parameters and buffers, so that a store is never resumed with other weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(_bytes(tensor))
    return digest.hexdigest()


def dataset_fingerprint(dataset: Dataset) -> str:
    """SHA-256 of the data set's size and of 16 evenly spaced samples (values, shape, type and label).

    A store is never resumed, nor shown, with another data set, even one of the same size (a rewritten
    file), while fingerprinting costs 16 sample loads whatever the size. A change that spares every
    fingerprinted sample goes unnoticed.
    """
    digest = hashlib.sha256(f"{len(dataset)} samples".encode())
    for index in _fingerprint_rows(len(dataset)):
        x, label = _load_sample(dataset, index)
        digest.update(f"{index}: {tuple(x.shape)} {x.dtype} label {label}".encode())
        digest.update(_bytes(x))
    return digest.hexdigest()


def _fingerprint_rows(size: int) -> np.ndarray:
    """The data-set indices :func:`dataset_fingerprint` reads: the first, the last, and evenly between."""
    return np.unique(np.linspace(0, size - 1, min(size, _FINGERPRINT_SAMPLES)).astype(np.int64))


def _bytes(tensor: torch.Tensor) -> bytes:
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _load_sample(dataset: Dataset, index: int) -> tuple[torch.Tensor, int]:
    """Sample ``index`` of ``dataset`` as a tensor and its label; a failure to load it names it."""
    try:
        x, label = dataset[int(index)]
    except SampleError:
        raise
    except Exception as error:  # a data set may fail in any way: name the sample
        raise SampleError(f"sample {index}: cannot load it: {error}") from error
    return torch.as_tensor(x), int(label)


class Attributor:
    """Compute the rows of a batch of samples: load, forward, explain, pool and convert.

    The model is left where it is: on another device than ``device``, the attributor explains a copy.

    Parameters
    ----------
    dataset:
        Map-style data set of ``(x, label)`` pairs.
    model:
        The model to explain, in evaluation mode.
    method:
        How to explain it: a :class:`~relprop.composites.Composite` explains by :class:`relprop.LRP` with
        it; any other callable builds the explainer from the model (an
        :data:`~relprop.explainer.ExplainerFactory`: a class of :mod:`relprop.methods` such as
        ``Gradient``, or ``functools.partial(IntegratedGradients, steps=32)``).
    sample_shape:
        The shape every sample must have.
    dtype:
        ``"float16"`` or ``"float32"``, the stored attribution's type.
    pool:
        ``(h, w)`` to sum-pool the last two axes of each attribution to, or ``None`` for full resolution.
        Sum pooling keeps the total relevance:
        :math:`R'_{ij} = \\sum_{(p, q) \\in \\text{block}(i, j)} R_{pq}`.
    sum_channels:
        Sum the attribution over its first (channel) axis, keeping it with size 1.
    target:
        ``"prediction"`` explains the predicted class, ``"label"`` the true class.
    device:
        Where the model runs.
    """

    def __init__(
        self,
        dataset: Dataset,
        model: nn.Module,
        method: Composite | ExplainerFactory,
        sample_shape: tuple[int, ...],
        dtype: str = "float16",
        pool: tuple[int, int] | None = None,
        sum_channels: bool = False,
        target: str = "prediction",
        device: str = "cpu",
    ) -> None:
        self.dataset = dataset
        self.sample_shape = tuple(sample_shape)
        self.dtype = np.dtype(dtype)
        self.pool = pool
        self.sum_channels = sum_channels
        self.target = target
        self.device = parse_device(device)
        self.explainer = _make_explainer(_on_device(model, self.device), method)

    def compute(self, indices: np.ndarray) -> Rows:
        """The rows of the samples at ``indices`` (data-set indices).

        Raises
        ------
        relprop.data.SampleError
            If a sample cannot be loaded or used, or relprop's checks refuse the batch or the model's output
            on it (the message names the samples). Any other error (a bug, a rule that cannot explain an
            operation, a device out of memory) is no fault of the data and propagates as it is.
        """
        x, labels = self._load(indices)
        try:
            output, relevance = self._explain(x.to(self.device), indices, labels)
        except SampleError:
            raise
        except (ValueError, TypeError) as error:  # relprop's checks of the batch and of the model's output
            raise SampleError(
                f"samples {indices[0]}..{indices[-1]}: the model or its explanation failed: {error}"
            ) from error
        output = output.detach().float().cpu().numpy()
        return Rows(
            index=np.asarray(indices, dtype=np.int64),
            label=labels,
            output=output,
            prediction=output.argmax(axis=1).astype(np.int64),
            attribution=self._convert(indices, relevance.detach().cpu()),
        )

    def _explain(self, x: torch.Tensor, indices: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, ...]:
        """The model's output on ``x`` and the attribution of the target: LRP (and an explainer that, like it,
        has ``propagate(x, output_relevance)``, e.g. :class:`relprop.concepts.ChannelStatistics`) takes the
        output from its own forward pass, any other explainer after one forward pass of the model."""

        def target_of(output: torch.Tensor) -> torch.Tensor | None:
            self._check_labels(indices, labels, output.shape[1])
            return None if self.target == "prediction" else torch.as_tensor(labels, device=output.device)

        if isinstance(self.explainer, LRP) or callable(getattr(self.explainer, "propagate", None)):
            outputs = []

            def start(output: torch.Tensor) -> torch.Tensor:
                outputs.append(output)
                return output * target_weights(output, target_of(output))

            relevance = self.explainer.propagate(x, start)
            return outputs[0], relevance
        with torch.no_grad():
            output = forward(self.explainer.model, x)
        return output, self.explainer(x, target_of(output))

    def _load(self, indices: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        samples, labels = [], []
        for index in indices:
            x, label = _load_sample(self.dataset, index)
            if tuple(x.shape) != self.sample_shape or not x.is_floating_point():
                raise SampleError(
                    f"sample {index} has shape {tuple(x.shape)} and dtype {x.dtype}; every sample must be "
                    f"floating point of shape {self.sample_shape}, as sample 0"
                )
            samples.append(x.float())
            labels.append(label)
        batch = torch.stack(samples)
        finite = torch.isfinite(batch.reshape(len(batch), -1)).all(dim=1)  # one check for the whole batch
        if not finite.all():
            bad = indices[int((~finite).nonzero()[0, 0])]
            raise SampleError(f"sample {bad} contains NaN or infinite values")
        return batch, np.asarray(labels, dtype=np.int64)

    def _check_labels(self, indices: np.ndarray, labels: np.ndarray, classes: int) -> None:
        low = -1 if self.target == "prediction" else 0
        bad = np.flatnonzero((labels < low) | (labels >= classes))
        if len(bad):
            raise SampleError(
                f"sample {indices[bad[0]]}: label {labels[bad[0]]} is out of range for a model with "
                f"{classes} outputs"
                + (" (explaining the label needs a known label)" if labels[bad[0]] == -1 else "")
            )

    def _convert(self, indices: np.ndarray, relevance: torch.Tensor) -> np.ndarray:
        if self.sum_channels:
            relevance = relevance.sum(dim=1, keepdim=True)
        if self.pool is not None:
            *lead, height, width = relevance.shape
            rows, cols = self.pool
            relevance = relevance.reshape(*lead, rows, height // rows, cols, width // cols).sum(dim=(-3, -1))
        attribution = relevance.to(_TORCH_DTYPES[self.dtype.name])  # overflow is reported below
        finite = torch.isfinite(attribution.reshape(len(attribution), -1)).all(dim=1)
        if not finite.all():
            sample = int((~finite).nonzero()[0, 0])
            largest = float(relevance[sample].abs().max())
            raise SampleError(
                f"sample {indices[sample]}: its attribution (largest magnitude {largest:.3g}) is not "
                f"finite in {self.dtype}" + ("; store float32 instead" if self.dtype == np.float16 else "")
            )
        return attribution.numpy()


def _make_explainer(model: nn.Module, method: Composite | ExplainerFactory) -> Explainer:
    """The explainer of ``model`` that ``method`` names: LRP with a composite, else ``method(model)``."""
    if isinstance(method, Composite):
        return LRP(model, composite=method)
    if not callable(method):
        raise TypeError(
            "method must be a relprop Composite or a callable that builds an explainer from the model "
            f"(e.g. relprop.methods.Gradient), got {type(method).__name__}"
        )
    explainer = method(model)
    if not isinstance(explainer, Explainer):
        raise TypeError(
            f"method {describe(method)} built a {type(explainer).__name__}, not an explainer: it must be "
            "callable as explainer(x, target) with the model as explainer.model"
        )
    return explainer


def _on_device(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` if all its tensors are on ``device``; else a copy there (the caller's model stays put)."""
    tensors = [*model.parameters(), *model.buffers()]
    if all(_same_device(tensor.device, device) for tensor in tensors):
        return model
    return copy.deepcopy(model).to(device)


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index or 0) == (b.index or 0)


def _batches(indices: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(indices), batch_size):
        yield indices[start : start + batch_size]


def _check_pool(pool: tuple[int, int] | None, shape: tuple[int, ...]) -> None:
    if pool is None:
        return
    if len(shape) < 2 or len(pool) != 2 or min(pool) < 1:
        raise ValueError(f"pool {pool} must be two positive sizes for samples with two spatial axes")
    if shape[-2] % pool[0] or shape[-1] % pool[1]:
        raise ValueError(
            f"sum pooling {shape[-2]}x{shape[-1]} samples to {pool[0]}x{pool[1]} needs sizes that divide them"
        )


def _check_model_takes(model: nn.Module, sample: torch.Tensor) -> None:
    """Refuse a model in training mode, or one that fails on ``sample`` (sample 0), before any batch: then
    an error while explaining a batch is no mismatch of model and data.
    """
    check_eval_mode(model)
    parameter = next(model.parameters(), None)
    device = torch.device("cpu") if parameter is None else parameter.device
    try:
        with torch.no_grad():
            model(sample.float()[None].to(device))
    except RuntimeError as error:
        message = " ".join(str(error).split())
        raise ValueError(
            f"the model fails on samples of shape {tuple(sample.shape)} (sample 0): {message}"
        ) from None


def attribute_dataset(
    dataset: Dataset,
    model: nn.Module,
    out: str | Path,
    *,
    composite: Composite | None = None,
    method: ExplainerFactory | None = None,
    description: Mapping[str, Any] | None = None,
    batch_size: int = 64,
    dtype: str = "float16",
    pool: tuple[int, int] | None = None,
    sum_channels: bool = False,
    target: str = "prediction",
    shard: tuple[int, int] = (0, 1),
    device: str = "cpu",
    ray: bool | str = False,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Explain every sample of ``dataset`` (or of one shard of it) into the store ``out``.

    Started again after an interruption (a crash or ``kill -9`` included) with the same arguments, it
    continues after the last batch written (each is written once the next one is computed, compressed
    meanwhile: see :class:`StoreWriter`). A store written with other parameters, another model (by
    :func:`model_fingerprint`) or other data (by :func:`dataset_fingerprint`) is refused.

    Parameters
    ----------
    dataset:
        Map-style data set of ``(x, label)`` pairs; ``x`` a float tensor, ``label`` an int (-1 if unknown).
    model:
        The model to explain, in evaluation mode.
    out:
        The store's file (HDF5).
    composite:
        The LRP composite; :class:`~relprop.composites.EpsilonPlusFlat` by default.
    method:
        Instead of LRP, another explainer, built from the model by this callable (see
        :class:`Attributor`), e.g. ``relprop.methods.Gradient`` or
        ``functools.partial(relprop.methods.IntegratedGradients, steps=32)``.
    description:
        How the run is described in the store and recognised when resumed: ``model``, ``dataset``,
        ``preprocessing``, ... (the command line passes its arguments). By default the class names of the
        model and data set. The method is always described by relprop: ``"lrp"`` and the composite's
        ``repr``, which names every parameter (:mod:`relprop.describe`), or the other explainer's ``repr``.
    batch_size:
        Samples per batch.
    dtype, pool, sum_channels, target, device:
        See :class:`Attributor`.
    shard:
        ``(i, n)``: compute only shard ``i`` of ``n`` (see :func:`shard_indices`) into its own store.
    ray:
        ``False`` to compute in this process; ``True`` to compute on Ray (``ray.init()``'s default
        cluster, or the one already initialised), or the address of a Ray cluster.
    workers:
        Ray workers (model replicas); by default one per CPU (per GPU with ``device="cuda"``) of the cluster.
    progress:
        Show a progress bar on stderr.

    Returns
    -------
    pathlib.Path
        ``out``, complete; read it with :func:`relprop.store.open`.
    """
    method, explained_by = _method_and_description(model, composite, method)
    _check_run_arguments(batch_size, dtype, target, device, ray)
    if len(dataset) == 0:
        raise ValueError("the data set is empty")
    indices = shard_indices(len(dataset), shard)
    first = torch.as_tensor(dataset[0][0])
    sample_shape = tuple(first.shape)
    _check_pool(pool, sample_shape)
    _check_model_takes(model, first)
    params = _run_params(
        dataset, model, description, explained_by, shard, sample_shape, dtype, pool, sum_channels, target
    )
    arguments = (dataset, model, method, sample_shape, dtype, pool, sum_channels, target, device)
    out = Path(out)
    with StoreWriter(out, params, len(indices)) as writer:
        batches = _batches(indices[writer.done :], batch_size)
        bar = tqdm(
            total=len(indices), initial=writer.done, unit="sample", desc=out.name, file=sys.stderr,
            disable=not progress, smoothing=0.1,
        )  # fmt: skip
        with bar:
            if ray is False:
                attributor = Attributor(*arguments)
                for batch in batches:
                    writer.append(attributor.compute(batch))
                    bar.update(len(batch))
            else:
                _run_on_ray(None if ray is True else ray, workers, device, arguments, batches, writer, bar)
    return out


def _run_params(
    dataset: Dataset,
    model: nn.Module,
    description: Mapping[str, Any] | None,
    explained_by: Mapping[str, str],
    shard: tuple[int, int],
    sample_shape: tuple[int, ...],
    dtype: str,
    pool: tuple[int, int] | None,
    sum_channels: bool,
    target: str,
) -> dict[str, Any]:
    """The parameters the store records, by which a resumed run recognises its store: the description, the
    explainer, the fingerprints of model and data, and the arguments that shape the rows."""
    return {
        "model": type(model).__qualname__,
        "dataset": type(dataset).__qualname__,
        **(description or {}),
        **explained_by,
        "model_fingerprint": model_fingerprint(model),
        "dataset_fingerprint": dataset_fingerprint(dataset),
        "dataset_size": len(dataset),
        "sample_shape": list(sample_shape),
        "dtype": dtype,
        "pool": None if pool is None else list(pool),
        "sum_channels": sum_channels,
        "target": target,
        "shard": f"{shard[0]}/{shard[1]}",
        "relprop_version": _version(),
    }


def _method_and_description(
    model: nn.Module, composite: Composite | None, method: ExplainerFactory | None
) -> tuple[Composite | ExplainerFactory, dict[str, str]]:
    """The explainer :class:`Attributor` builds (the composite, :class:`~relprop.composites.EpsilonPlusFlat`
    by default, or the other method), and how the store describes it: ``"lrp"`` with the composite's
    ``repr`` (its parameters, nested rules and bounds), or the other explainer's ``repr``."""
    if composite is not None and method is not None:
        raise ValueError("pass a composite (to explain by LRP) or another method, not both")
    if method is not None:
        return method, {"method": repr(_make_explainer(model, method))}
    method = EpsilonPlusFlat() if composite is None else composite
    return method, {"method": "lrp", "composite": repr(method)}


def _check_run_arguments(batch_size: int, dtype: str, target: str, device: str, ray: bool | str) -> None:
    """Refuse a batch size below 1, an unknown dtype or target, or a device this process cannot use
    (Ray workers check the device where they run)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    if target not in _TARGETS:
        raise ValueError(f"target must be one of {_TARGETS}, got {target!r}")
    parse_device(device, available=ray is False)


def _version() -> str:
    from relprop import __version__

    return __version__


def _run_on_ray(address, workers, device, arguments, batches, writer: StoreWriter, bar) -> None:
    try:
        import ray
    except ImportError as error:
        raise ImportError(f"computing on a Ray cluster needs Ray: {install_hint('ray')}") from error
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    gpus = 1 if str(device).startswith("cuda") else 0
    actors = []
    try:
        if gpus and not ray.cluster_resources().get("GPU"):
            raise ValueError(f"device {device!r} needs GPUs, and the Ray cluster has none")
        if workers is None:
            workers = max(1, int(ray.available_resources().get("GPU" if gpus else "CPU", 1)))
        remote = ray.remote(num_cpus=0 if gpus else 1, num_gpus=gpus, max_restarts=-1, max_task_retries=-1)
        worker_class = remote(Attributor)
        shared = [ray.put(argument) for argument in arguments[:3]]
        actors = [worker_class.remote(*shared, *arguments[3:]) for _ in range(workers)]
        pending: deque = deque()

        def write_oldest() -> None:
            batch, result = pending.popleft()
            try:
                writer.append(ray.get(result))
            except ray.exceptions.RayTaskError as error:
                raise error.cause from None
            bar.update(len(batch))

        for number, batch in enumerate(batches):
            pending.append((batch, actors[number % workers].compute.remote(batch)))
            if len(pending) >= 2 * workers:
                write_oldest()
        while pending:
            write_oldest()
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
