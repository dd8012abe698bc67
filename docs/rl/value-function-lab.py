# %% [markdown]
# # Lab: value-function approximation, in pictures
#
# This page is executed when the site is built. It reruns the chapter's TD-linear
# experiment on the grid world with every feature map and draws the error curves and
# the fitted value surfaces, shows how Sarsa and Q-learning improve per episode, and
# plots the DQN learning curve on `CartPole-v1` stored by `benchmarks/dqn_cartpole.py`
# in `docs/rl/results/dqn_cartpole.json`.
# Back to the chapter: [Value functions: from tables to functions](value-function.md).

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from dlnotes.rl.features import (
    cell_coordinates,
    fourier_features,
    one_hot_features,
    polynomial_features,
    tile_features,
)
from dlnotes.rl.gridworld import GridWorld, action_values, evaluate_policy, optimal_action_mask, value_iteration
from dlnotes.rl.value_function import q_learning_fa, sarsa_fa, td_fixed_point, td_linear

world = GridWorld()
uniform = np.full((5, 5, 5), 0.2)
v_pi = evaluate_policy(world, uniform)
centred, unit = cell_coordinates(world, -1.0, 1.0), cell_coordinates(world)
feature_sets = {
    "polynomial 1": polynomial_features(centred, 1),
    "polynomial 2": polynomial_features(centred, 2),
    "polynomial 3": polynomial_features(centred, 3),
    "Fourier 1": fourier_features(unit, 1),
    "Fourier 2": fourier_features(unit, 2),
    "Fourier 3": fourier_features(unit, 3),
    "tiles 2x(2+1)^2": tile_features(unit, 2, 2),
    "one-hot": one_hot_features(25),
}

# %% [markdown]
# ## TD-linear error curves
#
# The uniformly random policy is evaluated from 300 episodes of 500 steps, each starting
# in a random cell, with a decaying step size (divided by the squared norm of the
# features so that every map takes comparable steps). The curves show the root mean
# squared error $\sqrt{\frac{1}{25}\sum_s (\hat v(s, w) - v_\pi(s))^2}$ after each
# episode; the dashed lines are the errors of the TD fixed points, where each curve
# should level off.

# %%
episodes, length = 300, 500
results = {}
for name, phi in feature_sets.items():
    scale = float((phi**2).sum(axis=1).max())  # largest ||phi(s)||^2
    results[name] = td_linear(world, uniform, phi, episodes=episodes, episode_length=length,
                              alpha=lambda t, scale=scale: 0.2 / scale * 2_000 / (2_000 + t), seed=0)

fig, ax = plt.subplots(figsize=(8, 4.5))
for (name, phi), color in zip(feature_sets.items(), plt.cm.tab10.colors):
    values = results[name].history["weights"] @ phi.T  # (episodes + 1, 25)
    rmse = np.sqrt(((values - v_pi.reshape(1, -1)) ** 2).mean(axis=1))
    fixed = np.sqrt(((phi @ td_fixed_point(world, uniform, phi) - v_pi.reshape(-1)) ** 2).mean())
    ax.plot(rmse, color=color, label=f"{name} (d = {phi.shape[1]})")
    ax.axhline(fixed, color=color, linestyle="--", linewidth=0.8)
ax.set(xlabel="episode (500 steps each)", ylabel="value RMSE", ylim=(0, 0.6),
       title="TD-linear on the 5x5 grid, uniformly random policy")
ax.legend(fontsize=8, ncol=2)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The fitted value surfaces
#
# The true values $v_\pi$ as a surface over the board, next to what TD-linear learned with
# a plane, with cubic polynomials and with Fourier features of order 3. Richer features
# bend the surface towards the true one; none of them captures the sharp dip at the
# bottom-left corner.

# %%
x = unit[:, 0].reshape(5, 5)
y = unit[:, 1].reshape(5, 5)
fig = plt.figure(figsize=(12, 3.4))
panels = [("true v_pi", v_pi)] + [(name, results[name].values) for name in ("polynomial 1", "polynomial 3", "Fourier 3")]
for i, (name, surface) in enumerate(panels, start=1):
    ax = fig.add_subplot(1, 4, i, projection="3d")
    ax.plot_surface(x, y, surface, cmap="viridis", vmin=v_pi.min(), vmax=v_pi.max())
    ax.set(title=name, xlabel="column", ylabel="row", zlim=(v_pi.min() - 0.3, v_pi.max() + 0.3))
    ax.set_xticks(np.linspace(0, 1, 5), labels=range(1, 6))
    ax.set_yticks(np.linspace(0, 1, 5), labels=range(1, 6))
    ax.invert_yaxis()  # row 1 at the back, as the board is drawn
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Sarsa and Q-learning per episode
#
# Left: Sarsa from cell (1, 1) with an $\varepsilon$-greedy policy ($\varepsilon = 0.1$),
# total reward per 50-step episode. Right: in how many of the 25 cells the greedy action
# of Q-learning (uniform behaviour policy) is optimal, checked against value iteration.
# One-hot features get all 25; the coarse tiles and the Fourier basis cannot represent
# the optimal action values well enough to rank the actions everywhere.

# %%
v_star, _ = value_iteration(world)
optimal = optimal_action_mask(action_values(world, v_star))  # (5, 5, 5): which actions are optimal
sarsa = sarsa_fa(world, one_hot_features(25), episodes=300, episode_length=50, alpha=0.1, epsilon=0.1,
                 start=(1, 1), seed=0)
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
left.plot(sarsa.history["returns"], linewidth=0.8)
left.set(xlabel="episode", ylabel="total reward", title="Sarsa, one-hot features, start (1, 1)")
for name, phi, alpha in [("one-hot", one_hot_features(25), 0.1), ("tiles 2x(2+1)^2", feature_sets["tiles 2x(2+1)^2"], 0.05),
                         ("Fourier 3", feature_sets["Fourier 3"], 0.01)]:
    q = q_learning_fa(world, phi, episodes=300, episode_length=100, alpha=alpha, epsilon=1.0, seed=0)
    greedy = (q.history["weights"].transpose(0, 2, 1) @ phi.T).argmax(axis=1)  # (episodes + 1, 25)
    right.plot(np.take_along_axis(optimal.reshape(1, 25, 5), greedy[..., None], -1).sum(axis=(1, 2)), label=name)
right.set(xlabel="episode", ylabel="cells with an optimal greedy action", ylim=(0, 26),
          title="Q-learning, uniform behaviour")
right.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The policies learned on the grid
#
# The optimal policy from value iteration, the greedy policy of Q-learning with one-hot
# features (uniform behaviour, 300 episodes of 100 steps) and that of a deep Q-network
# (one hidden layer of 64 units, one-hot input, 4000 steps of uniformly random behaviour,
# replay and a target network). Where several actions are optimal the three may pick
# different ones; the chapter checks every greedy action against the full set of optimal
# actions.

# %%
import torch
from gymnasium.wrappers import TimeLimit

from dlnotes.rl.plotting import plot_policy, plot_values
from dlnotes.rl.value_function import DQNConfig, dqn

torch.set_num_threads(1)
q_table = q_learning_fa(world, one_hot_features(25), episodes=300, episode_length=100, alpha=0.1, epsilon=1.0, seed=0)
config = DQNConfig(total_steps=4_000, gamma=world.gamma, learning_rate=2e-3, batch_size=64, buffer_size=4_000,
                   learning_starts=500, target_update_every=100, epsilon_start=1.0, epsilon_end=1.0, hidden=(64,))
deep = dqn(TimeLimit(GridWorld(start=None), max_episode_steps=100), config, seed=0)
deep_policy = deep.q_values(list(range(25))).argmax(axis=1).reshape(5, 5)
fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
plot_values(world, v_star, ax=axes[0], title="optimal values v*")
plot_policy(world, value_iteration(world)[1], ax=axes[1], title="value iteration")
plot_policy(world, q_table.policy, ax=axes[2], title="Q-learning, one-hot")
plot_policy(world, deep_policy, ax=axes[3], title="deep Q-network")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## DQN on CartPole-v1
#
# The return of every training episode (thin), its moving average over 20 episodes, and
# the mean greedy return of the 10-episode evaluations made every 2500 steps (dots). The
# dashed line is the "solved" threshold of 195. The returned network is the one with the
# best evaluation; its mean over 100 fresh episodes is printed below the plot.

# %%
results_file = next(p for p in (Path("docs/rl/results"), Path("results")) if p.is_dir()) / "dqn_cartpole.json"
cartpole = json.loads(results_file.read_text())
history = cartpole["history"]
returns = np.array(history["episode_returns"])
ends = np.array(history["episode_end_steps"])
window = 20
moving = np.convolve(returns, np.ones(window) / window, mode="valid")
fig, ax = plt.subplots(figsize=(8, 4))
ax.plot(ends, returns, linewidth=0.5, alpha=0.5, label="training episode return")
ax.plot(ends[window - 1:], moving, label=f"moving average ({window} episodes)")
ax.plot(history["eval_steps"], history["eval_returns"], "o", label="greedy evaluation (10 episodes)")
ax.axhline(195, color="black", linestyle="--", linewidth=0.8, label="solved (195)")
ax.set(xlabel="environment step", ylabel="return", title="DQN on CartPole-v1")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
print("measured with:", cartpole["command"], "| machine:", cartpole["machine"]["cpu"], "| torch", cartpole["machine"]["torch"])
print(f"mean return of the kept network over {cartpole['evaluation']['episodes']} fresh episodes:",
      cartpole["evaluation"]["mean"])
