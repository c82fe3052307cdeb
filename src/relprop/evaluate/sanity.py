r"""Model-randomization sanity check (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

Cascading randomization: the parameters of the layers are re-drawn one layer after the other, from the
output layer down to the input, and after each layer the explanation of the partly randomized model is
compared with the explanation of the original model. An explanation that stays similar does not depend
on what the model learned.

The model is deep-copied first; the user's model is never modified (nor its training flag). Each
randomized parameter tensor :math:`W` is re-drawn i.i.d. from :math:`\mathcal N(0, \sigma^2)` with
:math:`\sigma` the root mean square of the original :math:`W`, which keeps the scale of the activations
(a zero bias stays zero). Buffers such as batch-norm running statistics are not randomized. Quantus calls
each layer's ``reset_parameters()`` under the global torch seed instead; the random weights differ, the
protocol is the same.

Similarity, per sample, between the channel-summed heatmaps of the original and the randomized model
(with ``absolute=True``, of their absolute values, the other variant of the paper):

* Spearman rank correlation (``scipy.stats.spearmanr``, ties get average ranks);
* SSIM (``skimage.metrics.structural_similarity``) after scaling each heatmap on its own to [0, 1] by
  its minimum and maximum, with ``data_range=1``.

Both are NaN for a constant heatmap, where they are undefined.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import Tensor, nn

from relprop.evaluate._common import Target, as_generator, check_images, heatmap_like, target_weights
from relprop.explainer import ExplainerFactory


@dataclass(frozen=True)
class RandomizationResult:
    """Similarity of explanations along a cascading randomization.

    Attributes
    ----------
    layers
        Step names: ``"original"`` then the module names in the order they were randomized.
    spearman, ssim
        Similarity to the original explanation, shaped (steps, B), float64. Row 0 compares
        the original explanation with a fresh one of the unchanged copy: 1 for a deterministic explainer.
    """

    layers: tuple[str, ...]
    spearman: Tensor
    ssim: Tensor


def model_randomization(
    model: nn.Module,
    make_explainer: ExplainerFactory,
    x: Tensor,
    target: Target = None,
    *,
    layers: Sequence[str] | None = None,
    absolute: bool = False,
    seed: int | torch.Generator = 0,
) -> RandomizationResult:
    """Cascading model-randomization test of Adebayo et al. (2018), from the top layer down.

    Parameters
    ----------
    model
        The trained model; it is deep-copied and left untouched.
    make_explainer
        ``make_explainer(model) -> explainer`` with ``explainer(x, target)`` returning an attribution shaped
        like ``x``; called once per step on the (partly randomized) copy.
    x
        Images (B, C, H, W); SSIM needs H and W of at least 7.
    target
        None (the class predicted by the original model, kept for every step), an int, a LongTensor (B,), or
        a float tensor (B, K) weighting the outputs.
    layers
        Names (as in ``model.named_modules()``) of the modules to randomize, in that order. None takes every
        module that holds parameters of its own, from the last registered one (the output end) to the first.
    absolute
        Compare the absolute values of the heatmaps.
    seed
        An int or a ``torch.Generator`` for the random parameters.

    Returns
    -------
    RandomizationResult
        Step names and the Spearman and SSIM similarities, (steps, B) each.
    """
    check_images(x)
    generator = as_generator(seed)
    model = copy.deepcopy(model)
    modules = dict(model.named_modules())
    if layers is None:
        layers = [name for name, module in modules.items() if _own_parameters(module)][::-1]
        if not layers:
            raise ValueError("the model has no module with parameters to randomize")
    else:
        layers = list(layers)
        for name in layers:
            if name not in modules or not _own_parameters(modules[name]):
                raise ValueError(f"layer {name!r} is not a module of the model with parameters of its own")

    if target is None:
        with torch.no_grad():
            target = target_weights(model(x), None).argmax(dim=1)
    original = _explanation(make_explainer, model, x, target, absolute)
    spearman, ssim = [], []
    for name in [None, *layers]:
        if name is not None:
            _randomize(modules[name], generator)
        explanation = _explanation(make_explainer, model, x, target, absolute)
        spearman.append([_spearman(a, b) for a, b in zip(original, explanation, strict=True)])
        ssim.append([_ssim(a, b) for a, b in zip(original, explanation, strict=True)])
    return RandomizationResult(
        layers=("original", *layers),
        spearman=torch.tensor(np.array(spearman), dtype=torch.float64),
        ssim=torch.tensor(np.array(ssim), dtype=torch.float64),
    )


def _own_parameters(module: nn.Module) -> list[nn.Parameter]:
    return list(module.parameters(recurse=False))


def _randomize(module: nn.Module, generator: torch.Generator) -> None:
    """Re-draw every parameter of ``module`` from N(0, rms^2) of its current values."""
    with torch.no_grad():
        for parameter in _own_parameters(module):
            scale = parameter.detach().double().pow(2).mean().sqrt().item()
            draw = torch.randn(parameter.shape, generator=generator, dtype=torch.float64) * scale
            parameter.copy_(draw.to(device=parameter.device, dtype=parameter.dtype))


def _explanation(
    make_explainer: ExplainerFactory,
    model: nn.Module,
    x: Tensor,
    target: Target,
    absolute: bool,
) -> np.ndarray:
    """Channel-summed heatmaps (B, H, W) of ``model``'s explanation, as float64 numpy."""
    attribution = make_explainer(model)(x, target)
    if not isinstance(attribution, Tensor):
        raise TypeError(f"the explainer returned {type(attribution).__name__}, expected a torch.Tensor")
    heatmap = heatmap_like(attribution.detach(), x).double().cpu().numpy()
    return np.abs(heatmap) if absolute else heatmap


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a.ravel(), b.ravel()).statistic)


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(structural_similarity(_unit_range(a), _unit_range(b), data_range=1.0))


def _unit_range(heatmap: np.ndarray) -> np.ndarray:
    return (heatmap - heatmap.min()) / np.ptp(heatmap)
