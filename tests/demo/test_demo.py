"""The demo: its data set, model and behavioural check, and ``relprop demo --quick`` end to end."""

import json
import re

import h5py
import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from relprop.cli import app
from relprop.data import load_dataset
from relprop.demo import (
    SIZE,
    TAG_REGION,
    behavioural_check,
    make_tagged_digits,
    paste_tag,
    train_demo_cnn,
)
from relprop.demo.crp import CRP_CHANNELS, concept_check, masked_channels
from relprop.demo.run import SPRAY_NEIGHBORS, SPRAY_SIZE
from relprop.models.loading import load_model
from relprop.report import class_rows
from relprop.spray import SpRAy
from relprop.store import open as open_store

runner = CliRunner()


@pytest.fixture(scope="module")
def data():
    return make_tagged_digits(seed=0)


def test_tag_only_on_a_fraction_of_the_tagged_class(data):
    c = data.tagged_class
    for split, fraction in ((data.train, 0.9), (~data.train, 0.5)):
        members = split & (data.labels == c)
        assert data.tagged[members].sum() == round(fraction * members.sum())
    assert not data.tagged[data.labels != c].any()
    # stratified halves: every digit is split in two (odd counts: the extra one goes to the test set)
    for digit in range(10):
        members = data.labels == digit
        assert data.train[members].sum() == members.sum() // 2


def test_images_and_tag(data):
    assert data.images.shape == (1797, 1, SIZE, SIZE) and data.images.dtype == np.float32
    assert data.images.min() >= 0 and data.images.max() <= 1
    # the tag's corner is nearly empty on the clean images (at most faint ink), so the tag is new evidence
    corner = data.images[(..., *TAG_REGION)]
    assert corner.mean() < 0.02 and corner.max() < 0.5
    rows = np.flatnonzero(data.tagged)[:3]
    inputs = data.inputs(rows)
    assert (inputs[(..., *TAG_REGION)] == 1).all()
    outside = inputs.copy()
    outside[(..., *TAG_REGION)] = data.images[rows][(..., *TAG_REGION)]
    np.testing.assert_array_equal(outside, data.images[rows])
    clean_rows = np.flatnonzero(~data.tagged)[:3]
    np.testing.assert_array_equal(data.inputs(clean_rows), data.images[clean_rows])


def test_same_seed_same_data_other_seed_other_split(data):
    again = make_tagged_digits(seed=0)
    np.testing.assert_array_equal(again.tagged, data.tagged)
    np.testing.assert_array_equal(again.train, data.train)
    assert not np.array_equal(make_tagged_digits(seed=1).train, data.train)


def test_bad_arguments():
    with pytest.raises(ValueError, match="shape"):
        paste_tag(np.zeros((2, 3, SIZE, SIZE), dtype=np.float32))
    with pytest.raises(ValueError, match="tagged_class"):
        make_tagged_digits(tagged_class=10)
    with pytest.raises(ValueError, match="train_tag_fraction"):
        make_tagged_digits(train_tag_fraction=1.5)
    with pytest.raises(ValueError, match="epochs"):
        train_demo_cnn(make_tagged_digits(), epochs=0)


def test_registered_data_set_is_the_default_test_set(data):
    dataset = load_dataset("demo")
    test = data.test_rows
    assert len(dataset) == len(test)
    first_tagged = int(np.flatnonzero(data.tagged[test])[0])
    x, label = dataset[first_tagged]
    assert label == data.tagged_class
    np.testing.assert_array_equal(x.numpy(), data.inputs(test[[first_tagged]])[0])


def test_registered_model_needs_weights():
    with pytest.raises(ValueError, match="no pretrained weights"):
        load_model("demo-cnn")


def test_training_is_seeded(data, one_thread):
    state = torch.random.get_rng_state()
    first = train_demo_cnn(data, epochs=1, seed=3).state_dict()
    second = train_demo_cnn(data, epochs=1, seed=3).state_dict()
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=0, atol=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global random state is left alone


class _TagDetector(nn.Module):
    """Predicts class 8 exactly when the tag is there, else class 0 (a perfect Clever Hans)."""

    def forward(self, x):
        tag = (x[(..., *TAG_REGION)] == 1).flatten(1).all(dim=1).double()
        logits = torch.zeros(len(x), 10, dtype=torch.float64)
        logits[:, 8] = 10 * tag
        logits[:, 0] = 10 * (1 - tag)
        return logits.float()


def test_behavioural_check_on_a_model_that_only_sees_the_tag(data):
    behaviour = behavioural_check(_TagDetector(), data)
    assert behaviour.tagged_class == 8
    assert behaviour.others_clean == 0 and behaviour.others_tagged == 1
    assert behaviour.accuracy_with_tag == 1 and behaviour.accuracy_removed == 0
    # softmax of logits (10 for one class, 0 for nine): e^10 / (e^10 + 9), and 1 / (e^10 + 9) when removed
    assert behaviour.score_with_tag == pytest.approx(np.exp(10) / (np.exp(10) + 9), rel=1e-6)
    assert behaviour.score_removed == pytest.approx(1 / (np.exp(10) + 9), rel=1e-5)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("demo") / "relprop-demo"
        result = runner.invoke(app, ["demo", "--quick", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    return out, result


def test_demo_prints_where_the_report_is(demo_run):
    out, result = demo_run
    assert result.exit_code == 0, result.output
    stages = result.stderr.splitlines()  # a line as each stage starts, so that 30 s are not silent
    assert [line[:5] for line in stages] == [f"[{i}/6]" for i in range(1, 7)], result.stderr
    assert "10 epochs" in stages[0] and "CRP on layer 4" in stages[3] and "class 8" in stages[4]
    report = (out / "report" / "index.html").resolve()
    assert report.is_file()
    assert f"Report: {report}\n" in result.output
    assert f"Open it in a browser: {report.as_uri()}\n" in result.output
    project = out / "virelay" / "project.yaml"
    assert (
        f"ViRelAy project: virelay {project}   (relprop's cluster k is ViRelAy's Cluster k+1)"
        in result.output
    )
    assert sorted(p.name for p in project.parent.iterdir()) == [
        "analysis.h5", "attributions.h5", "inputs.h5", "label-map.json", "project.yaml"
    ]  # fmt: skip


def test_demo_finds_the_tag_as_its_own_cluster(demo_run, data):
    """Purity against the planted truth, from the ViRelAy analysis file and the report's own flag."""
    out, result = demo_run
    assert result.exit_code == 0, result.output
    with h5py.File(out / "report" / "analysis.h5", "r") as file:
        group = file["8"]
        index = group["index"][:]
        (name,) = list(group["cluster"])
        clusters = group["cluster"][name][:]
    tagged = data.tagged[data.test_rows[index]]
    assert (data.labels[data.test_rows[index]] == 8).all()
    assert len(index) == (data.labels[~data.train] == 8).sum()
    page = (out / "report" / "index.html").read_text()
    payload = json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))
    (flagged,) = [c["id"] for c in payload["clusters"] if c["suspicious"]]
    members = clusters == flagged
    purity, recall = tagged[members].mean(), members[tagged].mean()
    assert purity >= 0.9, f"purity {purity:.2f}"
    assert recall >= 0.9, f"recall {recall:.2f}"


def test_demo_model_cheats_with_the_tag(demo_run, data):
    out, result = demo_run
    assert result.exit_code == 0, result.output
    model = load_model(f"demo-cnn:{out / 'model.pt'}")
    behaviour = behavioural_check(model, data)
    assert behaviour.others_tagged > behaviour.others_clean + 0.05
    assert behaviour.score_removed < behaviour.score_with_tag - 0.2
    assert "with the tag pasted on" in result.output


def test_demo_flags_the_tagged_8s_and_no_untagged_class(demo_run, data):
    """SpRAy as the demo runs it, on every class of the demo's store: one cluster of 8s stands out, and it is
    the tagged 8s; in no other class does any cluster stand out."""
    out, result = demo_run
    assert result.exit_code == 0, result.output
    with open_store(out / "attributions.h5") as run:
        for digit in range(10):
            rows = class_rows(run, digit)
            heatmaps = np.asarray(run.attribution[rows], dtype=np.float32)
            spray = SpRAy(size=SPRAY_SIZE, n_neighbors=SPRAY_NEIGHBORS, seed=0).fit(heatmaps)
            test = spray.clusters_.artefact_test
            if digit != 8:
                assert not test.flagged.any(), f"class {digit}: {test.summary()}"
                continue
            (row,) = np.flatnonzero(test.flagged)
            members = spray.labels_ == test.cluster_ids[row]
            tagged = data.tagged[data.test_rows[run.index[rows]]]
            assert tagged[members].mean() >= 0.9 and members[tagged].mean() >= 0.9
            assert test.p_values[row] == len(test.cluster_ids) / 1000
            flagged = test.cluster_ids[row]
    assert f"class 8; cluster {flagged} stands out: artefact score " in result.output


def test_spray_on_untagged_3s_finds_no_cluster_that_stands_out(demo_run):
    """The issue's case: two clusters of untagged 3s used to give a flag."""
    out, _ = demo_run
    store = str(out / "attributions.h5")
    result = runner.invoke(app, ["spray", store, "--class", "3", "--clusters", "2", "--out", str(out / "r3")])
    assert result.exit_code == 0, result.output
    assert (
        "Class 3: 92 samples, 2 clusters; no cluster stands out: the highest lift is cluster "
        in result.output
    )
    assert "No cluster stands out" in (out / "r3" / "index.html").read_text()


def test_masked_channels_zero_those_channels_until_the_hook_is_removed():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()).eval()
    x = torch.randn(2, 1, 5, 5)
    plain = model[0](x)
    with masked_channels(model, "0", [1, 3]):
        masked = model[0](x)
    torch.testing.assert_close(masked[:, [0, 2]], plain[:, [0, 2]], rtol=0, atol=0)
    assert (masked[:, [1, 3]] == 0).all() and (plain[:, [1, 3]] != 0).all()
    torch.testing.assert_close(model[0](x), plain, rtol=0, atol=0)  # the hook is gone


def test_crp_finds_the_tag_channels_and_masking_them_removes_the_shortcut(demo_run, data, tmp_path):
    """The quick demo's model: the channels ranked by their relevance on the tag have tagged RelMax references
    for class 8, and masking them takes the tag's pull on other digits down, far more than random channels."""
    out, result = demo_run
    assert result.exit_code == 0, result.output
    model = load_model(f"demo-cnn:{out / 'model.pt'}")
    check = concept_check(model, data, tmp_path / "relmax.h5")
    assert len(check.channels) == CRP_CHANNELS and check.layer_width == 32
    assert check.tagged_overall == pytest.approx(data.tagged[data.test_rows].mean())
    assert check.references_tagged >= 0.5 and check.references_tagged > 2 * check.references_tagged_all
    assert check.unmasked_others_tagged == behavioural_check(model, data).others_tagged  # the hook is gone
    assert check.masked.others_tagged < 0.5 * check.unmasked_others_tagged
    assert check.masked.others_tagged < np.median(check.random_others_tagged)
    assert check.masked.others_clean <= 0.01 and check.test_accuracy >= 0.85
    header = f"Behavioural check:                   as trained  layer 4 channels {check.channels_text} masked"
    assert header in result.output
    assert f"  ... with the tag pasted on         {check.unmasked_others_tagged:.1%}" in result.output
    assert f"CRP on layer 4: channels {check.channels_text} put " in result.output
    atlas = out / "report" / "concepts.html"
    assert f"Concept atlas of class 8: {atlas}" in result.output
    page = atlas.read_text()
    assert page.count('class="concept" data-layer="4"') == 6 and "Sample " in page
    assert (
        '<a href="concepts.html">concept atlas of class 8</a>' in (out / "report" / "index.html").read_text()
    )
