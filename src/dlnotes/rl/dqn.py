"""Deep Q-learning (DQN): Q-learning with a neural network, a replay buffer and a target network.

Mnih et al. (2015) fit a network :math:`\\hat q(s, a; w)` (one output per action) by
minimising, over transitions :math:`(s, a, r, s', d)` drawn uniformly from a replay
buffer, the Huber loss :math:`\\ell_\\delta` of the temporal-difference error

.. math::

    J(w) = \\mathbb{E}\\Big[\\ell_\\delta\\big(\\underbrace{r + \\gamma (1 - d)
    \\max_{a'} \\hat q(s', a'; w^-)}_{\\text{target } y} - \\hat q(s, a; w)\\big)\\Big],

where :math:`d = 1` only when the episode *terminated* (a time-limit *truncation* still
bootstraps) and :math:`w^-` is a copy of :math:`w` refreshed every ``target_update_every``
gradient steps. Three devices keep the regression stable:

* **replay buffer** -- samples are reused and decorrelated (consecutive states are
  nearly identical, which a minibatch of SGD does not expect);
* **target network** -- the target :math:`y` does not move with every step on
  :math:`w`, so one gradient step is an ordinary regression step;
* **Huber loss** -- quadratic for errors below :math:`\\delta`, linear above, so rare
  large TD errors do not blow up the gradient.

Behaviour is epsilon-greedy with epsilon decayed linearly. :func:`dqn` works with any
gymnasium environment with a discrete action space: vector observations (``Box``, e.g.
``CartPole-v1``) are fed as they are; discrete observations (the grid world) go
through a feature matrix, one-hot by default.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import gymnasium
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn
from tqdm.auto import tqdm

from dlnotes._checks import check_int, check_probability
from dlnotes.foundations.api_export import export

__all__ = ["DQNConfig", "DQNResult", "ReplayBuffer", "q_network", "linear_epsilon", "greedy_returns", "dqn"]


@dataclass(frozen=True)
class DQNConfig:
    """Hyper-parameters of :func:`dqn` (the defaults solve ``CartPole-v1``).

    Args:
        total_steps: Environment steps to train for (>= 1).
        gamma: Discount factor in ``[0, 1]``.
        learning_rate: Adam step size (> 0).
        batch_size: Transitions per gradient step (>= 1).
        buffer_size: Replay capacity; the oldest transitions are overwritten (>= batch_size).
        learning_starts: Steps of pure collection before the first gradient step (>= batch_size).
        train_every: Environment steps per gradient step (>= 1).
        target_update_every: Gradient steps between copies ``w^- <- w`` (>= 1).
        epsilon_start: Exploration rate at step 0, in ``[0, 1]``.
        epsilon_end: Exploration rate after ``epsilon_decay_steps``, in ``[0, 1]``.
        epsilon_decay_steps: Steps of the linear decay (>= 1).
        hidden: Widths of the hidden layers of the Q-network.
        huber_delta: Where the Huber loss turns from quadratic to linear (> 0).
        max_grad_norm: Clip the gradient norm to this (``None``: no clipping).
        double: Use the Double-DQN target :math:`\\hat q(s', \\arg\\max_{a'} \\hat q(s', a'; w); w^-)`.
        eval_every: Environment steps between greedy evaluations (0: never).
        eval_episodes: Episodes per greedy evaluation (>= 1).
        keep_best: Return the network of the best greedy evaluation instead of the last
            one (needs ``eval_every > 0``).

    Raises:
        ValueError: If a value is outside the range given above.
    """

    total_steps: int = 60_000
    gamma: float = 0.99
    learning_rate: float = 5e-4
    batch_size: int = 64
    buffer_size: int = 50_000
    learning_starts: int = 1_000
    train_every: int = 1
    target_update_every: int = 500
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_decay_steps: int = 15_000
    hidden: tuple[int, ...] = (128, 128)
    huber_delta: float = 1.0
    max_grad_norm: float | None = 10.0
    double: bool = False
    eval_every: int = 0
    eval_episodes: int = 10
    keep_best: bool = False

    def __post_init__(self) -> None:
        for name in ("total_steps", "batch_size", "train_every", "target_update_every", "epsilon_decay_steps",
                     "eval_episodes"):
            check_int(getattr(self, name), name, minimum=1)
        for name in ("learning_starts", "eval_every"):
            check_int(getattr(self, name), name, minimum=0)
        check_int(self.buffer_size, "buffer_size", minimum=self.batch_size)
        if self.learning_starts < self.batch_size:
            raise ValueError(f"learning_starts must be >= batch_size={self.batch_size}, got {self.learning_starts}")
        for name in ("gamma", "epsilon_start", "epsilon_end"):
            check_probability(getattr(self, name), name)
        for name in ("learning_rate", "huber_delta"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0 or None, got {self.max_grad_norm}")
        if not all(isinstance(width, int) and width >= 1 for width in self.hidden):
            raise ValueError(f"hidden must hold positive ints, got {self.hidden!r}")
        if self.keep_best and self.eval_every == 0:
            raise ValueError("keep_best needs eval_every > 0")


@dataclass
class DQNResult:
    """What :func:`dqn` returns.

    Attributes:
        network: The trained Q-network, ``(batch, d) -> (batch, n_actions)``, in eval mode.
        features: The map from an observation to the network input (a ``(d,)`` float32 array).
        history: Lists for plotting: ``episode_returns``, ``episode_lengths``,
            ``episode_end_steps`` (environment step at which each episode ended),
            ``losses`` and ``loss_steps`` (mean Huber loss per 100 gradient steps),
            ``eval_steps`` and ``eval_returns`` (mean greedy return at each evaluation).
    """

    network: nn.Module
    features: Callable[[object], np.ndarray]
    history: dict[str, list] = field(default_factory=dict)

    def q_values(self, observations: Sequence[object]) -> np.ndarray:
        """``(n, n_actions)`` action values of a batch of observations."""
        inputs = torch.as_tensor(np.stack([self.features(o) for o in observations]))
        with torch.no_grad():
            return self.network(inputs).double().numpy()


class ReplayBuffer:
    """A fixed-size circular store of transitions, sampled uniformly.

    Shape:
        stored ``observation``/``next_observation``: ``(capacity, d)`` float32;
        :meth:`sample` returns tensors with a leading ``batch_size`` axis.

    Args:
        capacity: Number of transitions kept (>= 1); the oldest is overwritten first.
        observation_dim: Length ``d`` of the (featurised) observation vectors (>= 1).
        seed: Seed of the sampler.

    Examples:
        >>> buffer = ReplayBuffer(capacity=2, observation_dim=1, seed=0)
        >>> for t in range(3):
        ...     buffer.add([t], 0, float(t), [t + 1], False)
        >>> len(buffer), sorted(buffer.reward.tolist())  # transition 0 was overwritten
        (2, [1.0, 2.0])
        >>> buffer.sample(3)["observation"].shape
        torch.Size([3, 1])
    """

    def __init__(self, capacity: int, observation_dim: int, seed: int | None = None) -> None:
        self.capacity = check_int(capacity, "capacity", minimum=1)
        observation_dim = check_int(observation_dim, "observation_dim", minimum=1)
        self.observation = np.zeros((self.capacity, observation_dim), dtype=np.float32)
        self.next_observation = np.zeros((self.capacity, observation_dim), dtype=np.float32)
        self.action = np.zeros(self.capacity, dtype=np.int64)
        self.reward = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=np.float32)
        self._next = 0
        self._size = 0
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self._size

    def add(self, observation, action: int, reward: float, next_observation, terminated: bool) -> None:
        """Store one transition ``(s, a, r, s', terminated)``, overwriting the oldest when full."""
        i = self._next
        self.observation[i] = observation
        self.action[i] = action
        self.reward[i] = reward
        self.next_observation[i] = next_observation
        self.terminated[i] = float(terminated)
        self._next = (i + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """``batch_size`` transitions drawn uniformly with replacement.

        Raises:
            ValueError: If the buffer is empty or ``batch_size < 1``.
        """
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        index = self._rng.integers(self._size, size=batch_size)
        return {
            "observation": torch.from_numpy(self.observation[index]),
            "action": torch.from_numpy(self.action[index]),
            "reward": torch.from_numpy(self.reward[index]),
            "next_observation": torch.from_numpy(self.next_observation[index]),
            "terminated": torch.from_numpy(self.terminated[index]),
        }


def q_network(input_dim: int, n_actions: int, hidden: Sequence[int] = (128, 128)) -> nn.Sequential:
    """A multilayer perceptron with ReLUs: ``input_dim -> hidden... -> n_actions``.

    Shape:
        input: ``(batch, input_dim)``; output: ``(batch, n_actions)``, one value per action.

    Examples:
        >>> q_network(4, 2, hidden=(8,))(torch.zeros(3, 4)).shape
        torch.Size([3, 2])
    """
    widths = [input_dim, *hidden]
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], n_actions))
    return nn.Sequential(*layers)


def linear_epsilon(step: int, start: float, end: float, decay_steps: int) -> float:
    """Exploration rate decayed linearly from ``start`` to ``end`` over ``decay_steps``.

    Examples:
        >>> [round(linear_epsilon(t, 1.0, 0.1, 10), 6) for t in (0, 5, 10, 20)]
        [1.0, 0.55, 0.1, 0.1]
    """
    fraction = min(step / decay_steps, 1.0)
    return start + fraction * (end - start)


def greedy_returns(
    env: gymnasium.Env,
    network: nn.Module,
    episodes: int,
    seed: int,
    features: Callable[[object], np.ndarray] | None = None,
) -> np.ndarray:
    """Undiscounted returns of the greedy policy :math:`\\arg\\max_a \\hat q(s, a)`.

    Episode ``i`` starts from ``env.reset(seed=seed + i)``, so the evaluation is
    reproducible and different seeds give disjoint sets of start states.

    Shape:
        result: ``(episodes,)``.

    Args:
        env: An episodic environment (it must terminate or truncate).
        network: Q-network ``(batch, d) -> (batch, n_actions)``.
        episodes: Number of episodes (>= 1).
        seed: Seed of the first episode.
        features: Observation to network input (default: as for :func:`dqn`).

    Returns:
        Float array of returns.
    """
    episodes = check_int(episodes, "episodes", minimum=1)
    featurize = features if features is not None else _default_features(env.observation_space)
    returns = np.zeros(episodes)
    network.eval()
    for i in range(episodes):
        observation, _ = env.reset(seed=seed + i)
        done = False
        while not done:
            with torch.no_grad():
                action = int(network(torch.as_tensor(featurize(observation))[None]).argmax())
            observation, reward, terminated, truncated, _ = env.step(action)
            returns[i] += reward
            done = terminated or truncated
    return returns


@export("rl.dqn")
def dqn(
    env: gymnasium.Env | str,
    config: DQNConfig | None = None,
    *,
    features: np.ndarray | Callable[[object], np.ndarray] | None = None,
    eval_env: gymnasium.Env | None = None,
    seed: int = 0,
    progress: bool = False,
) -> DQNResult:
    """Train a deep Q-network with replay, a target network and the Huber loss.

    Each environment step: act epsilon-greedily, store the transition, and every
    ``train_every`` steps (after ``learning_starts``) take one Adam step on a replayed
    minibatch with target :math:`y = r + \\gamma (1 - \\text{terminated})
    \\max_{a'} \\hat q(s', a'; w^-)`.

    Args:
        env: A gymnasium environment with a ``Discrete`` action space and a ``Box`` or
            ``Discrete`` observation space, or its registered id (e.g. ``"CartPole-v1"``).
            Episodes must end (terminate or truncate); wrap continuing tasks in
            ``gymnasium.wrappers.TimeLimit``.
        config: Hyper-parameters (default :class:`DQNConfig`).
        features: How an observation becomes the network input: a callable returning a
            ``(d,)`` array, or for a ``Discrete`` observation space an ``(n_states, d)``
            matrix whose row ``s`` is the input for state ``s``. Default: the observation
            itself (``Box``) or one-hot (``Discrete``).
        eval_env: Environment for greedy evaluations (default: a fresh copy of ``env``).
        seed: Seeds the network initialisation, the replay sampler, exploration and the
            environment (``reset(seed=seed)`` once, then episodes continue its stream).
        progress: Show a tqdm progress bar over environment steps.

    Returns:
        A :class:`DQNResult` with the network, the feature map and the training history.

    Raises:
        TypeError: If the spaces are not supported or ``config`` is not a DQNConfig.
        ValueError: If a feature matrix does not fit the observation space.

    Examples:
        >>> result = dqn("CartPole-v1", DQNConfig(total_steps=300, learning_starts=100), seed=0)
        >>> len(result.history["episode_returns"]) > 0
        True
    """
    config = DQNConfig() if config is None else config
    if not isinstance(config, DQNConfig):
        raise TypeError(f"config must be a DQNConfig, got {type(config).__name__}")
    if isinstance(env, str):
        eval_env = gymnasium.make(env) if eval_env is None else eval_env
        env = gymnasium.make(env)
    if not isinstance(env.action_space, spaces.Discrete):
        raise TypeError(f"dqn needs a Discrete action space, got {env.action_space}")
    featurize = _make_features(env.observation_space, features)
    if config.eval_every and eval_env is None:
        eval_env = copy.deepcopy(env)
    n_actions = int(env.action_space.n)

    observation, _ = env.reset(seed=seed)
    state = featurize(observation)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        online = q_network(state.shape[0], n_actions, config.hidden)
    target = copy.deepcopy(online)
    target.requires_grad_(False)
    optimizer = torch.optim.Adam(online.parameters(), lr=config.learning_rate)
    buffer = ReplayBuffer(config.buffer_size, state.shape[0], seed=seed)
    rng = np.random.default_rng(seed + 1)

    history: dict[str, list] = {key: [] for key in ("episode_returns", "episode_lengths", "episode_end_steps",
                                                     "losses", "loss_steps", "eval_steps", "eval_returns")}
    best_score, best_weights = -math.inf, None
    episode_return, episode_length, gradient_steps, loss_sum, loss_count = 0.0, 0, 0, 0.0, 0
    for step in tqdm(range(1, config.total_steps + 1), disable=not progress, desc="dqn", mininterval=1.0):
        # Act: epsilon-greedy on the online network.
        epsilon = linear_epsilon(step - 1, config.epsilon_start, config.epsilon_end, config.epsilon_decay_steps)
        if rng.random() < epsilon:
            action = int(rng.integers(n_actions))
        else:
            with torch.no_grad():
                action = int(online(torch.from_numpy(state)[None]).argmax())
        observation, reward, terminated, truncated, _ = env.step(action)
        next_state = featurize(observation)
        buffer.add(state, action, reward, next_state, terminated)  # truncation still bootstraps
        state = next_state
        episode_return += float(reward)
        episode_length += 1
        if terminated or truncated:
            history["episode_returns"].append(episode_return)
            history["episode_lengths"].append(episode_length)
            history["episode_end_steps"].append(step)
            episode_return, episode_length = 0.0, 0
            observation, _ = env.reset()
            state = featurize(observation)

        # Learn: one regression step towards the frozen target.
        if step >= config.learning_starts and step % config.train_every == 0:
            loss = _gradient_step(online, target, optimizer, buffer.sample(config.batch_size), config)
            gradient_steps += 1
            loss_sum, loss_count = loss_sum + loss, loss_count + 1
            if loss_count == 100:
                history["losses"].append(loss_sum / loss_count)
                history["loss_steps"].append(step)
                loss_sum, loss_count = 0.0, 0
            if gradient_steps % config.target_update_every == 0:
                target.load_state_dict(online.state_dict())  # w^- <- w

        if config.eval_every and step % config.eval_every == 0:
            score = float(greedy_returns(eval_env, online, config.eval_episodes, seed=10_000 * (seed + 1) + step,
                                         features=featurize).mean())
            online.train()
            history["eval_steps"].append(step)
            history["eval_returns"].append(score)
            if config.keep_best and score >= best_score:
                best_score, best_weights = score, copy.deepcopy(online.state_dict())

    if best_weights is not None:
        online.load_state_dict(best_weights)
    online.eval()
    return DQNResult(network=online, features=featurize, history=history)


def _gradient_step(online: nn.Module, target: nn.Module, optimizer: torch.optim.Optimizer,
                   batch: dict[str, torch.Tensor], config: DQNConfig) -> float:
    q = online(batch["observation"]).gather(1, batch["action"][:, None]).squeeze(1)  # q(s, a; w)
    with torch.no_grad():
        next_q = target(batch["next_observation"])  # q(s', .; w^-)
        if config.double:
            best = online(batch["next_observation"]).argmax(dim=1, keepdim=True)
            next_value = next_q.gather(1, best).squeeze(1)
        else:
            next_value = next_q.max(dim=1).values
        y = batch["reward"] + config.gamma * (1.0 - batch["terminated"]) * next_value
    loss = F.huber_loss(q, y, delta=config.huber_delta)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.max_grad_norm is not None:
        nn.utils.clip_grad_norm_(online.parameters(), config.max_grad_norm)
    optimizer.step()
    return loss.item()


def _default_features(space: spaces.Space) -> Callable[[object], np.ndarray]:
    return _make_features(space, None)


def _make_features(space: spaces.Space, features) -> Callable[[object], np.ndarray]:
    if callable(features):
        return lambda observation: np.asarray(features(observation), dtype=np.float32)
    if isinstance(space, spaces.Discrete):
        n = int(space.n)
        matrix = np.eye(n, dtype=np.float32) if features is None else np.asarray(features, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != n:
            raise ValueError(f"features must be an ({n}, d) matrix for a Discrete({n}) observation space, "
                             f"got shape {matrix.shape}")
        return lambda observation: matrix[int(observation)]
    if isinstance(space, spaces.Box):
        if features is not None:
            raise TypeError("for a Box observation space, features must be a callable or None")
        return lambda observation: np.asarray(observation, dtype=np.float32).reshape(-1)
    raise TypeError(f"dqn supports Box or Discrete observation spaces, got {space}")
