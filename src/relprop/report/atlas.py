"""The concept atlas: per layer, the most relevant concepts of a class with their reference samples, and one
sample's concept decomposition, as one self-contained HTML page (``concepts.html``).

The concepts are channels (Concept Relevance Propagation, see :mod:`relprop.concepts`): ranked by their mean
relevance share for the class (:func:`~relprop.concepts.concept_importance` with ``abs_norm``) over the
class's samples, each shown with its RelMax references (:func:`~relprop.concepts.top_references`) cut to the
receptive field of its most relevant position, with its conditional heatmap there
(:func:`~relprop.concepts.reference_crops`). The page holds no script: the images are inline PNGs.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from relprop.concepts import Reference, concept_importance, conditional_heatmaps, reference_crops
from relprop.concepts import top_references as read_references
from relprop.concepts.relmax import _dtype_of
from relprop.lrp import LRP
from relprop.report._page import ATLAS_PAGE, STYLE
from relprop.report.html import _input_rgb, _png, _resized
from relprop.viz import heatmap

__all__ = [
    "AtlasConcept",
    "ConceptAtlas",
    "Decomposition",
    "StoreAtlas",
    "concept_atlas",
    "store_atlas",
    "write_atlas",
]

_IMAGE = 72  # pixels of each shown image


@dataclass
class AtlasConcept:
    """One channel of a layer: its mean relevance share for the class and its reference samples."""

    channel: int
    share: float
    references: list[Reference]


@dataclass
class Decomposition:
    """One sample at one layer: its input, heatmap, and its most relevant channels with their relevance
    shares and conditional heatmaps ``(K, ...)``."""

    index: int
    layer: str
    sample: Tensor
    heatmap: Tensor
    channels: list[int]
    shares: list[float]
    heatmaps: Tensor


@dataclass
class ConceptAtlas:
    """For one class: per layer its most relevant concepts, and one sample's decomposition per layer."""

    class_index: int
    layers: dict[str, list[AtlasConcept]]
    decomposition: list[Decomposition]
    params: dict = field(default_factory=dict)


def concept_atlas(
    explainer: LRP,
    dataset: Dataset,
    relmax_store: str | Path,
    class_index: int,
    samples: Sequence[int],
    *,
    sample: int | None = None,
    top: int = 6,
    k: int = 6,
    batch_size: int = 64,
) -> ConceptAtlas:
    """Build the atlas of ``class_index`` for the layers of a :func:`~relprop.concepts.relmax_dataset` store.

    Parameters
    ----------
    explainer:
        The LRP explainer of the model the store was computed with.
    dataset:
        The store's data set (the indices of the store are its indices).
    relmax_store:
        A finished relevance maximization store over ``dataset``.
    class_index:
        The class whose concepts are shown; the relevance shares explain it.
    samples:
        The data-set indices over which the concepts' shares are averaged (e.g. the class's samples).
    sample:
        The data-set index of the sample to decompose; the first of ``samples`` by default.
    top:
        Concepts per layer, most relevant first.
    k:
        References per concept.
    batch_size:
        Samples per call of the explainer when averaging the shares.

    Raises
    ------
    ValueError
        If ``samples`` is empty, ``top`` or ``k`` is below 1, or the store is not a RelMax store.
    """
    from relprop.store import _file

    samples = [int(i) for i in samples]
    if not samples:
        raise ValueError(f"the atlas of class {class_index} needs samples to average over, got none")
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    references = read_references(relmax_store, k)
    with _file.AttributionStore(relmax_store) as run:
        by_label = run.params.get("target") == "label"
        params = {key: run.params[key] for key in ("dataset", "model") if key in run.params}
    dtype = _dtype_of(explainer)

    def batch(indices: Sequence[int]) -> Tensor:
        return torch.stack([torch.as_tensor(dataset[i][0]) for i in indices]).to(dtype)

    layers = {}
    for layer, found in references.items():
        total = None
        for first in range(0, len(samples), batch_size):
            part = concept_importance(
                explainer, batch(samples[first : first + batch_size]), layer, class_index, abs_norm=True
            ).sum(dim=0)
            total = part if total is None else total + part
        mean = total / len(samples)
        channels = mean.topk(min(top, len(mean))).indices.tolist()
        concepts = []
        for channel in channels:
            indices = found.by_relevance[channel][:k].tolist()
            target = torch.tensor([int(dataset[i][1]) for i in indices]) if by_label else None
            crops = reference_crops(explainer, dataset, found, channel, k=k, target=target)
            concepts.append(AtlasConcept(channel, float(mean[channel]), crops))
        layers[layer] = concepts
    chosen = samples[0] if sample is None else int(sample)
    x = batch([chosen])
    plain = explainer(x, class_index)[0]
    decomposition = []
    for layer in references:
        shares = concept_importance(explainer, x, layer, class_index, abs_norm=True)[0]
        channels = shares.topk(min(top, len(shares))).indices.tolist()
        result = conditional_heatmaps(explainer, x, [{layer: c} for c in channels], class_index)
        decomposition.append(
            Decomposition(
                chosen, layer, x[0], plain, channels, [float(shares[c]) for c in channels], result.heatmaps[0]
            )
        )
    return ConceptAtlas(class_index, layers, decomposition, params)


def write_atlas(atlas: ConceptAtlas, path: str | Path, *, title: str | None = None) -> Path:
    """Write the atlas as one HTML page (its folder is created) and return its path."""
    c = atlas.class_index
    title = title or f"Concept atlas: what the model sees for class {c}"
    meta = "".join(
        f"<span><b>{key}</b> {html.escape(str(value))}</span>" for key, value in atlas.params.items()
    )
    sections = [_layer_html(layer, concepts, c) for layer, concepts in atlas.layers.items()]
    sections.append(_decomposition_html(atlas.decomposition, c))
    page = ATLAS_PAGE.format(title=html.escape(title), style=STYLE, meta=meta, sections="".join(sections))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def _image(array: Tensor, kind: str, alt: str) -> str:
    values = array.detach().cpu().numpy()
    rgb = heatmap(values) if kind == "heatmap" else _input_rgb(values)
    scale = max(1, _IMAGE // max(rgb.shape[:2]))  # whole pixels, nearest: a crop stays sharp
    shown = _resized(rgb, (rgb.shape[0] * scale, rgb.shape[1] * scale))
    return f'<img class="{kind}" src="{_png(shown)}" alt="{html.escape(alt)}">'


def _layer_html(layer: str, concepts: list[AtlasConcept], c: int) -> str:
    cards = []
    for concept in concepts:
        figures = "".join(
            f'<figure class="reference" data-sample="{ref.index}">'
            f"{_image(ref.crop, 'input', f'sample {ref.index}')}"
            f"{_image(ref.heatmap, 'heatmap', f'heatmap of sample {ref.index}')}"
            f"<figcaption>{ref.index}</figcaption></figure>"
            for ref in concept.references
        )
        cards.append(
            f'<div class="concept" data-layer="{html.escape(layer)}" data-channel="{concept.channel}">'
            f'<h3>channel {concept.channel} <span class="share">{concept.share:.1%}</span></h3>'
            f'<div class="references">{figures}</div></div>'
        )
    return (
        f'<section class="panel wide layer" data-layer="{html.escape(layer)}">'
        f"<h2>Layer {html.escape(layer)}: "
        f'the most relevant concepts for class {c}</h2><p class="hint">Each channel with its mean share of '
        f"the relevance for class {c}, and its RelMax references: the samples in which it receives the most "
        "relevance, cut to where it sees them (top: the sample, bottom: the channel's conditional heatmap)."
        f"</p>{''.join(cards)}</section>"
    )


def _decomposition_html(decomposition: list[Decomposition], c: int) -> str:
    if not decomposition:
        return ""
    first = decomposition[0]
    head = (
        f'<div class="whole">{_image(first.sample, "input", "the sample")}'
        f"{_image(first.heatmap, 'heatmap', 'its heatmap')}</div>"
    )
    rows = []
    for part in decomposition:
        figures = "".join(
            f'<figure class="part" data-channel="{channel}">'
            f"{_image(part.heatmaps[k], 'heatmap', f'channel {channel}')}"
            f"<figcaption>channel {channel}: {share:.1%}</figcaption></figure>"
            for k, (channel, share) in enumerate(zip(part.channels, part.shares))
        )
        rows.append(
            f'<div class="decomposition" data-layer="{html.escape(part.layer)}"><h3>layer '
            f"{html.escape(part.layer)}</h3>{figures}</div>"
        )
    return (
        f'<section class="panel wide" id="decomposition"><h2>Sample {first.index}: its concept decomposition '
        f'for class {c}</h2><p class="hint">The sample, its heatmap, and per layer its most relevant '
        "channels with their share of the relevance and their conditional heatmaps.</p>"
        f"{head}{''.join(rows)}</section>"
    )


#: At most this many of the class's samples average the concepts' shares in :func:`store_atlas`.
STORE_ATLAS_SAMPLES = 256


@dataclass
class StoreAtlas:
    """What :func:`store_atlas` wrote: the RelMax store, the atlas page, and the class it shows."""

    relmax: Path
    page: Path
    class_index: int
    samples: int


def store_atlas(
    store: str | Path,
    out: str | Path,
    layers: Sequence[str],
    class_index: int | None = None,
    *,
    data: str | None = None,
    preprocessing: str | None = None,
    top: int = 6,
    k: int = 6,
    batch_size: int = 64,
    progress: bool = False,
) -> StoreAtlas:
    """RelMax over an attribution store's data set with its model, and the concept atlas of one class.

    The model is the one the store names (``params["model"]``, as :func:`relprop.models.loading.load_model`
    loads it), the data set the store's (:func:`relprop.store.load_store_dataset`, checked to be the one it
    was computed on), explained with :class:`~relprop.composites.EpsilonPlusFlat` (RelMax's default). The
    RelMax run goes to ``out/relmax.h5`` (resumed if interrupted), the atlas to ``out/concepts.html``.

    Parameters
    ----------
    store:
        A finished attribution store (:func:`relprop.store.attribute_dataset`, ``relprop attribute``).
    out:
        The folder for ``relmax.h5`` and ``concepts.html`` (created).
    layers:
        Module names of the model, e.g. ``["features.28"]``.
    class_index:
        The class to show; by default the one with the most samples (the smallest of ties). Its shares
        are averaged over the first :data:`STORE_ATLAS_SAMPLES` of the store's samples labelled with it
        (predicted as it, if the store has no labels); the first of them is decomposed.
    data, preprocessing:
        The data set instead of the store's, as :func:`relprop.store.load_store_dataset` takes them.
    top, k, batch_size:
        As for :func:`concept_atlas`; ``batch_size`` also for the RelMax run.
    progress:
        Show the RelMax run's progress bar.

    Raises
    ------
    ValueError
        If the store names no model that loads here, its data set does not load or is another, or the
        class has no samples in the store.
    """
    from relprop.composites import EpsilonPlusFlat
    from relprop.concepts import relmax_dataset
    from relprop.models.loading import load_model
    from relprop.store import load_store_dataset
    from relprop.store import open as open_store

    with open_store(store) as run:
        params = dict(run.params)
        labels, predictions, index = run.label[:], run.prediction[:], run.index[:]
    if "model" not in params:
        raise ValueError(f"{store} names no model (params['model']): it was not written by relprop attribute")
    model = load_model(str(params["model"]))
    dataset = load_store_dataset(params, data, preprocessing)
    by = labels if (labels >= 0).any() else predictions
    if class_index is None:
        class_index = int(np.bincount(by[by >= 0]).argmax())
    samples = index[by == class_index][:STORE_ATLAS_SAMPLES]
    if not len(samples):
        kind = "labelled" if by is labels else "predicted"
        raise ValueError(
            f"class {class_index} has no samples in {store} ({kind} classes: {sorted(set(by.tolist()))})"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    relmax = relmax_dataset(
        dataset, model, out / "relmax.h5", list(layers), batch_size=batch_size, progress=progress
    )
    atlas = concept_atlas(
        LRP(model, EpsilonPlusFlat()), dataset, relmax, class_index, samples.tolist(), top=top, k=k,
        batch_size=batch_size,
    )  # fmt: skip
    atlas.params = {key: params[key] for key in ("dataset", "model") if key in params}
    return StoreAtlas(relmax, write_atlas(atlas, out / "concepts.html"), class_index, len(samples))
