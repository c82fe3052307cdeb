"""Concepts: relevance at layers, conditional heatmaps (CRP) against their definition, completeness,
exclude_parallel on a hand-computed residual block, concept importance, and bad input."""

import pytest
import torch
import torchvision
from torch import nn

from relprop import LRP, composites, concepts, rules, types

pytestmark = pytest.mark.usefixtures("float64")  # numbers are compared in float64


def tiny_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 5, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(5 * 3 * 3, 4),
    ).eval()


class Residual(nn.Module):
    """out = v . (W2 relu(W1 x) + x): one residual block, no biases."""

    def __init__(self, w1, w2, v):
        super().__init__()
        self.first, self.second, self.head = (nn.Linear(2, 2, bias=False) for _ in range(3))
        self.head = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.first.weight.copy_(w1)
            self.second.weight.copy_(w2)
            self.head.weight.copy_(v)

    def forward(self, x):
        return self.head(self.second(torch.relu(self.first(x))) + x)


LRP_0 = composites.Composite(layer_map=[(types.Linear, rules.Epsilon(0.0))], stabilizer=0.0)


@pytest.mark.parametrize("exclude_parallel", [True, False])
@pytest.mark.parametrize("layer, channels", [("0", 6), ("2", 5), ("6", 4)])
def test_the_heatmaps_of_all_channels_of_a_layer_add_up_to_the_plain_heatmap(
    layer, channels, exclude_parallel
):
    explainer = LRP(tiny_cnn())
    x = torch.randn(3, 3, 6, 6)
    result = concepts.conditional_heatmaps(
        explainer, x, [{layer: c} for c in range(channels)], exclude_parallel=exclude_parallel
    )
    assert result.heatmaps.shape == (3, channels, 3, 6, 6)
    plain = explainer(x)
    assert plain.abs().sum() > 0
    torch.testing.assert_close(result.heatmaps.sum(dim=1), plain, rtol=1e-10, atol=1e-12)


def test_completeness_on_a_resnet18_layer_every_path_goes_through():
    explainer = LRP(torchvision.models.resnet18(weights=None).eval())
    x = torch.randn(1, 3, 32, 32)
    result = concepts.conditional_heatmaps(explainer, x, [{"maxpool": c} for c in range(64)])
    torch.testing.assert_close(result.heatmaps.sum(dim=1), explainer(x), rtol=1e-9, atol=1e-12)


def test_on_a_residual_branch_the_channels_add_up_to_what_flows_through_the_layer():
    """With exclude_parallel, the channels of a layer inside a residual block add up to the propagation of
    the layer's whole relevance, not to the plain heatmap, which also holds what the shortcut carries."""
    explainer = LRP(torchvision.models.resnet18(weights=None).eval())
    x = torch.randn(1, 3, 32, 32)
    layer = "layer2.0.conv1"
    result = concepts.conditional_heatmaps(explainer, x, [{layer: c} for c in range(128)])
    through = concepts.propagate_from(
        explainer, x, layer, concepts.relevance_at(explainer, x, [layer])[layer]
    )
    torch.testing.assert_close(result.heatmaps.sum(dim=1), through, rtol=1e-9, atol=1e-12)
    assert (through - explainer(x)).abs().max() > 1e-3 * explainer(x).abs().max()  # the shortcut carries some


def test_relevance_at_a_layer_is_what_the_audit_books_there():
    explainer = LRP(tiny_cnn())
    x = torch.randn(2, 3, 6, 6)
    layers = ["0", "2", "4", "6"]
    relevance = concepts.relevance_at(explainer, x, layers, target=1)
    books = {row.name: row.relevance_in for row in explainer.audit(x, target=1).rows}
    for layer in layers:
        torch.testing.assert_close(relevance[layer].flatten(1).sum(dim=1), books[layer], rtol=1e-12, atol=0)
    assert relevance["2"].shape == (2, 5, 6, 6)


def test_conditional_relevance_is_its_definition_on_the_split_network():
    """Mask the relevance at the layer, then propagate it on through the part below, explained alone."""
    model = tiny_cnn()
    lower, upper = model[:3], model[3:]
    composite = composites.EpsilonPlus()  # no rule of its own for the first layer: the parts match the whole
    x = torch.randn(2, 3, 6, 6)
    target = torch.tensor([0, 3])
    at_layer = LRP(upper, composite)(lower(x), target=target)  # the relevance at the output of layer "2"
    explainer = LRP(model, composite)
    concept_channels = [[1], [0, 4], [2, 3]]
    result = concepts.conditional_heatmaps(
        explainer, x, [{"2": c} for c in concept_channels], target=target, record=["2"]
    )
    for k, kept in enumerate(concept_channels):
        mask = torch.zeros(1, 5, 1, 1)
        mask[:, kept] = 1
        expected = LRP(lower, composite).propagate(x, at_layer * mask)
        torch.testing.assert_close(result.heatmaps[:, k], expected, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(result.layers["2"][:, k], at_layer * mask, rtol=1e-10, atol=1e-12)


def test_a_concept_at_two_layers_masks_both():
    model = tiny_cnn()
    lower, middle, upper = model[:1], model[1:3], model[3:]
    composite = composites.EpsilonPlus()
    x = torch.randn(2, 3, 6, 6)
    at_2 = LRP(upper, composite)(middle(lower(x)))
    mask_2 = torch.zeros(1, 5, 1, 1)
    mask_2[:, 3] = 1
    at_0 = LRP(middle, composite).propagate(lower(x), at_2 * mask_2)
    mask_0 = torch.zeros(1, 6, 1, 1)
    mask_0[:, [1, 5]] = 1
    expected = LRP(lower, composite).propagate(x, at_0 * mask_0)
    result = concepts.conditional_heatmaps(LRP(model, composite), x, [{"2": 3, "0": [1, 5]}])
    torch.testing.assert_close(result.heatmaps[:, 0], expected, rtol=1e-10, atol=1e-12)


def test_many_concepts_in_one_call_equal_one_call_each():
    explainer = LRP(tiny_cnn())
    x = torch.randn(3, 3, 6, 6)
    conditions = [{"2": 4}, {"0": [0, 2]}, {}, {"2": [1, 2], "0": 3}]
    target = torch.tensor([2, 0, 1])
    together = concepts.conditional_heatmaps(explainer, x, conditions, target=target)
    for k, condition in enumerate(conditions):
        alone = concepts.conditional_heatmaps(explainer, x, [condition], target=target)
        torch.testing.assert_close(together.heatmaps[:, k], alone.heatmaps[:, 0], rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(together.heatmaps[:, 2], explainer(x, target=target))  # {} conditions nothing
    in_passes = concepts.conditional_heatmaps(explainer, x, conditions, target=target, concepts_per_pass=3)
    torch.testing.assert_close(in_passes.heatmaps, together.heatmaps, rtol=1e-10, atol=1e-14)


def test_exclude_parallel_on_a_hand_computed_residual_block():
    """LRP-0 on out = v . (W2 a + x), a = relu(W1 x); the concept is channel c of the second layer.

    The output's relevance splits at the addition in proportion to its terms: z_j v_j to the branch
    (z = W2 a), x_j v_j to the shortcut. Masked to c, the branch gives a_i W2[c, i] v_c to a_i, and the
    first layer x_k W1[i, k] / h_i of that to x_k (h_i = a_i > 0). Without exclude_parallel, the shortcut's
    x_k v_k reaches x_k unmasked; with it, nothing bypasses the layer.
    """
    w1 = torch.tensor([[1.0, 0.5], [-0.25, 2.0]])
    w2 = torch.tensor([[0.5, -1.0], [1.5, 0.75]])
    v = torch.tensor([[1.25, -0.5]])
    x = torch.tensor([[0.8, 0.6]])
    h = x @ w1.T
    assert (h > 0).all()
    explainer = LRP(Residual(w1, w2, v), LRP_0)
    for c in range(2):
        branch = torch.stack(
            [sum(x[0, k] * w1[i, k] * w2[c, i] * v[0, c] for i in range(2)) for k in range(2)]
        )
        shortcut = x[0] * v[0]
        excluded = concepts.conditional_heatmaps(explainer, x, [{"second": c}], target=0)
        included = concepts.conditional_heatmaps(
            explainer, x, [{"second": c}], target=0, exclude_parallel=False
        )
        torch.testing.assert_close(excluded.heatmaps[0, 0], branch, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(included.heatmaps[0, 0], branch + shortcut, rtol=1e-12, atol=1e-14)


def test_the_layer_heatmap_spreads_each_position_over_its_pixels():
    explainer = LRP(tiny_cnn())
    x = torch.randn(2, 3, 6, 6)
    at_pool = concepts.relevance_at(explainer, x, ["4"])["4"]  # (2, 5, 3, 3): each cell covers 2x2 pixels
    heatmap = concepts.layer_heatmap(explainer, x, "4")
    expected = at_pool.sum(dim=1).repeat_interleave(2, dim=1).repeat_interleave(2, dim=2) / 4
    torch.testing.assert_close(heatmap, expected)
    torch.testing.assert_close(heatmap.sum(dim=(1, 2)), at_pool.sum(dim=(1, 2, 3)))
    with pytest.raises(ValueError, match="two spatial dimensions: layer '6'"):
        concepts.layer_heatmap(explainer, x, "6")


def test_propagation_from_a_latent_layer():
    explainer = LRP(tiny_cnn())
    x = torch.randn(2, 3, 6, 6)
    at_layer = concepts.relevance_at(explainer, x, ["2"])["2"]
    torch.testing.assert_close(concepts.propagate_from(explainer, x, "2", at_layer), explainer(x))
    torch.testing.assert_close(
        concepts.propagate_from(explainer, x, "2", 3 * at_layer), 3 * explainer(x)
    )  # relevance given at a layer, independent of the output


def test_concept_importance_sums_the_positions_of_each_channel():
    explainer = LRP(tiny_cnn())
    x = torch.randn(2, 3, 6, 6)
    at_layer = concepts.relevance_at(explainer, x, ["2"])["2"]
    importance = concepts.concept_importance(explainer, x, "2")
    torch.testing.assert_close(importance, at_layer.sum(dim=(2, 3)))
    share = concepts.concept_importance(explainer, x, "2", abs_norm=True)
    torch.testing.assert_close(share, importance / importance.abs().sum(dim=1, keepdim=True))
    torch.testing.assert_close(share.abs().sum(dim=1), torch.ones(2))
    dense = concepts.concept_importance(explainer, x, "6", target=1)  # a dense layer: one value per neuron
    torch.testing.assert_close(dense, concepts.relevance_at(explainer, x, ["6"], target=1)["6"])


class ShapeBranch(nn.Module):
    """Branches on the input's shape: torch.fx cannot trace it, torch.export captures it, once per shape."""

    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        if x.shape[-1] > 4:
            h = h[..., 1:]
        return self.head(h.mean((2, 3)))


def test_concepts_of_a_model_captured_by_torch_export():
    torch.manual_seed(0)
    explainer = LRP(ShapeBranch().eval())
    x = torch.randn(2, 3, 6, 6)
    for exclude_parallel in (True, False):
        result = concepts.conditional_heatmaps(
            explainer,
            x,
            [{"conv2d": c} for c in range(4)],
            exclude_parallel=exclude_parallel,
            record=["conv2d"],
        )
        torch.testing.assert_close(result.heatmaps.sum(dim=1), explainer(x), rtol=1e-10, atol=1e-12)
        at_layer = concepts.relevance_at(explainer, x, ["conv2d"])["conv2d"]
        torch.testing.assert_close(result.layers["conv2d"].sum(dim=1), at_layer, rtol=1e-10, atol=1e-12)


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.head, self.unused = nn.Linear(3, 4), nn.Linear(4, 2), nn.Linear(4, 2)

    def forward(self, x):
        h = torch.relu(self.body(x))
        self.unused(h)
        return self.head(torch.relu(self.body(h[:, :3])))


def test_bad_input_names_the_layer_and_the_channel():
    explainer = LRP(tiny_cnn())
    x = torch.randn(1, 3, 6, 6)
    with pytest.raises(ValueError, match="no layer 'features.2'"):
        concepts.conditional_heatmaps(explainer, x, [{"features.2": 0}])
    with pytest.raises(ValueError, match="no layer '9'"):
        concepts.relevance_at(explainer, x, ["9"])
    with pytest.raises(ValueError, match="channel 5 is out of range for layer '2', which has 5"):
        concepts.conditional_heatmaps(explainer, x, [{"2": 1}, {"2": [0, 5]}])
    with pytest.raises(ValueError, match="channel -1 of layer '2' is negative"):
        concepts.conditional_heatmaps(explainer, x, [{"2": -1}])
    with pytest.raises(TypeError, match="non-empty list"):
        concepts.conditional_heatmaps(explainer, x, {"2": 1})
    with pytest.raises(ValueError, match="concepts_per_pass must be a positive int"):
        concepts.conditional_heatmaps(explainer, x, [{"2": 1}], concepts_per_pass=0)
    with pytest.raises(ValueError, match="has shape"):
        concepts.propagate_from(explainer, x, "2", torch.ones(1, 4, 6, 6))


def test_a_layer_relevance_never_reaches_or_that_is_called_twice_is_refused():
    torch.manual_seed(0)
    explainer = LRP(TwoHeads().eval())
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="no relevance reaches layer 'unused'"):
        concepts.conditional_heatmaps(explainer, x, [{"unused": 0}], exclude_parallel=False)
    with pytest.raises(ValueError, match="no relevance reaches layer 'unused'"):
        concepts.relevance_at(explainer, x, ["unused"])
    with pytest.raises(ValueError, match="no relevance reaches layer 'unused'"):
        concepts.propagate_from(explainer, x, "unused", torch.ones(2, 2))
    with pytest.raises(
        ValueError, match="layer 'body' is called 2 times: name one call by its node, 'body', 'body_1'"
    ):
        concepts.relevance_at(explainer, x, ["body"])
    relevance = concepts.relevance_at(explainer, x, ["body_1"])["body_1"]  # a call by its graph node
    assert relevance.shape == (2, 4)


def test_the_attribution_graph_keeps_the_most_relevant_lower_concepts_of_each_path():
    explainer = LRP(tiny_cnn())
    x = torch.randn(1, 3, 6, 6)
    edges = concepts.attribution_graph(explainer, x, ("6", 2), ["2", "0"], target=2, top=2)
    assert len(edges) == 2 + 4
    below_top = concepts.conditional_heatmaps(explainer, x, [{"6": 2}], target=2, record=["2"])
    scores = below_top.layers["2"][0, 0].sum(dim=(1, 2))
    first = [e.lower[1] for e in edges[:2]]
    assert first == scores.argsort(descending=True)[:2].tolist()
    assert [e.relevance for e in edges[:2]] == pytest.approx(scores.sort(descending=True).values[:2].tolist())
    for edge in edges[2:]:  # conditioned on the whole path from the top
        path = {"6": 2, "2": edge.upper[1], "0": edge.lower[1]}
        alone = concepts.conditional_heatmaps(explainer, x, [path], target=2, record=["0"])
        assert edge.relevance == pytest.approx(float(alone.layers["0"][0, 0].sum()))
        assert edge.upper in [e.lower for e in edges[:2]]


def test_region_share_by_hand_on_a_linear_network():
    """LRP-0 on out = v . (W x): the heatmap of hidden channel j is x_i W[j, i] v_j; channel 0 gives
    (1, 0, -2), channel 1 (-1, -4, -2), 10 in absolute value in all. Inside the region {0, 2}: -1 and -3."""
    model = nn.Sequential(nn.Linear(3, 2, bias=False), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [0.5, 1.0, -1.0]]))
        model[1].weight.copy_(torch.tensor([[1.0, -2.0]]))
    explainer = LRP(model, LRP_0)
    x = torch.tensor([[1.0, 2.0, -1.0]])
    share = concepts.region_share(explainer, x, "0", torch.tensor([True, False, True]), target=0)
    torch.testing.assert_close(share, torch.tensor([[-0.1, -0.3]]), rtol=1e-12, atol=1e-14)
    everywhere = concepts.region_share(explainer, x, "0", torch.tensor(True), target=0)
    torch.testing.assert_close(everywhere, torch.tensor([[-0.1, -0.7]]), rtol=1e-12, atol=1e-14)


def test_region_share_of_all_channels_is_the_share_of_the_plain_heatmap_in_the_region():
    explainer = LRP(tiny_cnn())
    x = torch.randn(2, 3, 6, 6)
    region = torch.zeros(6, 6, dtype=torch.bool)
    region[:2, :3] = True
    share = concepts.region_share(explainer, x, "2", region, concepts_per_pass=2)
    heatmaps = concepts.conditional_heatmaps(explainer, x, [{"2": c} for c in range(5)]).heatmaps
    plain = explainer(x)
    expected = plain[..., :2, :3].sum(dim=(1, 2, 3)) / heatmaps.abs().sum(dim=(1, 2, 3, 4))
    torch.testing.assert_close(share.sum(dim=1), expected, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"region of shape \(5,\) does not broadcast"):
        concepts.region_share(explainer, x, "2", torch.ones(5, dtype=torch.bool))
    with pytest.raises(ValueError, match="region must be a boolean"):
        concepts.region_share(explainer, x, "2", torch.ones(6, 6))
