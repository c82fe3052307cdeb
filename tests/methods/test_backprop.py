import pytest
import torch
import torch.nn.functional as F
from captum.attr import Deconvolution
from captum.attr import GuidedBackprop as CaptumGuidedBackprop
from torch import nn

from relprop.methods import Deconvnet, Gradient, GuidedBackprop

pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU")

PEERS = [(GuidedBackprop, CaptumGuidedBackprop), (Deconvnet, Deconvolution)]


@pytest.mark.parametrize(("ours", "captum"), PEERS)
def test_matches_captum(make_model, images, ours, captum, untouched):
    model = make_model()
    with untouched(model):
        result = ours(model)(images, 1)
    expected = captum(model).attribute(images.clone().requires_grad_(), target=1)
    torch.testing.assert_close(result, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", [GuidedBackprop, Deconvnet])
@pytest.mark.parametrize("relu", ["functional", "inplace"])
def test_functional_and_inplace_relus_are_covered(make_model, images, method, relu, untouched):
    # same weights (same seed), ReLUs written differently: the same attribution
    model = make_model(relu=relu)
    with untouched(model):
        result = method(model)(images, 0)
    torch.testing.assert_close(result, method(make_model())(images, 0))


def test_differs_from_the_gradient_and_leaves_the_model_alone(make_model, images):
    model = make_model()
    before = Gradient(model)(images, 2)
    guided = GuidedBackprop(model)(images, 2)
    assert not torch.allclose(guided, before)
    torch.testing.assert_close(Gradient(model)(images, 2), before, rtol=0, atol=0)


def test_one_hidden_layer_by_hand():
    model = nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 1, bias=False)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        model[2].weight.copy_(torch.tensor([[2.0, -1.0, 3.0]]))
    x = torch.tensor([[1.0, -2.0]], dtype=torch.float64)  # hidden pre-activations (1, -2, -1)
    w1 = model[0].weight.detach()
    # guided: relu(w2) masked by h > 0 = (2, 0, 0); deconvnet: relu(w2) = (2, 0, 3)
    guided = torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64) @ w1
    deconv = torch.tensor([2.0, 0.0, 3.0], dtype=torch.float64) @ w1
    torch.testing.assert_close(GuidedBackprop(model)(x, 0), guided.view(1, 2))
    torch.testing.assert_close(Deconvnet(model)(x, 0), deconv.view(1, 2))


class TwoRelus(nn.Module):
    def forward(self, x):
        return torch.relu(x) - F.relu(-x, inplace=False)  # the identity, through two relus


class InplaceFunctional(nn.Module):
    def forward(self, x):
        y = x * 2
        torch.relu_(y)  # the result is used through y
        return y


def test_torch_relu_keyword_and_inplace_functional_forms():
    x = torch.tensor([[1.0, -2.0, 3.0]], dtype=torch.float64)
    weights = torch.tensor([[1.0, -1.0, -1.0]], dtype=torch.float64)
    # relu(x): relu(w) where x > 0 gives (1, 0, 0); -relu(-x): relu(-w) where -x > 0 gives (0, 1, 0), times
    # -1 through the negation. The gradient would be w itself.
    expected = torch.tensor([[1.0, -1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(GuidedBackprop(TwoRelus())(x, weights), expected)
    # relu(w) * 2 where 2x > 0; the plain gradient has -2 at the last element
    expected = torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(GuidedBackprop(InplaceFunctional())(x, weights), expected)
    plain = torch.tensor([[2.0, 0.0, -2.0]], dtype=torch.float64)
    torch.testing.assert_close(Gradient(InplaceFunctional())(x, weights), plain)


def test_models_without_relu_or_untraceable(images):
    with pytest.raises(ValueError, match="no ReLU"):
        GuidedBackprop(nn.Sequential(nn.Linear(3, 2), nn.Tanh()))

    class Branchy(nn.Module):
        def forward(self, x):
            return x.relu() if x.sum() > 0 else x

    with pytest.raises(TypeError, match="trace"):
        Deconvnet(Branchy())
