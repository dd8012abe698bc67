"""Data-parallel throughput on CPU: 1 process against 2, and the share of time spent communicating.

Every process has one torch thread (as under torchrun), so with 2 processes on 2 cores the
best case is twice the samples per second of 1 process. Inside the same 2-process run the
script alternates, step block by step block:

* ``DDP``: torch's DistributedDataParallel (gradients all-reduced in buckets, overlapped);
* ``DDP no_sync``: the same steps without any communication (compute only);
* ``SimpleDDP`` and ``SimpleDDP + ring``: this part's hand-written versions.

The share of a step spent waiting for communication is ``1 - t(no_sync) / t(DDP)``; the
time of one bare ``all_reduce`` of all gradients is reported next to it. Writes
``docs/distributed/results/ddp.json``.

Run: ``python benchmarks/ddp.py [--quick]``
"""

from __future__ import annotations

import argparse
import contextlib

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from _harness import machine, markdown_table, median_times, write_results
from dlnotes.distributed import SimpleDDP, launch
from dlnotes.distributed.train import make_model

RESULTS = "docs/distributed/results/ddp.json"


def step_block(model: nn.Module, optimizer, x, y, steps: int, sync: bool = True) -> None:
    """``steps`` optimizer steps on the same batch; ``sync=False`` skips all communication."""
    for _ in range(steps):
        context = model.no_sync() if not sync else contextlib.nullcontext()
        with context:
            loss = nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
        optimizer.step()


def measure(features: int, hidden: int, batch_sizes: list[int], steps: int, repeats: int) -> dict:
    """Runs on every rank; returns rank 0's median seconds per block, for each batch size."""
    rank, world_size = dist.get_rank(), dist.get_world_size()
    parameters = sum(p.numel() for p in make_model(features, hidden).parameters())
    by_batch = {}
    for batch_size in batch_sizes:
        generator = torch.Generator().manual_seed(rank)
        x = torch.randn(batch_size, features, generator=generator)
        y = torch.randn(batch_size, 1, generator=generator)
        by_batch[batch_size] = _time_variants(features, hidden, x, y, steps, repeats, world_size, parameters)
    return {"parameters": parameters, "seconds": by_batch}


def _time_variants(features, hidden, x, y, steps, repeats, world_size, parameters) -> dict[str, float]:
    if world_size == 1:
        model = make_model(features, hidden)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        return median_times({"1 process": lambda: step_block(model, optimizer, x, y, steps)}, repeats=repeats)
    models = {
        "DDP": DistributedDataParallel(make_model(features, hidden)),
        "SimpleDDP": SimpleDDP(make_model(features, hidden)),
        "SimpleDDP + ring": SimpleDDP(make_model(features, hidden), use_ring=True),
    }
    optimizers = {name: torch.optim.SGD(model.parameters(), lr=1e-3) for name, model in models.items()}
    gradients = torch.zeros(parameters)
    functions = {
        "DDP": lambda: step_block(models["DDP"], optimizers["DDP"], x, y, steps),
        "DDP no_sync": lambda: step_block(models["DDP"], optimizers["DDP"], x, y, steps, sync=False),
        "SimpleDDP": lambda: step_block(models["SimpleDDP"], optimizers["SimpleDDP"], x, y, steps),
        "SimpleDDP + ring": lambda: step_block(models["SimpleDDP + ring"], optimizers["SimpleDDP + ring"], x, y, steps),
        "all_reduce only": lambda: [dist.all_reduce(gradients) for _ in range(steps)],
    }
    dist.barrier()
    return median_times(functions, repeats=repeats)


def render(results: dict) -> str:
    steps = results["steps"]
    rows = []
    for batch in results["batch_sizes"]:
        one = results["single"]["seconds"][batch]["1 process"]
        two = results["double"]["seconds"][batch]
        compute = two["DDP no_sync"]
        rows.append([batch, "1 process", "-", f"{batch * steps / one:,.0f}", "1.00", f"{1e3 * one / steps:.2f}"])
        for name in ("DDP no_sync", "DDP", "SimpleDDP", "SimpleDDP + ring"):
            waiting = "0 %" if name == "DDP no_sync" else f"{100 * max(0.0, 1 - compute / two[name]):.0f} %"
            rows.append(
                [batch, f"2 processes, {name}", waiting, f"{2 * batch * steps / two[name]:,.0f}", f"{2 * one / two[name]:.2f}", f"{1e3 * two[name] / steps:.2f}"]
            )
    header = ["batch per process", "run", "time waiting for communication", "samples/s", "speed-up", "ms/step"]
    allreduce = ", ".join(
        f"{1e3 * results['double']['seconds'][b]['all_reduce only'] / steps:.2f} ms (batch {b} run)" for b in results["batch_sizes"]
    )
    parameters = results["double"]["parameters"]
    return (
        f"{parameters:,} parameters ({4 * parameters / 2**20:.1f} MiB of fp32 gradients), "
        f"{steps} steps per timing, median of {results['repeats']}.\n\n{markdown_table(header, rows)}\n\n"
        f"One bare all_reduce of all gradients: {allreduce}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (a smoke test)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update the results file")
    args = parser.parse_args()
    features, hidden = (64, 256) if args.quick else (256, 2048)
    batch_sizes, steps, repeats = ([16], 2, 1) if args.quick else ([64, 1024], 10, 7)
    settings = (features, hidden, batch_sizes, steps, repeats)
    # CPU on purpose, even where GPUs exist: the point is the 2-core caveat, gloo throughout.
    single = launch(measure, 1, *settings, backend="gloo", timeout=1200)
    double = launch(measure, 2, *settings, backend="gloo", timeout=1200)
    results = {"features": features, "hidden": hidden, "batch_sizes": batch_sizes, "steps": steps, "repeats": repeats}
    results.update(single=single, double=double)
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, 1 thread per process, gloo\n")
    print(render(results))
    if not args.no_write and not args.quick:
        path = write_results(RESULTS, results)
        print(f"\nwrote {path}; paste the table above into the chapter's Cost section")


if __name__ == "__main__":
    main()
