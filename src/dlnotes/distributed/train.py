"""A small regression model trained twice: in one process, and data-parallel with DDP.

:func:`train_single_process` is the ordinary training loop. :func:`train_worker` is the
same loop made data-parallel; the differences are exactly the ones a DDP conversion needs:

* the model is wrapped (``DistributedDataParallel``, or this part's ``SimpleDDP``), which
  broadcasts rank 0's weights at construction and averages gradients during backward;
* a ``DistributedSampler`` gives each rank a disjoint slice of every epoch's shuffled
  order, and ``set_epoch`` reshuffles it each epoch (the same seed on every rank);
* only rank 0 prints progress and writes the checkpoint, and the other ranks wait for it
  at a barrier.

With a per-rank batch of ``b`` on ``p`` ranks, one DDP step sees the same ``p * b``
samples as one single-process step with batch ``p * b`` (same shuffle seed), and averaging
per-rank mean losses' gradients gives the gradient of the mean loss over all of them: the
two runs produce the same weights up to float rounding.

Run it with torchrun (one process per device; ``gloo`` on CPU, ``nccl`` on GPUs)::

    python -m torch.distributed.run --nproc_per_node=2 -m dlnotes.distributed.train --steps 50

or without torchrun, through :func:`dlnotes.distributed.launch`::

    python -m dlnotes.distributed.train --nproc 2 --steps 50
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler, TensorDataset
from tqdm.auto import tqdm

from dlnotes.distributed.launcher import default_backend, launch, worker_device
from dlnotes.distributed.simple_ddp import SimpleDDP

__all__ = [
    "WRAPPERS",
    "TrainConfig",
    "make_dataset",
    "make_model",
    "train_single_process",
    "train_worker",
    "load_checkpoint",
    "main",
]

#: How :func:`train_worker` makes the model data-parallel.
WRAPPERS: tuple[str, ...] = ("ddp", "simple", "simple-ring")


@dataclass(frozen=True)
class TrainConfig:
    """Settings shared by the single-process and the data-parallel run.

    Args:
        steps: Optimizer steps (epochs follow from ``num_samples`` and the batch).
        batch_size: Samples per step *per process*.
        num_samples: Size of the generated dataset.
        features: Input features of the regression problem.
        hidden: Width of the hidden layer.
        learning_rate: SGD learning rate.
        momentum: SGD momentum.
        shuffle: Reshuffle the data every epoch (seeded with ``seed + epoch``).
        seed: Seed of the data, the initial weights and the shuffling.
        wrapper: ``"ddp"`` (torch's DDP), ``"simple"`` (``SimpleDDP``) or
            ``"simple-ring"`` (``SimpleDDP`` averaging with the ring all-reduce).
        checkpoint: File rank 0 writes at the end (model, optimizer, step); ``None``: none.
        log_every: Print the loss every this many steps (rank 0 only); ``0``: never.
        progress: Show a tqdm bar on rank 0.
    """

    steps: int = 100
    batch_size: int = 16
    num_samples: int = 1024
    features: int = 8
    hidden: int = 32
    learning_rate: float = 0.05
    momentum: float = 0.9
    shuffle: bool = True
    seed: int = 0
    wrapper: str = "ddp"
    checkpoint: str | None = None
    log_every: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "num_samples", "features", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.log_every < 0:
            raise ValueError(f"log_every must be >= 0, got {self.log_every}")
        if self.wrapper not in WRAPPERS:
            raise ValueError(f"wrapper must be one of {WRAPPERS}, got {self.wrapper!r}")


def make_dataset(num_samples: int, features: int, seed: int = 0) -> TensorDataset:
    """Inputs ``x ~ N(0, I)`` and targets from a fixed random two-layer teacher plus noise.

    Shape:
        tensors: ``x`` is ``(num_samples, features)``, ``y`` is ``(num_samples, 1)``.

    Examples:
        >>> x, y = make_dataset(4, 3).tensors
        >>> tuple(x.shape), tuple(y.shape)
        ((4, 3), (4, 1))
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(num_samples, features, generator=generator)
    teacher_in = torch.randn(features, 16, generator=generator) / features**0.5
    teacher_out = torch.randn(16, 1, generator=generator) / 4.0
    y = torch.tanh(x @ teacher_in) @ teacher_out + 0.05 * torch.randn(num_samples, 1, generator=generator)
    return TensorDataset(x, y)


def make_model(features: int, hidden: int, seed: int = 0) -> nn.Sequential:
    """A two-layer perceptron ``features -> hidden -> 1`` with seeded initial weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(features, hidden), nn.Tanh(), nn.Linear(hidden, 1))


def train_single_process(config: TrainConfig, batch_size: int | None = None) -> dict:
    """The plain training loop: one process, one model, the whole batch.

    Args:
        config: The settings (``wrapper`` and ``checkpoint`` are ignored; the
            generator that shuffles is reseeded with ``seed + epoch`` every epoch, which is
            what ``DistributedSampler`` does, so both runs visit the data in one order).
        batch_size: Overrides ``config.batch_size`` (pass ``p * b`` to match a DDP run
            with ``p`` ranks of batch ``b``).

    Returns:
        ``{"state_dict": CPU weights, "losses": loss of every step}``.
    """
    batch_size = batch_size or config.batch_size
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    dataset = make_dataset(config.num_samples, config.features, config.seed)
    order = torch.Generator()  # reseeded every epoch, as DistributedSampler.set_epoch does
    sampler = RandomSampler(dataset, generator=order) if config.shuffle else SequentialSampler(dataset)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True)
    model = make_model(config.features, config.hidden, config.seed).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate, momentum=config.momentum)
    losses: list[float] = []
    bar = tqdm(total=config.steps, disable=not config.progress, desc="train")
    for epoch in range(_epochs(config, len(loader))):
        order.manual_seed(config.seed + epoch)
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.update(1)
            if config.log_every and len(losses) % config.log_every == 0:
                print(f"step {len(losses)}/{config.steps} loss {losses[-1]:.4f}", flush=True)
            if len(losses) == config.steps:
                break
    bar.close()
    return {"state_dict": _cpu_state(model), "losses": losses}


def train_worker(config: TrainConfig) -> dict:
    """The same training, data-parallel: run it on every rank of an initialised group.

    Args:
        config: The settings; ``batch_size`` is per process.

    Returns:
        ``{"state_dict": CPU weights, "losses": loss of every step averaged over ranks}``
        (the same on every rank).

    Raises:
        RuntimeError: If no process group is initialised.
    """
    if not dist.is_initialized():
        raise RuntimeError("train_worker needs an initialised process group: use launch() or torchrun")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    device = worker_device()
    dataset = make_dataset(config.num_samples, config.features, config.seed)
    # Each rank reads a disjoint 1/world_size of every epoch's shuffled order.
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=config.shuffle, seed=config.seed)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, drop_last=True)
    model = _wrap(make_model(config.features, config.hidden, config.seed).to(device), config.wrapper, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate, momentum=config.momentum)
    losses: list[float] = []
    bar = tqdm(total=config.steps, disable=not (config.progress and rank == 0), desc="train")
    for epoch in range(_epochs(config, len(loader))):
        sampler.set_epoch(epoch)  # a new shuffle each epoch, identical on every rank
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()  # gradients are averaged over ranks during this call
            optimizer.step()
            losses.append(_mean_over_ranks(loss))
            bar.update(1)
            if rank == 0 and config.log_every and len(losses) % config.log_every == 0:
                print(f"step {len(losses)}/{config.steps} loss {losses[-1]:.4f}", flush=True)
            if len(losses) == config.steps:
                break
    bar.close()
    if config.checkpoint is not None:
        if rank == 0:  # one writer; the replicas are identical anyway
            _save(config.checkpoint, model.module, optimizer, len(losses))
            print(f"saved checkpoint {config.checkpoint}", flush=True)
        dist.barrier()  # nobody reads (or exits) before the file is complete
    return {"state_dict": _cpu_state(model.module), "losses": losses}


def load_checkpoint(path: str | os.PathLike, config: TrainConfig) -> tuple[nn.Module, dict]:
    """Rebuild the model of ``config`` from a checkpoint written by :func:`train_worker`.

    Returns:
        ``(model, checkpoint)`` where ``checkpoint`` holds ``"step"`` and ``"optimizer"``.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = make_model(config.features, config.hidden, config.seed)
    model.load_state_dict(checkpoint["model"])  # saved from .module: no "module." prefix
    return model, checkpoint


def main(argv: Sequence[str] | None = None) -> dict | None:
    """Command line: under torchrun (``RANK`` is set) join its group; else use :func:`launch`."""
    parser = argparse.ArgumentParser(prog="python -m dlnotes.distributed.train", description=__doc__.splitlines()[0])
    defaults = TrainConfig()
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="per process")
    parser.add_argument("--num-samples", type=int, default=defaults.num_samples)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--wrapper", choices=WRAPPERS, default=defaults.wrapper)
    parser.add_argument("--checkpoint", default=None, help="file rank 0 writes at the end")
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--progress", action="store_true", help="tqdm bar on rank 0")
    parser.add_argument("--nproc", type=int, default=2, help="processes when not started by torchrun")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds, when not started by torchrun")
    args = parser.parse_args(argv)
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        num_samples=args.num_samples,
        learning_rate=args.learning_rate,
        seed=args.seed,
        wrapper=args.wrapper,
        checkpoint=args.checkpoint,
        log_every=args.log_every,
        progress=args.progress,
    )
    if "RANK" not in os.environ:  # not started by torchrun: start the processes ourselves
        return launch(train_worker, args.nproc, config, timeout=args.timeout)
    backend = default_backend(int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"])))
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend)  # MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE from torchrun
    try:
        result = train_worker(config)
    finally:
        dist.destroy_process_group()
    return result if int(os.environ["RANK"]) == 0 else None


def _wrap(model: nn.Module, wrapper: str, device: torch.device) -> nn.Module:
    if wrapper == "ddp":
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return SimpleDDP(model, use_ring=wrapper == "simple-ring")


def _epochs(config: TrainConfig, batches_per_epoch: int) -> int:
    if batches_per_epoch == 0:
        raise ValueError(
            f"num_samples={config.num_samples} gives no full batch of {config.batch_size} per process; "
            "lower batch_size or raise num_samples"
        )
    return -(-config.steps // batches_per_epoch)  # ceiling division


def _mean_over_ranks(loss: torch.Tensor) -> float:
    value = loss.detach().clone()
    dist.all_reduce(value)
    return value.item() / dist.get_world_size()


def _cpu_state(model: nn.Module) -> dict:
    return {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}


def _save(path: str, model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
    """Write to a temporary file, then rename: a crash never leaves a half-written checkpoint."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, partial)
    os.replace(partial, target)


if __name__ == "__main__":
    main()
    if "RANK" in os.environ:
        # DistributedDataParallel keeps the gloo group's C++ worker threads alive past
        # destroy_process_group(), so they are torn down during interpreter finalisation,
        # which on a loaded machine now and then aborts the process ("terminate called
        # without an active exception", SIGABRT) after all work is done. Everything is
        # written and flushed by now: leave without running the finalisers.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
