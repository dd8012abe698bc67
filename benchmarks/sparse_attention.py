"""Sparse attention: computed score entries, peak memory and time for each pattern as N grows.

Two Markdown tables:

1. *Work*, from the block layouts alone (cheap, up to N = 16384): for each pattern and
   length N, the non-empty tiles that ``sparse_attention`` computes, the score entries
   they hold (tiles x block^2) as a fraction of N^2, the entries the mask actually
   allows, and the largest key set gathered for one query block.
2. *Time and memory* (up to ``--max-time-n``): ``sparse_attention`` against dense masked
   attention (``attention_reference`` with the same boolean mask, and PyTorch's
   ``scaled_dot_product_attention`` with it), measured alternately in one process. Peak
   memory is the rise of the process's peak resident set during one call on CPU (reset
   through ``/proc/self/clear_refs``) or ``torch.cuda.max_memory_allocated`` on a GPU;
   the dense mask itself is built beforehand and not counted. On CPU, glibc's mmap
   threshold is fixed at 64 KiB so that large buffers are fresh pages (see
   ``_fix_mmap_threshold``); buffers under 64 KiB are not seen.

Writes ``docs/attention/results/sparse_attention.json``.

Run: ``python benchmarks/sparse_attention.py [--quick] [--max-time-n 4096] [--no-write]``
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc

import torch
import torch.nn.functional as F

from _harness import machine, markdown_table, median_times, peak_rss_increase, write_results
from dlnotes.attention.sdpa import attention_reference
from dlnotes.attention.sparse import block_sparse_cost, parse_pattern, sparse_attention

RESULTS = "docs/attention/results/sparse_attention.json"
PATTERNS = {
    "causal (all keys)": "dilated:1",
    "local w=128": "local:128",
    "atrous d=4, w=32": "dilated:4:32",
    "strided s=64": "strided:64",
    "fixed l=128, c=16": "fixed:128:16",
}
BLOCK_SIZE = 64
BATCH, HEADS, HEAD_DIM = 1, 4, 64


def work_table_rows(lengths: list[int]) -> list[dict]:
    rows = []
    for name, spec in PATTERNS.items():
        for n in lengths:
            cost = block_sparse_cost(spec, n, block_size=BLOCK_SIZE)
            rows.append({"pattern": name, "spec": spec, "n": n, **cost._asdict()})
    return rows


def peak_memory(function) -> int | None:
    """Bytes the peak memory rises by while ``function`` runs (None where it cannot be measured)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        function()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    try:
        return peak_rss_increase(function)
    except OSError:
        return None


def _fix_mmap_threshold(threshold: int = 1 << 16) -> None:
    """Make glibc serve every allocation of 64 KiB or more by a fresh mmap, returned on free.

    By default glibc raises its mmap threshold after large frees and then reuses heap
    pages that are already resident, so a call's peak resident set would miss them.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(-3, threshold)  # M_MMAP_THRESHOLD = -3; setting it disables the dynamic threshold
    except (OSError, AttributeError, TypeError):
        pass


def measure(spec: str, n: int, repeats: int) -> dict:
    generator = torch.Generator().manual_seed(n)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    q, k, v = (torch.randn(BATCH, HEADS, n, HEAD_DIM, generator=generator).to(device) for _ in range(3))
    mask = parse_pattern(spec).mask(n, n, causal=True, device=device)
    functions = {
        "sparse": lambda: sparse_attention(q, k, v, spec, block_size=BLOCK_SIZE),
        "dense": lambda: attention_reference(q, k, v, mask=mask),
        "sdpa": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
    }
    error = (functions["sparse"]() - functions["dense"]()).abs().max().item()
    seconds = median_times(functions, repeats=repeats)
    memory = {name: peak_memory(function) for name, function in functions.items()}
    return {"spec": spec, "n": n, "seconds": seconds, "peak_bytes": memory, "max_abs_error": error}


def render_work(rows: list[dict]) -> str:
    header = ["pattern", "N", "tiles computed / all", "computed / N²", "allowed / N²", "useful share", "max keys per block"]
    body = [
        [
            row["pattern"],
            row["n"],
            f"{row['tiles']} / {row['total_tiles']}",
            f"{row['computed_entries'] / row['dense_entries']:.4f}",
            f"{row['allowed_entries'] / row['dense_entries']:.4f}",
            f"{row['allowed_entries'] / row['computed_entries']:.2f}",
            row["max_row_keys"],
        ]
        for row in rows
    ]
    return markdown_table(header, body)


def render_time(rows: list[dict], names: dict[str, str]) -> str:
    def mib(value: int | None) -> str:
        return "n/a" if value is None else f"{value / 2**20:.1f}"

    header = ["pattern", "N", "sparse (ms)", "dense (ms)", "SDPA (ms)", "dense / sparse", "sparse peak (MiB)", "dense peak (MiB)", "SDPA peak (MiB)"]
    body = []
    for row in rows:
        s, m = row["seconds"], row["peak_bytes"]
        body.append(
            [
                names[row["spec"]],
                row["n"],
                f"{1e3 * s['sparse']:.1f}",
                f"{1e3 * s['dense']:.1f}",
                f"{1e3 * s['sdpa']:.1f}",
                f"{s['dense'] / s['sparse']:.2f}",
                mib(m["sparse"]),
                mib(m["dense"]),
                mib(m["sdpa"]),
            ]
        )
    return markdown_table(header, body)


def render(results: dict) -> str:
    """The Markdown the chapter shows, rendered from a results dictionary."""
    names = {spec: name for name, spec in PATTERNS.items()}
    config = results["config"]
    return "\n".join(
        [
            f"Work (block {config['block_size']}, causal):",
            "",
            render_work(results["work"]),
            "",
            f"Time and peak memory (batch {config['batch']}, {config['heads']} heads, head_dim {config['head_dim']}, fp32, causal):",
            "",
            render_time(results["timing"], names),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (a smoke test)")
    parser.add_argument("--max-time-n", type=int, default=4096, help="largest N that is timed (default 4096)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update the results file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    _fix_mmap_threshold()

    work_lengths = [256, 512] if args.quick else [256, 512, 1024, 2048, 4096, 8192, 16384]
    time_lengths = [256, 512] if args.quick else [n for n in (256, 1024, 4096, 8192) if n <= args.max_time_n]
    repeats = 1 if args.quick else 3

    work = work_table_rows(work_lengths)
    timing = []
    for spec in PATTERNS.values():
        for n in time_lengths:
            timing.append(measure(spec, n, repeats))
            print(f"measured {spec} N={n}", flush=True)
    results = {
        "config": {"block_size": BLOCK_SIZE, "batch": BATCH, "heads": HEADS, "head_dim": HEAD_DIM, "dtype": "float32"},
        "patterns": PATTERNS,
        "work": work,
        "timing": timing,
    }
    print()
    print(render(results))
    info = machine()
    print()
    print(f"Machine: {info['cpu']}, {info['cores']} thread(s), GPU {info['gpu']}, torch {info['torch']}")
    if not args.no_write and not args.quick:
        print(f"wrote {write_results(RESULTS, results)}")


if __name__ == "__main__":
    main()
