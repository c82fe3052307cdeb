"""Composites: which rule explains which operation.

A :class:`Composite` maps rules to the operations of a model by module name, by position (the first
layer) and by type. The presets are defined exactly as zennit defines the composites of the same name, so
that results are comparable across libraries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from torch import Tensor, nn

from relprop import types
from relprop.describe import constructor_arguments, describe_call
from relprop.graph import Graph, Kind, Node
from relprop.recurrent import Embedding, Recurrent
from relprop.rules import (
    AlphaBeta,
    Attention,
    Detach,
    Epsilon,
    Flat,
    Gamma,
    Gate,
    Norm,
    Pass,
    Product,
    Rule,
    Softmax,
    WinnerTakeAll,
    ZBox,
    ZPlus,
)

TypeKey = type | Callable | tuple[type | Callable, ...]
"""A key of a layer map: a module class or marker type, a function (``torch.sort``, ``F.layer_norm``, an ATen
operation), or a tuple of them."""
LayerMap = Sequence[tuple[TypeKey, Rule]]


def base_map(stabilizer: float = 1e-6) -> list[tuple[TypeKey, Rule]]:
    """The rules every composite falls back to, as zennit's ``layer_map_base``.

    Activations and batch normalizations that canonization could not fold pass relevance through;
    additions, average pooling and reductions split it in proportion to the contributions; max pooling
    gives it to the maximum; gates give it to the signal. LSTMs and GRUs take LSTM-LRP
    (:class:`~relprop.recurrent.Recurrent`), embeddings give each token the relevance of its vector.
    Normalizations, softmax, products of tensors and attention take AttnLRP's rules (:class:`AttnLRP`).
    """
    return [
        (types.Activation, Pass()),
        ((types.Add, types.Scale), Epsilon(stabilizer)),
        (types.AvgPool + (nn.Upsample,), Epsilon(stabilizer)),
        (types.BatchNorm, Pass()),
        (types.MaxPool, WinnerTakeAll()),
        (types.Multiply, Gate()),
        ((nn.LSTM, nn.GRU), Recurrent()),
        ((nn.Embedding, nn.EmbeddingBag), Embedding()),
        (types.Norm, Norm(stabilizer)),
        (types.Softmax, Softmax()),
        (types.MatMul, Product(stabilizer)),
        (types.Attention, Attention(stabilizer)),
    ]


class Composite:
    """Map rules to operations.

    The rule of an operation is, in this order of precedence: the rule of its name in ``name_map``; the
    rule of ``first_map`` if it is the first operation of the graph whose type is in ``first_map``; the rule
    of the first type in ``layer_map`` that it is an instance of; the rule of :func:`base_map`.

    Parameters
    ----------
    layer_map:
        ``(key, rule)`` pairs. A key is a module class, a group of :mod:`relprop.types` or one of its markers
        (``types.Add``, ``types.Multiply``, ...), a function the model calls (``torch.sort``,
        ``F.layer_norm``; it matches the calls of that function), or a tuple of these. Module classes outside
        ``torch.nn`` named here are kept whole when the model is traced.
    name_map:
        Rules by module name (as in ``model.named_modules()``) or, for functional operations, by graph node
        name (as listed by :meth:`relprop.LRP.audit`).
    first_map:
        ``(type, rule)`` pairs for the first operation of one of these types.
    stabilizer:
        The stabilizer of the proportional rules of :func:`base_map`.
    """

    def __init__(
        self,
        layer_map: LayerMap = (),
        name_map: Mapping[str, Rule] | None = None,
        first_map: LayerMap = (),
        stabilizer: float = 1e-6,
    ) -> None:
        self.layer_map = list(layer_map)
        self.name_map = dict(name_map or {})
        self.first_map = list(first_map)
        self.stabilizer = stabilizer
        for key, rule in [*self.layer_map, *self.first_map, *((k, r) for k, r in self.name_map.items())]:
            if not isinstance(rule, Rule):
                raise TypeError(f"composite maps {key!r} to {rule!r}, which is not a relprop rule")
        for key, _ in [*self.layer_map, *self.first_map]:
            for part in key if isinstance(key, tuple) else (key,):
                if not (isinstance(part, type) or callable(part)):
                    raise TypeError(
                        "a layer map key must be a module class, a relprop.types marker, a function or a "
                        f"tuple of them, got {part!r}"
                    )
        for name in self.name_map:
            if not isinstance(name, str):
                raise TypeError(f"name_map keys are module or graph node names (strings), got {name!r}")

    def leaf_types(self) -> tuple[type, ...]:
        """Module types of the maps that torch.fx would otherwise trace into."""
        found = []
        for key, _ in [*self.layer_map, *self.first_map]:
            for cls in key if isinstance(key, tuple) else (key,):
                if (
                    isinstance(cls, type)
                    and issubclass(cls, nn.Module)
                    and not cls.__module__.startswith("torch.nn")
                ):
                    found.append(cls)
        return tuple(found)

    def assign(self, graph: Graph) -> dict[Node, Rule]:
        """The rule of every operation of ``graph`` that one of the maps covers."""
        fallback = base_map(self.stabilizer)
        first_done = False
        rules = {}
        for node in graph:
            if node.kind in (Kind.INPUT, Kind.CONSTANT, Kind.OUTPUT, Kind.ROUTE, Kind.FOLDED):
                continue
            rule = self.name_map.get(node.name)
            if not first_done and _lookup(self.first_map, node) is not None:
                first_done = True  # the first layer is the first layer, whatever else maps it
                rule = rule or _lookup(self.first_map, node)
            if rule is None:
                rule = _lookup(self.layer_map, node) or _lookup(fallback, node)
            if rule is not None:
                rules[node] = rule
        return rules

    def __repr__(self) -> str:
        """The composite's complete description (:mod:`relprop.describe`), which a store compares on resume:
        its constructor arguments where it keeps them all (the presets), else its maps."""
        arguments = constructor_arguments(self)
        if arguments is None:
            maps = ("layer_map", "name_map", "first_map", "stabilizer")
            arguments = {name: vars(self)[name] for name in maps}
        return describe_call(self, arguments)


def _lookup(mapping: Iterable[tuple[TypeKey, Rule]], node: Node) -> Rule | None:
    """The rule of the first key that matches the node: its type, or the function it calls."""
    for key, rule in mapping:
        for part in key if isinstance(key, tuple) else (key,):
            if isinstance(part, type):
                if isinstance(node.type, type) and issubclass(node.type, part):
                    return rule
            elif node.fx.op == "call_function" and part in (node.fx.target, node.function):
                return rule
    return None


class Uniform(Composite):
    """One rule for every layer with weights (dense and convolutional); the base map for the rest."""

    def __init__(self, rule: Rule, stabilizer: float = 1e-6) -> None:
        super().__init__(layer_map=[(types.Linear, rule)], stabilizer=stabilizer)
        self.rule = rule


class EpsilonPlus(Composite):
    """:class:`~relprop.rules.ZPlus` for convolutions, :class:`~relprop.rules.Epsilon` for dense layers."""

    def __init__(self, epsilon: float = 1e-6, stabilizer: float = 1e-6) -> None:
        layer_map = [(types.Convolution, ZPlus(stabilizer)), (types.Dense, Epsilon(epsilon))]
        super().__init__(layer_map=layer_map, stabilizer=stabilizer)
        self.epsilon = epsilon


class EpsilonPlusFlat(Composite):
    """:class:`EpsilonPlus`, with :class:`~relprop.rules.Flat` for the first layer with weights."""

    def __init__(self, epsilon: float = 1e-6, stabilizer: float = 1e-6) -> None:
        layer_map = [(types.Convolution, ZPlus(stabilizer)), (types.Dense, Epsilon(epsilon))]
        first_map = [(types.Linear, Flat(stabilizer))]
        super().__init__(layer_map=layer_map, first_map=first_map, stabilizer=stabilizer)
        self.epsilon = epsilon


class EpsilonAlpha2Beta1(Composite):
    """:class:`~relprop.rules.AlphaBeta` (2, 1) for convolutions, :class:`~relprop.rules.Epsilon` for dense
    layers."""

    def __init__(self, epsilon: float = 1e-6, stabilizer: float = 1e-6) -> None:
        layer_map = [(types.Convolution, AlphaBeta(2.0, 1.0, stabilizer)), (types.Dense, Epsilon(epsilon))]
        super().__init__(layer_map=layer_map, stabilizer=stabilizer)
        self.epsilon = epsilon


class EpsilonAlpha2Beta1Flat(Composite):
    """:class:`EpsilonAlpha2Beta1`, with :class:`~relprop.rules.Flat` for the first layer with weights."""

    def __init__(self, epsilon: float = 1e-6, stabilizer: float = 1e-6) -> None:
        layer_map = [(types.Convolution, AlphaBeta(2.0, 1.0, stabilizer)), (types.Dense, Epsilon(epsilon))]
        first_map = [(types.Linear, Flat(stabilizer))]
        super().__init__(layer_map=layer_map, first_map=first_map, stabilizer=stabilizer)
        self.epsilon = epsilon


class EpsilonGammaBox(Composite):
    """:class:`~relprop.rules.Gamma` for convolutions, :class:`~relprop.rules.Epsilon` for dense layers and
    :class:`~relprop.rules.ZBox` for the first convolution.

    Parameters
    ----------
    low, high:
        The input bounds of :class:`~relprop.rules.ZBox` (after any normalization of the input).
    """

    def __init__(
        self,
        low: float | Tensor,
        high: float | Tensor,
        epsilon: float = 1e-6,
        gamma: float = 0.25,
        stabilizer: float = 1e-6,
    ) -> None:
        layer_map = [(types.Convolution, Gamma(gamma, stabilizer)), (types.Dense, Epsilon(epsilon))]
        first_map = [(types.Convolution, ZBox(low, high, stabilizer))]
        super().__init__(layer_map=layer_map, first_map=first_map, stabilizer=stabilizer)
        self.low, self.high, self.epsilon, self.gamma = low, high, epsilon, gamma


class AttnLRP(Composite):
    r"""AttnLRP (Achtibat et al., ICML 2024): LRP for transformers.

    :class:`~relprop.rules.Epsilon` for dense and convolutional layers, additions and means;
    :class:`~relprop.rules.Softmax` (the Taylor rule, with its bias) for softmax;
    :class:`~relprop.rules.Product` (the uniform rule: an equal share to each input-dependent factor) for
    ``matmul``, ``bmm``, ``einsum`` and element-wise products of two input-dependent tensors;
    :class:`~relprop.rules.Attention` for ``F.scaled_dot_product_attention``, through the same parts;
    :class:`~relprop.rules.Norm` (the scale ``1 / std`` held constant) for layer, group and RMS norms;
    element-wise non-linearities (GELU, SiLU, ...) pass relevance through.
    """

    def __init__(self, epsilon: float = 1e-6, stabilizer: float = 1e-6) -> None:
        super().__init__(layer_map=_attention_map(Epsilon(epsilon), epsilon, False), stabilizer=stabilizer)
        self.epsilon = epsilon


class CPLRP(Composite):
    r"""CP-LRP (Ali et al., ICML 2022, "XAI for transformers: better explanations through conservative
    propagation"): as :class:`AttnLRP`, but the attention matrix is a constant, so relevance flows through the
    values only (softmax :class:`~relprop.rules.Detach`\ ed; :class:`~relprop.rules.Attention` with
    ``conservative=True``); the norms hold their scale constant."""

    def __init__(self, epsilon: float = 1e-6, stabilizer: float = 1e-6) -> None:
        super().__init__(layer_map=_attention_map(Epsilon(epsilon), epsilon, True), stabilizer=stabilizer)
        self.epsilon = epsilon


class CPLRPGamma(Composite):
    r""":class:`CPLRP` with :class:`~relprop.rules.Gamma` on the dense and convolutional layers: the variant
    for vision transformers that LXT uses against noisy heatmaps, whose :math:`\gamma` is tuned per model."""

    def __init__(self, gamma: float = 0.25, epsilon: float = 1e-6, stabilizer: float = 1e-6) -> None:
        super().__init__(
            layer_map=_attention_map(Gamma(gamma, stabilizer), epsilon, True), stabilizer=stabilizer
        )
        self.gamma, self.epsilon = gamma, epsilon


def _attention_map(linear: Rule, epsilon: float, conservative: bool) -> list[tuple[TypeKey, Rule]]:
    return [
        (types.Linear, linear),
        (types.Norm, Norm(epsilon)),
        (types.Softmax, Detach() if conservative else Softmax()),
        ((types.MatMul, types.Multiply), Product(epsilon)),
        (types.Attention, Attention(epsilon, conservative=conservative)),
        ((types.Add, types.Scale, *types.AvgPool), Epsilon(epsilon)),
    ]
