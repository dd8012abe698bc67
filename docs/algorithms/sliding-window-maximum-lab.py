# %% [markdown]
# # Lab: how the sliding-window methods scale
#
# This page is executed when the site is built. It reads the timings that
# `benchmarks/sliding_window.py` stored in `docs/algorithms/results/sliding_window.json`
# and draws them, then runs a small live check that the four methods agree.
# Back to the chapter: [Sliding-window maximum](sliding-window-maximum.md).

# %%
import json
import random
from pathlib import Path

import matplotlib.pyplot as plt

from dlnotes.algorithms.sliding_window import METHODS, sliding_window_max

# The build runs this page from the repository root; a reader may run it from docs/algorithms/.
results_file = next(path for path in (Path("docs/algorithms/results"), Path("results")) if path.is_dir()) / "sliding_window.json"
results = json.loads(results_file.read_text())
print("measured with:", results["command"])
print("machine:", results["machine"]["cpu"], "| torch", results["machine"]["torch"])

# %% [markdown]
# Time against the array length $n$ (fixed $k$) on log-log axes: a straight line of
# slope $a$ means time $\propto n^a$. Right: time against the window size $k$ (fixed $n$);
# only brute force grows with $k$.

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
names = list(results["by_n"][0]["seconds"])
for name in names:
    ns = [point["n"] for point in results["by_n"]]
    left.loglog(ns, [1e3 * point["seconds"][name] for point in results["by_n"]], "o-",
                label=f"{name} (n^{results['exponents'][name]:.2f})")
    ks = [point["k"] for point in results["by_k"]]
    right.loglog(ks, [1e3 * point["seconds"][name] for point in results["by_k"]], "o-", label=name)
left.set(xlabel="n", ylabel="median time (ms)", title=f"k = {results['by_n'][0]['k']}")
right.set(xlabel="k", ylabel="median time (ms)", title=f"n = {results['by_k'][0]['n']}")
left.legend(fontsize=8)
right.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# A live check while the page builds: all methods agree on a random array.

# %%
rng = random.Random(0)
nums = [rng.randint(-100, 100) for _ in range(1000)]
answers = {method: sliding_window_max(nums, 25, method=method) for method in METHODS}
assert all(answer == answers["brute"] for answer in answers.values())
print("all", len(METHODS), "methods agree on", len(answers["brute"]), "windows")
