"""The training script: its pieces, its checks, and an end-to-end torchrun run."""

import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

from dlnotes.distributed.launcher import free_port
from dlnotes.distributed.train import TrainConfig, load_checkpoint, make_dataset, make_model, train_single_process, train_worker


def test_dataset_is_seeded_and_shaped():
    x, y = make_dataset(10, 4, seed=1).tensors
    assert (tuple(x.shape), tuple(y.shape)) == ((10, 4), (10, 1))
    torch.testing.assert_close(make_dataset(10, 4, seed=1).tensors[1], y)
    assert not torch.equal(make_dataset(10, 4, seed=2).tensors[1], y)


def test_model_seed_does_not_touch_the_global_generator():
    before = torch.random.get_rng_state()
    first, second = make_model(3, 5, seed=7), make_model(3, 5, seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.testing.assert_close(first[0].weight, second[0].weight)


def test_single_process_training_learns():
    result = train_single_process(TrainConfig(steps=60, batch_size=32, num_samples=512))
    losses = result["losses"]
    assert len(losses) == 60
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10, "the loss should at least halve"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": 0}, "steps must be >= 1, got 0"),
        ({"batch_size": -1}, "batch_size must be >= 1, got -1"),
        ({"log_every": -1}, "log_every must be >= 0, got -1"),
        ({"wrapper": "horovod"}, "wrapper must be one of"),
    ],
)
def test_config_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_too_little_data_for_one_batch():
    with pytest.raises(ValueError, match="gives no full batch of 64"):
        train_single_process(TrainConfig(num_samples=10, batch_size=64))


def test_worker_needs_a_process_group():
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="needs an initialised process group"):
        train_worker(TrainConfig())


@pytest.mark.multiprocess
def test_torchrun_entry_point_end_to_end(tmp_path):
    checkpoint = tmp_path / "model.pt"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        "--master_addr=127.0.0.1", f"--master_port={free_port()}",
        "-m", "dlnotes.distributed.train",
        "--steps", "3", "--batch-size", "8", "--num-samples", "64", "--seed", "5",
        "--log-every", "1", "--checkpoint", str(checkpoint),
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=environment)
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout}\n{done.stderr}"
    # Only rank 0 reports, once per step, and saves once.
    assert done.stdout.count("step 3/3 loss") == 1, done.stdout
    assert done.stdout.count("saved checkpoint") == 1, done.stdout
    config = TrainConfig(steps=3, batch_size=8, num_samples=64, seed=5)
    model, saved = load_checkpoint(checkpoint, config)
    assert saved["step"] == 3
    reference = train_single_process(config, batch_size=16)["state_dict"]
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, reference[name], rtol=1e-5, atol=1e-5)
