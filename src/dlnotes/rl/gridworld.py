"""The grid world of Shiyu Zhao's *Mathematical Foundations of Reinforcement Learning*.

An agent walks on a ``rows x cols`` board. Five actions move it one cell
(``up, right, down, left``) or keep it in place (``stay``). The dynamics are
deterministic and the reward depends on where the move lands:

* trying to leave the board keeps the agent in place and gives ``r_boundary``;
* entering (or staying in) a *forbidden* cell is allowed and gives ``r_forbidden``;
* entering (or staying on) the *target* gives ``r_target``; the episode does not end;
* any other move gives ``r_other`` (0 by default).

The defaults are the book's 5x5 example: forbidden cells at (row, col) = (2,2), (2,3),
(3,3), (4,2), (4,4), (5,2), target (4,3), ``r_boundary = r_forbidden = -1``,
``r_target = 1`` and discount ``gamma = 0.9``.

**Cells and states.** Cells are written as the book writes them, 1-indexed
``(row, col)`` with row 1 at the top. Internally a cell is the state index

.. math::

    s = (\\text{row} - 1) \\cdot \\text{cols} + (\\text{col} - 1),
    \\qquad s \\in \\{0, \\dots, \\text{rows} \\cdot \\text{cols} - 1\\},

so an array of state values ``v`` of shape ``(S,)`` reshaped to ``(rows, cols)`` shows
the board as printed in the book. :meth:`GridWorld.cell_to_state` and
:meth:`GridWorld.state_to_cell` convert. Every function here that returns values or a
policy returns them on the board, shaped ``(rows, cols)``.

**Two interfaces.** :class:`GridWorld` is a :class:`gymnasium.Env` (registered as
``"dlnotes/GridWorld-v0"``) for model-free algorithms, which only call ``reset`` and
``step``. It also exposes the explicit model for model-based baselines:

* ``world.P``: ``(S, A, S)`` transition probabilities :math:`p(s' \\mid s, a)`;
* ``world.R``: ``(S, A)`` expected immediate rewards :math:`r(s, a)`.

**Ground truth.** With the model, the Bellman equations are solved directly:

* :func:`evaluate_policy`: :math:`v_\\pi = (I - \\gamma P_\\pi)^{-1} r_\\pi` (a linear solve);
* :func:`value_iteration`: :math:`v_{k+1}(s) = \\max_a [r(s,a) + \\gamma \\sum_{s'} p(s'|s,a) v_k(s')]`;
* :func:`policy_iteration`: exact evaluation, then greedy improvement, until stable
  (optionally restricted to epsilon-greedy policies).

Policies come in two forms, told apart by dtype: an **integer** array holds one action
index per cell (a deterministic policy), a **floating** array holds action
probabilities ``pi(a | s)`` in its last axis (a stochastic policy).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from dlnotes._checks import check_probability
from dlnotes.foundations.api_export import export

__all__ = [
    "ACTIONS",
    "ACTION_DELTAS",
    "ACTION_ARROWS",
    "BOOK_FORBIDDEN",
    "BOOK_TARGET",
    "ENV_ID",
    "GridWorld",
    "action_values",
    "epsilon_greedy",
    "evaluate_policy",
    "optimal_action_mask",
    "policy_iteration",
    "policy_probabilities",
    "value_iteration",
]

#: Registered gymnasium id: ``gymnasium.make(ENV_ID, **GridWorld kwargs)``.
ENV_ID = "dlnotes/GridWorld-v0"

#: Action names; the action index is the position in this tuple.
ACTIONS: tuple[str, ...] = ("up", "right", "down", "left", "stay")

#: ``(d_row, d_col)`` of each action (row grows downwards).
ACTION_DELTAS: tuple[tuple[int, int], ...] = ((-1, 0), (0, 1), (1, 0), (0, -1), (0, 0))

#: A glyph per action, for text rendering.
ACTION_ARROWS: tuple[str, ...] = ("↑", "→", "↓", "←", "o")

#: Forbidden cells of the book's 5x5 example, 1-indexed ``(row, col)``.
BOOK_FORBIDDEN: tuple[tuple[int, int], ...] = ((2, 2), (2, 3), (3, 3), (4, 2), (4, 4), (5, 2))

#: Target cell of the book's 5x5 example, 1-indexed ``(row, col)``.
BOOK_TARGET: tuple[int, int] = (4, 3)


@export("rl.GridWorld")
class GridWorld(gymnasium.Env):
    """The book's grid world as a gymnasium environment plus its explicit model.

    Observations are state indices ``s = (row - 1) * cols + (col - 1)`` in
    ``Discrete(rows * cols)``; actions are indices into :data:`ACTIONS` in
    ``Discrete(5)``. The task is continuing: ``step`` never returns
    ``terminated=True`` and never truncates (wrap it in ``gymnasium.wrappers.TimeLimit``,
    or pass ``max_episode_steps`` to ``gymnasium.make``, for finite episodes).

    Shape:
        ``P``: ``(S, A, S)``, ``R``: ``(S, A)``, ``forbidden_mask``: ``(rows, cols)``,
        with ``S = rows * cols`` and ``A = 5``.

    Args:
        rows: Number of rows (>= 1).
        cols: Number of columns (>= 1).
        forbidden: Forbidden cells, 1-indexed ``(row, col)`` pairs.
        target: The target cell, 1-indexed ``(row, col)``; not forbidden.
        r_boundary: Reward for a move that would leave the board (the agent stays).
        r_forbidden: Reward for landing in a forbidden cell (including staying in one).
        r_target: Reward for landing on the target (including staying on it).
        r_other: Reward for every other move.
        gamma: Discount factor in ``[0, 1]``. The solvers below need ``gamma < 1``.
        start: Cell where :meth:`reset` puts the agent, 1-indexed; ``None`` draws a
            uniformly random cell from the environment's seeded generator.
        render_mode: ``None`` or ``"ansi"`` (``render()`` returns the board as text).

    Raises:
        TypeError: If a cell is not a pair of integers or a reward is not a real number.
        ValueError: If ``rows``/``cols`` < 1, a cell lies outside the board, the target
            is forbidden, ``gamma`` is outside ``[0, 1]`` or ``render_mode`` is unknown.

    Examples:
        >>> world = GridWorld()
        >>> world.cell_to_state((4, 3)), world.state_to_cell(17)
        (17, (4, 3))
        >>> state, info = world.reset(options={"cell": (4, 2)})
        >>> world.step(ACTIONS.index("right"))[:2]
        (17, 1.0)
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        rows: int = 5,
        cols: int = 5,
        forbidden: Iterable[Sequence[int]] = BOOK_FORBIDDEN,
        target: Sequence[int] = BOOK_TARGET,
        r_boundary: float = -1.0,
        r_forbidden: float = -1.0,
        r_target: float = 1.0,
        r_other: float = 0.0,
        gamma: float = 0.9,
        start: Sequence[int] | None = (1, 1),
        render_mode: str | None = None,
    ) -> None:
        for name, size in (("rows", rows), ("cols", cols)):
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
                raise TypeError(f"{name} must be an int, got {type(size).__name__}")
            if size < 1:
                raise ValueError(f"{name} must be >= 1, got {size}")
        self.rows, self.cols = int(rows), int(cols)
        self.forbidden = tuple(sorted({self._check_cell(cell, "forbidden cell") for cell in forbidden}))
        self.target = self._check_cell(target, "target")
        if self.target in self.forbidden:
            raise ValueError(f"target {self.target} must not be a forbidden cell")
        rewards = {}
        for name, value in (("r_boundary", r_boundary), ("r_forbidden", r_forbidden),
                            ("r_target", r_target), ("r_other", r_other)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
            if not np.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value}")
            rewards[name] = float(value)
        self.r_boundary = rewards["r_boundary"]
        self.r_forbidden = rewards["r_forbidden"]
        self.r_target = rewards["r_target"]
        self.r_other = rewards["r_other"]
        self.gamma = _check_gamma(gamma)
        self.start = None if start is None else self._check_cell(start, "start")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode

        self.n_states = self.rows * self.cols
        self.n_actions = len(ACTIONS)
        self.observation_space = spaces.Discrete(self.n_states)
        self.action_space = spaces.Discrete(self.n_actions)

        next_state, reward = self._build_tables()
        # Explicit model: p(s'|s,a) is one-hot at next_state[s, a]; r(s, a) is deterministic.
        transition = np.zeros((self.n_states, self.n_actions, self.n_states))
        transition[np.arange(self.n_states)[:, None], np.arange(self.n_actions)[None, :], next_state] = 1.0
        transition.flags.writeable = False
        reward.flags.writeable = False
        self.P: np.ndarray = transition
        self.R: np.ndarray = reward
        # Plain lists make step() cheap: model-free algorithms call it millions of times.
        self._next_list: list[list[int]] = next_state.tolist()
        self._reward_list: list[list[float]] = reward.tolist()
        self._state: int | None = None

    # ----------------------------------------------------------------- cells and states
    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)``: the shape of value and policy arrays on the board."""
        return (self.rows, self.cols)

    @property
    def forbidden_mask(self) -> np.ndarray:
        """Boolean ``(rows, cols)`` array, True at forbidden cells."""
        mask = np.zeros(self.shape, dtype=bool)
        for row, col in self.forbidden:
            mask[row - 1, col - 1] = True
        return mask

    @property
    def target_state(self) -> int:
        """State index of the target cell."""
        return self.cell_to_state(self.target)

    def cell_to_state(self, cell: Sequence[int]) -> int:
        """State index ``(row - 1) * cols + (col - 1)`` of a 1-indexed ``(row, col)`` cell.

        Raises:
            TypeError: If ``cell`` is not a pair of integers.
            ValueError: If the cell lies outside the board.
        """
        row, col = self._check_cell(cell, "cell")
        return (row - 1) * self.cols + (col - 1)

    def state_to_cell(self, state: int) -> tuple[int, int]:
        """1-indexed ``(row, col)`` of a state index.

        Raises:
            TypeError: If ``state`` is not an integer.
            ValueError: If ``state`` is outside ``[0, rows * cols)``.
        """
        state = self._check_state(state, "state")
        return (state // self.cols + 1, state % self.cols + 1)

    # ------------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict]:
        """Put the agent on a start cell.

        Args:
            seed: Seeds ``self.np_random`` (used only when ``start=None``).
            options: Optional ``{"state": s}`` or ``{"cell": (row, col)}`` to start
                elsewhere than ``start`` (exploring starts need this).

        Returns:
            ``(state, {"cell": (row, col)})``.

        Raises:
            ValueError: If ``options`` has unknown keys or names a cell outside the board.
        """
        super().reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"state", "cell"}
        if unknown or len(options) > 1:
            raise ValueError(f"options may hold one of 'state' or 'cell', got {sorted(options)}")
        if "state" in options:
            self._state = self._check_state(options["state"], "options['state']")
        elif "cell" in options:
            self._state = self.cell_to_state(options["cell"])
        elif self.start is not None:
            self._state = self.cell_to_state(self.start)
        else:
            self._state = int(self.np_random.integers(self.n_states))
        return self._state, {"cell": self.state_to_cell(self._state)}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict]:
        """Take one action.

        Returns:
            ``(next_state, reward, terminated=False, truncated=False, {})``.

        Raises:
            RuntimeError: If called before :meth:`reset`.
            ValueError: If ``action`` is not in ``range(5)``.
        """
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        a = int(action)
        if not 0 <= a < 5 or a != action:
            raise ValueError(f"action must be an integer in [0, 5), got {action!r}")
        reward = self._reward_list[self._state][a]
        self._state = self._next_list[self._state][a]
        return self._state, reward, False, False, {}

    def render(self) -> str | None:
        """The board as text (``render_mode="ansi"``): ``#`` forbidden, ``T`` target,
        ``A`` agent, ``.`` other cells. Returns ``None`` when ``render_mode`` is ``None``."""
        if self.render_mode is None:
            return None
        board = np.where(self.forbidden_mask, "#", ".").astype(object)
        board[self.target[0] - 1, self.target[1] - 1] = "T"
        if self._state is not None:
            row, col = self.state_to_cell(self._state)
            board[row - 1, col - 1] = "A"
        return "\n".join(" ".join(line) for line in board)

    # ------------------------------------------------------------------------- helpers
    def _build_tables(self) -> tuple[np.ndarray, np.ndarray]:
        forbidden = self.forbidden_mask
        next_state = np.zeros((self.n_states, self.n_actions), dtype=np.int64)
        reward = np.zeros((self.n_states, self.n_actions))
        for state in range(self.n_states):
            row, col = divmod(state, self.cols)
            for action, (d_row, d_col) in enumerate(ACTION_DELTAS):
                new_row, new_col = row + d_row, col + d_col
                if not (0 <= new_row < self.rows and 0 <= new_col < self.cols):
                    # Bounce off the wall: stay put, pay r_boundary.
                    next_state[state, action], reward[state, action] = state, self.r_boundary
                    continue
                next_state[state, action] = new_row * self.cols + new_col
                if (new_row + 1, new_col + 1) == self.target:
                    reward[state, action] = self.r_target
                elif forbidden[new_row, new_col]:
                    reward[state, action] = self.r_forbidden
                else:
                    reward[state, action] = self.r_other
        return next_state, reward

    def _check_cell(self, cell: Sequence[int], name: str) -> tuple[int, int]:
        try:
            row, col = cell
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a (row, col) pair of ints, got {cell!r}") from None
        for value in (row, col):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be a (row, col) pair of ints, got {cell!r}")
        if not (1 <= row <= self.rows and 1 <= col <= self.cols):
            raise ValueError(
                f"{name} {tuple(cell)} is outside the {self.rows}x{self.cols} board "
                f"(cells are 1-indexed: 1 <= row <= {self.rows}, 1 <= col <= {self.cols})"
            )
        return (int(row), int(col))

    def _check_state(self, state: int, name: str) -> int:
        if isinstance(state, bool) or not isinstance(state, (int, np.integer)):
            raise TypeError(f"{name} must be an int state index, got {type(state).__name__}")
        if not 0 <= state < self.n_states:
            raise ValueError(f"{name} must be in [0, {self.n_states}), got {state}")
        return int(state)


# --------------------------------------------------------------------- policies and values
def policy_probabilities(world: GridWorld, policy: np.ndarray) -> np.ndarray:
    """A policy as an ``(S, A)`` matrix of probabilities ``pi(a | s)``.

    Shape:
        ``policy``: integer ``(rows, cols)`` or ``(S,)`` (one action per cell), or floating
        ``(rows, cols, A)`` or ``(S, A)`` (probabilities); result: ``(S, A)``.

    Args:
        world: The grid world.
        policy: A deterministic (integer dtype) or stochastic (floating dtype) policy.

    Returns:
        Float array whose row ``s`` is the action distribution in state ``s``.

    Raises:
        TypeError: If ``policy`` is neither integer nor floating.
        ValueError: If the shape does not fit the world, an action index is outside
            ``[0, 5)``, or probabilities are negative or do not sum to 1.

    Examples:
        >>> world = GridWorld(rows=1, cols=2, forbidden=(), target=(1, 2))
        >>> policy_probabilities(world, np.array([[1, 4]]))
        array([[0., 1., 0., 0., 0.],
               [0., 0., 0., 0., 1.]])
    """
    policy = np.asarray(policy)
    S, A = world.n_states, world.n_actions
    if np.issubdtype(policy.dtype, np.integer):
        if policy.shape not in (world.shape, (S,)):
            raise ValueError(f"a deterministic policy must have shape {world.shape} or ({S},), got {policy.shape}")
        actions = policy.reshape(S)
        if actions.min() < 0 or actions.max() >= A:
            raise ValueError(f"policy actions must be in [0, {A}), got values in [{actions.min()}, {actions.max()}]")
        return np.eye(A)[actions]
    if np.issubdtype(policy.dtype, np.floating):
        if policy.shape not in (world.shape + (A,), (S, A)):
            raise ValueError(f"a stochastic policy must have shape {world.shape + (A,)} or ({S}, {A}), got {policy.shape}")
        probabilities = policy.reshape(S, A).astype(np.float64)
        if (probabilities < 0).any() or not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-8):
            raise ValueError("policy probabilities must be non-negative and sum to 1 over actions")
        return probabilities
    raise TypeError(f"policy must have an integer (actions) or floating (probabilities) dtype, got {policy.dtype}")


def epsilon_greedy(policy: np.ndarray, epsilon: float, n_actions: int = len(ACTIONS)) -> np.ndarray:
    """The epsilon-greedy version of a deterministic policy.

    .. math::

        \\pi(a \\mid s) = \\begin{cases} 1 - \\frac{|A| - 1}{|A|}\\varepsilon & a = a^*(s) \\\\
        \\frac{\\varepsilon}{|A|} & \\text{otherwise} \\end{cases}

    Shape:
        ``policy``: integer ``(...)``; result: ``(..., n_actions)``.

    Args:
        policy: Integer array of greedy actions ``a*(s)``.
        epsilon: Exploration rate in ``[0, 1]`` (0: greedy, 1: uniform).
        n_actions: Number of actions ``|A|``.

    Returns:
        Float probabilities whose last axis sums to 1.

    Raises:
        TypeError: If ``policy`` is not an integer array.
        ValueError: If ``epsilon`` is outside ``[0, 1]`` or an action is out of range.

    Examples:
        >>> epsilon_greedy(np.array([1]), 0.5)
        array([[0.1, 0.6, 0.1, 0.1, 0.1]])
    """
    policy = np.asarray(policy)
    if not np.issubdtype(policy.dtype, np.integer):
        raise TypeError(f"policy must hold integer actions, got dtype {policy.dtype}")
    epsilon = check_probability(epsilon, "epsilon")
    if policy.size and (policy.min() < 0 or policy.max() >= n_actions):
        raise ValueError(f"policy actions must be in [0, {n_actions}), got values in [{policy.min()}, {policy.max()}]")
    probabilities = np.full(policy.shape + (n_actions,), epsilon / n_actions)
    np.put_along_axis(probabilities, policy[..., None], 1.0 - epsilon * (n_actions - 1) / n_actions, axis=-1)
    return probabilities


def action_values(world: GridWorld, values: np.ndarray) -> np.ndarray:
    """One Bellman backup: ``q(s, a) = r(s, a) + gamma * sum_s' p(s'|s, a) v(s')``.

    Shape:
        ``values``: ``(rows, cols)`` or ``(S,)``; result: ``(rows, cols, A)``.

    Args:
        world: The grid world (its ``P``, ``R`` and ``gamma``).
        values: State values.

    Returns:
        The action values on the board.

    Raises:
        ValueError: If ``values`` does not have ``rows * cols`` entries in one of the
            two shapes.

    Examples:
        >>> q = action_values(GridWorld(), np.zeros((5, 5)))
        >>> q[3, 2].tolist()  # at the target: only "stay" is rewarded
        [-1.0, -1.0, 0.0, -1.0, 1.0]
    """
    v = _flat_values(world, values)
    q = world.R + world.gamma * world.P @ v
    return q.reshape(world.shape + (world.n_actions,))


def optimal_action_mask(q: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Which actions are greedy: ``q(s, a) >= max_a' q(s, a') - tol``.

    With several optimal actions (ties), compare policies with this mask, not by
    action index.

    Shape:
        ``q``: ``(..., A)``; result: boolean ``(..., A)``.

    Examples:
        >>> optimal_action_mask(np.array([[1.0, 2.0, 2.0 - 1e-9]])).tolist()
        [[False, True, True]]
    """
    q = np.asarray(q, dtype=np.float64)
    return q >= q.max(axis=-1, keepdims=True) - tol


@export("rl.evaluate_policy")
def evaluate_policy(world: GridWorld, policy: np.ndarray) -> np.ndarray:
    """Exact policy evaluation: solve the Bellman equation ``v = r_pi + gamma P_pi v``.

    .. math::

        v_\\pi = (I - \\gamma P_\\pi)^{-1} r_\\pi, \\qquad
        r_\\pi(s) = \\sum_a \\pi(a|s) r(s,a), \\quad
        P_\\pi(s, s') = \\sum_a \\pi(a|s) p(s'|s,a).

    Shape:
        ``policy``: see :func:`policy_probabilities`; result: ``(rows, cols)``.

    Args:
        world: The grid world, with ``gamma < 1``.
        policy: Deterministic (integer) or stochastic (floating) policy.

    Returns:
        The state values ``v_pi`` on the board.

    Raises:
        ValueError: If ``world.gamma == 1`` (the values of a continuing task diverge)
            or the policy does not fit the world.

    Examples:
        >>> world = GridWorld()
        >>> stay = np.full(world.shape, ACTIONS.index("stay"))
        >>> float(evaluate_policy(world, stay)[3, 2])  # staying on the target: 1 / (1 - 0.9)
        10.000000000000002
    """
    _require_discounted(world)
    pi = policy_probabilities(world, policy)
    r_pi = (pi * world.R).sum(axis=1)
    p_pi = np.einsum("sa,sat->st", pi, world.P)
    v = np.linalg.solve(np.eye(world.n_states) - world.gamma * p_pi, r_pi)
    return v.reshape(world.shape)


@export("rl.value_iteration")
def value_iteration(world: GridWorld, tol: float = 1e-10, max_iterations: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Optimal state values and a greedy optimal policy by value iteration.

    Iterates :math:`v_{k+1} = \\max_a (r + \\gamma P v_k)` from :math:`v_0 = 0` until
    :math:`\\|v_{k+1} - v_k\\|_\\infty < \\text{tol}`; the contraction then guarantees
    :math:`\\|v_{k+1} - v^*\\|_\\infty < \\gamma\\,\\text{tol} / (1 - \\gamma)`.

    Shape:
        ``values``: ``(rows, cols)`` float; ``policy``: ``(rows, cols)`` int.

    Args:
        world: The grid world, with ``gamma < 1``.
        tol: Stopping threshold on the sup-norm change (> 0).
        max_iterations: Upper bound on sweeps (>= 1).

    Returns:
        ``(values, policy)``: the optimal values and, per cell, the first action whose
        action value is maximal (ties are common: use :func:`optimal_action_mask`).

    Raises:
        ValueError: If ``gamma == 1``, ``tol <= 0``, ``max_iterations < 1``, or the
            iteration did not converge within ``max_iterations``.

    Examples:
        >>> values, policy = value_iteration(GridWorld())
        >>> round(float(values[3, 2]), 6), ACTIONS[policy[3, 2]]
        (10.0, 'stay')
    """
    _require_discounted(world)
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 1:
        raise ValueError(f"max_iterations must be an int >= 1, got {max_iterations!r}")
    v = np.zeros(world.n_states)
    for _ in range(max_iterations):
        q = world.R + world.gamma * world.P @ v  # q_k(s, a)
        v_new = q.max(axis=1)  # v_{k+1}(s) = max_a q_k(s, a)
        if np.abs(v_new - v).max() < tol:
            v = v_new
            break
        v = v_new
    else:
        raise ValueError(f"value iteration did not converge to tol={tol} in {max_iterations} iterations")
    q = world.R + world.gamma * world.P @ v
    return v.reshape(world.shape), q.argmax(axis=1).reshape(world.shape)


@export("rl.policy_iteration")
def policy_iteration(world: GridWorld, epsilon: float = 0.0, max_iterations: int = 1_000) -> tuple[np.ndarray, np.ndarray]:
    """Policy iteration: exact evaluation (:func:`evaluate_policy`), then greedy improvement.

    Starts from "stay" everywhere. Improvement switches a cell's action only when another
    action is better by more than ``1e-10`` (relative), so ties cannot make it cycle.

    With ``epsilon > 0`` the search runs over epsilon-greedy policies: each policy
    ``epsilon_greedy(policy, epsilon)`` is evaluated and its greedy action is improved.
    The fixed point is the best epsilon-greedy policy (the policy improvement theorem
    holds inside the class of epsilon-soft policies, Sutton & Barto section 5.4).

    Shape:
        ``values``: ``(rows, cols)`` float; ``policy``: ``(rows, cols)`` int.

    Args:
        world: The grid world, with ``gamma < 1``.
        epsilon: Exploration rate in ``[0, 1]`` of the policy class (0: deterministic).
        max_iterations: Upper bound on improvement steps (>= 1).

    Returns:
        ``(values, policy)``: the values of the final (epsilon-greedy) policy and its
        greedy action per cell.

    Raises:
        ValueError: If ``gamma == 1``, ``epsilon`` is outside ``[0, 1]``,
            ``max_iterations < 1``, or the policy did not stabilise in time.

    Examples:
        >>> values, policy = policy_iteration(GridWorld())
        >>> round(float(values[0, 0]), 2)  # 0.9 * v(2, 1)
        5.83
    """
    _require_discounted(world)
    epsilon = check_probability(epsilon, "epsilon")
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 1:
        raise ValueError(f"max_iterations must be an int >= 1, got {max_iterations!r}")
    policy = np.full(world.n_states, ACTIONS.index("stay"))
    for _ in range(max_iterations):
        v = evaluate_policy(world, epsilon_greedy(policy, epsilon, world.n_actions)).reshape(-1)
        q = world.R + world.gamma * world.P @ v
        best = q.argmax(axis=1)
        current = q[np.arange(world.n_states), policy]
        improves = q[np.arange(world.n_states), best] > current + 1e-10 * max(1.0, np.abs(q).max())
        if not improves.any():
            return v.reshape(world.shape), policy.reshape(world.shape)
        policy = np.where(improves, best, policy)
    raise ValueError(f"policy iteration did not stabilise in {max_iterations} iterations")


# ------------------------------------------------------------------------ private helpers
def _check_gamma(gamma: float) -> float:
    return check_probability(gamma, "gamma")


def _require_discounted(world: GridWorld) -> None:
    if not isinstance(world, GridWorld):
        raise TypeError(f"world must be a GridWorld, got {type(world).__name__}")
    if world.gamma >= 1.0:
        raise ValueError(f"this solver needs gamma < 1 (the values of a continuing task diverge), got gamma={world.gamma}")


def _flat_values(world: GridWorld, values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.shape not in (world.shape, (world.n_states,)):
        raise ValueError(f"values must have shape {world.shape} or ({world.n_states},), got {v.shape}")
    return v.reshape(world.n_states)


if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="dlnotes.rl.gridworld:GridWorld")
