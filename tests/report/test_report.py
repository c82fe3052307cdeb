"""SpRAy of one class of a store, its ViRelAy file and the HTML report's content; ``relprop spray``."""

import copy
import dataclasses
import json
import re

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from relprop import store
from relprop.cli import app
from relprop.report import analyse_class, class_rows, write_report, write_virelay_analysis
from relprop.spray import SpRAy

from .conftest import make_store

runner = CliRunner()


@pytest.fixture(scope="module")
def analysis(two_strategies):
    path, tag = two_strategies
    with store.open(path) as run:
        return analyse_class(run, 1, SpRAy(size=8, seed=0), np.where(tag, "yes", "no"))


def payload(page: str) -> dict:
    return json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))


def test_class_rows_by_label_and_errors(two_strategies):
    path, tag = two_strategies
    with store.open(path) as run:
        labels = run.label[:]
        np.testing.assert_array_equal(class_rows(run, 1), np.flatnonzero(labels == 1))
        with pytest.raises(ValueError, match="class 3 does not exist; the model has 3 outputs"):
            class_rows(run, 3)
        with pytest.raises(ValueError, match="no sample is labelled class 2"):
            class_rows(run, 2)


def test_the_tag_is_its_own_cluster_and_flagged(analysis):
    tag = analysis.groups == "yes"
    assert analysis.spray.n_clusters_ == 2
    suspicious = analysis.suspicious_cluster
    members = analysis.spray.labels_ == suspicious
    np.testing.assert_array_equal(members, tag)
    # members are ordered by distance to the prototype
    ordered = analysis.members(suspicious)
    assert set(ordered) == set(np.flatnonzero(members))
    features = analysis.spray.features_.reshape(len(tag), -1)
    distances = np.linalg.norm(features[ordered] - features[members].mean(axis=0), axis=1)
    assert (np.diff(distances) >= 0).all()
    with pytest.raises(ValueError, match="no cluster 7"):
        analysis.members(7)


def test_virelay_analysis_layout(analysis, tmp_path):
    path = write_virelay_analysis(analysis, tmp_path / "analysis.h5")
    write_virelay_analysis(analysis, path)  # writing a class again replaces its group
    spray = analysis.spray
    with h5py.File(path, "r") as file:
        assert list(file) == ["1"]
        group = file["1"]
        np.testing.assert_array_equal(group["index"][:], analysis.index)
        assert group["index"].dtype == np.uint32
        # CoRelAy's order, the trivial zero last (see test_virelay.py)
        np.testing.assert_array_equal(group["embedding/spectral"][:], spray.spectrum_.eigenvectors[:, ::-1])
        np.testing.assert_array_equal(
            group["embedding/spectral"].attrs["eigenvalue"], spray.eigenvalues_[::-1]
        )
        np.testing.assert_array_equal(group["embedding/tsne"][:], analysis.tsne)
        assert group["embedding/tsne"].attrs["embedding"] == "spectral"
        assert list(group["cluster"]) == ["kmeans-2"]
        np.testing.assert_array_equal(group["cluster/kmeans-2"][:], spray.labels_)


def test_report_is_self_contained_and_complete(analysis, tmp_path):
    rng = np.random.default_rng(0)
    inputs = rng.uniform(-1, 1, (len(analysis.rows), 3, 16, 16))  # outside [0, 1]: rescaled per image
    path = write_report(analysis, tmp_path / "deep" / "index.html", inputs=inputs, group_name="tag planted",
                        notes=[("Check", [("a <b>", "1")])],
                        links=[("concept atlas", "concepts.html")])  # fmt: skip
    page = path.read_text()
    assert '<a href="concepts.html">concept atlas</a>' in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from a network
    assert "<link" not in page and "import(" not in page
    assert "a &lt;b&gt;" in page  # notes are escaped
    data = payload(page)
    assert len(data["points"]["x"]) == len(analysis.rows)
    assert data["points"]["index"] == analysis.index.tolist()
    assert all(uri.startswith("data:image/png;base64,") for uri in data["images"]["overlay"])
    clusters = {c["id"]: c for c in data["clusters"]}
    flagged = [c for c in clusters.values() if c["suspicious"]]
    assert [c["id"] for c in flagged] == [analysis.suspicious_cluster]
    assert flagged[0]["purity"] == 1.0 and flagged[0]["majority"] == "yes"
    statistics = analysis.spray.clusters_
    test = statistics.artefact_test
    assert data["selected"] == analysis.suspicious_cluster
    for row, cluster in enumerate(statistics.cluster_ids):
        assert clusters[cluster]["size"] == statistics.sizes[row] == len(clusters[cluster]["members"])
        assert clusters[cluster]["artefact"] == pytest.approx(statistics.artefact_scores[row])
        assert clusters[cluster]["lift"] == pytest.approx(test.lift[row])
        assert clusters[cluster]["p"] == pytest.approx(test.p_values[row])
        assert clusters[cluster]["contrast"] == pytest.approx(test.contrast[row])
        assert clusters[cluster]["suspicious"] == test.flagged[row]
    finding = re.search(r'id="finding">(.*?)</section>', page, re.S).group(1)
    flagged_row = int(np.flatnonzero(test.flagged)[0])
    assert f"Cluster {analysis.suspicious_cluster} looks like a Clever Hans strategy" in finding
    assert f"artefact score {test.scores[flagged_row]:.3f}, {test.lift[flagged_row]:.2f} times" in finding
    assert "p = 0.002, Bonferroni-corrected for 2 clusters, 999 permutations" in finding
    assert "a cluster stands out only if p &lt; 0.01" in finding
    # sample 0 is the one wrong prediction; it is a class-1 sample
    assert sum(c["accuracy"] * c["size"] for c in clusters.values()) == pytest.approx(len(analysis.rows) - 1)
    assert data["spectrum"]["eigenvalues"] == pytest.approx(analysis.spray.eigenvalues_.tolist())


def test_report_says_when_no_cluster_stands_out(two_strategies, tmp_path):
    """The same two strategies, with a lift threshold no cluster reaches: no flag, no red, the numbers of the
    cluster that came nearest and the rule."""
    path, tag = two_strategies
    with store.open(path) as run:
        analysis = analyse_class(run, 1, SpRAy(size=8, min_lift=100, seed=0))
    test = analysis.spray.clusters_.artefact_test
    assert analysis.suspicious_cluster is None and not test.flagged.any()
    page = write_report(analysis, tmp_path / "index.html").read_text()
    data = payload(page)
    assert data["selected"] is None
    assert not any(c["suspicious"] for c in data["clusters"])
    finding = re.search(r'<section class="panel wide finding none" id="finding">(.*?)</section>', page, re.S)
    text = finding.group(1)
    assert "<h2>No cluster stands out</h2>" in text and "Clever Hans" not in text
    nearest = int(test.cluster_ids[np.argmax(test.lift)])
    assert f"The highest lift is cluster {nearest}'s, {test.describe(nearest)}" in text.replace("&#x27;", "'")
    assert "at least 100 times that of random groups" in text


def test_report_names_every_cluster_that_stands_out(analysis, tmp_path):
    """Two flagged clusters (the test's verdict replaced by hand): both red, the headline names both, and
    the page opens on the one with the higher lift."""
    both = copy.copy(analysis)
    both.spray = copy.copy(analysis.spray)
    clusters = analysis.spray.clusters_
    test = dataclasses.replace(clusters.artefact_test, flagged=np.ones(len(clusters.cluster_ids), dtype=bool))
    both.spray.clusters_ = dataclasses.replace(clusters, artefact_test=test)
    page = write_report(both, tmp_path / "index.html").read_text()
    data = payload(page)
    assert all(c["suspicious"] for c in data["clusters"])
    assert "Clusters 0 and 1 look like Clever Hans strategies" in page
    assert data["selected"] == int(clusters.cluster_ids[np.argmax(test.lift)])
    assert test.summary().count("stands out") == 1 and "too: artefact score" in test.summary()


def test_report_image_budget_and_bad_input(analysis, tmp_path):
    page = write_report(analysis, tmp_path / "r.html", max_images=10).read_text()
    data = payload(page)
    assert data["images"]["input"] is None and data["images"]["overlay"] is None
    shown = [i for i, uri in enumerate(data["images"]["heatmap"]) if uri]
    assert 2 <= len(shown) <= 10
    for cluster in data["clusters"]:  # each cluster shows its samples nearest to the prototype
        assert cluster["members"][0] in shown
    with pytest.raises(ValueError, match="inputs has 3 samples, the analysis 50"):
        write_report(analysis, tmp_path / "r.html", inputs=np.zeros((3, 1, 16, 16)))


def test_cli_spray_writes_the_report(two_strategies, tmp_path):
    path, _ = two_strategies
    out = tmp_path / "report"
    result = runner.invoke(app, ["spray", str(path), "--class", "1", "--out", str(out), "--size", "8"])
    assert result.exit_code == 0, result.output
    report = (out / "index.html").resolve()
    assert f"Open it in a browser: {report.as_uri()}" in result.output
    assert "cannot be loaded here (pass --data): showing heatmaps only" in result.output
    assert "50 samples, 2 clusters; cluster " in result.output
    assert " stands out: artefact score " in result.output
    with h5py.File(out / "analysis.h5", "r") as file:
        assert len(file["1/index"]) == 50


def test_cli_spray_says_when_no_cluster_stands_out(tmp_path):
    """Class 0 of this store is noise: its clusters are more concentrated than random groups by chance of
    the clustering (p < 0.01 can happen), but none stands out."""
    path = tmp_path / "noise.h5"
    make_store(path, n_other=60)
    out = tmp_path / "report"
    arguments = ["spray", str(path), "--class", "0", "--out", str(out), "--size", "8", "--clusters", "3"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert (
        "Class 0: 60 samples, 3 clusters; no cluster stands out: the highest lift is cluster "
        in result.output
    )
    assert "a cluster stands out only if p < 0.01, its score is at least 2 times" in result.output
    assert "No cluster stands out" in (out / "index.html").read_text()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--class", "5"], "class 5 does not exist; the model has 3 outputs"),
        (["--class", "2"], "no sample is labelled class 2"),
    ],
)
def test_cli_spray_bad_class(two_strategies, tmp_path, arguments, message):
    path, _ = two_strategies
    result = runner.invoke(app, ["spray", str(path), *arguments, "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("error: ") and message in result.output
    assert not (tmp_path / "r").exists()


def test_cli_spray_missing_or_foreign_file(tmp_path):
    result = runner.invoke(app, ["spray", str(tmp_path / "nope.h5"), "--class", "1"])
    assert result.exit_code == 1 and result.output == f"error: {tmp_path / 'nope.h5'}: no such file\n"
    foreign = tmp_path / "foreign.h5"
    foreign.write_text("not hdf5")
    result = runner.invoke(app, ["spray", str(foreign), "--class", "1"])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "cannot open" in result.output and "as an attribution store" in result.output
