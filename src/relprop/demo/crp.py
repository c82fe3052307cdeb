"""The demo's CRP check: the channels that encode the tag, their RelMax references, the model without them.

The channels of :data:`CRP_LAYER` are ranked by the share of the relevance their conditional heatmaps put on
the tag's pixels in the tagged training images (:func:`relprop.concepts.region_share`); the first
:data:`CRP_CHANNELS` are the tag's channels. Relevance maximization over the test set, of the relevance for
the tagged class, says whether their reference samples carry the tag, and the behavioural check with those
channels zeroed by a forward hook whether the shortcut is gone. As many random channels masked give the
baseline.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from relprop.composites import EpsilonPlusFlat
from relprop.demo.data import TAG_REGION, TaggedDigits
from relprop.demo.run import Behaviour, behavioural_check

__all__ = ["CRP_CHANNELS", "CRP_LAYER", "ConceptCheck", "concept_check", "masked_channels"]

#: The layer whose channels are checked (the last convolution, 4x4 positions) and how many are masked.
CRP_LAYER, CRP_CHANNELS = "4", 4
#: RelMax references per channel, and draws of random channels for the baseline.
REFERENCES, RANDOM_DRAWS = 8, 10


@dataclass(frozen=True)
class ConceptCheck:
    """What CRP finds about the tag, and what masking its channels does.

    Attributes
    ----------
    layer:
        The checked layer.
    channels:
        Its channels that put the most relevance on the tag, most first.
    tag_share:
        Their summed :func:`~relprop.concepts.region_share` on the tag, averaged over the tagged training
        images.
    references_tagged:
        The fraction of their RelMax references for the tagged class (the test images in which they receive
        the most relevance for that class) that carry the tag.
    references_tagged_all:
        The same fraction for the references of all channels of the layer.
    tagged_overall:
        The fraction of all test images that carry the tag.
    test_accuracy:
        The accuracy on the test set with the channels masked.
    masked:
        The behavioural check with the channels masked.
    random_others_tagged:
        ``others_tagged`` of the behavioural check with as many random channels masked, one per draw.
    layer_width:
        The number of channels of the layer.
    unmasked_others_tagged:
        ``others_tagged`` of the model as it is.
    """

    layer: str
    channels: tuple[int, ...]
    tag_share: float
    references_tagged: float
    references_tagged_all: float
    tagged_overall: float
    test_accuracy: float
    masked: Behaviour
    random_others_tagged: np.ndarray
    layer_width: int
    unmasked_others_tagged: float

    @property
    def channels_text(self) -> str:
        """The channels as ``"12, 28, 29, 24"``."""
        return ", ".join(map(str, self.channels))

    def summary(self) -> list[str]:
        """The check in a few lines for the terminal."""
        channels = self.channels_text
        draws = self.random_others_tagged
        return [
            f"CRP on layer {self.layer}: channels {channels} put {self.tag_share:.0%} of the tagged 8s' "
            f"relevance on the tag; {self.references_tagged:.0%} of their RelMax references for class "
            f"{self.masked.tagged_class} carry it (of all {self.layer_width} channels' references "
            f"{self.references_tagged_all:.0%}, of the test digits {self.tagged_overall:.1%}).",
            f"Masked (the column above), they take the other digits with the tag pasted on from "
            f"{self.unmasked_others_tagged:.1%} to {self.masked.others_tagged:.1%} predicted as "
            f"{self.masked.tagged_class}; {len(self.channels)} random channels masked: median "
            f"{np.median(draws):.1%} ({draws.min():.1%} to {draws.max():.1%}, {len(draws)} draws); test "
            f"accuracy {self.test_accuracy:.1%} masked.",
        ]

    def rows(self) -> list[tuple[str, str]]:
        """The check as (question, answer) rows for the report."""
        draws = self.random_others_tagged
        return [
            (f"channels of layer {self.layer} that see the tag", self.channels_text),
            ("their share of the tagged 8s' relevance, on the tag", f"{self.tag_share:.0%}"),
            (
                f"their RelMax references (class {self.masked.tagged_class}) with the tag",
                f"{self.references_tagged:.0%}",
            ),
            (f"... those of all {self.layer_width} channels", f"{self.references_tagged_all:.0%}"),
            ("... test digits with the tag", f"{self.tagged_overall:.1%}"),
            ("test accuracy with them masked", f"{self.test_accuracy:.1%}"),
            *[(f"masked: {question}", answer) for question, answer in self.masked.rows()],
            (
                f"random {len(self.channels)} channels masked: with the tag pasted on",
                f"median {np.median(draws):.1%} ({draws.min():.1%} to {draws.max():.1%})",
            ),
        ]


@contextmanager
def masked_channels(model: nn.Module, layer: str, channels: Sequence[int]) -> Iterator[nn.Module]:
    """``model`` with the output of its module ``layer`` zeroed at ``channels`` (dimension 1), by a forward
    hook removed on exit."""
    dropped = list(channels)

    def zero(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        kept = torch.ones(output.shape[1], dtype=output.dtype, device=output.device)
        kept[dropped] = 0
        return output * kept.reshape(1, -1, *[1] * (output.dim() - 2))

    hook = model.get_submodule(layer).register_forward_hook(zero)
    try:
        yield model
    finally:
        hook.remove()


def concept_check(
    model: nn.Module, data: TaggedDigits, relmax_store: str | Path, seed: int = 0
) -> ConceptCheck:
    """Find the tag's channels of :data:`CRP_LAYER` with CRP and check the model with them masked.

    ``relmax_store`` receives the RelMax run over the test set (replaced if there).
    """
    from relprop import LRP, concepts
    from relprop.data import ArrayDataset

    c, test = data.tagged_class, data.test_rows
    explainer = LRP(model, EpsilonPlusFlat())
    train = data.train_rows
    tagged = train[data.tagged[train]]  # chosen on training images, checked on test images
    region = torch.zeros(data.images.shape[1:], dtype=torch.bool)
    region[(..., *TAG_REGION)] = True
    share = concepts.region_share(explainer, torch.from_numpy(data.inputs(tagged)), CRP_LAYER, region, c)
    mean_share = share.mean(dim=0)
    channels = tuple(mean_share.topk(CRP_CHANNELS).indices.tolist())

    path = Path(relmax_store)
    path.unlink(missing_ok=True)
    inputs = data.inputs(test)
    as_tagged_class = ArrayDataset(inputs, np.full(len(test), c))  # RelMax of the relevance for class c
    concepts.relmax_dataset(as_tagged_class, model, path, [CRP_LAYER], target="label", progress=False)
    references = concepts.top_references(path, k=REFERENCES)[CRP_LAYER].by_relevance

    with masked_channels(model, CRP_LAYER, channels), torch.no_grad():
        masked = behavioural_check(model, data)
        predicted = model(torch.from_numpy(inputs)).argmax(dim=1).numpy()
    rng = np.random.default_rng(seed)
    width = len(mean_share)
    random = []
    for _ in range(RANDOM_DRAWS):
        drawn = rng.choice(width, CRP_CHANNELS, replace=False).tolist()
        with masked_channels(model, CRP_LAYER, drawn):
            random.append(behavioural_check(model, data).others_tagged)
    return ConceptCheck(
        layer=CRP_LAYER,
        channels=channels,
        tag_share=float(mean_share[list(channels)].sum()),
        references_tagged=float(data.tagged[test[references[list(channels)]]].mean()),
        references_tagged_all=float(data.tagged[test[references]].mean()),
        tagged_overall=float(data.tagged[test].mean()),
        test_accuracy=float(np.mean(predicted == data.labels[test])),
        masked=masked,
        random_others_tagged=np.asarray(random),
        layer_width=width,
        unmasked_others_tagged=behavioural_check(model, data).others_tagged,
    )
