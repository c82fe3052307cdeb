"""The attribution graph of a concept: its most relevant lower-layer concepts, layer by layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from relprop.concepts.attribute import conditional_heatmaps
from relprop.concepts.layers import channel_dim, per_channel
from relprop.lrp import LRP
from relprop.targets import Target


@dataclass(frozen=True)
class Edge:
    """Concept ``lower`` (layer name, channel) receives ``relevance`` from concept ``upper``."""

    upper: tuple[str, int]
    lower: tuple[str, int]
    relevance: float


def attribution_graph(
    explainer: LRP,
    x: Tensor,
    concept: tuple[str, int],
    lower_layers: Sequence[str],
    target: Target = None,
    *,
    top: int = 3,
    exclude_parallel: bool = True,
) -> list[Edge]:
    """For one sample, the ``top`` most relevant concepts of each lower layer under each concept above.

    Level by level: the concepts found at layer ``lower_layers[i]`` are, for each concept ``u`` kept at
    the level above, the ``top`` channels ``c`` of that layer with the largest conditional relevance
    :math:`r_c = \\sum_p R_{\\ell, c p}(x \\mid \\theta_u)`, where :math:`\\theta_u` conditions every layer on
    the path from ``concept`` down to ``u`` to its channel. One batched call per level.

    Parameters
    ----------
    explainer:
        The LRP explainer.
    x:
        One sample, with its batch dimension: ``(1, ...)``.
    concept:
        ``(layer name, channel)`` of the concept to decompose.
    lower_layers:
        Layer names below it, from the top down.
    target, exclude_parallel:
        As for :func:`~relprop.concepts.conditional_heatmaps`.
    top:
        Concepts kept per concept and layer.

    Returns
    -------
    list of Edge
        From the top down; each level's edges in the order of their upper concepts, most relevant first.
    """
    if x.shape[0] != 1:
        raise ValueError(f"the attribution graph explains one sample, got a batch of {x.shape[0]}")
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    paths = [({concept[0]: concept[1]}, concept)]
    edges: list[Edge] = []
    for layer in lower_layers:
        conditions = [condition for condition, _ in paths]
        result = conditional_heatmaps(
            explainer, x, conditions, target, exclude_parallel=exclude_parallel, record=[layer]
        )
        totals = per_channel(result.layers[layer][0], channel_dim(explainer, x, layer))
        found = []
        for (condition, upper), scores in zip(paths, totals):
            values, channels = scores.topk(min(top, scores.shape[0]))
            for value, channel in zip(values.tolist(), channels.tolist()):
                edges.append(Edge(upper, (layer, channel), value))
                found.append(({**condition, layer: channel}, (layer, channel)))
        paths = found
    return edges
