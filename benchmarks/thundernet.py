"""ThunderNet: backbone cost, the price of 5x5 depthwise kernels, and a toy training run.

1. Multiply-adds (on the ``meta`` device) of SNet49/146/535 at 224x224 against the
   numbers in their names, with 5x5 (SNet) and 3x3 (ShuffleNetV2) depthwise kernels, and
   of the convolutional part of each detector at 320x320.
2. CPU time of one 320x320 image through each backbone with 5x5 and with 3x3 kernels,
   alternating in every repeat, on one thread.
3. Training SNet49-ThunderNet on :func:`synthetic_shapes` (128x128 images) and
   recording the loss of every step, the detections on held-out images and the
   average precision at IoU 0.5 per class.

Writes ``docs/vision/results/thundernet.json`` (rendered by the lab page).

Run: ``python benchmarks/thundernet.py [--quick] [--no-write]``
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from _harness import machine, markdown_table, median_times, write_results
from dlnotes.vision.detection import average_precision
from dlnotes.vision.flops import count_flops
from dlnotes.vision.thundernet import SHAPES, SNET_CONFIGS, ThunderNet, snet, synthetic_shapes, train_thundernet

RESULTS = "docs/vision/results/thundernet.json"
# The toy detector: small images, so anchors of 16-128 pixels and fewer proposals and RoIs.
TOY = {
    "anchor_sizes": (16, 32, 64, 128),
    "pre_nms_top_n": (300, 300),
    "post_nms_top_n": (128, 50),
    "roi_batch_size": 64,
}
VALIDATION_SEED = 123


class DenseDetectorPart(nn.Module):
    """Backbone -> CEM -> light RPN -> SAM: everything except the per-RoI head."""

    def __init__(self, model: ThunderNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        cem = self.model.cem(*self.model.backbone(images))
        rpn_features, objectness, deltas = self.model.rpn(cem)
        return self.model.sam(cem, rpn_features)


def cost_table() -> list[dict]:
    rows = []
    for name, config in SNET_CONFIGS.items():
        with torch.device("meta"):
            backbone, shuffle_kernels = snet(name), snet(name, kernel_size=3)
            detector = ThunderNet(name, num_classes=80)
        head_per_roi = count_flops(detector.head.fc, (1, 245)) + count_flops(detector.head.classes, (1, 1024))
        head_per_roi += count_flops(detector.head.boxes, (1, 1024))
        rows.append(
            {
                "backbone": name,
                "name_mflops": config.mflops,
                "parameters": sum(p.numel() for p in backbone.parameters()),
                "multiply_adds_224": count_flops(backbone, (1, 3, 224, 224)),
                "multiply_adds_224_3x3": count_flops(shuffle_kernels, (1, 3, 224, 224)),
                "detector_dense_320": count_flops(DenseDetectorPart(detector), (1, 3, 320, 320)),
                "head_per_roi": head_per_roi,
            }
        )
    return rows


def time_table(repeats: int) -> dict[str, dict[str, float]]:
    """Median seconds of one 320x320 image through each backbone, 5x5 vs 3x3 kernels."""
    image = torch.randn(1, 3, 320, 320)
    functions = {}
    for name in SNET_CONFIGS:
        for kernel in (5, 3):
            model = snet(name, kernel_size=kernel).eval()
            functions[f"{name}/{kernel}"] = lambda model=model: model(image)
    with torch.no_grad():
        seconds = median_times(functions, repeats=repeats)
    return {name: {"5x5": seconds[f"{name}/5"], "3x3": seconds[f"{name}/3"]} for name in SNET_CONFIGS}


def training_run(steps: int, validation_images: int) -> dict:
    torch.manual_seed(0)
    model = ThunderNet("snet49", num_classes=len(SHAPES), **TOY)
    start = time.perf_counter()
    losses = train_thundernet(model, steps=steps, batch=4, image_size=128, learning_rate=3e-3, seed=0)
    seconds = time.perf_counter() - start
    model.eval()
    images, targets = synthetic_shapes(validation_images, 128, generator=torch.Generator().manual_seed(VALIDATION_SEED))
    with torch.no_grad():
        detections = model(images)
    ap = [
        average_precision(detections, targets, label=label, iou_threshold=0.5) for label in range(len(SHAPES))
    ]
    shown = [
        {key: value.tolist() for key, value in detection.items()} for detection in detections[:6]
    ]
    return {
        "backbone": "snet49",
        "image_size": 128,
        "batch": 4,
        "steps": steps,
        "learning_rate": 3e-3,
        "toy_settings": {key: list(value) if isinstance(value, tuple) else value for key, value in TOY.items()},
        "seconds": seconds,
        "losses": losses,
        "validation_seed": VALIDATION_SEED,
        "validation_images": validation_images,
        "average_precision": dict(zip(SHAPES, ap)),
        "detections": shown,
    }


def render(results: dict) -> str:
    """The two Markdown tables the chapter's Cost section shows: counts, then times."""
    rows, seconds = results["cost"], results["seconds_320"]
    counts = markdown_table(
        ["backbone", "params", "MFLOPs @224 (5x5)", "name", "ratio", "MFLOPs @224 (3x3)", "dense part @320", "head / RoI"],
        [
            [
                row["backbone"],
                f"{row['parameters'] / 1e6:.2f}M",
                f"{row['multiply_adds_224'] / 1e6:.1f}",
                row["name_mflops"],
                f"{row['multiply_adds_224'] / 1e6 / row['name_mflops']:.3f}",
                f"{row['multiply_adds_224_3x3'] / 1e6:.1f}",
                f"{row['detector_dense_320'] / 1e6:.0f}M",
                f"{row['head_per_roi'] / 1e6:.2f}M",
            ]
            for row in rows
        ],
    )
    times = markdown_table(
        ["backbone @320", "5x5 depthwise (ms)", "3x3 depthwise (ms)", "5x5 / 3x3 time", "5x5 / 3x3 MFLOPs"],
        [
            [
                row["backbone"],
                f"{1e3 * seconds[row['backbone']]['5x5']:.1f}",
                f"{1e3 * seconds[row['backbone']]['3x3']:.1f}",
                f"{seconds[row['backbone']]['5x5'] / seconds[row['backbone']]['3x3']:.2f}",
                f"{row['multiply_adds_224'] / row['multiply_adds_224_3x3']:.3f}",
            ]
            for row in rows
        ],
    )
    return counts + "\n\n" + times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repeats and steps, nothing written (a smoke test)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the results file alone")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread: stable timings on a shared machine

    results = {"cost": cost_table(), "seconds_320": time_table(repeats=3 if args.quick else 31)}
    training = training_run(steps=60 if args.quick else 1000, validation_images=16 if args.quick else 64)
    results["training"] = training
    info = machine()
    print(f"machine: {info['cpu']}, 1 thread, torch {info['torch']}; batch 1, float32\n")
    print(render(results))
    losses = training["losses"]
    print(
        f"\ntraining: {training['steps']} steps in {training['seconds']:.0f} s, "
        f"loss {losses[0]:.3f} -> {sum(losses[-50:]) / len(losses[-50:]):.3f} (mean of the last 50), "
        + ", ".join(f"AP50 {name} {value:.3f}" for name, value in training["average_precision"].items())
    )
    if not args.no_write and not args.quick:
        path = write_results(RESULTS, results)
        print(f"\nwrote {path}; paste the tables above into the chapter's Cost section")


if __name__ == "__main__":
    main()
