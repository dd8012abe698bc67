# %% [markdown]
# # Lab: Monte Carlo methods in pictures
#
# This page is executed when the site is built (about half a minute). It draws the
# figures of the chapter [Monte Carlo methods](monte-carlo.md): the law of large numbers,
# the grid world's optimal policy, MC Basic with different episode lengths, how fast
# MC Exploring Starts converges with averages and with a constant step size, the best
# ε-greedy policies, and Blackjack's state values (Sutton & Barto, Figure 5.1).

# %%
import json
from pathlib import Path

import gymnasium
import matplotlib.pyplot as plt
import numpy as np

from dlnotes.rl.gridworld import GridWorld, epsilon_greedy, policy_iteration, value_iteration
from dlnotes.rl.monte_carlo import (
    blackjack_stick_policy,
    blackjack_value_grid,
    incremental_mean,
    mc_basic,
    mc_epsilon_greedy,
    mc_exploring_starts,
    mc_prediction,
)
from dlnotes.rl.plotting import plot_policy, plot_values

# %% [markdown]
# ## Mean estimation: the law of large numbers
#
# Twenty independent streams of fair-die rolls, each with its running mean
# $w_k = w_{k-1} + (x_k - w_{k-1})/k$. The dashed envelope is
# $3.5 \pm 2\sigma/\sqrt{k}$ with $\sigma^2 = 35/12$: the error shrinks like $1/\sqrt{k}$.

# %%
rng = np.random.default_rng(0)
n = 5_000
k = np.arange(1, n + 1)
fig, ax = plt.subplots(figsize=(8, 3.5))
for _ in range(20):
    ax.plot(k, incremental_mean(rng.integers(1, 7, size=n)), lw=0.8, alpha=0.7)
sigma = np.sqrt(35 / 12)
ax.plot(k, 3.5 + 2 * sigma / np.sqrt(k), "k--", lw=1)
ax.plot(k, 3.5 - 2 * sigma / np.sqrt(k), "k--", lw=1, label=r"$3.5 \pm 2\sigma/\sqrt{k}$")
ax.set(xscale="log", ylim=(1, 6), xlabel="number of samples k", ylabel="running mean $w_k$",
       title="Sample means of die rolls converge to E[X] = 3.5")
ax.legend()
plt.show()

# %% [markdown]
# ## The ground truth: the book's optimal policy and values
#
# From value iteration on the model (`world.P`, `world.R`); orange cells are forbidden,
# blue is the target, a circle means "stay".

# %%
world = GridWorld()
optimal_values, optimal_policy = value_iteration(world)
fig, (left, right) = plt.subplots(1, 2, figsize=(8, 4))
plot_policy(world, optimal_policy, ax=left, title="optimal policy")
plot_values(world, optimal_values, ax=right, title="optimal state values")
plt.show()

# %% [markdown]
# ## MC Basic with different episode lengths
#
# The book's experiment: $r_\text{forbidden} = -10$, episodes of $T$ steps. Short
# episodes only "see" the target from nearby cells; the values spread outwards as $T$
# grows, and from $T = 15$ on every cell has a positive value.

# %%
hard_world = GridWorld(r_forbidden=-10)
lengths = (1, 2, 3, 4, 14, 15, 30, 100)
results = {length: mc_basic(hard_world, episode_length=length, iterations=100, seed=0) for length in lengths}
fig, axes = plt.subplots(2, 4, figsize=(14, 7))
for ax, length in zip(axes.flat, lengths):
    plot_policy(hard_world, results[length].policy, ax=ax, title=f"policy, T = {length}")
fig.tight_layout()
plt.show()
fig, axes = plt.subplots(2, 4, figsize=(14, 7))
for ax, length in zip(axes.flat, lengths):
    plot_values(hard_world, results[length].values, ax=ax, title=f"values, T = {length}")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## MC Exploring Starts: averages lag, a constant step size forgets
#
# The largest error of the estimated state values against the optimal values, as
# episodes accumulate (60 steps each, starts sweeping all 125 pairs). Averaging all
# returns (the book's version) carries the returns of early, poor policies for a long
# time; with $\alpha = 0.5$ they fade geometrically.

# %%
fig, ax = plt.subplots(figsize=(8, 4))
for step_size, colour in ((None, "tab:red"), (0.5, "tab:blue")):
    for visit, style in (("first", "-"), ("every", "--")):
        run = mc_exploring_starts(world, episodes=20_000, episode_length=60, visit=visit,
                                  step_size=step_size, seed=0, record_every=200)
        errors = [np.abs(values - optimal_values).max() for values in run.history["values"]]
        label = f"{'averages' if step_size is None else 'alpha = 0.5'}, {visit} visit"
        ax.plot(run.history["episode"], errors, style, color=colour, label=label)
ax.set(yscale="log", xlabel="episodes", ylabel="max |v - v*|", title="MC Exploring Starts on the 5x5 grid world")
ax.legend()
plt.show()

# %% [markdown]
# ## The best ε-greedy policies
#
# Exact, from policy iteration restricted to ε-greedy policies. Arrow lengths are action
# probabilities. For ε = 0.1 the greedy parts are still optimal; from ε = 0.2 on the
# policy steers away from the forbidden cells, and the values drop.

# %%
epsilons = (0.0, 0.1, 0.2, 0.5)
fig, axes = plt.subplots(2, 4, figsize=(14, 7))
for column, epsilon in enumerate(epsilons):
    values, greedy = policy_iteration(world, epsilon=epsilon)
    plot_policy(world, epsilon_greedy(greedy, epsilon), ax=axes[0, column], title=f"best ε-greedy, ε = {epsilon}")
    plot_values(world, values, ax=axes[1, column], title=f"its values, ε = {epsilon}")
fig.tight_layout()
plt.show()

# %% [markdown]
# And what MC ε-greedy learned without a model (ε = 0.1, 5,000 episodes of 60 steps
# from random start pairs), next to its estimated values.

# %%
learned = mc_epsilon_greedy(world, epsilon=0.1, episodes=5_000, episode_length=60, visit="first", seed=0)
fig, (left, right) = plt.subplots(1, 2, figsize=(8, 4))
plot_policy(world, learned.policy, ax=left, title="MC ε-greedy: greedy actions")
plot_values(world, learned.values, ax=right, title="MC ε-greedy: estimated values")
plt.show()

# %% [markdown]
# ## Blackjack: Sutton & Barto's Figure 5.1
#
# State values of the policy "stick on 20 or 21", estimated by first-visit MC
# prediction. The 500,000-episode run takes about a minute, so it is read from
# `docs/rl/results/blackjack_mc.json`, written by
# `python benchmarks/monte_carlo_blackjack.py`; the 10,000-episode run is repeated
# live and compared with the stored one.

# %%
results_dir = next(path for path in (Path("docs/rl/results"), Path("results")) if path.is_dir())
stored = json.loads((results_dir / "blackjack_mc.json").read_text())
print("computed with:", stored["command"], "| gymnasium", stored["gymnasium"])
grids = {run["episodes"]: np.array(run["values"], dtype=float) for run in stored["runs"]}

live = mc_prediction(gymnasium.make("Blackjack-v1"), blackjack_stick_policy(20), episodes=10_000, seed=stored["seed"])
live_grid = blackjack_value_grid(live.values)
if 10_000 in grids:
    print("live 10,000-episode run vs stored: max difference",
          float(np.nanmax(np.abs(live_grid - grids[10_000]))))
grids.setdefault(10_000, live_grid)

# %%
dealer, player = np.meshgrid(np.arange(1, 11), np.arange(12, 22))
episodes_shown = sorted(grids)
fig = plt.figure(figsize=(5 * len(episodes_shown), 8))
for column, episodes in enumerate(episodes_shown):
    for row, (ace, name) in enumerate(((1, "usable ace"), (0, "no usable ace"))):
        ax = fig.add_subplot(2, len(episodes_shown), row * len(episodes_shown) + column + 1, projection="3d")
        surface = np.nan_to_num(grids[episodes][ace])
        ax.plot_surface(dealer, player, surface, cmap="coolwarm", vmin=-1, vmax=1, edgecolor="k", lw=0.2)
        ax.set(zlim=(-1, 1), xlabel="dealer showing", ylabel="player sum", title=f"{name}, {episodes:,} episodes")
        ax.view_init(elev=30, azim=-120)
fig.tight_layout()
plt.show()
