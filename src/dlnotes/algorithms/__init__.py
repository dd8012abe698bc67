"""Algorithms part: classic algorithms that show up inside deep-learning code.

One module per chapter of ``docs/algorithms/``; see the chapter for the derivations."""
