"""Box operations of a two-stage detector: IoU, anchors, box coding, NMS, RoI align.

Boxes are ``(x1, y1, x2, y2)`` in pixels, with ``x2 > x1`` and ``y2 > y1``.

* **IoU** of boxes :math:`A` and :math:`B` is :math:`|A \\cap B| / |A \\cup B|`.
* **Anchors** are boxes of fixed sizes and aspect ratios centred on every cell of a
  feature map with stride :math:`s`: cell :math:`(i, j)` has centre
  :math:`((j + \\tfrac12) s, (i + \\tfrac12) s)`.
* **Box coding** (Faster R-CNN): a box :math:`(x, y, w, h)` (centre and size) relative to
  a reference :math:`(x_a, y_a, w_a, h_a)` is

  .. math::

      t_x = \\frac{x - x_a}{w_a},\\quad t_y = \\frac{y - y_a}{h_a},\\quad
      t_w = \\log\\frac{w}{w_a},\\quad t_h = \\log\\frac{h}{h_a},

  each multiplied by a weight (R-CNN heads use ``(10, 10, 5, 5)``).
* **Non-maximum suppression** keeps the highest-scoring box, drops every box whose IoU
  with it exceeds a threshold, and repeats on what is left.
* **Average precision** (PASCAL VOC) summarises a detector's ranked detections of one
  class: the area under the precision-recall curve after making precision monotone.
* **RoI align** (Mask R-CNN) splits a region into ``p x p`` bins and averages bilinear
  samples on a regular grid in each bin, without rounding coordinates. The
  *position-sensitive* variant (R-FCN, Light-Head R-CNN) reads bin ``(i, j)`` from its own
  group of channels.

The sampling grid of RoI align is a product of ``y`` and ``x`` coordinates, so bilinear
interpolation factorises: with :math:`W_y` (samples x ``H``) and :math:`W_x`
(samples x ``W``) the interpolation matrices, the samples of one channel are
:math:`W_y F W_x^\\top`. That is how :func:`roi_align` computes them, with gradients
flowing to the features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from dlnotes._checks import check_positive_ints
from dlnotes.foundations.api_export import export

__all__ = [
    "BOX_CODING_CLAMP",
    "average_precision",
    "box_area",
    "box_iou",
    "decode_boxes",
    "encode_boxes",
    "make_anchors",
    "nms",
    "batched_nms",
    "ps_roi_align",
    "roi_align",
]

#: Largest ``t_w``, ``t_h`` accepted by :func:`decode_boxes` (a box at most 62.5 times its
#: reference), so that an untrained regressor cannot overflow ``exp``.
BOX_CODING_CLAMP: float = math.log(1000.0 / 16)


@export("vision.box_area")
def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area ``(x2 - x1) * (y2 - y1)`` of each box.

    Shape:
        ``boxes: (N, 4)`` -> ``(N,)``.

    Args:
        boxes: Boxes ``(x1, y1, x2, y2)``.

    Returns:
        The areas.

    Raises:
        TypeError: If ``boxes`` is not a tensor.
        ValueError: If ``boxes`` is not ``(N, 4)``.

    Examples:
        >>> box_area(torch.tensor([[0.0, 0.0, 2.0, 3.0]]))
        tensor([6.])
    """
    _check_boxes(boxes, "boxes")
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


@export("vision.box_iou")
def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every pair of boxes.

    Shape:
        ``boxes1: (N, 4)``, ``boxes2: (M, 4)`` -> ``(N, M)``.

    Args:
        boxes1: Boxes ``(x1, y1, x2, y2)``.
        boxes2: Boxes ``(x1, y1, x2, y2)``.

    Returns:
        ``iou[i, j] = area(b1_i ∩ b2_j) / area(b1_i ∪ b2_j)``; 0 for disjoint boxes.

    Raises:
        TypeError: If an argument is not a tensor.
        ValueError: If an argument is not ``(N, 4)``.

    Examples:
        >>> box_iou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 0, 3, 2]]))  # 2 / 6
        tensor([[0.3333]])
    """
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    area1, area2 = box_area(boxes1), box_area(boxes2)
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    width_height = (bottom_right - top_left).clamp(min=0)  # empty intersection -> 0
    intersection = width_height[..., 0] * width_height[..., 1]
    union = area1[:, None] + area2[None, :] - intersection
    return intersection / union.clamp(min=torch.finfo(union.dtype).tiny)


@export("vision.make_anchors")
def make_anchors(
    feature_size: tuple[int, int],
    stride: int,
    sizes: Sequence[float],
    aspect_ratios: Sequence[float],
) -> torch.Tensor:
    """Anchor boxes centred on every cell of a feature map.

    An anchor of size ``s`` and aspect ratio ``r = h / w`` has area ``s^2``:
    ``w = s / sqrt(r)``, ``h = s * sqrt(r)``. Cell ``(i, j)`` has centre
    ``((j + 0.5) * stride, (i + 0.5) * stride)``.

    Shape:
        Returns ``(H * W * A, 4)`` with ``A = len(sizes) * len(aspect_ratios)``, ordered by
        row ``i``, then column ``j``, then anchor (sizes outer, ratios inner): the order of
        a ``(N, H, W, A)`` tensor flattened, i.e. ``(N, A, H, W)`` permuted to ``(0, 2, 3, 1)``.

    Args:
        feature_size: ``(H, W)`` of the feature map.
        stride: Pixels per feature-map cell.
        sizes: Anchor sides (square root of the area), in pixels, each > 0.
        aspect_ratios: Height / width ratios, each > 0.

    Returns:
        Anchors ``(x1, y1, x2, y2)``, float32.

    Raises:
        ValueError: If a size, the stride or a ratio is not positive, or a list is empty.

    Examples:
        >>> make_anchors((1, 1), 16, sizes=[8], aspect_ratios=[1.0])
        tensor([[ 4.,  4., 12., 12.]])
    """
    if not isinstance(feature_size, Sequence) or len(feature_size) != 2:
        raise ValueError(f"feature_size must be a pair (H, W), got {feature_size!r}")
    for value in feature_size:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"feature_size must hold positive integers, got {feature_size!r}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    for name, values in (("sizes", sizes), ("aspect_ratios", aspect_ratios)):
        if len(values) == 0 or not all(float(v) > 0 for v in values):
            raise ValueError(f"{name} must be a non-empty list of positive numbers, got {values!r}")
    size = torch.tensor([float(s) for s in sizes]).view(-1, 1)  # (S, 1)
    ratio = torch.tensor([float(r) for r in aspect_ratios]).view(1, -1)  # (1, R)
    half_w = (size / ratio.sqrt() / 2).flatten()  # w = s / sqrt(r), sizes outer
    half_h = (size * ratio.sqrt() / 2).flatten()  # h = s * sqrt(r)
    base = torch.stack([-half_w, -half_h, half_w, half_h], dim=1)  # (A, 4) around (0, 0)
    height, width = feature_size
    centres_y = (torch.arange(height, dtype=torch.float32) + 0.5) * stride
    centres_x = (torch.arange(width, dtype=torch.float32) + 0.5) * stride
    cy, cx = torch.meshgrid(centres_y, centres_x, indexing="ij")
    shifts = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)  # (H*W, 1, 4)
    return (shifts + base).reshape(-1, 4)


@export("vision.encode_boxes")
def encode_boxes(
    reference: torch.Tensor, boxes: torch.Tensor, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)
) -> torch.Tensor:
    """Regression targets ``(t_x, t_y, t_w, t_h)`` of ``boxes`` relative to ``reference``.

    ``t_x = w_x (x - x_a) / w_a``, ``t_y = w_y (y - y_a) / h_a``,
    ``t_w = w_w log(w / w_a)``, ``t_h = w_h log(h / h_a)`` with centres ``x, y`` and sizes
    ``w, h``; :func:`decode_boxes` inverts it.

    Shape:
        ``reference, boxes: (N, 4)`` -> ``(N, 4)``.

    Args:
        reference: Anchors or proposals, with positive widths and heights.
        boxes: The boxes to encode (ground truth), positive widths and heights.
        weights: ``(w_x, w_y, w_w, w_h)``.

    Returns:
        The deltas.

    Raises:
        ValueError: If the shapes differ or are not ``(N, 4)``.

    Examples:
        >>> encode_boxes(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([[5.0, 0, 15, 20]]))
        tensor([[0.5000, 0.5000, 0.0000, 0.6931]])
    """
    wx, wy, ww, wh = _check_coding(reference, boxes, "boxes", weights)
    ref_x, ref_y, ref_w, ref_h = _centre_size(reference)
    x, y, w, h = _centre_size(boxes)
    return torch.stack(
        [wx * (x - ref_x) / ref_w, wy * (y - ref_y) / ref_h, ww * torch.log(w / ref_w), wh * torch.log(h / ref_h)],
        dim=1,
    )


@export("vision.decode_boxes")
def decode_boxes(
    reference: torch.Tensor, deltas: torch.Tensor, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)
) -> torch.Tensor:
    """Apply regression deltas to reference boxes (the inverse of :func:`encode_boxes`).

    ``t_w`` and ``t_h`` are clamped at :data:`BOX_CODING_CLAMP` before ``exp``.

    Shape:
        ``reference, deltas: (N, 4)`` -> ``(N, 4)``.

    Args:
        reference: Anchors or proposals.
        deltas: ``(t_x, t_y, t_w, t_h)`` per box.
        weights: The weights used when encoding.

    Returns:
        Boxes ``(x1, y1, x2, y2)``.

    Raises:
        ValueError: If the shapes differ or are not ``(N, 4)``.

    Examples:
        >>> decode_boxes(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([[0.5, 0.0, 0.0, 0.0]]))
        tensor([[ 5.,  0., 15., 10.]])
    """
    wx, wy, ww, wh = _check_coding(reference, deltas, "deltas", weights)
    ref_x, ref_y, ref_w, ref_h = _centre_size(reference)
    x = ref_x + deltas[:, 0] / wx * ref_w  # invert t_x = (x - x_a) / w_a
    y = ref_y + deltas[:, 1] / wy * ref_h
    w = ref_w * torch.exp((deltas[:, 2] / ww).clamp(max=BOX_CODING_CLAMP))  # invert t_w = log(w / w_a)
    h = ref_h * torch.exp((deltas[:, 3] / wh).clamp(max=BOX_CODING_CLAMP))
    return torch.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], dim=1)


@export("vision.nms")
def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression.

    Visit boxes by decreasing score; keep a box unless an already kept box overlaps it
    with IoU ``> iou_threshold``. Ties in score keep the lower index first.

    Shape:
        ``boxes: (N, 4)``, ``scores: (N,)`` -> indices ``(K,)``, int64.

    Args:
        boxes: Boxes ``(x1, y1, x2, y2)``.
        scores: One score per box.
        iou_threshold: Overlap above which the lower-scoring box is dropped, in ``[0, 1]``.

    Returns:
        Indices of the kept boxes, by decreasing score.

    Raises:
        ValueError: If the shapes do not match or ``iou_threshold`` is outside ``[0, 1]``.

    Examples:
        >>> boxes = torch.tensor([[0.0, 0, 10, 10], [1.0, 1, 11, 11], [20.0, 20, 30, 30]])
        >>> nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
        tensor([0, 2])
    """
    _check_boxes(boxes, "boxes")
    if scores.dim() != 1 or scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"scores must have shape ({boxes.shape[0]},), got {tuple(scores.shape)}")
    if not 0.0 <= float(iou_threshold) <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold!r}")
    order = torch.sort(scores, descending=True, stable=True).indices
    overlaps = box_iou(boxes[order], boxes[order]) > iou_threshold  # (N, N), in visiting order
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlaps[i]  # drop everything this kept box overlaps too much
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


@export("vision.batched_nms")
def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Non-maximum suppression run separately for each label.

    Boxes of different labels never suppress each other: each label's boxes are shifted
    by a different offset larger than any coordinate, then one :func:`nms` runs.

    Shape:
        ``boxes: (N, 4)``, ``scores: (N,)``, ``labels: (N,)`` -> indices ``(K,)``.

    Args:
        boxes: Boxes ``(x1, y1, x2, y2)``.
        scores: One score per box.
        labels: Integer class of each box.
        iou_threshold: As in :func:`nms`.

    Returns:
        Indices of the kept boxes, by decreasing score.

    Raises:
        ValueError: As :func:`nms`, or if ``labels`` does not have shape ``(N,)``.

    Examples:
        >>> boxes = torch.tensor([[0.0, 0, 10, 10], [1.0, 1, 11, 11]])
        >>> batched_nms(boxes, torch.tensor([0.9, 0.8]), torch.tensor([0, 1]), 0.5)
        tensor([0, 1])
    """
    _check_boxes(boxes, "boxes")
    if labels.dim() != 1 or labels.shape[0] != boxes.shape[0]:
        raise ValueError(f"labels must have shape ({boxes.shape[0]},), got {tuple(labels.shape)}")
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    offsets = labels.to(boxes.dtype) * (boxes.max() - boxes.min() + 1)  # disjoint per label
    return nms(boxes + offsets[:, None], scores, iou_threshold)


@export("vision.roi_align")
def roi_align(
    features: torch.Tensor,
    rois: torch.Tensor,
    output_size: int,
    spatial_scale: float,
    sampling_ratio: int = 2,
) -> torch.Tensor:
    """RoI align (He et al., 2017), with the half-pixel offset (``aligned=True``).

    The region ``rois[k] * spatial_scale - 0.5`` is cut into ``output_size x output_size``
    bins; each bin averages ``sampling_ratio x sampling_ratio`` bilinear samples at the
    centres of a regular sub-grid. A sample further than one pixel outside the map is
    0; one within a pixel of the border reads the border value. These are the semantics
    of ``torchvision.ops.roi_align(..., aligned=True)`` with a fixed sampling ratio.

    Shape:
        ``features: (N, C, H, W)``, ``rois: (K, 5)`` rows ``(batch_index, x1, y1, x2, y2)``
        in input pixels -> ``(K, C, output_size, output_size)``.

    Args:
        features: Feature maps.
        rois: Regions with the index of their image.
        output_size: Bins per side ``p``.
        spatial_scale: Feature-map cells per input pixel (``1 / stride``).
        sampling_ratio: Samples per bin side, >= 1.

    Returns:
        Pooled features; differentiable with respect to ``features``.

    Raises:
        ValueError: If a shape, size or index is invalid.

    Examples:
        >>> features = torch.arange(16.0).view(1, 1, 4, 4)
        >>> roi_align(features, torch.tensor([[0.0, 0, 0, 4, 4]]), 2, 1.0)[0, 0]
        tensor([[ 2.5000,  4.5000],
                [10.5000, 12.5000]])
    """
    weights_y, weights_x = _check_roi_inputs(features, rois, output_size, spatial_scale, sampling_ratio)
    out = features.new_zeros(rois.shape[0], features.shape[1], output_size, output_size)
    batch_index = rois[:, 0].long()
    for image in batch_index.unique().tolist():
        rows = (batch_index == image).nonzero().flatten()
        wy, wx = weights_y[rows], weights_x[rows]  # (k, p, s, H), (k, p, s, W)
        along_y = torch.einsum("kish,chw->kcisw", wy, features[image])  # interpolate rows
        samples = torch.einsum("kcisw,kjtw->kcijst", along_y, wx)  # then columns
        out[rows] = samples.mean(dim=(-2, -1))  # average the s x s samples of each bin
    return out


@export("vision.ps_roi_align")
def ps_roi_align(
    features: torch.Tensor,
    rois: torch.Tensor,
    output_size: int,
    spatial_scale: float,
    sampling_ratio: int = 2,
) -> torch.Tensor:
    """Position-sensitive RoI align (R-FCN's pooling with RoI align's sampling).

    The ``C = C_out * p * p`` input channels form ``p * p`` groups of ``C_out``: output
    bin ``(i, j)`` of output channel ``c`` is sampled, as in :func:`roi_align`, from input
    channel ``(c * p + i) * p + j`` only (torchvision's ``ps_roi_align`` layout). Each
    bin thus has its own score maps, and the pooled tensor is ``p * p`` times thinner.

    Shape:
        ``features: (N, C_out * p * p, H, W)``, ``rois: (K, 5)`` ->
        ``(K, C_out, p, p)``.

    Args:
        features: Feature maps; channels divisible by ``output_size ** 2``.
        rois: Rows ``(batch_index, x1, y1, x2, y2)`` in input pixels.
        output_size: Bins per side ``p``.
        spatial_scale: Feature-map cells per input pixel.
        sampling_ratio: Samples per bin side, >= 1.

    Returns:
        Pooled features; differentiable with respect to ``features``.

    Raises:
        ValueError: As :func:`roi_align`, or if the channels are not divisible by ``p * p``.

    Examples:
        >>> features = torch.randn(1, 2 * 3 * 3, 12, 12)
        >>> ps_roi_align(features, torch.tensor([[0.0, 1, 1, 9, 9]]), 3, 1.0).shape
        torch.Size([1, 2, 3, 3])
    """
    weights_y, weights_x = _check_roi_inputs(features, rois, output_size, spatial_scale, sampling_ratio)
    batch, channels, height, width = features.shape
    bins = output_size * output_size
    if channels % bins:
        raise ValueError(f"features must have a multiple of output_size**2 = {bins} channels, got {channels}")
    grouped = features.view(batch, channels // bins, output_size, output_size, height, width)
    out = features.new_zeros(rois.shape[0], channels // bins, output_size, output_size)
    batch_index = rois[:, 0].long()
    for image in batch_index.unique().tolist():
        rows = (batch_index == image).nonzero().flatten()
        wy, wx = weights_y[rows], weights_x[rows]
        # bin row i reads channel group (., i, .) and rows of its own y samples only
        along_y = torch.einsum("kish,cijhw->kcijsw", wy, grouped[image])
        samples = torch.einsum("kcijsw,kjtw->kcijst", along_y, wx)
        out[rows] = samples.mean(dim=(-2, -1))
    return out


@export("vision.average_precision")
def average_precision(
    detections: Sequence[dict[str, torch.Tensor]],
    targets: Sequence[dict[str, torch.Tensor]],
    label: int,
    iou_threshold: float = 0.5,
) -> float:
    """PASCAL VOC average precision of one class (all-point interpolation, VOC 2010+).

    Detections of class ``label`` from all images are ranked by score. Each is a true
    positive if its best-overlapping ground-truth box of that class (same image) has
    IoU >= ``iou_threshold`` and was not claimed by a higher-scoring detection; otherwise
    a false positive. With precision ``p_k`` and recall ``r_k`` after the ``k`` best,

    .. math::

        \\text{AP} = \\sum_k (r_k - r_{k-1}) \\max_{j \\ge k} p_j .

    Args:
        detections: Per image, a dict with ``"boxes" (K, 4)``, ``"scores" (K,)``,
            ``"labels" (K,)`` (what :class:`~dlnotes.vision.thundernet.ThunderNet` returns).
        targets: Per image, a dict with ``"boxes" (M, 4)`` and ``"labels" (M,)``.
        label: The class to score.
        iou_threshold: Minimum IoU of a true positive (0.5 for VOC's "AP50").

    Returns:
        AP in ``[0, 1]``; ``nan`` if no ground-truth box has this label.

    Raises:
        ValueError: If the lists differ in length or ``iou_threshold`` is outside ``(0, 1]``.

    Examples:
        >>> truth = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([0])}]
        >>> found = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30]]),
        ...           "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([0, 0])}]
        >>> average_precision(found, truth, label=0)
        1.0
    """
    if len(detections) != len(targets):
        raise ValueError(f"detections and targets must have one entry per image, got {len(detections)} and {len(targets)}")
    if not 0.0 < float(iou_threshold) <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
    ranked = []  # (score, image, box)
    truth, claimed = [], []
    for image, (found, target) in enumerate(zip(detections, targets)):
        boxes = target["boxes"][target["labels"] == label]
        truth.append(boxes)
        claimed.append(torch.zeros(len(boxes), dtype=torch.bool))
        mine = found["labels"] == label
        ranked += [(score, image, box) for score, box in zip(found["scores"][mine].tolist(), found["boxes"][mine])]
    total = sum(len(boxes) for boxes in truth)
    if total == 0:
        return float("nan")
    ranked.sort(key=lambda item: -item[0])  # stable: ties keep image order
    hits = []
    for _, image, box in ranked:
        hit = False
        if len(truth[image]):
            overlaps = box_iou(box[None], truth[image])[0]
            best = int(overlaps.argmax())
            if overlaps[best] >= iou_threshold and not claimed[image][best]:
                claimed[image][best] = hit = True
        hits.append(hit)
    if not hits:
        return 0.0
    true_positives = torch.tensor(hits, dtype=torch.float64).cumsum(0)
    precision = true_positives / torch.arange(1, len(hits) + 1, dtype=torch.float64)
    recall = true_positives / total
    envelope = precision.flip(0).cummax(0).values.flip(0)  # max precision at this recall or beyond
    steps = torch.diff(recall, prepend=torch.zeros(1, dtype=torch.float64))
    return float((steps * envelope).sum())


# ------------------------------------------------------------------------------ helpers


def _check_boxes(boxes: object, name: str) -> None:
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {tuple(boxes.shape)}")


def _check_coding(
    reference: object, other: object, name: str, weights: Sequence[float]
) -> tuple[float, float, float, float]:
    """Validate the inputs of box encoding/decoding; return the four weights as floats."""
    _check_boxes(reference, "reference")
    _check_boxes(other, name)
    if reference.shape != other.shape:
        raise ValueError(f"reference and {name} must have the same shape, got {tuple(reference.shape)} and {tuple(other.shape)}")
    return _check_weights(weights)


def _check_weights(weights: Sequence[float]) -> tuple[float, float, float, float]:
    if len(weights) != 4 or not all(float(w) > 0 for w in weights):
        raise ValueError(f"weights must be four positive numbers, got {weights!r}")
    return tuple(float(w) for w in weights)  # type: ignore[return-value]


def _centre_size(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    width = boxes[:, 2] - boxes[:, 0]
    height = boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + width / 2, boxes[:, 1] + height / 2, width, height


def _check_roi_inputs(
    features: torch.Tensor, rois: torch.Tensor, output_size: int, spatial_scale: float, sampling_ratio: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate RoI-align arguments and return the interpolation weights per bin."""
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"features must be a 4-D tensor (N, C, H, W), got {shape}")
    if not isinstance(rois, torch.Tensor) or rois.dim() != 2 or rois.shape[1] != 5:
        shape = tuple(rois.shape) if isinstance(rois, torch.Tensor) else type(rois).__name__
        raise ValueError(f"rois must have shape (K, 5) with rows (batch_index, x1, y1, x2, y2), got {shape}")
    check_positive_ints(output_size=output_size, sampling_ratio=sampling_ratio)
    if not float(spatial_scale) > 0:
        raise ValueError(f"spatial_scale must be > 0, got {spatial_scale!r}")
    if rois.numel() and (rois[:, 0].min() < 0 or rois[:, 0].max() >= features.shape[0]):
        raise ValueError(f"rois[:, 0] must be image indices in [0, {features.shape[0]}), got {rois[:, 0].tolist()}")
    rois = rois.detach().to(features.dtype)
    height, width = features.shape[-2:]
    box = rois[:, 1:] * spatial_scale - 0.5  # aligned=True: pixel centres at integer + 0.5
    weights_y = _interpolation_weights(box[:, 1], box[:, 3], output_size, sampling_ratio, height)
    weights_x = _interpolation_weights(box[:, 0], box[:, 2], output_size, sampling_ratio, width)
    return weights_y, weights_x


def _interpolation_weights(start: torch.Tensor, end: torch.Tensor, bins: int, samples: int, size: int) -> torch.Tensor:
    """Linear-interpolation matrix from ``size`` map cells to each bin's sample points.

    Sample ``s`` of bin ``i`` lies at ``start + (i + (s + 0.5) / samples) * (end - start) / bins``.

    Returns:
        ``(K, bins, samples, size)``: row ``[k, i, s]`` holds the weights ``1 - l`` and
        ``l`` at the two cells around that sample (all zero if it is outside ``[-1, size]``).
    """
    bin_size = (end - start) / bins  # (K,)
    options = {"dtype": start.dtype, "device": start.device}
    offsets = torch.arange(bins, **options).view(1, -1, 1) + (
        torch.arange(samples, **options).view(1, 1, -1) + 0.5
    ) / samples  # (1, bins, samples), in bin units
    coords = start.view(-1, 1, 1) + offsets * bin_size.view(-1, 1, 1)  # (K, bins, samples)
    inside = (coords >= -1.0) & (coords <= size)  # further out: the sample is 0
    coords = coords.clamp(min=0.0)
    low = coords.floor().clamp(max=size - 1)
    coords = torch.where(low >= size - 1, low, coords)  # at the last cell, read it exactly
    high = (low + 1).clamp(max=size - 1)
    frac = coords - low
    weights = torch.zeros(*coords.shape, size, **options)
    weights.scatter_add_(-1, low.long().unsqueeze(-1), ((1 - frac) * inside).unsqueeze(-1))
    weights.scatter_add_(-1, high.long().unsqueeze(-1), (frac * inside).unsqueeze(-1))
    return weights
