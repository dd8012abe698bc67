"""Shared machinery for benchmark scripts: timing, machine description, tables, results files.

Every benchmark measures an implementation and its baseline in the same process,
alternating between them, takes the median of several repeats, and reports ratios.
Results go to ``docs/<part>/results/<name>.json`` together with the command, the
machine and the library versions, so the chapters can render them.
"""

from __future__ import annotations

import json
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict:
    """CPU/GPU name and the versions that matter for the numbers."""
    info = {
        "cpu": _cpu_name(),
        "cores": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    return info


def median_times(functions: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median wall time in seconds of each zero-argument callable.

    The callables are run in turn inside every repeat (alternating), so a slow phase of
    the machine hits all of them alike.
    """
    for _ in range(warmup):
        for function in functions.values():
            function()
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            function()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def peak_rss_increase(function: Callable[[], object]) -> int:
    """Bytes by which the process's peak resident memory rises while ``function`` runs.

    Linux only: the peak counter (``VmHWM``) is reset to the current resident size through
    ``/proc/self/clear_refs`` just before the call and read right after it. Run it in a
    fresh process after a warm-up call, so that only the call's own buffers count.
    """
    before = _status_bytes("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter (VmHWM) to now
    result = function()
    peak = _status_bytes("VmHWM")
    del result
    return peak - before


def write_results(path: str | Path, results: dict) -> Path:
    """Write ``results`` plus the command, machine and versions to a JSON file under the repo.

    GPU measurements already in the file (its ``"cuda"`` entry, see
    :func:`write_cuda_results`) are kept when ``results`` brings none, so rerunning a
    benchmark on a machine without a GPU does not throw them away.
    """
    target = ROOT / path
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
        "machine": machine(),
        **results,
    }
    if "cuda" not in payload and target.exists():
        previous = json.loads(target.read_text())
        if "cuda" in previous:
            payload["cuda"] = previous["cuda"]
    target.write_text(json.dumps(payload, indent=2) + "\n")
    return target


def write_cuda_results(path: str | Path, cuda: dict) -> Path:
    """Store GPU measurements under the ``"cuda"`` key of an existing results file.

    The CPU numbers in the file (and the machine they were taken on) stay as they are;
    the GPU part records its own command and machine, since it is usually measured on
    another computer.
    """
    target = ROOT / path
    payload = json.loads(target.read_text()) if target.exists() else {}
    payload["cuda"] = {
        "command": " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
        "machine": machine(),
        **cuda,
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(payload, indent=2) + "\n")
    return target


def _status_bytes(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE).group(1)) * 1024


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
