"""The SpRAy report: one self-contained HTML file that opens from the file system in any browser.

Everything is inline: the analysis as JSON in the page, images as base64 PNG data URIs, the style sheet and
a vanilla-JS script that draws SVG (see :mod:`relprop.report._page`); nothing is fetched from a network.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from relprop.report._page import PAGE, SCRIPT, STYLE
from relprop.report.analysis import ClassAnalysis
from relprop.viz import heatmap

__all__ = ["write_report"]

#: Cluster colours (Tableau 10 without its red, which marks the clusters that stand out).
_PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
_SUSPICIOUS = "#c62828"
_META_KEYS = ("dataset", "model", "method", "composite", "target")

Note = tuple[str, Sequence[tuple[str, str]]]


def _png(rgb: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _input_rgb(sample: np.ndarray) -> np.ndarray:
    """A sample (C, H, W) or (H, W) as uint8 RGB, scaled from its own range to [0, 255] if outside [0, 1]."""
    array = np.asarray(sample, dtype=np.float64)
    if array.ndim == 3:
        array = array if array.shape[0] == 3 else array.mean(axis=0)
    if array.ndim == 3:
        array = np.moveaxis(array, 0, -1)
    if not np.isfinite(array).all():
        raise ValueError("an input image holds NaN or infinite values")
    low, high = array.min(), array.max()
    if low < 0 or high > 1:
        array = (array - low) / (high - low) if high > low else np.zeros_like(array)
    rgb = np.rint(array * 255).astype(np.uint8)
    return np.repeat(rgb[..., None], 3, axis=-1) if rgb.ndim == 2 else rgb


def _resized(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if rgb.shape[:2] == shape:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((shape[1], shape[0]), Image.NEAREST))


def _ink_over(colored: np.ndarray, picture: np.ndarray) -> np.ndarray:
    """The heatmap with the input's brightness drawn over it as dark ink: ``heatmap * (1 - 0.6 * gray)``.

    Unlike an alpha blend this keeps zero relevance white on dark-background images such as digits.
    """
    gray = picture.astype(np.float64).mean(axis=-1, keepdims=True) / 255.0
    return np.rint(colored * (1.0 - 0.6 * gray)).astype(np.uint8)


def _shown_positions(analysis: ClassAnalysis, max_images: int) -> set[int]:
    """The samples that get images: all if at most ``max_images``, else each cluster's share of the budget,
    nearest to the prototype first."""
    count = len(analysis.rows)
    if count <= max_images:
        return set(range(count))
    shown: set[int] = set()
    for cluster in analysis.spray.clusters_.cluster_ids:
        members = analysis.members(int(cluster))
        shown.update(members[: max(1, int(max_images * len(members) / count))].tolist())
    return shown


def _images(analysis: ClassAnalysis, inputs: np.ndarray | None, max_images: int) -> dict[str, list | None]:
    shown = _shown_positions(analysis, max_images)
    count = len(analysis.rows)
    heatmaps: list[str | None] = [None] * count
    overlays: list[str | None] = [None] * count if inputs is not None else None
    pictures: list[str | None] = [None] * count if inputs is not None else None
    for position in sorted(shown):
        colored = heatmap(analysis.heatmaps[position])
        heatmaps[position] = _png(colored)
        if inputs is not None:
            picture = _input_rgb(inputs[position])
            pictures[position] = _png(picture)
            overlays[position] = _png(_ink_over(_resized(colored, picture.shape[:2]), picture))
    return {"heatmap": heatmaps, "overlay": overlays, "input": pictures}


def _plain(value):
    """A numpy scalar as the Python value JSON can hold."""
    return value.item() if isinstance(value, np.generic) else value


def _clusters(analysis: ClassAnalysis) -> list[dict]:
    statistics = analysis.spray.clusters_
    test = statistics.artefact_test
    clusters = []
    for row, cluster in enumerate(statistics.cluster_ids.tolist()):
        flagged = bool(test.flagged[row])
        clusters.append(
            {
                "id": cluster,
                "size": int(statistics.sizes[row]),
                "accuracy": None if statistics.accuracy is None else float(statistics.accuracy[row]),
                "artefact": float(statistics.artefact_scores[row]),
                "concentration": float(statistics.concentration[row]),
                "consistency": float(statistics.consistency[row]),
                "lift": float(test.lift[row]),
                "p": float(test.p_values[row]),
                "contrast": float(test.contrast[row]),
                "purity": None if statistics.group_purity is None else float(statistics.group_purity[row]),
                "majority": None
                if statistics.majority_group is None
                else str(_plain(statistics.majority_group[row])),
                "suspicious": flagged,
                "color": _SUSPICIOUS if flagged else _PALETTE[row % len(_PALETTE)],
                "prototype": _png(_resized(heatmap(statistics.prototypes[row]), (96, 96))),
                "members": analysis.members(cluster).tolist(),
            }
        )
    return clusters


def _finding(analysis: ClassAnalysis, clusters: list[dict], group_name: str) -> tuple[str, str]:
    """The headline: which clusters look like a Clever Hans strategy (their artefact score stands out from
    random groups of the class, :func:`relprop.spray.artefact_test`), or that none stands out."""
    test = analysis.spray.clusters_.artefact_test
    strongest = analysis.suspicious_cluster
    if len(clusters) < 2 and strongest is None:
        return " none", (
            "<h2>One strategy</h2><p>The eigengap suggests a single group of heatmaps for class "
            f"{analysis.class_index}: no subset of samples is explained in a distinctly different way.</p>"
        )
    if strongest is None:
        nearest = max(clusters, key=lambda c: c["lift"])["id"]
        return " none", (
            f"<h2>No cluster stands out</h2><p>SpRAy found {len(clusters)} groups of heatmaps for class "
            f"{analysis.class_index}, but in none does the relevance sit in one small fixed region much more "
            f"than in random groups of the class's samples. The highest lift is cluster {nearest}'s, "
            f"{html.escape(test.describe(nearest))}; {html.escape(test.rule)}.</p>"
        )
    flagged = [c for c in clusters if c["suspicious"]]
    main = next(c for c in flagged if c["id"] == strongest)
    others = [c["artefact"] for c in clusters if not c["suspicious"]]
    if len(flagged) == 1:
        heading = f"Cluster {strongest} looks like a Clever Hans strategy"
    else:
        names = ", ".join(str(c["id"]) for c in flagged[:-1]) + f" and {flagged[-1]['id']}"
        heading = f"Clusters {names} look like Clever Hans strategies"
    text = (
        f"<h2>{heading}</h2><p>For the {main['size']} of {len(analysis.rows)} samples of class "
        f"{analysis.class_index} in cluster {strongest} the model's relevance sits in one small region that "
        f"is the same for every sample: {html.escape(test.describe(strongest))}"
        + (f"; at most {max(others):.3f} for the clusters that do not stand out" if others else "")
        + f"; {html.escape(test.rule)}. Look at its prototype and samples below: if that region is not the "
        "object, the model answers from an artefact.</p>"
    )
    if main["purity"] is not None:
        text += (
            f"<p>Known annotation ({html.escape(group_name)}): {main['purity']:.0%} of the cluster's "
            f"samples are '{html.escape(main['majority'])}'.</p>"
        )
    return "", text


def _notes_html(notes: Sequence[Note]) -> str:
    parts = []
    for title, rows in notes:
        cells = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
        parts.append(f'<div class="notes"><h2>{html.escape(title)}</h2><table>{cells}</table></div>')
    return "".join(parts)


def _meta_html(analysis: ClassAnalysis) -> str:
    """The run's parameters that the page shows (those of ``_META_KEYS`` it has), the number of samples and
    of clusters."""
    meta = "".join(
        f"<span><b>{key}</b> {html.escape(str(analysis.params[key]))}</span>"
        for key in _META_KEYS
        if key in analysis.params
    )
    samples, clusters = len(analysis.rows), analysis.spray.n_clusters_
    return meta + f"<span><b>samples</b> {samples}</span><span><b>clusters</b> {clusters}</span>"


def _points(analysis: ClassAnalysis) -> dict[str, list | None]:
    """The scatter's data: each sample's t-SNE position (3 decimals), cluster, index, label, prediction and
    group (None without groups)."""
    return {
        "x": np.round(analysis.tsne[:, 0], 3).tolist(),
        "y": np.round(analysis.tsne[:, 1], 3).tolist(),
        "cluster": analysis.spray.labels_.tolist(),
        "index": analysis.index.tolist(),
        "label": analysis.labels.tolist(),
        "prediction": analysis.predictions.tolist(),
        "group": None if analysis.groups is None else [str(_plain(g)) for g in analysis.groups],
    }


def write_report(
    analysis: ClassAnalysis,
    path: str | Path,
    *,
    inputs: np.ndarray | None = None,
    group_name: str = "annotation",
    title: str | None = None,
    notes: Sequence[Note] = (),
    max_images: int = 1500,
    links: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write the HTML report of a class analysis.

    Parameters
    ----------
    analysis:
        The fitted analysis (:func:`relprop.report.analyse_class`).
    path:
        The HTML file to write; its folder is created.
    inputs:
        The analysed samples (M, C, H, W) or (M, H, W), in the order of ``analysis.rows``, to show under
        their heatmaps; without them only heatmaps are shown. Values outside [0, 1] are rescaled per image.
    group_name:
        What ``analysis.groups`` annotates (e.g. ``"tag planted"``), shown with each cluster's purity.
    title:
        The page title; by default names the class and the data set.
    notes:
        Extra tables ``(title, [(key, value), ...])``, e.g. a behavioural check.
    max_images:
        At most this many samples get images (each cluster its share, nearest to the prototype first), so
        that large classes give a page a browser can open; every sample is still a point of the scatter.
    links:
        Pages next to the report to link from its header, ``(text, relative address)``, e.g. the concept
        atlas ``("concept atlas", "concepts.html")``.
    """
    count = len(analysis.rows)
    if inputs is not None and len(inputs) != count:
        raise ValueError(f"inputs has {len(inputs)} samples, the analysis {count}")
    if max_images < 0:
        raise ValueError(f"max_images must not be negative, got {max_images}")
    spray = analysis.spray
    clusters = _clusters(analysis)
    finding_class, finding = _finding(analysis, clusters, group_name)
    dataset = analysis.params.get("dataset", "?")
    title = title or f"SpRAy: the strategies of the model for class {analysis.class_index} ({dataset})"
    links_html = "".join(
        f'<span><a href="{html.escape(address)}">{html.escape(text)}</a></span>' for text, address in links
    )
    data = {
        "groupName": group_name,
        "spectrum": {"eigenvalues": spray.eigenvalues_.tolist(), "suggested": spray.eigengap_.n_clusters},
        "points": _points(analysis),
        "clusters": clusters,
        "selected": analysis.suspicious_cluster,
        "images": _images(analysis, inputs, max_images),
    }
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    page = PAGE.format(
        title=html.escape(title),
        style=STYLE,
        meta=_meta_html(analysis) + links_html,
        finding_class=finding_class,
        finding=finding,
        notes=_notes_html(notes),
        data=payload,
        script=SCRIPT,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
