"""The 1000 ImageNet-1k class names, in the order of the classifiers' outputs.

Taken from the metadata that ships with torchvision (no download): index ``i`` names output ``i`` of an
ImageNet classifier, e.g. ``IMAGENET_CATEGORIES[281] == "tabby"``.
"""

from torchvision.models import ResNet50_Weights

__all__ = ["IMAGENET_CATEGORIES"]

IMAGENET_CATEGORIES: tuple[str, ...] = tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
