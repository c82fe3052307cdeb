"""Rendering of explanations: image heatmaps, overlays, grids and text heatmaps.

* :func:`heatmap`, :func:`overlay`, :func:`save_heatmap` (:mod:`relprop.viz.images`): attributions
  ``(C, H, W)`` or ``(B, C, H, W)`` as uint8 RGB arrays or PNG files;
* :func:`grid` (:mod:`relprop.viz.grid`): methods as columns, samples as rows, one titled image;
* :func:`text_heatmap_html`, :func:`text_heatmap_spans`, :func:`save_text_heatmap`,
  :func:`text_heatmap_ansi` (:mod:`relprop.viz.text`).

Every heatmap (and every text) is normalized by its own maximum absolute relevance (or a percentile of
it), so that zero is white and the largest relevance reaches the end of the colormap
(:mod:`relprop.viz.colormaps`). Matplotlib is used only for its colormap registry; no figure is opened.
"""

from .grid import grid
from .images import heatmap, overlay, save_heatmap
from .text import save_text_heatmap, text_heatmap_ansi, text_heatmap_html, text_heatmap_spans

__all__ = [
    "grid",
    "heatmap",
    "overlay",
    "save_heatmap",
    "save_text_heatmap",
    "text_heatmap_ansi",
    "text_heatmap_html",
    "text_heatmap_spans",
]
