# %% [markdown]
# # Lab: how EfficientNet's cost grows from B0 to B7
#
# This page is executed when the site is built. It reads the counts and CPU timings that
# `benchmarks/efficientnet_table.py` stored in `docs/vision/results/efficientnet.json`,
# draws them, and then compares the released coefficients with the compound-scaling
# formula live. Back to the chapter: [EfficientNet](efficientnet.md).

# %%
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt

from dlnotes.vision.efficientnet import VARIANTS, compound_multipliers

# The build runs this page from the repository root; a reader may run it from docs/vision/.
results_dir = next(path for path in (Path("docs/vision/results"), Path("results")) if path.is_dir())
results_file = results_dir / "efficientnet.json"
results = json.loads(results_file.read_text())
print("measured with:", results["command"])
print("machine:", results["machine"]["cpu"], "| torch", results["machine"]["torch"])

# %% [markdown]
# Left: multiply-adds and parameters of each variant, relative to B0, on a log scale.
# Compound scaling aims at doubling the FLOPs per step ($2^\phi$, dashed); the released
# models grow a little more slowly. Parameters grow more slowly still, because resolution
# adds computation but no weights. Right: measured CPU time against FLOPs, both relative
# to B0; the dotted diagonal is "time proportional to FLOPs".

# %%
rows = results["rows"]
names = [row["variant"].upper() for row in rows]
phis = range(len(rows))
flops = [row["multiply_adds"] / rows[0]["multiply_adds"] for row in rows]
params = [row["parameters"] / rows[0]["parameters"] for row in rows]
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
left.semilogy(phis, flops, "o-", label="multiply-adds / B0")
left.semilogy(phis, params, "s-", label="parameters / B0")
left.semilogy(phis, [2**phi for phi in phis], "k--", label="$2^\\phi$")
left.set(xticks=list(phis), xticklabels=names, xlabel="variant", title="growth relative to B0")
left.legend(fontsize=8)
if "seconds" in results:
    seconds = [results["seconds"][row["variant"]] / results["seconds"]["b0"] for row in rows]
    right.loglog(flops, seconds, "o-")
    for name, x, y in zip(names, flops, seconds):
        right.annotate(name, (x, y), textcoords="offset points", xytext=(4, -10), fontsize=8)
    right.loglog([1, max(flops)], [1, max(flops)], "k:", label="time proportional to FLOPs")
    right.set(xlabel="multiply-adds / B0", ylabel="CPU time / B0", title="time against FLOPs")
    right.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# A live comparison: the multipliers the formula $d = \alpha^\phi$, $w = \beta^\phi$,
# $r = \gamma^\phi$ gives for $\phi = 0, \dots, 7$, against the hand-rounded ones the
# released models use.

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
released = list(VARIANTS.values())
derived = [compound_multipliers(phi) for phi in phis]
for axis, title, formula, actual in (
    (axes[0], "depth d", [d for d, _, _ in derived], [v.depth_mult for v in released]),
    (axes[1], "width w", [w for _, w, _ in derived], [v.width_mult for v in released]),
    (axes[2], "resolution (pixels)", [224 * r for _, _, r in derived], [v.resolution for v in released]),
):
    axis.plot(phis, formula, "k--", label="formula")
    axis.plot(phis, actual, "o-", label="released")
    axis.set(xticks=list(phis), xticklabels=names, title=title)
    axis.legend(fontsize=8)
fig.tight_layout()
plt.show()
slope = math.log2(flops[-1]) / (len(rows) - 1)
print(f"FLOPs grow by 2^{slope:.2f} per variant on average (the formula's target: 2^1)")
