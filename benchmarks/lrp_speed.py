"""Speed and memory of relprop's LRP against the plain gradient and zennit, measured side by side.

For each model, batch size and composite, the methods run interleaved in one process (forward, gradient,
relprop, zennit, again and again). Each ratio is the median over the rounds of the ratio within a round, so
that a machine whose speed drifts slows both sides of a ratio alike. Peak memory is measured in a fresh
subprocess per method (``--memory``; the peak resident set size above what the model and the input take, on
Linux, or ``torch.cuda.max_memory_allocated`` on a GPU).

    python benchmarks/lrp_speed.py                          # vgg16 and resnet50, batch 1 and 8, 224x224
    python benchmarks/lrp_speed.py --models resnet50 --batches 1 --repeats 3 --memory
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torchvision
from _memory import ENVIRONMENT, peak_mib
from zennit import composites as zennit_composites
from zennit.attribution import Gradient
from zennit.torchvision import ResNetCanonizer, VGGCanonizer

from relprop import LRP, composites

HERE = Path(__file__).resolve().parent

LOW = torch.tensor([-2.1179, -2.0357, -1.8044]).view(1, 3, 1, 1)  # ImageNet-normalized pixel bounds
HIGH = torch.tensor([2.2489, 2.4286, 2.6400]).view(1, 3, 1, 1)
PRESETS = ["EpsilonPlusFlat", "EpsilonGammaBox", "EpsilonAlpha2Beta1"]
CANONIZERS = {"vgg16": VGGCanonizer, "resnet50": ResNetCanonizer}


def preset(name: str, model_name: str, library, device):
    """The composite ``name`` of relprop, or of zennit (with the canonizers zennit needs for the model)."""
    kwargs = {} if library is composites else {"canonizers": [CANONIZERS[model_name]()]}
    if name == "EpsilonGammaBox":
        return library.EpsilonGammaBox(low=LOW.to(device), high=HIGH.to(device), **kwargs)
    return getattr(library, name)(**kwargs)


def methods(model, model_name, x, preset_name, device):
    """The timed callables, each computing one explanation of the predicted class."""
    with torch.no_grad():
        weights = torch.nn.functional.one_hot(model(x).argmax(1), 1000).to(x)

    def forward():
        with torch.no_grad():
            model(x)

    def gradient():
        leaf = x.detach().requires_grad_()
        torch.autograd.grad((model(leaf) * weights).sum(), leaf)

    explainer = LRP(model, preset(preset_name, model_name, composites, device))

    def relprop():
        explainer(x, weights)

    zennit_composite = preset(preset_name, model_name, zennit_composites, device)
    attributor = Gradient(model=model, composite=zennit_composite)

    def zennit():
        with attributor:
            with torch.no_grad():
                output = model(x)
            attributor(x, output * weights)

    return {"forward": forward, "gradient": gradient, "relprop": relprop, "zennit": zennit}


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_methods(model_name, batch, preset_name, repeats, size, device):
    torch.manual_seed(0)
    model = getattr(torchvision.models, model_name)().eval().to(device)
    x = torch.randn(batch, 3, size, size, device=device)
    calls = methods(model, model_name, x, preset_name, device)
    for call in calls.values():  # warm up
        call()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            synchronize(device)
            start = time.perf_counter()
            call()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times


def median_ratio(times: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """The median over the rounds of ``numerator``'s time over ``denominator``'s in the same round."""
    return statistics.median(a / b for a, b in zip(times[numerator], times[denominator]))


def peak_memory(model_name, batch, preset_name, method, size, device) -> float:
    """Peak memory of one method in MiB above the model and input, in a fresh process."""
    arguments = f"{model_name!r}, {batch}, {preset_name!r}, {method!r}, {size}, {str(device)!r}"
    code = f"import json, lrp_speed as b; print(json.dumps(b._measure({arguments})))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENVIRONMENT, cwd=HERE
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _measure(model_name, batch, preset_name, method, size, device):
    device = torch.device(device)
    torch.manual_seed(0)
    model = getattr(torchvision.models, model_name)().eval().to(device)
    x = torch.randn(batch, 3, size, size, device=device)
    return peak_mib(methods(model, model_name, x, preset_name, device)[method], device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg16", "resnet50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--presets", nargs="+", default=PRESETS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--memory", action="store_true", help="also measure peak memory (slow)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
        f"{args.size}x{args.size}, median of {args.repeats} rounds"
    )
    header = (
        f"{'model':<9} {'batch':>5} {'composite':<19} {'gradient s':>10} {'relprop s':>10} {'zennit s':>9} "
        f"{'relprop/grad':>12} {'zennit/grad':>11} {'zennit/relprop':>14}"
    )
    if args.memory:
        header += f" {'mem relprop/grad':>16}"
    print(header)
    for model_name in args.models:
        for batch in args.batches:
            for preset_name in args.presets:
                times = time_methods(model_name, batch, preset_name, args.repeats, args.size, device)
                t = {name: statistics.median(values) for name, values in times.items()}
                line = (
                    f"{model_name:<9} {batch:>5} {preset_name:<19} {t['gradient']:>10.3f} "
                    f"{t['relprop']:>10.3f} {t['zennit']:>9.3f} "
                    f"{median_ratio(times, 'relprop', 'gradient'):>12.2f} "
                    f"{median_ratio(times, 'zennit', 'gradient'):>11.2f} "
                    f"{median_ratio(times, 'zennit', 'relprop'):>14.2f}"
                )
                if args.memory:
                    grad = peak_memory(model_name, batch, preset_name, "gradient", args.size, device)
                    ours = peak_memory(model_name, batch, preset_name, "relprop", args.size, device)
                    line += f" {ours / grad:>16.2f}"
                print(line, flush=True)


if __name__ == "__main__":
    main()
