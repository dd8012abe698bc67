"""Ring all-reduce: the schedule, a one-process simulation, and the real thing against dist.all_reduce."""

import datetime
import math

import pytest
import torch
import torch.distributed as dist
from hypothesis import given, settings
from hypothesis import strategies as st

from dlnotes.distributed import launch, ring_all_reduce
from dlnotes.distributed.examples import rank_tensor, ring_versus_all_reduce
from dlnotes.distributed.launcher import free_port
from dlnotes.distributed.ring import ring_steps, simulate_ring_all_reduce


@settings(max_examples=100, deadline=None)
@given(world_size=st.integers(1, 7), numel=st.integers(0, 40), seed=st.integers(0, 1000))
def test_simulation_sums_exactly_and_sends_the_ring_amount(world_size, numel, seed):
    generator = torch.Generator().manual_seed(seed)
    tensors = [torch.randint(-100, 100, (numel,), generator=generator) for _ in range(world_size)]
    originals = [t.clone() for t in tensors]
    results, sent = simulate_ring_all_reduce(tensors)
    total = torch.stack(originals).sum(dim=0)
    for result in results:
        assert torch.equal(result, total), "every rank must end with the elementwise sum"
    assert all(torch.equal(a, b) for a, b in zip(tensors, originals)), "inputs must not change"
    # Each rank sends 2(p - 1) chunks of at most ceil(n / p) elements; exactly 2(p-1)/p n when p divides n.
    assert all(s <= 2 * (world_size - 1) * math.ceil(numel / world_size) for s in sent)
    if numel % world_size == 0:
        assert sent == [2 * (world_size - 1) * numel // world_size] * world_size


def test_simulation_keeps_the_shape():
    tensors = [torch.full((2, 3), float(r)) for r in range(3)]
    results, sent = simulate_ring_all_reduce(tensors)
    assert [tuple(r.shape) for r in results] == [(2, 3)] * 3
    torch.testing.assert_close(results[2], torch.full((2, 3), 3.0))
    assert sent == [8, 8, 8]  # 2 * (3 - 1) chunks of 2 elements


@pytest.mark.parametrize("world_size", [2, 3, 5])
def test_after_reduce_scatter_each_rank_owns_the_next_chunk(world_size):
    for rank in range(world_size):
        steps = ring_steps(rank, world_size)
        assert len(steps) == 2 * (world_size - 1)
        reduce_scatter = [step for step in steps if step[0] == "reduce-scatter"]
        assert reduce_scatter[-1][2] == (rank + 1) % world_size, "last chunk summed is the owned one"
        # Every step receives what the previous rank sends at that same step.
        previous = ring_steps((rank - 1) % world_size, world_size)
        assert [received for _, _, received in steps] == [sent for _, sent, _ in previous]


def test_schedule_errors():
    with pytest.raises(ValueError, match="world_size must be >= 1, got 0"):
        ring_steps(0, 0)
    with pytest.raises(ValueError, match="rank must satisfy 0 <= rank < world_size = 2, got 2"):
        ring_steps(2, 2)
    with pytest.raises(ValueError, match="empty list"):
        simulate_ring_all_reduce([])
    with pytest.raises(ValueError, match="same shape"):
        simulate_ring_all_reduce([torch.zeros(2), torch.zeros(3)])


def test_argument_errors():
    with pytest.raises(TypeError, match="tensor must be a torch.Tensor, got list"):
        ring_all_reduce([1.0, 2.0])
    with pytest.raises(TypeError, match="torch.bool"):
        ring_all_reduce(torch.zeros(2, dtype=torch.bool))
    if not dist.is_initialized():
        with pytest.raises(RuntimeError, match="needs an initialised process group"):
            ring_all_reduce(torch.zeros(2))


def test_single_process_group_leaves_the_tensor_alone():
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1, timeout=datetime.timedelta(seconds=30))
    try:
        tensor = torch.arange(5.0)
        assert ring_all_reduce(tensor) is tensor
        torch.testing.assert_close(tensor, torch.arange(5.0))
    finally:
        dist.destroy_process_group()


@pytest.mark.multiprocess
@pytest.mark.parametrize("world_size", [2, 3])
def test_equals_all_reduce(world_size):
    sizes, seed = [1, 7, 1000], 0
    cases = launch(ring_versus_all_reduce, world_size, sizes, seed)
    assert [(case["numel"], case["dtype"]) for case in cases] == [
        (n, d) for n in sizes for d in ("torch.float32", "torch.int64")
    ] + [(12, "transposed")]
    for case in cases:
        dtype = torch.int64 if case["dtype"] == "torch.int64" else torch.float32
        # The reference is computed here, from the same seeded inputs, with no communication.
        expected = sum(rank_tensor(case["numel"], rank, seed, dtype) for rank in range(world_size))
        if case["dtype"] == "transposed":
            expected = expected.view(3, 4)
        for rank in range(world_size):
            ours, theirs = case["ring"][rank], case["all_reduce"][rank]
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5, msg=lambda m: f"{case['numel']}/{case['dtype']} rank {rank}: {m}")
            torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
            if dtype == torch.int64:
                assert torch.equal(ours, expected), "integer sums must be exact"
