"""Curves of several methods: each equals region_perturbation called alone, and the AOPC table by hand."""

import torch
from torch import nn

from relprop.evaluate import aopc_columns, aopc_table, perturbation_curves, plot_curves, region_perturbation
from relprop.evaluate.perturbation import PerturbationCurve
from relprop.methods import make_explainer


def test_aopc_table_by_hand():
    table = aopc_table(
        {
            "A": {"lrp": torch.tensor([1.0, 3.0]), "random": torch.tensor([0.5, 0.5, 2.0])},
            "B": {"lrp": torch.tensor([0.25])},
        }
    )
    # lrp in A: mean 2, sample std sqrt(2), standard error sqrt(2) / sqrt(2) = 1; random: mean 1, se 0.5
    assert table.splitlines() == [
        "| method | A       | B    |",
        "|--------|---------|------|",
        "| lrp    | 2 ± 1   | 0.25 |",
        "| random | 1 ± 0.5 |      |",
    ]


def test_aopc_columns_by_hand():
    # reference 1, scores f(x^(k)) per image over k = 0..2: AOPC = mean of 1 - scores
    morf = PerturbationCurve(torch.tensor([1.0, 1.0]), torch.tensor([[1.0, 0.5, 0.0], [1.0, 1.0, 0.4]]))
    lerf = PerturbationCurve(torch.tensor([1.0, 1.0]), torch.tensor([[1.0, 1.0, 0.7], [1.0, 1.0, 1.0]]))
    columns = aopc_columns({"lerf": {"lrp": lerf}, "morf": {"lrp": morf}})
    assert list(columns) == ["LeRF AOPC", "MoRF AOPC", "ABPC (MoRF - LeRF)"]
    torch.testing.assert_close(columns["MoRF AOPC"]["lrp"], torch.tensor([0.5, 0.2]))
    torch.testing.assert_close(columns["LeRF AOPC"]["lrp"], torch.tensor([0.1, 0.0]))
    torch.testing.assert_close(columns["ABPC (MoRF - LeRF)"]["lrp"], torch.tensor([0.4, 0.2]))
    assert list(aopc_columns({"morf": {"lrp": morf}})) == ["MoRF AOPC"]


def test_each_curve_equals_region_perturbation_of_its_method_and_random_uses_a_random_order(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 8 * 8, 3))
    model = model.eval().double()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    target = torch.tensor([0, 2])
    gradient = make_explainer("gradient", model)
    curves = perturbation_curves(
        model, x, target, {"gradient": gradient, "random": None}, ("morf", "lerf"), patch_size=2, steps=3
    )
    for order in ("morf", "lerf"):
        alone = region_perturbation(model, x, gradient(x, target), target, order=order, patch_size=2, steps=3)
        torch.testing.assert_close(curves[order]["gradient"].scores, alone.scores)
        baseline = region_perturbation(
            model, x, torch.zeros_like(x), target, order="random", patch_size=2, steps=3
        )
        torch.testing.assert_close(curves[order]["random"].scores, baseline.scores)
    plot_curves(tmp_path / "c.png", {"MoRF": curves["morf"]})
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
