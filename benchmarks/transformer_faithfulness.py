r"""How faithful are explanations of a vision transformer? Patch perturbation ABPC on a ViT trained on digits.

A small ViT (torchvision's ``VisionTransformer``: 32 x 32 images in 4 x 4 patches, 4 layers, 4 heads, width
64, MLP 128, one input channel) is trained here on scikit-learn's digits (8 x 8, upsampled bilinearly to
32 x 32, so that one patch is one pixel of the original digit; standardized with the training set's mean and
standard deviation), 80 % for training and 20 % held out. On held-out digits, each method explains the
predicted class, and region perturbation (:func:`relprop.evaluate.region_perturbation`) removes the ViT's
patches (``patch_size`` = the ViT's patch size, the grid of its tokens) in the order of their attribution,
most relevant first (MoRF) and least relevant first (LeRF). A removed patch takes the training set's mean
pixel value (mean replacement: 0 after standardization). With :math:`f(x^{(k)})` the predicted logit after
:math:`k` removals, the area between the perturbation curves is

.. math::

    \mathrm{ABPC} = \frac{1}{L+1} \sum_{k=0}^{L}
                    \big(f(x^{(k)}_{\mathrm{LeRF}}) - f(x^{(k)}_{\mathrm{MoRF}})\big)
                  = \mathrm{AOPC}_{\mathrm{MoRF}} - \mathrm{AOPC}_{\mathrm{LeRF}},

per image (larger is better: the method tells the evidence from the rest), averaged over the images. The whole
experiment (training included) is repeated for three training seeds; the table gives the mean and the standard
error over the seeds.

The methods: LRP with ``AttnLRP``, ``CPLRP`` and ``CPLRPGamma(gamma=0.25)``, gradient x input, integrated
gradients (32 points, from the mean image, 0 after standardization, which is also what removed patches
become), attention rollout (the class token's row; it ignores the class) and ``random``, a uniform random
attribution per image (its expected ABPC is 0). Integrated gradients is complete with respect to the mean
image, the very image that MoRF and LeRF move towards, which may favour it here. The AttnLRP paper (Achtibat
et al. 2024) reports AttnLRP >= CP-LRP > gradient x input on its benchmarks; this script reports what it
measures::

    python benchmarks/transformer_faithfulness.py            # about 3 minutes on 2 idle CPU cores
    python benchmarks/transformer_faithfulness.py --quick    # a smoke run of a few seconds
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from _seeds import log, mean_and_error
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor, nn
from torchvision.models import VisionTransformer

from relprop import LRP, composites
from relprop.evaluate import region_perturbation
from relprop.methods import AttentionRollout, InputXGradient, IntegratedGradients

RANDOM = "random"
PATCH = 4
MEAN = 0.0  # the training set's mean pixel value after standardization: what a removed patch becomes


@dataclass
class Digits:
    """32 x 32 digits standardized with the training set's mean and standard deviation, split 80 / 20
    (stratified, the same split for every seed)."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def digits() -> Digits:
    data = load_digits()
    x = F.interpolate(
        torch.tensor(data.images / 16.0, dtype=torch.float32)[:, None], size=32, mode="bilinear"
    )
    y = torch.tensor(data.target)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    mean, std = x_train.mean(), x_train.std()
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    return Digits(x_train, y_train, x_test, y_test)


def vision_transformer(seed: int) -> VisionTransformer:
    """torchvision's ViT for one-channel 32 x 32 images: its patch embedding takes one channel, not three."""
    torch.manual_seed(seed)
    model = VisionTransformer(
        image_size=32, patch_size=PATCH, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=10
    )
    model.conv_proj = nn.Conv2d(1, 64, PATCH, stride=PATCH)
    nn.init.trunc_normal_(model.conv_proj.weight, std=math.sqrt(1 / (PATCH * PATCH)))  # torchvision's init
    nn.init.zeros_(model.conv_proj.bias)
    return model


def train(model: nn.Module, data: Digits, epochs: int, seed: int) -> float:
    """AdamW with a one-cycle learning rate, batches of 64; returns the test accuracy."""
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    batches = math.ceil(len(data.x_train) / 64)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=epochs * batches)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(data.x_train)).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(data.x_train[batch]), data.y_train[batch]).backward()
            optimizer.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        return (model(data.x_test).argmax(dim=1) == data.y_test).double().mean().item()


def explainers(model: nn.Module, ig_steps: int) -> dict:
    """The compared methods by name; ``random`` is ``None`` (a uniform random attribution)."""
    return {
        "AttnLRP": LRP(model, composite=composites.AttnLRP()),
        "CP-LRP": LRP(model, composite=composites.CPLRP()),
        "CP-LRP gamma=0.25": LRP(model, composite=composites.CPLRPGamma(gamma=0.25)),
        "gradient x input": InputXGradient(model),
        "integrated gradients": IntegratedGradients(model, baseline=0.0, steps=ig_steps),
        "attention rollout": AttentionRollout(model),
        RANDOM: None,
    }


def abpc(model: nn.Module, x: Tensor, attribution: Tensor, target: Tensor, steps: int | None):
    """ABPC per image, and the MoRF and LeRF AOPCs it is the difference of (removed patches take ``MEAN``)."""
    curves = {
        order: region_perturbation(
            model, x, attribution, target, patch_size=PATCH, steps=steps, order=order, perturbation=MEAN
        )
        for order in ("morf", "lerf")
    }
    morf, lerf = curves["morf"], curves["lerf"]
    return (lerf.scores - morf.scores).mean(dim=1), morf.aopc, lerf.aopc


def one_seed(seed: int, data: Digits, args: argparse.Namespace) -> tuple[float, dict[str, Tensor]]:
    """Train with ``seed``, explain the first ``--images`` held-out digits; per method (ABPC, AOPC MoRF,
    AOPC LeRF), each the mean over the images."""
    start = time.perf_counter()
    model = vision_transformer(seed)
    accuracy = train(model, data, args.epochs, seed)
    log(f"seed {seed}: test accuracy {accuracy:.3f}, trained in {time.perf_counter() - start:.0f} s")
    x = data.x_test[: args.images]
    with torch.no_grad():
        target = model(x).argmax(dim=1)
    results = {}
    for name, explainer in explainers(model, args.ig_steps).items():
        if explainer is None:
            attribution = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))
        else:
            attribution = explainer(x, target)
        scores = abpc(model, x, attribution.detach(), target, args.steps)
        results[name] = torch.stack([s.mean() for s in scores])
        log(f"seed {seed}: {name} done at {time.perf_counter() - start:.0f} s")
    return accuracy, results


def table(per_seed: list[dict[str, Tensor]]) -> str:
    """Markdown table: per method the mean and standard error over the seeds of ABPC and both AOPCs, and the
    ABPC of each seed (the methods share each seed's model and images, so seeds compare them pairwise)."""
    lines = [
        "| method | ABPC | AOPC MoRF | AOPC LeRF | ABPC per seed |",
        "|---|---|---|---|---|",
    ]
    names = sorted(per_seed[0], key=lambda n: -sum(r[n][0].item() for r in per_seed))
    for name in names:
        values = torch.stack([r[name] for r in per_seed]).double()  # (seeds, 3)
        cells = " | ".join(mean_and_error(values.numpy()))
        seeds = " / ".join(f"{v:.2f}" for v in values[:, 0].tolist())
        lines.append(f"| {name} | {cells} | {seeds} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3, help="training seeds 0, 1, ... (default 3)")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs per seed (default 20)")
    parser.add_argument("--images", type=int, default=100, help="held-out digits explained (default 100)")
    parser.add_argument("--steps", type=int, default=None, help="patches removed (default all 64)")
    parser.add_argument("--ig-steps", type=int, default=32, help="integrated-gradient points (default 32)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, 1 epoch, 4 digits, 8 steps")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.epochs, args.images, args.steps, args.ig_steps = 2, 1, 4, 8, 4
    start = time.perf_counter()
    data = digits()
    accuracies, per_seed = [], []
    for seed in range(args.seeds):
        accuracy, results = one_seed(seed, data, args)
        accuracies.append(accuracy)
        per_seed.append(results)
    steps = 64 if args.steps is None else args.steps
    print(
        f"ViT (torchvision VisionTransformer, 32x32, patch {PATCH}, 4 layers, 4 heads, width 64) on digits, "
        f"{len(data.x_train)} training / {len(data.x_test)} held-out images, {args.epochs} epochs; test "
        f"accuracy per seed: {', '.join(f'{a:.3f}' for a in accuracies)}"
    )
    print(
        f"{args.images} held-out digits, predicted class; {PATCH}x{PATCH} patches, {steps} of 64 removed, "
        f"mean replacement (the training mean, {MEAN} after standardization); integrated gradients from it, "
        f"{args.ig_steps} points\n"
    )
    print(f"ABPC = AOPC MoRF - AOPC LeRF (larger is better), mean ± standard error over {args.seeds} seeds:")
    print()
    print(table(per_seed))
    print(f"\ntook {time.perf_counter() - start:.0f} s ({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
