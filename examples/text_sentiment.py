"""LRP for a small LSTM sentiment classifier: which words make a review positive or negative.

Generates short labelled reviews from a template grammar (subjects, verbs, adjectives of either polarity,
intensifiers, the negation "not", and "A but B" sentences in which the clause after "but" decides),
trains an embedding + LSTM classifier for a few seconds, and explains a few sentences with LSTM-LRP
(Arras et al. 2017: epsilon 1e-3, gates take no relevance). The explained quantity is the positive logit
minus the negative one, so red words speak for "positive" and blue words for "negative". The word
heatmaps are printed in the terminal (24-bit colour) and written as HTML files.

Run: ``python examples/text_sentiment.py [output_directory]`` (about ten seconds on CPU).
"""

import random
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from relprop import LRP, composites, rules
from relprop.viz import save_text_heatmap, text_heatmap_ansi

SUBJECTS = ["the movie", "the film", "this story", "the acting", "the plot", "the music"]
VERBS = ["is", "was", "seems", "felt"]
POSITIVE = ["good", "great", "excellent", "wonderful", "fun", "brilliant"]
NEGATIVE = ["bad", "terrible", "awful", "boring", "dull", "poor"]
INTENSIFIERS = ["really", "very", "quite", "truly"]
PAD = "<pad>"

EXAMPLES = [
    "the movie is good",
    "the movie is not good",
    "the plot was really bad",
    "the plot was not bad",
    "the acting is great but the music was boring",
    "the music was not fun but the film is not bad",
]


def clause(rng: random.Random, positive: bool) -> str:
    """One clause of the given polarity: "<subject> <verb> [not] [intensifier] <adjective>"."""
    negated = rng.random() < 0.4
    adjectives = NEGATIVE if positive == negated else POSITIVE
    words = [rng.choice(SUBJECTS), rng.choice(VERBS)]
    if negated:
        words.append("not")
    if rng.random() < 0.4:
        words.append(rng.choice(INTENSIFIERS))
    return " ".join([*words, rng.choice(adjectives)])


def review(rng: random.Random) -> tuple[str, int]:
    """A sentence and its label (1: positive); in "A but B" the two clauses differ and B decides."""
    positive = rng.random() < 0.5
    if rng.random() < 0.6:
        return clause(rng, positive), int(positive)
    return f"{clause(rng, not positive)} but {clause(rng, positive)}", int(positive)


class Sentiment(nn.Module):
    def __init__(self, vocabulary: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, 16, padding_idx=0)
        self.lstm = nn.LSTM(16, 32, batch_first=True)
        self.head = nn.Linear(32, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(self.embedding(tokens))
        return self.head(h[-1])


def encode(sentences: list[str], index: dict[str, int]) -> torch.Tensor:
    """Token ids, padded on the left so that the last step of every row is its last word."""
    rows = [[index[w] for w in s.split()] for s in sentences]
    length = max(len(r) for r in rows)
    return torch.tensor([[0] * (length - len(r)) + r for r in rows])


def train(tokens: torch.Tensor, labels: torch.Tensor, vocabulary: int) -> Sentiment:
    torch.manual_seed(0)
    model = Sentiment(vocabulary)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(12):
        for batch in torch.randperm(len(tokens)).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(tokens[batch]), labels[batch]).backward()
            optimizer.step()
    return model.eval()


def main(output: str = "text_sentiment") -> None:
    torch.set_num_threads(1)  # tiny recurrent models are fastest on one thread
    rng = random.Random(0)
    data = [review(rng) for _ in range(3000)]
    words = sorted({w for s, _ in data for w in s.split()} | {w for s in EXAMPLES for w in s.split()})
    index = {w: k for k, w in enumerate([PAD, *words])}
    tokens, labels = encode([s for s, _ in data], index), torch.tensor([y for _, y in data])
    model = train(tokens[:2500], labels[:2500], len(index))
    with torch.no_grad():
        accuracy = (model(tokens[2500:]).argmax(1) == labels[2500:]).float().mean()
    print(f"held-out accuracy: {accuracy:.3f}\n")

    explainer = LRP(model, composites.Uniform(rules.Epsilon(1e-3)))  # epsilon 1e-3 everywhere, as Arras
    batch = encode(EXAMPLES, index)
    relevance = explainer(batch, target=torch.tensor([-1.0, 1.0]).expand(len(EXAMPLES), 2))
    with torch.no_grad():
        logits = model(batch)
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    for k, sentence in enumerate(EXAMPLES):
        words = sentence.split()
        scores = relevance[k, -len(words) :]  # the padding has zero embeddings: no relevance
        margin = (logits[k, 1] - logits[k, 0]).item()
        print(f"positive - negative logit {margin:+.2f}: {text_heatmap_ansi(words, scores)}")
        print("   " + "  ".join(f"{w} {r:+.2f}" for w, r in zip(words, scores.tolist())))
        save_text_heatmap(folder / f"sentence_{k}.html", words, scores, title=sentence)
    print(f"\nwrote {len(EXAMPLES)} HTML heatmaps to {folder}/")


if __name__ == "__main__":
    main(*sys.argv[1:])
