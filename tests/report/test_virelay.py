"""A ViRelAy project read back with ViRelAy's own classes (virelay.model.Project), and shown in its UI.

ViRelAy 1.0 pins numpy<2.3 and pillow<12 and asks for Python 3.11.13, so it lives in an environment of its
own, ``.virelay-venv`` (made by ``.ci/run``); it reads the project in a subprocess (``virelay_reader.py``)
and its server runs from there. Skipped, saying so, where that environment is missing.
"""

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from relprop import store
from relprop.data import ArrayDataset
from relprop.report import analyse_class, write_virelay_analysis, write_virelay_project
from relprop.spray import SpRAy

ROOT = Path(__file__).resolve().parents[2]
VIRELAY_PYTHON = ROOT / ".virelay-venv" / "bin" / "python"
READER = Path(__file__).with_name("virelay_reader.py")
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
needs_virelay = pytest.mark.skipif(
    not VIRELAY_PYTHON.is_file(),
    reason=f"ViRelAy's environment {VIRELAY_PYTHON.parent.parent} is missing (.ci/run)",
)


@pytest.fixture(scope="module")
def project(two_strategies, tmp_path_factory):
    """A project of the two-strategy store (one channel, 16 x 16) with classes 1 and 0 analysed."""
    path, _ = two_strategies
    with store.open(path) as run:
        analyses = [
            analyse_class(run, 1, SpRAy(size=8, seed=0)),
            analyse_class(run, 0, SpRAy(size=8, n_neighbors=4, seed=0)),
        ]
        inputs = np.random.default_rng(0).uniform(-2, 3, (len(run), 1, 16, 16))
        directory = tmp_path_factory.mktemp("project") / "virelay"
        yaml = write_virelay_project(
            run, analyses, directory, ArrayDataset(inputs, run.label[:]), name="test"
        )
    return yaml, analyses, inputs


def read_back(yaml: Path) -> dict:
    done = subprocess.run([str(VIRELAY_PYTHON), str(READER), str(yaml)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_eigenvalues_are_in_corelays_order_with_their_eigenvectors(two_strategies, tmp_path):
    path, _ = two_strategies
    with store.open(path) as run:
        analysis = analyse_class(run, 1, SpRAy(size=8, seed=0))
    write_virelay_analysis(analysis, tmp_path / "analysis.h5")
    with h5py.File(tmp_path / "analysis.h5", "r") as file:
        spectral = file["1/embedding/spectral"]
        eigenvalues = spectral.attrs["eigenvalue"]
        # descending, the trivial zero last: ViRelAy plots eigenvalue i at m - 1 - i
        assert eigenvalues[-1] == 0 and (np.diff(eigenvalues) <= 0).all()
        np.testing.assert_array_equal(eigenvalues, analysis.spray.eigenvalues_[::-1])
        np.testing.assert_array_equal(spectral[:], analysis.spray.spectrum_.eigenvectors[:, ::-1])
        np.testing.assert_array_equal(file["1/index"][:], analysis.index)  # data-set indices by default


@needs_virelay
def test_virelay_reads_the_samples_attributions_and_analyses(project, two_strategies):
    yaml, analyses, inputs = project
    read = read_back(yaml)
    assert read["name"] == "test" and read["attribution_strategy"] == "true_label"
    path, _ = two_strategies
    with store.open(path) as run:
        attribution, output, labels = run.attribution[:], run.output[:], run.label[:]
    assert len(read["samples"]) == len(read["attributions"]) == len(labels) == 60
    for row, (sample, heatmap) in enumerate(zip(read["samples"], read["attributions"], strict=True)):
        # one grey channel shown as RGB, scaled from the image's own minimum and maximum to [0, 255]
        image = inputs[row, 0]
        grey = np.round((image - image.min()) / (image.max() - image.min()) * 255)
        assert sample["dtype"] == "uint8" and sample["labels"] == [labels[row]]
        np.testing.assert_array_equal(np.asarray(sample["data"]), np.repeat(grey[:, :, None], 3, axis=2))
        # row i is sample i: ViRelAy finds it without scanning an index
        assert heatmap["index"] == row and heatmap["labels"] == [labels[row]]
        np.testing.assert_array_equal(np.asarray(heatmap["data"])[:, :, 0], attribution[row, 0])
        np.testing.assert_allclose(heatmap["prediction"], output[row])
    assert set(read["analyses"]) == {f"SpRAy/{c}/{e}" for c in ("0", "1") for e in ("spectral", "tsne")}
    for analysis in analyses:
        c = analysis.class_index
        spectral, tsne = read["analyses"][f"SpRAy/{c}/spectral"], read["analyses"][f"SpRAy/{c}/tsne"]
        assert spectral["name"] == f"class {c}"  # the group "1" resolved through the label map
        assert spectral["clustering_name"] == "kmeans (relprop's cluster k is ViRelAy's Cluster k+1)"
        assert spectral["index"] == analysis.rows.tolist()
        assert spectral["clustering"] == analysis.spray.labels_.tolist()
        np.testing.assert_allclose(spectral["embedding"], analysis.spray.spectrum_.eigenvectors[:, ::-1])
        np.testing.assert_allclose(spectral["eigenvalues"], analysis.spray.eigenvalues_[::-1])
        assert spectral["eigenvalues"][-1] == 0
        np.testing.assert_allclose(tsne["embedding"], analysis.tsne)
        assert tsne["eigenvalues"] is None


def test_a_folder_that_holds_anything_is_refused_and_kept(project, two_strategies, tmp_path):
    _, analyses, inputs = project
    path, _ = two_strategies
    directory = tmp_path / "mine"
    directory.mkdir()
    (directory / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="mine is not an empty folder"):
        write_virelay_project(path, analyses, directory, ArrayDataset(inputs))
    assert [p.name for p in directory.iterdir()] == ["notes.txt"]
    assert (directory / "notes.txt").read_text() == "keep me"


def test_a_failure_leaves_no_folder_behind(project, two_strategies, tmp_path):
    _, analyses, inputs = project
    path, _ = two_strategies
    with pytest.raises(ValueError, match=r"sample 0 of the data set has shape \(1, 8, 8\)"):
        write_virelay_project(path, analyses, tmp_path / "p", ArrayDataset(inputs[:, :, :8, :8]))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="at least one class"):
        write_virelay_project(path, [], tmp_path / "p", ArrayDataset(inputs))
    assert list(tmp_path.iterdir()) == []


def test_other_channel_counts_are_shown_as_rgb_or_grey():
    from relprop.report.virelay import _rgb

    images = np.arange(2 * 2 * 2 * 2, dtype=np.float64).reshape(2, 2, 2, 2)  # two 2-channel images
    grey = images.mean(axis=1)  # [[2, 3], [4, 5]] and [[10, 11], [12, 13]]
    shown = _rgb(images)
    assert shown.shape == (2, 3, 2, 2) and shown.dtype == np.uint8
    np.testing.assert_array_equal(shown[0, 0], [[0, 85], [170, 255]])
    np.testing.assert_array_equal(shown[:, 0], shown[:, 2])
    np.testing.assert_array_equal(shown[1, 1], np.round((grey[1] - 10) / 3 * 255))
    colour = np.random.default_rng(0).uniform(0, 1, (1, 3, 2, 2))
    np.testing.assert_array_equal(
        _rgb(colour)[0], np.round((colour[0] - colour.min()) / (colour.max() - colour.min()) * 255)
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@needs_virelay
def test_virelay_shows_the_clusters_in_a_browser(project, tmp_path):
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright")
    if not CHROMIUM.is_file():
        pytest.skip(f"the browser test needs Chromium at {CHROMIUM} (apt install chromium)")
    yaml, analyses, _ = project
    port = _free_port()
    virelay = VIRELAY_PYTHON.with_name("virelay")
    server = subprocess.Popen(
        [str(virelay), str(yaml), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    profile = tmp_path / "chromium-profile"
    try:
        for _ in range(100):  # the server starts in about a second
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        with playwright_api.sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(profile), executable_path=str(CHROMIUM), args=ARGS, headless=True,
                viewport={"width": 1280, "height": 900},
            )  # fmt: skip
            try:
                page = context.new_page()
                errors = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.goto(f"http://127.0.0.1:{port}/")
                page.get_by_label("Category").select_option(label="class 1 (1)")
                buttons = page.locator("#cluster-pane button")
                buttons.first.wait_for()
                labels = analyses[0].spray.labels_
                expected = [f"Cluster {k + 1} ({int((labels == k).sum())})" for k in np.unique(labels)]
                page.wait_for_function(
                    f"document.querySelectorAll('#cluster-pane button').length == {len(expected)}"
                )
                shown = [" ".join(text.split()[1:]) for text in buttons.all_inner_texts()]
                assert [text.lower() for text in shown] == [text.lower() for text in expected]
                assert errors == []
            finally:
                context.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)
