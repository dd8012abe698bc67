"""Monte Carlo prediction on Blackjack: the data behind Sutton & Barto's Figure 5.1.

Estimates the state values of the policy "stick on 20 or 21, otherwise hit" with
first-visit MC prediction on gymnasium's ``Blackjack-v1`` after 10,000 and 500,000
episodes, prints the wall time and a small table, and writes the two value grids
(usable ace / no usable ace x player sum 12..21 x dealer card 1..10) to
``docs/rl/results/blackjack_mc.json``, which the chapter's lab page draws. The 500k run
takes 30 to 60 seconds on one CPU core, too long to repeat at every site build.

Run: ``python benchmarks/monte_carlo_blackjack.py [--episodes 10000 500000] [--seed 0]``
"""

from __future__ import annotations

import argparse
import time

import gymnasium
import numpy as np

from _harness import markdown_table, write_results
from dlnotes.rl.monte_carlo import blackjack_stick_policy, blackjack_value_grid, mc_prediction

RESULTS = "docs/rl/results/blackjack_mc.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, nargs="+", default=[10_000, 500_000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    runs = []
    rows = []
    for episodes in args.episodes:
        env = gymnasium.make("Blackjack-v1")
        start = time.perf_counter()
        result = mc_prediction(env, blackjack_stick_policy(20), episodes=episodes, seed=args.seed)
        seconds = time.perf_counter() - start
        grid = blackjack_value_grid(result.values)
        runs.append({
            "episodes": episodes,
            "seconds": seconds,
            # grid[usable_ace][player_sum - 12][dealer_card - 1]; null where never visited.
            "values": [[[None if np.isnan(v) else round(float(v), 5) for v in row] for row in table] for table in grid],
        })
        rows.append([episodes, f"{seconds:.1f}", f"{np.nanmean(grid[0, 8:]):.3f}", f"{np.nanmean(grid[0, :8]):.3f}",
                     f"{np.nanmean(grid[1]):.3f}"])
    print(markdown_table(["episodes", "seconds", "mean v, sum 20-21 (no ace)", "mean v, sum 12-19 (no ace)",
                          "mean v (usable ace)"], rows))
    path = write_results(RESULTS, {
        "policy": "stick on 20 or 21, otherwise hit",
        "seed": args.seed,
        "gymnasium": gymnasium.__version__,
        "runs": runs,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
