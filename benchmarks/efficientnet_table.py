"""EfficientNet B0-B7: parameters, multiply-adds and CPU inference time per variant.

Parameters and multiply-adds are counted on the ``meta`` device (shapes only), at the
paper's resolution of each variant, and printed next to the paper's Table 2. With
``--time`` (the default unless ``--quick``) every variant also runs one image forward
on the CPU, all variants alternating inside each repeat, on one thread, to show how wall time grows
compared with the FLOP count. Writes ``docs/vision/results/efficientnet.json``.

Run: ``python benchmarks/efficientnet_table.py [--quick] [--no-write]``
"""

from __future__ import annotations

import argparse

import torch

from _harness import machine, markdown_table, median_times, write_results
from dlnotes.vision.efficientnet import VARIANTS, count_multiply_adds, efficientnet

RESULTS = "docs/vision/results/efficientnet.json"
# Tan & Le (2019), Table 2: parameters (millions) and FLOPs (billions).
PAPER = {
    "b0": (5.3, 0.39),
    "b1": (7.8, 0.70),
    "b2": (9.2, 1.0),
    "b3": (12, 1.8),
    "b4": (19, 4.2),
    "b5": (30, 9.9),
    "b6": (43, 19),
    "b7": (66, 37),
}


def count_table() -> list[dict]:
    """Parameters and multiply-adds of every variant, built on the meta device."""
    rows = []
    for name, config in VARIANTS.items():
        with torch.device("meta"):
            model = efficientnet(name)
        rows.append(
            {
                "variant": name,
                "width_mult": config.width_mult,
                "depth_mult": config.depth_mult,
                "resolution": config.resolution,
                "parameters": sum(p.numel() for p in model.parameters()),
                "multiply_adds": count_multiply_adds(model, config.resolution),
                "paper_parameters_millions": PAPER[name][0],
                "paper_flops_billions": PAPER[name][1],
            }
        )
    return rows


def time_table(variants: list[str], repeats: int) -> dict[str, float]:
    """Median seconds of one image's forward pass, variants alternating in every repeat."""
    functions = {}
    for name in variants:
        model = efficientnet(name).eval()
        image = torch.randn(1, 3, VARIANTS[name].resolution, VARIANTS[name].resolution)

        def forward(model=model, image=image) -> None:
            with torch.no_grad():
                model(image)

        functions[name] = forward
    return median_times(functions, repeats=repeats, warmup=1)


def render(results: dict) -> str:
    """The Markdown table the chapter shows."""
    seconds = results.get("seconds", {})
    base = results["rows"][0]
    header = ["variant", "w", "d", "resolution", "params (M)", "paper params (M)"]
    header += ["GFLOPs", "paper GFLOPs", "FLOPs / B0"]
    if seconds:
        header += ["CPU ms", "time / B0"]
    rows = []
    for row in results["rows"]:
        line = [
            row["variant"].upper(),
            row["width_mult"],
            row["depth_mult"],
            row["resolution"],
            f"{row['parameters'] / 1e6:.2f}",
            row["paper_parameters_millions"],
            f"{row['multiply_adds'] / 1e9:.2f}",
            row["paper_flops_billions"],
            f"{row['multiply_adds'] / base['multiply_adds']:.1f}",
        ]
        if seconds:
            name = row["variant"]
            line += [f"{1e3 * seconds[name]:.0f}", f"{seconds[name] / seconds['b0']:.1f}"]
        rows.append(line)
    return markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="counts only, no timing (a smoke test)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update the results file")
    parser.add_argument("--repeats", type=int, default=5, help="timing repeats per variant")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread: stable timings on a shared machine

    results: dict = {"rows": count_table()}
    if not args.quick:
        results["seconds"] = time_table(list(VARIANTS), args.repeats)
    info = machine()
    print(f"machine: {info['cpu']}, 1 thread, torch {info['torch']}; batch 1, float32\n")
    print(render(results))
    if not args.no_write and not args.quick:
        path = write_results(RESULTS, results)
        print(f"\nwrote {path}; paste the table above into the chapter's Cost section")


if __name__ == "__main__":
    main()
