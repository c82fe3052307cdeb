"""How fast and how big: attributing a synthetic data set of small images into a store.

First, the store's overhead, measured side by side in this process: a bare loop of the same explainer
(``relprop.LRP`` with the store's default composite) over the same batches, results discarded, against
``relprop.store.attribute_dataset`` into an HDF5 store (loading, checks, the model's output, conversion,
compression, crash-safe writes). The two alternate for ``--rounds`` rounds, so that a slow spell of a
shared machine hits both; the ratio of the median times is printed (target: within 1.1).

Then each measurement in a fresh process (so that peak memory is its own), as a table:

* ``plain loop``: as above;
* ``store, 1 process``: the store at two data-set sizes, to show that peak memory does not grow with them;
* ``store, Ray 2 workers``: the same on a local Ray with 2 worker processes (peak memory of the driver).

The data set makes each 1 x 28 x 28 image from its index, so it occupies no memory itself.

    python benchmarks/store_scale.py --sizes 20000 40000
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset


class Synthetic(Dataset):
    """Image ``i``: blobs at random places, drawn from a generator seeded with ``i``; label ``i % 10``."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        rng = np.random.default_rng(index)
        image = rng.random((1, 28, 28), dtype=np.float32) * 0.1
        for row, col in rng.integers(2, 26, (3, 2)):
            image[0, row - 2 : row + 3, col - 2 : col + 3] += 1.0
        return torch.from_numpy(image), index % 10


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    ).eval()  # fmt: skip


def bare_loop(dataset: Dataset, model: nn.Module, batch_size: int) -> None:
    """The store's work without the store: the same batches, loaded the same way, explained by LRP."""
    from relprop import LRP

    explainer = LRP(model)
    for first in range(0, len(dataset), batch_size):
        x = torch.stack([dataset[i][0] for i in range(first, min(len(dataset), first + batch_size))])
        explainer(x)


def overhead(size: int, batch_size: int, rounds: int, directory: Path) -> None:
    """Print the median time of the bare loop and of the store, alternating, and their ratio."""
    from relprop import store

    dataset, model = Synthetic(size), small_cnn()
    bare_loop(Synthetic(batch_size), model, batch_size)  # warm-up: tracing, allocator
    times: dict[str, list[float]] = {"bare loop": [], "store": []}
    for number in range(rounds):
        start = time.perf_counter()
        bare_loop(dataset, model, batch_size)
        times["bare loop"].append(time.perf_counter() - start)
        start = time.perf_counter()
        out = directory / f"overhead-{number}.h5"
        store.attribute_dataset(dataset, model, out, batch_size=batch_size, progress=False)
        times["store"].append(time.perf_counter() - start)
        out.unlink()
    median = {name: statistics.median(values) for name, values in times.items()}
    threads = torch.get_num_threads()
    print(f"{size} samples, batches of {batch_size}, {rounds} alternating rounds, {threads} threads")
    for name, values in times.items():
        spread = f"{min(values):.2f} to {max(values):.2f} s"
        print(f"  {name:<10} median {median[name]:6.2f} s ({size / median[name]:5.0f} samples/s; {spread})")
    print(f"  store / bare loop: {median['store'] / median['bare loop']:.3f}")


def measure(mode: str, size: int, batch_size: int, directory: Path) -> dict:
    from relprop import store

    dataset, model = Synthetic(size), small_cnn()
    out = directory / f"{mode}-{size}.h5"
    start = time.perf_counter()
    if mode == "plain":
        bare_loop(dataset, model, batch_size)
    else:
        ray = mode == "ray"
        if ray:
            import ray as ray_module

            ray_module.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
            start = time.perf_counter()  # not counting Ray's start-up
        store.attribute_dataset(
            dataset, model, out, batch_size=batch_size, ray=ray, workers=2, progress=False
        )
    seconds = time.perf_counter() - start
    return {
        "mode": mode,
        "size": size,
        "seconds": seconds,
        "samples_per_s": size / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "store_mb": out.stat().st_size / 2**20 if out.exists() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs=2, default=(20000, 40000))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--overhead-size", type=int, default=5000, help="samples of the side-by-side runs")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--run", nargs=2, metavar=("MODE", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--directory", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(measure(args.run[0], int(args.run[1]), args.batch_size, args.directory)))
        return
    with tempfile.TemporaryDirectory() as directory:
        overhead(args.overhead_size, args.batch_size, args.rounds, Path(directory))
    print()
    small, large = args.sizes
    plan = [("plain", small), ("store", small), ("store", large), ("ray", small)]
    print(
        f"{'mode':<22}{'samples':>9}{'samples/s':>11}{'peak RSS MB':>13}{'store MB':>10}{'bytes/sample':>14}"
    )
    with tempfile.TemporaryDirectory() as directory:
        for mode, size in plan:
            options = ["--batch-size", str(args.batch_size), "--directory", directory]
            command = [sys.executable, __file__, "--run", mode, str(size), *options]
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            name = {"plain": "plain loop", "store": "store, 1 process", "ray": "store, Ray 2 workers"}[mode]
            stored = result["store_mb"]
            print(
                f"{name:<22}{size:>9}{result['samples_per_s']:>11.0f}{result['peak_rss_mb']:>13.0f}"
                + (f"{stored:>10.1f}{stored * 2**20 / size:>14.0f}" if stored else f"{'-':>10}{'-':>14}")
            )


if __name__ == "__main__":
    main()
