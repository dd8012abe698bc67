"""Deep Q-learning: replay buffer, the learner on the grid world, and the CartPole results file."""

import ast
import json
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.wrappers import TimeLimit

from dlnotes.rl.dqn import DQNConfig, ReplayBuffer, greedy_returns, linear_epsilon, q_network
from dlnotes.rl.gridworld import GridWorld, action_values, evaluate_policy, optimal_action_mask, value_iteration
from dlnotes.rl.value_function import dqn

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "rl" / "results" / "dqn_cartpole.json"
SCRIPT = ROOT / "benchmarks" / "dqn_cartpole.py"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks: two threads only add contention (10x slower on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------- replay buffer
def test_replay_buffer_keeps_the_newest_transitions():
    buffer = ReplayBuffer(capacity=3, observation_dim=2, seed=0)
    for t in range(5):
        buffer.add([t, -t], t % 2, float(t), [t + 1, -t - 1], t == 4)
    assert len(buffer) == 3
    batch = buffer.sample(200)
    assert set(batch["reward"].tolist()) == {2.0, 3.0, 4.0}  # transitions 0 and 1 were overwritten
    # Every sampled row is one consistent transition.
    torch.testing.assert_close(batch["observation"][:, 0], batch["reward"])
    torch.testing.assert_close(batch["next_observation"][:, 0], batch["reward"] + 1)
    torch.testing.assert_close(batch["action"], batch["reward"].long() % 2)
    torch.testing.assert_close(batch["terminated"], (batch["reward"] == 4).float())
    assert batch["observation"].shape == (200, 2) and batch["observation"].dtype == torch.float32


def test_replay_buffer_samples_uniformly():
    buffer = ReplayBuffer(capacity=4, observation_dim=1, seed=1)
    for t in range(4):
        buffer.add([t], 0, float(t), [t], False)
    counts = np.bincount(buffer.sample(40_000)["reward"].long().numpy(), minlength=4)
    np.testing.assert_allclose(counts / 40_000, 0.25, atol=0.01)


def test_replay_buffer_errors():
    with pytest.raises(ValueError, match="empty replay buffer"):
        ReplayBuffer(capacity=2, observation_dim=1).sample(1)
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        ReplayBuffer(capacity=0, observation_dim=1)


def test_helpers():
    assert [linear_epsilon(t, 1.0, 0.0, 4) for t in (0, 2, 4, 8)] == [1.0, 0.5, 0.0, 0.0]
    net = q_network(3, 5, hidden=(4, 6))
    assert [m.out_features for m in net if isinstance(m, torch.nn.Linear)] == [4, 6, 5]


# ------------------------------------------------------------------- learning on the grid
def test_dqn_learns_the_optimal_grid_policy():
    """The book's setting: a uniformly random behaviour policy (epsilon = 1), replay, a target net."""
    world = GridWorld(start=None)  # exploring starts: reset() draws a random cell
    values, _ = value_iteration(world, tol=1e-12)
    q_star = action_values(world, values)
    config = DQNConfig(total_steps=4_000, gamma=world.gamma, learning_rate=2e-3, batch_size=64, buffer_size=4_000,
                       learning_starts=500, target_update_every=100, epsilon_start=1.0, epsilon_end=1.0,
                       hidden=(64,))
    result = dqn(TimeLimit(world, max_episode_steps=100), config, seed=0)
    q = result.q_values(list(range(world.n_states))).reshape(q_star.shape)
    greedy = q.argmax(axis=-1)
    is_optimal = np.take_along_axis(optimal_action_mask(q_star), greedy[..., None], axis=-1)[..., 0]
    assert is_optimal.all(), f"non-optimal greedy actions at cells {np.argwhere(~is_optimal) + 1}"
    np.testing.assert_allclose(evaluate_policy(world, greedy), values, atol=1e-8)
    assert np.abs(q - q_star).max() < 1.0, np.abs(q - q_star).max()
    assert len(result.history["episode_returns"]) == 40
    assert result.history["losses"][-1] < result.history["losses"][0]


def test_dqn_history_on_cartpole_is_consistent():
    config = DQNConfig(total_steps=600, learning_starts=200, batch_size=32, eval_every=300, eval_episodes=2,
                       keep_best=True, hidden=(16,))
    result = dqn("CartPole-v1", config, seed=3)
    history = result.history
    assert sum(history["episode_lengths"]) <= 600
    assert np.all(np.diff(history["episode_end_steps"]) > 0)
    np.testing.assert_array_equal(history["episode_returns"], history["episode_lengths"])  # reward 1 per step
    assert history["eval_steps"] == [300, 600] and len(history["eval_returns"]) == 2
    assert len(history["losses"]) == 4  # 401 gradient steps, averaged per 100
    best = max(history["eval_returns"])
    assert greedy_returns(gymnasium.make("CartPole-v1"), result.network, 1, seed=0, features=result.features).shape == (1,)
    assert best >= 8


def test_dqn_is_reproducible():
    config = DQNConfig(total_steps=300, learning_starts=100, batch_size=16, hidden=(8,))
    first = dqn("CartPole-v1", config, seed=5)
    second = dqn("CartPole-v1", config, seed=5)
    assert first.history == second.history
    for a, b in zip(first.network.parameters(), second.network.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"gamma": 1.5}, "gamma must be in"),
        ({"gamma": -0.1}, "gamma must be in"),
        ({"epsilon_start": 2.0}, "epsilon_start must be in"),
        ({"epsilon_end": -0.5}, "epsilon_end must be in"),
        ({"learning_rate": 0.0}, "learning_rate must be > 0"),
        ({"batch_size": 64, "learning_starts": 10}, "learning_starts must be >="),
        ({"buffer_size": 8}, "buffer_size must be >="),
        ({"keep_best": True}, "keep_best needs eval_every > 0"),
        ({"hidden": (0,)}, "hidden must hold positive ints"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DQNConfig(**kwargs)


def test_dqn_argument_errors():
    with pytest.raises(TypeError, match="Discrete action space"):
        dqn("Pendulum-v1", DQNConfig(total_steps=10, learning_starts=64))
    with pytest.raises(ValueError, match=r"features must be an \(25, d\) matrix"):
        dqn(TimeLimit(GridWorld(), 10), features=np.eye(24))
    with pytest.raises(TypeError, match="config must be a DQNConfig"):
        dqn("CartPole-v1", {"total_steps": 10})


# --------------------------------------------------------------------- CartPole results file
def test_cartpole_results_were_written_by_the_benchmark_and_solve_it():
    """Training to the target takes minutes, so ``benchmarks/dqn_cartpole.py`` does it once."""
    results = json.loads(RESULTS.read_text())
    assert results["command"].startswith("python benchmarks/dqn_cartpole.py"), results["command"]
    assert results["environment"] == "CartPole-v1"
    evaluation = results["evaluation"]
    assert evaluation["episodes"] == len(evaluation["returns"]) == 100
    assert np.isclose(evaluation["mean"], np.mean(evaluation["returns"]))
    assert evaluation["mean"] >= 195, evaluation["mean"]
    # The stored configuration is the one the script defines (read from its source).
    tree = ast.parse(SCRIPT.read_text())
    config_call = next(node.value for node in ast.walk(tree)
                       if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "CONFIG")
    stored = results["config"]
    for keyword in config_call.keywords:
        value = ast.literal_eval(keyword.value)
        assert stored[keyword.arg] == (list(value) if isinstance(value, tuple) else value), keyword.arg
    history = results["history"]
    assert len(history["episode_returns"]) == len(history["episode_end_steps"]) > 0
    assert history["episode_end_steps"][-1] <= stored["total_steps"]
