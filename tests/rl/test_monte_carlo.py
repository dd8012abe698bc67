"""Monte Carlo methods against model-based ground truth (value iteration, policy
iteration, finite-horizon dynamic programming) and, for Blackjack, an exact
dynamic-programming computation of the dealer's outcome distribution."""

from functools import lru_cache

import gymnasium
import numpy as np
import pytest

from dlnotes.rl.gridworld import (
    GridWorld,
    action_values,
    epsilon_greedy,
    evaluate_policy,
    optimal_action_mask,
    policy_iteration,
    value_iteration,
)
from dlnotes.rl.monte_carlo import (
    blackjack_stick_policy,
    blackjack_value_grid,
    discounted_returns,
    generate_episode,
    incremental_mean,
    mc_basic,
    mc_epsilon_greedy,
    mc_exploring_starts,
    mc_prediction,
)


def is_optimal(world, policy, tol=1e-6):
    """Every chosen action attains max_a q*(s, a) (ties allowed), with q* from value iteration."""
    mask = optimal_action_mask(action_values(world, value_iteration(world)[0]), tol)
    return bool(np.take_along_axis(mask, np.asarray(policy)[..., None], -1).all())


# ----------------------------------------------------------------------- mean estimation
def test_incremental_mean_is_the_running_average():
    x = np.random.default_rng(0).normal(size=500)
    np.testing.assert_allclose(incremental_mean(x), np.cumsum(x) / np.arange(1, 501), rtol=1e-12, atol=1e-12)


def test_law_of_large_numbers():
    """The error of the sample mean of n dice shrinks like sigma / sqrt(n)."""
    rng = np.random.default_rng(1)
    sigma = np.sqrt(35 / 12)  # standard deviation of a fair die
    for n in (100, 10_000):
        errors = [incremental_mean(rng.integers(1, 7, size=n))[-1] - 3.5 for _ in range(200)]
        assert np.sqrt(np.mean(np.square(errors))) == pytest.approx(sigma / np.sqrt(n), rel=0.2)


def test_discounted_returns():
    rewards = np.random.default_rng(2).normal(size=30)
    expected = [sum(0.9 ** (k - t) * rewards[k] for k in range(t, 30)) for t in range(30)]
    np.testing.assert_allclose(discounted_returns(rewards, 0.9), expected, atol=1e-12)
    assert discounted_returns([], 0.5).shape == (0,)


def test_generate_episode_follows_the_model():
    world = GridWorld()
    policy = np.random.default_rng(3).integers(5, size=(5, 5))
    states, actions, rewards = generate_episode(world, 6, 3, policy, 40)
    assert actions[0] == 3 and states[0] == 6
    next_states = world.P[states, actions].argmax(axis=1)
    np.testing.assert_array_equal(next_states[:-1], states[1:])
    np.testing.assert_array_equal(rewards, world.R[states, actions])
    np.testing.assert_array_equal(actions[1:], policy.reshape(-1)[states[1:]])
    # epsilon = 1: actions after the first are uniform.
    _, actions, _ = generate_episode(world, 0, 0, policy, 20_001, epsilon=1.0, seed=0)
    assert np.abs(np.bincount(actions[1:], minlength=5) / 20_000 - 0.2).max() < 0.015


# ----------------------------------------------------------------------------- MC Basic
def test_mc_basic_reaches_the_optimal_policy():
    world = GridWorld()
    result = mc_basic(world, episode_length=100, iterations=30, seed=0)
    assert is_optimal(world, result.policy)
    # Truncating returns after 100 steps costs at most gamma^100 * max|r| / (1 - gamma).
    np.testing.assert_allclose(result.values, value_iteration(world)[0], atol=0.9**100 * 10 + 1e-9)
    history = result.history
    assert history["iteration"] == list(range(1, len(history["iteration"]) + 1))
    assert len(history["values"]) == len(history["policy"]) and history["values"][0].shape == (5, 5)
    np.testing.assert_array_equal(history["policy"][-1], result.policy)


def test_mc_basic_more_episodes_per_pair_changes_nothing_here():
    world = GridWorld()
    one = mc_basic(world, episode_length=50, seed=4)
    three = mc_basic(world, episode_length=50, episodes_per_pair=3, seed=4)
    np.testing.assert_allclose(one.action_values, three.action_values, atol=1e-12)  # deterministic world


def finite_horizon_optimal(world, length):
    """Optimal expected return of `length` steps, by backward dynamic programming on the model."""
    v = np.zeros(world.n_states)
    for _ in range(length):
        v = (world.R + world.gamma * world.P @ v).max(axis=1)
    return v.reshape(world.shape)


def test_episode_length_experiment():
    """The book's experiment (r_forbidden = -10): short episodes only see the target nearby."""
    world = GridWorld(r_forbidden=-10)
    rows, cols = np.indices(world.shape) + 1
    distance = np.maximum(1, np.abs(rows - 4) + np.abs(cols - 3))  # moves needed to be rewarded
    positive_counts = []
    for length in (1, 2, 3, 4, 14, 15, 30, 100):
        values = mc_basic(world, episode_length=length, iterations=100, seed=0).values
        positive = values > 1e-9
        positive_counts.append(int(positive.sum()))
        # A positive return needs the target within `length` moves ...
        assert not (positive & (distance > length)).any(), length
        # ... and no policy beats the best `length`-step return.
        assert (values <= finite_horizon_optimal(world, length) + 1e-9).all(), length
    # Length 1: only the target and its four neighbours (the agent can step onto it).
    assert positive_counts[0] == 5
    np.testing.assert_allclose(mc_basic(world, episode_length=1, seed=0).values, world.R.max(axis=1).reshape(5, 5))
    assert positive_counts == sorted(positive_counts), "longer episodes spread the values"
    assert positive_counts[0] < 10 and positive_counts[-1] == 25
    assert is_optimal(world, mc_basic(world, episode_length=100, seed=0).policy)


# ------------------------------------------------------------------ MC Exploring Starts
@pytest.mark.parametrize("visit", ["first", "every"])
def test_exploring_starts_reaches_the_optimal_policy(visit):
    world = GridWorld()
    result = mc_exploring_starts(world, episodes=4_000, episode_length=60, visit=visit, step_size=0.5, seed=0)
    assert is_optimal(world, result.policy), visit
    assert result.visits.min() >= 4_000 // 125, "every pair started at least once per sweep"
    # With the optimal policy fixed, recent returns are exact up to truncation at 60 steps.
    v_star = value_iteration(world)[0]
    np.testing.assert_allclose(result.values, v_star, atol=0.05)


@pytest.mark.parametrize("visit", ["first", "every", "initial"])
def test_exploring_starts_with_sample_averages_on_a_small_world(visit):
    """The book's version (plain averages of all returns) converges, slowly: a 2x3 world."""
    world = GridWorld(rows=2, cols=3, forbidden=[(1, 2)], target=(2, 3))
    result = mc_exploring_starts(world, episodes=3_000, episode_length=40, visit=visit, seed=1)
    assert is_optimal(world, result.policy), visit


def test_sample_averages_lag_behind_on_the_book_example():
    """Averaging returns of early, bad policies slows the book's version on the 5x5 world;
    a constant step size forgets them. Same episodes budget, same seed."""
    world = GridWorld()
    averaged = mc_exploring_starts(world, episodes=4_000, episode_length=60, seed=0)
    forgetting = mc_exploring_starts(world, episodes=4_000, episode_length=60, step_size=0.5, seed=0)
    v_star = value_iteration(world)[0]
    assert np.abs(averaged.values - v_star).max() > 10 * np.abs(forgetting.values - v_star).max()


# -------------------------------------------------------------------- MC epsilon-greedy
@pytest.mark.parametrize(("epsilon", "tol"), [(0.1, 0.25), (0.5, 0.2)])
def test_epsilon_greedy_is_near_the_best_epsilon_greedy_policy(epsilon, tol):
    world = GridWorld()
    best_values, _ = policy_iteration(world, epsilon=epsilon)  # best among epsilon-greedy policies
    result = mc_epsilon_greedy(world, epsilon=epsilon, episodes=5_000, episode_length=60, visit="first", seed=0)
    achieved = evaluate_policy(world, epsilon_greedy(result.policy, epsilon))
    assert (achieved <= best_values + 1e-9).all(), "nothing beats the best epsilon-greedy policy"
    assert np.abs(achieved - best_values).max() < tol
    # The test can fail: the initial random policy is far from it.
    start = np.random.default_rng(0).integers(5, size=(5, 5))
    assert np.abs(evaluate_policy(world, epsilon_greedy(start, epsilon)) - best_values).max() > 5 * tol


def test_epsilon_greedy_history_and_reproducibility():
    world = GridWorld()
    kwargs = dict(epsilon=0.3, episodes=60, episode_length=100, record_every=20, seed=7)
    one, two = mc_epsilon_greedy(world, **kwargs), mc_epsilon_greedy(world, **kwargs)
    np.testing.assert_array_equal(one.action_values, two.action_values)
    assert one.history["episode"] == [20, 40, 60]
    pi = epsilon_greedy(one.policy, 0.3)
    np.testing.assert_allclose(one.values, (pi * one.action_values).sum(-1))
    single = mc_epsilon_greedy(world, epsilon=1.0, episodes=1, episode_length=20_000, start_state=0, seed=0)
    assert single.visits.sum() == 20_000 and (single.visits > 0).all(), "one long random episode visits every pair"


def test_progress_bar_runs(capsys):
    mc_basic(GridWorld(), episode_length=5, iterations=2, progress=True)
    mc_exploring_starts(GridWorld(), episodes=10, episode_length=5, progress=True)
    assert "MC" in capsys.readouterr().err


# ---------------------------------------------------------------------- Blackjack (S&B 5.1)
CARD_PROBABILITY = {card: (4 / 13 if card == 10 else 1 / 13) for card in range(1, 11)}  # infinite deck


@lru_cache(maxsize=None)
def dealer_final(hard_total, has_ace):
    """Distribution of the dealer's final score (0 = bust) from a hand with this hard total
    (aces counted as 1); the dealer hits below 17, counting one ace as 11 when it fits."""
    total = hard_total + 10 if has_ace and hard_total + 10 <= 21 else hard_total
    if hard_total > 21:
        return {0: 1.0}
    if total >= 17:
        return {total: 1.0}
    outcome = {}
    for card, p in CARD_PROBABILITY.items():
        for score, q in dealer_final(hard_total + card, has_ace or card == 1).items():
            outcome[score] = outcome.get(score, 0.0) + p * q
    return outcome


def stick_value(player, dealer_card):
    """Expected reward of sticking on `player` against a dealer showing `dealer_card`."""
    value = 0.0
    for hidden, p in CARD_PROBABILITY.items():
        for score, q in dealer_final(dealer_card + hidden, dealer_card == 1 or hidden == 1).items():
            value += p * q * np.sign(player - score)
    return value


def test_blackjack_prediction_matches_exact_dealer_odds():
    env = gymnasium.make("Blackjack-v1")
    result = mc_prediction(env, blackjack_stick_policy(20), episodes=40_000, seed=0)
    assert all(sum(dealer_final(c, c == 1).values()) == pytest.approx(1.0) for c in range(1, 11))
    checked = 0
    for (player, dealer, usable_ace), value in result.values.items():
        if player in (20, 21) and result.counts[(player, dealer, usable_ace)] >= 100:
            n = result.counts[(player, dealer, usable_ace)]
            assert abs(value - stick_value(player, dealer)) < 4.5 / np.sqrt(n), (player, dealer, usable_ace, n)
            checked += 1
    assert checked >= 30
    grid = blackjack_value_grid(result.values)
    assert grid.shape == (2, 10, 10)
    # Figure 5.1's shape: high values at 20 and 21 (the policy sticks), negative below.
    assert np.nanmean(grid[:, 8:, :]) > 0.4 and np.nanmean(grid[0, :8, :]) < -0.2


def test_prediction_visits_and_determinism():
    env = gymnasium.make("Blackjack-v1")
    first = mc_prediction(env, blackjack_stick_policy(20), episodes=300, seed=5)
    again = mc_prediction(env, blackjack_stick_policy(20), episodes=300, seed=5)
    every = mc_prediction(env, blackjack_stick_policy(20), episodes=300, seed=5, visit="every")
    assert first.values == again.values
    # Blackjack never repeats an observation within an episode: first == every visit.
    assert first.counts == every.counts
    initial = mc_prediction(env, blackjack_stick_policy(20), episodes=300, seed=5, visit="initial")
    assert sum(initial.counts.values()) == 300


# --------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda w: mc_basic("world"), TypeError, "world must be"),
        (lambda w: mc_basic(w, episode_length=0), ValueError, "episode_length must be >= 1"),
        (lambda w: mc_basic(w, iterations=2.0), TypeError, "iterations must be an int"),
        (lambda w: mc_basic(w, episodes_per_pair=0), ValueError, "episodes_per_pair"),
        (lambda w: mc_basic(w, initial_policy=np.zeros((5, 4), dtype=int)), ValueError, "initial_policy must have shape"),
        (lambda w: mc_basic(w, initial_policy=np.full((5, 5), 9)), ValueError, "actions must be in"),
        (lambda w: mc_basic(w, initial_policy=np.zeros((5, 5))), TypeError, "integer actions"),
        (lambda w: mc_exploring_starts(w, episodes=0), ValueError, "episodes must be >= 1"),
        (lambda w: mc_exploring_starts(w, visit="last"), ValueError, "visit must be one of"),
        (lambda w: mc_exploring_starts(w, step_size=0.0), ValueError, r"step_size must be None or in \(0, 1\]"),
        (lambda w: mc_exploring_starts(w, step_size="big"), TypeError, "step_size"),
        (lambda w: mc_exploring_starts(w, record_every=0), ValueError, "record_every"),
        (lambda w: mc_epsilon_greedy(w, epsilon=-0.1), ValueError, r"epsilon must be in \[0, 1\]"),
        (lambda w: mc_epsilon_greedy(w, epsilon=1.5), ValueError, r"epsilon must be in \[0, 1\]"),
        (lambda w: mc_epsilon_greedy(w, start_state=25), ValueError, "start_state must be in"),
        (lambda w: generate_episode(w, 0, 5, np.zeros((5, 5), dtype=int), 3), ValueError, "action must be"),
        (lambda w: generate_episode(w, -1, 0, np.zeros((5, 5), dtype=int), 3), ValueError, "state must be in"),
        (lambda w: discounted_returns([1.0], 1.2), ValueError, "gamma must be in"),
        (lambda w: discounted_returns([[1.0]], 0.9), ValueError, "1-D"),
        (lambda w: incremental_mean([]), ValueError, "non-empty"),
        (lambda w: incremental_mean([1.0, np.inf]), ValueError, "finite"),
        (lambda w: mc_prediction(gymnasium.make("Blackjack-v1"), "stick", 10), TypeError, "policy must be callable"),
        (lambda w: mc_prediction(gymnasium.make("Blackjack-v1"), blackjack_stick_policy(), 10, gamma=2), ValueError, "gamma"),
        (lambda w: mc_prediction(gymnasium.make("Blackjack-v1"), blackjack_stick_policy(), 0), ValueError, "episodes"),
        (lambda w: mc_prediction(w, lambda s: 4, 1, max_steps=10), ValueError, "did not end within"),
        (lambda w: blackjack_stick_policy(20.5), TypeError, "threshold must be an int"),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(GridWorld())
