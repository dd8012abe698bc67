"""Selective scan: time against sequence length for every method on CPU.

Measures :func:`dlnotes.ssm.mamba.selective_scan` with ``method="sequential"`` (the
reference loop, the baseline), ``"parallel"`` (Hillis–Steele, log depth) and
``"chunked"`` at batch 2, dim 64, state 16 with input-dependent B and C, alternating
the methods inside every repeat. Prints a Markdown table with each method's median time
and its speed-up over the sequential loop in the same run, and writes
``docs/ssm/results/selective_scan.json``.

The sequential and parallel scans build several ``batch * dim * L * state`` float32
tensors (the parallel one ``log2 L`` times over), so beyond ``--max-reference-length``
(default 4096) only the chunked scan is timed.

With CUDA present a second table compares the chunked scan and the Triton kernel on
the GPU. Run: ``python benchmarks/selective_scan.py [--quick] [--no-write]``
"""

from __future__ import annotations

import argparse
import json

import torch

from _harness import ROOT, machine, markdown_table, median_times, write_cuda_results, write_results
from dlnotes.ssm.mamba import METHODS, selective_scan

BASELINE = "sequential"
RESULTS = "docs/ssm/results/selective_scan.json"
SHAPE = {"batch": 2, "dim": 64, "state": 16}


def make_inputs(length: int, seed: int = 0, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Mamba-like inputs: Δ before softplus, A = -(1..N), B and C per token."""
    g = torch.Generator().manual_seed(seed)
    batch, dim, state = SHAPE["batch"], SHAPE["dim"], SHAPE["state"]
    inputs = {
        "u": torch.randn(batch, dim, length, generator=g),
        "delta": torch.randn(batch, dim, length, generator=g) - 4.0,
        "A": -torch.arange(1.0, state + 1).repeat(dim, 1),
        "B": torch.randn(batch, state, length, generator=g),
        "C": torch.randn(batch, state, length, generator=g),
        "D": torch.ones(dim),
        "z": torch.randn(batch, dim, length, generator=g),
    }
    return {name: tensor.to(device) for name, tensor in inputs.items()}


def measure(length: int, methods: list[str], repeats: int, device: str = "cpu") -> dict[str, float]:
    inputs = make_inputs(length, device=device)
    functions = {
        method: (lambda m=method: selective_scan(**inputs, delta_softplus=True, method=m)) for method in methods
    }
    return median_times(functions, repeats=repeats)


def table(by_length: list[dict], methods: list[str], baseline: str) -> str:
    header = ["L"] + [f"{m} (ms)" for m in methods] + [f"{baseline} / {m}" for m in methods if m != baseline]
    rows = []
    for point in by_length:
        seconds = point["seconds"]
        row = [point["L"]] + [f"{1e3 * seconds[m]:.1f}" if m in seconds else "–" for m in methods]
        for m in methods:
            if m == baseline:
                continue
            ok = m in seconds and baseline in seconds
            row.append(f"{seconds[baseline] / seconds[m]:.1f}x" if ok else "–")
        rows.append(row)
    return markdown_table(header, rows)


def render(results: dict) -> str:
    """The Markdown the chapter shows, rendered from a results dictionary."""
    shape = results["shape"]
    lines = [
        f"Forward time of `selective_scan` on CPU, 1 thread (batch {shape['batch']}, dim {shape['dim']}, "
        f"state {shape['state']}, input-dependent B and C), median of {results['repeats']} runs; "
        f"– = not timed (L > {results['max_reference_length']} for the reference scans):",
        "",
        table(results["by_length"], results["methods"], BASELINE),
    ]
    if results.get("cuda"):
        lines += [
            "",
            f"On CUDA ({results['cuda']['gpu']}), the chunked PyTorch scan against the Triton kernel:",
            "",
            table(results["cuda"]["by_length"], ["chunked", "triton"], "chunked"),
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (a smoke test)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update the results file")
    parser.add_argument("--max-reference-length", type=int, default=4096, help="longest L for sequential/parallel")
    parser.add_argument("--cuda-only", action="store_true",
                        help="time only chunked vs Triton on the GPU and store that beside the CPU numbers already recorded")
    args = parser.parse_args()
    if args.cuda_only and not torch.cuda.is_available():
        parser.error("--cuda-only needs a CUDA GPU")
    torch.set_num_threads(1)

    repeats = 1 if args.quick else 9
    lengths = [256, 1024] if args.quick else [256, 1024, 4096, 16384]
    cuda = None
    if torch.cuda.is_available():
        by_length = [{"L": n, "seconds": measure(n, ["chunked", "triton"], repeats, "cuda")} for n in lengths]
        cuda = {"gpu": torch.cuda.get_device_name(), "by_length": by_length}
    if args.cuda_only:
        results = json.loads((ROOT / RESULTS).read_text())
        results["cuda"] = cuda
        print(render(results))
        if not args.no_write and not args.quick:
            print(f"\nwrote {write_cuda_results(RESULTS, cuda)}")
        return

    methods = [m for m in METHODS if m != "triton"]  # Triton on CPU is the interpreter: not timed
    by_length = []
    for length in lengths:
        timed = [m for m in methods if length <= args.max_reference_length or m == "chunked"]
        by_length.append({"L": length, "seconds": measure(length, timed, repeats)})

    results = {
        "baseline": BASELINE,
        "shape": SHAPE,
        "repeats": repeats,
        "threads": 1,
        "max_reference_length": args.max_reference_length,
        "methods": methods,
        "by_length": by_length,
    }
    if cuda:
        results["cuda"] = cuda
    info = machine()
    print(f"machine: {info['cpu']}, torch {info['torch']}, 1 thread\n")
    print(render(results))
    if not args.no_write and not args.quick:
        path = write_results(RESULTS, results)
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
