"""Speed of concept heatmaps: many concepts in one batched call against one call each, and the plain heatmap.

vgg16 with random weights (``torchvision.models.vgg16(weights=None)``), one sample, the heatmaps of
``--concepts`` channels of one layer. Each round times, interleaved: the plain heatmap, one batched
:func:`relprop.concepts.conditional_heatmaps` call with all concepts, and a loop of one call per concept;
the ratios are medians over the rounds of the ratio within a round. Both concept calls use
``exclude_parallel=False`` (vgg16 has no parallel branch, so the heatmaps are the same, and each concept
then costs one pass, not two).

    python benchmarks/concepts.py                        # 64 concepts of features.28, 224x224
    python benchmarks/concepts.py --size 64 --rounds 3   # a quick run on a CPU
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

from relprop import LRP, concepts


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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.vgg16(weights=None).eval().to(args.device)
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
    for key, seconds in median.items():
        low, high = min(r[key] for r in rounds), max(r[key] for r in rounds)
        print(f"  {key:8s} {seconds:8.3f} s (median; range {low:.3f}..{high:.3f})")
    print(
        f"  loop / batched: {statistics.median(speedup):.2f}x ({min(speedup):.2f}..{max(speedup):.2f}), "
        f"batched / plain: {statistics.median(cost):.1f}x; largest batched-vs-loop difference "
        f"{difference:.1e} of the largest value"
    )


if __name__ == "__main__":
    main()
