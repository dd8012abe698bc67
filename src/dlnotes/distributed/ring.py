"""Ring all-reduce: every process ends with the sum of everyone's tensor.

Arrange the $p$ processes in a ring, rank $r$ sending to $r + 1$ and receiving from
$r - 1$ (mod $p$), and cut each tensor into $p$ chunks $c_0, \\dots, c_{p-1}$.

* **Reduce-scatter** ($p - 1$ steps). At step $s$ rank $r$ sends its running sum of
  chunk $(r - s) \\bmod p$ and adds what it receives into chunk $(r - s - 1) \\bmod p$.
  After the last step rank $r$ holds the complete sum of chunk $(r + 1) \\bmod p$.
* **All-gather** ($p - 1$ steps). At step $s$ rank $r$ sends the finished chunk
  $(r + 1 - s) \\bmod p$ and overwrites chunk $(r - s) \\bmod p$ with what it receives.

Each step moves one chunk, about $n/p$ elements, per process, so each process sends
$2(p-1) \\cdot n/p$ elements in total: a fixed amount, nearly $2n$, however many processes
join. That is why the ring is *bandwidth optimal* (Patarasuk and Yuan, 2009).

:func:`ring_all_reduce` runs the schedule over point-to-point ``send``/``recv``;
:func:`simulate_ring_all_reduce` runs the same schedule on a list of tensors in one
process, to watch it and to count the traffic.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from dlnotes.foundations.api_export import export

__all__ = ["ring_steps", "ring_all_reduce", "simulate_ring_all_reduce"]


def ring_steps(rank: int, world_size: int) -> list[tuple[str, int, int]]:
    """The schedule of one rank: ``(phase, chunk sent, chunk received)`` for every step.

    ``phase`` is ``"reduce-scatter"`` (add the received chunk) for the first
    ``world_size - 1`` steps, then ``"all-gather"`` (copy it) for as many more.

    Args:
        rank: This process's rank, ``0 <= rank < world_size``.
        world_size: Number of processes in the ring, ``>= 1``.

    Returns:
        A list of ``2 * (world_size - 1)`` tuples.

    Raises:
        ValueError: If ``world_size < 1`` or ``rank`` is out of range.

    Examples:
        >>> ring_steps(0, 3)
        [('reduce-scatter', 0, 2), ('reduce-scatter', 2, 1), ('all-gather', 1, 0), ('all-gather', 0, 2)]
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must satisfy 0 <= rank < world_size = {world_size}, got {rank}")
    p = world_size
    steps = [("reduce-scatter", (rank - s) % p, (rank - s - 1) % p) for s in range(p - 1)]
    steps += [("all-gather", (rank + 1 - s) % p, (rank - s) % p) for s in range(p - 1)]
    return steps


@export("distributed.ring_all_reduce")
def ring_all_reduce(tensor: torch.Tensor, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """Sum ``tensor`` over all ranks of ``group``, in place, by the ring algorithm.

    Same contract as ``torch.distributed.all_reduce(tensor, group=group)`` with the
    default ``SUM``: every rank passes a tensor of the same shape and dtype and ends with
    the elementwise sum. Any number of elements works; chunk sizes differ by at most one
    (:func:`torch.tensor_split`), and empty chunks (fewer elements than ranks) are skipped
    by both sides of the ring.

    Shape:
        tensor: any shape, the same on every rank; returned unchanged in shape.

    Args:
        tensor: The local contribution; overwritten with the sum.
        group: The process group; ``None`` means the default group.

    Returns:
        ``tensor`` itself, now holding the sum.

    Raises:
        TypeError: If ``tensor`` is not a tensor or is a boolean tensor.
        RuntimeError: If no process group is initialised.

    Examples:
        >>> # on every rank of a 2-process group:
        >>> # t = torch.tensor([1.0, 2.0]) * (dist.get_rank() + 1)
        >>> # ring_all_reduce(t)  -> tensor([3., 6.]) on both ranks
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dtype == torch.bool:
        raise TypeError("tensor must be numeric, got dtype torch.bool (the sum of booleans is not boolean)")
    if not dist.is_initialized():
        raise RuntimeError("ring_all_reduce needs an initialised process group (see dlnotes.distributed.launch)")
    world_size = dist.get_world_size(group)
    if world_size == 1:
        return tensor
    rank = dist.get_rank(group)
    contiguous = tensor.is_contiguous()
    flat = tensor.view(-1) if contiguous else tensor.contiguous().view(-1)  # a copy when strided
    chunks = torch.tensor_split(flat, world_size)  # views into ``flat``; sizes differ by <= 1
    send_to = _global_rank(group, (rank + 1) % world_size)
    receive_from = _global_rank(group, (rank - 1) % world_size)
    buffer = torch.empty_like(chunks[0])  # the largest chunk: tensor_split puts extras first
    for phase, sent, received in ring_steps(rank, world_size):
        incoming = buffer[: chunks[received].numel()]
        _exchange(chunks[sent], send_to, incoming, receive_from, group)
        if phase == "reduce-scatter":
            chunks[received].add_(incoming)  # running sum of this chunk
        else:
            chunks[received].copy_(incoming)  # the finished sum of this chunk
    if not contiguous:
        tensor.copy_(flat.view(tensor.shape))
    return tensor


def simulate_ring_all_reduce(tensors: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[int]]:
    """Run the ring schedule on ``p`` tensors in one process (rank ``r`` owns ``tensors[r]``).

    Every step of every rank happens "at once": messages are snapshots taken before any
    rank updates, as with real concurrent sends.

    Args:
        tensors: One tensor per rank, all of the same shape.

    Returns:
        ``(results, elements_sent)``: the tensor each rank ends with (new tensors; the
        inputs are not modified), and how many elements each rank sent.

    Raises:
        ValueError: If ``tensors`` is empty or the shapes differ.

    Examples:
        >>> results, sent = simulate_ring_all_reduce([torch.ones(6), 2 * torch.ones(6), 3 * torch.ones(6)])
        >>> results[1].tolist(), sent
        ([6.0, 6.0, 6.0, 6.0, 6.0, 6.0], [8, 8, 8])
    """
    if len(tensors) == 0:
        raise ValueError("tensors must hold one tensor per rank, got an empty list")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"every rank's tensor must have the same shape, got {sorted(shapes)}")
    p = len(tensors)
    flats = [t.detach().reshape(-1).clone() for t in tensors]
    chunks = [torch.tensor_split(flat, p) for flat in flats]
    sent = [0] * p
    schedules = [ring_steps(rank, p) for rank in range(p)]
    for step in range(2 * (p - 1)):
        # Rank r receives from r - 1 what r - 1 sends at this step.
        messages = [chunks[rank][schedules[rank][step][1]].clone() for rank in range(p)]
        for rank in range(p):
            phase, chunk_sent, received = schedules[rank][step]
            sent[rank] += chunks[rank][chunk_sent].numel()
            incoming = messages[(rank - 1) % p]
            if phase == "reduce-scatter":
                chunks[rank][received].add_(incoming)
            else:
                chunks[rank][received].copy_(incoming)
    return [flat.view_as(t) for flat, t in zip(flats, tensors)], sent


def _exchange(outgoing: torch.Tensor, send_to: int, incoming: torch.Tensor, receive_from: int, group) -> None:
    """Send one chunk to the next rank while receiving one from the previous rank."""
    operations = []
    if outgoing.numel() > 0:
        operations.append(dist.P2POp(dist.isend, outgoing, send_to, group))
    if incoming.numel() > 0:
        operations.append(dist.P2POp(dist.irecv, incoming, receive_from, group))
    if operations:
        for work in dist.batch_isend_irecv(operations):
            work.wait()


def _global_rank(group: dist.ProcessGroup | None, group_rank: int) -> int:
    """Point-to-point calls take ranks of the default group; translate from ``group``."""
    return group_rank if group is None else dist.get_global_rank(group, group_rank)
