"""Image classifiers ready to explain: a model with its preprocessing, the range of its inputs and the
names of its classes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor, nn

__all__ = ["ImageClassifier", "load_classifier"]


@dataclass(frozen=True)
class ImageClassifier:
    """A model with the preprocessing it was trained with and the names of its classes.

    ``low`` and ``high`` (``(C, 1, 1)``) are the preprocessed values of black and white pixels, the range of
    its inputs per channel: bounds for :class:`~relprop.rules.ZBox`, and the map back to pixels
    ``(x - low) / (high - low)`` for display.
    """

    model: nn.Module
    transform: Callable[[Image.Image], Tensor]
    low: Tensor
    high: Tensor
    categories: Sequence[str] | None

    def display(self, x: Tensor) -> Tensor:
        """Preprocessed images ``(..., C, H, W)``, on any device, back to RGB in [0, 1] (on that device)."""
        low, high = self.low.to(x.device), self.high.to(x.device)
        return ((x - low) / (high - low)).clamp(0, 1)

    def class_name(self, index: int) -> str:
        """The name of class ``index`` (its number when the classes have no names)."""
        return str(index) if self.categories is None else self.categories[index]


def load_classifier(spec: str, trust: bool = False) -> ImageClassifier:
    """The image classifier that ``spec`` names, with its preprocessing, input bounds and class names.

    Parameters
    ----------
    spec:
        A model specification of :func:`relprop.models.loading.load_model`: ``efficientnet-lite0`` (fed
        its own :func:`~relprop.models.efficientnet_lite.preprocess`), a torchvision architecture with
        local weights (fed the transform of its first ImageNet weights), or a model file (fed ImageNet's
        standard transform).
    trust:
        Whether a ``torch.export`` program may be loaded (it runs code stored in the file).

    Returns
    -------
    ImageClassifier
        With ImageNet's class names for efficientnet-lite0 and torchvision architectures, none for model
        files.
    """
    from relprop.models import IMAGENET_CATEGORIES
    from relprop.models.loading import load_model, torchvision_names

    model = load_model(spec, trust=trust)
    name = spec.partition(":")[0]
    if name == "efficientnet-lite0":
        from relprop.models import efficientnet_lite as lite

        low, high = (torch.full((3, 1, 1), bound) for bound in lite.INPUT_BOUNDS)
        return ImageClassifier(model, lite.preprocess, low, high, IMAGENET_CATEGORIES)
    from torchvision.models import ResNet50_Weights, get_model_weights

    weights = (
        next(iter(get_model_weights(name))) if name in torchvision_names() else ResNet50_Weights.IMAGENET1K_V1
    )
    transform = weights.transforms()
    mean, std = (torch.tensor(v).reshape(-1, 1, 1) for v in (transform.mean, transform.std))
    categories = weights.meta["categories"] if name in torchvision_names() else None
    return ImageClassifier(model, transform, (0 - mean) / std, (1 - mean) / std, categories)
