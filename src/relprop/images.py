r"""Image files as the 8-bit RGB pictures that image models take, decoded faithfully or refused.

Pillow opens many pixel formats, but ``Image.convert("RGB")`` clips every value to 0..255: a 16-bit
greyscale PNG (mode ``I;16``, values up to 65535) becomes white, a float TIFF (mode ``F``, values in
[0, 1]) black. :func:`to_rgb` scales each mode from its own full range instead,

.. math::

    p = \operatorname{round}\Big(255 \, \frac{v}{v_\text{max}}\Big), \qquad
    v_\text{max} = 65535 \text{ (16 bits)}, \quad 1 \text{ (floats)},

so the picture keeps its brightness, to within half an 8-bit step (the precision of the models' inputs).
Modes of 8 bits per channel (``1``, ``L``, ``P``, ``RGBA``, ``CMYK``, ``YCbCr``, ``LAB``, ...) are
converted by Pillow (an alpha channel is dropped, as torchvision's image loader does). Pixels whose range
is unknown (32-bit integers, floats outside [0, 1], NaN) are refused rather than guessed.

:func:`read_image` also turns the picture upright as its EXIF orientation tag says (cameras store it
sideways and tag it), and refuses files that would not fit in memory once a model resizes them: more
pixels than Pillow's decompression-bomb limit ``PIL.Image.MAX_IMAGE_PIXELS``, or an aspect ratio above
:data:`MAX_ASPECT_RATIO` (models resize the shorter side to about 256 pixels, so a 144-byte 20000 x 1
PNG would grow to 5 million x 256 pixels).

:func:`collect_photos` gathers the photos that files, folders and the names of scikit-image's sample
photos (:data:`SAMPLE_PHOTOS`) name.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_ASPECT_RATIO",
    "SAMPLE_PHOTOS",
    "Photo",
    "collect_photos",
    "read_image",
    "to_rgb",
]

#: The most elongated image :func:`read_image` accepts, longer side over shorter side.
MAX_ASPECT_RATIO = 20

#: The largest value of the modes whose pixels are not 8-bit: 16-bit integers and floats in [0, 1].
_FULL_SCALE = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "F": 1.0}

#: Formats whose mode ``I`` holds 16-bit values: PGM (Pillow scales its maximum value to 65535) and PNG
#: (16-bit greyscale opened as ``I`` by older Pillow).
_SIXTEEN_BIT_FORMATS = ("PPM", "PNG")


def to_rgb(image: Image.Image, where: str = "image") -> Image.Image:
    """``image`` as 8-bit RGB, each mode scaled from its own full range (see the module docstring).

    Parameters
    ----------
    image:
        A PIL image of any mode.
    where:
        Names the image in errors (its file).

    Raises
    ------
    ValueError
        If the pixels' range is unknown (mode ``I`` of 32-bit integers, floats outside [0, 1], NaN or
        infinite values) or Pillow cannot convert the mode.
    """
    if image.mode == "RGB":
        return image
    scale = _full_scale(image, where)
    if scale is None:
        try:
            return image.convert("RGB")
        except ValueError as error:
            raise ValueError(f"{where}: cannot convert Pillow mode {image.mode} to RGB ({error})") from None
    values = np.asarray(image, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{where}: the image holds NaN or infinite pixel values")
    if values.size and (values.min() < 0 or values.max() > scale):
        kind = "float pixels" if image.mode == "F" else f"{image.mode} pixels"
        raise ValueError(
            f"{where}: {kind} must lie in [0, {scale:g}], found [{values.min():g}, {values.max():g}]; "
            "relprop does not guess what the values mean: rescale the image to that range"
        )
    grey = np.rint(values * (255 / scale)).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")


def _full_scale(image: Image.Image, where: str) -> float | None:
    """The largest value of ``image``'s pixels, or ``None`` for 8-bit modes that Pillow converts."""
    if image.mode in _FULL_SCALE:
        return _FULL_SCALE[image.mode]
    if image.mode == "I":
        if image.format in _SIXTEEN_BIT_FORMATS:
            return 65535
        raise ValueError(
            f"{where}: its pixels are 32-bit integers (Pillow mode I), which have no standard range; "
            "save it with 8 or 16 bits per channel, or as floats in [0, 1]"
        )
    return None


def read_image(path: str | Path) -> Image.Image:
    """The image file ``path`` as an upright 8-bit RGB image, its pixels decoded by :func:`to_rgb`.

    Raises
    ------
    ValueError
        If Pillow cannot read the file, if it has more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``
        (a possible decompression bomb) or an aspect ratio above :data:`MAX_ASPECT_RATIO`, if it holds
        several frames (an animation, a multi-page TIFF), or if :func:`to_rgb` refuses its pixels.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise ValueError(
            f"{path}: {error} (PIL.Image.MAX_IMAGE_PIXELS is {Image.MAX_IMAGE_PIXELS}; raise it only for "
            "files you trust)"
        ) from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not an image that Pillow can read ({error})") from None
    with image:
        width, height = image.size
        if min(width, height) == 0 or max(width, height) > MAX_ASPECT_RATIO * min(width, height):
            raise ValueError(
                f"{path}: {width} x {height} pixels is more elongated than {MAX_ASPECT_RATIO}:1; models "
                "resize the shorter side to about 256 pixels, so memory grows with the ratio: crop the image"
            )
        frames = getattr(image, "n_frames", 1)
        if frames > 1 and image.format != "MPO":  # a camera's MPO JPEG: the first frame is the picture
            raise ValueError(
                f"{path}: the file holds {frames} frames (an animation or a multi-page file); relprop "
                "explains still images: save the frame you mean as its own file"
            )
        try:
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # in place, the image keeps its format
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: Pillow cannot decode the image ({error})") from None
        return to_rgb(image, str(path))


#: scikit-image's bundled photos, loaded by name by :func:`collect_photos` (and when it is given none).
SAMPLE_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")

#: The file suffixes :func:`collect_photos` reads in a folder.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Photo:
    """A photo to explain: ``name`` names its results, ``image`` is upright 8-bit RGB (:func:`read_image`)."""

    name: str
    image: Image.Image


def collect_photos(arguments: Sequence[str]) -> list[Photo]:
    """The photos that the arguments name.

    Parameters
    ----------
    arguments:
        Image files, folders of them (not recursive, the files with a suffix of :data:`IMAGE_SUFFIXES`),
        and names of :data:`SAMPLE_PHOTOS`; no arguments stand for those sample photos.

    Returns
    -------
    list[Photo]
        Named after the files, made unique with ``-2``, ``-3``, ...

    Raises
    ------
    ValueError
        If an argument is neither a file, a folder of images, nor a sample photo, or :func:`read_image`
        refuses a file.
    """
    photos = []
    for argument in arguments or SAMPLE_PHOTOS:
        path = Path(argument)
        if path.is_dir():
            files = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not files:
                raise ValueError(f"{path}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            photos.extend(Photo(f.stem, read_image(f)) for f in files)
        elif path.is_file():
            photos.append(Photo(path.stem, read_image(path)))
        elif argument in SAMPLE_PHOTOS:
            import skimage.data

            photos.append(Photo(argument, Image.fromarray(getattr(skimage.data, argument)())))
        else:
            raise ValueError(
                f"{argument}: no such file or folder (nor a sample photo: {', '.join(SAMPLE_PHOTOS)})"
            )
    seen: dict[str, int] = {}
    for k, photo in enumerate(photos):
        seen[photo.name] = seen.get(photo.name, 0) + 1
        if seen[photo.name] > 1:
            photos[k] = Photo(f"{photo.name}-{seen[photo.name]}", photo.image)
    return photos
