"""Pruning by explaining (Yeom et al., Pattern Recognition 115, 2021): remove the filters and neurons that the
least relevance reaches, or those the baselines (weight norm, gradient, Taylor) rank lowest.

* :mod:`relprop.prune.structure`: which layers can be pruned and which parameters hold each unit;
* :mod:`relprop.prune.scores`: the criteria (:func:`unit_scores`);
* :mod:`relprop.prune.masks`: masking (:func:`mask_units`) and physical removal (:func:`remove_units`);
* :mod:`relprop.prune.heads`: attention heads as units (:func:`head_scores`, :func:`mask_heads`,
  :func:`head_mask_hooks`, :func:`remove_heads`);
* :mod:`relprop.prune.iterate`: global ranking (:func:`select_units`) and rounds of pruning with optional
  fine-tuning (:func:`prune`).

Examples
--------
>>> result = prune(model, x_references, y_references, criterion="lrp", rate=0.5, remove=True)
>>> result.model            # a smaller model, explainable like any other
>>> result.removed_share()  # {'features.0': 0.41, ...}
"""

from relprop.prune.heads import (
    AttentionHeads,
    attention_layers,
    head_mask,
    head_mask_hooks,
    head_scores,
    mask_heads,
    remove_heads,
)
from relprop.prune.iterate import UNITS, PruneResult, check_rate, normalized, prune, select_units
from relprop.prune.masks import mask_hooks, mask_units, remove_units
from relprop.prune.scores import CRITERIA, unit_scores
from relprop.prune.structure import LayerStructure, layer_structure, prunable_layers, trace

__all__ = [
    "CRITERIA",
    "UNITS",
    "AttentionHeads",
    "attention_layers",
    "head_mask",
    "head_mask_hooks",
    "head_scores",
    "mask_heads",
    "remove_heads",
    "LayerStructure",
    "PruneResult",
    "check_rate",
    "layer_structure",
    "mask_hooks",
    "mask_units",
    "normalized",
    "prunable_layers",
    "prune",
    "remove_units",
    "select_units",
    "trace",
    "unit_scores",
]
