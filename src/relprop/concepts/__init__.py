"""Concepts: what the model saw where it looked (Concept Relevance Propagation, Achtibat et al. 2023).

- :func:`relevance_at`: the relevance at named layers (explaining to an intermediate layer, Bach et al. 2016).
- :func:`layer_heatmap`: that relevance summed over channels and spread over the input: a coarser heatmap.
- :func:`propagate_from`: the input relevance of a relevance given at a latent layer.
- :func:`conditional_heatmaps`: the heatmap of each concept (channels or neurons of chosen layers; of a
  transformer also :class:`Tokens` and attention :class:`Heads`), many
  concepts of many samples in one batched call, with or without the relevance of parallel branches.
- :func:`concept_importance`: per channel of a layer, its relevance for one prediction (and its share).
- :func:`region_share`: per channel, the share of its conditional heatmap inside an input region (a tag).
- :func:`attribution_graph`: for one prediction, the most relevant lower-layer concepts of a concept.
- :func:`relmax_dataset` and :func:`top_references`: relevance maximization over a data set, as a resumable,
  shardable store run: for every channel, the samples of largest relevance (and of largest activation);
  :func:`reference_crops`: those samples cut to the receptive field of the most relevant position, with
  their conditional heatmaps.

Examples
--------
>>> explainer = LRP(model)
>>> share = concepts.concept_importance(explainer, x, "features.28", abs_norm=True)  # (B, C)
>>> top = share[0].topk(8).indices.tolist()
>>> result = concepts.conditional_heatmaps(explainer, x[:1], [{"features.28": c} for c in top])
>>> result.heatmaps.shape                                                              # (1, 8, 3, H, W)
"""

from relprop.concepts.attribute import (
    ConditionalRelevance,
    concept_importance,
    conditional_heatmaps,
    layer_heatmap,
    propagate_from,
    relevance_at,
    relevance_from_output,
)
from relprop.concepts.conditions import Channels, Condition, Heads, Neurons, Selection, Tokens
from relprop.concepts.graph import Edge, attribution_graph
from relprop.concepts.layers import layer_node
from relprop.concepts.region import region_share
from relprop.concepts.relmax import (
    ChannelStatistics,
    Reference,
    References,
    reference_crops,
    relmax_dataset,
    top_references,
)

__all__ = [
    "ChannelStatistics",
    "Channels",
    "Condition",
    "ConditionalRelevance",
    "Edge",
    "Heads",
    "Neurons",
    "Reference",
    "References",
    "Selection",
    "Tokens",
    "attribution_graph",
    "concept_importance",
    "conditional_heatmaps",
    "layer_heatmap",
    "layer_node",
    "propagate_from",
    "reference_crops",
    "region_share",
    "relevance_at",
    "relevance_from_output",
    "relmax_dataset",
    "top_references",
]
