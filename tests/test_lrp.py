"""The engine: conservation, the audit's books, targets, architectures, errors, and an untouched model."""

import copy
import gc
import itertools

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from relprop import LRP, UnsupportedOperationError, composites, rules, types

pytestmark = pytest.mark.usefixtures("float64")  # numbers are compared in float64


class Block(nn.Module):
    """Functional operations, a residual '+', a concatenation, a slice, a module called twice, a gate."""

    def __init__(self, bias: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=bias)
        self.squeeze = nn.Conv2d(4, 4, 1, bias=bias)

    def forward(self, x):
        y = F.relu(self.conv(x)) + x  # residual
        y = F.relu(self.conv(y))  # the same module a second time
        scale = torch.sigmoid(self.squeeze(y.mean((2, 3), keepdim=True)))  # squeeze-and-excitation gate
        y = y * scale
        y = torch.cat([y[:, :2], y[:, 2:]], dim=1)  # split and join
        return y


class Net(nn.Module):
    def __init__(self, bias: bool = True) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1, bias=bias)
        self.block = Block(bias)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(4 * 4 * 4, 5, bias=bias)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = self.pool(self.block(x))
        x = F.avg_pool2d(x, 1)
        return self.head(x.view(x.shape[0], -1))


def make(bias=True, seed=0):
    torch.manual_seed(seed)
    return Net(bias).eval()


@pytest.mark.parametrize(
    "rule", [rules.LRP0(), rules.ZPlus(stabilizer=0), rules.Gamma(0.5, stabilizer=0)], ids=repr
)
def test_bias_free_network_conserves_relevance(rule):
    model = make(bias=False)
    x = torch.rand(3, 3, 8, 8)
    composite = composites.Composite(layer_map=[(types.Linear, rule)], stabilizer=0)
    relevance = LRP(model, composite)(x, target=1)
    logits = model(x)[:, 1]
    torch.testing.assert_close(relevance.sum((1, 2, 3)), logits, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("rule", [rules.Flat(stabilizer=0), rules.WSquare(stabilizer=0)], ids=repr)
def test_input_independent_rules_conserve_relevance(rule):
    """Flat and w-square give relevance to inputs whatever their value, also to zeros, which a proportional
    rule further down (a residual '+' whose output is zero) could not pass on: checked on a plain chain."""
    torch.manual_seed(6)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 2, 3, bias=False),
        nn.Flatten(),
        nn.Linear(8, 3, bias=False),
    ).eval()
    x = torch.rand(2, 3, 8, 8)
    relevance = LRP(model, composites.Uniform(rule, stabilizer=0))(x, target=0)
    torch.testing.assert_close(relevance.sum((1, 2, 3)), model(x)[:, 0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "composite",
    [
        composites.EpsilonPlusFlat(),
        composites.EpsilonGammaBox(0.0, 1.0),
        composites.EpsilonAlpha2Beta1(),
        composites.Uniform(rules.Epsilon(0.1)),
    ],
    ids=lambda c: type(c).__name__,
)
def test_audit_books_balance_with_biases(composite):
    model = make(bias=True)
    x = torch.rand(2, 3, 8, 8)
    books = LRP(model, composite).audit(x)
    torch.testing.assert_close(books.output, model(x).max(1).values)
    torch.testing.assert_close(books.input, books.relevance.sum((1, 2, 3)))
    torch.testing.assert_close(books.residual, torch.zeros(2), atol=1e-10, rtol=0)
    assert books.absorbed.abs().max() > 0  # the biases did take a share
    assert any("head" == row.name for row in books.rows)
    assert "absorbed" in str(books)


def test_alpha_beta_leak_shows_in_the_audit():
    """alpha-beta passes alpha * R (not R) where an output has no negative contributions: the audit
    shows it."""
    model = make(bias=False)
    composite = composites.Composite(
        layer_map=[(types.Linear, rules.AlphaBeta(2.0, 1.0, stabilizer=0))], stabilizer=0
    )
    books = LRP(model, composite).audit(torch.rand(3, 3, 8, 8), target=1)
    torch.testing.assert_close(books.residual, torch.zeros(3), atol=1e-10, rtol=0)
    leaking = {row.name for row in books.leaks(1e-6)}
    assert leaking and leaking <= {"stem", "block.conv", "block.squeeze", "head"}, leaking


def test_redistribute_conserves_exactly_with_biases():
    model = make(bias=True)
    x = torch.rand(2, 3, 8, 8)
    composite = composites.Composite(
        layer_map=[
            (types.Convolution, rules.ZPlus(redistribute=True)),
            (types.Dense, rules.Epsilon(redistribute=True)),
            (types.Add, rules.Epsilon(redistribute=True)),
            (types.AvgPool, rules.Epsilon(redistribute=True)),
        ]
    )
    books = LRP(model, composite).audit(x, target=2)
    torch.testing.assert_close(books.input, model(x)[:, 2], rtol=1e-9, atol=1e-12)
    assert books.leaks(1e-9) == []


def test_audit_of_a_given_output_relevance():
    model = make(bias=True)
    x = torch.rand(2, 3, 8, 8)
    start = torch.rand(2, 5)
    explainer = LRP(model)
    books = explainer.audit(x, output_relevance=start)
    torch.testing.assert_close(books.relevance, explainer.propagate(x, start))
    torch.testing.assert_close(books.output, start.sum(1))
    torch.testing.assert_close(books.residual, torch.zeros(2), atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match="not both"):
        explainer.audit(x, target=1, output_relevance=start)
    with pytest.raises(ValueError, match="shaped like the output"):
        explainer.propagate(x, torch.rand(2, 4))


def test_lrp0_equals_gradient_times_input_on_bias_free_relu_network():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 4, 3, bias=False),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 3, bias=False),
    ).eval()
    with torch.no_grad():
        model[0].bias.zero_()
    x = torch.randn(2, 3, 12, 12, requires_grad=True)
    (grad,) = torch.autograd.grad(model(x)[:, 0].sum(), x)
    relevance = LRP(model, composites.Uniform(rules.LRP0(), stabilizer=0))(x.detach(), target=0)
    torch.testing.assert_close(relevance, grad * x.detach())


def test_residual_addition_is_not_doubled():
    """y = relu(Wx) + x: the two branches share the output's relevance (zennit without its canonizer counts
    the skip connection's relevance twice)."""
    torch.manual_seed(2)

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 4, bias=False)
            self.head = nn.Linear(4, 1, bias=False)

        def forward(self, x):
            return self.head(torch.relu(self.linear(x)) + x)

    model = Residual().eval()
    x = torch.rand(1, 4)
    relevance = LRP(model, composites.Uniform(rules.LRP0(), stabilizer=0))(x, target=0)
    torch.testing.assert_close(relevance.sum(), model(x).sum())


@pytest.mark.parametrize(
    "composite", [composites.Uniform(rules.Gamma(0.5)), composites.EpsilonGammaBox(0, 1)]
)
def test_an_output_overwritten_in_place_is_not_used(composite):
    """Gamma reuses its output where relevance reaches negative outputs, unless an in-place operation
    overwrote it: a leaky ReLU in place must give the relevance that the same model without in-place gives."""

    def model(inplace):
        torch.manual_seed(3)
        layers = [nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.LeakyReLU(0.1, inplace=inplace)]
        layers += [nn.Conv2d(6, 6, 3), nn.LeakyReLU(0.1, inplace=inplace), nn.Flatten(), nn.Linear(96, 3)]
        return nn.Sequential(*layers).double().eval()

    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    expected = LRP(model(False), composite)(x, target=1)
    assert expected.abs().sum() > 0
    torch.testing.assert_close(LRP(model(True), composite)(x, target=1), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("inplace", [False, True])
def test_dropout_is_the_identity(inplace):
    """In evaluation mode dropout changes nothing, also ``inplace=True``, which must not make the engine copy
    what it follows (it overwrites nothing): the relevance is that of the same model without dropout."""
    torch.manual_seed(0)
    conv, flatten, dense, head = nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(144, 8), nn.Linear(8, 3)
    model = nn.Sequential(conv, nn.ReLU(), flatten, dense, nn.ReLU(), head).eval()
    dropouts = [nn.Dropout2d(inplace=inplace), nn.Dropout(0.5, inplace), nn.Dropout(0.5, inplace)]
    with_dropout = nn.Sequential(conv, dropouts[0], nn.ReLU(), flatten, dropouts[1], dense, dropouts[2])
    with_dropout.extend([nn.ReLU(), head]).eval()
    x = torch.rand(2, 3, 8, 8)
    explainer = LRP(with_dropout, composites.EpsilonPlusFlat())
    assert not explainer._copied
    torch.testing.assert_close(
        explainer(x, 1), LRP(model, composites.EpsilonPlusFlat())(x, 1), rtol=0, atol=0
    )


def _peak_bytes_held(explainer, x, monkeypatch) -> int:
    """The most bytes of tensor storage that are alive, beyond those alive before the call, at the start of
    any operation's backward pass."""

    def alive() -> dict[int, int]:
        gc.collect()
        held = {}
        for t in gc.get_objects():
            if issubclass(type(t), torch.Tensor) and not t.is_meta:
                try:  # the fake tensors that torch.export leaves in captured graphs have no storage
                    held[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
                except RuntimeError:
                    continue
        return held

    explainer(x, target=0)  # anything created once, on the first call, is not counted
    before = alive()
    peak = 0
    propagate = LRP._propagate

    def measured(self, *args):
        nonlocal peak
        peak = max(peak, sum(n for ptr, n in alive().items() if ptr not in before))
        return propagate(self, *args)

    with monkeypatch.context() as patch:  # undoes only this patch, not the caller's
        patch.setattr(LRP, "_propagate", measured)
        explainer(x, target=0)
    return peak


def _vgg_like(inplace: bool) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace), nn.Conv2d(8, 8, 3, padding=1)]
    layers += [nn.ReLU(inplace), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.Tanh()]
    layers += [nn.Flatten(), nn.Linear(8 * 8 * 8, 3)]
    return nn.Sequential(*layers).eval()


def test_activations_keep_no_values_alive(monkeypatch):
    """Element-wise activations read only the shapes of their inputs: the engine holds no more memory for a
    model whose activations make new tensors than for the same model with activations in place."""
    x = torch.rand(2, 3, 16, 16)
    composite = composites.EpsilonGammaBox(low=0.0, high=1.0)
    in_place = _peak_bytes_held(LRP(_vgg_like(True), composite), x, monkeypatch)
    assert _peak_bytes_held(LRP(_vgg_like(False), composite), x, monkeypatch) == in_place


def test_an_output_a_rule_only_uses_is_not_kept_alive(monkeypatch):
    """Gamma uses its output where it is still alive and unchanged, but the engine must not keep it alive:
    here an in-place ReLU overwrites it, and max pooling frees it before the backward pass reaches Gamma."""
    x = torch.rand(2, 3, 16, 16)
    explainer = LRP(_vgg_like(True), composites.Uniform(rules.Gamma()))
    peak = _peak_bytes_held(explainer, x, monkeypatch)
    monkeypatch.setattr(rules.Gamma, "uses_output", False)
    assert peak == _peak_bytes_held(explainer, x, monkeypatch)


def test_gate_gives_all_relevance_to_the_signal():
    model = make(bias=False)
    books = LRP(model, composites.Uniform(rules.LRP0(), stabilizer=0)).audit(torch.rand(1, 3, 8, 8))
    gate = [row for row in books.rows if row.operation.startswith("mul")]
    assert len(gate) == 1
    torch.testing.assert_close(gate[0].relevance_out, gate[0].relevance_in)
    assert not any("squeeze" in row.name for row in books.rows)  # the gate's branch receives nothing


def test_max_pooling_splits_ties_evenly():
    model = nn.Sequential(nn.MaxPool2d(2), nn.Flatten()).eval()
    x = torch.tensor([[[[1.0, 3.0], [3.0, 0.0]]]])
    relevance = LRP(model)(x, target=torch.ones(1, 1))
    torch.testing.assert_close(relevance, torch.tensor([[[[0.0, 1.5], [1.5, 0.0]]]]))


def test_max_pooling_with_overlap_padding_and_ceil_mode():
    torch.manual_seed(4)
    pool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
    x = torch.randn(1, 2, 7, 6)
    out = pool(x)
    relevance_out = torch.rand_like(out)
    relevance = LRP(nn.Sequential(pool)).propagate(x, relevance_out)
    x_grad = x.clone().requires_grad_()  # without ties, winner-take-all is the gradient times the relevance
    (expected,) = torch.autograd.grad(pool(x_grad), x_grad, relevance_out)
    torch.testing.assert_close(relevance, expected)


def winners_by_hand(x, relevance_out, kernel, stride, padding):
    """Winner-take-all over 2-D windows, one window at a time: each maximum gets an even share."""
    result = torch.zeros_like(x)
    rows, cols = x.shape[-2:]
    for b, c, i, j in itertools.product(*(range(n) for n in relevance_out.shape)):
        window = [
            (r, q)
            for r in range(i * stride - padding, i * stride - padding + kernel)
            for q in range(j * stride - padding, j * stride - padding + kernel)
            if 0 <= r < rows and 0 <= q < cols
        ]
        top = max(x[b, c, r, q] for r, q in window)
        winners = [(r, q) for r, q in window if x[b, c, r, q] == top]
        for r, q in winners:
            result[b, c, r, q] += relevance_out[b, c, i, j] / len(winners)
    return result


@pytest.mark.parametrize(("kernel", "stride", "padding", "shape"), [(2, 2, 0, (5, 7)), (3, 2, 1, (6, 5))])
def test_max_pooling_ties_by_hand(kernel, stride, padding, shape):
    """Small integers make many ties; windows that tile the input (with a remainder), and overlapping ones."""
    torch.manual_seed(5)
    x = torch.randint(0, 3, (2, 2, *shape)).double()
    pool = nn.MaxPool2d(kernel, stride, padding)
    relevance_out = torch.rand_like(pool(x))
    relevance = LRP(nn.Sequential(pool)).propagate(x, relevance_out)
    torch.testing.assert_close(relevance, winners_by_hand(x, relevance_out, kernel, stride, padding))


@pytest.mark.parametrize(
    ("pool", "shape"),
    [(nn.MaxPool1d(3), (2, 3, 11)), (nn.MaxPool3d(2), (1, 2, 5, 4, 6)), (nn.MaxPool2d((2, 3)), (1, 1, 6, 7))],
)
def test_max_pooling_tiles_in_any_dimension(pool, shape):
    torch.manual_seed(6)
    x = torch.randn(*shape)
    relevance_out = torch.rand_like(pool(x))
    relevance = LRP(nn.Sequential(pool)).propagate(x, relevance_out)
    x_grad = x.clone().requires_grad_()  # without ties, winner-take-all is the gradient times the relevance
    (expected,) = torch.autograd.grad(pool(x_grad), x_grad, relevance_out)
    torch.testing.assert_close(relevance, expected)


class TestTargets:
    model = make(seed=5)
    x = torch.rand(4, 3, 8, 8)

    def explain(self, target):
        return LRP(self.model, composites.EpsilonPlusFlat())(self.x, target)

    def test_none_is_the_predicted_class(self):
        predicted = self.model(self.x).argmax(1)
        torch.testing.assert_close(self.explain(None), self.explain(predicted))

    def test_int_and_one_hot_agree(self):
        one_hot = torch.zeros(4, 5)
        one_hot[:, 3] = 1
        torch.testing.assert_close(self.explain(3), self.explain(one_hot))

    def test_contrast_is_the_difference_of_explanations(self):
        contrast = torch.zeros(4, 5)
        contrast[:, 1], contrast[:, 2] = 1.0, -1.0
        torch.testing.assert_close(self.explain(contrast), self.explain(1) - self.explain(2))

    def test_output_relevance_is_the_logit(self):
        books = LRP(self.model).audit(self.x, target=torch.tensor([0, 1, 2, 3]))
        torch.testing.assert_close(
            books.output, self.model(self.x)[torch.arange(4), torch.tensor([0, 1, 2, 3])]
        )

    @pytest.mark.parametrize(
        ("target", "error", "message"),
        [
            (5, ValueError, "target class 5 of sample 0 is out of range"),
            (torch.tensor([0, 1, 9, 0]), ValueError, "class 9 of sample 2"),
            (torch.tensor([0, 1]), ValueError, "shape"),
            (torch.zeros(4, 4), ValueError, "shaped like the model's output"),
            ("cat", TypeError, "target must be"),
        ],
    )
    def test_bad_targets(self, target, error, message):
        with pytest.raises(error, match=message):
            self.explain(target)


def test_relevance_has_the_input_shape_dtype_and_device():
    for dtype in (torch.float32, torch.float64):
        model = make().to(dtype)
        x = torch.rand(2, 3, 8, 8, dtype=dtype)
        relevance = LRP(model)(x)
        assert relevance.shape == x.shape and relevance.dtype == dtype and relevance.device == x.device


def snapshot(model):
    hooks = [
        (name, dict(m._forward_hooks), dict(m._forward_pre_hooks), dict(m._backward_hooks))
        for name, m in model.named_modules()
    ]
    return copy.deepcopy(model.state_dict()), hooks, [p.requires_grad for p in model.parameters()]


def test_model_is_left_exactly_as_it_was():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3)
    )
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    model.eval()
    x = torch.rand(2, 3, 8, 8)
    before = model(x)
    state, hooks, grads = snapshot(model)
    explainer = LRP(model)
    explainer(x)
    with pytest.raises(ValueError):
        explainer(x, target=7)
    after_state, after_hooks, after_grads = snapshot(model)
    assert after_hooks == hooks and after_grads == grads
    for key in state:
        assert torch.equal(state[key], after_state[key])
    assert torch.equal(model(x), before)
    assert isinstance(model[1], nn.BatchNorm2d) and not model.training


def test_unsupported_operation_is_named():
    class WithNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Conv1d(4, 4, 1)
            self.norm = nn.LocalResponseNorm(2)
            self.head = nn.Conv1d(4, 2, 1)

        def forward(self, x):
            return self.head(self.norm(self.linear(x))).mean(-1)

    explainer = LRP(WithNorm().eval())
    with pytest.raises(
        UnsupportedOperationError, match=r"LocalResponseNorm 'norm'.*name_map=\{'norm': rule\}"
    ):
        explainer(torch.rand(2, 4, 3))


def test_unsupported_function_is_named_with_its_place():
    """A field of a named tuple passes relevance to the operation that made it: ``torch.sort(x).values`` is
    reported as ``sort``, not as ``getattr``."""

    class WithSort(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 4)

        def forward(self, x):
            return torch.sort(self.linear(x), dim=1).values

    with pytest.raises(UnsupportedOperationError, match="sort \\(node 'sort'\\)"):
        LRP(WithSort().eval())(torch.rand(2, 4))


def test_user_rule_for_an_unsupported_module():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2)).eval()
    composite = composites.Composite(
        layer_map=[(types.Linear, rules.Epsilon())], name_map={"1": rules.Pass()}
    )
    relevance = LRP(model, composite)(torch.rand(2, 4))
    assert torch.isfinite(relevance).all()


def test_ambiguous_gate_needs_a_rule():
    class Product(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x):
            return self.a(x) * self.b(x)

    model = Product().eval()
    with pytest.raises(UnsupportedOperationError, match="ambiguous"):
        LRP(model)(torch.rand(1, 3), target=0)
    composite = composites.Composite(
        layer_map=[(types.Linear, rules.Epsilon())], name_map={"mul": rules.Gate(0)}
    )
    books = LRP(model, composite).audit(torch.rand(1, 3), target=0)
    assert not any(row.name == "b" for row in books.rows)


def test_missing_rule_for_a_layer_is_refused_at_construction():
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Flatten(), nn.Linear(4, 1))
    with pytest.raises(ValueError, match="no rule for Conv2d '0'"):
        LRP(model.eval(), composites.Composite(layer_map=[(nn.Linear, rules.Epsilon())]))


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        (
            torch.tensor([[[[float("nan")]]]]).expand(2, 3, 8, 8).clone(),
            ValueError,
            "NaN or infinite values \\(sample 0\\)",
        ),
        (torch.zeros(2, 3, 8, 8, dtype=torch.long), TypeError, "floating-point"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.float32), TypeError, "model.to"),
        ([1.0, 2.0], TypeError, "torch.Tensor"),
    ],
)
def test_bad_inputs(x, error, message):
    with pytest.raises(error, match=message):
        LRP(make())(x)


def test_training_mode_is_refused():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).train()
    with pytest.raises(ValueError, match="model.eval"):
        LRP(model)


def test_model_returning_a_tuple_explains_the_chosen_output():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2)

        def forward(self, x):
            return self.linear(x), 2 * x

    model, x, target = Pair().eval(), torch.rand(1, 2), torch.rand(1, 2)
    first = LRP(model, composites.Uniform(rules.Epsilon()))(x, target=target)
    alone = LRP(model.linear, composites.Uniform(rules.Epsilon()))(x, target=target)
    torch.testing.assert_close(first, alone)
    second = LRP(model, output=1)(x, target=target)  # 2 x passes relevance through
    torch.testing.assert_close(second, 2 * x * target)
    with pytest.raises(ValueError, match="no 2"):
        LRP(model, output=2)


def test_untraceable_model_gets_a_clear_error():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2)

        def forward(self, x):
            return self.linear(x) if x.sum() > 0 else -x

    with pytest.raises(
        TypeError, match="could not capture Branchy with torch.export.*could not trace Branchy"
    ):
        LRP(Branchy().eval())(torch.rand(2, 2))


def test_empty_meta_and_unbatched_inputs_get_clear_errors():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    model(torch.rand(1, 3, 6, 6))
    explainer = LRP(model.eval())
    with pytest.raises(ValueError, match="batch is empty"):
        explainer(torch.rand(0, 3, 6, 6))
    with pytest.raises(TypeError, match="meta tensor"):
        explainer(torch.rand(2, 3, 6, 6, device="meta"))
    with pytest.raises(
        ValueError, match=r"Conv2d '0' failed on the input of shape \(3, 6, 6\).*batch dimension"
    ):
        explainer(torch.rand(3, 6, 6))


def test_presets_pass_their_stabilizer_to_every_rule():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    model(torch.rand(1, 3, 8, 8))
    presets = [
        composites.EpsilonGammaBox(-1.0, 1.0, stabilizer=0.5),
        composites.EpsilonPlusFlat(stabilizer=0.5),
        composites.EpsilonAlpha2Beta1Flat(stabilizer=0.5),
        composites.CPLRPGamma(stabilizer=0.5),
    ]
    for composite in presets:
        explainer = LRP(model.eval(), composite)
        convolutions = [rule for node, rule in explainer.rules.items() if isinstance(node.module, nn.Conv2d)]
        assert [rule.stabilizer for rule in convolutions] == [0.5, 0.5], composite


def test_naming_the_first_layer_keeps_the_first_layer_rule_where_it_is():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    named = rules.Epsilon(0.1)
    composite = composites.Composite(
        layer_map=[(types.Linear, rules.Epsilon())],
        name_map={"0": named},
        first_map=[(types.Linear, rules.Flat())],
    )
    by_name = {node.name: rule for node, rule in LRP(model, composite).rules.items()}
    assert by_name["0"] is named
    assert not isinstance(by_name["2"], rules.Flat)


def test_functional_dropout_in_evaluation_mode_is_a_route():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 2)

        def forward(self, x):
            return self.linear(F.dropout(x, 0.5, False))

    model, x = Functional().eval(), torch.rand(3, 4)
    torch.testing.assert_close(LRP(model)(x), LRP(model.linear)(x))


def test_functions_are_layer_map_keys_and_the_advice_names_them():
    class Shrinking(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 4)

        def forward(self, x):
            return F.softshrink(self.linear(x), 0.1)

    model, x = Shrinking().eval(), torch.rand(2, 4)
    with pytest.raises(
        UnsupportedOperationError, match=r"layer_map=\[\(torch\.nn\.functional\.softshrink, rule\)\]"
    ):
        LRP(model)(x)
    composite = composites.Composite(
        layer_map=[(types.Linear, rules.Epsilon()), (F.softshrink, rules.Pass())]
    )
    books = LRP(model, composite).audit(x)
    assert [row.rule for row in books.rows][0] == "Pass()"
    assert torch.allclose(books.residual, torch.zeros(2), atol=1e-6)
    with pytest.raises(TypeError, match="layer map key must be"):
        composites.Composite(layer_map=[("softshrink", rules.Pass())])
    with pytest.raises(TypeError, match="name_map keys are"):
        composites.Composite(name_map={nn.Linear: rules.Pass()})


def _check_stacked(explainer, x, layer, weights):
    """The input relevance of ``K`` relevances at ``layer`` (its received relevance times ``weights[k]``),
    stacked along a leading dimension in one backward pass (as :mod:`relprop.concepts` explains concepts),
    equals ``K`` plain propagations."""
    explainer._prepare((x,), {})
    node = next(n.fx for n in explainer.graph if n.name == layer)
    filters = {node: lambda r: r * weights}
    stacked = explainer._explain(x, lambda out: out, filters=filters, concepts=len(weights))[0]
    assert stacked.shape == (len(weights), *x.shape)
    for k in range(len(weights)):
        alone = explainer.propagate(x, lambda out, k=k: out * weights[k])
        torch.testing.assert_close(stacked[k], alone, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "composite",
    [
        composites.EpsilonPlusFlat(),
        composites.EpsilonAlpha2Beta1(),
        composites.EpsilonGammaBox(-1.0, 1.0),
        composites.Uniform(rules.WSquare()),
        composites.Uniform(rules.Epsilon(0.1, redistribute=True)),
        composites.Uniform(rules.ZBox(-1.0, 1.0, redistribute=True)),
    ],
    ids=lambda c: type(c).__name__ + getattr(c, "rule", "").__class__.__name__,
)
def test_stacked_relevance_is_one_propagation_per_relevance(composite):
    # every rule's backward_stacked (those that broadcast, the default loop for the gate) and the routes
    # (slices, the concatenation, the view) against K plain propagations of the same network
    explainer, x = LRP(make(), composite), torch.rand(2, 3, 8, 8) * 2 - 1
    weights = torch.randn(3, 2, 5)
    _check_stacked(explainer, x, "head", weights)


def test_stacked_relevance_on_a_vision_transformer():
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(16, 8, 1, 2, 8, 12, num_classes=3).double().eval()
    for parameter in model.parameters():
        nn.init.normal_(parameter, std=0.3)
    explainer, x = LRP(model, composites.AttnLRP()), torch.randn(2, 3, 16, 16)
    weights = torch.randn(4, 2, 3)
    _check_stacked(explainer, x, "heads.head", weights)


def test_stacked_relevance_through_the_nested_tuple_of_an_lstm():
    # (output, (h_n, c_n)): relevance comes back per part of the nested tuple, and the recurrent rule takes
    # the default loop over the concepts
    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = nn.LSTM(4, 5, batch_first=True), nn.Linear(5, 3)

        def forward(self, x):
            out, (h, _) = self.lstm(x)
            return self.head(out[:, -1] + h[0])

    torch.manual_seed(0)
    explainer, x = LRP(Recurrent().eval()), torch.randn(2, 6, 4)
    weights = torch.randn(3, 2, 3)
    _check_stacked(explainer, x, "head", weights)


def test_a_user_rule_explains_stacked_relevance_one_concept_at_a_time():
    class PlainOnly(rules.LinearRule):  # a backward that takes one relevance shaped like the output
        def backward(self, op, inputs, output, context, relevance):
            assert relevance.dim() == inputs[0].dim(), "stacked relevance reached a plain backward"
            term = rules.Term(inputs)
            return rules.share(op, inputs, relevance, [term], self.stabilizer)

    explainer, x = LRP(make(), composites.Uniform(PlainOnly())), torch.rand(2, 3, 8, 8)
    weights = torch.randn(2, 2, 5)
    _check_stacked(explainer, x, "head", weights)


class Moves(nn.Module):
    """Every move whose transpose the engine writes directly, in its method, function and module spellings."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 12), nn.Linear(6, 5)
        self.drop, self.flat = nn.Dropout(0.5), nn.Flatten(1)

    def forward(self, x):  # x: (B, 4, 6)
        y = self.a(x).view(x.shape[0], 4, 3, 4).transpose(1, 2)  # (B, 3, 4, 4)
        y = torch.permute(y, (0, 3, 1, 2)).permute(0, 2, 3, 1).contiguous()  # (B, 3, 4, 4)
        first, second = y.split(2, dim=1)
        y = torch.cat([second, first.clone()], dim=1).swapaxes(-1, -2)
        y = torch.transpose(y, 1, 3).unsqueeze(0).squeeze(0)
        q, k, v = self.drop(y).reshape(x.shape[0], 12, 4).chunk(3, dim=1)
        y = (q + F.dropout(k, 0.5, training=False) + v.to(x.dtype)).flatten(1).unflatten(1, (4, 4))
        return self.b(
            self.flat(y.mT.mT.reshape(x.shape[0], 16)).view(-1, 4, 4)[:, :, :2].reshape(-1, 8)[:, :6]
        )


@pytest.mark.parametrize("capture", ["fx", "export"])
def test_direct_transposes_of_moves_equal_autograds(capture, monkeypatch):
    # views, reshapes, transposes, permutations, splits, chunks, dropout and copies are transposed without
    # autograd: the same relevance, plain and stacked, as autograd's transpose of the same move
    torch.manual_seed(0)
    model, x = Moves().eval(), torch.randn(3, 4, 6)
    explain = (lambda e: e(x)) if capture == "fx" else (lambda e: e((x,)))
    weights = torch.randn(2, 3, 5)
    from relprop import lrp

    explainer = LRP(model, composites.EpsilonPlusFlat(), inputs=None if capture == "fx" else "x")
    direct = explain(explainer)
    if capture == "fx":  # stacked relevance through the direct transposes equals plain propagations
        _check_stacked(explainer, x, "b", weights)
    monkeypatch.setattr(lrp, "_moved_back", lambda *args: None)
    torch.testing.assert_close(direct, explain(explainer), rtol=1e-12, atol=1e-14)
    if capture == "fx":  # and through autograd's
        _check_stacked(explainer, x, "b", weights)
