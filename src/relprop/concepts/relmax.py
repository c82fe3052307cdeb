"""Relevance maximization over a data set: for every channel of chosen layers, its reference samples.

The reference samples of a concept (Achtibat et al., Nature Machine Intelligence 5, 2023) are those in which
it receives the most relevance for the model's decision, rather than those that activate it most
(activation maximization); both are kept. The statistics of each sample are computed as a run of
:mod:`relprop.store` (resumable after a crash or ``kill -9``, shardable, on Ray), one row per sample, and
the top ``k`` are read from the finished store by :func:`top_references`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from relprop.composites import Composite, EpsilonPlusFlat
from relprop.concepts.attribute import (
    conditional_heatmaps,
    propagate_from,
    relevance_at,
    relevance_from_output,
)
from relprop.describe import describe_call
from relprop.lrp import LRP
from relprop.store import _file
from relprop.store.run import attribute_dataset
from relprop.targets import Target, target_weights

_READ_ROWS = 4096


class ChannelStatistics:
    """Per sample and channel of each layer: its relevance and its activation, ``(B, 2, C)``.

    Row 0 holds the relevance :math:`r_c = \\sum_p R_{\\ell, c p}` (summed over the positions ``p``, as
    :func:`~relprop.concepts.concept_importance`), row 1 the activation :math:`\\max_p a_{\\ell, c p}` (the
    largest over the positions, of the module's output in the model as it is); the layers' channels are
    concatenated in the order of ``layers``. An :class:`~relprop.explainer.Explainer` for
    :func:`relprop.store.attribute_dataset`.

    Parameters
    ----------
    model:
        The model, in evaluation mode.
    layers:
        Names of modules of ``model`` (called once each), e.g. ``["features.28"]``.
    composite:
        The LRP composite; :class:`~relprop.composites.EpsilonPlusFlat` by default.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], composite: Composite | None = None) -> None:
        modules = dict(model.named_modules())
        layers = tuple(layers)
        unknown = [name for name in layers if name not in modules or not name]
        if unknown or not layers:
            raise ValueError(
                f"relevance maximization takes names of the model's modules, whose outputs are the "
                f"activations: {'the model has no module ' + repr(unknown[0]) if unknown else 'none given'}"
            )
        self.model, self.layers = model, layers
        self.composite = EpsilonPlusFlat() if composite is None else composite
        self.explainer = LRP(model, self.composite)

    def __call__(self, x: Tensor, target: Target = None) -> Tensor:
        return self.propagate(x, lambda output: output * target_weights(output, target))

    def propagate(self, x: Tensor, output_relevance: Callable[[Tensor], Tensor]) -> Tensor:
        """The statistics when the output holds ``output_relevance(output)`` (as :meth:`relprop.LRP.propagate`
        takes it: the store passes the output on this way and needs no forward pass of its own)."""
        activations: dict[str, Tensor] = {}

        def keep(name: str, output: Tensor) -> None:  # reduced at once: an in-place operation may follow
            activations[name] = _positions(output.detach()).amax(dim=2)

        hooks = [
            self.model.get_submodule(name).register_forward_hook(
                lambda module, inputs, output, name=name: keep(name, output)
            )
            for name in self.layers
        ]
        try:
            with torch.no_grad():
                self.model(x)
        finally:
            for hook in hooks:
                hook.remove()
        relevance = relevance_from_output(self.explainer, x, self.layers, output_relevance)
        rows = [
            torch.stack([_positions(relevance[n]).sum(dim=2), activations[n]], dim=1) for n in self.layers
        ]
        return torch.cat(rows, dim=2)

    def __repr__(self) -> str:
        return describe_call(self, {"layers": list(self.layers), "composite": self.composite})

    def channels(self, x: Tensor) -> list[int]:
        """The number of channels of each layer, from one batch ``x``."""
        relevance = relevance_at(self.explainer, x, self.layers)
        return [int(relevance[name].shape[1]) for name in self.layers]


@dataclass
class References:
    """The top ``k`` samples of every channel of one layer: data-set indices ``(C, k)``, best first, and
    their relevance and activation (as :class:`ChannelStatistics` defines them)."""

    layer: str
    by_relevance: np.ndarray
    relevance: np.ndarray
    by_activation: np.ndarray
    activation: np.ndarray


def relmax_dataset(
    dataset: Dataset,
    model: nn.Module,
    out: str | Path,
    layers: Sequence[str],
    *,
    composite: Composite | None = None,
    batch_size: int = 64,
    target: str = "prediction",
    shard: tuple[int, int] = (0, 1),
    device: str = "cpu",
    ray: bool | str = False,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Compute the :class:`ChannelStatistics` of every sample of ``dataset`` into the store ``out``.

    A run of :func:`relprop.store.attribute_dataset` (whose parameters these are), stored in float32: it
    resumes after an interruption, computes one shard of ``n`` (merge them with :func:`relprop.store.merge`)
    or on Ray. Read the reference samples with :func:`top_references`.
    """
    layers = list(layers)
    statistics = ChannelStatistics(model, layers, composite)
    channels = statistics.channels(torch.as_tensor(dataset[0][0])[None].float())
    return attribute_dataset(
        dataset, model, out,
        method=functools.partial(ChannelStatistics, layers=tuple(layers), composite=statistics.composite),
        description={"concepts": "relmax", "layers": layers, "channels": channels},
        batch_size=batch_size, dtype="float32", target=target, shard=shard, device=device, ray=ray,
        workers=workers, progress=progress,
    )  # fmt: skip


def top_references(path: str | Path, k: int = 8) -> dict[str, References]:
    """The ``k`` samples of largest relevance, and of largest activation, of every channel of every layer of
    a finished :func:`relmax_dataset` store (or merged shards), read a few thousand rows at a time."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    with _file.AttributionStore(path) as run:
        if run.params.get("concepts") != "relmax":
            raise ValueError(f"{path} is not a relevance maximization store (written by relmax_dataset)")
        layers, channels = run.params["layers"], run.params["channels"]
        best = [_Top(min(k, len(run))), _Top(min(k, len(run)))]
        for start in range(0, len(run), _READ_ROWS):
            rows = torch.from_numpy(run.attribution[start : start + _READ_ROWS])
            indices = torch.from_numpy(run.index[start : start + _READ_ROWS])
            for measure, top in enumerate(best):
                top.update(rows[:, measure], indices)
    found, first = {}, 0
    for name, width in zip(layers, channels):
        part = slice(first, first + width)
        first += width
        found[name] = References(
            name, best[0].indices[part].numpy(), best[0].values[part].numpy(),
            best[1].indices[part].numpy(), best[1].values[part].numpy(),
        )  # fmt: skip
    return found


class _Top:
    """The ``k`` largest values of each column seen so far, ``(columns, k)``, with their sample indices."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.values: Tensor | None = None
        self.indices: Tensor | None = None

    def update(self, values: Tensor, indices: Tensor) -> None:
        values, indices = values.T, indices.expand(values.shape[1], -1)  # (columns, rows)
        if self.values is not None:
            values, indices = (
                torch.cat([self.values, values], dim=1),
                torch.cat([self.indices, indices], dim=1),
            )
        top = values.topk(min(self.k, values.shape[1]), dim=1)
        self.values, self.indices = top.values, indices.gather(1, top.indices)


def _positions(tensor: Tensor) -> Tensor:
    """``(B, C, positions)``: the dimensions after the channels flattened (one position for a dense layer)."""
    return tensor.reshape(tensor.shape[0], tensor.shape[1], -1)


@dataclass
class Reference:
    """One reference sample of a concept, cropped to where the concept saw it.

    Attributes
    ----------
    index:
        The sample's data-set index.
    box:
        ``(top, bottom, left, right)``, half-open pixel bounds of the crop in the sample.
    crop:
        The sample inside ``box``.
    heatmap:
        The concept's conditional heatmap of the sample inside ``box``.
    """

    index: int
    box: tuple[int, int, int, int]
    crop: Tensor
    heatmap: Tensor


def reference_crops(
    explainer: LRP,
    dataset: Dataset,
    references: References,
    channel: int,
    *,
    k: int | None = None,
    target: Target = None,
) -> list[Reference]:
    """The top ``k`` reference samples by relevance of ``channel`` of ``references.layer``, each cropped to
    the receptive field of the concept's most relevant position, with its conditional heatmap.

    The most relevant position :math:`p^*` is where the relevance of the channel at the layer, conditioned
    on the channel, is largest; the receptive field is where the relevance of that one neuron alone,
    :math:`R_{\\ell, c p^*}`, reaches the input (:func:`~relprop.concepts.propagate_from`), as its bounding
    box over the last two (spatial) dimensions. One batched call for the heatmaps, one for the fields.
    ``target`` is what the references explain, as for :class:`relprop.LRP` on the batch of them (the
    predicted class of each by default, as :func:`relmax_dataset`'s ``target="prediction"``).
    """
    layer = references.layer
    width = references.by_relevance.shape[0]
    if not 0 <= channel < width:
        raise ValueError(f"channel {channel} is out of range for layer {layer!r}, which has {width}")
    indices = references.by_relevance[channel][:k].tolist()
    x = torch.stack([torch.as_tensor(dataset[i][0]) for i in indices]).to(_dtype_of(explainer))
    result = conditional_heatmaps(explainer, x, [{layer: channel}], target, record=[layer])
    relevance = result.layers[layer][:, 0]
    flat = relevance.reshape(len(indices), -1)
    neuron = torch.zeros_like(flat)
    at = flat.argmax(dim=1, keepdim=True)
    neuron.scatter_(1, at, flat.gather(1, at))
    field = propagate_from(explainer, x, layer, neuron.reshape(relevance.shape)).abs()
    found = []
    for row, index in enumerate(indices):
        box = _bounding_box(field[row].reshape(-1, *field.shape[-2:]).sum(dim=0))
        top, bottom, left, right = box
        found.append(
            Reference(
                index,
                box,
                x[row, ..., top:bottom, left:right],
                result.heatmaps[row, 0, ..., top:bottom, left:right],
            )
        )
    return found


def _bounding_box(field: Tensor) -> tuple[int, int, int, int]:
    """Half-open bounds of the nonzero entries of a 2-D map; the whole map if it is all zero."""
    rows, cols = field.any(dim=1).nonzero().flatten(), field.any(dim=0).nonzero().flatten()
    if not len(rows):
        return 0, field.shape[0], 0, field.shape[1]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _dtype_of(explainer: LRP) -> torch.dtype:
    parameter = next(explainer.model.parameters(), None)
    return torch.get_default_dtype() if parameter is None else parameter.dtype
