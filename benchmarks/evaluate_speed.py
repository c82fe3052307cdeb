"""Speed of relprop.evaluate.region_perturbation against quantus.RegionPerturbation on the same curves.

Both compute the MoRF curve f(x) - f(x_k), k = 1..L, for the same model, inputs, attributions, patch size,
number of steps and constant replacement; the script checks that the curves agree and prints both times
and their ratio. Quantus runs one forward pass per step over the batch; relprop batches all B * L
perturbed images (``--batch-size`` images per forward pass).

    python benchmarks/evaluate_speed.py [--samples 16] [--size 28] [--patch 2] [--steps 100] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from relprop.evaluate import region_perturbation


def mlp(channels: int, size: int, classes: int = 10) -> nn.Module:
    """A one-hidden-layer MLP with random weights (cheap: per-step overhead dominates)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(channels * size**2, 100), nn.ReLU(), nn.Linear(100, classes)
    ).eval()


def lenet(channels: int, size: int, classes: int = 10) -> nn.Module:
    """A LeNet-like CNN with random weights (costly: the forward passes dominate)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(channels, 16, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * (size // 4) ** 2, 128),
        nn.ReLU(),
        nn.Linear(128, classes),
    ).eval()


def best_of(repeats: int, run) -> tuple[float, object]:
    """Smallest wall time over ``repeats`` runs, and the last result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def compare(model: nn.Module, args: argparse.Namespace) -> tuple[float, float, float]:
    """Best-of-``repeats`` times of relprop and Quantus, and the largest curve difference."""
    import quantus

    device = torch.device(args.device)
    model = model.to(device)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(args.samples, args.channels, args.size, args.size, generator=generator)
    attribution = torch.randn(x.shape, generator=generator)
    with torch.no_grad():
        target = model(x.to(device)).argmax(1).cpu()

    def ours():
        result = region_perturbation(
            model,
            x.to(device),
            attribution.to(device),
            target.to(device),
            patch_size=args.patch,
            steps=args.steps,
            perturbation=0.0,
            batch_size=args.batch_size,
        )
        return result.curve[:, 1:].cpu().numpy()  # the copy to the CPU synchronizes a GPU

    metric = quantus.RegionPerturbation(
        patch_size=args.patch,
        order="morf",
        regions_evaluation=args.steps,
        perturb_baseline=0.0,
        normalise=False,
        disable_warnings=True,
    )

    def theirs():
        curves = metric(
            model=model,
            x_batch=x.numpy(),
            y_batch=target.numpy(),
            a_batch=attribution.numpy(),
            softmax=False,
            device=str(device),
            batch_size=args.samples,
        )
        return np.array(curves)

    ours(), theirs()  # warm-up
    time_ours, curves_ours = best_of(args.repeats, ours)
    time_theirs, curves_theirs = best_of(args.repeats, theirs)
    return time_ours, time_theirs, float(np.abs(curves_ours - curves_theirs).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--patch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    import quantus

    print(
        f"{args.samples} images {args.channels}x{args.size}x{args.size}, patch {args.patch}, "
        f"{args.steps} steps, device {args.device}, torch threads {torch.get_num_threads()}, "
        f"quantus {quantus.__version__}"
    )
    print(f"{'model':8} {'relprop s':>10} {'quantus s':>10} {'speed-up':>9} {'max |diff|':>11}")
    for name, make in (("mlp", mlp), ("lenet", lenet)):
        time_ours, time_theirs, difference = compare(make(args.channels, args.size), args)
        ratio = time_theirs / time_ours
        print(f"{name:8} {time_ours:10.3f} {time_theirs:10.3f} {ratio:8.1f}x {difference:11.1e}")


if __name__ == "__main__":
    main()
