"""Sliding-window maximum: time against n and k for every method.

Prints two Markdown tables (growth in n at fixed k, growth in k at fixed n) with each
method's median time and its ratio to the deque in the same run, plus the fitted
scaling exponent (time ~ n^a), and writes them to
``docs/algorithms/results/sliding_window.json`` for the chapter's lab page.

Run: ``python benchmarks/sliding_window.py [--quick]``
"""

from __future__ import annotations

import argparse
import math
import random

import torch

from _harness import machine, markdown_table, median_times, write_results
from dlnotes.algorithms.sliding_window import METHODS, sliding_window_max, sliding_window_max_torch

BASELINE = "deque"
RESULTS = "docs/algorithms/results/sliding_window.json"


def measure(n: int, k: int, repeats: int) -> dict[str, float]:
    rng = random.Random(n * 7919 + k)
    values = [rng.randint(-10**6, 10**6) for _ in range(n)]
    tensor = torch.tensor(values)
    functions = {method: (lambda m=method: sliding_window_max(values, k, method=m)) for method in METHODS}
    functions["torch"] = lambda: sliding_window_max_torch(tensor, k)
    return median_times(functions, repeats=repeats)


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) against log(x): the scaling exponent."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def table(sweep: list[dict], key: str) -> str:
    names = list(sweep[0]["seconds"])
    header = [key] + [f"{name} (ms)" for name in names] + [f"{name} / {BASELINE}" for name in names if name != BASELINE]
    rows = []
    for point in sweep:
        seconds = point["seconds"]
        rows.append(
            [point[key]]
            + [f"{1e3 * seconds[name]:.2f}" for name in names]
            + [f"{seconds[name] / seconds[BASELINE]:.2f}" for name in names if name != BASELINE]
        )
    return markdown_table(header, rows)


def render(results: dict) -> str:
    """The Markdown the chapter shows, rendered from a results dictionary."""
    by_n, by_k = results["by_n"], results["by_k"]
    exponents = ", ".join(f"{name} {a:.2f}" for name, a in results["exponents"].items())
    return "\n".join(
        [
            f"Time against $n$ ($k = {by_n[0]['k']}$):",
            "",
            table(by_n, "n"),
            "",
            f"Time against $k$ ($n = {by_k[0]['n']}$):",
            "",
            table(by_k, "k"),
            "",
            f"Fitted exponent $a$ in time $\\propto n^a$: {exponents}.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (a smoke test)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update the results file")
    args = parser.parse_args()
    torch.set_num_threads(1)

    repeats = 1 if args.quick else 5
    sizes = [1_000, 4_000] if args.quick else [1_000, 4_000, 16_000, 64_000]
    windows = [2, 32] if args.quick else [2, 8, 32, 128, 512]
    fixed_k, fixed_n = 16, (4_000 if args.quick else 16_000)

    by_n = [{"n": n, "k": fixed_k, "seconds": measure(n, fixed_k, repeats)} for n in sizes]
    by_k = [{"n": fixed_n, "k": k, "seconds": measure(fixed_n, k, repeats)} for k in windows]
    exponents = {name: slope(sizes, [p["seconds"][name] for p in by_n]) for name in by_n[0]["seconds"]}

    results = {"baseline": BASELINE, "by_n": by_n, "by_k": by_k, "exponents": exponents}
    info = machine()
    print(f"machine: {info['cpu']}, torch {info['torch']}, 1 thread\n")
    print(render(results))
    if not args.no_write and not args.quick:
        path = write_results(RESULTS, results)
        print(f"\nwrote {path}; paste the tables above into the chapter's Cost section")


if __name__ == "__main__":
    main()
