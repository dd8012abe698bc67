"""launch: the return value, errors named by rank, and no hang or leftover process on failure."""

import os
import time
from pathlib import Path

import pytest
import torch

import dlnotes.distributed.launcher as launcher
from dlnotes.distributed import RankError, launch
from dlnotes.distributed.examples import fail_on_rank, rank_and_world_size
from dlnotes.distributed.launcher import default_backend, free_port, worker_device


def child_processes() -> list[str]:
    """Command lines of this process's live children, read from /proc (no psutil).

    multiprocessing's resource tracker is a long-lived helper of the spawn start method,
    not a rank, so it is left out.
    """
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid():  # field 4 of /proc/<pid>/stat: the parent's pid
                command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if "resource_tracker" not in command:
                    found.append(command)
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
    return found


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


@pytest.mark.multiprocess
@needs_proc
def test_returns_rank_zero_value_and_leaves_no_process():
    assert launch(rank_and_world_size, 2) == (0, 2)
    assert child_processes() == [], "children survived a successful launch"


@pytest.mark.multiprocess
@needs_proc
def test_exception_on_a_rank_is_raised_in_the_caller_with_the_rank():
    with pytest.raises(RankError, match="rank 1 raised ValueError: bad batch on rank 1") as caught:
        launch(fail_on_rank, 2, 1, "raise", timeout=20)
    assert caught.value.rank == 1
    assert isinstance(caught.value.__cause__, ValueError), "the original exception should be the cause"
    assert "fail_on_rank" in caught.value.remote_traceback, "the rank's traceback should come along"
    assert child_processes() == [], "children survived a failed launch"


@pytest.mark.multiprocess
@needs_proc
def test_rank_that_dies_silently_is_named():
    with pytest.raises(RankError, match="rank 1 exited with code 3") as caught:
        launch(fail_on_rank, 2, 1, "exit", timeout=20)
    assert (caught.value.rank, caught.value.exitcode) == (1, 3)
    assert child_processes() == []


@pytest.mark.multiprocess
@needs_proc
def test_stalled_rank_times_out_and_is_killed():
    timeout = 3.0
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"rank 1 still running 3 s after all ranks joined"):
        launch(fail_on_rank, 2, 1, "stall", timeout=timeout)
    assert time.monotonic() - start >= timeout, "the timeout must not fire early"
    assert child_processes() == [], "a stalled rank was left running"


@pytest.mark.multiprocess
@needs_proc
def test_start_up_has_its_own_limit(monkeypatch):
    monkeypatch.setattr(launcher, "STARTUP_TIMEOUT", 0.05)
    with pytest.raises(TimeoutError, match="did not join the process group within 0.05 s"):
        launch(rank_and_world_size, 2)
    assert child_processes() == []


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: launch(42, 2), TypeError, "fn must be callable, got int"),
        (lambda: launch(lambda: 1, 2), TypeError, "must be picklable"),
        (lambda: launch(rank_and_world_size, 2, lambda: 1), TypeError, "must be picklable"),
        (lambda: launch(rank_and_world_size, 0), ValueError, "world_size must be >= 1, got 0"),
        (lambda: launch(rank_and_world_size, 2.0), TypeError, "world_size must be an int, got float"),
        (lambda: launch(rank_and_world_size, True), TypeError, "world_size must be an int, got bool"),
        (lambda: launch(rank_and_world_size, 2, timeout=0), ValueError, "timeout must be a positive number"),
        (lambda: launch(rank_and_world_size, 2, backend="mpi"), ValueError, "backend must be one of"),
    ],
)
def test_arguments_are_checked_before_spawning(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.device_count() >= 2, reason="has enough GPUs")
def test_nccl_needs_one_gpu_per_process():
    with pytest.raises(ValueError, match="backend 'nccl' needs one GPU per process"):
        launch(rank_and_world_size, 2, backend="nccl")


def test_default_backend_follows_the_device():
    expected = "nccl" if torch.cuda.is_available() and torch.cuda.device_count() >= 2 else "gloo"
    assert default_backend(2) == expected
    assert worker_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_free_port_can_be_bound():
    import socket

    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))


def test_rank_error_keeps_its_fields():
    error = RankError("rank 2 exited with code 9", rank=2, exitcode=9)
    assert (str(error), error.rank, error.exitcode, error.remote_traceback) == ("rank 2 exited with code 9", 2, 9, "")


@pytest.mark.multiprocess
def test_a_taken_port_is_retried_on_a_fresh_one(monkeypatch):
    """If the group cannot form (here: the master port is already taken), launch retries."""
    import socket

    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    real_free_port = launcher.free_port
    offered = []

    def first_a_taken_port(host: str = "127.0.0.1") -> int:
        offered.append(taken if not offered else real_free_port(host))
        return offered[-1]

    monkeypatch.setattr(launcher, "free_port", first_a_taken_port)
    try:
        assert launcher.launch(rank_and_world_size, 2, timeout=30) == (0, 2)
    finally:
        blocker.close()
    assert offered[0] == taken and len(offered) >= 2, offered
