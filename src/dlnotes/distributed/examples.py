"""Small worker functions for :func:`dlnotes.distributed.launch`, used by the chapter and tests.

``launch`` starts fresh interpreters that import the worker by name, so a worker must live
in an importable module, not in a notebook cell or a docs snippet. Each function here runs
on every rank of an initialised process group and returns something for rank 0 to hand
back to the caller, where the checking happens.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import replace

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from dlnotes.distributed.launcher import worker_device
from dlnotes.distributed.ring import ring_all_reduce
from dlnotes.distributed.simple_ddp import SimpleDDP
from dlnotes.distributed.train import WRAPPERS, TrainConfig, make_dataset, make_model, train_worker

__all__ = ["FAILURES", "rank_and_world_size", "fail_on_rank", "rank_tensor", "ring_versus_all_reduce", "compare_data_parallel", "accumulated_gradients"]

#: The ways :func:`fail_on_rank` can make a rank fail.
FAILURES: tuple[str, ...] = ("raise", "exit", "stall")


def rank_and_world_size() -> tuple[int, int]:
    """``(rank, world_size)`` of the calling process."""
    return dist.get_rank(), dist.get_world_size()


def fail_on_rank(failing_rank: int, how: str) -> str:
    """Make one rank fail while the others wait for it in a collective.

    Args:
        failing_rank: The rank that fails.
        how: ``"raise"`` (a ``ValueError``), ``"exit"`` (``os._exit(3)``, no goodbye) or
            ``"stall"`` (sleep for an hour).

    Returns:
        ``"done"``, which the caller never sees: the healthy ranks block in a barrier
        that the failing rank never reaches.
    """
    if how not in FAILURES:
        raise ValueError(f"how must be one of {FAILURES}, got {how!r}")
    if dist.get_rank() == failing_rank:
        if how == "raise":
            raise ValueError(f"bad batch on rank {failing_rank}")
        if how == "exit":
            os._exit(3)
        time.sleep(3600)
    dist.barrier()
    return "done"


def rank_tensor(numel: int, rank: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The tensor rank ``rank`` contributes in :func:`ring_versus_all_reduce` (seeded)."""
    generator = torch.Generator().manual_seed(seed * 1_000 + rank)
    if dtype.is_floating_point:
        return torch.randn(numel, generator=generator, dtype=dtype)
    return torch.randint(-1_000, 1_000, (numel,), generator=generator, dtype=dtype)


def ring_versus_all_reduce(sizes: Sequence[int], seed: int = 0) -> list[dict]:
    """Sum each rank's :func:`rank_tensor` with the ring and with ``dist.all_reduce``.

    For every size, float32 and int64, and a non-contiguous (transposed) float32 case,
    returns what *every* rank ended with, gathered to rank 0:
    ``{"numel", "dtype", "ring": [per rank], "all_reduce": [per rank]}``.
    """
    rank, world_size, device = dist.get_rank(), dist.get_world_size(), worker_device()
    cases = []
    for numel in sizes:
        for dtype in (torch.float32, torch.int64):
            contribution = rank_tensor(numel, rank, seed, dtype).to(device)
            ours, theirs = contribution.clone(), contribution.clone()
            ring_all_reduce(ours)
            dist.all_reduce(theirs)
            cases.append({"numel": numel, "dtype": str(dtype), "ring": ours.cpu(), "all_reduce": theirs.cpu()})
    # A strided view: the ring must work on a contiguous copy and write the result back.
    contribution = rank_tensor(12, rank, seed).view(3, 4).to(device)
    ours = contribution.clone().t()  # shape (4, 3), not contiguous
    ring_all_reduce(ours)
    theirs = contribution.clone()
    dist.all_reduce(theirs)
    cases.append({"numel": 12, "dtype": "transposed", "ring": ours.t().cpu(), "all_reduce": theirs.cpu()})
    gathered = [None] * world_size
    dist.all_gather_object(gathered, cases)
    return [
        {**case, "ring": [g[i]["ring"] for g in gathered], "all_reduce": [g[i]["all_reduce"] for g in gathered]}
        for i, case in enumerate(cases)
    ]


def compare_data_parallel(config: TrainConfig) -> dict:
    """Train with every wrapper in :data:`~dlnotes.distributed.train.WRAPPERS`, and check replicas.

    Returns:
        ``{wrapper: train_worker's result}`` for each wrapper, plus
        ``"replica_gap"``: the largest difference between any rank's final weights and
        rank 0's (over all wrappers; 0 when the replicas agree), and
        ``"broadcast"``: every rank's weights after wrapping a model whose initial weights
        were seeded with ``seed + rank`` in ``SimpleDDP`` (they should all be rank 0's), and
        ``"no_sync"``: ``{"ddp": gradients, "simple": gradients}`` after
        :func:`accumulated_gradients` (rank 0's).
    """
    rank, world_size = dist.get_rank(), dist.get_world_size()
    results = {wrapper: train_worker(replace(config, wrapper=wrapper, checkpoint=None)) for wrapper in WRAPPERS}
    gap = 0.0
    for wrapper in WRAPPERS:
        states = [None] * world_size
        dist.all_gather_object(states, results[wrapper]["state_dict"])
        for state in states:
            gap = max(gap, max((state[k] - states[0][k]).abs().max().item() for k in state))
    different_start = make_model(config.features, config.hidden, config.seed + rank).to(worker_device())
    SimpleDDP(different_start)
    broadcast = [None] * world_size
    dist.all_gather_object(broadcast, {k: v.detach().cpu() for k, v in different_start.state_dict().items()})
    no_sync = {wrapper: accumulated_gradients(config, wrapper) for wrapper in ("ddp", "simple")}
    return {**results, "replica_gap": gap, "broadcast": broadcast, "no_sync": no_sync}


def accumulated_gradients(config: TrainConfig, wrapper: str, micro_batches: int = 2) -> dict[str, torch.Tensor]:
    """Gradient accumulation: ``micro_batches - 1`` backward passes under ``no_sync``, then one synchronised.

    Rank ``r``'s micro-batch ``k`` is samples ``[(k p + r) b, (k p + r + 1) b)`` of
    :func:`~dlnotes.distributed.train.make_dataset` (``b = config.batch_size``), so
    micro-batch ``k`` of all ranks together is the contiguous block ``[k p b, (k + 1) p b)``.

    Returns:
        The wrapped model's ``.grad`` of every parameter after the last backward (CPU).
    """
    rank, world_size, device = dist.get_rank(), dist.get_world_size(), worker_device()
    model = make_model(config.features, config.hidden, config.seed).to(device)
    wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if wrapper == "ddp" else SimpleDDP(model)
    x, y = make_dataset(config.num_samples, config.features, config.seed).tensors
    b = config.batch_size
    for k in range(micro_batches):
        rows = slice((k * world_size + rank) * b, (k * world_size + rank + 1) * b)
        last = k == micro_batches - 1
        with contextlib.nullcontext() if last else wrapped.no_sync():
            torch.nn.functional.mse_loss(wrapped(x[rows].to(device)), y[rows].to(device)).backward()
    return {name: parameter.grad.detach().cpu() for name, parameter in model.named_parameters()}
