"""Ready-made models to explain: pretrained networks and their preprocessing."""

from relprop.models.efficientnet_lite import EfficientNetLite0, efficientnet_lite0
from relprop.models.imagenet import IMAGENET_CATEGORIES

__all__ = ["IMAGENET_CATEGORIES", "EfficientNetLite0", "efficientnet_lite0"]
