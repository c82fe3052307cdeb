"""relprop.prune: the criteria against their definitions, masks, physical removal, the ranking, errors."""

import math

import pytest
import torch
from torch import nn

from relprop import LRP, composites
from relprop.models.efficientnet_lite import MBConvBlock
from relprop.prune import (
    layer_structure,
    mask_units,
    prunable_layers,
    prune,
    remove_units,
    select_units,
    unit_scores,
)
from relprop.rules import ZPlus


def _dense() -> nn.Sequential:
    """x -> W1 x -> ReLU -> W2 h, bias-free, float64, with weights chosen to compute by hand."""
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0], [-2.0, 1.0]]))
        model[2].weight.copy_(torch.tensor([[2.0, 3.0]]))
    return model.eval()


# x1 = (1, 1): h = (3, -1) -> (3, 0), y = 6; x2 = (0, 1): h = (2, 1), y = 7.
_X = torch.tensor([[1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
_TARGET = torch.tensor([0, 0])


@pytest.mark.parametrize(
    ("criterion", "expected"),
    [
        ("lrp", [6.0 + 4.0, 0.0 + 3.0]),  # epsilon rule: R_j = h_j w_j y / y
        ("gradient", [2.0 + 2.0, 0.0 + 3.0]),  # dy/dh = w2 relu'(h)
        ("taylor", [6.0 + 4.0, 0.0 + 3.0]),  # |h dy/dh|
        ("weight-l1", [3.0, 3.0]),
        ("weight-l2", [math.sqrt(5.0), math.sqrt(5.0)]),
    ],
)
def test_scores_match_their_definitions_by_hand(criterion, expected):
    scores = unit_scores(_dense(), _X, _TARGET, criterion=criterion)
    assert list(scores) == ["0"]
    torch.testing.assert_close(scores["0"], torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=0)


def _cnn(seed: int = 0) -> nn.Sequential:
    """Conv -> BN -> ReLU -> MaxPool -> Conv -> BN -> ReLU -> Flatten -> Linear -> ReLU -> Linear, float64,
    with batch-norm statistics that are not the identity."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(), nn.Flatten(),
        nn.Linear(5 * 4 * 4, 6), nn.ReLU(), nn.Linear(6, 3),
    ).double()  # fmt: skip
    for module in model:
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_()
    return model.eval()


def test_lrp_score_is_the_relevance_at_the_input_of_the_upper_part():
    """Relevance at layer 4's output (after its batch norm and ReLU, which pass it on) equals the input
    relevance of the model above, explained on that layer's activation: the recording route and the
    split-model route agree."""
    model, x = _cnn(), torch.randn(5, 1, 8, 8, dtype=torch.float64)
    target = model(x).argmax(1)
    composite = composites.EpsilonPlus()
    scores = unit_scores(model, x, target, criterion="lrp", layers=["4"], composite=composite)
    upper = LRP(model[7:], composite)(model[:7](x), target)
    torch.testing.assert_close(scores["4"], upper.abs().sum((0, 2, 3)))


def test_lrp_scores_of_positive_relevance_sum_to_the_logits():
    """Under the z+ rule relevance stays non-negative and is conserved in bias-free layers, so each layer's
    scores add up to the explained logits."""
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 36, 4, bias=False), nn.ReLU(),
        nn.Linear(4, 2, bias=False),
    ).double().eval()  # fmt: skip
    x = torch.rand(6, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        model[5].weight.abs_()  # positive logits
    composite = composites.Uniform(ZPlus(stabilizer=1e-12), stabilizer=1e-12)
    scores = unit_scores(model, x, criterion="lrp", composite=composite)
    logits = model(x).max(1).values.sum()
    for name in ("0", "3"):
        torch.testing.assert_close(scores[name].sum(), logits.detach())


def test_masks_zero_exactly_the_chosen_units_where_the_next_layer_reads_them():
    model, x = _cnn(), torch.randn(3, 1, 8, 8, dtype=torch.float64)
    keep = {"0": torch.tensor([True, False, True, False]), "8": torch.tensor([False, True] * 3)}
    masked = mask_units(model, keep)
    before, after = model[:4](x), masked[:4](x)
    assert (after[:, [1, 3]] == 0).all()
    torch.testing.assert_close(after[:, [0, 2]], before[:, [0, 2]])
    assert (masked[:10](x)[:, [0, 2, 4]] == 0).all()
    for name, module in masked.named_modules():
        if name and name not in ("0", "1", "8"):
            for key, value in module.state_dict().items():
                torch.testing.assert_close(value, dict(model.named_modules())[name].state_dict()[key])


def test_removed_units_compute_the_masked_function_with_smaller_layers():
    model, x = _cnn(), torch.randn(4, 1, 8, 8, dtype=torch.float64)
    keep = {
        "0": torch.tensor([True, False, True, True]),
        "4": torch.tensor([False, True, True, False, True]),
        "8": torch.tensor([True, True, False, True, False, True]),
    }
    small = remove_units(model, keep)
    torch.testing.assert_close(small(x), mask_units(model, keep)(x))
    assert (small[0].out_channels, small[1].num_features, small[4].in_channels) == (3, 3, 3)
    assert (small[4].out_channels, small[8].in_features, small[8].out_features) == (3, 3 * 16, 4)
    assert small[10].in_features == 4
    assert model[0].out_channels == 4  # the given model is untouched


def _mobile() -> nn.Sequential:
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(),
        MBConvBlock(8, 8, 3, 1, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
    ).double()  # fmt: skip
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_expansion_channels_of_a_residual_block_are_pruned_through_the_depthwise_convolution():
    model, x = _mobile(), torch.randn(2, 3, 8, 8, dtype=torch.float64)
    assert prunable_layers(model) == ["3._expand_conv"]  # the first conv feeds the residual addition
    structure = layer_structure(model, "3._expand_conv")
    assert structure.followers == ("3._bn0", "3._depthwise_conv", "3._bn1")
    assert structure.consumers == ("3._project_conv",)
    keep = {"3._expand_conv": torch.tensor([True, False] * 8)}
    small = remove_units(model, keep)
    torch.testing.assert_close(small(x), mask_units(model, keep)(x))
    assert small[3]._depthwise_conv.groups == 8
    assert LRP(small)(x).shape == x.shape  # the smaller model is explained as any other


def test_global_ranking_normalizes_per_layer_and_keeps_each_layers_best():
    scores = {
        "a": torch.tensor([1.0, 3.0], dtype=torch.float64),  # normalized 0.25, 0.75
        "b": torch.tensor([10.0, 10.0, 20.0], dtype=torch.float64),  # 0.25, 0.25, 0.5
    }
    keep = select_units(scores, 0.4)  # 2 of 5: the three 0.25s tie, earlier layer and unit first
    assert keep["a"].tolist() == [False, True] and keep["b"].tolist() == [False, True, True]
    keep = select_units(scores, 0.99)  # 5 units asked, but each layer keeps its best
    assert keep["a"].tolist() == [False, True] and keep["b"].tolist() == [False, False, True]
    again = select_units({"a": torch.tensor([5.0, 1.0]), "b": scores["b"]}, 0.4, keep)
    assert again["a"].tolist() == [False, True]  # a pruned unit stays pruned whatever its new score


def test_prune_leaves_the_given_model_unless_inplace():
    model, x = _cnn(), torch.randn(6, 1, 8, 8, dtype=torch.float64)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    result = prune(model, x, rate=0.5, remove=True)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key])
    units = sum(mask.numel() for mask in result.keep.values())
    assert sum(int((~mask).sum()) for mask in result.keep.values()) == round(0.5 * units)
    assert result.model[0].out_channels == int(result.keep["0"].sum())
    prune(model, x, rate=0.5, inplace=True)
    assert any(not torch.equal(value, state[key]) for key, value in model.state_dict().items())


def test_fine_tuning_cannot_revive_pruned_units():
    model, x = _cnn(), torch.randn(8, 1, 8, 8, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))

    def fine_tune(net):
        net.train()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
        for _ in range(3):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            optimizer.step()

    result = prune(model, x, y, rate=0.6, steps=2, criterion="taylor", fine_tune=fine_tune)
    assert not result.model.training
    units = sum(mask.numel() for mask in result.keep.values())
    assert sum(int((~mask).sum()) for mask in result.keep.values()) == round(0.6 * units)  # after 2 rounds
    pruned = ~result.keep["0"]
    assert pruned.any() and (result.model[0].weight[pruned] == 0).all()
    assert (result.model[1].weight[pruned] == 0).all() and (result.model[1].bias[pruned] == 0).all()
    assert not any(name.endswith("_orig") for name, _ in result.model.named_parameters())


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, float("nan"), "half"])
def test_a_rate_outside_zero_to_one_is_refused(rate):
    with pytest.raises(ValueError, match=r"^rate must be a number"):
        prune(_cnn(), torch.randn(2, 1, 8, 8, dtype=torch.float64), rate=rate)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("10", "layer '10' cannot be pruned: its output reaches the model's output"),
        ("1", "layer '1' is a BatchNorm2d"),
        ("nope", "the model has no layer 'nope'"),
    ],
)
def test_a_layer_that_cannot_be_pruned_is_named(layer, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        unit_scores(_cnn(), torch.randn(2, 1, 8, 8, dtype=torch.float64), layers=[layer])


def test_the_first_layer_of_a_residual_is_refused_with_the_addition_named():
    with pytest.raises(ValueError, match=r"^layer '0' cannot be pruned: its output reaches add"):
        layer_structure(_mobile(), "0")


@pytest.mark.parametrize("x", [None, torch.zeros(0, 1, 8, 8, dtype=torch.float64)])
@pytest.mark.parametrize("criterion", ["lrp", "gradient", "taylor"])
def test_no_reference_samples_is_refused(x, criterion):
    with pytest.raises(ValueError, match=f"^criterion '{criterion}' needs reference samples"):
        prune(_cnn(), x, rate=0.3, criterion=criterion)


def test_weight_norms_need_no_references():
    result = prune(_cnn(), None, rate=0.3, criterion="weight-l1")
    assert sum(int((~mask).sum()) for mask in result.keep.values()) == round(0.3 * 15)


def test_a_bad_mask_is_named():
    with pytest.raises(ValueError, match=r"^the mask of layer '0' must be a bool tensor of shape \(4,\)"):
        mask_units(_cnn(), {"0": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"^the mask of layer '0' removes all 4 units"):
        remove_units(_cnn(), {"0": torch.zeros(4, dtype=torch.bool)})


def test_a_pruned_model_is_explained_evaluated_and_stored_like_any_other(tmp_path):
    from relprop import store
    from relprop.data import ArrayDataset
    from relprop.evaluate import region_perturbation

    model, x = _cnn(), torch.randn(6, 1, 8, 8, dtype=torch.float64)
    result = prune(model, x, rate=0.5)
    small = remove_units(result.model, result.keep).float()
    x = x.float()
    relevance = LRP(small)(x)
    torch.testing.assert_close(relevance, LRP(result.model.float())(x))  # masked or removed: one explanation
    curve = region_perturbation(small, x, relevance, patch_size=2, steps=4)
    assert curve.curve.shape == (6, 5)
    out = store.attribute_dataset(ArrayDataset(x.numpy()), small, tmp_path / "run.h5", dtype="float32",
                                  progress=False)  # fmt: skip
    with store.open(out) as run:
        torch.testing.assert_close(torch.from_numpy(run.attribution[:]), relevance)


class _Wrapped(nn.Module):
    """A model that is not an nn.Sequential, around :func:`_cnn`."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _cnn().float()

    def forward(self, x):
        return self.body(x)


def test_a_pruned_model_is_written_in_a_form_that_loads(tmp_path):
    from relprop.models.loading import load_model
    from relprop.prune.files import save_pruned

    x = torch.randn(3, 1, 8, 8)
    result = prune(_cnn().float(), x, rate=0.4, remove=True)
    assert save_pruned(result.model, tmp_path / "s.pt", x[:1]) == str(tmp_path / "s.pt")
    torch.testing.assert_close(load_model(str(tmp_path / "s.pt"))(x), result.model(x))

    masked = prune(_Wrapped().eval(), x, rate=0.4)
    assert save_pruned(masked.model, tmp_path / "m.pt", x[:1], "arch") == f"arch:{tmp_path / 'm.pt'}"
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    torch.testing.assert_close(state["body.0.weight"], masked.model.body[0].weight)

    small = remove_units(masked.model, masked.keep)
    with pytest.raises(
        ValueError, match=r"^a smaller _Wrapped is written as a torch.export program: name the"
    ):
        save_pruned(small, tmp_path / "r.pt", x[:1])
    save_pruned(small, tmp_path / "r.pt2", x[:1])
    torch.testing.assert_close(load_model(str(tmp_path / "r.pt2"), trust=True)(x), small(x))
