"""nn.Xxx versus nn.functional.xxx versus our im2col functions: time per call.

For a few layer sizes, times ``nn.Conv2d`` (module call), ``F.conv2d`` (the function
with the module's tensors) and ``dlnotes.foundations.functional.conv2d`` (im2col + one
matrix product per group), and the same three for batch normalisation in training
mode, on one torch thread by default. Calls alternate inside every repeat; each timed callable runs ``calls`` forward
passes under ``torch.no_grad()``. Prints one Markdown table per operation with the
median microseconds per call and the ratios to ``F``.

Run: ``python benchmarks/modules_vs_functional.py [--quick]``
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from _harness import machine, markdown_table, median_times
from dlnotes.foundations import functional as ours

# (batch, channels, size): from "overhead dominates" to "arithmetic dominates".
SHAPES = [(1, 8, 8), (8, 32, 16), (16, 64, 32)]


def repeat(function, calls: int):
    def run() -> None:
        with torch.no_grad():
            for _ in range(calls):
                function()

    return run


def conv_times(batch: int, channels: int, size: int, calls: int, repeats: int) -> dict[str, float]:
    layer = nn.Conv2d(channels, channels, 3, padding=1)
    x = torch.randn(batch, channels, size, size)
    functions = {
        "nn.Conv2d": repeat(lambda: layer(x), calls),
        "F.conv2d": repeat(lambda: F.conv2d(x, layer.weight, layer.bias, padding=1), calls),
        "ours (im2col)": repeat(lambda: ours.conv2d(x, layer.weight, layer.bias, padding=1), calls),
    }
    return {name: seconds / calls for name, seconds in median_times(functions, repeats=repeats).items()}


def norm_times(batch: int, channels: int, size: int, calls: int, repeats: int) -> dict[str, float]:
    layer = nn.BatchNorm2d(channels)
    mean, var = layer.running_mean.clone(), layer.running_var.clone()
    x = torch.randn(batch, channels, size, size)
    functions = {
        "nn.BatchNorm2d": repeat(lambda: layer(x), calls),
        "F.batch_norm": repeat(lambda: F.batch_norm(x, mean, var, layer.weight, layer.bias, training=True), calls),
        "ours": repeat(lambda: ours.batch_norm(x, mean, var, layer.weight, layer.bias, training=True), calls),
    }
    return {name: seconds / calls for name, seconds in median_times(functions, repeats=repeats).items()}


def table(rows: list[tuple[tuple[int, int, int], dict[str, float]]], baseline: str) -> str:
    names = list(rows[0][1])
    header = ["input (N, C, H, W)"] + [f"{name} (µs)" for name in names] + [f"{name} / {baseline}" for name in names if name != baseline]
    body = []
    for (batch, channels, size), seconds in rows:
        body.append(
            [f"({batch}, {channels}, {size}, {size})"]
            + [f"{1e6 * seconds[name]:.1f}" for name in names]
            + [f"{seconds[name] / seconds[baseline]:.2f}" for name in names if name != baseline]
        )
    return markdown_table(header, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats (a smoke test)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steadier on a shared CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    calls, repeats = (5, 3) if args.quick else (50, 7)
    conv_rows = [(shape, conv_times(*shape, calls=calls, repeats=repeats)) for shape in SHAPES]
    norm_rows = [(shape, norm_times(*shape, calls=calls, repeats=repeats)) for shape in SHAPES]
    info = machine()
    print(f"Machine: {info['cpu']}, {info['cores']} torch threads, torch {info['torch']}\n")
    print("3x3 convolution, C -> C channels, padding 1 (time per forward call):\n")
    print(table(conv_rows, "F.conv2d"))
    print("\nBatch normalisation in training mode (time per forward call):\n")
    print(table(norm_rows, "F.batch_norm"))


if __name__ == "__main__":
    main()
