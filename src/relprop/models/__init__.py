"""Ready-made models to explain: pretrained networks and their preprocessing.

:mod:`relprop.models.loading` loads a model from a specification (``efficientnet-lite0``,
``resnet50:weights.pth``, a TorchScript file), :mod:`relprop.models.classifier` bundles an image classifier
with its preprocessing, input bounds and class names."""

from relprop.models.efficientnet_lite import EfficientNetLite0, efficientnet_lite0
from relprop.models.imagenet import IMAGENET_CATEGORIES

__all__ = ["IMAGENET_CATEGORIES", "EfficientNetLite0", "efficientnet_lite0"]
