"""Train DQN on CartPole-v1 and evaluate it on 100 fresh episodes (the value-function chapter).

The run takes a few minutes on one CPU thread, too long for the test suite, so it lives
here. It prints the evaluation summary as a Markdown table and writes the learning curve,
the greedy evaluations made during training and the 100 final returns to
``docs/rl/results/dqn_cartpole.json``, which the chapter and its lab render.

CartPole counts as solved (the classic ``v0`` criterion) when the mean return over 100
consecutive episodes is at least 195; ``v1`` caps episodes at 500 steps.

Run: ``python benchmarks/dqn_cartpole.py`` (``--seed N`` for another seed).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import gymnasium
import numpy as np
import torch

from _harness import machine, markdown_table, write_results
from dlnotes.rl.dqn import greedy_returns
from dlnotes.rl.value_function import DQNConfig, dqn

#: The configuration the chapter reports (double DQN target, hard target copies).
CONFIG = DQNConfig(
    total_steps=50_000,
    learning_rate=1e-3,
    batch_size=64,
    buffer_size=50_000,
    learning_starts=1_000,
    target_update_every=250,
    epsilon_start=1.0,
    epsilon_end=0.02,
    epsilon_decay_steps=10_000,
    hidden=(128, 128),
    double=True,
    eval_every=2_500,
    eval_episodes=10,
    keep_best=True,
)

#: Seed of the first of the 100 evaluation episodes; far from the seeds used while training.
EVALUATION_SEED = 1_000_000
EVALUATION_EPISODES = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    start = time.perf_counter()
    result = dqn("CartPole-v1", CONFIG, seed=args.seed, progress=True)
    train_seconds = time.perf_counter() - start
    returns = greedy_returns(gymnasium.make("CartPole-v1"), result.network, EVALUATION_EPISODES,
                             seed=EVALUATION_SEED, features=result.features)
    mean = float(returns.mean())

    print(markdown_table(
        ["environment steps", "training episodes", "train time (s)", f"eval mean over {EVALUATION_EPISODES}",
         "eval min", "eval max", "solved (>= 195)"],
        [[CONFIG.total_steps, len(result.history["episode_returns"]), f"{train_seconds:.0f}", f"{mean:.1f}",
          f"{returns.min():.0f}", f"{returns.max():.0f}", "yes" if mean >= 195 else "no"]],
    ))
    print("machine:", machine())
    write_results("docs/rl/results/dqn_cartpole.json", {
        "environment": "CartPole-v1",
        "seed": args.seed,
        "config": dataclasses.asdict(CONFIG),
        "train_seconds": train_seconds,
        "history": result.history,
        "evaluation": {
            "episodes": EVALUATION_EPISODES,
            "first_seed": EVALUATION_SEED,
            "returns": returns.tolist(),
            "mean": mean,
            "solved_threshold": 195.0,
        },
    })


if __name__ == "__main__":
    main()
