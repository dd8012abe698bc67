"""RL part: reinforcement learning on a grid world: Monte Carlo methods and value-function approximation.

One module per chapter of ``docs/rl/``; see the chapter for the derivations."""
