"""FlashAttention: memory and time of naive vs tiled attention on CPU; TFLOP/s on CUDA.

CPU (always): for sequence lengths N (batch 1, 1 head, head_dim 64, fp32, not causal)

* peak memory of one forward call of ``attention_reference`` (naive, materialises the
  N x N scores and probabilities), ``flash_attention_reference`` (tiled, blocks of 256)
  and ``torch.nn.functional.scaled_dot_product_attention`` (PyTorch's fused CPU kernel);
* median forward time of the same three, measured alternately in one process.

Memory is measured honestly for torch allocations, which ``tracemalloc`` cannot see:
each (method, N) runs in a fresh subprocess with glibc's mmap threshold pinned to 64 KiB
(so freed buffers go back to the OS instead of being recycled), makes one small warm-up
call (so that paging in library code is not counted), then the kernel's peak-RSS
counter is reset through ``/proc/self/clear_refs`` just before the call, and the peak
is read from ``VmHWM`` afterwards. The number reported is that peak minus the resident
size just before the call (inputs already allocated): the extra memory the call needed,
output included. It is compared with the analytic size of two N x N fp32 matrices.

CUDA (when present): TFLOP/s of the Triton kernel against SDPA (which dispatches to
its own FlashAttention kernel), fp16, forward and forward+backward, N = 512 .. 16k,
head_dim 64 and 128, causal and not, with batch * N = 16k tokens and heads * head_dim =
2048 (the setting of the FlashAttention-2 paper's benchmarks).

Run: ``python benchmarks/flash_attention.py [--quick] [--no-write]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch
import torch.nn.functional as F

from _harness import machine, markdown_table, median_times, peak_rss_increase, write_cuda_results, write_results
from dlnotes.attention.flash import flash_attention_reference
from dlnotes.attention.sdpa import attention_reference

RESULTS = "docs/attention/results/flash_attention.json"
HEAD_DIM = 64
TILE = 256  # block_q = block_k of the tiled reference on CPU (fewer Python iterations)
METHODS = ("naive", "tiled", "sdpa")
MIB = 2**20


def cpu_inputs(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(n)
    return tuple(torch.randn(1, 1, n, HEAD_DIM, generator=generator) for _ in range(3))


def cpu_call(method: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
    if method == "naive":
        return lambda: attention_reference(q, k, v)
    if method == "tiled":
        return lambda: flash_attention_reference(q, k, v, block_q=TILE, block_k=TILE)
    if method == "sdpa":
        return lambda: F.scaled_dot_product_attention(q, k, v)
    raise ValueError(f"unknown method {method!r}")


# ----------------------------------------------------------------------------- CPU memory


def measure_memory_here(method: str, n: int) -> int:
    """Extra peak resident memory of one call, in bytes (run in a fresh process)."""
    torch.set_num_threads(1)
    with torch.no_grad():
        cpu_call(method, *cpu_inputs(512))()  # page in the library code the call touches (RSS counts it)
    q, k, v = cpu_inputs(n)
    call = cpu_call(method, q, k, v)
    with torch.no_grad():
        return peak_rss_increase(call)


def measure_memory(method: str, n: int) -> int:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(64 * 1024), OMP_NUM_THREADS="1")
    command = [sys.executable, __file__, "--memory-probe", method, str(n)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["bytes"]


# ----------------------------------------------------------------------------- CPU sweep


def cpu_sweep(sizes: list[int], repeats: int) -> list[dict]:
    points = []
    for n in sizes:
        q, k, v = cpu_inputs(n)
        with torch.no_grad():
            seconds = median_times({m: cpu_call(m, q, k, v) for m in METHODS}, repeats=repeats, warmup=1)
        memory = {m: measure_memory(m, n) for m in METHODS}
        points.append({"n": n, "seconds": seconds, "bytes": memory, "two_nxn_fp32_bytes": 2 * n * n * 4})
        print(f"  N={n}: " + ", ".join(f"{m} {seconds[m]:.3f}s {memory[m] / MIB:.1f} MiB" for m in METHODS), flush=True)
    return points


def render_cpu(points: list[dict]) -> str:
    header = ["N", "naive MiB", "tiled MiB", "SDPA MiB", "2·N² fp32 MiB", "naive / tiled memory",
              "naive ms", "tiled ms", "SDPA ms"]
    rows = []
    for p in points:
        b, s = p["bytes"], p["seconds"]
        rows.append([
            p["n"], f"{b['naive'] / MIB:.1f}", f"{b['tiled'] / MIB:.1f}", f"{b['sdpa'] / MIB:.1f}",
            f"{p['two_nxn_fp32_bytes'] / MIB:.0f}", f"{b['naive'] / b['tiled']:.0f}",
            f"{1e3 * s['naive']:.0f}", f"{1e3 * s['tiled']:.0f}", f"{1e3 * s['sdpa']:.0f}",
        ])
    return markdown_table(header, rows)


# ----------------------------------------------------------------------------- CUDA sweep


def attention_flops(batch: int, heads: int, n: int, head_dim: int, causal: bool, mode: str) -> float:
    """Two matmuls of 2·N²·d FLOPs each per head (half of them under a causal mask); backward = 2.5 x forward."""
    forward = 4.0 * batch * heads * n * n * head_dim / (2 if causal else 1)
    return forward if mode == "fwd" else 3.5 * forward


def cuda_sweep(sizes: list[int]) -> list[dict]:
    import triton.testing

    from dlnotes.attention.flash_triton import flash_attention

    points = []
    for head_dim in (64, 128):
        for causal in (False, True):
            for n in sizes:
                batch, heads = max(1, 16384 // n), 2048 // head_dim
                q, k, v = (torch.randn(batch, heads, n, head_dim, device="cuda", dtype=torch.float16, requires_grad=True)
                           for _ in range(3))
                grad = torch.randn_like(q)
                ours = lambda: flash_attention(q, k, v, causal=causal)  # noqa: E731
                theirs = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # noqa: E731
                point = {"head_dim": head_dim, "causal": causal, "n": n, "batch": batch, "heads": heads}
                for mode in ("fwd", "fwd+bwd"):
                    for name, function in (("triton", ours), ("sdpa", theirs)):
                        if mode == "fwd":
                            run = function
                        else:
                            def run(function=function):
                                function().backward(grad)
                        milliseconds = triton.testing.do_bench(run)
                        flops = attention_flops(batch, heads, n, head_dim, causal, mode)
                        point[f"{name} {mode} TFLOP/s"] = flops / (milliseconds * 1e-3) / 1e12
                points.append(point)
                print(f"  d={head_dim} causal={causal} N={n}: " + ", ".join(
                    f"{key} {value:.1f}" for key, value in point.items() if "TFLOP" in key), flush=True)
                del q, k, v, grad
    return points


def render_cuda(points: list[dict]) -> str:
    header = ["head_dim", "causal", "N", "Triton fwd", "SDPA fwd", "Triton fwd+bwd", "SDPA fwd+bwd"]
    rows = [[p["head_dim"], p["causal"], p["n"]] + [f"{p[key]:.1f}" for key in
            ("triton fwd TFLOP/s", "sdpa fwd TFLOP/s", "triton fwd+bwd TFLOP/s", "sdpa fwd+bwd TFLOP/s")]
            for p in points]
    return markdown_table(header, rows)


def render_tables(results: dict) -> list[str]:
    """Every table the chapter shows, rendered from a results dictionary (CPU, then GPU if measured)."""
    tables = [render_cpu(results["cpu"]["points"])]
    if "cuda" in results:
        tables.append(render_cuda(results["cuda"]["points"]))
    return tables


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (a smoke test)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update the results file")
    parser.add_argument("--cuda-only", action="store_true",
                        help="run only the GPU sweep and store it beside the CPU numbers already in the results file")
    parser.add_argument("--memory-probe", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        method, n = args.memory_probe
        print(json.dumps({"bytes": measure_memory_here(method, int(n))}))
        return
    if args.cuda_only and not torch.cuda.is_available():
        parser.error("--cuda-only needs a CUDA GPU")
    torch.set_num_threads(1)

    info = machine()
    print(f"machine: {info['cpu']}, torch {info['torch']}, triton {info['triton']}, 1 thread, GPU: {info['gpu']}\n")
    results = {}
    if not args.cuda_only:
        cpu_sizes = [1024, 2048] if args.quick else [1024, 2048, 4096, 8192, 16384]
        points = cpu_sweep(cpu_sizes, repeats=1 if args.quick else 3)
        results["cpu"] = {"head_dim": HEAD_DIM, "tile": TILE, "dtype": "float32", "points": points}
        print(f"\nCPU, batch 1, 1 head, head_dim {HEAD_DIM}, fp32, forward only (tiled reference with {TILE}x{TILE} tiles):\n")
        print(render_cpu(points))

    if torch.cuda.is_available():
        gpu_sizes = [512, 1024] if args.quick else [512, 1024, 2048, 4096, 8192, 16384]
        gpu_points = cuda_sweep(gpu_sizes)
        results["cuda"] = {"gpu": info["gpu"], "dtype": "float16", "points": gpu_points}
        print(f"\n{info['gpu']}, fp16, batch x N = 16k tokens, heads x head_dim = 2048, TFLOP/s:\n")
        print(render_cuda(gpu_points))
    else:
        print("\nno CUDA GPU: the Triton-vs-SDPA TFLOP/s sweep was skipped")

    if not args.no_write and not args.quick:
        if args.cuda_only:
            path = write_cuda_results(RESULTS, results["cuda"])
        else:
            path = write_results(RESULTS, results)
        print(f"\nwrote {path}; paste the tables above into the chapter's Cost section")


if __name__ == "__main__":
    main()
