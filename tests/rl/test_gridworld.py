"""The grid world and its model-based solvers against the book's numbers, closed forms,
rollouts through the gymnasium interface, and plain iterative evaluation."""

import gymnasium
import matplotlib
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

from dlnotes.rl.gridworld import (
    ACTIONS,
    BOOK_FORBIDDEN,
    ENV_ID,
    GridWorld,
    action_values,
    epsilon_greedy,
    evaluate_policy,
    optimal_action_mask,
    policy_iteration,
    policy_probabilities,
    value_iteration,
)
from dlnotes.rl.plotting import plot_policy, plot_values

matplotlib.use("Agg")

UP, RIGHT, DOWN, LEFT, STAY = range(5)

# Optimal state values of the book's 5x5 example (gamma = 0.9), as printed in the book
# (Zhao, Mathematical Foundations of RL, chapter 3 figure of the optimal policy), one decimal.
BOOK_OPTIMAL_VALUES = np.array([
    [5.8, 5.6, 6.2, 6.5, 5.8],
    [6.5, 7.2, 8.0, 7.2, 6.5],
    [7.2, 8.0, 10.0, 8.0, 7.2],
    [8.0, 10.0, 10.0, 10.0, 8.0],
    [7.2, 9.0, 10.0, 9.0, 8.1],
])


def rollout_return(world, state, policy, steps=400):
    """Discounted return of a deterministic policy, by stepping the environment."""
    world.reset(options={"state": state})
    total, discount = 0.0, 1.0
    for _ in range(steps):
        row, col = world.state_to_cell(world._state)
        _, reward, terminated, truncated, _ = world.step(int(policy[row - 1, col - 1]))
        assert not terminated and not truncated
        total += discount * reward
        discount *= world.gamma
    return total


def iterative_evaluation(world, pi, sweeps=2000):
    """v <- sum_a pi(a|s) [r(s,a) + gamma v(next(s,a))], with next states from step()."""
    S = world.n_states
    next_state = np.zeros((S, 5), dtype=int)
    reward = np.zeros((S, 5))
    for s in range(S):
        for a in range(5):
            world.reset(options={"state": s})
            next_state[s, a], reward[s, a], *_ = world.step(a)
    v = np.zeros(S)
    for _ in range(sweeps):
        v = (pi * (reward + world.gamma * v[next_state])).sum(axis=1)
    return v.reshape(world.shape)


# ---------------------------------------------------------------------- the environment
def test_book_layout_and_state_mapping():
    world = GridWorld()
    assert world.shape == (5, 5) and world.n_states == 25 and world.n_actions == 5
    assert world.forbidden == tuple(sorted(BOOK_FORBIDDEN)) and world.target == (4, 3)
    assert (world.r_boundary, world.r_forbidden, world.r_target, world.gamma) == (-1.0, -1.0, 1.0, 0.9)
    for state in range(25):
        row, col = world.state_to_cell(state)
        assert state == (row - 1) * 5 + (col - 1)
        assert world.cell_to_state((row, col)) == state
    assert world.forbidden_mask.sum() == 6 and world.forbidden_mask[1, 1] and world.forbidden_mask[4, 1]
    assert world.target_state == 17


def test_dynamics_by_hand():
    world = GridWorld()
    cases = [
        ((1, 1), UP, (1, 1), -1.0),  # boundary: stay, r_boundary
        ((1, 1), LEFT, (1, 1), -1.0),
        ((1, 1), RIGHT, (1, 2), 0.0),
        ((1, 2), DOWN, (2, 2), -1.0),  # entering a forbidden cell is allowed
        ((2, 2), STAY, (2, 2), -1.0),  # and staying in it keeps costing
        ((2, 2), UP, (1, 2), 0.0),  # leaving it is free
        ((4, 2), RIGHT, (4, 3), 1.0),  # entering the target
        ((4, 3), STAY, (4, 3), 1.0),  # staying on it
        ((4, 3), DOWN, (5, 3), 0.0),
        ((5, 3), DOWN, (5, 3), -1.0),
    ]
    for start, action, end, reward in cases:
        state, info = world.reset(options={"cell": start})
        assert info["cell"] == start
        next_state, r, terminated, truncated, _ = world.step(action)
        assert (world.state_to_cell(next_state), r) == (end, reward), (start, ACTIONS[action])
        assert not terminated and not truncated, "the target does not end the episode"


def test_model_matches_step():
    world = GridWorld(rows=3, cols=4, forbidden=[(1, 2), (3, 3)], target=(2, 4), r_boundary=-2, r_forbidden=-5, r_target=3, r_other=-0.1)
    assert world.P.shape == (12, 5, 12) and world.R.shape == (12, 5)
    np.testing.assert_allclose(world.P.sum(axis=2), 1.0)
    assert set(np.unique(world.P)) <= {0.0, 1.0}, "deterministic dynamics"
    for s in range(12):
        for a in range(5):
            world.reset(options={"state": s})
            next_state, reward, *_ = world.step(a)
            assert world.P[s, a, next_state] == 1.0 and world.R[s, a] == reward
    with pytest.raises(ValueError):
        world.P[0, 0, 0] = 0.5  # the model is read-only


def test_gymnasium_registration_and_checker():
    env = gymnasium.make(ENV_ID, r_forbidden=-10, max_episode_steps=7)
    state, info = env.reset(seed=0)
    assert state == 0 and info["cell"] == (1, 1)
    assert env.unwrapped.r_forbidden == -10.0
    steps = 0
    while True:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            break
    assert steps == 7 and not terminated, "only the TimeLimit wrapper ends episodes"
    check_env(GridWorld(), skip_render_check=True)


def test_random_start_is_seeded():
    world = GridWorld(start=None)
    first = [world.reset(seed=3)[0] for _ in range(2)]
    again = [world.reset(seed=3)[0] for _ in range(2)]
    assert first == again
    draws = {world.reset()[0] for _ in range(300)}
    assert len(draws) == 25, "uniform over all cells"


def test_render_ansi():
    world = GridWorld(render_mode="ansi")
    world.reset(options={"cell": (5, 5)})
    board = world.render().splitlines()
    assert board[0] == ". . . . ."
    assert board[1] == ". # # . ."
    assert board[3] == ". # T # ."
    assert board[4] == ". # . . A"
    assert GridWorld().render() is None


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rows": 0}, ValueError, "rows must be >= 1"),
        ({"cols": 2.5}, TypeError, "cols must be an int"),
        ({"forbidden": [(6, 1)]}, ValueError, r"forbidden cell \(6, 1\) is outside the 5x5 board"),
        ({"forbidden": [(0, 1)]}, ValueError, "1-indexed"),
        ({"forbidden": [(1,)]}, TypeError, "forbidden cell must be a"),
        ({"target": (1, 1.0)}, TypeError, "target must be a"),
        ({"target": (2, 2)}, ValueError, "must not be a forbidden cell"),
        ({"target": (5, 6)}, ValueError, "target"),
        ({"gamma": 1.5}, ValueError, r"gamma must be in \[0, 1\], got 1.5"),
        ({"gamma": -0.1}, ValueError, "gamma must be in"),
        ({"r_target": "1"}, TypeError, "r_target must be a real number"),
        ({"r_boundary": float("nan")}, ValueError, "r_boundary must be finite"),
        ({"start": (9, 9)}, ValueError, "start"),
        ({"render_mode": "human"}, ValueError, "render_mode"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        GridWorld(**kwargs)


def test_runtime_errors():
    world = GridWorld()
    with pytest.raises(RuntimeError, match="reset"):
        world.step(0)
    world.reset()
    for bad in (5, -1, 1.5):
        with pytest.raises(ValueError, match="action must be an integer"):
            world.step(bad)
    with pytest.raises(ValueError, match="options"):
        world.reset(options={"position": 3})
    with pytest.raises(ValueError, match=r"options\['state'\] must be in \[0, 25\)"):
        world.reset(options={"state": 25})
    with pytest.raises(ValueError, match="outside"):
        world.reset(options={"cell": (0, 0)})
    with pytest.raises(TypeError, match="state must be an int"):
        world.state_to_cell(1.0)


# -------------------------------------------------------------------------- ground truth
def test_value_iteration_reproduces_the_book():
    world = GridWorld()
    values, policy = value_iteration(world)
    assert values.shape == (5, 5) and policy.shape == (5, 5) and np.issubdtype(policy.dtype, np.integer)
    np.testing.assert_allclose(values, BOOK_OPTIMAL_VALUES, atol=0.051)
    # Closed forms (gamma = 0.9): staying on the target forever is worth 1 / (1 - gamma);
    # one step into the target is 1 + gamma * 10; two steps away gamma * 10; and so on.
    closed = {(4, 3): 1 / (1 - 0.9), (3, 3): 1 + 0.9 * 10, (4, 2): 10.0, (4, 4): 10.0, (5, 3): 10.0,
              (5, 2): 0.9 * 10, (5, 4): 0.9 * 10, (5, 5): 0.81 * 10, (3, 2): -1 + 0.9 * 10, (4, 1): -1 + 0.9 * 10}
    for (row, col), expected in closed.items():
        assert values[row - 1, col - 1] == pytest.approx(expected, abs=1e-8), (row, col)
    assert ACTIONS[policy[3, 2]] == "stay"


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 6), cols=st.integers(1, 6), gamma=st.floats(0.0, 0.97), data=st.data())
def test_open_board_closed_form(rows, cols, gamma, data):
    """No forbidden cells: v*(s) = gamma^(d-1) / (1 - gamma), d = max(1, Manhattan distance)."""
    target = (data.draw(st.integers(1, rows)), data.draw(st.integers(1, cols)))
    world = GridWorld(rows=rows, cols=cols, forbidden=(), target=target, gamma=gamma)
    values, policy = value_iteration(world)
    r, c = np.indices((rows, cols)) + 1
    d = np.maximum(1, np.abs(r - target[0]) + np.abs(c - target[1]))
    np.testing.assert_allclose(values, gamma ** (d - 1) / (1 - gamma), atol=1e-8)
    np.testing.assert_allclose(evaluate_policy(world, policy), values, atol=1e-8)


def test_policy_iteration_agrees_with_value_iteration():
    for world in (GridWorld(), GridWorld(r_forbidden=-10), GridWorld(rows=4, cols=6, forbidden=[(2, 2), (3, 5)], target=(1, 6), gamma=0.8)):
        v_vi, p_vi = value_iteration(world)
        v_pi, p_pi = policy_iteration(world)
        np.testing.assert_allclose(v_pi, v_vi, atol=1e-8)
        # Compare policies through action values: any optimal action is fine.
        mask = optimal_action_mask(action_values(world, v_vi), tol=1e-6)
        for policy in (p_vi, p_pi):
            assert np.take_along_axis(mask, policy[..., None], -1).all()
        # Bellman optimality: v* = max_a q*(s, a).
        np.testing.assert_allclose(action_values(world, v_vi).max(-1), v_vi, atol=1e-8)


def test_evaluate_policy_against_rollouts_and_iteration():
    world = GridWorld()
    rng = np.random.default_rng(0)
    for _ in range(3):
        policy = rng.integers(5, size=(5, 5))
        exact = evaluate_policy(world, policy)
        for state in (0, 7, 17, 24):
            row, col = world.state_to_cell(state)
            assert exact[row - 1, col - 1] == pytest.approx(rollout_return(world, state, policy), abs=1e-6)
        pi = rng.dirichlet(np.ones(5), size=25)
        np.testing.assert_allclose(evaluate_policy(world, pi), iterative_evaluation(world, pi), atol=1e-8)
        np.testing.assert_allclose(evaluate_policy(world, pi.reshape(5, 5, 5)), iterative_evaluation(world, pi), atol=1e-8)


def test_epsilon_greedy_and_policy_formats():
    pi = epsilon_greedy(np.array([[0, 4]]), 0.2)
    np.testing.assert_allclose(pi, [[[0.84, 0.04, 0.04, 0.04, 0.04], [0.04, 0.04, 0.04, 0.04, 0.84]]])
    np.testing.assert_allclose(epsilon_greedy(np.arange(5), 1.0), np.full((5, 5), 0.2))
    np.testing.assert_allclose(epsilon_greedy(np.arange(5), 0.0), np.eye(5))
    world = GridWorld()
    np.testing.assert_allclose(policy_probabilities(world, np.full(25, 2)), np.tile(np.eye(5)[2], (25, 1)))
    with pytest.raises(ValueError, match=r"epsilon must be in \[0, 1\]"):
        epsilon_greedy(np.zeros(3, dtype=int), 1.1)
    with pytest.raises(TypeError, match="integer actions"):
        epsilon_greedy(np.zeros(3), 0.1)
    with pytest.raises(ValueError, match="actions must be in"):
        epsilon_greedy(np.array([5]), 0.1)


def test_epsilon_policy_iteration_is_best_among_epsilon_greedy():
    """No single-state switch of the greedy action improves any state's value."""
    world = GridWorld()
    for epsilon in (0.1, 0.5):
        values, policy = policy_iteration(world, epsilon=epsilon)
        np.testing.assert_allclose(evaluate_policy(world, epsilon_greedy(policy, epsilon)), values, atol=1e-10)
        for s in range(25):
            for a in range(5):
                other = policy.reshape(-1).copy()
                other[s] = a
                v_other = evaluate_policy(world, epsilon_greedy(other.reshape(5, 5), epsilon))
                assert (v_other <= values + 1e-9).all(), (epsilon, s, a)
        # And it beats the epsilon-greedy version of the greedy optimal policy.
        greedy_optimal = value_iteration(world)[1]
        assert (evaluate_policy(world, epsilon_greedy(greedy_optimal, epsilon)) <= values + 1e-9).all()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda w: value_iteration(GridWorld(gamma=1.0)), ValueError, "gamma < 1"),
        (lambda w: policy_iteration(GridWorld(gamma=1.0)), ValueError, "gamma < 1"),
        (lambda w: evaluate_policy(GridWorld(gamma=1.0), np.zeros((5, 5), dtype=int)), ValueError, "gamma < 1"),
        (lambda w: value_iteration(w, tol=0), ValueError, "tol must be > 0"),
        (lambda w: value_iteration(w, max_iterations=0), ValueError, "max_iterations"),
        (lambda w: value_iteration(w, max_iterations=3), ValueError, "did not converge"),
        (lambda w: policy_iteration(w, epsilon=2.0), ValueError, "epsilon must be in"),
        (lambda w: evaluate_policy(w, np.zeros((4, 5), dtype=int)), ValueError, "shape"),
        (lambda w: evaluate_policy(w, np.full((5, 5), 7)), ValueError, "actions must be in"),
        (lambda w: evaluate_policy(w, np.full((25, 5), 0.3)), ValueError, "sum to 1"),
        (lambda w: evaluate_policy(w, np.zeros((5, 5), dtype=bool)), TypeError, "dtype"),
        (lambda w: evaluate_policy("world", np.zeros((5, 5), dtype=int)), TypeError, "world must be a GridWorld"),
        (lambda w: action_values(w, np.zeros(24)), ValueError, "values must have shape"),
    ],
)
def test_solver_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(GridWorld())


# ------------------------------------------------------------------------------- figures
def test_plots():
    import matplotlib.pyplot as plt

    world = GridWorld()
    values, policy = value_iteration(world)
    fig, (left, right) = plt.subplots(1, 2)
    assert plot_values(world, values, ax=left, title="v*") is left
    assert [text.get_text() for text in left.texts][:3] == ["5.8", "5.6", "6.2"]
    assert plot_policy(world, policy, ax=right) is right
    # One arrow per cell except the target, whose action is "stay" (a circle).
    assert len([p for p in right.patches if type(p).__name__ == "FancyArrow"]) == 24
    ax = plot_policy(world, epsilon_greedy(policy, 0.5))
    assert len([p for p in ax.patches if type(p).__name__ == "FancyArrow"]) == 25 * 4
    plt.close("all")
    with pytest.raises(ValueError, match="values must have shape"):
        plot_values(world, np.zeros(3))
    with pytest.raises(ValueError, match="decimals"):
        plot_values(world, values, decimals=-1)
