# %% [markdown]
# # Lab: sparse attention patterns and what they cost
#
# This page is executed when the site is built. It draws the patterns of the chapter
# with the tiles `sparse_attention` computes for them, then plots the work and time
# that `benchmarks/sparse_attention.py` stored in
# `docs/attention/results/sparse_attention.json`.
# Back to the chapter: [Sparse attention](sparse-attention.md).

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from dlnotes.attention.sdpa import attention_reference
from dlnotes.attention.sparse import Dilated, Fixed, Local, Strided, sparse_attention

# The build runs this page from the repository root; a reader may run it from docs/attention/.
results_file = next(path for path in (Path("docs/attention/results"), Path("results")) if path.is_dir()) / "sparse_attention.json"
results = json.loads(results_file.read_text())
print("measured with:", results["command"])
print("machine:", results["machine"]["cpu"], "| torch", results["machine"]["torch"])

# %% [markdown]
# Each panel is a causal mask for $n = 64$ (dark = may attend). The shaded squares are the
# $8 \times 8$ tiles the block layout marks non-empty: the only scores that
# `sparse_attention` computes. Local and fixed patterns fill their tiles well; the
# strided half of `Strided` touches every causal tile.

# %%
n, block = 64, 8
patterns = {"Local(8)": Local(8), "Dilated(4)": Dilated(4), "Strided(8)": Strided(8), "Fixed(16, 2)": Fixed(16, 2)}
fig, axes = plt.subplots(1, len(patterns), figsize=(4 * len(patterns), 4))
for ax, (name, pattern) in zip(axes, patterns.items()):
    mask = pattern.mask(n, n, causal=True)
    layout = pattern.block_layout(n, n, block, causal=True)
    tiles = layout.repeat_interleave(block, 0).repeat_interleave(block, 1)
    ax.imshow(tiles.float() * 0.25 + mask.float() * 0.75, cmap="Greys", vmin=0, vmax=1)
    ax.set_title(f"{name}: {int(layout.sum())} of {layout.numel()} tiles")
    ax.set_xlabel("key j")
    ax.set_ylabel("query i")
fig.tight_layout()
plt.show()

# %% [markdown]
# Work as $n$ grows, on log-log axes. Left: scores computed (the area of the non-empty
# tiles) as a fraction of $n^2$; a flat line means quadratic cost, a slope of $-1$ linear
# cost. Right: the entries the mask allows, the useful part of that work. On the left
# some lines lie on top of each other: the windowed atrous pattern needs the same tiles
# as the local one, and the strided pattern needs every causal tile, like full causal
# attention, although it allows far fewer entries.

# %%
names = list(results["patterns"])
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
for name in names:
    rows = [row for row in results["work"] if row["pattern"] == name]
    ns = [row["n"] for row in rows]
    left.loglog(ns, [row["computed_entries"] / row["dense_entries"] for row in rows], "o-", label=name)
    right.loglog(ns, [row["allowed_entries"] / row["dense_entries"] for row in rows], "o-", label=name)
left.set(xlabel="n", ylabel="computed / n²", title=f"tiles of {results['config']['block_size']}, causal")
right.set(xlabel="n", ylabel="allowed / n²", title="entries the mask allows")
left.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Measured time of `sparse_attention` against dense masked attention (`attention_reference`),
# same inputs, alternating runs; the machine is printed above.

# %%
fig, ax = plt.subplots(figsize=(6, 4))
spec_to_name = {spec: name for name, spec in results["patterns"].items()}
for spec in results["patterns"].values():
    rows = [row for row in results["timing"] if row["spec"] == spec]
    ax.loglog([row["n"] for row in rows], [1e3 * row["seconds"]["sparse"] for row in rows], "o-", label=spec_to_name[spec])
dense_rows = [row for row in results["timing"] if row["spec"] == "dilated:1"]
ax.loglog([row["n"] for row in dense_rows], [1e3 * row["seconds"]["dense"] for row in dense_rows], "k--", label="dense (reference)")
ax.set(xlabel="n", ylabel="median time (ms)")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# A live check while the page builds: block-sparse equals dense masked attention.

# %%
torch.manual_seed(0)
q, k, v = (torch.randn(1, 2, 300, 16) for _ in range(3))
for name, pattern in patterns.items():
    ours = sparse_attention(q, k, v, pattern, block_size=32)
    reference = attention_reference(q, k, v, mask=pattern.mask(300, 300, causal=True))
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)
print("all", len(patterns), "patterns match dense masked attention")
