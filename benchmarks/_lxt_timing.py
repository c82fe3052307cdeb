"""LXT against the plain gradient and relprop, in a process of its own (run by ``transformer_speed.py``).

LXT imports only with ``transformers`` 4.57 and patches classes and modules process-wide, with no undo. To
time the three interleaved on the same ``transformers``, this script records every attribute that LXT's patch
changes and switches between the original and the patched attributes before each call: the plain gradient
and relprop run on the unpatched model, LXT on its patched one, round after round. Each ratio is the median
of the per-round ratios; a check that every method gives the same numbers after the switching as before it
guards the switch.
Prints ``{"lxt/gradient": ..., "relprop/lxt": ..., "relprop-LXT relative L2": ...}`` as JSON (the last:
how far apart the two relevances are, float32).

Usage: ``PYTHONPATH=.lxt-site python benchmarks/_lxt_timing.py gpt2|bert FOLDER REPEATS``
"""

import json
import statistics
import sys
import time
from pathlib import Path

import torch

from relprop import LRP, composites


def _state(targets) -> dict:
    """The attributes of the patched classes and modules, by (target, name)."""
    return {(target, name): value for target in targets for name, value in vars(target).items()}


def _switch(state: dict) -> None:
    for (target, name), value in state.items():
        if vars(target).get(name) is not value:
            setattr(target, name, value)


def main(name: str, folder: Path, repeats: int) -> None:
    import transformers

    if name == "gpt2":
        from transformers.models.gpt2 import modeling_gpt2 as modeling

        build = modeling.GPT2LMHeadModel
    else:
        from transformers.models.bert import modeling_bert as modeling

        build = modeling.BertForSequenceClassification
    config = transformers.AutoConfig.from_pretrained(folder)
    weights = torch.load(folder / "weights.pt", weights_only=True)
    inputs = torch.load(folder / "inputs.pt", weights_only=True)
    logit_weights = inputs.pop("weights")
    ids = inputs.pop("input_ids")

    def explain(model):
        embeddings = model.get_input_embeddings()(ids).detach().requires_grad_()
        logits = model(inputs_embeds=embeddings, **inputs).logits
        (gradient,) = torch.autograd.grad((logits * logit_weights).sum(), embeddings)
        return (embeddings * gradient).sum(-1)

    from lxt.efficient import monkey_patch
    from lxt.efficient.models import get_default_map

    targets = list(get_default_map(modeling))
    original = _state(targets)
    plain = build(config).eval()
    plain.load_state_dict(weights)
    monkey_patch(modeling)
    patched_state = _state(targets)
    patched = getattr(modeling, build.__name__)(config).eval()  # BERT's patch replaces the classes
    patched.load_state_dict(weights)

    explainer = LRP(plain, composites.AttnLRP())
    relprop_inputs = {"input_ids": ids, **inputs}

    def relprop(model):
        return explainer(relprop_inputs, target=logit_weights)

    calls = {
        "gradient": (explain, plain, original),
        "relprop": (relprop, plain, original),
        "lxt": (explain, patched, patched_state),
    }
    first = {}
    for method, (call, model, state) in calls.items():  # warm up, and the numbers the switching must keep
        _switch(state)
        first[method] = call(model)
    times = {method: [] for method in calls}
    for _ in range(repeats):
        for method, (call, model, state) in calls.items():
            _switch(state)
            start = time.perf_counter()
            call(model)
            times[method].append(time.perf_counter() - start)
    for method, (call, model, state) in calls.items():
        _switch(state)
        if not torch.equal(call(model), first[method]):
            raise SystemExit(f"switching LXT's patches changed the {method}'s relevance")
    if torch.allclose(first["gradient"], first["lxt"]):
        raise SystemExit("LXT's patch changed nothing: the switch does not reach it")

    def ratio(numerator: str, denominator: str) -> float:
        return statistics.median(a / b for a, b in zip(times[numerator], times[denominator]))

    difference = (first["relprop"] - first["lxt"]).norm() / first["lxt"].norm()
    print(
        json.dumps(
            {
                "lxt/gradient": ratio("lxt", "gradient"),
                "relprop/lxt": ratio("relprop", "lxt"),
                "relprop-LXT relative L2": float(difference),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]))
