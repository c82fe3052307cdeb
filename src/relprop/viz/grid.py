"""Grids of heatmaps: one column per explanation method, one row per sample, with titles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike
from PIL import Image, ImageDraw, ImageFont

from relprop.checks import check_int

from ._arrays import as_float_array
from .images import as_rgb_image, blend, heatmap

_BACKGROUND = (255, 255, 255)
_TEXT_COLOR = (0, 0, 0)


def grid(
    attributions: Mapping[str, torch.Tensor | ArrayLike],
    images: torch.Tensor | Sequence[torch.Tensor | np.ndarray | Image.Image] | None = None,
    *,
    row_titles: Sequence[str] | None = None,
    alpha: float | None = None,
    scale: int = 1,
    pad: int = 4,
    cmap: str = "bwr",
    signed: bool | None = None,
    clip_percentile: float | None = None,
    reduction: str = "sum",
) -> Image.Image:
    """Lay out the heatmaps of several methods (columns) for several samples (rows) in one image.

    Each heatmap is normalized on its own. Titles are drawn with Pillow's default font: the method names
    above the columns (``'input'`` above the images, when given) and ``row_titles`` left of the rows.

    Parameters
    ----------
    attributions : Mapping[str, torch.Tensor or array_like]
        Method name -> attributions of the batch, shaped ``(B, C, H, W)``; the same ``B``, ``H`` and ``W``
        for every method. Columns follow the mapping's order.
    images : torch.Tensor or sequence of images, optional
        The ``B`` inputs (a ``(B, C, H, W)`` float tensor in [0, 1], or a sequence of anything
        :func:`~relprop.viz.images.as_rgb_image` accepts), shown in a first column titled ``'input'``.
    row_titles : sequence of str, optional
        ``B`` titles, e.g. the labels or predictions of the samples.
    alpha : float, optional
        If given, draw each heatmap over its input image with this opacity (needs ``images``); see
        :func:`~relprop.viz.images.overlay`.
    scale : int, default 1
        Integer factor by which every cell is enlarged (nearest neighbour), for small inputs.
    pad : int, default 4
        White space, in pixels, around and between the cells.
    cmap, signed, clip_percentile, reduction
        As in :func:`~relprop.viz.images.heatmap`.

    Returns
    -------
    PIL.Image.Image
        An RGB image; save it with ``.save("grid.png")``.
    """
    if not isinstance(attributions, Mapping) or len(attributions) == 0:
        raise ValueError("attributions must be a non-empty mapping from method name to a (B, C, H, W) batch")
    check_int(scale, "scale")
    check_int(pad, "pad", minimum=0)
    if alpha is not None and images is None:
        raise ValueError("alpha draws the heatmaps over the input images: pass images as well")
    if alpha is not None and not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")

    columns = _heatmap_columns(attributions, cmap, signed, clip_percentile, reduction)
    if images is not None:
        inputs = _input_column(images, columns)
        if alpha is not None:
            columns = {name: blend(inputs, cells, alpha) for name, cells in columns.items()}
        columns = {"input": inputs, **columns}
    n_rows = len(next(iter(columns.values())))
    if row_titles is not None and len(row_titles) != n_rows:
        raise ValueError(f"got {len(row_titles)} row titles for {n_rows} samples")

    return _compose(columns, row_titles, scale, pad)


def _heatmap_columns(
    attributions: Mapping[str, torch.Tensor | ArrayLike],
    cmap: str,
    signed: bool | None,
    clip_percentile: float | None,
    reduction: str,
) -> dict[str, np.ndarray]:
    """The heatmaps of every method, ``(B, H, W, 3)`` each, by method name; all of the same shape."""
    columns = {}
    for name, batch in attributions.items():
        array = as_float_array(batch, f"attributions[{name!r}]")
        if array.ndim != 4:
            raise ValueError(f"attributions[{name!r}] must have shape (B, C, H, W), got shape {array.shape}")
        columns[str(name)] = heatmap(
            array, cmap=cmap, signed=signed, clip_percentile=clip_percentile, reduction=reduction
        )
    shapes = {name: cells.shape[:3] for name, cells in columns.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"all methods need the same (B, H, W), got {shapes}")
    return columns


def _input_column(
    images: torch.Tensor | Sequence[torch.Tensor | np.ndarray | Image.Image],
    columns: Mapping[str, np.ndarray],
) -> np.ndarray:
    """The images as RGB cells ``(B, H, W, 3)``, checked against the heatmap ``columns``: one per row, of
    their size, and the title ``'input'`` free."""
    n_rows, height, width = next(iter(columns.values())).shape[:3]
    if "input" in columns:
        raise ValueError("the column title 'input' is taken by the images: rename that method")
    if len(images) != n_rows:
        raise ValueError(f"got {len(images)} images for {n_rows} samples")
    inputs = np.stack([as_rgb_image(image) for image in images])
    if inputs.shape[1:3] != (height, width):
        raise ValueError(f"images are {inputs.shape[1:3]} pixels but the attributions {(height, width)}")
    return inputs


def _compose(
    columns: dict[str, np.ndarray], row_titles: Sequence[str] | None, scale: int, pad: int
) -> Image.Image:
    """Paste the ``(B, H, W, 3)`` cells of every column into one titled, padded image."""
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_height = measure.textbbox((0, 0), "Ag", font=font)[3]
    n_rows, height, width = next(iter(columns.values())).shape[:3]
    cell_height, cell_width = height * scale, width * scale
    column_width = max(cell_width, *(int(np.ceil(measure.textlength(name, font=font))) for name in columns))
    title_width = 0
    if row_titles is not None:
        title_width = (
            max(int(np.ceil(measure.textlength(str(title), font=font))) for title in row_titles) + pad
        )
    left, top = pad + title_width, 2 * pad + text_height

    canvas = Image.new(
        "RGB",
        (left + len(columns) * (column_width + pad), top + n_rows * (cell_height + pad)),
        _BACKGROUND,
    )
    draw = ImageDraw.Draw(canvas)
    for j, (name, cells) in enumerate(columns.items()):
        x = left + j * (column_width + pad)
        draw.text(
            (x + (column_width - measure.textlength(name, font=font)) / 2, pad), name, _TEXT_COLOR, font
        )
        for i, cell in enumerate(cells):
            enlarged = cell.repeat(scale, axis=0).repeat(scale, axis=1)
            canvas.paste(
                Image.fromarray(enlarged),
                (x + (column_width - cell_width) // 2, top + i * (cell_height + pad)),
            )
    for i, title in enumerate(row_titles or ()):
        draw.text(
            (pad, top + i * (cell_height + pad) + (cell_height - text_height) / 2),
            str(title),
            _TEXT_COLOR,
            font,
        )
    return canvas
