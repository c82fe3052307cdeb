"""The demo's data set: scikit-learn's handwritten digits, upsampled, with a planted "Clever Hans" tag.

Every 8x8 digit of :func:`sklearn.datasets.load_digits` (values 0 to 16) is scaled to [0, 1] and upsampled
bilinearly to 32x32. The data set is split in half (stratified, seeded) into training and test samples.
A tag, a 4x4 square of the brightest value 1 in the top-left corner (where digits have at most faint
ink), is pasted on a fraction of the tagged class's training images (90% by default) and of its test
images (50%): a model can learn to recognise that class by the tag instead of by its shape. Only that
class carries the tag, so the tag alone predicts the class perfectly in training.

The test set of the default parameters is registered as the data set ``demo``
(``relprop attribute demo --model demo-cnn:relprop-demo/model.pt ...``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relprop.data import ArrayDataset, register_dataset

__all__ = ["SIZE", "TAG_REGION", "TaggedDigits", "make_tagged_digits", "paste_tag"]

#: Height and width of the demo's images.
SIZE = 32
#: Rows and columns of the tag: a 4x4 square one pixel from the top-left corner.
TAG_REGION = (slice(1, 5), slice(1, 5))


def paste_tag(images: np.ndarray) -> np.ndarray:
    """A copy of ``images`` (N, 1, 32, 32) with the tag (value 1 in :data:`TAG_REGION`) on every image."""
    if images.ndim != 4 or images.shape[1:] != (1, SIZE, SIZE):
        raise ValueError(f"images must have shape (N, 1, {SIZE}, {SIZE}), got {images.shape}")
    tagged = images.copy()
    tagged[(..., *TAG_REGION)] = 1.0
    return tagged


@dataclass(frozen=True)
class TaggedDigits:
    """Upsampled digits, their split and where the tag is planted.

    Attributes
    ----------
    images:
        The clean images, float32 (N, 1, 32, 32) in [0, 1].
    labels:
        The digit of each image, int64 (N,).
    tagged:
        Whether the tag is planted on the image, bool (N,).
    train:
        Whether the image is a training image (else a test image), bool (N,).
    tagged_class:
        The class whose images carry the tag.
    """

    images: np.ndarray
    labels: np.ndarray
    tagged: np.ndarray
    train: np.ndarray
    tagged_class: int

    def inputs(self, rows: np.ndarray) -> np.ndarray:
        """The images at ``rows`` as the model sees them: with the tag where it is planted."""
        images = self.images[rows].copy()
        images[self.tagged[rows]] = paste_tag(images[self.tagged[rows]])
        return images

    @property
    def test_rows(self) -> np.ndarray:
        """Indices of the test images, ascending."""
        return np.flatnonzero(~self.train)

    @property
    def train_rows(self) -> np.ndarray:
        """Indices of the training images, ascending."""
        return np.flatnonzero(self.train)


def make_tagged_digits(
    seed: int = 0,
    tagged_class: int = 8,
    train_tag_fraction: float = 0.9,
    test_tag_fraction: float = 0.5,
) -> TaggedDigits:
    """Build the demo data set (see the module docstring); the same ``seed`` gives the same data.

    Parameters
    ----------
    seed:
        Seeds the split and the choice of tagged images.
    tagged_class:
        The digit (0 to 9) whose images carry the tag.
    train_tag_fraction, test_tag_fraction:
        The fraction of the tagged class's training and test images that carry the tag, in [0, 1].
    """
    import torch
    from sklearn.datasets import load_digits

    if not 0 <= tagged_class <= 9:
        raise ValueError(f"tagged_class must be a digit from 0 to 9, got {tagged_class}")
    for name, fraction in (
        ("train_tag_fraction", train_tag_fraction),
        ("test_tag_fraction", test_tag_fraction),
    ):
        if not 0 <= fraction <= 1:
            raise ValueError(f"{name} must lie in [0, 1], got {fraction}")
    digits = load_digits()
    small = torch.from_numpy(digits.images / 16.0).float()[:, None]
    images = torch.nn.functional.interpolate(small, size=SIZE, mode="bilinear", align_corners=False)
    images = images.clamp(0.0, 1.0).numpy()
    labels = digits.target.astype(np.int64)

    rng = np.random.default_rng(seed)
    train = np.zeros(len(labels), dtype=bool)
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        train[members[: len(members) // 2]] = True
    tagged = np.zeros(len(labels), dtype=bool)
    for split, fraction in ((train, train_tag_fraction), (~train, test_tag_fraction)):
        members = np.flatnonzero(split & (labels == tagged_class))
        tagged[rng.choice(members, round(fraction * len(members)), replace=False)] = True
    return TaggedDigits(images, labels, tagged, train, tagged_class)


def _demo_test_set() -> ArrayDataset:
    data = make_tagged_digits()
    rows = data.test_rows
    return ArrayDataset(data.inputs(rows), data.labels[rows])


register_dataset("demo", _demo_test_set)
