"""Speed of concepts: batched heatmaps against one call each, RelMax against plain data-set attribution.

Heatmaps (the default): vgg16 with random weights (``torchvision.models.vgg16(weights=None)``), one
sample, the heatmaps of ``--concepts`` channels of one layer. Each round times, interleaved: the plain
heatmap, one batched :func:`relprop.concepts.conditional_heatmaps` call with all concepts, and a loop of
one call per concept; the ratios are medians over the rounds of the ratio within a round. Both concept
calls use ``exclude_parallel=False`` (vgg16 has no parallel branch, so the heatmaps are the same, and each
concept then costs one pass, not two).

RelMax (``--relmax N``): the same model over ``N`` random samples, :func:`relprop.concepts.relmax_dataset`
(relevance and activation of every channel of ``--layer``) against :func:`relprop.store.attribute_dataset`
(the plain heatmaps), both in this process into a fresh store, timed alternately ``--rounds`` times.

    python benchmarks/concepts.py                        # 64 concepts of features.28, 224x224
    python benchmarks/concepts.py --size 64 --rounds 3   # a quick run on a CPU
    python benchmarks/concepts.py --relmax 10000 --size 224

At 224x224 the stacked relevance of vgg16's first layers takes hundreds of MB per tensor, which glibc maps
fresh from the kernel at each allocation; an allocator that keeps freed memory shows the engine's own cost
(the environment's allocator settings are printed with the results):

    LD_PRELOAD=libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1,retain:true \
        python benchmarks/concepts.py --size 224 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

from relprop import LRP, concepts, store
from relprop.data import ArrayDataset


def timed(call) -> float:
    start = time.perf_counter()
    call()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="features.28")
    parser.add_argument("--concepts", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--relmax", type=int, default=0, help="time RelMax over this many samples instead")
    parser.add_argument("--batch-size", type=int, default=64, help="samples per batch of the RelMax runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.vgg16(weights=None).eval().to(args.device)
    if args.relmax:
        relmax(model, args)
        return
    explainer = LRP(model)
    x = torch.randn(1, 3, args.size, args.size, device=args.device)
    conditions = [{args.layer: c} for c in range(args.concepts)]

    def batched():
        return concepts.conditional_heatmaps(explainer, x, conditions, exclude_parallel=False).heatmaps

    def loop():
        return [concepts.conditional_heatmaps(explainer, x, [c], exclude_parallel=False) for c in conditions]

    together = batched()[0]
    alone = torch.cat([r.heatmaps[0] for r in loop()])
    difference = float((together - alone).abs().max() / alone.abs().max())
    rounds = []
    for _ in range(args.rounds):
        rounds.append({"plain": timed(lambda: explainer(x)), "batched": timed(batched), "loop": timed(loop)})
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    speedup = [r["loop"] / r["batched"] for r in rounds]
    cost = [r["batched"] / r["plain"] for r in rounds]
    print(
        f"vgg16 (random weights), 1 sample {args.size}x{args.size}, {args.concepts} concepts of "
        f"{args.layer}, {args.device}, {args.threads} thread(s), {args.rounds} rounds"
    )
    allocator = {k: v for k, v in os.environ.items() if k == "LD_PRELOAD" or k.startswith("MALLOC_")}
    print(f"  allocator settings: {allocator or 'none (the C library default)'}")
    for key, seconds in median.items():
        low, high = min(r[key] for r in rounds), max(r[key] for r in rounds)
        print(f"  {key:8s} {seconds:8.3f} s (median; range {low:.3f}..{high:.3f})")
    print(
        f"  loop / batched: {statistics.median(speedup):.2f}x ({min(speedup):.2f}..{max(speedup):.2f}), "
        f"batched / plain: {statistics.median(cost):.1f}x; largest batched-vs-loop difference "
        f"{difference:.1e} of the largest value"
    )


def relmax(model, args) -> None:
    """RelMax over ``args.relmax`` samples against the plain attribution of the same samples."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.relmax, 3, args.size, args.size), dtype=np.float32)
    dataset = ArrayDataset(x, rng.integers(0, 1000, args.relmax))
    common = {"batch_size": args.batch_size, "device": args.device, "progress": False}
    rounds = []
    with tempfile.TemporaryDirectory() as folder:
        for number in range(args.rounds):
            plain, found = Path(folder, f"plain{number}.h5"), Path(folder, f"relmax{number}.h5")
            seconds = {"plain": timed(lambda p=plain: store.attribute_dataset(dataset, model, p, **common))}
            seconds["relmax"] = timed(
                lambda p=found: concepts.relmax_dataset(dataset, model, p, [args.layer], **common)
            )
            rounds.append(seconds)
    ratio = [r["relmax"] / r["plain"] for r in rounds]
    print(
        f"vgg16 (random weights), {args.relmax} samples {args.size}x{args.size}, batch {args.batch_size}, "
        f"RelMax of {args.layer}, {args.device}, {args.threads} thread(s), {args.rounds} rounds"
    )
    for key in ("plain", "relmax"):
        rates = [args.relmax / r[key] for r in rounds]
        low, high = min(rates), max(rates)
        print(f"  {key:7s} {statistics.median(rates):8.1f} samples/s (median; {low:.1f}..{high:.1f})")
    print(f"  relmax time / plain time: {statistics.median(ratio):.2f}x ({min(ratio):.2f}..{max(ratio):.2f})")


if __name__ == "__main__":
    main()
