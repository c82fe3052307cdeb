"""Read and write models in the LRP Toolbox's plain-text format.

The LRP Toolbox (Lapuschkin et al., JMLR 2016) stores a sequential network as one block of lines per
layer. A header line names the layer and its sizes; ``Linear`` and ``Convolution`` blocks add a line of
weights and a line of biases, flattened in C order::

    Linear m n                          # W is (m, n): y = x W + b
    Convolution h w d n s0 s1           # filters (h, w, d, n), strides (s0, s1), 'valid', channels-last
    SumPool h w s0 s1                   # y = sum over the h x w window / sqrt(h w)
    MaxPool h w s0 s1
    Rect | Tanh | SoftMax | Flatten     # Flatten flattens channels-last (N, H, W, D) data in C order

:func:`read_model` turns such a file into an :class:`torch.nn.Sequential` of standard modules that
computes the same function. Following PyTorch, the model takes images as ``(N, C, H, W)``: convert
the toolbox's ``(N, H, W, D)`` arrays with ``x.permute(0, 3, 1, 2)``. Models whose first layer (after
any ``Rect``/``Tanh``) is ``Linear`` take ``(N, m)`` vectors. The toolbox's conventions are kept with
two small modules: :class:`SumPool2d` (the scaled window sum) and :class:`FlattenChannelsLast`.
Both are traceable with :func:`torch.fx.symbolic_trace`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FlattenChannelsLast", "SumPool2d", "read_model", "write_model"]


class SumPool2d(nn.Module):
    r"""Sum pooling scaled by the inverse square root of the window area, as in the LRP Toolbox.

    .. math:: y_{c,i,j} = \frac{1}{\sqrt{k_h k_w}} s_{c,i,j}, \qquad
        s_{c,i,j} = \sum_{p<k_h,\,q<k_w} x_{c,\,i s_h + p,\,j s_w + q}

    computed as the toolbox computes it: the window sum :math:`s` (``avg_pool2d(x, divisor_override=1)``,
    no padding) times :math:`1 / \sqrt{k_h k_w}` (``1 / scale``). Rules explain the window sum, and the
    product with the constant passes relevance on unchanged. This is the toolbox's convention: its ε-rule
    divides by the unscaled sum,

    .. math:: R_{c,\,i s_h + p,\,j s_w + q} \mathrel{+}= \frac{x_{c,\,i s_h + p,\,j s_w + q}}
        {s_{c,i,j} + \varepsilon \operatorname{sgn}_+(s_{c,i,j})} R_{c,i,j},

    not by the average (as if its ε were :math:`k_h k_w` times larger) nor by :math:`y`.

    Parameters
    ----------
    kernel_size : tuple of int
        Window height and width ``(k_h, k_w)``.
    stride : tuple of int
        Vertical and horizontal step ``(s_h, s_w)``.
    """

    def __init__(self, kernel_size: tuple[int, int], stride: tuple[int, int]) -> None:
        super().__init__()
        self.kernel_size = tuple(kernel_size)
        self.stride = tuple(stride)
        self.scale = math.sqrt(self.kernel_size[0] * self.kernel_size[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, divisor_override=1) * (1 / self.scale)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class FlattenChannelsLast(nn.Module):
    """Flatten ``(N, C, H, W)`` to ``(N, H * W * C)`` in channels-last order, as the LRP Toolbox does.

    Equivalent to ``x.permute(0, 2, 3, 1).flatten(1)``: feature ``(i * W + j) * C + c`` holds
    ``x[:, c, i, j]``, so a toolbox ``Linear`` layer that follows sees its inputs in the order it was
    trained with.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1)


# Number of integer sizes on each header line; Linear and Convolution are followed by two data lines.
_HEADER_SIZES = {
    "Linear": 2,
    "Convolution": 6,
    "SumPool": 4,
    "MaxPool": 4,
    "Rect": 0,
    "Tanh": 0,
    "SoftMax": 0,
    "Flatten": 0,
}
_PARAMETRIZED = ("Linear", "Convolution")


@dataclass
class _Layer:
    """One layer of a toolbox model: name, header sizes and (for Linear/Convolution) parameters."""

    name: str
    sizes: tuple[int, ...]
    weight: torch.Tensor | None = None  # toolbox layout: (m, n) or (h, w, d, n), float64
    bias: torch.Tensor | None = None


class _Shape:
    """Tracks whether data are images or vectors between layers, and their channel/feature count.

    ``layout`` is None before the first layer that fixes it, then "image" or "vector"; ``features`` is the
    channel count of images or the length of vectors, None where the file does not fix it.
    """

    def __init__(self) -> None:
        self.layout: str | None = None
        self.features: int | None = None

    def advance(self, name: str, sizes: tuple[int, ...]) -> None:
        """Update the state for one layer; raise ValueError with the reason if the layer cannot follow."""
        if name == "Linear":
            m, n = sizes
            if self.layout == "image":
                raise ValueError("Linear cannot follow a Convolution or pooling layer without Flatten")
            self._check_features(m, "Linear m")
            self.layout, self.features = "vector", n
        elif name == "Convolution":
            d, n = sizes[2], sizes[3]
            if self.layout == "vector":
                raise ValueError("Convolution needs image data, but the previous layers output vectors")
            self._check_features(d, "Convolution depth d")
            self.layout, self.features = "image", n
        elif name in ("SumPool", "MaxPool"):
            if self.layout == "vector":
                raise ValueError(f"{name} needs image data, but the previous layers output vectors")
            self.layout = "image"
        elif name == "Flatten":
            if self.layout != "vector":
                self.layout, self.features = "vector", None
        elif name == "SoftMax":
            if self.layout == "image":
                raise ValueError("SoftMax needs vectors; add Flatten after the last Convolution or pooling")
            self.layout = "vector"

    def _check_features(self, expected: int, what: str) -> None:
        if self.features is not None and self.features != expected:
            raise ValueError(f"{what} is {expected}, but the previous layer outputs {self.features} features")


def _parse_header(tokens: list[str]) -> _Layer:
    name, values = tokens[0], tokens[1:]
    if name not in _HEADER_SIZES:
        raise ValueError(f"unknown layer '{name}', expected one of {', '.join(_HEADER_SIZES)}")
    count = _HEADER_SIZES[name]
    if len(values) != count:
        raise ValueError(f"expected '{name}' followed by {count} integer sizes, got {len(values)} values")
    try:
        sizes = tuple(int(value) for value in values)
    except ValueError:
        raise ValueError(f"expected {count} integer sizes after '{name}', got {values}") from None
    if any(size < 1 for size in sizes):
        raise ValueError(f"expected positive sizes after '{name}', got {list(sizes)}")
    return _Layer(name, sizes)


def _parse_values(path: str, lines: list[str], index: int, count: int, what: str) -> torch.Tensor:
    """Parse line ``index`` (0-based) as exactly ``count`` finite floats."""
    if index >= len(lines):
        raise ValueError(f"{path}, line {index + 1}: expected a line of {count} {what}, but the file ends")
    tokens = lines[index].split()
    problem = None
    if len(tokens) != count:
        problem = f"expected {count} {what}, got {len(tokens)} values"
    else:
        try:
            values = torch.tensor([float(token) for token in tokens], dtype=torch.float64)
        except ValueError:
            problem = f"expected {count} numeric {what}, found a non-numeric value"
        else:
            if not torch.isfinite(values).all():
                problem = f"expected finite {what}, found NaN or infinity"
    if problem is not None:
        raise ValueError(f"{path}, line {index + 1}: {problem}")
    return values


def _parse_layers(path: str, lines: list[str]) -> list[_Layer]:
    """Parse the text into layers, raising ValueError that names the file and line on any problem."""
    layers = []
    shape = _Shape()
    index = 0
    while index < len(lines):
        tokens = lines[index].split()
        index += 1
        if not tokens:
            continue
        try:
            layer = _parse_header(tokens)
            shape.advance(layer.name, layer.sizes)
        except ValueError as error:
            raise ValueError(f"{path}, line {index}: {error}") from None
        if layer.name in _PARAMETRIZED:
            weight_shape = layer.sizes[:2] if layer.name == "Linear" else layer.sizes[:4]
            weight = _parse_values(path, lines, index, math.prod(weight_shape), f"{layer.name} weights")
            layer.weight = weight.reshape(weight_shape)
            layer.bias = _parse_values(path, lines, index + 1, weight_shape[-1], f"{layer.name} biases")
            index += 2
        layers.append(layer)
    if not layers:
        raise ValueError(f"{path}: no layers found, expected at least one layer block")
    return layers


def _to_module(layer: _Layer, shape: _Shape, dtype: torch.dtype) -> nn.Module:
    """The PyTorch module computing ``layer``; ``shape`` is the state before the layer."""
    if layer.name == "Linear":
        module = nn.Linear(*layer.sizes, dtype=dtype)
        with torch.no_grad():
            module.weight.copy_(layer.weight.T)
            module.bias.copy_(layer.bias)
        return module
    if layer.name == "Convolution":
        h, w, d, n, s0, s1 = layer.sizes
        module = nn.Conv2d(d, n, (h, w), stride=(s0, s1), dtype=dtype)
        with torch.no_grad():
            module.weight.copy_(layer.weight.permute(3, 2, 0, 1))
            module.bias.copy_(layer.bias)
        return module
    if layer.name == "SumPool":
        return SumPool2d(layer.sizes[:2], layer.sizes[2:])
    if layer.name == "MaxPool":
        return nn.MaxPool2d(layer.sizes[:2], layer.sizes[2:])
    if layer.name == "Flatten":
        # On vectors the toolbox's Flatten changes nothing; on images it flattens channels-last.
        return nn.Flatten() if shape.layout == "vector" else FlattenChannelsLast()
    if layer.name == "SoftMax":
        return nn.Softmax(dim=1)
    return nn.ReLU() if layer.name == "Rect" else nn.Tanh()


def read_model(path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """Build a PyTorch model from an LRP Toolbox plain-text model file.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.txt`` model file (format in the module docstring).
    dtype : torch.dtype, default torch.float32
        Floating-point type of the parameters. The file's values are parsed as float64 and then cast,
        so ``torch.float64`` reproduces the toolbox's numbers exactly.

    Returns
    -------
    torch.nn.Sequential
        One module per toolbox layer: ``nn.Linear`` (weight ``W.T``), ``nn.Conv2d`` (weight permuted
        from ``(h, w, d, n)`` to ``(n, d, h, w)``, no padding), :class:`SumPool2d`, ``nn.MaxPool2d``,
        ``nn.ReLU``, ``nn.Tanh``, ``nn.Softmax(dim=1)`` and :class:`FlattenChannelsLast` (``nn.Flatten``
        where the data are already vectors). It takes ``(N, C, H, W)`` images (use
        ``x.permute(0, 3, 1, 2)`` on toolbox data) or, if its first shaping layer is ``Linear``,
        ``(N, m)`` vectors. A final ``SoftMax`` is kept; drop it (``model[:-1]``) to explain logits.

    Raises
    ------
    ValueError
        If the file is missing or malformed: an unknown layer name, wrong or non-integer sizes, a wrong
        number of weights or biases, non-numeric or non-finite values, or layers that cannot follow each
        other (such as ``Linear`` directly after ``Convolution``). The message names the file and line.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such model file")
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a plain-text model file ({error})") from None
    layers = _parse_layers(path, lines)
    modules = []
    shape = _Shape()
    for layer in layers:
        modules.append(_to_module(layer, shape, dtype))
        shape.advance(layer.name, layer.sizes)
    return nn.Sequential(*modules)


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _to_layer(module: nn.Module, index: int) -> _Layer:
    """The toolbox layer computing ``module``; TypeError if the toolbox has no such layer."""

    def unsupported(reason: str) -> TypeError:
        return TypeError(f"model[{index}] ({module!r}) cannot be written: {reason}")

    if isinstance(module, nn.Linear):
        if module.bias is None:
            raise unsupported("the toolbox's Linear needs a bias")
        weight = module.weight.detach().T
        return _Layer("Linear", tuple(weight.shape), weight, module.bias.detach())
    if isinstance(module, nn.Conv2d):
        if module.bias is None:
            raise unsupported("the toolbox's Convolution needs a bias")
        plain = (0, 0), (1, 1), 1, "zeros"
        if (module.padding, module.dilation, module.groups, module.padding_mode) != plain:
            raise unsupported("the toolbox supports only unpadded, undilated, ungrouped convolutions")
        weight = module.weight.detach().permute(2, 3, 1, 0)
        return _Layer("Convolution", (*weight.shape, *module.stride), weight, module.bias.detach())
    if isinstance(module, SumPool2d):
        return _Layer("SumPool", (*module.kernel_size, *module.stride))
    if isinstance(module, nn.MaxPool2d):
        if (_pair(module.padding), _pair(module.dilation), module.ceil_mode) != ((0, 0), (1, 1), False):
            raise unsupported("the toolbox supports only unpadded, undilated max pooling without ceil_mode")
        return _Layer("MaxPool", (*_pair(module.kernel_size), *_pair(module.stride)))
    if isinstance(module, nn.Softmax):
        if module.dim != 1:
            raise unsupported("the toolbox's SoftMax normalises over dim 1")
        return _Layer("SoftMax", ())
    names = {nn.ReLU: "Rect", nn.Tanh: "Tanh", FlattenChannelsLast: "Flatten", nn.Flatten: "Flatten"}
    if type(module) not in names:
        raise unsupported("the toolbox has no such layer")
    return _Layer(names[type(module)], ())


def write_model(model: nn.Sequential, path: str | os.PathLike) -> None:
    """Write a model in the LRP Toolbox's plain-text format; the inverse of :func:`read_model`.

    Parameters
    ----------
    model : torch.nn.Sequential
        A sequence of the modules :func:`read_model` produces. ``nn.Flatten`` is accepted only where
        the data are already vectors (the toolbox flattens images channels-last: use
        :class:`FlattenChannelsLast` there).
    path : str or os.PathLike
        The file to write. Values are written with ``repr`` of their float64 value, so reading the file
        back gives the same parameters.

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Sequential`` or holds a module the toolbox cannot express.
    ValueError
        If the layers cannot follow each other in the toolbox (message names the module index).
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be a torch.nn.Sequential, got {type(model).__name__}")
    lines = []
    shape = _Shape()
    for index, module in enumerate(model):
        layer = _to_layer(module, index)
        if isinstance(module, nn.Flatten) and shape.layout != "vector":
            raise ValueError(
                f"model[{index}]: nn.Flatten flattens images channels-first, the toolbox channels-last; "
                "use relprop.toolbox.FlattenChannelsLast"
            )
        try:
            shape.advance(layer.name, layer.sizes)
        except ValueError as error:
            raise ValueError(f"model[{index}]: {error}") from None
        lines.append(" ".join([layer.name, *map(str, layer.sizes)]))
        for values in (layer.weight, layer.bias):
            if values is not None:
                lines.append(" ".join(repr(value) for value in values.double().flatten().tolist()))
    with open(path, "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
