"""Lightweight CNNs: Inception's 1x1 reductions, depthwise separable convolutions,
MobileNetV1, MobileNetV2 and ShuffleNetV2.

Cost of a convolution with kernel ``k x k``, ``C_in`` input and ``C_out`` output
channels, ``g`` groups, on an ``H x W`` output map (bias left out):

.. math::

    \\text{params} = \\frac{C_{in}}{g} C_{out} k^2, \\qquad
    \\text{MACs} = \\frac{C_{in}}{g} C_{out} k^2 H W.

* A *pointwise* convolution is ``k = 1`` (mixes channels, not positions).
* A *depthwise* convolution is ``g = C_in = C_out`` (filters positions, one channel each).
* A *depthwise separable* convolution is depthwise ``k x k`` then pointwise; its cost
  relative to a full ``k x k`` convolution is ``1 / C_out + 1 / k^2``.

The networks follow the papers and torchvision's configurations, so that
``mobilenet_v2()`` has 3,504,872 parameters and ``shufflenet_v2(1.0)`` 2,278,604.
Multiply-accumulates are counted by :func:`dlnotes.vision.flops.count_flops`,
re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from dlnotes._checks import check_positive_int as _check_positive_int
from dlnotes.foundations.api_export import export
from dlnotes.vision.efficientnet import make_divisible
from dlnotes.vision.flops import count_flops

__all__ = [
    "MOBILENET_V2_SETTINGS",
    "SHUFFLENET_V2_WIDTHS",
    "DepthwiseSeparableConv",
    "InceptionModule",
    "InvertedResidual",
    "MobileNetV1",
    "MobileNetV2",
    "ShuffleNetV2",
    "ShuffleUnit",
    "channel_shuffle",
    "conv_bn",
    "conv_cost",
    "count_flops",
    "mobilenet_v1",
    "mobilenet_v2",
    "shufflenet_v2",
]

#: MobileNetV2's inverted-residual stages ``(t, c, n, s)``: expansion factor, output
#: channels, repeats, stride of the first repeat (paper Table 2, torchvision's default).
MOBILENET_V2_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

#: ShuffleNetV2 output channels of conv1, stage2, stage3, stage4 and conv5 per width
#: multiplier (paper Table 5, torchvision's ``shufflenet_v2_x*``).
SHUFFLENET_V2_WIDTHS: dict[float, tuple[int, int, int, int, int]] = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}

#: ShuffleNetV2 units per stage (stage2, stage3, stage4).
SHUFFLENET_V2_REPEATS: tuple[int, int, int] = (4, 8, 4)

# MobileNetV1 body after the stem: (output channels, stride) of each separable block.
_MOBILENET_V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)  # fmt: skip


# --------------------------------------------------------------------------- arithmetic


@export("vision.conv_cost")
def conv_cost(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    output_size: int | tuple[int, int] = 1,
    groups: int = 1,
) -> tuple[int, int]:
    """Weights and multiply-accumulates of one 2-D convolution, from the closed form.

    ``params = (C_in / g) * C_out * k^2`` (no bias) and ``MACs = params * H_out * W_out``.

    Args:
        in_channels: ``C_in``, >= 1.
        out_channels: ``C_out``, >= 1.
        kernel_size: Side ``k`` of the square kernel, >= 1.
        output_size: ``H_out`` (square map) or ``(H_out, W_out)``; the default 1 gives
            MACs per output position.
        groups: ``g``; must divide both channel counts.

    Returns:
        ``(params, macs)``.

    Raises:
        ValueError: If a size is < 1, ``output_size`` is not an int or a pair, or
            ``groups`` does not divide the channels.

    Examples:
        >>> conv_cost(192, 64, 1, 28)     # inception (3a)'s 1x1 branch
        (12288, 9633792)
    """
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("kernel_size", kernel_size)):
        _check_positive_int(value, name)
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    if not isinstance(output_size, Sequence) or len(output_size) != 2:
        raise ValueError(f"output_size must be an int or a pair (H_out, W_out), got {output_size!r}")
    height, width = output_size
    _check_positive_int(height, "output_size")
    _check_positive_int(width, "output_size")
    _check_groups(in_channels, out_channels, groups)
    params = in_channels // groups * out_channels * kernel_size * kernel_size
    return params, params * height * width


# ------------------------------------------------------------------------ building blocks


@export("vision.conv_bn")
def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 1,
    stride: int = 1,
    groups: int = 1,
    activation: Callable[[], nn.Module] | None = nn.ReLU,
) -> nn.Sequential:
    """Convolution (no bias, "same" padding) + BatchNorm + optional activation.

    ``kernel_size=1`` is a pointwise convolution; ``groups == in_channels == out_channels``
    a depthwise one. The bias is left out because BatchNorm's shift replaces it.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``
        for odd ``kernel_size``.

    Args:
        in_channels: Input channels, >= 1.
        out_channels: Output channels, >= 1.
        kernel_size: Odd kernel side, >= 1 (padding ``kernel_size // 2``).
        stride: Stride, >= 1.
        groups: Number of channel groups; must divide both channel counts.
        activation: A module factory such as ``nn.ReLU`` or ``nn.ReLU6``; ``None`` keeps
            the block linear (MobileNetV2's projection).

    Returns:
        ``nn.Sequential(conv, bn[, activation])``.

    Raises:
        ValueError: If a size is < 1, ``kernel_size`` is even, or ``groups`` does not
            divide ``in_channels`` and ``out_channels``.

    Examples:
        >>> conv_bn(32, 32, kernel_size=3, groups=32)[0].weight.shape   # depthwise 3x3
        torch.Size([32, 1, 3, 3])
    """
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("stride", stride)):
        _check_positive_int(value, name)
    _check_positive_int(kernel_size, "kernel_size")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
    _check_groups(in_channels, out_channels, groups)
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


@export("vision.channel_shuffle")
def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` equal groups (ShuffleNet's channel shuffle).

    Reshape channels to ``(groups, C / groups)``, transpose to ``(C / groups, groups)``
    and flatten: output channel ``j * groups + i`` is input channel ``i * (C / groups) + j``.

    Shape:
        ``x: (N, C, H, W)`` with ``C`` divisible by ``groups``; result has the same shape.

    Args:
        x: A 4-D tensor.
        groups: Number of groups, >= 1, dividing ``C``.

    Returns:
        The channel-permuted tensor.

    Raises:
        ValueError: If ``x`` is not 4-D, or ``groups`` < 1 or does not divide ``C``.

    Examples:
        >>> channel_shuffle(torch.arange(6.).view(1, 6, 1, 1), 2).flatten().tolist()
        [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a 4-D tensor (N, C, H, W), got {shape}")
    _check_positive_int(groups, "groups")
    batch, channels, height, width = x.shape
    if channels % groups:
        raise ValueError(f"groups ({groups}) must divide the number of channels ({channels})")
    x = x.view(batch, groups, channels // groups, height, width)  # (N, g, C/g, H, W)
    return x.transpose(1, 2).reshape(batch, channels, height, width)  # (N, C/g, g, H, W) -> flat


class InceptionModule(nn.Module):
    """GoogLeNet's Inception module, naive or with 1x1 reductions (Szegedy et al., 2014).

    Four parallel branches see the same input and their outputs are concatenated:

    * ``reduce=True`` (Inception v1 as used): 1x1; 1x1 -> 3x3; 1x1 -> 5x5;
      3x3 max-pool -> 1x1 projection. Output channels
      ``ch1x1 + ch3x3 + ch5x5 + pool_proj``.
    * ``reduce=False`` (the naive version): 1x1; 3x3; 5x5; 3x3 max-pool. The pool branch
      passes all ``in_channels`` through, so the output has
      ``ch1x1 + ch3x3 + ch5x5 + in_channels`` channels and keeps growing from module to
      module. The reduce and projection widths are ignored.

    Every convolution has a bias and a ReLU, as in the paper (no BatchNorm in v1).

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, H, W)``.

    Args:
        in_channels: Input channels.
        ch1x1: Output channels of the 1x1 branch.
        ch3x3_reduce: 1x1 reduction in front of the 3x3 convolution.
        ch3x3: Output channels of the 3x3 branch.
        ch5x5_reduce: 1x1 reduction in front of the 5x5 convolution.
        ch5x5: Output channels of the 5x5 branch.
        pool_proj: 1x1 projection after the max-pool.
        reduce: ``True`` for the module with 1x1 reductions, ``False`` for the naive one.

    Raises:
        ValueError: If a channel count is < 1.

    Examples:
        >>> block = InceptionModule(192, 64, 96, 128, 16, 32, 32)   # inception (3a)
        >>> block(torch.zeros(1, 192, 28, 28)).shape
        torch.Size([1, 256, 28, 28])
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3_reduce: int,
        ch3x3: int,
        ch5x5_reduce: int,
        ch5x5: int,
        pool_proj: int,
        reduce: bool = True,
    ) -> None:
        super().__init__()
        sizes = {
            "in_channels": in_channels, "ch1x1": ch1x1, "ch3x3_reduce": ch3x3_reduce, "ch3x3": ch3x3,
            "ch5x5_reduce": ch5x5_reduce, "ch5x5": ch5x5, "pool_proj": pool_proj,
        }  # fmt: skip
        for name, value in sizes.items():
            _check_positive_int(value, name)
        self.reduce = reduce
        self.branch1 = _conv_relu(in_channels, ch1x1, 1)
        if reduce:
            self.branch2 = nn.Sequential(_conv_relu(in_channels, ch3x3_reduce, 1), _conv_relu(ch3x3_reduce, ch3x3, 3))
            self.branch3 = nn.Sequential(_conv_relu(in_channels, ch5x5_reduce, 1), _conv_relu(ch5x5_reduce, ch5x5, 5))
            self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), _conv_relu(in_channels, pool_proj, 1))
            self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        else:
            self.branch2 = _conv_relu(in_channels, ch3x3, 3)
            self.branch3 = _conv_relu(in_channels, ch5x5, 5)
            self.branch4 = nn.MaxPool2d(3, 1, 1)
            self.out_channels = ch1x1 + ch3x3 + ch5x5 + in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch1, self.branch2, self.branch3, self.branch4)
        return torch.cat([branch(x) for branch in branches], dim=1)  # stack the scales as channels


class DepthwiseSeparableConv(nn.Sequential):
    """MobileNetV1's block: depthwise 3x3 + BN + ReLU, then pointwise 1x1 + BN + ReLU.

    Replaces a full 3x3 convolution at ``1 / out_channels + 1 / 9`` of its cost.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the depthwise convolution (1 or 2).
        kernel_size: Odd depthwise kernel side (3 in MobileNet).

    Raises:
        ValueError: As :func:`conv_bn`.

    Examples:
        >>> DepthwiseSeparableConv(32, 64)(torch.zeros(1, 32, 8, 8)).shape
        torch.Size([1, 64, 8, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, kernel_size: int = 3) -> None:
        super().__init__(
            conv_bn(in_channels, in_channels, kernel_size, stride, groups=in_channels),  # depthwise: spatial
            conv_bn(in_channels, out_channels, 1),  # pointwise: mixes channels
        )


class InvertedResidual(nn.Module):
    """MobileNetV2's block: expand (1x1) -> depthwise 3x3 -> linear projection (1x1).

    The narrow ends carry the residual; the wide middle (``expand_ratio`` times the
    input) is where the ReLU6 non-linearities act. The projection has no activation (the
    *linear bottleneck*), because a ReLU on a low-dimensional representation destroys
    information. With ``expand_ratio == 1`` the expansion is skipped.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: 1 or 2. The shortcut is used when ``stride == 1`` and the channel counts
            are equal.
        expand_ratio: Expansion factor ``t`` >= 1; hidden width ``round(in_channels * t)``.

    Raises:
        ValueError: If ``stride`` is not 1 or 2, or ``expand_ratio`` < 1.

    Examples:
        >>> InvertedResidual(24, 24, 1, 6)(torch.zeros(1, 24, 8, 8)).shape
        torch.Size([1, 24, 8, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: float) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        if not expand_ratio >= 1:
            raise ValueError(f"expand_ratio must be >= 1, got {expand_ratio!r}")
        _check_positive_int(in_channels, "in_channels")
        _check_positive_int(out_channels, "out_channels")
        hidden = int(round(in_channels * expand_ratio))
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn(in_channels, hidden, 1, activation=nn.ReLU6))  # expand
        layers.append(conv_bn(hidden, hidden, 3, stride, groups=hidden, activation=nn.ReLU6))  # depthwise
        layers.append(conv_bn(hidden, out_channels, 1, activation=None))  # linear bottleneck
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2's unit (Ma et al., 2018, Fig. 3c and 3d).

    * ``stride == 1``: *channel split* the input into two halves; the first half passes
      through unchanged, the second goes through 1x1 -> depthwise 3x3 -> 1x1; concatenate
      and shuffle with 2 groups. Input and output widths are equal.
    * ``stride == 2``: both branches see the whole input; the left one is depthwise 3x3
      (stride 2) -> 1x1, the right one 1x1 -> depthwise 3x3 (stride 2) -> 1x1. Each
      branch gives ``out_channels / 2`` channels; concatenate and shuffle.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels; even (two equal halves).
        stride: 1 or 2.

    Raises:
        ValueError: If ``stride`` is not 1 or 2, ``out_channels`` is odd, or
            ``stride == 1`` with ``in_channels != out_channels``.

    Examples:
        >>> ShuffleUnit(24, 116, 2)(torch.zeros(1, 24, 8, 8)).shape
        torch.Size([1, 116, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        _check_positive_int(in_channels, "in_channels")
        _check_positive_int(out_channels, "out_channels")
        if out_channels % 2:
            raise ValueError(f"out_channels must be even (split into two halves), got {out_channels}")
        if stride == 1 and in_channels != out_channels:
            raise ValueError(
                f"a stride-1 unit splits its input in half, so in_channels must equal "
                f"out_channels, got {in_channels} and {out_channels}"
            )
        self.stride = stride
        half = out_channels // 2
        if stride == 2:
            self.branch1: nn.Module = nn.Sequential(
                conv_bn(in_channels, in_channels, 3, 2, groups=in_channels, activation=None),
                conv_bn(in_channels, half, 1),
            )
        else:
            self.branch1 = nn.Identity()
        branch2_in = in_channels if stride == 2 else half
        self.branch2 = nn.Sequential(
            conv_bn(branch2_in, half, 1),
            conv_bn(half, half, 3, stride, groups=half, activation=None),  # no ReLU after depthwise
            conv_bn(half, half, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            left, right = x.chunk(2, dim=1)  # channel split
            out = torch.cat((left, self.branch2(right)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)  # let the halves exchange information next unit


# ----------------------------------------------------------------------------- networks


class MobileNetV1(nn.Module):
    """MobileNetV1 (Howard et al., 2017, Table 1) with BatchNorm and ReLU.

    Stem 3x3 stride-2 convolution to 32 channels, 13 depthwise separable blocks, global
    average pooling, a linear classifier. Every width is ``make_divisible(c * width_mult, 8)``.

    Shape:
        ``(N, 3, H, W) -> (N, num_classes)``.

    Args:
        width_mult: The width multiplier ``alpha`` > 0.
        num_classes: Output classes, >= 1.

    Raises:
        ValueError: If ``width_mult <= 0`` or ``num_classes < 1``.

    Examples:
        >>> MobileNetV1(0.25, num_classes=10)(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        _check_width(width_mult)
        _check_positive_int(num_classes, "num_classes")
        channels = make_divisible(32 * width_mult, 8)
        layers: list[nn.Module] = [conv_bn(3, channels, 3, 2)]
        for out, stride in _MOBILENET_V1_BLOCKS:
            out = make_divisible(out * width_mult, 8)
            layers.append(DepthwiseSeparableConv(channels, out, stride))
            channels = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al., 2018) in torchvision's configuration.

    Stem 3x3 stride-2 convolution (32 channels), the inverted-residual stages of
    :data:`MOBILENET_V2_SETTINGS`, a 1x1 convolution to 1280 channels, global average
    pooling, dropout and a linear classifier. BatchNorm follows every convolution and the
    activation is ReLU6. Widths are ``make_divisible(c * width_mult, 8)``; the last
    convolution is never narrowed below 1280.

    Shape:
        ``(N, 3, H, W) -> (N, num_classes)``.

    Args:
        width_mult: Width multiplier > 0.
        num_classes: Output classes, >= 1.
        dropout: Dropout probability in ``[0, 1)`` before the classifier.

    Raises:
        ValueError: If an argument is out of range.

    Examples:
        >>> MobileNetV2(0.5, num_classes=10).eval()(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        _check_width(width_mult)
        _check_positive_int(num_classes, "num_classes")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        channels = make_divisible(32 * width_mult, 8)
        last_channels = make_divisible(1280 * max(1.0, width_mult), 8)
        layers: list[nn.Module] = [conv_bn(3, channels, 3, 2, activation=nn.ReLU6)]
        for t, c, n, s in MOBILENET_V2_SETTINGS:
            out = make_divisible(c * width_mult, 8)
            for i in range(n):  # only the first block of a stage changes resolution
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
        layers.append(conv_bn(channels, last_channels, 1, activation=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_channels, num_classes))
        _initialise(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 (Ma et al., 2018, Table 5) in torchvision's configuration.

    conv1 3x3 stride 2 + BN + ReLU, 3x3 stride-2 max-pool, three stages of
    :class:`ShuffleUnit` (the first unit of each has stride 2), conv5 1x1 + BN + ReLU,
    global average pooling, a linear classifier.

    Shape:
        ``(N, 3, H, W) -> (N, num_classes)``.

    Args:
        stages_repeats: Units in stage2, stage3, stage4.
        stages_out_channels: Widths of conv1, the three stages and conv5; the stage
            widths must be even.
        num_classes: Output classes, >= 1.

    Raises:
        ValueError: If the lengths are not 3 and 5, a count is < 1, or a stage width is odd.

    Examples:
        >>> tiny = ShuffleNetV2((1, 1, 1), (8, 16, 32, 64, 128), num_classes=10)
        >>> tiny.eval()(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    def __init__(
        self,
        stages_repeats: Sequence[int] = SHUFFLENET_V2_REPEATS,
        stages_out_channels: Sequence[int] = SHUFFLENET_V2_WIDTHS[1.0],
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        if len(stages_repeats) != 3:
            raise ValueError(f"stages_repeats must have 3 entries, got {list(stages_repeats)}")
        if len(stages_out_channels) != 5:
            raise ValueError(f"stages_out_channels must have 5 entries, got {list(stages_out_channels)}")
        for value in (*stages_repeats, *stages_out_channels):
            _check_positive_int(value, "stages_repeats/stages_out_channels")
        _check_positive_int(num_classes, "num_classes")
        stem, *stage_widths, last = stages_out_channels
        self.conv1 = conv_bn(3, stem, 3, 2)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        stages: list[nn.Module] = []
        channels = stem
        for repeats, width in zip(stages_repeats, stage_widths, strict=True):
            units = [ShuffleUnit(channels, width, 2)]  # stride-2 unit doubles the width
            units += [ShuffleUnit(width, width, 1) for _ in range(repeats - 1)]
            stages.append(nn.Sequential(*units))
            channels = width
        self.stage2, self.stage3, self.stage4 = stages
        self.conv5 = conv_bn(channels, last, 1)
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(x.mean(dim=(2, 3)))


@export("vision.mobilenet_v1")
def mobilenet_v1(width_mult: float = 1.0, num_classes: int = 1000) -> MobileNetV1:
    """MobileNetV1 with width multiplier ``width_mult`` (see :class:`MobileNetV1`).

    Args:
        width_mult: Width multiplier > 0 (the paper uses 1.0, 0.75, 0.5, 0.25).
        num_classes: Output classes, >= 1.

    Returns:
        An untrained :class:`MobileNetV1`; at 1.0, 4.2M parameters and 569M MACs at 224.

    Raises:
        ValueError: If ``width_mult <= 0`` or ``num_classes < 1``.

    Examples:
        >>> sum(p.numel() for p in mobilenet_v1().parameters())
        4231976
    """
    return MobileNetV1(width_mult, num_classes)


@export("vision.mobilenet_v2")
def mobilenet_v2(num_classes: int = 1000, width_mult: float = 1.0) -> MobileNetV2:
    """MobileNetV2 as in torchvision (``torchvision.models.mobilenet_v2``).

    Args:
        num_classes: Output classes, >= 1.
        width_mult: Width multiplier > 0.

    Returns:
        An untrained :class:`MobileNetV2`, 3,504,872 parameters for the defaults.

    Raises:
        ValueError: If ``num_classes < 1`` or ``width_mult <= 0``.

    Examples:
        >>> sum(p.numel() for p in mobilenet_v2().parameters())
        3504872
    """
    return MobileNetV2(width_mult=width_mult, num_classes=num_classes)


@export("vision.shufflenet_v2")
def shufflenet_v2(width_mult: float = 1.0, num_classes: int = 1000) -> ShuffleNetV2:
    """ShuffleNetV2 at one of the paper's widths (``torchvision.models.shufflenet_v2_x*``).

    Args:
        width_mult: One of 0.5, 1.0, 1.5, 2.0 (:data:`SHUFFLENET_V2_WIDTHS`).
        num_classes: Output classes, >= 1.

    Returns:
        An untrained :class:`ShuffleNetV2`; 2,278,604 parameters at 1.0.

    Raises:
        ValueError: If ``width_mult`` is not one of the four widths or ``num_classes < 1``.

    Examples:
        >>> sum(p.numel() for p in shufflenet_v2(1.0).parameters())
        2278604
    """
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)):
        raise ValueError(f"width_mult must be one of {sorted(SHUFFLENET_V2_WIDTHS)}, got {width_mult!r}")
    if float(width_mult) not in SHUFFLENET_V2_WIDTHS:
        raise ValueError(f"width_mult must be one of {sorted(SHUFFLENET_V2_WIDTHS)}, got {width_mult!r}")
    return ShuffleNetV2(SHUFFLENET_V2_REPEATS, SHUFFLENET_V2_WIDTHS[float(width_mult)], num_classes)


# ------------------------------------------------------------------------------ helpers


def _conv_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """Inception v1's unit: convolution with bias and "same" padding, then ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2), nn.ReLU())


def _initialise(model: nn.Module) -> None:
    """torchvision's MobileNetV2 initialisation (He fan-out, unit BN, small linear)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)


def _check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    _check_positive_int(groups, "groups")
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"groups ({groups}) must divide in_channels ({in_channels}) and out_channels ({out_channels})"
        )


def _check_width(width_mult: float) -> None:
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or not width_mult > 0:
        raise ValueError(f"width_mult must be a number > 0, got {width_mult!r}")
    if not math.isfinite(width_mult):
        raise ValueError(f"width_mult must be finite, got {width_mult!r}")
