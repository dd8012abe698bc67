"""Monte Carlo reinforcement learning: values and policies from sampled returns, no model.

Without a model :math:`p(s'|s,a), r(s,a)` the action value
:math:`q_\\pi(s,a) = \\mathbb{E}[G_t \\mid S_t = s, A_t = a]` cannot be computed from the
Bellman equation, but it is a *mean*, so it can be estimated by averaging sampled
returns (the law of large numbers):

.. math::

    q_\\pi(s, a) \\approx \\frac{1}{n} \\sum_{i=1}^{n} g^{(i)}(s, a), \\qquad
    g_t = r_{t+1} + \\gamma r_{t+2} + \\gamma^2 r_{t+3} + \\dots

The algorithms follow chapter 5 of Shiyu Zhao, *Mathematical Foundations of
Reinforcement Learning* (2023):

* :func:`incremental_mean`: the running average :math:`w_k = w_{k-1} + (x_k - w_{k-1})/k`.
* :func:`mc_basic`: policy iteration whose evaluation step averages the returns of
  episodes started at every ``(s, a)`` (the *initial visit* of each episode only).
* :func:`mc_exploring_starts`: every episode starts at a chosen ``(s, a)``; each
  *first* or *every* visit inside the episode updates its average, and the policy is
  improved greedily episode by episode.
* :func:`mc_epsilon_greedy`: drops exploring starts; the behaviour policy is itself
  epsilon-greedy, so long episodes visit every pair.
* :func:`mc_prediction`: first/every-visit estimation of :math:`v_\\pi` for any
  gymnasium environment with hashable observations (Blackjack, Sutton & Barto Fig. 5.1).

The grid-world algorithms interact with :class:`~dlnotes.rl.gridworld.GridWorld` only
through ``reset`` and ``step``; its model ``P, R`` is never read here.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from dlnotes._checks import check_int, check_probability
from dlnotes.rl.gridworld import GridWorld, epsilon_greedy
from dlnotes.foundations.api_export import export

if TYPE_CHECKING:
    import gymnasium

__all__ = [
    "VISITS",
    "MonteCarloResult",
    "PredictionResult",
    "blackjack_stick_policy",
    "blackjack_value_grid",
    "discounted_returns",
    "generate_episode",
    "incremental_mean",
    "mc_basic",
    "mc_epsilon_greedy",
    "mc_exploring_starts",
    "mc_prediction",
]

#: Which occurrences of a pair in an episode contribute a return: only the pair the
#: episode starts with, the first occurrence of each pair, or every occurrence.
VISITS: tuple[str, ...] = ("initial", "first", "every")


@dataclass
class MonteCarloResult:
    """What a grid-world Monte Carlo control run returns.

    Attributes:
        values: ``(rows, cols)`` estimated state values of the final policy,
            :math:`v(s) = \\sum_a \\pi(a|s)\\, q(s, a)`.
        policy: ``(rows, cols)`` int, the greedy action per cell (for
            :func:`mc_epsilon_greedy` the behaviour policy is
            ``epsilon_greedy(policy, epsilon)``).
        action_values: ``(rows, cols, 5)`` estimated :math:`q(s, a)`.
        visits: ``(rows, cols, 5)`` how many returns were averaged into each
            :math:`q(s, a)` (in the last iteration for :func:`mc_basic`).
        history: Snapshots for plotting: ``"iteration"`` (MC Basic) or ``"episode"``
            (the others) with the matching ``"values"`` and ``"policy"`` arrays.
    """

    values: np.ndarray
    policy: np.ndarray
    action_values: np.ndarray
    visits: np.ndarray
    history: dict[str, list] = field(default_factory=dict)


@dataclass
class PredictionResult:
    """Monte Carlo estimates of :math:`v_\\pi` keyed by observation.

    Attributes:
        values: ``{observation: mean return}``.
        counts: ``{observation: number of returns averaged}``.
        episodes: Number of episodes played.
    """

    values: dict
    counts: dict
    episodes: int


# ------------------------------------------------------------------------ mean estimation
def incremental_mean(samples: Sequence[float]) -> np.ndarray:
    """Running averages of a sample stream, computed incrementally.

    .. math::

        w_1 = x_1, \\qquad w_k = w_{k-1} + \\frac{1}{k}(x_k - w_{k-1}) = \\frac{1}{k}\\sum_{i=1}^k x_i.

    Shape:
        ``samples``: ``(n,)``; result: ``(n,)``.

    Args:
        samples: A one-dimensional sequence of ``n >= 1`` finite numbers.

    Returns:
        ``w`` with ``w[k - 1]`` the mean of the first ``k`` samples.

    Raises:
        ValueError: If ``samples`` is not 1-D, is empty or holds a non-finite value.

    Examples:
        >>> incremental_mean([1.0, 3.0, 2.0, 6.0]).tolist()
        [1.0, 2.0, 2.0, 3.0]
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"samples must be a non-empty 1-D sequence, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("samples must be finite")
    w = np.empty_like(x)
    estimate = 0.0
    for k, value in enumerate(x.tolist(), start=1):
        estimate += (value - estimate) / k  # w_k = w_{k-1} + (x_k - w_{k-1}) / k
        w[k - 1] = estimate
    return w


def discounted_returns(rewards: Sequence[float], gamma: float) -> np.ndarray:
    """Returns of every step of an episode, by one backward pass.

    .. math::

        g_{T} = 0, \\qquad g_t = r_{t+1} + \\gamma\\, g_{t+1}, \\quad t = T-1, \\dots, 0,

    where ``rewards[t]`` is :math:`r_{t+1}`, the reward received after the action at step ``t``.

    Shape:
        ``rewards``: ``(T,)``; result: ``(T,)``.

    Args:
        rewards: The rewards of an episode of length ``T >= 0``.
        gamma: Discount factor in ``[0, 1]``.

    Returns:
        ``g`` with ``g[t]`` the discounted return from step ``t`` to the end.

    Raises:
        ValueError: If ``gamma`` is outside ``[0, 1]`` or ``rewards`` is not 1-D.

    Examples:
        >>> discounted_returns([0.0, 0.0, 1.0], 0.9).round(2).tolist()
        [0.81, 0.9, 1.0]
    """
    gamma = check_probability(gamma, "gamma")
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"rewards must be 1-D, got shape {r.shape}")
    g = np.empty_like(r)
    running = 0.0
    for t in range(len(r) - 1, -1, -1):
        running = r[t] + gamma * running
        g[t] = running
    return g


# ------------------------------------------------------------------------------ episodes
def generate_episode(
    world: GridWorld,
    state: int,
    action: int,
    policy: np.ndarray,
    length: int,
    epsilon: float = 0.0,
    seed: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Play one episode in the grid world through ``reset``/``step`` only.

    The first action is ``action``; afterwards the agent follows the epsilon-greedy
    version of ``policy`` (``epsilon = 0``: the deterministic policy itself).

    Shape:
        ``policy``: int ``(rows, cols)``; results: ``(length,)`` each.

    Args:
        world: The grid world.
        state: Start state index ``s_0``.
        action: First action ``a_0``.
        policy: Greedy action per cell.
        length: Number of steps ``T >= 1``.
        epsilon: Exploration rate in ``[0, 1]``.
        seed: Seed or generator for the exploration draws.

    Returns:
        ``(states, actions, rewards)``: ``s_t``, ``a_t`` and ``r_{t+1}`` for ``t < T``.

    Raises:
        TypeError, ValueError: On a wrong world, state, action, policy, length or epsilon.

    Examples:
        >>> world = GridWorld()
        >>> stay = np.full(world.shape, 4)
        >>> states, actions, rewards = generate_episode(world, world.cell_to_state((4, 2)), 1, stay, 3)
        >>> states.tolist(), actions.tolist(), rewards.tolist()
        ([16, 17, 17], [1, 4, 4], [1.0, 1.0, 1.0])
    """
    _check_world(world)
    greedy = _check_policy(world, policy, "policy")
    length = check_int(length, "length", 1)
    epsilon = check_probability(epsilon, "epsilon")
    state = world._check_state(state, "state")
    if isinstance(action, bool) or not isinstance(action, (int, np.integer)) or not 0 <= action < world.n_actions:
        raise ValueError(f"action must be an int in [0, {world.n_actions}), got {action!r}")
    states, actions, rewards = _rollout(world, state, int(action), length, greedy, epsilon, np.random.default_rng(seed))
    return np.array(states), np.array(actions), np.array(rewards)


# ------------------------------------------------------------------------------ MC Basic
@export("rl.mc_basic")
def mc_basic(
    world: GridWorld,
    episode_length: int = 100,
    iterations: int = 50,
    episodes_per_pair: int = 1,
    initial_policy: np.ndarray | None = None,
    stop_when_stable: bool = True,
    seed: int | None = 0,
    progress: bool = False,
) -> MonteCarloResult:
    """MC Basic: policy iteration with model-free, Monte Carlo policy evaluation.

    Iteration :math:`k`:

    1. *Evaluation.* For every pair :math:`(s, a)` play ``episodes_per_pair`` episodes
       of length :math:`T` that start with :math:`(s, a)` and then follow
       :math:`\\pi_k`; :math:`q_k(s,a)` is the mean of their returns :math:`g_0`.
    2. *Improvement.* :math:`\\pi_{k+1}(s) = \\arg\\max_a q_k(s, a)` (the current action is
       kept on ties, so equal actions cannot make the policy cycle).

    The truncated return misses at most :math:`\\gamma^T \\max|r| / (1-\\gamma)`, so
    :math:`T` must make :math:`\\gamma^T` small. With a deterministic environment and
    policy one episode per pair is exact (up to truncation); the run stops early when
    ``stop_when_stable`` and the policy no longer changes, because then the next
    evaluation would repeat itself.

    Shape:
        ``initial_policy``: int ``(rows, cols)``; see :class:`MonteCarloResult`.

    Args:
        world: The grid world (only ``reset``/``step`` are used).
        episode_length: Steps per episode ``T >= 1``.
        iterations: Maximum number of policy iterations (>= 1).
        episodes_per_pair: Episodes averaged per ``(s, a)`` (>= 1).
        initial_policy: Starting deterministic policy; ``None`` draws a random one.
        stop_when_stable: Stop as soon as an improvement step changes nothing.
        seed: Seed for the initial policy.
        progress: Show a tqdm bar over iterations.

    Returns:
        A :class:`MonteCarloResult`; ``history["values"][k]`` is the estimate of
        :math:`v_{\\pi_k}` (i.e. :math:`q_k(s, \\pi_k(s))`) and ``history["policy"][k]``
        is :math:`\\pi_{k+1}`.

    Raises:
        TypeError: If ``world`` is not a GridWorld or a count is not an int.
        ValueError: If a count is < 1 or ``initial_policy`` does not fit the world.

    Examples:
        >>> result = mc_basic(GridWorld(), episode_length=30, iterations=10)
        >>> result.policy.shape, result.history["iteration"][-1] <= 10
        ((5, 5), True)
    """
    _check_world(world)
    length = check_int(episode_length, "episode_length", 1)
    iterations = check_int(iterations, "iterations", 1)
    per_pair = check_int(episodes_per_pair, "episodes_per_pair", 1)
    rng = np.random.default_rng(seed)
    S, A = world.n_states, world.n_actions
    if initial_policy is None:
        policy = rng.integers(A, size=S).tolist()
    else:
        policy = _check_policy(world, initial_policy, "initial_policy")
    q = np.zeros((S, A))
    history: dict[str, list] = {"iteration": [], "values": [], "policy": []}
    for iteration in tqdm(range(1, iterations + 1), desc="MC Basic", disable=not progress):
        # Policy evaluation: q_k(s, a) = mean of sampled returns g_0 from (s, a) under pi_k.
        for state in range(S):
            for action in range(A):
                total = 0.0
                for _ in range(per_pair):
                    _, _, rewards = _rollout(world, state, action, length, policy, 0.0, rng)
                    total += _return_from_start(rewards, world.gamma)
                q[state, action] = total / per_pair
        values = q[np.arange(S), policy]  # estimate of v_{pi_k}
        # Policy improvement: pi_{k+1}(s) = argmax_a q_k(s, a), keeping pi_k(s) on ties.
        new_policy = _greedy_keep_ties(q, policy)
        history["iteration"].append(iteration)
        history["values"].append(values.reshape(world.shape))
        history["policy"].append(np.array(new_policy).reshape(world.shape))
        stable = new_policy == policy
        policy = new_policy
        if stop_when_stable and stable:
            break
    values = q[np.arange(S), policy]
    return MonteCarloResult(
        values=values.reshape(world.shape),
        policy=np.array(policy).reshape(world.shape),
        action_values=q.reshape(world.shape + (A,)),
        visits=np.full(world.shape + (A,), per_pair),
        history=history,
    )


# ---------------------------------------------------------------- MC Exploring Starts
@export("rl.mc_exploring_starts")
def mc_exploring_starts(
    world: GridWorld,
    episodes: int = 5_000,
    episode_length: int = 100,
    visit: str = "first",
    initial_policy: np.ndarray | None = None,
    step_size: float | None = None,
    seed: int | None = 0,
    record_every: int | None = None,
    progress: bool = False,
) -> MonteCarloResult:
    """MC Exploring Starts: generalised policy iteration, episode by episode.

    Episodes start from every ``(s, a)`` pair in turn (each sweep over the ``S * A``
    pairs is a fresh random permutation: the *exploring starts* condition), then follow
    the current greedy policy. Walking the episode backwards with
    :math:`g \\leftarrow \\gamma g + r_{t+1}`, each visited pair (its first visit, or every
    visit) adds :math:`g` to its running average :math:`q(s_t, a_t)`, and
    :math:`\\pi(s_t) \\leftarrow \\arg\\max_a q(s_t, a)` immediately.

    Plain averages (the default, as in the book) mix returns of all past policies, so
    the estimates lag behind the improving policy and convergence can take tens of
    thousands of episodes on the 5x5 example; ``step_size`` fixes that.

    Shape:
        ``initial_policy``: int ``(rows, cols)``; see :class:`MonteCarloResult`.

    Args:
        world: The grid world (only ``reset``/``step`` are used).
        episodes: Number of episodes (>= 1).
        episode_length: Steps per episode ``T >= 1``.
        visit: ``"first"``, ``"every"`` or ``"initial"`` (see :data:`VISITS`).
        initial_policy: Starting deterministic policy; ``None`` draws a random one.
        step_size: ``None`` (the book) averages all returns,
            :math:`q \\leftarrow q + (g - q)/n`; a constant :math:`\\alpha \\in (0, 1]` uses
            :math:`q \\leftarrow q + \\alpha (g - q)`, which forgets returns collected
            under older, worse policies geometrically and converges much faster here.
        seed: Seed for the start order and the initial policy.
        record_every: Snapshot interval in episodes for ``history`` (default: about 100
            snapshots).
        progress: Show a tqdm bar over episodes.

    Returns:
        A :class:`MonteCarloResult` (``values`` are :math:`q(s, \\pi(s))`).

    Raises:
        TypeError: If ``world`` is not a GridWorld or a count is not an int.
        ValueError: If a count is < 1, ``visit`` is unknown, ``step_size`` is outside
            ``(0, 1]`` or ``initial_policy`` does not fit the world.

    Examples:
        >>> result = mc_exploring_starts(GridWorld(), episodes=250, episode_length=20)
        >>> int(result.visits.min()) >= 2  # every pair started two episodes
        True
    """
    _check_world(world)
    episodes = check_int(episodes, "episodes", 1)
    length = check_int(episode_length, "episode_length", 1)
    _check_visit(visit)
    record_every = _record_interval(record_every, episodes)
    rng = np.random.default_rng(seed)
    S, A = world.n_states, world.n_actions
    policy = rng.integers(A, size=S).tolist() if initial_policy is None else _check_policy(world, initial_policy, "initial_policy")
    step_size = _check_step_size(step_size)
    learner = _AveragingLearner(S, A, world.gamma, visit, step_size)
    history: dict[str, list] = {"episode": [], "values": [], "policy": []}
    starts: list[int] = []
    for episode in tqdm(range(1, episodes + 1), desc="MC Exploring Starts", disable=not progress):
        if not starts:  # a new sweep: every (s, a) once, in random order
            starts = rng.permutation(S * A).tolist()
        state, action = divmod(starts.pop(), A)
        trajectory = _rollout(world, state, action, length, policy, 0.0, rng)
        learner.update(*trajectory, policy)
        if episode % record_every == 0 or episode == episodes:
            history["episode"].append(episode)
            history["values"].append(learner.values(policy, 0.0).reshape(world.shape))
            history["policy"].append(np.array(policy).reshape(world.shape))
    return learner.result(world, policy, 0.0, history)


# -------------------------------------------------------------------- MC epsilon-greedy
@export("rl.mc_epsilon_greedy")
def mc_epsilon_greedy(
    world: GridWorld,
    epsilon: float = 0.1,
    episodes: int = 200,
    episode_length: int = 1_000,
    visit: str = "every",
    start_state: int | None = None,
    initial_policy: np.ndarray | None = None,
    step_size: float | None = None,
    seed: int | None = 0,
    record_every: int | None = None,
    progress: bool = False,
) -> MonteCarloResult:
    """MC epsilon-greedy: Monte Carlo control without exploring starts.

    The agent behaves with :math:`\\pi = \\varepsilon\\text{-greedy}(q)`:

    .. math::

        \\pi(a|s) = 1 - \\tfrac{|A|-1}{|A|}\\varepsilon \\text{ for } a = \\arg\\max_{a'} q(s,a'),
        \\qquad \\tfrac{\\varepsilon}{|A|} \\text{ otherwise,}

    so every action keeps a positive probability and long episodes visit every pair.
    Returns are averaged as in :func:`mc_exploring_starts` (every visit by default,
    which uses all the data of a long episode), and the greedy action is updated after
    each average. The fixed point is the best policy *among epsilon-greedy policies*,
    compared by :func:`~dlnotes.rl.gridworld.policy_iteration` with ``epsilon``.

    Shape:
        ``initial_policy``: int ``(rows, cols)``; see :class:`MonteCarloResult`.

    Args:
        world: The grid world (only ``reset``/``step`` are used).
        epsilon: Exploration rate in ``[0, 1]``.
        episodes: Number of episodes (>= 1).
        episode_length: Steps per episode ``T >= 1``.
        visit: ``"every"``, ``"first"`` or ``"initial"`` (see :data:`VISITS`).
        start_state: Where every episode starts (its first action then follows the
            policy, as in the book's single long episode); ``None`` draws the start pair
            ``(s_0, a_0)`` uniformly per episode, which spreads the data over the board.
        initial_policy: Starting greedy actions; ``None`` draws random ones.
        step_size: ``None`` averages all returns; a constant in ``(0, 1]`` weights
            recent returns more (see :func:`mc_exploring_starts`).
        seed: Seed for starts, exploration and the initial policy.
        record_every: Snapshot interval in episodes for ``history``.
        progress: Show a tqdm bar over episodes.

    Returns:
        A :class:`MonteCarloResult`; ``values`` are the estimated values of the
        epsilon-greedy policy, :math:`\\sum_a \\pi(a|s) q(s,a)`.

    Raises:
        TypeError: If ``world`` is not a GridWorld or a count is not an int.
        ValueError: If ``epsilon`` is outside ``[0, 1]``, a count is < 1, ``visit`` is
            unknown, ``step_size`` is outside ``(0, 1]``, or ``start_state``/
            ``initial_policy`` does not fit the world.

    Examples:
        >>> result = mc_epsilon_greedy(GridWorld(), epsilon=0.5, episodes=5, episode_length=500)
        >>> result.values.shape, result.policy.shape
        ((5, 5), (5, 5))
    """
    _check_world(world)
    epsilon = check_probability(epsilon, "epsilon")
    episodes = check_int(episodes, "episodes", 1)
    length = check_int(episode_length, "episode_length", 1)
    _check_visit(visit)
    if start_state is not None:
        start_state = world._check_state(start_state, "start_state")
    record_every = _record_interval(record_every, episodes)
    rng = np.random.default_rng(seed)
    S, A = world.n_states, world.n_actions
    policy = rng.integers(A, size=S).tolist() if initial_policy is None else _check_policy(world, initial_policy, "initial_policy")
    step_size = _check_step_size(step_size)
    learner = _AveragingLearner(S, A, world.gamma, visit, step_size)
    history: dict[str, list] = {"episode": [], "values": [], "policy": []}
    for episode in tqdm(range(1, episodes + 1), desc="MC epsilon-greedy", disable=not progress):
        if start_state is None:  # a uniformly random start pair (s_0, a_0)
            state, action = divmod(int(rng.integers(S * A)), A)
        else:  # a fixed start state, a_0 ~ pi(.|s_0)
            state = start_state
            action = int(rng.integers(A)) if rng.random() < epsilon else policy[state]
        trajectory = _rollout(world, state, action, length, policy, epsilon, rng)
        learner.update(*trajectory, policy)
        if episode % record_every == 0 or episode == episodes:
            history["episode"].append(episode)
            history["values"].append(learner.values(policy, epsilon).reshape(world.shape))
            history["policy"].append(np.array(policy).reshape(world.shape))
    return learner.result(world, policy, epsilon, history)


# --------------------------------------------------------------------- MC prediction
def mc_prediction(
    env: gymnasium.Env,
    policy: Callable[[Hashable], int],
    episodes: int,
    gamma: float = 1.0,
    visit: str = "first",
    seed: int | None = 0,
    max_steps: int = 10_000,
    progress: bool = False,
) -> PredictionResult:
    """Monte Carlo prediction of :math:`v_\\pi` in any episodic gymnasium environment.

    Plays ``episodes`` episodes with ``policy``; for the first (or every) visit of each
    observation adds the return that followed it to that observation's running mean.

    Args:
        env: A gymnasium environment with hashable observations (e.g. ``Blackjack-v1``,
            whose observation is ``(player_sum, dealer_card, usable_ace)``).
        policy: Maps an observation to an action.
        episodes: Number of episodes (>= 1).
        gamma: Discount factor in ``[0, 1]`` (Blackjack: 1).
        visit: ``"first"`` or ``"every"`` (``"initial"`` keeps only the start).
        seed: Seeds the environment's first ``reset``; the rest of the episodes continue
            its random stream, so the whole run is reproducible.
        max_steps: Safety cap on an episode's length (>= 1).
        progress: Show a tqdm bar over episodes.

    Returns:
        A :class:`PredictionResult` with the mean return and the count per observation.

    Raises:
        TypeError: If ``policy`` is not callable or a count is not an int.
        ValueError: If ``episodes``/``max_steps`` < 1, ``gamma`` is outside ``[0, 1]``,
            ``visit`` is unknown, or an episode does not end within ``max_steps``.

    Examples:
        >>> import gymnasium as gym
        >>> result = mc_prediction(gym.make("Blackjack-v1"), blackjack_stick_policy(20), episodes=100)
        >>> all(-1.0 <= v <= 1.0 for v in result.values.values())
        True
    """
    if not callable(policy):
        raise TypeError(f"policy must be callable (observation -> action), got {type(policy).__name__}")
    episodes = check_int(episodes, "episodes", 1)
    max_steps = check_int(max_steps, "max_steps", 1)
    gamma = check_probability(gamma, "gamma")
    _check_visit(visit)
    sums: dict = {}
    counts: dict = {}
    for episode in tqdm(range(episodes), desc="MC prediction", disable=not progress):
        observation, _ = env.reset(seed=seed if episode == 0 else None)
        observations, rewards = [], []
        for _ in range(max_steps):
            observations.append(observation)
            observation, reward, terminated, truncated, _ = env.step(policy(observation))
            rewards.append(float(reward))
            if terminated or truncated:
                break
        else:
            raise ValueError(f"episode {episode} did not end within max_steps={max_steps}")
        first = _first_visit_index(observations) if visit == "first" else None
        g = 0.0
        for t in range(len(rewards) - 1, -1, -1):
            g = rewards[t] + gamma * g  # g_t = r_{t+1} + gamma g_{t+1}
            key = observations[t]
            if visit == "every" or (visit == "first" and first[key] == t) or (visit == "initial" and t == 0):
                sums[key] = sums.get(key, 0.0) + g
                counts[key] = counts.get(key, 0) + 1
    return PredictionResult(values={key: sums[key] / counts[key] for key in sums}, counts=counts, episodes=episodes)


def blackjack_stick_policy(threshold: int = 20) -> Callable[[tuple], int]:
    """Sutton & Barto's Blackjack policy: stick (action 0) when the player's sum is at
    least ``threshold``, otherwise hit (action 1).

    Raises:
        TypeError: If ``threshold`` is not an int.

    Examples:
        >>> policy = blackjack_stick_policy(20)
        >>> policy((20, 5, 0)), policy((19, 5, 1))
        (0, 1)
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        raise TypeError(f"threshold must be an int, got {type(threshold).__name__}")

    def policy(observation: tuple) -> int:
        return 0 if observation[0] >= threshold else 1

    return policy


def blackjack_value_grid(values: dict) -> np.ndarray:
    """Blackjack state values on the grid of Sutton & Barto's Figure 5.1.

    Shape:
        result: ``(2, 10, 10)``: ``[usable_ace, player_sum - 12, dealer_card - 1]`` for
        player sums 12..21 and dealer cards 1 (ace) .. 10; NaN where no estimate exists.

    Args:
        values: ``{(player_sum, dealer_card, usable_ace): value}``, e.g.
            :attr:`PredictionResult.values` from ``Blackjack-v1``.

    Returns:
        The grid; index 0 of the first axis is "no usable ace", 1 is "usable ace".

    Examples:
        >>> grid = blackjack_value_grid({(21, 1, 1): 0.9})
        >>> float(grid[1, 9, 0]), bool(np.isnan(grid[0, 0, 0]))
        (0.9, True)
    """
    grid = np.full((2, 10, 10), np.nan)
    for (player, dealer, usable_ace), value in values.items():
        if 12 <= player <= 21 and 1 <= dealer <= 10:
            grid[int(usable_ace), player - 12, dealer - 1] = value
    return grid


# ------------------------------------------------------------------------ private helpers
class _AveragingLearner:
    """Running averages q(s, a) = Returns(s, a) / Num(s, a) plus greedy improvement."""

    def __init__(self, n_states: int, n_actions: int, gamma: float, visit: str, step_size: float | None) -> None:
        self.n_actions = n_actions
        self.step_size = step_size
        self.gamma = gamma
        self.visit = visit
        self.q = [[0.0] * n_actions for _ in range(n_states)]
        self.num = [[0] * n_actions for _ in range(n_states)]

    def update(self, states: list[int], actions: list[int], rewards: list[float], policy: list[int]) -> None:
        """Backward pass over one episode; updates q and (in place) the greedy ``policy``."""
        first = _first_visit_index(list(zip(states, actions))) if self.visit == "first" else None
        g = 0.0
        actions_range = range(self.n_actions)
        for t in range(len(rewards) - 1, -1, -1):
            g = rewards[t] + self.gamma * g  # g_t = r_{t+1} + gamma g_{t+1}
            s, a = states[t], actions[t]
            if self.visit == "first" and first[(s, a)] != t:
                continue
            if self.visit == "initial" and t != 0:
                continue
            self.num[s][a] += 1
            row = self.q[s]
            # Sample average q = Returns / Num (kept incrementally), or a constant step size.
            row[a] += (g - row[a]) * (self.step_size if self.step_size else 1.0 / self.num[s][a])
            # Policy improvement at s_t, keeping the current action on ties.
            best = max(actions_range, key=row.__getitem__)
            if row[best] > row[policy[s]]:
                policy[s] = best

    def values(self, policy: list[int], epsilon: float) -> np.ndarray:
        q = np.array(self.q)
        pi = epsilon_greedy(np.array(policy), epsilon, self.n_actions)
        return (pi * q).sum(axis=1)

    def result(self, world: GridWorld, policy: list[int], epsilon: float, history: dict) -> MonteCarloResult:
        shape = world.shape + (self.n_actions,)
        return MonteCarloResult(
            values=self.values(policy, epsilon).reshape(world.shape),
            policy=np.array(policy).reshape(world.shape),
            action_values=np.array(self.q).reshape(shape),
            visits=np.array(self.num).reshape(shape),
            history=history,
        )


def _rollout(world: GridWorld, state: int, action: int, length: int, policy: list[int], epsilon: float,
             rng: np.random.Generator) -> tuple[list[int], list[int], list[float]]:
    # Start in s_0 with a_0 given, then a_t ~ epsilon-greedy(policy)(.|s_t): with
    # probability epsilon a uniformly random action, otherwise the greedy one.
    world.reset(options={"state": state})
    if epsilon > 0.0:
        explore = (rng.random(length) < epsilon).tolist()
        random_actions = rng.integers(world.n_actions, size=length).tolist()
    states, actions, rewards = [], [], []
    for t in range(length):
        if t > 0:
            action = random_actions[t] if epsilon > 0.0 and explore[t] else policy[state]
        next_state, reward, _, _, _ = world.step(action)
        states.append(state)
        actions.append(action)
        rewards.append(reward)
        state = next_state
    return states, actions, rewards


def _return_from_start(rewards: list[float], gamma: float) -> float:
    g = 0.0
    for reward in reversed(rewards):
        g = reward + gamma * g
    return g


def _greedy_keep_ties(q: np.ndarray, policy: list[int]) -> list[int]:
    best = q.argmax(axis=1)
    current = q[np.arange(len(policy)), policy]
    scale = max(1.0, float(np.abs(q).max()))
    improves = q[np.arange(len(policy)), best] > current + 1e-12 * scale
    return np.where(improves, best, policy).tolist()


def _first_visit_index(items: list) -> dict:
    first: dict = {}
    for t, item in enumerate(items):
        first.setdefault(item, t)
    return first


def _check_world(world: GridWorld) -> None:
    if not isinstance(world, GridWorld):
        raise TypeError(f"world must be a dlnotes.rl.gridworld.GridWorld, got {type(world).__name__}")


def _check_visit(visit: str) -> None:
    if visit not in VISITS:
        raise ValueError(f"visit must be one of {VISITS}, got {visit!r}")


def _check_policy(world: GridWorld, policy: np.ndarray, name: str) -> list[int]:
    array = np.asarray(policy)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integer actions, got dtype {array.dtype}")
    if array.shape not in (world.shape, (world.n_states,)):
        raise ValueError(f"{name} must have shape {world.shape} or ({world.n_states},), got {array.shape}")
    if array.min() < 0 or array.max() >= world.n_actions:
        raise ValueError(f"{name} actions must be in [0, {world.n_actions}), got values in [{array.min()}, {array.max()}]")
    return array.reshape(-1).astype(int).tolist()


def _check_step_size(step_size: float | None) -> float | None:
    if step_size is None:
        return None
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float, np.integer, np.floating)):
        raise TypeError(f"step_size must be None or a real number in (0, 1], got {type(step_size).__name__}")
    if not 0.0 < step_size <= 1.0:
        raise ValueError(f"step_size must be None or in (0, 1], got {step_size}")
    return float(step_size)


def _record_interval(record_every: int | None, episodes: int) -> int:
    if record_every is None:
        return max(1, episodes // 100)
    return check_int(record_every, "record_every", 1)
