"""Pruning attention heads: test accuracy of a tiny vision transformer on scikit-learn's digits after pruning
25 % and 50 % of its heads by LRP and the baselines, without fine-tuning and with one epoch of it.

The model is torchvision's ``VisionTransformer`` (8 x 8 digits repeated to 3 channels, 2 x 2 patches, 2 layers
of 4 heads, width 32), trained here for 30 epochs of Adam on 1000 digits (a stratified split per seed; 797 for
testing). Each criterion scores the 8 heads once on 5 training digits per class (LRP with
:class:`~relprop.composites.AttnLRP`), the scores are normalized per layer and ranked globally
(:func:`~relprop.prune.select_units`, every layer keeps its best head), and the lowest are masked
(:func:`~relprop.prune.prune` with ``units="heads"``, one round); fine-tuning is one epoch of Adam over the
training digits with the masked heads held at zero. Mean ± standard error over the seeds::

    python benchmarks/pruning_heads.py           # 5 seeds, about 80 s on one CPU thread
    python benchmarks/pruning_heads.py --seeds 1
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _seeds import log, mean_and_error
from pruning import digits_task, train_epochs
from torchvision.models.vision_transformer import VisionTransformer

from relprop import composites
from relprop.prune import CRITERIA, prune
from relprop.prune.curve import accuracy, split_references

#: (share of heads pruned, fine-tuned) of each row.
CASES = ((0.25, False), (0.5, False), (0.25, True), (0.5, True))


def run(seed: int) -> dict[str, list[float]]:
    (x_train, y_train), (x_test, y_test) = digits_task(seed)
    x_train, x_test = x_train.expand(-1, 3, -1, -1), x_test.expand(-1, 3, -1, -1)
    torch.manual_seed(seed)
    model = VisionTransformer(8, 2, 2, 4, 32, 64, dropout=0.0, attention_dropout=0.0, num_classes=10)
    model = train_epochs(model, (x_train, y_train), epochs=30, lr=1e-3, seed=seed)
    chosen, _ = split_references(y_train, 5, seed)
    results = {"unpruned": [accuracy(model, x_test, y_test)] * len(CASES)}

    def one_epoch(pruned):
        train_epochs(pruned, (x_train, y_train), epochs=1, lr=1e-3, seed=seed)

    for criterion in CRITERIA:
        composite = composites.AttnLRP() if criterion == "lrp" else None
        results[criterion] = [
            accuracy(
                prune(
                    model, x_train[chosen], y_train[chosen], rate=rate, criterion=criterion,
                    composite=composite, units="heads", fine_tune=one_epoch if tuned else None,
                ).model,
                x_test,
                y_test,
            )
            for rate, tuned in CASES
        ]  # fmt: skip
    log(f"seed {seed}: {results}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = [run(seed) for seed in range(args.seeds)]
    print("| heads pruned, fine-tuning | " + " | ".join(runs[0]) + " |")
    print("|---" * (len(runs[0]) + 1) + "|")
    for index, (rate, tuned) in enumerate(CASES):
        cells = [mean_and_error(np.array([[r[name][index]] for r in runs]))[0] for name in runs[0]]
        print(f"| {rate:.0%}, {'one epoch' if tuned else 'none'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
