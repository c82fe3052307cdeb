"""Every rule against its equation, computed independently with explicit matrices, in float64."""

import pytest
import torch
from torch import nn

from relprop import LRP, composites, rules, types

pytestmark = pytest.mark.usefixtures("float64")  # numbers are compared in float64


def dense_matrix(layer: nn.Module, sample_shape) -> torch.Tensor:
    """The matrix M (outputs x inputs) of a layer's linear part, from its Jacobian at zero."""
    with torch.no_grad():
        saved = None
        if getattr(layer, "bias", None) is not None:
            saved = layer.bias.clone()
            layer.bias.zero_()
        jac = torch.autograd.functional.jacobian(
            lambda v: layer(v.reshape(1, *sample_shape)).flatten(), torch.zeros(sample_shape).flatten()
        )
        if saved is not None:
            layer.bias.copy_(saved)
    return jac


def structure(layer: nn.Module, sample_shape) -> torch.Tensor:
    """Connectivity (1 where an input feeds an output) of a layer."""
    probe = type(layer).__new__(type(layer))
    probe.__dict__ = dict(layer.__dict__)
    probe._parameters = {
        k: (None if v is None else nn.Parameter(torch.ones_like(v))) for k, v in layer._parameters.items()
    }
    if isinstance(layer, nn.BatchNorm2d):  # unit running variance: the scale is the (unit) weight
        probe._buffers = dict(layer._buffers, running_var=torch.full_like(layer.running_var, 1 - layer.eps))
    return dense_matrix(probe, sample_shape)


def stab(z, eps):
    return z + eps * torch.where(z >= 0, 1.0, -1.0)


def ratio(numerator, denominator):
    """Division that passes nothing through a zero denominator, as the rules' convention says."""
    return torch.where(denominator == 0, 0.0, numerator / torch.where(denominator == 0, 1.0, denominator))


def reference(rule, layer, x, relevance):
    """R_i from the rule's equation with the dense matrix M (rows: outputs)."""
    shape = x.shape[1:]
    M = dense_matrix(layer, shape)
    b = torch.zeros(M.shape[0])
    if getattr(layer, "bias", None) is not None:
        b = layer(torch.zeros(1, *shape)).flatten().detach()
    a = x.flatten()
    R = relevance.flatten()
    Mp, Mn = M.clamp(min=0), M.clamp(max=0)
    ap, an = a.clamp(min=0), a.clamp(max=0)
    bp, bn = b.clamp(min=0), b.clamp(max=0)
    if isinstance(rule, rules.Epsilon):
        z = M @ a + b
        out = a * (M.T @ ratio(R, stab(z, rule.epsilon)))
    elif isinstance(rule, rules.ZPlus):
        z = Mp @ ap + Mn @ an + bp
        s = ratio(R, stab(z, rule.stabilizer))
        out = ap * (Mp.T @ s) + an * (Mn.T @ s)
    elif isinstance(rule, rules.AlphaBeta):
        zp = Mp @ ap + Mn @ an + bp
        zn = Mn @ ap + Mp @ an + bn
        sp, sn = ratio(R, stab(zp, rule.stabilizer)), ratio(R, stab(zn, rule.stabilizer))
        out = rule.alpha * (ap * (Mp.T @ sp) + an * (Mn.T @ sp)) - rule.beta * (
            ap * (Mn.T @ sn) + an * (Mp.T @ sn)
        )
    elif isinstance(rule, rules.Gamma):
        g = rule.gamma
        z = M @ a + b
        up, un = M + g * Mp, M + g * Mn
        zpos = up @ ap + un @ an + b + g * bp
        zneg = un @ ap + up @ an + b + g * bn
        sp = ratio(R * (z > 0), stab(zpos, rule.stabilizer))
        sn = ratio(R * (z < 0), stab(zneg, rule.stabilizer))
        out = ap * (up.T @ sp) + an * (un.T @ sp) + ap * (un.T @ sn) + an * (up.T @ sn)
    elif isinstance(rule, rules.Flat):
        C = structure(layer, shape)
        out = C.T @ (R / stab(C.sum(1), rule.stabilizer))
    elif isinstance(rule, rules.WSquare):
        W2 = M**2
        out = W2.T @ (R / stab(W2.sum(1), rule.stabilizer))
    elif isinstance(rule, rules.ZBox):
        low = torch.as_tensor(rule.low).expand(shape).flatten()
        high = torch.as_tensor(rule.high).expand(shape).flatten()
        z = M @ a - Mp @ low - Mn @ high
        s = R / stab(z, rule.stabilizer)
        out = a * (M.T @ s) - low * (Mp.T @ s) - high * (Mn.T @ s)
    else:
        raise AssertionError(rule)
    return out.reshape(x.shape)


RULES = [
    rules.Epsilon(),
    rules.Epsilon(0.5),
    rules.LRP0(),
    rules.ZPlus(),
    rules.AlphaBeta(2.0, 1.0),
    rules.AlphaBeta(1.0, 0.0),
    rules.AlphaBeta(1.5, 0.25),
    rules.Gamma(0.25),
    rules.Gamma(2.0),
    rules.Flat(),
    rules.WSquare(),
    rules.ZBox(-2.0, 2.5),
]


def layers():
    torch.manual_seed(0)
    return [
        (nn.Linear(5, 4), (5,)),
        (nn.Conv2d(2, 3, 3, padding=1), (2, 5, 5)),
        (nn.Conv2d(4, 4, 3, stride=2, dilation=1, groups=2, padding=1), (4, 6, 6)),
        (nn.Conv2d(3, 3, 3, groups=3, bias=False), (3, 5, 5)),
        (nn.Conv1d(2, 3, 3, stride=2, dilation=2), (2, 9)),
        (nn.Conv2d(2, 2, 3, stride=3, dilation=2, padding=1), (2, 8, 7)),  # rows the stride skips
        (nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1), (2, 3, 3)),
        (nn.Conv3d(1, 2, 2), (1, 3, 3, 3)),
        (batch_norm(3), (3, 2, 2)),
    ]


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """A lone batch normalization in evaluation mode: a per-channel affine map with signed scales."""
    layer = nn.BatchNorm2d(channels).eval()
    with torch.no_grad():
        layer.running_mean.normal_()
        layer.running_var.uniform_(0.5, 2.0)
        layer.weight.normal_()
        layer.bias.normal_()
    return layer


@pytest.mark.parametrize("rule", RULES, ids=repr)
@pytest.mark.parametrize("index", range(8))
@pytest.mark.parametrize("inputs", ["signed", "non-negative", "between ReLUs"])
def test_rule_matches_its_equation(rule, index, inputs):
    """Signed inputs exercise every part of the rules; non-negative ones (after a ReLU) their shortcuts, and
    those with relevance on positive outputs only (a ReLU follows, as in VGG) gamma's single backward pass."""
    layer, shape = layers()[index]
    torch.manual_seed(index)
    x = torch.randn(1, *shape)
    if inputs != "signed":
        x = x.clamp(min=0)
    model = nn.Sequential(layer)
    with torch.no_grad():
        out = model(x)
    relevance_out = torch.randn_like(out)
    if inputs == "between ReLUs":
        relevance_out = relevance_out * (out > 0)
    composite = composites.Composite(layer_map=[(types.Linear + types.BatchNorm, rule)])
    ours = LRP(model, composite).propagate(x, relevance_out)
    expected = reference(rule, layer, x, relevance_out)
    torch.testing.assert_close(ours, expected, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("rule", RULES, ids=repr)
def test_rule_on_weightless_pooling_has_positive_weights(rule):
    """Average pooling is a linear map with positive weights: its negative part is zero (zennit's alpha-beta
    applies the pooling to both parts instead). Weightless operations compute the denominators of the
    weight-free rules (w-square) with unit weights, so the 1e-6 stabilizer weighs differently: tolerance
    1e-5."""
    torch.manual_seed(1)
    layer = nn.AvgPool2d(2, stride=1)
    x = torch.randn(1, 2, 4, 4)
    with torch.no_grad():
        out = layer(x)
    relevance_out = torch.randn_like(out)
    composite = composites.Composite(layer_map=[(types.AvgPool, rule)])
    ours = LRP(nn.Sequential(layer), composite).propagate(x, relevance_out)
    expected = reference(rule, layer, x, relevance_out)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-11)


def test_epsilon_by_hand():
    """x = (1, 2), z = (1*1 + 2*(-1) + 2, 1*2 + 2*1) = (1, 4), R_out = (1, 4) (explaining both logits)."""
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 1.0]]))
        layer.bias.copy_(torch.tensor([2.0, 0.0]))
    x = torch.tensor([[1.0, 2.0]])
    relevance = LRP(nn.Sequential(layer), composites.Uniform(rules.Epsilon(1.0))).propagate(
        x, torch.tensor([[1.0, 4.0]])
    )
    # R_1 = 1*1/(1+1)*1 + 1*2/(4+1)*4 = 0.5 + 1.6 ; R_2 = 2*(-1)/2*1 + 2*1/5*4 = -1 + 1.6
    torch.testing.assert_close(relevance, torch.tensor([[2.1, 0.6]]))


def test_alphabeta_toolbox_convention():
    """The LRP Toolbox's single alpha=2 is Bach's alpha=2, beta=1: positive shares times 2, negative
    times 1."""
    layer = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0, 3.0]]))
    x = torch.tensor([[1.0, 1.0, 1.0]])  # contributions (1, -2, 3): z+ = 4, z- = -2
    relevance = LRP(
        nn.Sequential(layer), composites.Uniform(rules.AlphaBeta(2.0, 1.0, stabilizer=0))
    ).propagate(x, torch.tensor([[2.0]]))
    torch.testing.assert_close(relevance, torch.tensor([[2 * 1 / 4 * 2, -(-2 / -2 * 2), 2 * 3 / 4 * 2]]))


def test_stabilizer_sign_of_zero_is_positive():
    z = torch.tensor([-1.0, 0.0, 2.0])
    torch.testing.assert_close(rules.stabilize(z, 0.1), torch.tensor([-1.1, 0.1, 2.1]))


def test_lrp0_zero_denominator_passes_nothing():
    layer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    relevance = LRP(nn.Sequential(layer), composites.Uniform(rules.LRP0())).propagate(
        torch.tensor([[1.0, -1.0]]), torch.tensor([[3.0]])
    )
    torch.testing.assert_close(relevance, torch.zeros(1, 2))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: rules.Epsilon(-1.0), "epsilon"),
        (lambda: rules.Gamma(-0.1), "gamma"),
        (lambda: rules.AlphaBeta(2.0, -1.0), "beta"),
        (lambda: rules.ZPlus(stabilizer=float("nan")), "stabilizer"),
    ],
)
def test_invalid_parameters_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_zbox_bounds_must_broadcast():
    model = nn.Sequential(nn.Conv2d(3, 2, 3))
    composite = composites.EpsilonGammaBox(low=torch.zeros(4, 1, 1), high=torch.ones(4, 1, 1))
    with pytest.raises(ValueError, match="ZBox low"):
        LRP(model, composite)(torch.randn(1, 3, 5, 5), target=torch.randn(1, 2, 3, 3))


def test_zbox_per_channel_bounds():
    torch.manual_seed(3)
    layer = nn.Conv2d(3, 2, 3)
    x = torch.rand(1, 3, 5, 5)
    low, high = (
        torch.tensor([-1.0, 0.0, -0.5]).view(1, 3, 1, 1),
        torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1),
    )
    rule = rules.ZBox(low, high)
    with torch.no_grad():
        out = layer(x)
    relevance_out = torch.rand_like(out)
    ours = LRP(nn.Sequential(layer), composites.Uniform(rule)).propagate(x, relevance_out)
    M = dense_matrix(layer, x.shape[1:])
    lo, hi = low.expand(1, 3, 5, 5).flatten(), high.expand(1, 3, 5, 5).flatten()
    a = x.flatten()
    z = M @ a - M.clamp(min=0) @ lo - M.clamp(max=0) @ hi
    s = relevance_out.flatten() / stab(z, 1e-6)
    expected = a * (M.T @ s) - lo * (M.clamp(min=0).T @ s) - hi * (M.clamp(max=0).T @ s)
    torch.testing.assert_close(ours.flatten(), expected)


def test_zbox_is_accurate_in_float32_near_the_bounds():
    """With positive weights and inputs near the lower bound the denominator is small, while x W and l W+ are
    not: ZBox sums the non-negative terms (x - l) W+ and (x - h) W- instead of cancelling large ones, so
    float32 agrees with float64."""
    torch.manual_seed(4)
    layer = nn.Conv2d(3, 8, 5, padding=2).double()
    with torch.no_grad():
        layer.weight.abs_()
    low, high = -30.0, 30.0
    # within 2^-8 of the bound, and exact in float32 too
    x = low + torch.randint(1, 5, (2, 3, 12, 12), dtype=torch.float64) / 1024
    relevance_out = torch.rand(2, 8, 12, 12, dtype=torch.float64)
    composite = composites.Uniform(rules.ZBox(low, high))
    exact = LRP(nn.Sequential(layer), composite).propagate(x, relevance_out)
    single = LRP(nn.Sequential(layer).float(), composite).propagate(x.float(), relevance_out.float())
    error = ((single.double() - exact).norm() / exact.norm()).item()
    assert error < 1e-5, error


@pytest.mark.parametrize(
    ("low", "high", "message"),
    [
        (1.0, 0.0, "low < high"),
        (0.0, 0.0, "low < high"),
        (float("nan"), 1.0, "finite"),
        (0.0, float("inf"), "finite"),
        (torch.zeros(3), torch.ones(2), "do not broadcast"),
        (torch.tensor([0.0, 2.0]), torch.ones(2), "low < high"),
    ],
)
def test_zbox_refuses_bounds_that_are_not_an_interval(low, high, message):
    with pytest.raises(ValueError, match=message):
        rules.ZBox(low, high)
    with pytest.raises(ValueError, match=message):
        composites.EpsilonGammaBox(low, high)


class PositiveWeights(rules.LinearRule):
    """The rule of the README's "Writing a rule", as written there."""

    def backward(self, op, inputs, output, context, relevance):
        term = rules.Term(inputs, weight=lambda w: w.clamp(min=0))
        return rules.share(op, inputs, relevance, [term], self.stabilizer, redistribute=self.redistribute)


def test_readme_rule_matches_its_equation():
    """W = [[1, -1], [2, 3]], W+ = [[1, 0], [2, 3]], x = (1, 2), R_out = (1, 4), stabilizer 0.5,
    bias ignored: z+ = (1*1 + 2*0, 1*2 + 2*3) = (1, 8), d = (1.5, 8.5);
    R_1 = 1*1/1.5*1 + 1*2/8.5*4, R_2 = 2*0/1.5*1 + 2*3/8.5*4."""
    layer = nn.Linear(2, 2).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 3.0]]))
        layer.bias.copy_(torch.tensor([5.0, -7.0]))
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    composite = composites.Composite(layer_map=[(types.Linear, PositiveWeights(stabilizer=0.5))])
    relevance = LRP(nn.Sequential(layer), composite).propagate(
        x, torch.tensor([[1.0, 4.0]], dtype=torch.float64)
    )
    expected = torch.tensor([[1 / 1.5 + 8 / 8.5, 24 / 8.5]], dtype=torch.float64)
    torch.testing.assert_close(relevance, expected, rtol=1e-15, atol=0)
