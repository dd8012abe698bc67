"""ThunderNet (Qin et al., ICCV 2019): a two-stage detector for mobile devices.

The pieces, in the order the image flows through them:

* **SNet backbone**: ShuffleNetV2 with every 3x3 depthwise convolution widened to 5x5
  (larger receptive field at almost no cost). SNet49 keeps a 512-channel conv5; SNet146
  and SNet535 drop conv5 and widen the early stages. ``C4`` is stage3's output (stride
  16), ``C5`` stage4's (stride 32), after conv5 for SNet49.
* **Context Enhancement Module (CEM)**: squeeze ``C4``, ``C5`` and the global average of
  ``C5`` to ``alpha * p * p = 5 * 7 * 7 = 245`` channels with two 1x1 convolutions and a
  linear layer, upsample ``C5`` 2x, broadcast the global vector, and add the three.
* **Light RPN**: a 5x5 depthwise + 1x1 (256 channels) convolution replaces the usual 3x3
  convolution with 256 channels; 5 sizes x 5 aspect ratios = 25 anchors per cell.
* **Spatial Attention Module (SAM)**:
  :math:`F^{SAM} = F^{CEM} \\cdot \\operatorname{sigmoid}(\\theta(F^{RPN}))`, ``theta`` a
  1x1 convolution + BN; the RPN's foreground knowledge re-weights the thin feature map.
* **Light R-CNN head**: position-sensitive RoI align to ``5 x 7 x 7``, one 1024-wide
  fully connected layer, then class scores and box deltas.

Training follows Faster R-CNN: anchors with IoU >= 0.7 to a ground-truth box (or the
best anchor of a box) are positive, < 0.3 negative; proposals with IoU >= 0.5 are
foreground. Losses are binary / multi-class cross-entropy and smooth L1 on box deltas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from dlnotes._checks import check_positive_int as _check_positive_int
from dlnotes.foundations.api_export import export
from dlnotes.vision.detection import batched_nms, box_iou, decode_boxes, encode_boxes, make_anchors, nms, ps_roi_align
from dlnotes.vision.lightweight import ShuffleUnit, conv_bn

__all__ = [
    "RCNN_BOX_WEIGHTS",
    "SHAPES",
    "SNET_CONFIGS",
    "SNET_REPEATS",
    "ContextEnhancementModule",
    "LightRCNNHead",
    "LightRPN",
    "SNet",
    "SNetConfig",
    "SNetUnit",
    "SpatialAttentionModule",
    "ThunderNet",
    "snet",
    "synthetic_shapes",
    "train_thundernet",
]


class SNetConfig(NamedTuple):
    """Widths of one SNet (ThunderNet Table 1) and the MFLOPs its name claims."""

    #: Output channels of conv1, stage2, stage3, stage4.
    widths: tuple[int, int, int, int]
    #: Output channels of the 1x1 conv5, or ``None`` where conv5 is removed.
    conv5: int | None
    #: The multiply-adds at 224x224 in millions that the name refers to.
    mflops: int


#: The three backbones of the paper (Table 1).
SNET_CONFIGS: dict[str, SNetConfig] = {
    "snet49": SNetConfig((24, 60, 120, 240), 512, 49),
    "snet146": SNetConfig((24, 132, 264, 528), None, 146),
    "snet535": SNetConfig((48, 248, 496, 992), None, 535),
}

#: Units per stage (stage2, stage3, stage4), as in ShuffleNetV2; the first has stride 2.
SNET_REPEATS: tuple[int, int, int] = (4, 8, 4)

#: Weights of the R-CNN head's box coding ``(w_x, w_y, w_w, w_h)`` (Faster R-CNN's).
RCNN_BOX_WEIGHTS: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)

#: Classes of :func:`synthetic_shapes`, in label order.
SHAPES: tuple[str, ...] = ("rectangle", "disc")

# Faster R-CNN's training constants (kept fixed here).
_RPN_POSITIVE_IOU, _RPN_NEGATIVE_IOU, _RPN_BATCH, _RPN_POSITIVE_FRACTION = 0.7, 0.3, 256, 0.5
_RPN_NMS_IOU = 0.7
_ROI_FOREGROUND_IOU, _ROI_POSITIVE_FRACTION, _DETECTION_NMS_IOU = 0.5, 0.25, 0.5
_MIN_BOX_SIZE = 1.0  # pixels
_STRIDE = 16  # of C4 and of the CEM output


# ---------------------------------------------------------------------------- backbone


class SNetUnit(ShuffleUnit):
    """A ShuffleNetV2 unit whose depthwise convolutions are ``kernel_size x kernel_size``.

    Identical to :class:`~dlnotes.vision.lightweight.ShuffleUnit` (channel split, the
    two branches, channel shuffle) except for the depthwise kernels: SNet uses 5x5, whose
    receptive field grows twice as fast for ``(25 - 9) / 9`` more depthwise work, a small
    part of a unit dominated by its 1x1 convolutions.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels (even).
        stride: 1 or 2.
        kernel_size: Odd depthwise kernel side (5 in SNet, 3 in ShuffleNetV2).

    Raises:
        ValueError: As :class:`~dlnotes.vision.lightweight.ShuffleUnit`, or if
            ``kernel_size`` is not a positive odd integer.

    Examples:
        >>> unit = SNetUnit(24, 60, stride=2)
        >>> unit(torch.zeros(1, 24, 16, 16)).shape, unit.branch2[1][0].kernel_size
        (torch.Size([1, 60, 8, 8]), (5, 5))
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, kernel_size: int = 5) -> None:
        super().__init__(in_channels, out_channels, stride)
        half = out_channels // 2
        # replace the 3x3 depthwise convolutions (no activation after them, as in ShuffleNetV2)
        if stride == 2:
            self.branch1[0] = conv_bn(in_channels, in_channels, kernel_size, 2, groups=in_channels, activation=None)
        self.branch2[1] = conv_bn(half, half, kernel_size, stride, groups=half, activation=None)


class SNet(nn.Module):
    """SNet49 / SNet146 / SNet535, ThunderNet's backbone (paper Table 1).

    conv1 3x3 stride 2, 3x3 stride-2 max-pool, three stages of :class:`SNetUnit` (5x5
    depthwise), then conv5 1x1 for SNet49 only. ``forward`` returns the two maps the
    detector uses; :meth:`classify` adds global pooling and a linear layer (ImageNet
    pre-training) when ``num_classes`` is given.

    Shape:
        ``(N, 3, H, W) -> (C4, C5)`` with ``C4: (N, c4_channels, H/16, W/16)`` and
        ``C5: (N, c5_channels, H/32, W/32)`` (for ``H, W`` multiples of 32).

    Args:
        name: ``"snet49"``, ``"snet146"`` or ``"snet535"``.
        num_classes: Classifier outputs for :meth:`classify`, or ``None`` for none.
        kernel_size: Depthwise kernel side: 5 in SNet; 3 gives the same network with
            ShuffleNetV2's kernels, for comparison.

    Raises:
        ValueError: If ``name`` is unknown, ``num_classes`` is not a positive integer or
            ``kernel_size`` is not a positive odd integer.

    Examples:
        >>> c4, c5 = SNet("snet49")(torch.zeros(1, 3, 64, 64))
        >>> tuple(c4.shape), tuple(c5.shape)
        ((1, 120, 4, 4), (1, 512, 2, 2))
    """

    def __init__(self, name: str = "snet146", num_classes: int | None = None, kernel_size: int = 5) -> None:
        super().__init__()
        if not isinstance(name, str) or name not in SNET_CONFIGS:
            raise ValueError(f"backbone must be one of {tuple(SNET_CONFIGS)}, got {name!r}")
        if num_classes is not None:
            _check_positive_int(num_classes, "num_classes")
        _check_positive_int(kernel_size, "kernel_size")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        config = SNET_CONFIGS[name]
        stem, *stage_widths = config.widths
        self.conv1 = conv_bn(3, stem, 3, 2)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        stages, channels = [], stem
        for repeats, width in zip(SNET_REPEATS, stage_widths, strict=True):
            units = [SNetUnit(channels, width, 2, kernel_size)]
            units += [SNetUnit(width, width, 1, kernel_size) for _ in range(repeats - 1)]
            stages.append(nn.Sequential(*units))
            channels = width
        self.stage2, self.stage3, self.stage4 = stages
        self.conv5 = conv_bn(channels, config.conv5, 1) if config.conv5 else nn.Identity()
        self.c4_channels = stage_widths[1]
        self.c5_channels = config.conv5 or channels
        self.classifier = nn.Linear(self.c5_channels, num_classes) if num_classes is not None else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c4 = self.stage3(self.stage2(self.maxpool(self.conv1(x))))  # stride 16
        c5 = self.conv5(self.stage4(c4))  # stride 32
        return c4, c5

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-style logits: global average of ``C5``, then the linear layer."""
        if self.classifier is None:
            raise ValueError("this SNet was built with num_classes=None and has no classifier")
        return self.classifier(self(x)[1].mean(dim=(2, 3)))


@export("vision.snet")
def snet(name: str = "snet146", num_classes: int | None = None, kernel_size: int = 5) -> SNet:
    """Build an SNet backbone by name (see :class:`SNet`).

    Args:
        name: One of :data:`SNET_CONFIGS`.
        num_classes: Classifier width for :meth:`SNet.classify`, or ``None``.
        kernel_size: Depthwise kernel side (5; 3 for ShuffleNetV2's).

    Returns:
        An untrained :class:`SNet`.

    Raises:
        ValueError: If ``name`` is unknown or ``kernel_size`` invalid.

    Examples:
        >>> from dlnotes.vision.flops import count_flops
        >>> round(count_flops(snet("snet535"), (1, 3, 224, 224)) / 1e6)   # name: 535
        534
    """
    return SNet(name, num_classes, kernel_size)


# ---------------------------------------------------------------------- detection part


class ContextEnhancementModule(nn.Module):
    """CEM: add local (``C4``, upsampled ``C5``) and global (pooled ``C5``) context.

    ``F = conv_4(C4) + upsample_2x(conv_5(C5)) + broadcast(fc(mean(C5)))``; both
    convolutions are 1x1 with bias.

    Shape:
        ``c4: (N, C4, H, W)``, ``c5: (N, C5, H/2, W/2)`` -> ``(N, out_channels, H, W)``.

    Args:
        c4_channels: Channels of ``C4``.
        c5_channels: Channels of ``C5``.
        out_channels: Width of the thin feature map, ``alpha * p * p`` (245).

    Raises:
        ValueError: If a channel count is not a positive integer.

    Examples:
        >>> cem = ContextEnhancementModule(264, 528)
        >>> cem(torch.zeros(1, 264, 20, 20), torch.zeros(1, 528, 10, 10)).shape
        torch.Size([1, 245, 20, 20])
    """

    def __init__(self, c4_channels: int, c5_channels: int, out_channels: int = 245) -> None:
        super().__init__()
        for name, value in (("c4_channels", c4_channels), ("c5_channels", c5_channels), ("out_channels", out_channels)):
            _check_positive_int(value, name)
        self.conv_c4 = nn.Conv2d(c4_channels, out_channels, 1)
        self.conv_c5 = nn.Conv2d(c5_channels, out_channels, 1)
        self.fc_global = nn.Linear(c5_channels, out_channels)

    def forward(self, c4: torch.Tensor, c5: torch.Tensor) -> torch.Tensor:
        if c4.dim() != 4 or c5.dim() != 4 or tuple(c5.shape[-2:]) != (c4.shape[-2] // 2, c4.shape[-1] // 2):
            raise ValueError(f"c5 must be half the size of c4, got c4 {tuple(c4.shape)} and c5 {tuple(c5.shape)}")
        local = self.conv_c4(c4)
        upsampled = F.interpolate(self.conv_c5(c5), size=c4.shape[-2:], mode="nearest")  # 2x
        global_context = self.fc_global(c5.mean(dim=(2, 3)))[:, :, None, None]  # broadcast over H, W
        return local + upsampled + global_context


class LightRPN(nn.Module):
    """ThunderNet's region proposal network: 5x5 depthwise + 1x1 instead of a 3x3 conv.

    Shape:
        ``(N, in_channels, H, W)`` -> ``(features (N, channels, H, W),
        objectness (N, A, H, W), deltas (N, 4 A, H, W))`` with ``A = num_anchors``;
        ``deltas[:, 4 a : 4 a + 4]`` belong to anchor ``a``.

    Args:
        in_channels: Channels of the CEM output.
        num_anchors: Anchors per cell ``A``.
        channels: Width of the intermediate map ``F^RPN`` (256).

    Raises:
        ValueError: If a size is not a positive integer.

    Examples:
        >>> features, objectness, deltas = LightRPN(245, 25)(torch.zeros(1, 245, 20, 20))
        >>> tuple(features.shape), tuple(objectness.shape), tuple(deltas.shape)
        ((1, 256, 20, 20), (1, 25, 20, 20), (1, 100, 20, 20))
    """

    def __init__(self, in_channels: int = 245, num_anchors: int = 25, channels: int = 256) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_anchors", num_anchors), ("channels", channels)):
            _check_positive_int(value, name)
        self.conv = nn.Sequential(
            conv_bn(in_channels, in_channels, 5, groups=in_channels, activation=None),  # 5x5 depthwise
            conv_bn(in_channels, channels, 1),  # 1x1, 256 channels
        )
        self.objectness = nn.Conv2d(channels, num_anchors, 1)
        self.deltas = nn.Conv2d(channels, 4 * num_anchors, 1)
        for layer in (self.objectness, self.deltas):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.conv(x)
        return features, self.objectness(features), self.deltas(features)


class SpatialAttentionModule(nn.Module):
    """SAM: ``F^SAM = F^CEM * sigmoid(theta(F^RPN))``, ``theta`` a 1x1 conv + BN.

    Shape:
        ``cem: (N, C, H, W)``, ``rpn: (N, R, H, W)`` -> ``(N, C, H, W)``.

    Args:
        rpn_channels: Channels ``R`` of the RPN's intermediate map (256).
        cem_channels: Channels ``C`` of the CEM output (245).

    Raises:
        ValueError: If a channel count is not a positive integer.

    Examples:
        >>> sam = SpatialAttentionModule(256, 245).eval()
        >>> sam(torch.ones(1, 245, 4, 4), torch.zeros(1, 256, 4, 4)).unique()   # sigmoid(0) = 0.5
        tensor([0.5000], grad_fn=<Unique2Backward0>)
    """

    def __init__(self, rpn_channels: int = 256, cem_channels: int = 245) -> None:
        super().__init__()
        _check_positive_int(rpn_channels, "rpn_channels")
        _check_positive_int(cem_channels, "cem_channels")
        self.theta = conv_bn(rpn_channels, cem_channels, 1, activation=None)

    def forward(self, cem: torch.Tensor, rpn: torch.Tensor) -> torch.Tensor:
        return cem * torch.sigmoid(self.theta(rpn))  # re-weight each position (and channel)


class LightRCNNHead(nn.Module):
    """PS RoI align to ``(C / p^2) x p x p``, one wide linear layer, classes and boxes.

    Shape:
        ``features: (N, C, H, W)``, ``rois: (K, 5)`` -> ``(logits (K, num_classes + 1),
        deltas (K, 4))``. Column 0 of the logits is the background; the box deltas are
        class-agnostic, coded with :data:`RCNN_BOX_WEIGHTS`.

    Args:
        in_channels: ``C``, divisible by ``roi_size ** 2`` (245 = 5 x 7 x 7).
        num_classes: Object classes (background not included).
        roi_size: Bins per side ``p``.
        hidden: Width of the fully connected layer (1024).
        spatial_scale: Feature cells per input pixel (1/16).

    Raises:
        ValueError: If a size is invalid or ``in_channels`` is not divisible by ``roi_size ** 2``.

    Examples:
        >>> head = LightRCNNHead(245, num_classes=2)
        >>> logits, deltas = head(torch.zeros(1, 245, 20, 20), torch.tensor([[0.0, 10, 10, 90, 90]]))
        >>> tuple(logits.shape), tuple(deltas.shape)
        ((1, 3), (1, 4))
    """

    def __init__(
        self, in_channels: int, num_classes: int, roi_size: int = 7, hidden: int = 1024, spatial_scale: float = 1 / 16
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("roi_size", roi_size), ("hidden", hidden)):
            _check_positive_int(value, name)
        if in_channels % (roi_size * roi_size):
            raise ValueError(f"in_channels ({in_channels}) must be divisible by roi_size**2 ({roi_size * roi_size})")
        self.roi_size, self.spatial_scale = roi_size, spatial_scale
        self.fc = nn.Linear(in_channels, hidden)  # (C / p^2) * p * p = C inputs
        self.classes = nn.Linear(hidden, num_classes + 1)
        self.boxes = nn.Linear(hidden, 4)
        nn.init.normal_(self.classes.weight, std=0.01)
        nn.init.normal_(self.boxes.weight, std=0.001)
        nn.init.zeros_(self.classes.bias)
        nn.init.zeros_(self.boxes.bias)

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = ps_roi_align(features, rois, self.roi_size, self.spatial_scale)  # (K, C/p^2, p, p)
        hidden = F.relu(self.fc(pooled.flatten(1)))
        return self.classes(hidden), self.boxes(hidden)


# ----------------------------------------------------------------------------- detector


@export("vision.ThunderNet")
class ThunderNet(nn.Module):
    """ThunderNet: SNet -> CEM -> light RPN -> SAM -> PS RoI align -> light R-CNN head.

    ``model(images)`` in eval mode returns detections; ``model(images, targets)`` in
    train mode returns the four losses. Labels are object classes ``0 ... num_classes -
    1`` (the background is internal).

    Shape:
        ``images: (N, 3, H, W)`` float, ``H`` and ``W`` multiples of 32 (320 x 320 in the
        paper). ``targets``: one dict per image with ``"boxes": (M, 4)`` float pixels
        ``(x1, y1, x2, y2)`` and ``"labels": (M,)`` int64; ``M = 0`` is allowed.

    Args:
        backbone: ``"snet49"``, ``"snet146"`` or ``"snet535"``.
        num_classes: Object classes, >= 1.
        anchor_sizes: Anchor sides in pixels (paper: 32, 64, 128, 256, 512).
        aspect_ratios: Anchor height / width (paper: 1:2, 3:4, 1:1, 4:3, 2:1).
        cem_channels: Width of the thin feature map (paper: 245 = 5 x 7 x 7).
        rpn_channels: Width of the RPN's intermediate map (256).
        roi_size: PS RoI align bins per side (7).
        head_hidden: Width of the R-CNN fully connected layer (1024).
        pre_nms_top_n: Best-scoring anchors decoded per image before the RPN's NMS,
            ``(training, inference)``.
        post_nms_top_n: Proposals kept after the RPN's NMS (IoU 0.7), ``(training, inference)``.
        roi_batch_size: RoIs sampled per image for the R-CNN loss (25 % foreground).
        score_threshold: Minimum class probability of a detection.
        detections_per_image: Most detections returned per image.

    Raises:
        ValueError: If the backbone is unknown or a size is invalid.

    Examples:
        >>> model = ThunderNet(backbone="snet49", num_classes=2).eval()
        >>> out = model(torch.rand(1, 3, 320, 320))
        >>> sorted(out[0]), out[0]["boxes"].shape[1]
        (['boxes', 'labels', 'scores'], 4)
    """

    def __init__(
        self,
        backbone: str = "snet146",
        num_classes: int = 80,
        anchor_sizes: Sequence[float] = (32, 64, 128, 256, 512),
        aspect_ratios: Sequence[float] = (1 / 2, 3 / 4, 1.0, 4 / 3, 2.0),
        cem_channels: int = 245,
        rpn_channels: int = 256,
        roi_size: int = 7,
        head_hidden: int = 1024,
        pre_nms_top_n: tuple[int, int] = (2000, 1000),
        post_nms_top_n: tuple[int, int] = (1000, 200),
        roi_batch_size: int = 512,
        score_threshold: float = 0.05,
        detections_per_image: int = 100,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, str) or backbone not in SNET_CONFIGS:
            raise ValueError(f"backbone must be one of {tuple(SNET_CONFIGS)}, got {backbone!r}")
        _check_positive_int(num_classes, "num_classes")
        for name, values in (("anchor_sizes", anchor_sizes), ("aspect_ratios", aspect_ratios)):
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
                raise ValueError(f"{name} must be a non-empty sequence of positive numbers, got {values!r}")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values):
                raise ValueError(f"{name} must be a non-empty sequence of positive numbers, got {values!r}")
        for name, pair in (("pre_nms_top_n", pre_nms_top_n), ("post_nms_top_n", post_nms_top_n)):
            if not isinstance(pair, Sequence) or len(pair) != 2:
                raise ValueError(f"{name} must be a pair (training, inference), got {pair!r}")
            for value in pair:
                _check_positive_int(value, name)
        for name, value in (("roi_batch_size", roi_batch_size), ("detections_per_image", detections_per_image)):
            _check_positive_int(value, name)
        if not 0.0 <= score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in [0, 1), got {score_threshold!r}")
        self.num_classes = num_classes
        self.anchor_sizes, self.aspect_ratios = tuple(anchor_sizes), tuple(aspect_ratios)
        self.pre_nms_top_n, self.post_nms_top_n = tuple(pre_nms_top_n), tuple(post_nms_top_n)
        self.roi_batch_size = roi_batch_size
        self.score_threshold, self.detections_per_image = score_threshold, detections_per_image
        num_anchors = len(self.anchor_sizes) * len(self.aspect_ratios)
        self.backbone = SNet(backbone)
        self.cem = ContextEnhancementModule(self.backbone.c4_channels, self.backbone.c5_channels, cem_channels)
        self.rpn = LightRPN(cem_channels, num_anchors, rpn_channels)
        self.sam = SpatialAttentionModule(rpn_channels, cem_channels)
        self.head = LightRCNNHead(cem_channels, num_classes, roi_size, head_hidden, 1 / _STRIDE)

    def forward(
        self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None
    ) -> list[dict[str, torch.Tensor]] | dict[str, torch.Tensor]:
        """Detections (eval mode) or losses (train mode, ``targets`` required).

        In eval mode ``targets`` is not used.

        Returns:
            Eval mode: one dict per image with ``"boxes" (K, 4)``, ``"scores" (K,)`` and
            ``"labels" (K,)``, by decreasing score. Train mode: a dict with the scalar
            losses ``"rpn_objectness"``, ``"rpn_box"``, ``"rcnn_class"`` and ``"rcnn_box"``.

        Raises:
            TypeError: If ``images`` is not a float tensor or ``targets`` not a list of dicts.
            ValueError: If a shape is wrong, or targets are missing in train mode or invalid.
        """
        _check_images(images)
        if self.training:
            targets = _check_targets(targets, images, self.num_classes)
        height, width = images.shape[-2:]
        c4, c5 = self.backbone(images)
        cem = self.cem(c4, c5)
        rpn_features, objectness, deltas = self.rpn(cem)
        sam = self.sam(cem, rpn_features)
        anchors = make_anchors(tuple(cem.shape[-2:]), _STRIDE, self.anchor_sizes, self.aspect_ratios).to(images.device)
        batch = images.shape[0]
        objectness, deltas = _flatten_rpn_outputs(objectness, deltas)  # in the order of `anchors`
        proposals = [
            self._propose(anchors, objectness[i].detach(), deltas[i].detach(), (height, width)) for i in range(batch)
        ]
        if self.training:
            assert targets is not None
            rpn_losses = self._rpn_loss(anchors, objectness, deltas, targets)
            rois, class_targets, box_targets = self._sample_rois(proposals, targets)
            logits, box_deltas = self.head(sam, rois)
            return {**rpn_losses, **_rcnn_loss(logits, box_deltas, class_targets, box_targets)}
        rois = _to_rois(proposals)
        logits, box_deltas = self.head(sam, rois)
        return self._detect(rois, logits, box_deltas, (height, width), batch)

    # -- region proposals

    def _propose(
        self, anchors: torch.Tensor, objectness: torch.Tensor, deltas: torch.Tensor, image_size: tuple[int, int]
    ) -> torch.Tensor:
        """Decode, clip, drop tiny boxes, keep the top scores, NMS at 0.7, keep the best few."""
        stage = 0 if self.training else 1
        top = objectness.topk(min(self.pre_nms_top_n[stage], len(objectness))).indices
        boxes = _clip(decode_boxes(anchors[top], deltas[top]), image_size)
        scores = objectness[top]
        large = ((boxes[:, 2] - boxes[:, 0]) >= _MIN_BOX_SIZE) & ((boxes[:, 3] - boxes[:, 1]) >= _MIN_BOX_SIZE)
        boxes, scores = boxes[large], scores[large]
        keep = nms(boxes, scores, _RPN_NMS_IOU)[: self.post_nms_top_n[stage]]
        return boxes[keep]

    def _rpn_loss(
        self, anchors: torch.Tensor, objectness: torch.Tensor, deltas: torch.Tensor, targets: list[dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """Binary cross-entropy on 256 sampled anchors per image, smooth L1 on the positives."""
        chosen_logits, chosen_labels, positive_deltas, positive_targets = [], [], [], []
        for i, target in enumerate(targets):
            matched, labels = _match(anchors, target["boxes"], _RPN_POSITIVE_IOU, _RPN_NEGATIVE_IOU, best_match=True)
            positive, negative = _sample(labels, _RPN_BATCH, _RPN_POSITIVE_FRACTION)
            chosen = torch.cat([positive, negative])
            chosen_logits.append(objectness[i, chosen])
            chosen_labels.append((labels[chosen] == 1).to(objectness.dtype))
            positive_deltas.append(deltas[i, positive])
            positive_targets.append(encode_boxes(anchors[positive], target["boxes"][matched[positive]]))
        logits, labels = torch.cat(chosen_logits), torch.cat(chosen_labels)
        box_loss = F.smooth_l1_loss(torch.cat(positive_deltas), torch.cat(positive_targets), beta=1 / 9, reduction="sum")
        return {
            "rpn_objectness": F.binary_cross_entropy_with_logits(logits, labels),
            "rpn_box": box_loss / max(1, len(labels)),
        }

    # -- R-CNN

    def _sample_rois(
        self, proposals: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Add the ground truth to the proposals, then sample foreground (IoU >= 0.5) and background."""
        sampled, class_targets, box_targets = [], [], []
        for boxes, target in zip(proposals, targets, strict=True):
            boxes = torch.cat([boxes, target["boxes"]])  # the ground truth is always a proposal
            matched, labels = _match(boxes, target["boxes"], _ROI_FOREGROUND_IOU, _ROI_FOREGROUND_IOU, best_match=False)
            positive, negative = _sample(labels, self.roi_batch_size, _ROI_POSITIVE_FRACTION)
            chosen = torch.cat([positive, negative])
            classes = torch.zeros(len(chosen), dtype=torch.long, device=boxes.device)
            classes[: len(positive)] = target["labels"][matched[positive]] + 1  # 0 is the background
            gt = target["boxes"][matched[chosen].clamp(min=0)] if len(target["boxes"]) else boxes[chosen]
            sampled.append(boxes[chosen])
            class_targets.append(classes)
            box_targets.append(encode_boxes(boxes[chosen], gt, RCNN_BOX_WEIGHTS))
        return _to_rois(sampled), torch.cat(class_targets), torch.cat(box_targets)

    def _detect(
        self,
        rois: torch.Tensor,
        logits: torch.Tensor,
        box_deltas: torch.Tensor,
        image_size: tuple[int, int],
        batch: int,
    ) -> list[dict[str, torch.Tensor]]:
        """Per image: class probabilities, decoded boxes, threshold, per-class NMS, top-k."""
        probabilities = logits.softmax(dim=1)[:, 1:]  # (K, num_classes), background dropped
        boxes = _clip(decode_boxes(rois[:, 1:], box_deltas, RCNN_BOX_WEIGHTS), image_size)
        results = []
        for image in range(batch):
            rows = rois[:, 0] == image
            scores, image_boxes = probabilities[rows], boxes[rows]
            roi_index, labels = (scores > self.score_threshold).nonzero(as_tuple=True)
            candidate_boxes, candidate_scores = image_boxes[roi_index], scores[roi_index, labels]
            keep = batched_nms(candidate_boxes, candidate_scores, labels, _DETECTION_NMS_IOU)[: self.detections_per_image]
            results.append({"boxes": candidate_boxes[keep], "scores": candidate_scores[keep], "labels": labels[keep]})
        return results


# ------------------------------------------------------------------------ synthetic data


@export("vision.synthetic_shapes")
def synthetic_shapes(
    batch: int,
    image_size: int = 320,
    max_objects: int = 3,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """A toy detection set: coloured rectangles and discs on Gaussian noise.

    Each image holds 1 to ``max_objects`` non-overlapping shapes of side 15-45 % of the
    image and a random colour; a disc's box is its bounding square. Label 0 is a
    rectangle, 1 a disc (:data:`SHAPES`).

    Shape:
        images ``(batch, 3, image_size, image_size)`` in about ``[0, 1]``; one target
        dict per image with ``"boxes" (M, 4)`` and ``"labels" (M,)``.

    Args:
        batch: Number of images, >= 1.
        image_size: Side in pixels, >= 32.
        max_objects: Most shapes per image, >= 1.
        generator: Random generator for reproducible images.

    Returns:
        ``(images, targets)``.

    Raises:
        ValueError: If an argument is out of range.

    Examples:
        >>> images, targets = synthetic_shapes(2, 64, generator=torch.Generator().manual_seed(0))
        >>> tuple(images.shape), sorted(targets[0])
        ((2, 3, 64, 64), ['boxes', 'labels'])
    """
    _check_positive_int(batch, "batch")
    _check_positive_int(max_objects, "max_objects")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"image_size must be an integer >= 32, got {image_size!r}")
    images = 0.5 + 0.15 * torch.randn(batch, 3, image_size, image_size, generator=generator)
    coords = torch.arange(image_size, dtype=torch.float32) + 0.5  # pixel centres
    targets = []
    for image in images:
        count = int(torch.randint(1, max_objects + 1, (1,), generator=generator))
        boxes, labels = [], []
        for _ in range(10 * count):  # rejection sampling of non-overlapping boxes
            if len(boxes) == count:
                break
            label = int(torch.randint(0, len(SHAPES), (1,), generator=generator))
            sides = (0.15 + 0.3 * torch.rand(2, generator=generator)) * image_size
            if label == 1:
                sides[1] = sides[0]  # a disc fits a square
            corner = torch.rand(2, generator=generator) * (image_size - sides)
            box = torch.cat([corner, corner + sides])
            if boxes and box_iou(box[None], torch.stack(boxes)).max() > 0:
                continue
            colour = torch.rand(3, generator=generator)
            x_in = (coords >= box[0]) & (coords < box[2])
            y_in = (coords >= box[1]) & (coords < box[3])
            if label == 0:
                mask = y_in[:, None] & x_in[None, :]
            else:
                centre, radius = (box[:2] + box[2:]) / 2, sides[0] / 2
                mask = (coords[:, None] - centre[1]) ** 2 + (coords[None, :] - centre[0]) ** 2 <= radius**2
            image[:, mask] = colour[:, None] + 0.05 * torch.randn(3, int(mask.sum()), generator=generator)
            boxes.append(box)
            labels.append(label)
        targets.append({"boxes": torch.stack(boxes), "labels": torch.tensor(labels, dtype=torch.long)})
    return images, targets


@export("vision.train_thundernet")
def train_thundernet(
    model: ThunderNet,
    steps: int = 60,
    batch: int = 4,
    image_size: int = 320,
    learning_rate: float = 1e-3,
    seed: int = 0,
    progress: bool = False,
) -> list[float]:
    """Train ``model`` with AdamW and a cosine learning-rate decay on fresh :func:`synthetic_shapes` batches.

    Args:
        model: A :class:`ThunderNet` with at least 2 classes.
        steps: Optimiser steps, >= 1.
        batch: Images per step, >= 1.
        image_size: Image side, a multiple of 32.
        learning_rate: Initial AdamW learning rate, decayed to 0 along a cosine.
        seed: Seeds the data and the anchor / RoI sampling (the global RNG is restored
            afterwards); the model's initialisation is the caller's.
        progress: Show a tqdm progress bar.

    Returns:
        The total loss (sum of the four losses) of every step.

    Raises:
        TypeError: If ``model`` is not a :class:`ThunderNet`.
        ValueError: If ``steps`` or ``batch`` is not positive, or the model has < 2 classes.
    """
    _check_positive_int(steps, "steps")
    _check_positive_int(batch, "batch")
    if not isinstance(model, ThunderNet):
        raise TypeError(f"model must be a ThunderNet, got {type(model).__name__}")
    if model.num_classes < len(SHAPES):
        raise ValueError(f"model must have num_classes >= {len(SHAPES)} (rectangle, disc), got {model.num_classes}")
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    model.train()
    losses = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the samplers inside the model use the global generator
        for _ in tqdm(range(steps), disable=not progress, desc="training"):
            images, targets = synthetic_shapes(batch, image_size, generator=generator)
            loss = sum(model(images, targets).values())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
    return losses


# ------------------------------------------------------------------------------ helpers


def _match(
    boxes: torch.Tensor, gt_boxes: torch.Tensor, positive_iou: float, negative_iou: float, best_match: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Match boxes to ground truth by IoU.

    Returns:
        ``matched (B,)``: index of the best ground-truth box (-1 without any), and
        ``labels (B,)``: 1 positive (IoU >= positive_iou, or the best box of some ground
        truth when ``best_match``), 0 negative (IoU < negative_iou), -1 ignored.
    """
    labels = torch.zeros(len(boxes), dtype=torch.long, device=boxes.device)
    if len(gt_boxes) == 0:
        return torch.full_like(labels, -1), labels
    iou = box_iou(gt_boxes, boxes)  # (M, B)
    best_iou, matched = iou.max(dim=0)
    labels[best_iou >= negative_iou] = -1
    labels[best_iou >= positive_iou] = 1
    if best_match:  # every ground-truth box gets its best anchors, however low the IoU
        best_for_gt = iou.max(dim=1, keepdim=True).values
        gt_index, box_index = ((iou == best_for_gt) & (best_for_gt > 0)).nonzero(as_tuple=True)
        labels[box_index] = 1
        matched[box_index] = gt_index
    return matched, labels


def _sample(labels: torch.Tensor, batch_size: int, positive_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Random positives (at most ``positive_fraction`` of the batch), negatives fill the rest."""
    positive = (labels == 1).nonzero().flatten()
    negative = (labels == 0).nonzero().flatten()
    num_positive = min(len(positive), int(batch_size * positive_fraction))
    num_negative = min(len(negative), batch_size - num_positive)
    positive = positive[torch.randperm(len(positive), device=labels.device)[:num_positive]]
    negative = negative[torch.randperm(len(negative), device=labels.device)[:num_negative]]
    return positive, negative


def _rcnn_loss(
    logits: torch.Tensor, box_deltas: torch.Tensor, class_targets: torch.Tensor, box_targets: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Cross-entropy over all sampled RoIs; smooth L1 on the foreground ones."""
    foreground = class_targets > 0
    box_loss = F.smooth_l1_loss(box_deltas[foreground], box_targets[foreground], beta=1.0, reduction="sum")
    return {
        "rcnn_class": F.cross_entropy(logits, class_targets),
        "rcnn_box": box_loss / max(1, len(class_targets)),
    }


def _flatten_rpn_outputs(objectness: torch.Tensor, deltas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, A, H, W)`` and ``(N, 4 A, H, W)`` -> ``(N, H W A)`` and ``(N, H W A, 4)``, rows in :func:`make_anchors` order."""
    batch, num_anchors, height, width = objectness.shape
    objectness = objectness.permute(0, 2, 3, 1).reshape(batch, -1)
    deltas = deltas.view(batch, num_anchors, 4, height, width).permute(0, 3, 4, 1, 2).reshape(batch, -1, 4)
    return objectness, deltas


def _to_rois(boxes: list[torch.Tensor]) -> torch.Tensor:
    """Stack per-image boxes into ``(K, 5)`` rows ``(image index, x1, y1, x2, y2)``."""
    rows = [torch.cat([torch.full((len(b), 1), float(i), dtype=b.dtype, device=b.device), b], dim=1) for i, b in enumerate(boxes)]
    return torch.cat(rows)


def _clip(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    height, width = image_size
    return torch.stack(
        [boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height), boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)],
        dim=1,
    )


def _check_images(images: object) -> None:
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        kind = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise TypeError(f"images must be a floating-point tensor, got {kind}")
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[0] < 1:
        raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
    height, width = images.shape[-2:]
    if height % 32 or width % 32:
        raise ValueError(f"images must have H and W divisible by 32 (e.g. 320 x 320), got {height} x {width}")


def _check_targets(
    targets: object, images: torch.Tensor, num_classes: int
) -> list[dict[str, torch.Tensor]]:
    if targets is None:
        raise ValueError("targets are required in training mode (call model.eval() for detections)")
    if not isinstance(targets, (list, tuple)) or not all(isinstance(t, dict) for t in targets):
        raise TypeError(f"targets must be a list of dicts with 'boxes' and 'labels', got {type(targets).__name__}")
    if len(targets) != images.shape[0]:
        raise ValueError(f"targets must have one dict per image ({images.shape[0]}), got {len(targets)}")
    height, width = images.shape[-2:]
    checked = []
    for i, target in enumerate(targets):
        boxes, labels = target.get("boxes"), target.get("labels")
        if not isinstance(boxes, torch.Tensor) or not isinstance(labels, torch.Tensor):
            raise TypeError(f"targets[{i}] must hold tensors 'boxes' and 'labels'")
        if boxes.dim() != 2 or boxes.shape[1] != 4 or labels.shape != (boxes.shape[0],):
            raise ValueError(
                f"targets[{i}]['boxes'] must be (M, 4) and ['labels'] (M,), got {tuple(boxes.shape)} and {tuple(labels.shape)}"
            )
        if labels.dtype != torch.long:
            raise TypeError(f"targets[{i}]['labels'] must be int64, got {labels.dtype}")
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"targets[{i}]['labels'] must be in [0, {num_classes}), got {labels.tolist()}")
        boxes = boxes.to(images.dtype)
        if len(boxes) and not (
            torch.isfinite(boxes).all() and (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        ):
            raise ValueError(f"targets[{i}]['boxes'] must be finite (x1, y1, x2, y2) with x2 > x1 and y2 > y1")
        if len(boxes) and (boxes[:, :2].min() < 0 or boxes[:, 2].max() > width or boxes[:, 3].max() > height):
            raise ValueError(f"targets[{i}]['boxes'] must lie inside the {height} x {width} image")
        checked.append({"boxes": boxes, "labels": labels})
    return checked
