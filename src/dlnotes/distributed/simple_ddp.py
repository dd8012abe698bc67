"""DistributedDataParallel written by hand, in the way torch's DDP works inside.

Three ideas make data parallelism correct and fast (Li et al., VLDB 2020):

1. **Same start.** At construction, rank 0's parameters and buffers are broadcast to every
   rank, so all replicas begin identical.
2. **Same update.** Each rank computes gradients on its own batch; the average over ranks
   $\\bar g = \\frac{1}{p}\\sum_r g_r$ is the gradient of the mean loss over the union of
   the batches. With identical parameters and identical averaged gradients, every
   optimizer step keeps the replicas identical.
3. **Overlap.** Averaging waits for nothing but the gradients it averages. Parameters are
   grouped into *buckets* of about ``bucket_cap_mb`` megabytes, in reverse registration
   order (roughly the order backward produces gradients). A hook on each parameter copies
   its gradient into its bucket when autograd has accumulated it; once a bucket is full,
   its all-reduce starts asynchronously while backward keeps computing earlier layers.
   When the last bucket is ready, the hook waits for all of them, divides by $p$ and
   writes the averages back into ``.grad``.

Buckets are launched strictly in index order on every rank (a ready bucket waits for the
earlier ones), because collectives must be issued in the same order everywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from dlnotes.distributed.ring import ring_all_reduce
from dlnotes.foundations.api_export import export

__all__ = ["SimpleDDP"]


@dataclass
class _Bucket:
    """Consecutive parameters whose gradients travel in one all-reduce."""

    parameters: list[nn.Parameter]
    offsets: list[int]
    buffer: torch.Tensor
    ready: int = 0
    work: object | None = None
    names: list[str] = field(default_factory=list)


@export("distributed.SimpleDDP")
class SimpleDDP(nn.Module):
    """Wrap a module so that ``backward`` leaves the rank-averaged gradient in every ``.grad``.

    Use it like :class:`torch.nn.parallel.DistributedDataParallel`: construct it on every
    rank after the process group is initialised, call it instead of the module, and step
    the optimizer of the wrapped module's parameters as usual.

    Differences from torch's DDP, kept to stay short: buffers are broadcast once at
    construction (not before every forward), every parameter that requires a gradient
    must receive one in each backward (as DDP's default ``find_unused_parameters=False``),
    and gradients are copied into the buckets rather than living in them.

    Args:
        module: The model replica of this rank (already on its device).
        bucket_cap_mb: Target size of a bucket in megabytes (``2**20`` bytes), ``> 0``.
        group: Process group; ``None`` means the default group.
        use_ring: Average with :func:`~dlnotes.distributed.ring.ring_all_reduce`
            (synchronous, no overlap) instead of ``torch.distributed.all_reduce``.

    Raises:
        TypeError: If ``module`` is not an ``nn.Module``.
        ValueError: If ``bucket_cap_mb <= 0``.
        RuntimeError: If no process group is initialised; from ``forward``, if the
            previous backward left some parameter without a gradient.

    Examples:
        >>> # inside a process of an initialised group (see dlnotes.distributed.launch):
        >>> # model = SimpleDDP(nn.Linear(4, 1))
        >>> # model(x).pow(2).mean().backward()   # .grad now holds the average over ranks
    """

    def __init__(self, module: nn.Module, bucket_cap_mb: float = 25.0, group: dist.ProcessGroup | None = None, use_ring: bool = False):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if not bucket_cap_mb > 0:
            raise ValueError(f"bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        if not dist.is_initialized():
            raise RuntimeError("SimpleDDP needs an initialised process group (see dlnotes.distributed.launch)")
        self.module = module
        self.group = group
        self.use_ring = use_ring
        self.world_size = dist.get_world_size(group)
        self._synchronize = True
        self._broadcast_from_rank_zero()
        self.buckets = _make_buckets(module, int(bucket_cap_mb * 2**20))
        self._next_to_launch = 0  # buckets start in index order on every rank
        for index, bucket in enumerate(self.buckets):
            for slot, parameter in enumerate(bucket.parameters):
                parameter.register_post_accumulate_grad_hook(self._hook(index, slot))

    def forward(self, *args, **kwargs):
        """Check the previous backward finished its averaging, then call the module."""
        waiting = [name for bucket in self.buckets if bucket.ready > 0 for name in bucket.names]
        if waiting:
            raise RuntimeError(
                "SimpleDDP: the previous backward did not give every parameter a gradient, so "
                f"its buckets were never averaged (buckets holding {waiting}); every parameter "
                "that requires a gradient must take part in the loss"
            )
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Inside this context, backward accumulates local gradients without communicating.

        The first backward after the context averages the accumulated gradients, so
        ``k`` micro-batches cost one round of communication (gradient accumulation).
        """
        previous, self._synchronize = self._synchronize, False
        try:
            yield
        finally:
            self._synchronize = previous

    def bucket_sizes(self) -> list[int]:
        """Number of gradient elements in each bucket, in launch order."""
        return [bucket.buffer.numel() for bucket in self.buckets]

    def _broadcast_from_rank_zero(self) -> None:
        source = 0 if self.group is None else dist.get_global_rank(self.group, 0)
        with torch.no_grad():
            for tensor in [*self.module.parameters(), *self.module.buffers()]:
                dist.broadcast(tensor, src=source, group=self.group)

    def _hook(self, index: int, slot: int):
        def on_gradient_accumulated(parameter: torch.Tensor) -> None:
            if not self._synchronize:
                return
            bucket = self.buckets[index]
            start = bucket.offsets[slot]
            bucket.buffer[start : start + parameter.numel()].copy_(parameter.grad.reshape(-1))
            bucket.ready += 1
            self._launch_ready_buckets()

        return on_gradient_accumulated

    def _launch_ready_buckets(self) -> None:
        """Start the all-reduce of every full bucket whose predecessors have started."""
        while self._next_to_launch < len(self.buckets):
            bucket = self.buckets[self._next_to_launch]
            if bucket.ready < len(bucket.parameters):
                return
            if self.use_ring:
                ring_all_reduce(bucket.buffer, group=self.group)
            else:
                bucket.work = dist.all_reduce(bucket.buffer, group=self.group, async_op=True)
            self._next_to_launch += 1
        self._finish()

    def _finish(self) -> None:
        """All buckets launched: wait, average, and write the result into ``.grad``."""
        for bucket in self.buckets:
            if bucket.work is not None:
                bucket.work.wait()
            bucket.buffer.div_(self.world_size)
            for parameter, start in zip(bucket.parameters, bucket.offsets):
                parameter.grad.copy_(bucket.buffer[start : start + parameter.numel()].view_as(parameter))
            bucket.ready, bucket.work = 0, None
        self._next_to_launch = 0


def _make_buckets(module: nn.Module, cap_bytes: int) -> list[_Bucket]:
    """Group trainable parameters, last registered first, into buckets of about ``cap_bytes``."""
    named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    buckets: list[_Bucket] = []
    members: list[tuple[str, nn.Parameter]] = []
    size_bytes = 0

    def close() -> None:
        if members:
            offsets, total = [], 0
            for _, p in members:
                offsets.append(total)
                total += p.numel()
            first = members[0][1]
            buffer = torch.zeros(total, dtype=first.dtype, device=first.device)
            buckets.append(_Bucket([p for _, p in members], offsets, buffer, names=[n for n, _ in members]))

    for name, parameter in reversed(named):
        kind_changes = members and (parameter.dtype, parameter.device) != (members[0][1].dtype, members[0][1].device)
        if members and (kind_changes or size_bytes + parameter.numel() * parameter.element_size() > cap_bytes):
            close()
            members, size_bytes = [], 0
        members.append((name, parameter))
        size_bytes += parameter.numel() * parameter.element_size()
    close()
    return buckets
