"""The demo end to end: data, model, LRP through the store, behavioural check, SpRAy, report."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from relprop.composites import EpsilonPlusFlat
from relprop.data import ArrayDataset
from relprop.demo.data import TaggedDigits, make_tagged_digits, paste_tag
from relprop.demo.model import train_demo_cnn

if TYPE_CHECKING:
    from relprop.demo.crp import ConceptCheck
    from relprop.report import ClassAnalysis
    from relprop.spray import ArtefactTest

__all__ = ["Behaviour", "DemoResult", "behavioural_check", "run_demo"]

#: Training epochs of the full demo and of the quick variant.
EPOCHS, QUICK_EPOCHS = 25, 10
#: SpRAy pools the heatmaps to this size (the 4x4 tag becomes about one cell) and joins each to this many
#: neighbours: with about 45 samples per strategy, fewer neighbours split a strategy by the digits' shapes.
SPRAY_SIZE, SPRAY_NEIGHBORS = 8, 20


@dataclass(frozen=True)
class Behaviour:
    """What the model does when the tag is pasted on or taken away (test images only).

    Attributes
    ----------
    tagged_class:
        The class that carries the tag.
    others_clean, others_tagged:
        Fraction of the other classes' images predicted as ``tagged_class``, as they are and with the
        tag pasted on.
    score_with_tag, score_removed:
        Mean softmax probability of ``tagged_class`` on its tagged images, with the tag and with it removed
        (the original digit).
    accuracy_with_tag, accuracy_removed:
        Fraction of those images predicted as ``tagged_class``, with and without the tag.
    """

    tagged_class: int
    others_clean: float
    others_tagged: float
    score_with_tag: float
    score_removed: float
    accuracy_with_tag: float
    accuracy_removed: float

    def rows(self) -> list[tuple[str, str]]:
        """The check as (question, answer) rows for the report and the terminal."""
        c = self.tagged_class
        return [
            (f"other digits predicted as {c}", f"{self.others_clean:.1%}"),
            ("... with the tag pasted on", f"{self.others_tagged:.1%}"),
            (f"tagged {c}s: score of class {c}", f"{self.score_with_tag:.3f}"),
            ("... with the tag removed", f"{self.score_removed:.3f}"),
            (f"tagged {c}s recognised", f"{self.accuracy_with_tag:.1%}"),
            ("... with the tag removed", f"{self.accuracy_removed:.1%}"),
        ]


@torch.no_grad()
def behavioural_check(model: nn.Module, data: TaggedDigits) -> Behaviour:
    """Paste the tag on the other classes' test images, and remove it from the tagged class's ones."""
    c = data.tagged_class
    test = data.test_rows

    def probabilities(images: np.ndarray) -> np.ndarray:
        return torch.softmax(model(torch.from_numpy(images)), dim=1).numpy()

    others = test[data.labels[test] != c]
    clean = probabilities(data.images[others]).argmax(axis=1)
    pasted = probabilities(paste_tag(data.images[others])).argmax(axis=1)
    tagged = test[data.tagged[test]]
    with_tag = probabilities(data.inputs(tagged))
    removed = probabilities(data.images[tagged])
    return Behaviour(
        tagged_class=c,
        others_clean=float(np.mean(clean == c)),
        others_tagged=float(np.mean(pasted == c)),
        score_with_tag=float(with_tag[:, c].mean()),
        score_removed=float(removed[:, c].mean()),
        accuracy_with_tag=float(np.mean(with_tag.argmax(axis=1) == c)),
        accuracy_removed=float(np.mean(removed.argmax(axis=1) == c)),
    )


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its files and what it found.

    Attributes
    ----------
    report, store, model, analysis:
        The HTML report, the attribution store of the test set, the model's weights (a state dict of
        ``demo-cnn``) and the SpRAy analysis in ViRelAy's layout.
    test_accuracy:
        The model's accuracy on the (partly tagged) test set.
    behaviour:
        The behavioural check.
    n_clusters:
        The number of clusters SpRAy found for the tagged class.
    artefact_test:
        Whether each cluster's artefact score stands out from random groups of the class
        (:func:`relprop.spray.artefact_test`).
    suspicious_cluster:
        The cluster that stands out most (``None`` if none stands out, as for a single cluster).
    purity:
        The fraction of the suspicious cluster's samples that carry the tag (0 if there is none).
    recall:
        The fraction of the tagged samples that fall into the suspicious cluster (0 if there is none).
    virelay:
        The ViRelAy project of the test set and the analysis (``virelay virelay/project.yaml``).
    concepts:
        The CRP check: the tag's channels, their references, the behaviour with them masked
        (:func:`relprop.demo.crp.concept_check`; its RelMax run is ``relmax.h5``).
    atlas:
        The concept atlas of the tagged class (``report/concepts.html``, :func:`relprop.report.write_atlas`).
    """

    report: Path
    store: Path
    model: Path
    analysis: Path
    test_accuracy: float
    behaviour: Behaviour
    n_clusters: int
    artefact_test: ArtefactTest
    suspicious_cluster: int | None
    purity: float
    recall: float
    virelay: Path | None = None
    concepts: ConceptCheck | None = None
    atlas: Path | None = None


def run_demo(
    out: str | Path = "relprop-demo",
    seed: int = 0,
    epochs: int | None = None,
    quick: bool = False,
    progress: bool = False,
    stage: Callable[[str], None] | None = None,
) -> DemoResult:
    """Plant a tag, train a model that uses it, and find it with LRP and SpRAy; see :mod:`relprop.demo`.

    Parameters
    ----------
    out:
        The folder for the files (created): ``model.pt``, ``attributions.h5``, ``relmax.h5``,
        ``report/index.html``, ``report/concepts.html``, ``report/analysis.h5``, ``virelay/project.yaml``
        (with its files). Files of an earlier demo there are replaced.
    seed:
        Seeds the data set's split and tags, the model's initial weights and its batches.
    epochs:
        Training epochs; 25 by default, 10 with ``quick``.
    quick:
        The faster variant (fewer epochs), for tests.
    progress:
        Show the attribution's progress bar.
    stage:
        Called with a line saying what starts, at each of the six stages (training, attribution,
        behavioural check, CRP check, SpRAy, report).
    """
    from relprop.demo.crp import CRP_LAYER, concept_check

    epochs = (QUICK_EPOCHS if quick else EPOCHS) if epochs is None else epochs
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = stage or (lambda line: None)
    data = make_tagged_digits(seed)
    c = data.tagged_class
    say(f"[1/6] training a small CNN on digits with a tag planted on most {c}s ({epochs} epochs)")
    model = train_demo_cnn(data, epochs=epochs, seed=seed)
    model_path = out / "model.pt"
    torch.save(model.state_dict(), model_path)
    store_path = out / "attributions.h5"
    say(f"[2/6] LRP heatmaps of the {len(data.test_rows)} test digits into {store_path}")
    _attribute(data, model, model_path, store_path, seed, progress)
    say("[3/6] behavioural check: the tag pasted on and removed")
    behaviour = behavioural_check(model, data)
    say(f"[4/6] CRP on layer {CRP_LAYER}: the channels that see the tag, their references, masked")
    crp = concept_check(model, data, out / "relmax.h5", seed)
    say(f"[5/6] SpRAy on the heatmaps of class {c}")
    analysis, test_accuracy, purity, recall = _spray(data, store_path, seed)
    report_dir = out / "report"
    say(f"[6/6] the report in {report_dir}")
    notes = [
        (
            "Behavioural check: the tag pasted on and removed",
            [("test accuracy (all digits)", f"{test_accuracy:.1%}"), *behaviour.rows()],
        ),
        (f"CRP: the tag's channels of layer {crp.layer}, and the model with them masked", crp.rows()),
    ]
    report, analysis_path, atlas_path = _write_report(
        data, model, analysis, out / "relmax.h5", report_dir, notes
    )
    virelay = _write_virelay(data, store_path, analysis, out / "virelay")
    return DemoResult(
        report=report,
        store=store_path,
        model=model_path,
        analysis=analysis_path,
        test_accuracy=test_accuracy,
        behaviour=behaviour,
        n_clusters=analysis.spray.n_clusters_,
        artefact_test=analysis.spray.clusters_.artefact_test,
        suspicious_cluster=analysis.suspicious_cluster,
        purity=purity,
        recall=recall,
        virelay=virelay,
        concepts=crp,
        atlas=atlas_path,
    )


def _attribute(
    data: TaggedDigits, model: nn.Module, model_path: Path, store_path: Path, seed: int, progress: bool
) -> None:
    """LRP heatmaps of the test digits into a new store at ``store_path``, described as ``relprop attribute``
    would describe them (so that ``relprop spray`` and ``relprop virelay`` find the model and the data)."""
    from relprop.store import attribute_dataset

    test = data.test_rows
    store_path.unlink(missing_ok=True)  # a store refuses to be resumed by another run: start afresh
    description = {
        "dataset": "demo" if seed == 0 else f"demo (seed {seed})",
        "model": f"demo-cnn:{model_path}",
        "method": "lrp",
        "preprocessing": "none",
    }
    attribute_dataset(
        ArrayDataset(data.inputs(test), data.labels[test]),
        model,
        store_path,
        composite=EpsilonPlusFlat(),
        description=description,
        dtype="float32",
        target="label",
        progress=progress,
    )


def _spray(data: TaggedDigits, store_path: Path, seed: int) -> tuple[ClassAnalysis, float, float, float]:
    """SpRAy of the tagged class's heatmaps, the test accuracy on all digits, and the purity and recall of the
    suspicious cluster (the share of its samples that carry the tag, and of the tagged samples in it)."""
    from relprop.report import analyse_class
    from relprop.spray import SpRAy
    from relprop.store import open as open_store

    c = data.tagged_class
    with open_store(store_path) as store:
        test_accuracy = float(np.mean(store.label[:] == store.prediction[:]))
        rows = np.flatnonzero(store.label[:] == c)
        tagged = data.tagged[data.test_rows[store.index[rows]]]
        analysis = analyse_class(
            store,
            c,
            SpRAy(size=SPRAY_SIZE, n_neighbors=SPRAY_NEIGHBORS, seed=seed),
            np.where(tagged, "yes", "no"),
            seed,
        )
    members = analysis.spray.labels_ == analysis.suspicious_cluster
    purity = float(tagged[members].mean()) if members.any() else 0.0
    recall = float(members[tagged].mean()) if tagged.any() else 0.0
    return analysis, test_accuracy, purity, recall


def _write_report(
    data: TaggedDigits,
    model: nn.Module,
    analysis: ClassAnalysis,
    relmax_path: Path,
    report_dir: Path,
    notes: list,
) -> tuple[Path, Path, Path]:
    """The report (``index.html``), its analysis for ViRelAy (``analysis.h5``) and the concept atlas of the
    tagged class (``concepts.html``) in ``report_dir``."""
    from relprop import LRP
    from relprop.report import concept_atlas, write_atlas, write_report, write_virelay_analysis

    c, test = data.tagged_class, data.test_rows
    inputs = data.inputs(test)
    analysis_path = report_dir / "analysis.h5"
    report_dir.mkdir(exist_ok=True)
    analysis_path.unlink(missing_ok=True)
    write_virelay_analysis(analysis, analysis_path)
    report = write_report(
        analysis,
        report_dir / "index.html",
        inputs=inputs[analysis.index],
        group_name="tag planted",
        title=f"relprop demo: does the model recognise the digit {c} by its shape, or by a tag?",
        notes=notes,
        links=[(f"concept atlas of class {c}", "concepts.html")],
    )
    as_tagged_class = ArrayDataset(inputs, np.full(len(test), c))  # as the RelMax run explained them
    atlas = concept_atlas(
        LRP(model, EpsilonPlusFlat()),
        as_tagged_class,
        relmax_path,
        c,
        np.flatnonzero(data.labels[test] == c),
        sample=int(np.flatnonzero(data.tagged[test])[0]),
    )
    atlas_path = write_atlas(
        atlas, report_dir / "concepts.html", title=f"relprop demo: the concepts of class {c} (CRP)"
    )
    return report, analysis_path, atlas_path


def _write_virelay(data: TaggedDigits, store_path: Path, analysis: ClassAnalysis, virelay_dir: Path) -> Path:
    """The ViRelAy project of the test digits and the analysis, replacing an earlier demo's."""
    from relprop.report import write_virelay_project

    if (virelay_dir / "project.yaml").is_file():  # an earlier demo's project
        shutil.rmtree(virelay_dir)
    names = [f"digit {digit}" for digit in range(10)]
    dataset = ArrayDataset(data.inputs(data.test_rows), data.labels[data.test_rows])
    return write_virelay_project(store_path, [analysis], virelay_dir, dataset, names, "relprop demo")
