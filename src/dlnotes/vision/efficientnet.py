"""EfficientNet B0-B7: MBConv blocks, squeeze-and-excitation, stochastic depth, compound scaling.

Tan and Le (ICML 2019, https://arxiv.org/abs/1905.11946) scale a small baseline network
(B0) along three axes at once. With a single compound coefficient :math:`\\phi`,

.. math::

    d = \\alpha^{\\phi}, \\quad w = \\beta^{\\phi}, \\quad r = \\gamma^{\\phi},
    \\qquad \\alpha \\beta^2 \\gamma^2 \\approx 2,

multiply the number of layers by ``d``, the channels by ``w`` and the input side by ``r``.
A convolution's cost grows linearly in depth and quadratically in width and resolution,
so FLOPs grow by about :math:`(\\alpha\\beta^2\\gamma^2)^{\\phi} \\approx 2^{\\phi}`.
The grid search in the paper found :math:`\\alpha = 1.2, \\beta = 1.1, \\gamma = 1.15`.

The building block is MBConv (MobileNetV2's inverted residual): a 1x1 expansion, a
depthwise k x k convolution, squeeze-and-excitation, and a 1x1 linear projection, with a
skip connection (dropped at random per sample during training: stochastic depth) when
the shape is preserved. The layer configuration and initialisation follow torchvision's
``efficientnet_b0`` ... ``efficientnet_b7`` so that parameter counts agree exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn
from tqdm.auto import tqdm

from dlnotes.foundations.api_export import export
from dlnotes.vision.flops import count_flops

__all__ = [
    "ALPHA",
    "BETA",
    "GAMMA",
    "VARIANTS",
    "BASE_STAGES",
    "VariantConfig",
    "BlockConfig",
    "make_divisible",
    "compound_multipliers",
    "block_configs",
    "stochastic_depth",
    "SqueezeExcitation",
    "MBConv",
    "EfficientNet",
    "efficientnet",
    "count_multiply_adds",
    "PATTERNS",
    "synthetic_patterns",
    "train_on_synthetic",
]

#: Compound-scaling bases found by the paper's grid search at phi = 1.
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15


@dataclass(frozen=True)
class BlockConfig:
    """One MBConv stage of the baseline network (B0).

    Args:
        expand_ratio: Hidden channels = ``expand_ratio * in_channels``.
        kernel: Depthwise kernel size.
        stride: Stride of the first block of the stage (later blocks use 1).
        in_channels: Input channels of the stage's first block.
        out_channels: Output channels of every block of the stage.
        layers: How many blocks the stage has.
    """

    expand_ratio: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    layers: int


#: B0's seven stages (Table 1 of the paper, torchvision's ``bneck_conf`` values).
BASE_STAGES: tuple[BlockConfig, ...] = (
    BlockConfig(1, 3, 1, 32, 16, 1),
    BlockConfig(6, 3, 2, 16, 24, 2),
    BlockConfig(6, 5, 2, 24, 40, 2),
    BlockConfig(6, 3, 2, 40, 80, 3),
    BlockConfig(6, 5, 1, 80, 112, 3),
    BlockConfig(6, 5, 2, 112, 192, 4),
    BlockConfig(6, 3, 1, 192, 320, 1),
)


@dataclass(frozen=True)
class VariantConfig:
    """The released coefficients of one EfficientNet variant.

    Args:
        width_mult: Channel multiplier ``w``.
        depth_mult: Layer multiplier ``d``.
        resolution: Input side in pixels used in the paper.
        dropout: Dropout probability before the classifier.
        batch_norm_eps: BatchNorm epsilon (torchvision uses 1e-3 for B5-B7).
    """

    width_mult: float
    depth_mult: float
    resolution: int
    dropout: float
    batch_norm_eps: float = 1e-5


#: Hand-rounded coefficients of the released models (not exactly alpha**phi etc.).
VARIANTS: dict[str, VariantConfig] = {
    "b0": VariantConfig(1.0, 1.0, 224, 0.2),
    "b1": VariantConfig(1.0, 1.1, 240, 0.2),
    "b2": VariantConfig(1.1, 1.2, 260, 0.3),
    "b3": VariantConfig(1.2, 1.4, 300, 0.3),
    "b4": VariantConfig(1.4, 1.8, 380, 0.4),
    "b5": VariantConfig(1.6, 2.2, 456, 0.4, 1e-3),
    "b6": VariantConfig(1.8, 2.6, 528, 0.5, 1e-3),
    "b7": VariantConfig(2.0, 3.1, 600, 0.5, 1e-3),
}


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never more than 10 % down.

    Args:
        value: The ideal (scaled) channel count, > 0.
        divisor: The multiple to round to, >= 1.

    Returns:
        An integer multiple of ``divisor``, at least ``divisor`` and at least ``0.9 * value``.

    Raises:
        ValueError: If ``value <= 0`` or ``divisor < 1``.

    Examples:
        >>> make_divisible(32 * 1.1), make_divisible(320 * 1.1), make_divisible(16 * 1.8)
        (32, 352, 32)
    """
    if not value > 0:
        raise ValueError(f"value must be > 0, got {value}")
    if not isinstance(divisor, int) or divisor < 1:
        raise ValueError(f"divisor must be an integer >= 1, got {divisor!r}")
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:  # rounding down must not remove more than 10 %
        rounded += divisor
    return rounded


@export("vision.compound_multipliers")
def compound_multipliers(
    phi: float, alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA
) -> tuple[float, float, float]:
    """Depth, width and resolution multipliers ``(alpha**phi, beta**phi, gamma**phi)``.

    Args:
        phi: The compound coefficient (0 gives the baseline).
        alpha: Depth base, >= 1.
        beta: Width base, >= 1.
        gamma: Resolution base, >= 1.

    Returns:
        ``(depth, width, resolution)`` multipliers; the FLOPs multiplier is about
        ``(alpha * beta**2 * gamma**2) ** phi``.

    Raises:
        ValueError: If a base is below 1.

    Examples:
        >>> [round(m, 3) for m in compound_multipliers(1)]
        [1.2, 1.1, 1.15]
    """
    for name, base in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not base >= 1:
            raise ValueError(f"{name} must be >= 1 (scaling never shrinks the network), got {base}")
    return alpha**phi, beta**phi, gamma**phi


def block_configs(
    width_mult: float, depth_mult: float, stages: Sequence[BlockConfig] = BASE_STAGES
) -> list[list[BlockConfig]]:
    """The scaled stages: channels through :func:`make_divisible`, layers rounded up.

    Args:
        width_mult: Channel multiplier ``w`` (> 0).
        depth_mult: Layer multiplier ``d`` (> 0).
        stages: The baseline stages (default :data:`BASE_STAGES`).

    Returns:
        One list per stage with one :class:`BlockConfig` per block (``layers = 1``); only
        the first block of a stage has the stage's stride and input channels.

    Raises:
        ValueError: If a multiplier is not positive.

    Examples:
        >>> [len(stage) for stage in block_configs(1.0, 3.1)]
        [4, 7, 7, 10, 10, 13, 4]
    """
    if not width_mult > 0 or not depth_mult > 0:
        raise ValueError(f"width_mult and depth_mult must be > 0, got {width_mult} and {depth_mult}")
    scaled = []
    for stage in stages:
        layers = int(math.ceil(stage.layers * depth_mult))  # d: layers rounded up
        first = replace(
            stage,
            in_channels=make_divisible(stage.in_channels * width_mult),  # w: channels
            out_channels=make_divisible(stage.out_channels * width_mult),
            layers=1,
        )
        rest = replace(first, in_channels=first.out_channels, stride=1)
        scaled.append([first] + [rest] * (layers - 1))
    return scaled


@export("vision.stochastic_depth")
def stochastic_depth(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Drop whole samples of a residual branch with probability ``p`` ("row" mode).

    Each sample ``i`` of the batch is multiplied by ``b_i / (1 - p)`` with
    ``b_i ~ Bernoulli(1 - p)``, so the expectation equals ``x``; in evaluation the
    branch is returned unchanged.

    Shape:
        x: ``(batch, ...)``; result: same shape.

    Args:
        x: The residual branch's output.
        p: Drop probability, ``0 <= p < 1``.
        training: Apply the random drop (``True``) or return ``x`` (``False``).

    Returns:
        ``x`` with some samples zeroed and the rest scaled by ``1 / (1 - p)``.

    Raises:
        ValueError: If ``p`` is outside ``[0, 1)``.

    Examples:
        >>> stochastic_depth(torch.ones(2, 3), 0.5, training=False).sum().item()
        6.0
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"p must satisfy 0 <= p < 1, got {p}")
    if not training or p == 0.0:
        return x
    survival = 1.0 - p
    # One Bernoulli(1 - p) draw per sample, broadcast over the other dimensions.
    keep = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(survival)
    return x * keep / survival


class SqueezeExcitation(nn.Module):
    """Channel attention: ``x * sigmoid(W2 silu(W1 mean_hw(x) + b1) + b2)``.

    Shape:
        x: ``(batch, channels, height, width)``; result: same shape.

    Args:
        channels: Channels of ``x`` (the expanded channels inside MBConv).
        squeeze_channels: Width of the bottleneck (EfficientNet: block input // 4).
    """

    def __init__(self, channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # squeeze: one number per channel
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)  # W1, b1
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)  # W2, b2
        self.activation = nn.SiLU()
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.fc2(self.activation(self.fc1(self.avgpool(x)))))  # excitation in (0, 1)
        return x * scale


def _conv_bn(
    in_channels: int, out_channels: int, kernel: int, stride: int, groups: int, eps: float, activation: bool
) -> nn.Sequential:
    """Convolution (no bias, 'same' padding) + BatchNorm (+ SiLU)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels, eps=eps),
    ]
    if activation:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-and-excitation and stochastic depth.

    ``expand 1x1 (if expand_ratio > 1) -> depthwise kxk -> SE -> project 1x1 (linear)``,
    plus ``x +`` stochastic-depth(branch) when ``stride == 1`` and channels match.

    Shape:
        x: ``(batch, in_channels, H, W)``; result: ``(batch, out_channels, H / stride, W / stride)``.

    Args:
        config: Block configuration (``layers`` is ignored).
        drop_probability: Stochastic-depth drop probability of this block.
        batch_norm_eps: BatchNorm epsilon.
    """

    def __init__(self, config: BlockConfig, drop_probability: float = 0.0, batch_norm_eps: float = 1e-5) -> None:
        super().__init__()
        if config.stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {config.stride}")
        self.use_residual = config.stride == 1 and config.in_channels == config.out_channels
        self.drop_probability = drop_probability
        hidden = config.in_channels * config.expand_ratio
        layers: list[nn.Module] = []
        if hidden != config.in_channels:
            layers.append(_conv_bn(config.in_channels, hidden, 1, 1, 1, batch_norm_eps, activation=True))
        layers.append(_conv_bn(hidden, hidden, config.kernel, config.stride, hidden, batch_norm_eps, activation=True))
        # The SE bottleneck is a quarter of the block's *input* channels, not of `hidden`.
        layers.append(SqueezeExcitation(hidden, max(1, config.in_channels // 4)))
        layers.append(_conv_bn(hidden, config.out_channels, 1, 1, 1, batch_norm_eps, activation=False))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.block(x)
        if not self.use_residual:
            return branch
        return x + stochastic_depth(branch, self.drop_probability, self.training)


class EfficientNet(nn.Module):
    """EfficientNet with arbitrary width and depth multipliers.

    stem (3x3 stride-2 conv to ``w * 32`` channels) -> scaled MBConv stages -> head
    (1x1 conv to ``4 *`` the last stage's channels) -> global average pool -> dropout -> linear.

    Shape:
        x: ``(batch, 3, H, W)``; result: ``(batch, num_classes)`` logits.

    Args:
        width_mult: Channel multiplier ``w``.
        depth_mult: Layer multiplier ``d``.
        num_classes: Output classes.
        dropout: Dropout before the classifier.
        stochastic_depth_prob: Drop probability of the last block; block ``i`` of ``N``
            uses ``stochastic_depth_prob * i / N``.
        batch_norm_eps: BatchNorm epsilon.
    """

    def __init__(
        self,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        num_classes: int = 1000,
        dropout: float = 0.2,
        stochastic_depth_prob: float = 0.2,
        batch_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if not 0.0 <= stochastic_depth_prob < 1.0:
            raise ValueError(f"stochastic_depth_prob must satisfy 0 <= p < 1, got {stochastic_depth_prob}")
        stages = block_configs(width_mult, depth_mult)
        total_blocks = sum(len(stage) for stage in stages)
        stem_channels = stages[0][0].in_channels
        layers: list[nn.Module] = [_conv_bn(3, stem_channels, 3, 2, 1, batch_norm_eps, activation=True)]
        block_index = 0
        for stage in stages:
            blocks = []
            for config in stage:
                # Linear decay of the survival probability with depth (Huang et al., 2016).
                drop = stochastic_depth_prob * block_index / total_blocks
                blocks.append(MBConv(config, drop, batch_norm_eps))
                block_index += 1
            layers.append(nn.Sequential(*blocks))
        last_channels = stages[-1][-1].out_channels
        head_channels = 4 * last_channels  # 1280 for B0
        layers.append(_conv_bn(last_channels, head_channels, 1, 1, 1, batch_norm_eps, activation=True))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(head_channels, num_classes))
        self._initialise()

    def _initialise(self) -> None:
        """torchvision's initialisation: He (fan-out) for convs, U(+-1/sqrt(out)) for the classifier."""
        if self.classifier[1].weight.is_meta:  # shapes only (counting): nothing to initialise
            return
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.out_features)
                nn.init.uniform_(module.weight, -bound, bound)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x must have shape (batch, 3, height, width), got {tuple(x.shape)}")
        features = self.avgpool(self.features(x)).flatten(1)
        return self.classifier(features)


@export("vision.efficientnet")
def efficientnet(variant: str = "b0", num_classes: int = 1000) -> EfficientNet:
    """EfficientNet-B0 ... B7 with torchvision's configuration (same parameter counts).

    Args:
        variant: One of ``"b0"`` ... ``"b7"`` (see :data:`VARIANTS`).
        num_classes: Output classes.

    Returns:
        A randomly initialised :class:`EfficientNet`; feed it images of
        ``VARIANTS[variant].resolution`` pixels for the paper's setting.

    Raises:
        ValueError: If ``variant`` is unknown or ``num_classes`` is not a positive integer.

    Examples:
        >>> sum(p.numel() for p in efficientnet("b0").parameters())
        5288548
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {tuple(VARIANTS)}, got {variant!r}")
    config = VARIANTS[variant]
    return EfficientNet(
        config.width_mult,
        config.depth_mult,
        num_classes=num_classes,
        dropout=config.dropout,
        batch_norm_eps=config.batch_norm_eps,
    )


@export("vision.count_multiply_adds")
def count_multiply_adds(model: nn.Module, resolution: int) -> int:
    """Multiply-accumulate operations of convolutions and linear layers for one image.

    A shorthand for :func:`dlnotes.vision.flops.count_flops` on one square RGB image: the
    model runs once on the ``meta`` device with forward hooks; a convolution costs
    ``out_elements * (in_channels / groups) * kh * kw``, a linear layer
    ``in_features * out_features``. The paper's "FLOPs" are these counts.

    Args:
        model: Any module taking ``(1, 3, resolution, resolution)`` images; it is not modified.
        resolution: Input side in pixels, >= 1.

    Returns:
        The number of multiply-adds (one image).

    Raises:
        ValueError: If ``resolution`` is not a positive integer.

    Examples:
        >>> count_multiply_adds(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1)), 4)  # 4*4*8 outputs * 27
        3456
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
    return count_flops(model, (1, 3, resolution, resolution))  # the same hooks, shared with lightweight.py


#: The classes of :func:`synthetic_patterns`, in label order.
PATTERNS: tuple[str, ...] = ("horizontal stripes", "vertical stripes", "checkerboard", "blob")


def synthetic_patterns(
    batch: int, resolution: int = 32, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy coloured images of four pattern classes, for a quick training run.

    Classes: 0 horizontal stripes, 1 vertical stripes, 2 checkerboard, 3 a Gaussian blob.
    Each image has a random colour, stripe period, phase or position, plus Gaussian noise.

    Shape:
        images: ``(batch, 3, resolution, resolution)``; labels: ``(batch,)`` int64 in ``[0, 4)``.

    Args:
        batch: Number of images (>= 1).
        resolution: Image side (>= 8).
        generator: Random generator, for reproducible batches.

    Returns:
        ``(images, labels)``.

    Raises:
        ValueError: If ``batch < 1`` or ``resolution < 8``.

    Examples:
        >>> images, labels = synthetic_patterns(2, 16, torch.Generator().manual_seed(0))
        >>> tuple(images.shape), tuple(labels.shape)
        ((2, 3, 16, 16), (2,))
    """
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    if not isinstance(resolution, int) or resolution < 8:
        raise ValueError(f"resolution must be an integer >= 8, got {resolution!r}")
    labels = torch.randint(0, len(PATTERNS), (batch,), generator=generator)
    coords = torch.arange(resolution, dtype=torch.float32)
    rows, cols = coords.view(-1, 1).expand(resolution, resolution), coords.view(1, -1).expand(resolution, resolution)
    period = torch.randint(4, 9, (batch, 1, 1), generator=generator).float()
    phase = torch.rand(batch, 1, 1, generator=generator) * period
    centre = torch.rand(batch, 2, 1, 1, generator=generator) * resolution * 0.6 + resolution * 0.2
    horizontal = (((rows + phase) // (period / 2)) % 2)
    vertical = (((cols + phase) // (period / 2)) % 2)
    checker = (horizontal + vertical) % 2
    radius2 = (rows - centre[:, 0]) ** 2 + (cols - centre[:, 1]) ** 2
    blob = torch.exp(-radius2 / (2 * (resolution / 6) ** 2))
    patterns = torch.stack([horizontal, vertical, checker, blob], dim=1)  # (batch, 4, H, W)
    mask = patterns[torch.arange(batch), labels].unsqueeze(1)  # (batch, 1, H, W)
    colour = torch.rand(batch, 3, 1, 1, generator=generator)
    noise = 0.3 * torch.randn(batch, 3, resolution, resolution, generator=generator)
    return mask * colour + noise, labels


def train_on_synthetic(
    model: nn.Module,
    steps: int = 40,
    batch: int = 32,
    resolution: int = 32,
    learning_rate: float = 3e-3,
    seed: int = 0,
    progress: bool = False,
) -> list[float]:
    """Train ``model`` with AdamW on :func:`synthetic_patterns`; return the loss of every step.

    Args:
        model: A classifier with at least 4 outputs, taking ``(batch, 3, R, R)`` images.
        steps: Optimiser steps (>= 1).
        batch: Images per step.
        resolution: Image side.
        learning_rate: AdamW learning rate.
        seed: Seeds the data generator (model initialisation is the caller's).
        progress: Show a tqdm progress bar.

    Returns:
        The cross-entropy loss of each step, in order.

    Raises:
        ValueError: If ``steps < 1``.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    model.train()
    losses = []
    for _ in tqdm(range(steps), disable=not progress, desc="training"):
        images, labels = synthetic_patterns(batch, resolution, generator)
        loss = nn.functional.cross_entropy(model(images), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses
