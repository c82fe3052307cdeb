"""The report page's HTML skeleton, style sheet and script (vanilla JS, SVG; no external resources).

The script reads the JSON in ``<script id="report-data">`` and draws everything from it:
the eigenvalue spectrum with the chosen gap, the t-SNE scatter (hover: the sample and its heatmap; click:
its cluster), the cluster cards (prototype, size, accuracy, artefact score and its test, the clusters
that stand out flagged) and the selected cluster's samples.
"""

STYLE = """
:root { --ink: #1d2330; --muted: #5b6474; --line: #d9dde5; --warn: #c62828; --warn-bg: #fdecea; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       background: #f5f6f8; }
header { padding: 18px 28px 10px; background: #fff; border-bottom: 1px solid var(--line); }
h1 { font-size: 21px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 0 0 8px; }
.meta { color: var(--muted); font-size: 12.5px; }
.meta span { margin-right: 14px; }
main { padding: 16px 28px 40px; display: grid; gap: 16px;
       grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); }
.panel { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
.wide { grid-column: 1 / -1; }
.finding { border-left: 5px solid var(--warn); background: var(--warn-bg); }
.finding.none { border-left-color: #2e7d32; background: #edf7ee; }
.finding p { margin: 4px 0; }
.hint { color: var(--muted); font-size: 12.5px; margin: 0 0 6px; }
svg text { font-size: 11px; fill: var(--muted); }
svg .axis { stroke: #9aa2b1; }
#scatter circle.point { cursor: pointer; stroke: #fff; stroke-width: 0.8; }
#scatter circle.point.dim { opacity: 0.18; }
#scatter circle.point.hover { stroke: var(--ink); stroke-width: 2; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 14px; margin-top: 6px; }
.legend button { border: 1px solid var(--line); background: #fff; border-radius: 14px; padding: 2px 10px;
                 cursor: pointer; font: inherit; }
.legend button.selected { border-color: var(--ink); box-shadow: 0 0 0 1px var(--ink); }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 5px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.cluster-card { width: 190px; border: 1px solid var(--line); border-radius: 8px; padding: 8px;
                cursor: pointer; background: #fff; }
.cluster-card.selected { box-shadow: 0 0 0 2px var(--ink); }
.cluster-card.suspicious { border: 2px solid var(--warn); background: var(--warn-bg); }
.cluster-card img { width: 100%; image-rendering: pixelated; border-radius: 4px; display: block; }
.cluster-card table { width: 100%; font-size: 12.5px; border-collapse: collapse; margin-top: 4px; }
.cluster-card td:last-child { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; background: var(--warn); color: #fff; border-radius: 4px; padding: 0 6px;
         font-size: 11.5px; font-weight: 600; margin-left: 4px; }
.samples { display: grid; grid-template-columns: repeat(auto-fill, minmax(76px, 1fr)); gap: 8px; }
.sample { font-size: 11px; color: var(--muted); text-align: center; }
.sample img { width: 100%; image-rendering: pixelated; border-radius: 3px; display: block; }
.sample .noimage { aspect-ratio: 1; background: #eceff3; display: flex; align-items: center;
                   justify-content: center; border-radius: 3px; }
.notes table { border-collapse: collapse; font-size: 13px; }
.notes td, .notes th { border-bottom: 1px solid var(--line); padding: 4px 12px 4px 0; text-align: left; }
#tooltip { position: fixed; pointer-events: none; background: #fff; border: 1px solid var(--line);
           border-radius: 6px; padding: 8px; box-shadow: 0 4px 16px rgba(0,0,0,.15); display: none;
           font-size: 12px; z-index: 10; }
#tooltip .pair { display: flex; gap: 6px; }
#tooltip img { width: 96px; height: 96px; image-rendering: pixelated; }
#tooltip .caption { text-align: center; color: var(--muted); }
.concept, .decomposition { border-top: 1px solid var(--line); padding: 8px 0; }
.concept h3, .decomposition h3 { font-size: 14px; margin: 0 0 6px; }
.concept .share { color: var(--muted); font-weight: normal; margin-left: 6px; }
.references, .decomposition, .whole { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0; font-size: 11px; color: var(--muted); text-align: center; }
figure img, .whole img { display: block; width: 72px; height: auto; image-rendering: pixelated;
                         border-radius: 3px; margin-bottom: 2px; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const clusterById = new Map(data.clusters.map(c => [c.id, c]));

  function svgEl(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }
  function el(name, attrs, text, parent) {
    const node = document.createElement(name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined && text !== null) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  const pct = v => (v === null || v === undefined) ? "n/a" : (100 * v).toFixed(0) + "%";
  const num = v => (v === null || v === undefined) ? "n/a" : v.toFixed(3);
  function colour(cluster) { const c = clusterById.get(cluster); return c ? c.color : "#9e9e9e"; }

  // ---------------------------------------------------------------- eigenvalue spectrum
  function drawSpectrum() {
    const values = data.spectrum.eigenvalues, k = data.spectrum.suggested;
    const box = document.getElementById("spectrum");
    const w = 520, h = 240, left = 44, right = 12, top = 14, bottom = 34;
    const svg = svgEl("svg", {viewBox: `0 0 ${w} ${h}`, width: "100%", role: "img",
                             "aria-label": "eigenvalue spectrum"}, box);
    const maxV = Math.max(...values, 1e-9);
    const x = i => left + (i + 0.5) * (w - left - right) / values.length;
    const y = v => top + (1 - v / maxV) * (h - top - bottom);
    svgEl("line", {class: "axis", x1: left, y1: h - bottom, x2: w - right, y2: h - bottom}, svg);
    svgEl("line", {class: "axis", x1: left, y1: top, x2: left, y2: h - bottom}, svg);
    for (const t of [0, 0.5, 1]) {
      svgEl("text", {x: left - 6, y: y(t * maxV) + 4, "text-anchor": "end"}, svg)
        .textContent = (t * maxV).toFixed(2);
    }
    if (k >= 1 && k < values.length) {
      const gap = svgEl("g", {id: "eigengap"}, svg);
      svgEl("rect", {x: x(k - 1), y: y(values[k]), width: x(k) - x(k - 1),
                     height: y(values[k - 1]) - y(values[k]), fill: "#c62828", opacity: 0.12}, gap);
      svgEl("line", {x1: (x(k - 1) + x(k)) / 2, x2: (x(k - 1) + x(k)) / 2, y1: top, y2: h - bottom,
                     stroke: "#c62828", "stroke-dasharray": "4 3"}, gap);
      svgEl("text", {x: (x(k - 1) + x(k)) / 2 + 6, y: top + 10, fill: "#c62828", style: "fill:#c62828"}, gap)
        .textContent = `largest gap: ${k} cluster${k > 1 ? "s" : ""}`;
    }
    values.forEach((v, i) => {
      const c = svgEl("circle", {class: "eigenvalue", cx: x(i), cy: y(v), r: 3.5,
                                 fill: i < k ? "#c62828" : "#5b6474"}, svg);
      svgEl("title", {}, c).textContent = `eigenvalue ${i + 1}: ${v.toFixed(4)}`;
      if (values.length <= 40 && (i % Math.ceil(values.length / 16) === 0 || i === k - 1 || i === k)) {
        svgEl("text", {x: x(i), y: h - bottom + 14, "text-anchor": "middle"}, svg).textContent = i + 1;
      }
    });
    svgEl("text", {x: (left + w - right) / 2, y: h - 4, "text-anchor": "middle"}, svg)
      .textContent = "eigenvalue number (ascending)";
  }

  // ---------------------------------------------------------------- t-SNE scatter
  const tooltip = document.getElementById("tooltip");
  function showTooltip(event, i) {
    tooltip.replaceChildren();
    const pair = el("div", {class: "pair"}, null, tooltip);
    const images = data.images;
    for (const [kind, caption] of [["input", "input"], ["heatmap", "heatmap"]]) {
      const uri = images[kind] ? images[kind][i] : null;
      if (!uri) continue;
      const fig = el("div", {}, null, pair);
      el("img", {src: uri, alt: caption}, null, fig);
      el("div", {class: "caption"}, caption, fig);
    }
    if (!pair.childElementCount) el("div", {class: "caption"}, "(image not stored in this report)", pair);
    const p = data.points;
    let text = `sample ${p.index[i]} · cluster ${p.cluster[i]} · label ${p.label[i]}` +
      ` · predicted ${p.prediction[i]}`;
    if (p.group) text += ` · ${data.groupName}: ${p.group[i]}`;
    el("div", {}, text, tooltip);
    tooltip.style.display = "block";
    const x = Math.min(event.clientX + 14, window.innerWidth - tooltip.offsetWidth - 8);
    const y = Math.min(event.clientY + 14, window.innerHeight - tooltip.offsetHeight - 8);
    tooltip.style.left = x + "px"; tooltip.style.top = y + "px";
  }
  function drawScatter() {
    const p = data.points, n = p.x.length;
    const box = document.getElementById("scatter");
    const w = 520, h = 400, pad = 14;
    const svg = svgEl("svg", {viewBox: `0 0 ${w} ${h}`, width: "100%", role: "img",
                             "aria-label": "t-SNE of the spectral embedding"}, box);
    const [x0, x1] = [Math.min(...p.x), Math.max(...p.x)], [y0, y1] = [Math.min(...p.y), Math.max(...p.y)];
    const sx = v => pad + (v - x0) / ((x1 - x0) || 1) * (w - 2 * pad);
    const sy = v => h - pad - (v - y0) / ((y1 - y0) || 1) * (h - 2 * pad);
    for (let i = 0; i < n; i++) {
      const c = svgEl("circle", {class: "point", cx: sx(p.x[i]), cy: sy(p.y[i]), r: n > 2000 ? 2.5 : 4.5,
                                 fill: colour(p.cluster[i]), "data-cluster": p.cluster[i],
                                 "data-sample": i}, svg);
      c.addEventListener("mouseenter", e => { c.classList.add("hover"); showTooltip(e, i); });
      c.addEventListener("mousemove", e => showTooltip(e, i));
      c.addEventListener("mouseleave", () => {
        c.classList.remove("hover");
        tooltip.style.display = "none";
      });
      c.addEventListener("click", () => select(p.cluster[i]));
    }
    const legend = document.getElementById("legend");
    for (const c of data.clusters) {
      const b = el("button", {type: "button", "data-cluster": c.id}, null, legend);
      el("span", {class: "swatch", style: `background:${c.color}`}, null, b);
      b.appendChild(document.createTextNode(`cluster ${c.id} (${c.size})` + (c.suspicious ? " ⚠" : "")));
      b.addEventListener("click", () => select(c.id));
    }
  }

  // ---------------------------------------------------------------- cluster cards and samples
  function drawCards() {
    const box = document.getElementById("cards");
    for (const c of data.clusters) {
      const card = el("div", {class: "cluster-card" + (c.suspicious ? " suspicious" : ""),
                              "data-cluster": c.id, tabindex: 0}, null, box);
      const head = el("div", {}, null, card);
      el("span", {class: "swatch", style: `background:${c.color}`}, null, head);
      el("strong", {}, `cluster ${c.id}`, head);
      if (c.suspicious) el("span", {class: "badge"}, "stands out", head);
      el("img", {src: c.prototype, alt: `mean heatmap of cluster ${c.id}`,
                 title: "prototype: mean heatmap"}, null, card);
      const table = el("table", {}, null, card);
      const rows = [["samples", c.size], ["accuracy", pct(c.accuracy)], ["artefact score", num(c.artefact)],
                    ["× random groups", num(c.lift)], ["p (corrected)", num(c.p)],
                    ["× others' neighbourhoods", num(c.contrast)]];
      if (c.purity !== null) rows.push([`${data.groupName}: ${c.majority}`, pct(c.purity)]);
      for (const [k, v] of rows) {
        const tr = el("tr", {}, null, table);
        el("td", {}, k, tr);
        el("td", {}, String(v), tr);
      }
      card.addEventListener("click", () => select(c.id));
      card.addEventListener("keydown", e => { if (e.key === "Enter") select(c.id); });
    }
  }
  function select(id) {
    const c = clusterById.get(id);
    if (!c) return;
    document.querySelectorAll("#scatter circle.point").forEach(pt =>
      pt.classList.toggle("dim", Number(pt.dataset.cluster) !== id));
    document.querySelectorAll("[data-cluster].selected").forEach(n => n.classList.remove("selected"));
    document.querySelectorAll(`.legend button[data-cluster="${id}"], .cluster-card[data-cluster="${id}"]`)
      .forEach(n => n.classList.add("selected"));
    const detail = document.getElementById("cluster-detail");
    detail.dataset.cluster = id;
    const title = detail.querySelector("h2");
    title.replaceChildren(
      document.createTextNode(`Cluster ${c.id}: ${c.size} samples, nearest to its prototype first`));
    if (c.suspicious) el("span", {class: "badge"}, "stands out", title);
    const stats = detail.querySelector(".hint");
    stats.textContent = `accuracy ${pct(c.accuracy)} · artefact score ${num(c.artefact)} ` +
      `(concentration ${num(c.concentration)}, consistency ${num(c.consistency)}; ` +
      `${num(c.lift)} times that of random groups of the class, p = ${num(c.p)}; ` +
      `neighbourhoods ${num(c.contrast)} times as artefact-like as the other samples')` +
      (c.purity !== null ? ` · ${data.groupName}: ${c.majority} for ${pct(c.purity)}` : "") +
      (data.images.overlay ? " · heatmaps over the inputs (red: evidence for the class, blue: against)"
                           : " · heatmaps (red: evidence for the class, blue: against)");
    const grid = detail.querySelector(".samples");
    grid.replaceChildren();
    const p = data.points;
    for (const i of c.members) {
      const tile = el("div", {class: "sample", "data-sample": i}, null, grid);
      const uri = (data.images.overlay || data.images.heatmap)[i];
      if (uri) el("img", {src: uri, alt: `sample ${p.index[i]}`}, null, tile);
      else el("div", {class: "noimage"}, "no image", tile);
      el("div", {}, `#${p.index[i]}` + (p.label[i] !== p.prediction[i] ? ` → ${p.prediction[i]}` : ""), tile);
      tile.addEventListener("mouseenter", e => showTooltip(e, i));
      tile.addEventListener("mouseleave", () => { tooltip.style.display = "none"; });
    }
  }

  drawSpectrum();
  drawScatter();
  drawCards();
  const first = clusterById.get(data.selected) || data.clusters[0];
  if (first) select(first.id);
})();
"""

#: The start of every page: its title, style and header with the run's parameters.
_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header>
  <h1>{title}</h1>
  <div class="meta">{meta}</div>
</header>
"""

ATLAS_PAGE = (
    _HEAD
    + """<main>{sections}</main>
</body>
</html>
"""
)

PAGE = (
    _HEAD
    + """<main>
  <section class="panel wide finding{finding_class}" id="finding">{finding}</section>
  <section class="panel">
    <h2>Strategies in the heatmaps: t-SNE of the spectral embedding</h2>
    <p class="hint">One point per sample. Hover a point to see the sample and its heatmap; click a point or a
    cluster to list its samples below.</p>
    <div id="scatter"></div>
    <div class="legend" id="legend"></div>
  </section>
  <section class="panel">
    <h2>Eigenvalue spectrum of the heatmaps' similarity graph</h2>
    <p class="hint">Smallest eigenvalues of the normalized graph Laplacian. k well-separated groups of
    similar heatmaps give k eigenvalues near zero and then a jump: the largest gap (marked) suggests the
    number of clusters.</p>
    <div id="spectrum"></div>
    {notes}
  </section>
  <section class="panel wide">
    <h2>Clusters: prototype (mean heatmap) and statistics</h2>
    <p class="hint">Artefact score: how much of the relevance sits in one small region that is the same for
    all samples of the cluster (1: all of it). It is compared with random groups of as many samples of the
    class: "× random groups" is the ratio, p the permutation p-value corrected for the number of clusters;
    "× others' neighbourhoods" compares groups of similar heatmaps around the cluster's samples with those
    around the other samples. A cluster that stands out, with a region outside the object, is the mark of a
    "Clever Hans" strategy.
    Click a cluster to see its samples.</p>
    <div class="cards" id="cards"></div>
  </section>
  <section class="panel wide" id="cluster-detail">
    <h2></h2>
    <p class="hint"></p>
    <div class="samples"></div>
  </section>
</main>
<div id="tooltip"></div>
<script type="application/json" id="report-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""
)
