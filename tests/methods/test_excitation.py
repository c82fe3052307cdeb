import pytest
import torch
from zennit.attribution import Gradient as ZennitGradient
from zennit.composites import ExcitationBackprop as ZennitExcitationBackprop

from relprop import LRP, composites, rules
from relprop.methods import ExcitationBackprop


def test_equals_lrp_with_z_plus_without_biases(make_model, images, untouched):
    model = make_model(bias=False)
    with untouched(model):
        ours = ExcitationBackprop(model)(images, 1)
    expected = LRP(model, composite=composites.Uniform(rules.ZPlus()))(images, 1)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-14)


def test_biases_take_no_share(make_model, images):
    model = make_model(bias=True)
    ours = ExcitationBackprop(model)(images, 1)
    with_bias = LRP(model, composite=composites.Uniform(rules.ZPlus()))(images, 1)
    assert not torch.allclose(ours, with_bias)
    # relevance is conserved from the output to the input whatever the biases
    logits = model(images)[:, 1].detach()
    torch.testing.assert_close(ours.sum(dim=(1, 2, 3)), logits, rtol=1e-4, atol=0)  # stabilizer 1e-6
    exact = ExcitationBackprop(model, stabilizer=0.0)(images, 1)
    torch.testing.assert_close(exact.sum(dim=(1, 2, 3)), logits, rtol=1e-12, atol=1e-14)


def test_matches_zennit_with_zeroed_biases(make_model, images):
    model = make_model(bias=True)
    one_hot = torch.nn.functional.one_hot(torch.tensor([2, 2]), 3).double()
    with ZennitGradient(model=model, composite=ZennitExcitationBackprop(zero_params=["bias"])) as attributor:
        _, expected = attributor(images, lambda output: output * one_hot)
    torch.testing.assert_close(ExcitationBackprop(model)(images, 2), expected, rtol=1e-10, atol=1e-12)


def test_probabilities_are_non_negative(make_model, images):
    # for non-negative inputs and a positive explained quantity (here |logit 0|), every share is a
    # probability times that quantity
    model = make_model(bias=True)
    sign = model(images).detach()[:, :1].sign()
    target = torch.nn.functional.one_hot(torch.tensor([0, 0]), 3).double() * sign
    relevance = ExcitationBackprop(model)(images, target)
    assert (relevance >= 0).all() and (relevance > 0).any()


def test_bad_input(make_model, images):
    with pytest.raises(ValueError, match="NaN"):
        ExcitationBackprop(make_model())(images.masked_fill(images > 0.5, float("nan")))
    with pytest.raises(ValueError, match="stabilizer"):
        ExcitationBackprop(make_model(), stabilizer=-1.0)
