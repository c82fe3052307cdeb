"""LXT's time against the plain gradient, in a process of its own (run by ``transformer_speed.py``).

LXT's patches change classes process-wide and cannot be undone, so the plain gradient is timed first, on the
unpatched model, and LXT after patching: the two are not interleaved, and the ratio is that of the medians.
Prints ``{"ratio": LXT / gradient}`` as JSON.

Usage: ``PYTHONPATH=.lxt-site python benchmarks/_lxt_timing.py gpt2|bert FOLDER REPEATS``
"""

import json
import statistics
import sys
import time
from pathlib import Path

import torch


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

    def timed(model) -> float:
        model.load_state_dict(weights)
        explain(model)  # warm up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            explain(model)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    plain = timed(build(config).eval())
    from lxt.efficient import monkey_patch

    monkey_patch(modeling)
    patched = timed(getattr(modeling, build.__name__)(config).eval())  # BERT's patch replaces the classes
    print(json.dumps({"ratio": patched / plain}))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]))
