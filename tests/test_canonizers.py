"""Folding batch normalization: the explained function stays the model's, the model stays untouched."""

import pytest
import torch
from torch import nn

from relprop import LRP, canonizers, composites, rules
from relprop.graph import Kind


def randomize(bn):
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return bn


def model_with_batch_norms():
    torch.manual_seed(0)
    return (
        nn.Sequential(
            nn.Conv2d(3, 4, 3),
            randomize(nn.BatchNorm2d(4)),
            nn.ReLU(),
            nn.ConvTranspose2d(4, 3, 2, stride=2, bias=False),
            randomize(nn.BatchNorm2d(3)),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(3 * 12 * 12, 6),
            randomize(nn.BatchNorm1d(6)),
        )
        .double()
        .eval()
    )


def test_folded_graph_computes_the_models_output():
    model = model_with_batch_norms()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    explainer = LRP(model, composites.Uniform(rules.Epsilon()))
    folded = [node for node in explainer.graph if node.kind == Kind.FOLDED]
    assert len(folded) == 3
    books = explainer.audit(x, target=torch.ones(2, 6, dtype=torch.float64))
    torch.testing.assert_close(books.output, model(x).sum(1))


def test_functional_batch_norms_of_an_exported_graph_are_folded_as_modules_are():
    """Called with a dict, the model is captured by torch.export, which records F.conv2d and F.batch_norm
    where torch.fx records modules: both fold, and explain alike."""
    torch.manual_seed(0)
    model = (
        nn.Sequential(
            nn.Conv2d(3, 4, 3),
            randomize(nn.BatchNorm2d(4)),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(144, 5),
            randomize(nn.BatchNorm1d(5)),
        )
        .double()
        .eval()
    )
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    explainer = LRP(model, composites.EpsilonPlus())
    exported = explainer({"input": x}, target=1)
    assert sum(node.kind == Kind.FOLDED for node in explainer.graph) == 2
    assert all(node.module is None for node in explainer.graph if node.weighted)  # functional calls
    torch.testing.assert_close(exported, explainer(x, target=1))


def test_folded_layers_compute_exactly_the_models_output():
    """Unmodified, a folded layer runs as the model does (layer, then normalization): the same floats."""
    model = model_with_batch_norms().float()
    x = torch.randn(2, 3, 8, 8)
    seen = []
    LRP(model, composites.EpsilonPlusFlat()).propagate(x, lambda output: seen.append(output) or output)
    assert torch.equal(seen[0], model(x))


RULES = [
    rules.Epsilon(0.01),
    rules.ZPlus(),
    rules.Gamma(0.25),
    rules.AlphaBeta(2.0, 1.0),
    rules.Flat(),
    rules.WSquare(),
    rules.ZBox(-2.0, 2.0),
]


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: type(rule).__name__)
def test_folding_equals_explaining_the_merged_layers(rule):
    """LRP through conv+BN folded equals LRP on a conv with the merged weights, for every rule (the modified
    folded weights are computed in place), and leaves the model's parameters as they were."""
    model = model_with_batch_norms()[:3]
    before = {name: value.clone() for name, value in model.state_dict().items()}
    conv, bn = model[0], model[1]
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    merged = nn.Conv2d(3, 4, 3).double()
    with torch.no_grad():
        merged.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        merged.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    relevance_out = torch.rand(1, 4, 4, 4, dtype=torch.float64)
    composite = composites.Uniform(rule)
    ours = LRP(model, composite).propagate(x, relevance_out)
    expected = LRP(nn.Sequential(merged, nn.ReLU()).eval(), composite).propagate(x, relevance_out)
    torch.testing.assert_close(ours, expected)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_without_canonizers_a_lone_batch_norm_passes_relevance():
    model = model_with_batch_norms()[:3]
    explainer = LRP(model, composites.Uniform(rules.Epsilon()), canonizers=())
    assert not any(node.kind == Kind.FOLDED for node in explainer.graph)
    books = explainer.audit(
        torch.randn(1, 3, 6, 6, dtype=torch.float64), target=torch.rand(1, 4, 4, 4).double()
    )
    row = next(row for row in books.rows if row.name == "1")
    torch.testing.assert_close(row.relevance_out, row.relevance_in)


def test_layer_feeding_two_consumers_is_not_folded():
    class Fork(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 1)
            self.bn = randomize(nn.BatchNorm2d(2))

        def forward(self, x):
            y = self.conv(x)
            return (self.bn(y) + y).flatten(1)

    graph = LRP(Fork().eval(), composites.Uniform(rules.Epsilon())).graph
    assert not any(node.kind == Kind.FOLDED for node in graph)
    assert repr(canonizers.MergeBatchNorm()) == "MergeBatchNorm()"
