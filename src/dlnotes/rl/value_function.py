"""Value-function approximation: TD-linear, Sarsa and Q-learning with linear features, DQN.

A table stores one number per state. A function approximator stores a parameter vector
:math:`w` and computes values on demand, here linearly in a feature vector
:math:`\\phi(s) \\in \\mathbb{R}^d` (see :mod:`dlnotes.rl.features`):

.. math::

    \\hat v(s, w) = \\phi(s)^\\top w, \\qquad
    \\hat q(s, a, W) = \\phi(s)^\\top W_{:, a}.

*Retrieving* a value is a dot product; *updating* one is a step on :math:`w`, which moves
the values of every state whose features overlap (generalisation). All methods below
minimise the mean squared error to a bootstrapped target by stochastic semi-gradient
steps (Zhao, *Mathematical Foundations of Reinforcement Learning*, chapter 8):

* :func:`td_linear` (policy evaluation):
  :math:`w \\leftarrow w + \\alpha\\,[r + \\gamma \\phi(s')^\\top w - \\phi(s)^\\top w]\\,\\phi(s)`;
* :func:`sarsa_fa`: the same with :math:`\\hat q` and the next action :math:`a'` the
  epsilon-greedy policy takes;
* :func:`q_learning_fa`: the target :math:`r + \\gamma \\max_{a'} \\hat q(s', a')`;
* :func:`dqn`: Q-learning with a neural network, a replay buffer and a target network
  (implemented in :mod:`dlnotes.rl.dqn`).

With one-hot features every update touches one entry of :math:`w`, and each method is
exactly its tabular counterpart. :func:`td_fixed_point` gives the point TD-linear
converges to with any features, from the explicit model: the solution of the projected
Bellman equation :math:`\\Phi^\\top D(\\Phi w - r_\\pi - \\gamma P_\\pi \\Phi w) = 0`.

The linear methods sample the grid world only through its gymnasium interface
(``reset``/``step``); the explicit model (``world.P``, ``world.R``) is used only by
:func:`td_fixed_point`, the model-based reference.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from dlnotes._checks import check_int, check_probability
from dlnotes.rl.dqn import DQNConfig, DQNResult, dqn
from dlnotes.rl.gridworld import GridWorld, policy_probabilities
from dlnotes.foundations.api_export import export

__all__ = [
    "LinearValueResult",
    "LinearQResult",
    "td_linear",
    "td_fixed_point",
    "sarsa_fa",
    "q_learning_fa",
    "dqn",
    "DQNConfig",
    "DQNResult",
]

StepSize = float | Callable[[int], float]


@dataclass
class LinearValueResult:
    """What :func:`td_linear` returns.

    Attributes:
        weights: Final parameter vector ``w``, shape ``(d,)``.
        values: :math:`\\hat v(s, w) = \\phi(s)^\\top w` on the board, ``(rows, cols)``.
        history: ``weights``: ``(episodes + 1, d)`` array, ``w`` before the first
            episode and after each one (multiply by the feature matrix for value curves).
    """

    weights: np.ndarray
    values: np.ndarray
    history: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class LinearQResult:
    """What :func:`sarsa_fa` and :func:`q_learning_fa` return.

    Attributes:
        weights: Final parameters ``W``, shape ``(d, A)``: column ``a`` weighs action ``a``.
        q: :math:`\\hat q(s, a) = \\phi(s)^\\top W_{:, a}` on the board, ``(rows, cols, A)``.
        policy: Greedy action per cell, ``(rows, cols)`` int (first maximiser on ties).
        history: ``returns``: ``(episodes,)`` undiscounted reward sum of each episode;
            ``weights``: ``(episodes + 1, d, A)``, ``W`` before the first episode and
            after each one.
    """

    weights: np.ndarray
    q: np.ndarray
    policy: np.ndarray
    history: dict[str, np.ndarray] = field(default_factory=dict)


@export("rl.td_linear")
def td_linear(
    world: GridWorld,
    policy: np.ndarray,
    features: np.ndarray,
    *,
    episodes: int = 500,
    episode_length: int = 500,
    alpha: StepSize = 1e-3,
    start: Sequence[int] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> LinearValueResult:
    """Evaluate a policy with linear TD from sampled transitions.

    Every step of every episode samples :math:`a \\sim \\pi(\\cdot|s)`, observes
    :math:`(r, s')` from ``world.step`` and moves ``w`` along the semi-gradient of
    :math:`\\tfrac12 (r + \\gamma \\hat v(s', w) - \\hat v(s, w))^2` (the target is held
    fixed):

    .. math::

        \\delta_t = r_{t+1} + \\gamma\\, \\phi(s_{t+1})^\\top w_t - \\phi(s_t)^\\top w_t,
        \\qquad w_{t+1} = w_t + \\alpha_t\\, \\delta_t\\, \\phi(s_t).

    With one-hot features this is tabular TD(0). With decaying step sizes
    (:math:`\\sum \\alpha_t = \\infty`, :math:`\\sum \\alpha_t^2 < \\infty`) ``w``
    converges to :func:`td_fixed_point` for the distribution of the updated states
    (guaranteed when that is the stationary distribution of the policy, Tsitsiklis &
    Van Roy 1997; on the grid world it also holds for the exploring-start episodes).

    Shape:
        ``features``: ``(S, d)`` with ``S = rows * cols``, row ``s`` is :math:`\\phi(s)`;
        ``policy``: as in :func:`~dlnotes.rl.gridworld.policy_probabilities`.

    Args:
        world: The grid world (its discount ``world.gamma`` is used).
        policy: Policy to evaluate: integer actions or float probabilities per cell.
        features: Feature matrix.
        episodes: Number of episodes (>= 1).
        episode_length: Steps per episode (>= 1); the task is continuing, so an episode
            is just a stretch of experience.
        alpha: Step size, a float > 0 or a callable ``t -> alpha_t`` of the global step
            counter ``t = 0, 1, ...``.
        start: Start cell of every episode, 1-indexed ``(row, col)``; ``None`` draws it
            uniformly at random (exploring starts: every state gets visited).
        seed: Seed of start cells and action sampling.
        progress: Show a tqdm bar over episodes.

    Returns:
        A :class:`LinearValueResult`.

    Raises:
        TypeError: If ``world`` is not a GridWorld or ``alpha`` is neither a number nor
            callable.
        ValueError: If ``features`` does not have ``S`` rows, the policy does not fit,
            ``episodes``/``episode_length`` < 1, ``alpha <= 0`` or ``start`` lies
            outside the board.

    Examples:
        >>> from dlnotes.rl.features import one_hot_features
        >>> world = GridWorld()
        >>> uniform = np.full((5, 5, 5), 0.2)
        >>> result = td_linear(world, uniform, one_hot_features(25), episodes=2, episode_length=10)
        >>> result.values.shape, result.history["weights"].shape
        ((5, 5), (3, 25))
    """
    feature_matrix = _check_features(world, features)
    cumulative = [row.tolist() for row in np.cumsum(policy_probabilities(world, policy), axis=1)]
    episodes = check_int(episodes, "episodes", minimum=1)
    episode_length = check_int(episode_length, "episode_length", minimum=1)
    step_size = _step_size(alpha)
    start_state = None if start is None else world.cell_to_state(start)
    rng = np.random.default_rng(seed)
    gamma, last_action = world.gamma, world.n_actions - 1

    w = np.zeros(feature_matrix.shape[1])
    snapshots = [w.copy()]
    t = 0
    for _ in tqdm(range(episodes), disable=not progress, desc="td_linear"):
        s = _reset(world, start_state, rng)
        for u in rng.random(episode_length):
            a = min(bisect.bisect_right(cumulative[s], u), last_action)  # a ~ pi(.|s)
            s_next, r, _, _, _ = world.step(a)
            phi = feature_matrix[s]
            delta = r + gamma * (feature_matrix[s_next] @ w) - phi @ w  # TD error
            w += step_size(t) * delta * phi  # semi-gradient step
            s, t = s_next, t + 1
        snapshots.append(w.copy())
    return LinearValueResult(
        weights=w,
        values=(feature_matrix @ w).reshape(world.shape),
        history={"weights": np.stack(snapshots)},
    )


def td_fixed_point(
    world: GridWorld, policy: np.ndarray, features: np.ndarray, state_weights: np.ndarray | None = None
) -> np.ndarray:
    """The weights TD-linear converges to: the solution of the projected Bellman equation.

    TD-linear's expected update vanishes where
    :math:`\\Phi^\\top D\\,(r_\\pi + \\gamma P_\\pi \\Phi w - \\Phi w) = 0`, i.e.

    .. math::

        w^\\star = \\big(\\Phi^\\top D (I - \\gamma P_\\pi) \\Phi\\big)^{-1} \\Phi^\\top D\\, r_\\pi,

    with :math:`D = \\operatorname{diag}(d)` the distribution of the states that are
    updated. Then :math:`\\Phi w^\\star` is the fixed point of the Bellman operator
    followed by the :math:`D`-weighted projection onto the span of the features. It is
    generally *not* the best approximation :math:`\\arg\\min_w \\|\\Phi w - v_\\pi\\|_D`,
    though close to it (Tsitsiklis & Van Roy, 1997); with one-hot features both equal
    :math:`v_\\pi`.

    Shape:
        ``features``: ``(S, d)``; ``state_weights``: ``(S,)`` or ``(rows, cols)``;
        result: ``(d,)``.

    Args:
        world: The grid world; its explicit model ``P``, ``R`` and ``gamma < 1`` are used.
        policy: Integer actions or float probabilities per cell.
        features: Feature matrix. With dependent columns (e.g. tiles that no state
            switches on) the minimum-norm solution is returned; ``features @ w`` is unique.
        state_weights: Distribution :math:`d` (non-negative, normalised here);
            default: the stationary distribution of :math:`P_\\pi`.

    Returns:
        The weights :math:`w^\\star`.

    Raises:
        ValueError: If ``world.gamma == 1``, shapes do not fit, or the weights are
            negative or all zero.

    Examples:
        >>> from dlnotes.rl.features import one_hot_features
        >>> from dlnotes.rl.gridworld import evaluate_policy
        >>> world, stay = GridWorld(), np.full((5, 5), 4)
        >>> w = td_fixed_point(world, stay, one_hot_features(25), np.ones(25))
        >>> bool(np.allclose(w, evaluate_policy(world, stay).reshape(-1)))
        True
    """
    feature_matrix = _check_features(world, features)
    if world.gamma >= 1.0:
        raise ValueError(f"td_fixed_point needs gamma < 1 (continuing task), got gamma={world.gamma}")
    pi = policy_probabilities(world, policy)
    r_pi = (pi * world.R).sum(axis=1)  # r_pi(s) = sum_a pi(a|s) r(s, a)
    p_pi = np.einsum("sa,sat->st", pi, world.P)  # P_pi(s, s') = sum_a pi(a|s) p(s'|s, a)
    if state_weights is None:
        d = _stationary_distribution(p_pi)
    else:
        d = np.asarray(state_weights, dtype=np.float64)
        if d.shape not in (world.shape, (world.n_states,)):
            raise ValueError(f"state_weights must have shape {world.shape} or ({world.n_states},), got {d.shape}")
        d = d.reshape(-1)
        if (d < 0).any() or d.sum() <= 0:
            raise ValueError("state_weights must be non-negative and not all zero")
        d = d / d.sum()
    weighted = feature_matrix.T * d  # Phi^T D, (d, S)
    a_matrix = weighted @ (feature_matrix - world.gamma * p_pi @ feature_matrix)  # Phi^T D (I - gamma P_pi) Phi
    b_vector = weighted @ r_pi  # Phi^T D r_pi
    # Minimum-norm solution: with dependent features (e.g. tiles no state activates) w is
    # not unique, but Phi w is, and TD-linear started at w = 0 converges to this one.
    return np.linalg.lstsq(a_matrix, b_vector, rcond=None)[0]


@export("rl.sarsa_fa")
def sarsa_fa(
    world: GridWorld,
    features: np.ndarray,
    *,
    episodes: int = 500,
    episode_length: int = 100,
    alpha: StepSize = 0.05,
    epsilon: float = 0.1,
    start: Sequence[int] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> LinearQResult:
    """Sarsa with a linear action-value function: on-policy control.

    The agent acts epsilon-greedily with respect to the current :math:`\\hat q` and, after
    each transition :math:`(s, a, r, s')` and the next action :math:`a'` it will take,

    .. math::

        W_{:, a} \\leftarrow W_{:, a} + \\alpha\\,\\big[r + \\gamma\\, \\hat q(s', a') -
        \\hat q(s, a)\\big]\\, \\phi(s).

    Sarsa learns the values of the policy it follows, so with one-hot features and a
    fixed ``epsilon`` its greedy policy approaches the best epsilon-greedy policy
    (:func:`~dlnotes.rl.gridworld.policy_iteration` with the same ``epsilon``).

    Shape:
        ``features``: ``(S, d)``; result ``weights``: ``(d, A)``.

    Args:
        world: The grid world (its discount ``world.gamma`` is used).
        features: State feature matrix; :math:`\\hat q(s, a) = \\phi(s)^\\top W_{:, a}`.
        episodes: Number of episodes (>= 1).
        episode_length: Steps per episode (>= 1).
        alpha: Step size, float > 0 or callable of the global step ``t``.
        epsilon: Exploration rate of the epsilon-greedy policy, in ``[0, 1]``.
        start: Start cell, 1-indexed ``(row, col)``; ``None``: uniformly random.
        seed: Seed of start cells and exploration.
        progress: Show a tqdm bar over episodes.

    Returns:
        A :class:`LinearQResult`.

    Raises:
        TypeError: If ``world`` is not a GridWorld or ``alpha`` has the wrong type.
        ValueError: If ``epsilon`` is outside ``[0, 1]``, ``features`` does not fit,
            counts are < 1, ``alpha <= 0`` or ``start`` lies outside the board.

    Examples:
        >>> from dlnotes.rl.features import one_hot_features
        >>> result = sarsa_fa(GridWorld(), one_hot_features(25), episodes=2, episode_length=10)
        >>> result.q.shape, result.policy.shape, result.history["returns"].shape
        ((5, 5, 5), (5, 5), (2,))
    """
    return _linear_control(world, features, episodes, episode_length, alpha, epsilon, start, seed, progress,
                           off_policy=False)


@export("rl.q_learning_fa")
def q_learning_fa(
    world: GridWorld,
    features: np.ndarray,
    *,
    episodes: int = 500,
    episode_length: int = 100,
    alpha: StepSize = 0.05,
    epsilon: float = 0.5,
    start: Sequence[int] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> LinearQResult:
    """Q-learning with a linear action-value function: off-policy control.

    The behaviour is epsilon-greedy with respect to the current :math:`\\hat q`, but the
    target uses the greedy value of the next state,

    .. math::

        W_{:, a} \\leftarrow W_{:, a} + \\alpha\\,\\big[r + \\gamma \\max_{a'} \\hat q(s', a') -
        \\hat q(s, a)\\big]\\, \\phi(s),

    so it estimates the *optimal* action values whatever the exploration. With one-hot
    features it is tabular Q-learning and its greedy policy becomes optimal once every
    state-action pair is visited often enough.

    Shape:
        ``features``: ``(S, d)``; result ``weights``: ``(d, A)``.

    Args:
        world: The grid world (its discount ``world.gamma`` is used).
        features: State feature matrix; :math:`\\hat q(s, a) = \\phi(s)^\\top W_{:, a}`.
        episodes: Number of episodes (>= 1).
        episode_length: Steps per episode (>= 1).
        alpha: Step size, float > 0 or callable of the global step ``t``.
        epsilon: Exploration rate of the behaviour policy, in ``[0, 1]`` (1: uniform).
        start: Start cell, 1-indexed ``(row, col)``; ``None``: uniformly random.
        seed: Seed of start cells and exploration.
        progress: Show a tqdm bar over episodes.

    Returns:
        A :class:`LinearQResult`.

    Raises:
        TypeError: If ``world`` is not a GridWorld or ``alpha`` has the wrong type.
        ValueError: If ``epsilon`` is outside ``[0, 1]``, ``features`` does not fit,
            counts are < 1, ``alpha <= 0`` or ``start`` lies outside the board.

    Examples:
        >>> from dlnotes.rl.features import one_hot_features
        >>> result = q_learning_fa(GridWorld(), one_hot_features(25), episodes=2, episode_length=10)
        >>> result.weights.shape
        (25, 5)
    """
    return _linear_control(world, features, episodes, episode_length, alpha, epsilon, start, seed, progress,
                           off_policy=True)


# --------------------------------------------------------------------------- private helpers
def _linear_control(world, features, episodes, episode_length, alpha, epsilon, start, seed, progress, off_policy):
    """Shared loop of Sarsa (``off_policy=False``) and Q-learning (``off_policy=True``)."""
    feature_matrix = _check_features(world, features)
    epsilon = check_probability(epsilon, "epsilon")
    episodes = check_int(episodes, "episodes", minimum=1)
    episode_length = check_int(episode_length, "episode_length", minimum=1)
    step_size = _step_size(alpha)
    start_state = None if start is None else world.cell_to_state(start)
    rng = np.random.default_rng(seed)
    gamma, n_actions = world.gamma, world.n_actions

    def behave(q_s: np.ndarray) -> int:  # epsilon-greedy in the current estimate
        return int(rng.integers(n_actions)) if rng.random() < epsilon else int(np.argmax(q_s))

    weights = np.zeros((n_actions, feature_matrix.shape[1]))  # row a is W[:, a]; rows update contiguously
    snapshots = [weights.T.copy()]
    returns = np.zeros(episodes)
    t = 0
    for episode in tqdm(range(episodes), disable=not progress, desc="q_learning_fa" if off_policy else "sarsa_fa"):
        s = _reset(world, start_state, rng)
        a = behave(weights @ feature_matrix[s])
        for _ in range(episode_length):
            s_next, r, _, _, _ = world.step(a)
            returns[episode] += r
            q_next = weights @ feature_matrix[s_next]  # q(s', .) for all actions
            a_next = behave(q_next)
            bootstrap = q_next.max() if off_policy else q_next[a_next]
            phi = feature_matrix[s]
            delta = r + gamma * bootstrap - weights[a] @ phi  # TD error
            weights[a] += step_size(t) * delta * phi  # semi-gradient step on W[:, a]
            s, a, t = s_next, a_next, t + 1
        snapshots.append(weights.T.copy())
    q = (feature_matrix @ weights.T).reshape(world.shape + (n_actions,))
    return LinearQResult(
        weights=weights.T.copy(),
        q=q,
        policy=q.argmax(axis=-1),
        history={"returns": returns, "weights": np.stack(snapshots)},
    )


def _reset(world: GridWorld, start_state: int | None, rng: np.random.Generator) -> int:
    state = int(rng.integers(world.n_states)) if start_state is None else start_state
    return world.reset(options={"state": state})[0]


def _check_features(world: GridWorld, features: np.ndarray) -> np.ndarray:
    if not isinstance(world, GridWorld):
        raise TypeError(f"world must be a GridWorld, got {type(world).__name__}")
    matrix = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != world.n_states or matrix.shape[1] < 1:
        raise ValueError(f"features must have shape ({world.n_states}, d) with one row per state, got {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("features must be finite")
    return matrix


def _step_size(alpha: StepSize) -> Callable[[int], float]:
    if callable(alpha):
        return alpha
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
        raise TypeError(f"alpha must be a number or a callable t -> alpha_t, got {type(alpha).__name__}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    constant = float(alpha)
    return lambda t: constant


def _stationary_distribution(p_pi: np.ndarray) -> np.ndarray:
    """Left eigenvector of ``P_pi`` for eigenvalue 1, normalised to sum to 1."""
    eigenvalues, eigenvectors = np.linalg.eig(p_pi.T)
    d = np.real(eigenvectors[:, np.argmin(np.abs(eigenvalues - 1.0))])
    return np.abs(d) / np.abs(d).sum()
