"""Feature maps, TD-linear, Sarsa and Q-learning with linear features, against model-based references.

The references come from the grid world's explicit model (``world.P``, ``world.R``): the
linear solve of the Bellman equation (``evaluate_policy``), value iteration, and, for
approximate features, the visitation distribution of the sampling scheme computed here
with plain matrix powers.
"""

import itertools
from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlnotes.rl.features import (
    cell_coordinates,
    fourier_features,
    one_hot_features,
    polynomial_features,
    tile_features,
)
from dlnotes.rl.gridworld import (
    GridWorld,
    action_values,
    evaluate_policy,
    optimal_action_mask,
    policy_probabilities,
    value_iteration,
)
from dlnotes.rl.value_function import q_learning_fa, sarsa_fa, td_fixed_point, td_linear

WORLD = GridWorld()
UNIFORM = np.full(WORLD.shape + (WORLD.n_actions,), 1.0 / WORLD.n_actions)
#: A fixed deterministic policy with no structure: one random action per cell.
RANDOM_ACTIONS = np.random.default_rng(0).integers(0, WORLD.n_actions, size=WORLD.shape)


def visitation(world, policy, episode_length):
    """Distribution of the states TD updates: uniform starts, then ``episode_length`` steps."""
    pi = policy_probabilities(world, policy)
    p_pi = np.einsum("sa,sat->st", pi, world.P)
    mu, total = np.full(world.n_states, 1.0 / world.n_states), np.zeros(world.n_states)
    for _ in range(episode_length):
        total += mu
        mu = mu @ p_pi
    return total / total.sum()


# ------------------------------------------------------------------------------ features
def test_cell_coordinates_follow_rows_and_columns():
    points = cell_coordinates(WORLD, -1.0, 1.0)
    assert points.shape == (25, 2)
    np.testing.assert_allclose(points[WORLD.cell_to_state((1, 1))], [-1.0, -1.0])
    np.testing.assert_allclose(points[WORLD.cell_to_state((1, 5))], [1.0, -1.0])  # x follows the column
    np.testing.assert_allclose(points[WORLD.cell_to_state((5, 2))], [-0.5, 1.0])  # y follows the row
    np.testing.assert_allclose(cell_coordinates(GridWorld(rows=1, cols=1, forbidden=(), target=(1, 1))), [[0.5, 0.5]])


def test_one_hot_is_the_identity():
    np.testing.assert_array_equal(one_hot_features(4), np.eye(4))


@settings(max_examples=40, deadline=None)
@given(order=st.integers(0, 4), k=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_polynomial_features_are_all_monomials_up_to_order(order, k, seed):
    points = np.random.default_rng(seed).uniform(-1, 1, size=(7, k))
    features = polynomial_features(points, order)
    assert features.shape == (7, comb(k + order, k))
    # Independent construction: every exponent vector with total degree <= order.
    expected = [np.prod(points ** np.array(e), axis=1)
                for e in itertools.product(range(order + 1), repeat=k) if sum(e) <= order]
    # Same set of columns (order-free comparison): match each expected column to one column.
    remaining = list(features.T)
    for column in expected:
        hit = next(i for i, c in enumerate(remaining) if np.allclose(c, column))
        remaining.pop(hit)
    assert not remaining


def test_polynomial_features_book_order():
    x, y = 0.3, -0.7
    np.testing.assert_allclose(polynomial_features(np.array([[x, y]]), 2)[0], [1, x, y, x * x, x * y, y * y])


def test_fourier_features_match_double_loop():
    points = np.random.default_rng(1).uniform(0, 1, size=(6, 2))
    features = fourier_features(points, 3)
    expected = np.array([[np.cos(np.pi * (c1 * x + c2 * y)) for c1 in range(4) for c2 in range(4)] for x, y in points])
    np.testing.assert_allclose(features, expected, atol=1e-12)


def test_single_tiling_is_one_hot_of_the_cell():
    points = np.random.default_rng(2).uniform(0, 1, size=(50, 2))
    features = tile_features(points, tilings=1, tiles=4)
    index = np.minimum((points * 4).astype(int), 4)  # unshifted grid: floor(x / width)
    expected = np.zeros((50, 25))
    expected[np.arange(50), index[:, 0] * 5 + index[:, 1]] = 1.0
    np.testing.assert_array_equal(features, expected)


@settings(max_examples=30, deadline=None)
@given(tilings=st.integers(1, 8), tiles=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_tiles_one_per_tiling_and_generalise_locally(tilings, tiles, seed):
    x = np.sort(np.random.default_rng(seed).uniform(0, 1, size=3))
    points = np.stack([x, np.zeros(3)], axis=1)
    features = tile_features(points, tilings, tiles)
    assert features.shape == (3, tilings * (tiles + 1) ** 2)
    np.testing.assert_array_equal(features.sum(axis=1), np.full(3, tilings))
    shared = features @ features.T
    # Along a line, a point shares at least as many tiles with a nearer point as with a farther one.
    assert shared[0, 1] >= shared[0, 2] and shared[2, 1] >= shared[2, 0]
    assert shared[0, 0] == tilings


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: polynomial_features(np.zeros(3), 2), ValueError, "points must have shape"),
        (lambda: polynomial_features(np.zeros((3, 2)), -1), ValueError, "order must be >= 0"),
        (lambda: fourier_features(np.zeros((3, 2)), 1.5), TypeError, "order must be an int"),
        (lambda: tile_features(np.zeros((3, 2)), 0, 2), ValueError, "tilings must be >= 1"),
        (lambda: tile_features(np.zeros((3, 2)), 2, 2, low=1.0, high=0.0), ValueError, "low < high"),
        (lambda: one_hot_features(0), ValueError, "n_states must be >= 1"),
        (lambda: cell_coordinates("grid"), TypeError, "world must be a GridWorld"),
    ],
)
def test_feature_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------------------ TD-linear
def test_td_linear_one_hot_matches_linear_solve():
    """One-hot TD-linear is tabular TD: it converges to v_pi = (I - gamma P_pi)^-1 r_pi."""
    exact = evaluate_policy(WORLD, RANDOM_ACTIONS)
    result = td_linear(WORLD, RANDOM_ACTIONS, one_hot_features(25), episodes=600, episode_length=50, alpha=0.5,
                       seed=0)
    assert np.abs(result.values - exact).max() < 1e-2, np.abs(result.values - exact).max()


def test_td_linear_one_hot_uniform_policy_with_decaying_steps():
    """The book's example policy (uniform): sampling noise, so a looser statistical bound."""
    exact = evaluate_policy(WORLD, UNIFORM)
    result = td_linear(WORLD, UNIFORM, one_hot_features(25), episodes=150, episode_length=1000,
                       alpha=lambda t: 0.5 * 2000 / (2000 + t), seed=0)
    errors = np.abs(result.history["weights"] - exact.reshape(1, -1)).max(axis=1)
    assert errors[-1] < 0.15, errors[-1]
    assert errors[-1] < 0.1 * errors[0], "the error must shrink by an order of magnitude"


def test_td_fixed_point_is_v_pi_when_features_span_it():
    """If v_pi lies in the span of the features, the projected Bellman equation returns it exactly."""
    v_pi = evaluate_policy(WORLD, UNIFORM).reshape(-1)
    features = np.stack([v_pi, np.ones(25), np.arange(25.0)], axis=1)
    for weights in (None, np.random.default_rng(0).uniform(0.1, 1, 25)):
        w = td_fixed_point(WORLD, UNIFORM, features, weights)
        np.testing.assert_allclose(features @ w, v_pi, atol=1e-9)
    np.testing.assert_allclose(td_fixed_point(WORLD, RANDOM_ACTIONS, one_hot_features(25), np.ones(25)),
                               evaluate_policy(WORLD, RANDOM_ACTIONS).reshape(-1), atol=1e-9)


def test_td_linear_with_polynomial_features_converges_to_td_fixed_point():
    length = 500
    features = polynomial_features(cell_coordinates(WORLD, -1.0, 1.0), 2)
    w_star = td_fixed_point(WORLD, UNIFORM, features, visitation(WORLD, UNIFORM, length))
    result = td_linear(WORLD, UNIFORM, features, episodes=400, episode_length=length,
                       alpha=lambda t: 0.02 * 2000 / (2000 + t), seed=0)
    gap = np.abs(result.values.reshape(-1) - features @ w_star).max()
    assert gap < 0.1, gap
    # The fixed point is an approximation: it differs from v_pi by far more than the gap above.
    assert np.abs(features @ w_star - evaluate_policy(WORLD, UNIFORM).reshape(-1)).max() > 0.2


def test_richer_features_approximate_better():
    """The book's observation: higher polynomial / Fourier orders lower the value error."""
    v_pi = evaluate_policy(WORLD, UNIFORM).reshape(-1)

    def rmse(features):
        return np.sqrt(np.mean((features @ td_fixed_point(WORLD, UNIFORM, features) - v_pi) ** 2))

    poly = [rmse(polynomial_features(cell_coordinates(WORLD, -1.0, 1.0), n)) for n in (1, 2, 3)]
    fourier = [rmse(fourier_features(cell_coordinates(WORLD), n)) for n in (1, 2, 3)]
    assert poly[0] > poly[1] > poly[2] > 1e-3, poly
    assert fourier[0] > fourier[1] > fourier[2] > 1e-3, fourier
    assert rmse(one_hot_features(25)) < 1e-9


def test_td_linear_history_and_start_cell():
    result = td_linear(WORLD, RANDOM_ACTIONS, one_hot_features(25), episodes=3, episode_length=5, start=(4, 3))
    assert result.history["weights"].shape == (4, 25)
    np.testing.assert_array_equal(result.history["weights"][0], np.zeros(25))
    np.testing.assert_allclose(result.history["weights"][-1], result.weights)
    # One-hot features: each of the 15 updates touches one entry of w.
    assert np.count_nonzero(result.weights) <= 15


# --------------------------------------------------------------------------- control
@pytest.mark.parametrize("seed", [0, 1])
def test_q_learning_one_hot_finds_the_optimal_policy(seed):
    values, _ = value_iteration(WORLD, tol=1e-12)
    optimal = optimal_action_mask(action_values(WORLD, values), tol=1e-6)
    result = q_learning_fa(WORLD, one_hot_features(25), episodes=300, episode_length=100, alpha=0.1,
                           epsilon=1.0, seed=seed)
    chosen_is_optimal = np.take_along_axis(optimal, result.policy[..., None], axis=-1)[..., 0]
    assert chosen_is_optimal.all(), f"non-optimal greedy actions at cells {np.argwhere(~chosen_is_optimal) + 1}"
    np.testing.assert_allclose(evaluate_policy(WORLD, result.policy), values, atol=1e-8)


def test_q_learning_with_polynomial_features_cannot_represent_it():
    """A negative control: three linear features are too few for the optimal policy."""
    values, _ = value_iteration(WORLD)
    optimal = optimal_action_mask(action_values(WORLD, values), tol=1e-6)
    features = polynomial_features(cell_coordinates(WORLD, -1.0, 1.0), 1)
    result = q_learning_fa(WORLD, features, episodes=100, episode_length=100, alpha=0.01, epsilon=1.0, seed=0)
    assert not np.take_along_axis(optimal, result.policy[..., None], axis=-1).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sarsa_learns_a_path_from_the_start_to_the_target(seed):
    start = (1, 1)
    optimal_start_value = value_iteration(WORLD)[0][0, 0]
    result = sarsa_fa(WORLD, one_hot_features(25), episodes=300, episode_length=50, alpha=0.1, epsilon=0.1,
                      start=start, seed=seed)
    # The greedy policy's exact value at the start: only a policy that reaches the target
    # (and stays) earns a positive value; v* is the ceiling.
    greedy_value = evaluate_policy(WORLD, result.policy)[start[0] - 1, start[1] - 1]
    assert 0.5 * optimal_start_value < greedy_value <= optimal_start_value + 1e-9, greedy_value
    returns = result.history["returns"]
    assert returns[-50:].mean() > returns[:50].mean() + 10, "returns per episode must improve"


def test_control_histories_have_the_documented_shapes():
    features = fourier_features(cell_coordinates(WORLD), 1)
    result = sarsa_fa(WORLD, features, episodes=4, episode_length=7, seed=3)
    assert result.weights.shape == (4, 5) and result.q.shape == (5, 5, 5) and result.policy.shape == (5, 5)
    assert result.history["weights"].shape == (5, 4, 5) and result.history["returns"].shape == (4,)
    np.testing.assert_allclose(result.q.reshape(25, 5), features @ result.weights)
    np.testing.assert_array_equal(result.policy, result.q.argmax(axis=-1))


def test_same_seed_same_result():
    first = q_learning_fa(WORLD, one_hot_features(25), episodes=5, episode_length=20, seed=7)
    second = q_learning_fa(WORLD, one_hot_features(25), episodes=5, episode_length=20, seed=7)
    np.testing.assert_array_equal(first.weights, second.weights)


@pytest.mark.parametrize("algorithm", [sarsa_fa, q_learning_fa])
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"epsilon": 1.5}, ValueError, "epsilon must be in"),
        ({"epsilon": -0.1}, ValueError, "epsilon must be in"),
        ({"start": (6, 1)}, ValueError, "outside the 5x5 board"),
        ({"start": (0, 2)}, ValueError, "outside the 5x5 board"),
        ({"alpha": 0.0}, ValueError, "alpha must be > 0"),
        ({"alpha": "big"}, TypeError, "alpha must be a number"),
        ({"episodes": 0}, ValueError, "episodes must be >= 1"),
        ({"episode_length": 0}, ValueError, "episode_length must be >= 1"),
        ({"features": np.eye(24)}, ValueError, r"features must have shape \(25, d\)"),
    ],
)
def test_control_errors(algorithm, kwargs, error, match):
    arguments = {"features": one_hot_features(25), **kwargs}
    with pytest.raises(error, match=match):
        algorithm(WORLD, **arguments)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: td_linear(WORLD, UNIFORM, one_hot_features(25), start=(3, 9)), ValueError, "outside"),
        (lambda: td_linear(WORLD, UNIFORM, np.eye(25)[:, :0]), ValueError, "features must have shape"),
        (lambda: td_linear(WORLD, np.full((5, 5), 7), np.eye(25)), ValueError, "policy actions must be in"),
        (lambda: td_linear(WORLD, UNIFORM, np.eye(25), alpha=-1.0), ValueError, "alpha must be > 0"),
        (lambda: td_linear("grid", UNIFORM, np.eye(25)), TypeError, "world must be a GridWorld"),
        (lambda: td_fixed_point(WORLD, UNIFORM, np.eye(25), -np.ones(25)), ValueError, "non-negative"),
        (lambda: td_fixed_point(WORLD, UNIFORM, np.eye(25), np.ones(24)), ValueError, "state_weights must have"),
        (lambda: td_fixed_point(GridWorld(gamma=1.0), UNIFORM, np.eye(25)), ValueError, "gamma < 1"),
        (lambda: GridWorld(gamma=1.5), ValueError, "gamma must be in"),
    ],
)
def test_evaluation_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
