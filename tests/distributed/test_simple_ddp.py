"""SimpleDDP against torch's DDP and against single-process training, plus its own checks."""

import datetime

import pytest
import torch
import torch.distributed as dist
from torch import nn

from dlnotes.distributed import SimpleDDP, launch
from dlnotes.distributed.examples import compare_data_parallel
from dlnotes.distributed.launcher import free_port
from dlnotes.distributed.train import TrainConfig, make_dataset, make_model, train_single_process

WORLD_SIZE = 2
# 64 samples, 8 per rank per step: 4 steps per epoch, so 6 steps cross an epoch boundary
# (set_epoch must reshuffle identically on every rank for the runs to agree).
CONFIG = TrainConfig(steps=6, batch_size=8, num_samples=64, features=5, hidden=12, shuffle=True, seed=3)


@pytest.fixture(scope="module")
def runs():
    """One launch trains with DDP, SimpleDDP and SimpleDDP + ring; the tests share it."""
    return launch(compare_data_parallel, WORLD_SIZE, CONFIG, timeout=120)


@pytest.fixture(scope="module")
def single_process():
    """The reference: one process, one model, the batches of all ranks concatenated."""
    return train_single_process(CONFIG, batch_size=WORLD_SIZE * CONFIG.batch_size)


def assert_same_weights(ours: dict, reference: dict, what: str) -> None:
    assert ours.keys() == reference.keys()
    for name in reference:
        torch.testing.assert_close(ours[name], reference[name], rtol=1e-5, atol=1e-5, msg=lambda m: f"{what}, {name}: {m}")


@pytest.mark.multiprocess
def test_ddp_equals_single_process_on_concatenated_batches(runs, single_process):
    assert_same_weights(runs["ddp"]["state_dict"], single_process["state_dict"], "DDP vs one process")
    torch.testing.assert_close(torch.tensor(runs["ddp"]["losses"]), torch.tensor(single_process["losses"]), rtol=1e-5, atol=1e-6)
    # The comparison has teeth: the weights did move away from the start.
    start = make_model(CONFIG.features, CONFIG.hidden, CONFIG.seed).state_dict()
    assert max((single_process["state_dict"][k] - start[k]).abs().max().item() for k in start) > 1e-2


@pytest.mark.multiprocess
@pytest.mark.parametrize("wrapper", ["simple", "simple-ring"])
def test_simple_ddp_equals_ddp(runs, wrapper):
    assert_same_weights(runs[wrapper]["state_dict"], runs["ddp"]["state_dict"], f"{wrapper} vs DDP")


@pytest.mark.multiprocess
def test_replicas_stay_identical(runs):
    assert runs["replica_gap"] <= 1e-7, f"ranks disagree by {runs['replica_gap']}"


@pytest.mark.multiprocess
def test_construction_broadcasts_rank_zero_weights(runs):
    rank_zero_start = make_model(CONFIG.features, CONFIG.hidden, CONFIG.seed).state_dict()
    rank_one_start = make_model(CONFIG.features, CONFIG.hidden, CONFIG.seed + 1).state_dict()
    assert not torch.equal(rank_zero_start["0.weight"], rank_one_start["0.weight"]), "the test needs different starts"
    for rank, state in enumerate(runs["broadcast"]):
        assert_same_weights(state, rank_zero_start, f"rank {rank} after construction")


@pytest.mark.multiprocess
def test_no_sync_accumulation_equals_ddp_and_one_process(runs):
    # Reference: one process, the same two micro-batches of all ranks, gradients accumulated.
    model = make_model(CONFIG.features, CONFIG.hidden, CONFIG.seed)
    x, y = make_dataset(CONFIG.num_samples, CONFIG.features, CONFIG.seed).tensors
    block = WORLD_SIZE * CONFIG.batch_size
    for k in range(2):
        nn.functional.mse_loss(model(x[k * block : (k + 1) * block]), y[k * block : (k + 1) * block]).backward()
    expected = {name: parameter.grad for name, parameter in model.named_parameters()}
    assert_same_weights(runs["no_sync"]["ddp"], expected, "DDP no_sync vs one process")
    assert_same_weights(runs["no_sync"]["simple"], runs["no_sync"]["ddp"], "SimpleDDP no_sync vs DDP")


@pytest.fixture
def one_process_group():
    """A process group of one (this pytest process): enough for bucketing and hook logic."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1, timeout=datetime.timedelta(seconds=30))
    yield
    dist.destroy_process_group()


def test_buckets_follow_reverse_order_and_the_cap(one_process_group):
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))  # parameters: 12, 3, 6, 2 elements
    # Cap 32 bytes = 8 float32 values. Reversed: [2.bias 2 + 2.weight 6] then [1.bias 3] then [1.weight 12].
    wrapped = SimpleDDP(model, bucket_cap_mb=32 / 2**20)
    assert wrapped.bucket_sizes() == [8, 3, 12]
    assert [bucket.names for bucket in wrapped.buckets] == [["1.bias", "1.weight"], ["0.bias"], ["0.weight"]]
    assert SimpleDDP(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))).bucket_sizes() == [23]


def test_one_rank_gradients_equal_autograd(one_process_group):
    torch.manual_seed(0)
    model, reference = nn.Linear(5, 3), nn.Linear(5, 3)
    reference.load_state_dict(model.state_dict())
    wrapped = SimpleDDP(model, bucket_cap_mb=20 / 2**20)
    x = torch.randn(4, 5)
    for _ in range(2):  # twice: the buckets must reset between backward passes
        wrapped(x).square().sum().backward()
        reference(x).square().sum().backward()
        for ours, theirs in zip(model.parameters(), reference.parameters()):
            torch.testing.assert_close(ours.grad, theirs.grad)


def test_no_sync_skips_the_hooks(one_process_group):
    wrapped = SimpleDDP(nn.Linear(3, 1))
    with wrapped.no_sync():
        wrapped(torch.ones(2, 3)).sum().backward()
        assert all(bucket.ready == 0 for bucket in wrapped.buckets)
    assert wrapped._synchronize, "leaving the context must restore synchronisation"


def test_unused_parameter_is_reported_at_the_next_forward(one_process_group):
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(3, 1), nn.Linear(3, 1)

        def forward(self, x):
            return self.used(x)

    wrapped = SimpleDDP(TwoHeads(), bucket_cap_mb=1e-6)  # one parameter per bucket
    wrapped(torch.ones(2, 3)).sum().backward()
    with pytest.raises(RuntimeError, match="did not give every parameter a gradient"):
        wrapped(torch.ones(2, 3))


def test_argument_errors(one_process_group):
    with pytest.raises(TypeError, match="module must be a torch.nn.Module, got function"):
        SimpleDDP(lambda x: x)
    with pytest.raises(ValueError, match="bucket_cap_mb must be > 0, got 0"):
        SimpleDDP(nn.Linear(2, 2), bucket_cap_mb=0)


def test_needs_a_process_group():
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="needs an initialised process group"):
        SimpleDDP(nn.Linear(2, 2))
