"""Box operations against hand-computed values, pixel counting and scalar-loop references."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlnotes.vision.detection import (
    BOX_CODING_CLAMP,
    average_precision,
    batched_nms,
    box_area,
    box_iou,
    decode_boxes,
    encode_boxes,
    make_anchors,
    nms,
    ps_roi_align,
    roi_align,
)

# ------------------------------------------------------------------ scalar references


def iou_by_hand(a, b) -> float:
    """IoU of two boxes from the textbook formula, in plain Python."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def nms_by_hand(boxes, scores, threshold) -> list[int]:
    """Textbook greedy NMS over Python lists: take the best remaining, drop its overlaps."""
    remaining = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    keep = []
    while remaining:
        best = remaining.pop(0)
        keep.append(best)
        remaining = [i for i in remaining if iou_by_hand(boxes[best], boxes[i]) <= threshold]
    return keep


def bilinear_by_hand(fmap, y: float, x: float) -> float:
    """One bilinear sample with RoI align's border rules, from scalar reads."""
    height, width = fmap.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(math.floor(y)), int(math.floor(x))
    if y0 >= height - 1:
        y0 = y1 = height - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= width - 1:
        x0 = x1 = width - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return (
        (1 - ly) * (1 - lx) * fmap[y0, x0].item()
        + (1 - ly) * lx * fmap[y0, x1].item()
        + ly * (1 - lx) * fmap[y1, x0].item()
        + ly * lx * fmap[y1, x1].item()
    )


def roi_align_by_hand(features, rois, size, scale, ratio, position_sensitive=False):
    """RoI align as loops over RoIs, channels, bins and samples (torchvision's kernel)."""
    channels = features.shape[1] // (size * size) if position_sensitive else features.shape[1]
    out = torch.zeros(len(rois), channels, size, size, dtype=torch.float64)
    for k, (index, *box) in enumerate(rois.tolist()):
        x1, y1, x2, y2 = (coord * scale - 0.5 for coord in box)
        bin_h, bin_w = (y2 - y1) / size, (x2 - x1) / size
        for c in range(channels):
            for i in range(size):
                for j in range(size):
                    source = (c * size + i) * size + j if position_sensitive else c
                    fmap = features[int(index), source]
                    total = 0.0
                    for sy in range(ratio):
                        for sx in range(ratio):
                            y = y1 + i * bin_h + (sy + 0.5) * bin_h / ratio
                            x = x1 + j * bin_w + (sx + 0.5) * bin_w / ratio
                            total += bilinear_by_hand(fmap, y, x)
                    out[k, c, i, j] = total / ratio**2
    return out


def random_boxes(n: int, generator: torch.Generator, size: float = 50.0) -> torch.Tensor:
    corner = torch.rand(n, 2, generator=generator) * size
    sides = torch.rand(n, 2, generator=generator) * size / 2 + 1
    return torch.cat([corner, corner + sides], dim=1)


# ------------------------------------------------------------------------------ IoU


def test_iou_hand_computed_values():
    boxes1 = torch.tensor([[0.0, 0, 2, 2], [0.0, 0, 4, 4]])
    boxes2 = torch.tensor([[1.0, 1, 3, 3], [0.0, 0, 2, 2], [5.0, 5, 6, 6]])
    expected = torch.tensor([[1 / 7, 1.0, 0.0], [4 / 16, 4 / 16, 0.0]])
    torch.testing.assert_close(box_iou(boxes1, boxes2), expected)
    torch.testing.assert_close(box_area(boxes1), torch.tensor([4.0, 16.0]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=8, max_size=8))
def test_iou_matches_pixel_counting(coords):
    """Integer boxes: count the unit cells of the intersection and union on a grid."""
    a = (min(coords[0], coords[2]), min(coords[1], coords[3]), max(coords[0], coords[2]) + 1, max(coords[1], coords[3]) + 1)
    b = (min(coords[4], coords[6]), min(coords[5], coords[7]), max(coords[4], coords[6]) + 1, max(coords[5], coords[7]) + 1)
    grid = torch.zeros(2, 14, 14, dtype=torch.bool)
    grid[0, a[1] : a[3], a[0] : a[2]] = True  # rows are y, columns x
    grid[1, b[1] : b[3], b[0] : b[2]] = True
    expected = (grid[0] & grid[1]).sum().item() / (grid[0] | grid[1]).sum().item()
    iou = box_iou(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64))
    assert iou.item() == pytest.approx(expected, abs=1e-12), f"{a} vs {b}"


# --------------------------------------------------------------------------- anchors


def test_anchor_sizes_ratios_and_centres():
    sizes, ratios = (32, 64), (0.5, 1.0, 2.0)
    anchors = make_anchors((2, 3), 16, sizes, ratios)
    assert anchors.shape == (2 * 3 * 6, 4)
    for k, anchor in enumerate(anchors.tolist()):
        i, j, a = k // (3 * 6), (k // 6) % 3, k % 6  # row, column, anchor
        size, ratio = sizes[a // 3], ratios[a % 3]
        width, height = anchor[2] - anchor[0], anchor[3] - anchor[1]
        assert width * height == pytest.approx(size**2, rel=1e-5), f"anchor {k}: area"
        assert height / width == pytest.approx(ratio, rel=1e-5), f"anchor {k}: aspect ratio"
        assert (anchor[0] + anchor[2]) / 2 == pytest.approx((j + 0.5) * 16), f"anchor {k}: centre x"
        assert (anchor[1] + anchor[3]) / 2 == pytest.approx((i + 0.5) * 16), f"anchor {k}: centre y"


# ----------------------------------------------------------------------- box coding


def test_encode_hand_computed():
    reference = torch.tensor([[0.0, 0, 10, 20]])  # centre (5, 10), size (10, 20)
    box = torch.tensor([[2.0, 4, 22, 14]])  # centre (12, 9), size (20, 10)
    expected = torch.tensor([[0.7, -0.05, math.log(2.0), math.log(0.5)]])
    torch.testing.assert_close(encode_boxes(reference, box), expected)
    weighted = encode_boxes(reference, box, (10, 10, 5, 5))
    torch.testing.assert_close(weighted, expected * torch.tensor([10.0, 10, 5, 5]))


def test_decode_inverts_encode():
    generator = torch.Generator().manual_seed(0)
    reference, boxes = random_boxes(50, generator).double(), random_boxes(50, generator).double()
    for weights in ((1, 1, 1, 1), (10, 10, 5, 5)):
        torch.testing.assert_close(decode_boxes(reference, encode_boxes(reference, boxes, weights), weights), boxes)


def test_decode_clamps_huge_scales():
    box = decode_boxes(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([[0.0, 0, 100, 100]]))
    assert torch.isfinite(box).all()
    assert (box[0, 2] - box[0, 0]).item() == pytest.approx(math.exp(BOX_CODING_CLAMP), rel=1e-5)


# ------------------------------------------------------------------------------ NMS


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 40), st.floats(0.0, 1.0), st.integers(0, 10_000))
def test_nms_matches_textbook_loop(n, threshold, seed):
    generator = torch.Generator().manual_seed(seed)
    boxes = random_boxes(n, generator).double()
    scores = torch.rand(n, generator=generator).double()
    expected = nms_by_hand(boxes.tolist(), scores.tolist(), threshold)
    assert nms(boxes, scores, threshold).tolist() == expected


def test_nms_keeps_lower_index_on_equal_scores():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 10]])
    assert nms(boxes, torch.tensor([0.5, 0.5]), 0.5).tolist() == [0]


def test_batched_nms_is_nms_per_label():
    generator = torch.Generator().manual_seed(1)
    boxes = random_boxes(60, generator)
    scores = torch.rand(60, generator=generator)
    labels = torch.randint(0, 3, (60,), generator=generator)
    expected = []
    for label in range(3):
        index = (labels == label).nonzero().flatten()
        expected += index[nms(boxes[index], scores[index], 0.4)].tolist()
    kept = batched_nms(boxes, scores, labels, 0.4)
    assert sorted(kept.tolist()) == sorted(expected)
    assert (scores[kept][1:] <= scores[kept][:-1]).all(), "kept boxes come by decreasing score"


# ------------------------------------------------------------------------ RoI align


def roi_inputs(seed: int, channels: int):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(2, channels, 6, 7, generator=generator, dtype=torch.float64)
    rois = torch.tensor(
        [
            [0, 2.0, 3.0, 20.0, 17.0],  # inside
            [1, -6.0, -4.0, 9.0, 30.0],  # crosses the top-left border
            [1, 20.0, 15.0, 40.0, 36.0],  # reaches past the bottom-right border
            [0, 5.0, 5.0, 5.5, 6.0],  # smaller than a cell
        ],
        dtype=torch.float64,
    )
    return features, rois


@pytest.mark.parametrize("ratio", [1, 2, 3])
def test_roi_align_matches_scalar_loops(ratio):
    features, rois = roi_inputs(0, 3)
    ours = roi_align(features, rois, 3, 0.25, ratio)
    torch.testing.assert_close(ours, roi_align_by_hand(features, rois, 3, 0.25, ratio))


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-20.0, 60.0), min_size=4, max_size=4), st.integers(1, 3), st.integers(1, 3), st.integers(0, 1000))
def test_roi_align_matches_scalar_loops_on_random_regions(corners, size, ratio, seed):
    x1, x2 = sorted(corners[:2])
    y1, y2 = sorted(corners[2:])
    features = torch.randn(1, 2, 5, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    rois = torch.tensor([[0.0, x1, y1, x2, y2]], dtype=torch.float64)
    torch.testing.assert_close(roi_align(features, rois, size, 0.125, ratio), roi_align_by_hand(features, rois, size, 0.125, ratio))


def test_ps_roi_align_matches_scalar_loops():
    features, rois = roi_inputs(1, 2 * 3 * 3)
    ours = ps_roi_align(features, rois, 3, 0.25, 2)
    torch.testing.assert_close(ours, roi_align_by_hand(features, rois, 3, 0.25, 2, position_sensitive=True))


def test_ps_roi_align_reads_its_own_channel_group():
    features, rois = roi_inputs(2, 2 * 2 * 2)
    every_channel = roi_align(features, rois, 2, 0.25).view(len(rois), 2, 2, 2, 2, 2)  # (K, c, i, j, bin_i, bin_j)
    for i in range(2):
        for j in range(2):
            torch.testing.assert_close(ps_roi_align(features, rois, 2, 0.25)[:, :, i, j], every_channel[:, :, i, j, i, j])


def test_roi_align_is_exact_on_a_linear_map():
    """Bilinear interpolation reproduces a linear function, so each bin gives its centre's value."""
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    features = (2 * ys - 3 * xs + 1).view(1, 1, 16, 16).double()
    rois = torch.tensor([[0, 8.0, 4.0, 40.0, 52.0]], dtype=torch.float64)  # scale 1/4: inside the map
    out = roi_align(features, rois, 4, 0.25)[0, 0]
    x1, y1, x2, y2 = 8 / 4 - 0.5, 4 / 4 - 0.5, 40 / 4 - 0.5, 52 / 4 - 0.5
    centres_y = y1 + (torch.arange(4.0) + 0.5) * (y2 - y1) / 4
    centres_x = x1 + (torch.arange(4.0) + 0.5) * (x2 - x1) / 4
    expected = 2 * centres_y.view(-1, 1) - 3 * centres_x.view(1, -1) + 1
    torch.testing.assert_close(out, expected.double())


def test_roi_align_gradient_matches_finite_differences():
    features, rois = roi_inputs(3, 2)
    features.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: roi_align(f, rois, 2, 0.25), (features,))
    grouped = torch.randn(2, 2 * 2 * 2, 6, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: ps_roi_align(f, rois, 2, 0.25), (grouped,))


# ---------------------------------------------------------------- average precision


def found(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "scores": torch.tensor(scores), "labels": torch.tensor(labels)}


def test_average_precision_hand_computed():
    truth = [
        {"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([0])},
        {"boxes": torch.tensor([[0.0, 0, 10, 10], [50.0, 50, 60, 60]]), "labels": torch.tensor([0, 1])},
    ]
    detections = [
        found([[0, 0, 10, 10], [30, 30, 40, 40]], [0.9, 0.8], [0, 0]),  # hit, miss
        found([[1, 1, 10, 10], [50, 50, 60, 60]], [0.7, 0.95], [0, 1]),  # hit (IoU 0.81); other class
    ]
    # ranked class 0: hit, miss, hit -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    # monotone envelope: 1 up to recall 1/2, then 2/3: AP = 1/2 * 1 + 1/2 * 2/3
    assert average_precision(detections, truth, label=0) == pytest.approx(0.5 + 1 / 3)
    assert average_precision(detections, truth, label=1) == pytest.approx(1.0)
    # at IoU 0.9 the shifted box (IoU 0.81) misses: precision 1 at recall 1/2, nothing after
    assert average_precision(detections, truth, label=0, iou_threshold=0.9) == pytest.approx(0.5)
    assert math.isnan(average_precision(detections, truth, label=2))


def test_average_precision_counts_duplicates_as_false_positives():
    truth = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([0])}]
    duplicate_first = [found([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8], [0, 0])]
    assert average_precision(duplicate_first, truth, label=0) == pytest.approx(1.0)  # the extra comes last
    missed = [found([[20, 20, 30, 30], [0, 0, 10, 10]], [0.9, 0.8], [0, 0])]
    assert average_precision(missed, truth, label=0) == pytest.approx(0.5)  # precision 1/2 at recall 1
    assert average_precision([found(torch.zeros(0, 4).tolist(), [], [])], truth, label=0) == 0.0


# ---------------------------------------------------------------------------- errors


def test_errors_name_the_argument():
    box = torch.zeros(1, 4)
    with pytest.raises(ValueError, match="boxes must have shape"):
        box_area(torch.zeros(3))
    with pytest.raises(TypeError, match="boxes1 must be a torch.Tensor"):
        box_iou([[0, 0, 1, 1]], box)
    with pytest.raises(ValueError, match="boxes2 must have shape"):
        box_iou(box, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="iou_threshold"):
        nms(box, torch.zeros(1), 1.5)
    with pytest.raises(ValueError, match="scores must have shape"):
        nms(box, torch.zeros(2), 0.5)
    with pytest.raises(ValueError, match="labels must have shape"):
        batched_nms(box, torch.zeros(1), torch.zeros(2, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match="same shape"):
        encode_boxes(box, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="same shape"):
        decode_boxes(box, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="weights"):
        encode_boxes(box + torch.tensor([0, 0, 1, 1]), box + torch.tensor([0, 0, 1, 1]), (1, 1, 0, 1))
    with pytest.raises(ValueError, match="stride"):
        make_anchors((2, 2), 0, (32,), (1.0,))
    with pytest.raises(ValueError, match="feature_size"):
        make_anchors((2,), 16, (32,), (1.0,))
    with pytest.raises(ValueError, match="aspect_ratios"):
        make_anchors((2, 2), 16, (32,), ())
    features = torch.zeros(1, 4, 5, 5)
    with pytest.raises(ValueError, match="features must be a 4-D"):
        roi_align(torch.zeros(4, 5, 5), torch.zeros(1, 5), 2, 1.0)
    with pytest.raises(ValueError, match="rois must have shape"):
        roi_align(features, torch.zeros(1, 4), 2, 1.0)
    with pytest.raises(ValueError, match="output_size"):
        roi_align(features, torch.zeros(1, 5), 0, 1.0)
    with pytest.raises(ValueError, match="sampling_ratio"):
        roi_align(features, torch.zeros(1, 5), 2, 1.0, sampling_ratio=0)
    with pytest.raises(ValueError, match="spatial_scale"):
        roi_align(features, torch.zeros(1, 5), 2, 0.0)
    with pytest.raises(ValueError, match="image indices"):
        roi_align(features, torch.tensor([[1.0, 0, 0, 2, 2]]), 2, 1.0)
    with pytest.raises(ValueError, match="one entry per image"):
        average_precision([], [{"boxes": box, "labels": torch.zeros(1)}], label=0)
    with pytest.raises(ValueError, match="iou_threshold"):
        average_precision([], [], label=0, iou_threshold=0.0)
    with pytest.raises(ValueError, match="multiple of output_size"):
        ps_roi_align(torch.zeros(1, 6, 5, 5), torch.zeros(1, 5), 2, 1.0)
