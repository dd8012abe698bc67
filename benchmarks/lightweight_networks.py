"""Lightweight networks: multiply-adds against measured forward time.

Two Markdown tables, measured in one process with the callables alternating:

1. one layer, a full 3x3 convolution against a depthwise separable one (depthwise 3x3 +
   pointwise 1x1, no BatchNorm) at a few MobileNet-like sizes: the MAC ratio next to
   the time ratio;
2. whole networks at 224x224, batch 1: MACs, time, and achieved multiply-adds per second.

The point (ShuffleNetV2's first guideline): time is not proportional to MACs, because
depthwise convolutions do little arithmetic per byte they move.

Run: ``python benchmarks/lightweight_networks.py [--quick] [--threads N]``
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from _harness import machine, markdown_table, median_times
from dlnotes.vision.lightweight import count_flops, mobilenet_v1, mobilenet_v2, shufflenet_v2

# (channels, side) of a stride-1 layer, as in MobileNetV1's stages
LAYERS = ((64, 112), (128, 56), (256, 28), (512, 14), (1024, 7))


def layer_rows(layers, repeats: int) -> list[list[str]]:
    rows = []
    for channels, side in layers:
        full = nn.Conv2d(channels, channels, 3, padding=1, bias=False).eval()
        separable = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1, bias=False),
        ).eval()
        x = torch.randn(1, channels, side, side)
        shape = tuple(x.shape)
        macs_full, macs_separable = count_flops(full, shape), count_flops(separable, shape)
        with torch.no_grad():
            seconds = median_times({"full": lambda: full(x), "separable": lambda: separable(x)}, repeats=repeats)
        rows.append(
            [
                f"{channels} x {side}x{side}",
                f"{macs_full / 1e6:.1f}",
                f"{macs_separable / 1e6:.1f}",
                f"{macs_full / macs_separable:.1f}",
                f"{1e3 * seconds['full']:.2f}",
                f"{1e3 * seconds['separable']:.2f}",
                f"{seconds['full'] / seconds['separable']:.1f}",
            ]
        )
    return rows


def network_rows(repeats: int) -> list[list[str]]:
    models = {
        "MobileNetV1 1.0": mobilenet_v1(),
        "MobileNetV2 1.0": mobilenet_v2(),
        "ShuffleNetV2 x0.5": shufflenet_v2(0.5),
        "ShuffleNetV2 x1.0": shufflenet_v2(1.0),
    }
    x = torch.randn(1, 3, 224, 224)
    for model in models.values():
        model.eval()
    with torch.no_grad():
        seconds = median_times({name: (lambda m=model: m(x)) for name, model in models.items()}, repeats=repeats)
    rows = []
    for name, model in models.items():
        macs = count_flops(model, (1, 3, 224, 224))
        rows.append(
            [name, f"{macs / 1e6:.0f}", f"{1e3 * seconds[name]:.1f}", f"{macs / seconds[name] / 1e9:.1f}"]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two layer sizes, one repeat (a smoke test)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else 7
    layers = LAYERS[-2:] if args.quick else LAYERS

    info = machine()
    print(f"machine: {info['cpu']}, torch {info['torch']}, {args.threads} thread(s), batch 1, float32\n")
    print("One 3x3 layer, C -> C channels, stride 1:\n")
    header = ["C x HxW", "full MMACs", "separable MMACs", "MAC ratio", "full (ms)", "separable (ms)", "time ratio"]
    print(markdown_table(header, layer_rows(layers, repeats)))
    print("\nWhole networks at 224x224:\n")
    header = ["model", "MMACs", "time (ms)", "GMAC/s achieved"]
    print(markdown_table(header, network_rows(repeats)))


if __name__ == "__main__":
    main()
