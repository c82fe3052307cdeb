"""The report in a real browser: Debian's Chromium, headless, driven by playwright.

Skipped (with the reason) where ``/usr/bin/chromium`` or the ``playwright`` package is missing; playwright's
own browser download is not used.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest

from relprop import store
from relprop.report import analyse_class, write_report
from relprop.spray import SpRAy

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need `pip install playwright`"
)
pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"the browser tests need Chromium at {CHROMIUM} (apt install chromium)"
)


@pytest.fixture(scope="module")
def report(two_strategies, tmp_path_factory):
    path, tag = two_strategies
    with store.open(path) as run:
        analysis = analyse_class(run, 1, SpRAy(size=8, seed=0), np.where(tag, "yes", "no"))
    inputs = np.random.default_rng(0).uniform(0, 1, (len(analysis.rows), 1, 16, 16))
    page = write_report(analysis, tmp_path_factory.mktemp("report") / "index.html", inputs=inputs,
                        group_name="tag planted", notes=[("Check", [("a", "1")])])  # fmt: skip
    return page, analysis


@pytest.fixture(scope="module")
def browser_page(report, tmp_path_factory):
    """The report opened from file://, with every console error and uncaught exception collected."""
    path, _ = report
    profile = tmp_path_factory.mktemp("chromium-profile")
    with playwright_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=ARGS, headless=True,
            viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        try:
            page = context.new_page()
            errors = []
            page.on(
                "console", lambda message: errors.append(message.text) if message.type == "error" else None
            )
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(path.resolve().as_uri())
            page.wait_for_selector("#scatter circle.point")
            yield page, errors
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


def samples_listed(page) -> list[int]:
    return [
        int(s)
        for s in page.eval_on_selector_all("#cluster-detail .sample", "n => n.map(x => x.dataset.sample)")
    ]


def test_renders_without_errors(browser_page, report):
    page, errors = browser_page
    _, analysis = report
    assert errors == []
    assert page.locator("#scatter circle.point").count() == len(analysis.rows)
    assert page.locator("#spectrum circle.eigenvalue").count() == len(analysis.spray.eigenvalues_)
    assert page.locator("#eigengap").count() == 1
    assert page.locator(".cluster-card").count() == analysis.spray.n_clusters_
    assert page.locator(".cluster-card.suspicious").count() == 1
    assert "looks like a Clever Hans strategy" in page.locator("#finding").inner_text()
    card = page.locator(".cluster-card.suspicious").inner_text()
    test = analysis.spray.clusters_.artefact_test
    row = int(np.flatnonzero(test.cluster_ids == analysis.suspicious_cluster)[0])
    assert "stands out" in card
    assert (
        f"× random groups\t{test.lift[row]:.3f}" in card
        and f"p (corrected)\t{test.p_values[row]:.3f}" in card
    )


def test_suspicious_cluster_shown_first(browser_page, report):
    page, _ = browser_page
    _, analysis = report
    suspicious = analysis.suspicious_cluster
    assert page.locator("#cluster-detail").get_attribute("data-cluster") == str(suspicious)
    assert samples_listed(page) == analysis.members(suspicious).tolist()


def test_selecting_a_cluster_lists_its_samples(browser_page, report):
    page, errors = browser_page
    _, analysis = report
    other = next(int(c) for c in analysis.spray.clusters_.cluster_ids if c != analysis.suspicious_cluster)
    page.click(f'.legend button[data-cluster="{other}"]')
    assert page.locator("#cluster-detail").get_attribute("data-cluster") == str(other)
    assert samples_listed(page) == analysis.members(other).tolist()
    dimmed = page.locator("#scatter circle.point.dim").count()
    assert dimmed == int((analysis.spray.labels_ != other).sum())
    # clicking a point selects the point's cluster, clicking a card too
    point = int(analysis.members(analysis.suspicious_cluster)[0])
    page.click(f'#scatter circle.point[data-sample="{point}"]')
    assert page.locator("#cluster-detail").get_attribute("data-cluster") == str(analysis.suspicious_cluster)
    page.click(f'.cluster-card[data-cluster="{other}"]')
    assert samples_listed(page) == analysis.members(other).tolist()
    assert errors == []


def test_hover_shows_the_sample_and_its_heatmap(browser_page, report):
    page, errors = browser_page
    _, analysis = report
    page.hover('#scatter circle.point[data-sample="3"]')
    tooltip = page.locator("#tooltip")
    assert tooltip.is_visible()
    assert tooltip.locator("img").count() == 2  # the input and its heatmap
    assert f"sample {analysis.index[3]} · cluster {analysis.spray.labels_[3]}" in tooltip.inner_text()
    page.mouse.move(0, 0)
    assert not tooltip.is_visible()
    assert errors == []


def test_screenshot(browser_page, tmp_path):
    page, _ = browser_page
    path = tmp_path / "report.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
