"""Start ``world_size`` processes on this machine, one per device, and run a function in each.

:func:`launch` does what ``torchrun --nproc_per_node=N`` does for a script, but for a
Python function called from a notebook, a test or a docs page:

1. find a free TCP port on 127.0.0.1 (the rendezvous point);
2. spawn ``world_size`` fresh interpreters (the *spawn* start method: no state is
   inherited, which is safe with threads and CUDA);
3. in each, set the same environment variables torchrun sets (``MASTER_ADDR``,
   ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``),
   pick the device, and call :func:`torch.distributed.init_process_group`;
4. call ``fn(*args)``, send rank 0's return value back to the caller, and destroy the
   process group.

Because the group is initialised before ``fn`` runs and the environment matches torchrun's,
the same worker function runs unchanged under ``launch`` and under ``torchrun``: it asks
:func:`torch.distributed.get_rank` for its rank and :func:`worker_device` for its device.

Failures never hang the caller. The parent watches every child: an exception on any rank
is re-raised in the caller as :class:`RankError` naming the rank (chained to the original
exception, with the rank's traceback in the message); a rank that dies without a word
(a crash, ``os._exit``) raises :class:`RankError` with its exit code; and anything still
running ``timeout`` seconds after all ranks joined the group (or not joined within
:data:`STARTUP_TIMEOUT`) raises :class:`TimeoutError`. In every case
all children are killed and joined before ``launch`` returns or raises.
"""

from __future__ import annotations

import datetime
import os
import pickle
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from dlnotes.foundations.api_export import export

__all__ = ["BACKENDS", "STARTUP_TIMEOUT", "RankError", "default_backend", "free_port", "launch", "worker_device"]

#: Backends :func:`launch` accepts: ``"gloo"`` (CPU tensors) and ``"nccl"`` (CUDA tensors).
BACKENDS: tuple[str, ...] = ("gloo", "nccl")

#: Seconds the ranks may take to start (spawn, import torch, join the group) before ``timeout``
#: starts counting. Importing torch alone takes seconds on a busy machine.
STARTUP_TIMEOUT = 120.0

_POLL_SECONDS = 0.02  # how often the parent looks at its children
_GRACE_SECONDS = 0.5  # how long a dead child's last message may take to arrive
_RENDEZVOUS_ATTEMPTS = 3  # process-group start-ups tried before a rendezvous failure is raised
_EXIT_GRACE_SECONDS = 5.0  # how long finished children may take to shut down cleanly


class RankError(RuntimeError):
    """A rank raised an exception or died; ``rank`` says which one.

    Attributes:
        rank: The rank that failed.
        exitcode: The process's exit code when it died without reporting, else ``None``.
        remote_traceback: The formatted traceback from the failing rank (empty when it
            died without one).
    """

    def __init__(self, message: str, rank: int, exitcode: int | None = None, remote_traceback: str = ""):
        super().__init__(message)
        self.rank = rank
        self.exitcode = exitcode
        self.remote_traceback = remote_traceback


class _RendezvousError(RankError):
    """The ranks could not form the process group; no rank ran ``fn``."""


def default_backend(world_size: int = 1) -> str:
    """The backend for ``world_size`` processes on this machine, chosen from the device.

    ``"nccl"`` when CUDA is available with at least one GPU per process, else ``"gloo"``.

    Examples:
        >>> default_backend(2) in BACKENDS
        True
    """
    if torch.cuda.is_available() and torch.cuda.device_count() >= world_size:
        return "nccl"
    return "gloo"


def worker_device() -> torch.device:
    """The device of the calling rank: ``cuda:LOCAL_RANK`` under NCCL, else the CPU.

    Works inside :func:`launch` and under torchrun (both set ``LOCAL_RANK``), and in a
    plain single process (no group: CUDA device 0 if there is one, else the CPU).

    Examples:
        >>> worker_device().type in ("cpu", "cuda")
        True
    """
    if dist.is_available() and dist.is_initialized():
        if dist.get_backend() == "nccl":
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that no one listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@export("distributed.launch")
def launch(fn: Callable[..., Any], world_size: int, *args: Any, backend: str | None = None, timeout: float = 60.0) -> Any:
    """Run ``fn(*args)`` in ``world_size`` new processes that form one process group.

    Each process gets rank ``0 .. world_size - 1``, one torch thread (like torchrun's
    ``OMP_NUM_THREADS=1``), its device (``cuda:rank`` under NCCL), and an initialised
    default process group. ``fn`` finds its rank with :func:`torch.distributed.get_rank`.

    Args:
        fn: A function defined at the top level of an importable module (the spawned
            processes import it by name, so lambdas, closures and functions defined in
            ``exec``-ed code or an interactive session do not work).
        world_size: Number of processes, ``>= 1``.
        *args: Arguments for ``fn``; they must be picklable.
        backend: ``"gloo"`` or ``"nccl"``; ``None`` picks :func:`default_backend`.
        timeout: Seconds ``fn`` may run, counted from the moment every rank has joined the
            process group (start-up has its own limit, :data:`STARTUP_TIMEOUT`).

    Returns:
        What ``fn`` returned on rank 0 (sent back by pickling, so return CPU tensors).

    Raises:
        TypeError: If ``fn`` is not callable or ``fn``/``args`` cannot be pickled.
        ValueError: If ``world_size < 1``, ``timeout <= 0``, ``backend`` is unknown, or
            ``"nccl"`` is asked for with fewer GPUs than processes.
        RankError: If a rank raised (chained to that exception) or died without reporting,
            or the process group could not be formed in three attempts on fresh ports.
        TimeoutError: If ranks were still running ``timeout`` seconds after all joined,
            or had not joined within :data:`STARTUP_TIMEOUT` seconds.

    Examples:
        >>> from dlnotes.distributed.examples import rank_and_world_size
        >>> launch(rank_and_world_size, 2)
        (0, 2)
    """
    payload, backend = _check_arguments(fn, world_size, args, backend, timeout)
    for attempt in range(_RENDEZVOUS_ATTEMPTS):
        try:
            return _launch_once(payload, world_size, backend, timeout)
        except _RendezvousError:
            # The group never formed (e.g. another program took a port between our probe and
            # the bind, or a peer connection was refused under load), so no rank has run fn:
            # try again on a fresh port, and report the failure after the last attempt.
            if attempt == _RENDEZVOUS_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _launch_once(payload: bytes, world_size: int, backend: str, timeout: float) -> Any:
    context = mp.get_context("spawn")
    # One pipe per rank: only that child holds the writing end, so if it dies, even in the
    # middle of a message, reading gives EOFError instead of waiting forever.
    pipes = [context.Pipe(duplex=False) for _ in range(world_size)]
    port = free_port()
    processes = [
        context.Process(target=_run_rank, args=(payload, rank, world_size, port, backend, timeout, pipes[rank][1]), name=f"launch-rank-{rank}")
        for rank in range(world_size)
    ]
    succeeded = False
    try:
        for process, (_, writer) in zip(processes, pipes):
            process.start()
            writer.close()  # the child has its own copy now
        result = _supervise(processes, [reader for reader, _ in pipes], timeout)
        succeeded = True
        return result
    finally:
        # After a success the children are only tearing down; after a failure, kill at once.
        _stop(processes, grace=_EXIT_GRACE_SECONDS if succeeded else 0.0)
        for reader, writer in pipes:
            reader.close()
            writer.close()


def _check_arguments(fn, world_size, args, backend, timeout) -> tuple[bytes, str]:
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if isinstance(world_size, bool) or not isinstance(world_size, int):
        raise TypeError(f"world_size must be an int, got {type(world_size).__name__}")
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if backend is None:
        backend = default_backend(world_size)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    if backend == "nccl":
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if gpus < world_size:
            raise ValueError(f"backend 'nccl' needs one GPU per process: world_size={world_size}, GPUs={gpus}")
    try:
        payload = pickle.dumps((fn, args))
    except Exception as error:  # pickling raises PicklingError, AttributeError, TypeError...
        raise TypeError(
            f"fn and args must be picklable so the spawned processes can import them; "
            f"define {getattr(fn, '__qualname__', fn)!s} at the top level of an importable module "
            f"({type(error).__name__}: {error})"
        ) from error
    return payload, backend


def _supervise(processes: list, readers: list, timeout: float) -> Any:
    """Wait for every rank; raise as soon as one fails or the deadline passes."""
    world_size = len(processes)
    deadline = time.monotonic() + STARTUP_TIMEOUT  # until every rank has joined
    joined: set[int] = set()
    finished: set[int] = set()
    errors: dict[int, tuple[float, bytes]] = {}  # rank -> (when it was raised, report)
    rendezvous: set[int] = set()  # ranks whose error came from joining the process group
    closed: set[int] = set()  # ranks whose pipe reached its end
    result = None

    def read_messages() -> None:
        nonlocal deadline, result
        for rank, reader in enumerate(readers):
            try:
                while rank not in closed and reader.poll():
                    kind, sent_at, body = pickle.loads(reader.recv_bytes())
                    if kind == "joined":
                        joined.add(rank)
                        if len(joined) == world_size:  # start-up is over: fn gets ``timeout``
                            deadline = time.monotonic() + timeout
                    elif kind == "result":
                        finished.add(rank)
                        if rank == 0:
                            result = pickle.loads(body)
                    else:
                        errors.setdefault(rank, (sent_at, body))
                        if kind == "rendezvous":
                            rendezvous.add(rank)
            except (EOFError, OSError):
                closed.add(rank)  # the child exited (or died mid-message)

    def silent_deaths() -> list[int]:
        """Ranks that exited without a result or an error message."""
        return [
            rank
            for rank, process in enumerate(processes)
            if (process.exitcode is not None or rank in closed) and rank not in finished and rank not in errors
        ]

    while len(finished) < world_size:
        read_messages()
        if errors or silent_deaths():
            # One failure drags the others down (a peer's socket closes, a collective fails):
            # wait a moment for every report, then name the rank that failed first. A child's
            # last message is in its pipe before its exit code shows, so a rank that merely
            # finished is told apart here too.
            time.sleep(_GRACE_SECONDS)
            read_messages()
            dead = silent_deaths()
            if errors and not joined and set(errors) <= rendezvous:
                rank = min(errors, key=lambda r: errors[r][0])
                raise _RendezvousError(str(_rank_error(rank, errors[rank][1])), rank=rank)
            if dead or errors:
                raise _first_failure(processes, dead, errors)
        if time.monotonic() > deadline:
            raise TimeoutError(_timeout_message(timeout, world_size, joined, finished))
        time.sleep(_POLL_SECONDS)
    return result


def _first_failure(processes: list, dead: list[int], errors: dict[int, tuple[float, bytes]]) -> RankError:
    """A rank that died without a word is the likeliest root cause; else the earliest error."""
    if dead:
        rank = dead[0]
        processes[rank].join(_GRACE_SECONDS)  # its pipe may close a moment before it is reaped
        exitcode = processes[rank].exitcode
        after = f" (after it, {', '.join(f'rank {r}' for r in errors)} failed too)" if errors else ""
        return RankError(
            f"rank {rank} exited with code {exitcode} without reporting a result or an exception{after}",
            rank=rank,
            exitcode=exitcode,
        )
    rank = min(errors, key=lambda r: errors[r][0])
    return _rank_error(rank, errors[rank][1])


def _rank_error(rank: int, body: bytes) -> RankError:
    type_name, message, remote_traceback, pickled = pickle.loads(body)
    error = RankError(
        f"rank {rank} raised {type_name}: {message}\n\nTraceback on rank {rank}:\n{remote_traceback}",
        rank=rank,
        remote_traceback=remote_traceback,
    )
    if pickled is not None:
        try:
            error.__cause__ = pickle.loads(pickled)
        except Exception:  # an exception class that cannot be rebuilt: keep the text only
            pass
    return error


def _timeout_message(timeout: float, world_size: int, joined: set[int], finished: set[int]) -> str:
    if len(joined) < world_size:
        missing = ", ".join(f"rank {rank}" for rank in range(world_size) if rank not in joined)
        return f"launch timed out: {missing} did not join the process group within {STARTUP_TIMEOUT:g} s"
    running = ", ".join(f"rank {rank}" for rank in range(world_size) if rank not in finished)
    return f"launch timed out: {running} still running {timeout:g} s after all ranks joined"


def _stop(processes: list, grace: float = _EXIT_GRACE_SECONDS) -> None:
    """Give children ``grace`` seconds to exit, kill the rest, and reap every one of them."""
    started = [process for process in processes if process.pid is not None]
    end = time.monotonic() + grace
    for process in started:
        process.join(max(0.0, end - time.monotonic()))
    for process in started:
        if process.is_alive():
            process.kill()
    for process in started:
        process.join()
        process.close()


# ---------------------------------------------------------------- inside each child process


def _run_rank(payload: bytes, rank: int, world_size: int, port: int, backend: str, timeout: float, pipe) -> None:
    """Body of one spawned process: set up like torchrun, run ``fn``, report back through ``pipe``."""

    def report(kind: str, body: bytes) -> None:
        pipe.send_bytes(pickle.dumps((kind, time.time(), body)))

    _exit_with_parent()
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world_size),
    )
    try:
        fn, args = pickle.loads(payload)
        if backend == "nccl":
            torch.cuda.set_device(rank)
        # The parent enforces ``timeout``; the group's own limit only has to outlast start-up.
        limit = datetime.timedelta(seconds=max(timeout, STARTUP_TIMEOUT))
    except BaseException as error:
        report("error", _describe(error))
        return
    try:
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world_size, timeout=limit)
    except BaseException as error:
        report("rendezvous", _describe(error))  # the parent may retry on a fresh port
        return
    try:
        report("joined", b"")
        result = fn(*args)
        body = pickle.dumps(result if rank == 0 else None)
    except BaseException as error:  # report everything, SystemExit and KeyboardInterrupt included
        report("error", _describe(error))
        return  # the parent kills the other ranks; do not wait for them in a collective
    report("result", body)
    dist.destroy_process_group()


def _describe(error: BaseException) -> bytes:
    remote_traceback = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    try:
        pickled = pickle.dumps(error)
        pickle.loads(pickled)  # some exceptions pickle but cannot be rebuilt
    except Exception:
        pickled = None
    return pickle.dumps((type(error).__name__, str(error), remote_traceback, pickled))


def _exit_with_parent() -> None:
    """Exit if the parent disappears (killed hard), instead of waiting forever in a collective."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True, name="watch-parent").start()


if __name__ == "__main__":  # pragma: no cover - a smoke test: python -m dlnotes.distributed.launcher
    from dlnotes.distributed.examples import rank_and_world_size

    print(launch(rank_and_world_size, 2), file=sys.stderr)
