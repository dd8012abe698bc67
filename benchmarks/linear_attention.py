"""Linear attention: time and peak memory against sequence length N, with growth exponents.

For N = 256 .. 16384 (batch 1, 1 head, head_dim = value_dim = 64, fp32, causal, forward
only, no autograd) it measures

* ``softmax``: :func:`dlnotes.attention.sdpa.attention_reference` (the N x N softmax);
* ``quadratic``, ``recurrent``, ``cumsum``, ``chunked`` (chunks of 64):
  :func:`dlnotes.attention.linear.linear_attention` with ``feature_map="elu"`` and the
  normaliser; on CUDA also ``triton``.

Time: the median of several calls, all methods alternating in one process
(``_harness.median_times``). Memory on CPU: every (method, N) runs in a fresh subprocess
with glibc's mmap threshold pinned to 64 KiB (freed buffers return to the OS instead of
being recycled), makes a small warm-up call, resets the kernel's peak-RSS counter through
``/proc/self/clear_refs`` right before the measured call and reads ``VmHWM`` after it; the
number is that peak minus the resident size just before the call (inputs already
allocated), i.e. the extra memory the call needed, output included. On CUDA:
``torch.cuda.max_memory_allocated`` minus the memory allocated before the call.

Growth exponents are least-squares slopes of log(time) and log(memory) against log(N)
over N >= 1024 (below that, fixed per-call overheads dominate). The N x N methods are
skipped where three N x N fp32 matrices would exceed ``--max-quadratic-gib``.

Run: ``python benchmarks/linear_attention.py [--quick] [--no-write]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

import torch

from _harness import machine, markdown_table, median_times, peak_rss_increase, write_cuda_results, write_results
from dlnotes.attention.linear import linear_attention
from dlnotes.attention.sdpa import attention_reference

RESULTS = "docs/attention/results/linear_attention.json"
HEAD_DIM = 64
CHUNK = 64
LINEAR = ("quadratic", "recurrent", "cumsum", "chunked")
QUADRATIC = ("softmax", "quadratic")  # methods that build N x N matrices
FIT_FROM = 1024
MIB = 2**20


def inputs(n: int, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(n)
    return tuple(torch.randn(1, 1, n, HEAD_DIM, generator=generator).to(device) for _ in range(3))


def call(method: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
    if method == "softmax":
        return lambda: attention_reference(q, k, v, causal=True)
    return lambda: linear_attention(q, k, v, causal=True, method=method, chunk_size=CHUNK)


def methods_for(n: int, max_quadratic_gib: float, cuda: bool) -> list[str]:
    fits = 3 * n * n * 4 <= max_quadratic_gib * 2**30
    names = ["softmax", *LINEAR] + (["triton"] if cuda else [])
    return [m for m in names if fits or m not in QUADRATIC]


# ----------------------------------------------------------------------------- memory


def cpu_memory_here(method: str, n: int) -> int:
    """Extra peak resident memory of one call, in bytes (run in a fresh process)."""
    torch.set_num_threads(1)
    with torch.no_grad():
        call(method, *inputs(256))()  # page in the code the call touches (RSS counts it)
        q, k, v = inputs(n)
        return peak_rss_increase(call(method, q, k, v))


def cpu_memory(method: str, n: int) -> int:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(64 * 1024), OMP_NUM_THREADS="1")
    command = [sys.executable, __file__, "--memory-probe", method, str(n)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["bytes"]


def cuda_memory(method: str, n: int) -> int:
    q, k, v = inputs(n, "cuda")
    function = call(method, q, k, v)
    with torch.no_grad():
        function()  # warm-up (compiles the Triton kernel)
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        out = function()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    del out
    return peak - before


# ----------------------------------------------------------------------------- sweep


def sweep(sizes: list[int], repeats: int, max_quadratic_gib: float, cuda: bool) -> list[dict]:
    points = []
    device = "cuda" if cuda else "cpu"
    for n in sizes:
        names = methods_for(n, max_quadratic_gib, cuda)
        q, k, v = inputs(n, device)
        with torch.no_grad():  # more repeats where calls are cheap: the median then resists a busy machine
            seconds = median_times({m: call(m, q, k, v) for m in names}, repeats=repeats * (3 if n <= 4096 else 1),
                                   warmup=1)
        del q, k, v
        memory = {m: (cuda_memory(m, n) if cuda else cpu_memory(m, n)) for m in names}
        points.append({"n": n, "seconds": seconds, "bytes": memory})
        print(f"  N={n}: " + ", ".join(f"{m} {1e3 * seconds[m]:.1f} ms {memory[m] / MIB:.1f} MiB" for m in names),
              flush=True)
    return points


def growth_exponent(points: list[dict], key: str, method: str) -> float | None:
    """Least-squares slope of log(value) against log(N) over N >= FIT_FROM."""
    pairs = [(math.log(p["n"]), math.log(max(p[key][method], 1e-12))) for p in points
             if p["n"] >= FIT_FROM and method in p[key]]
    if len(pairs) < 2:
        return None
    mean_x = sum(x for x, _ in pairs) / len(pairs)
    mean_y = sum(y for _, y in pairs) / len(pairs)
    return sum((x - mean_x) * (y - mean_y) for x, y in pairs) / sum((x - mean_x) ** 2 for x, _ in pairs)


def render(points: list[dict], names: list[str]) -> str:
    header = ["N"] + [f"{m} ms" for m in names] + [f"{m} MiB" for m in names]
    rows = []
    for p in points:
        times = [f"{1e3 * p['seconds'][m]:.1f}" if m in p["seconds"] else "–" for m in names]
        memory = [f"{p['bytes'][m] / MIB:.1f}" if m in p["bytes"] else "–" for m in names]
        rows.append([p["n"], *times, *memory])
    exponents = []
    for key in ("seconds", "bytes"):
        for m in names:
            value = growth_exponent(points, key, m)
            exponents.append("–" if value is None else f"**N^{value:.2f}**")
    rows.append([f"exponent (N ≥ {FIT_FROM})", *exponents])
    return markdown_table(header, rows)


def render_tables(results: dict) -> list[str]:
    """Every table the chapter shows, rendered from a results dictionary (CPU, then GPU if measured)."""
    tables = [render(results["points"], ["softmax", *LINEAR] + (["triton"] if results["device"] == "cuda" else []))]
    if "cuda" in results:
        tables.append(render(results["cuda"]["points"], ["softmax", *LINEAR, "triton"]))
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (a smoke test)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update the results file")
    parser.add_argument("--max-quadratic-gib", type=float, default=4.0,
                        help="skip the N x N methods where three N x N fp32 matrices exceed this (GiB)")
    parser.add_argument("--cuda-only", action="store_true",
                        help="store the GPU sweep under 'cuda' beside the CPU numbers already in the results file")
    parser.add_argument("--memory-probe", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        method, n = args.memory_probe
        print(json.dumps({"bytes": cpu_memory_here(method, int(n))}))
        return
    torch.set_num_threads(1)
    cuda = torch.cuda.is_available()
    if args.cuda_only and not cuda:
        parser.error("--cuda-only needs a CUDA GPU")

    info = machine()
    print(f"machine: {info['cpu']}, torch {info['torch']}, triton {info['triton']}, 1 thread, GPU: {info['gpu']}\n")
    sizes = [256, 1024, 2048] if args.quick else [256, 512, 1024, 2048, 4096, 8192, 16384]
    points = sweep(sizes, 1 if args.quick else 3, args.max_quadratic_gib, cuda)
    names = ["softmax", *LINEAR] + (["triton"] if cuda else [])
    table = render(points, names)
    where = "CUDA" if cuda else "CPU, 1 thread"
    print(f"\n{where}, batch 1, 1 head, head_dim {HEAD_DIM}, fp32, causal, forward only, chunks of {CHUNK}:\n")
    print(table)
    if not args.no_write and not args.quick:
        exponents = {key: {m: growth_exponent(points, key, m) for m in names} for key in ("seconds", "bytes")}
        results = {
            "device": "cuda" if cuda else "cpu", "head_dim": HEAD_DIM, "chunk_size": CHUNK, "dtype": "float32",
            "fit_from": FIT_FROM, "points": points, "exponents": exponents,
        }
        path = write_cuda_results(RESULTS, results) if args.cuda_only else write_results(RESULTS, results)
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
