# %% [markdown]
# # Lab: linear attention, its cost and its weights
#
# This page is executed when the site is built. It draws the timings and memory that
# `benchmarks/linear_attention.py` stored in `docs/attention/results/linear_attention.json`,
# then looks at the attention weights that different feature maps produce, and at the
# relative-position structure RoPE gives the numerator.
# Back to the chapter: [Linear attention](linear-attention.md).

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from dlnotes.attention.linear import feature_map_pair, linear_attention
from dlnotes.attention.rope import apply_rope
from dlnotes.attention.sdpa import causal_mask

# The build runs this page from the repository root; a reader may run it from docs/attention/.
results_file = next(path for path in (Path("docs/attention/results"), Path("results")) if path.is_dir())
results = json.loads((results_file / "linear_attention.json").read_text())
print("measured with:", results["command"])
print("machine:", results["machine"]["cpu"], "| torch", results["machine"]["torch"], "| device", results["device"])

# %% [markdown]
# Time and extra peak memory of one causal forward call against $N$, on log-log axes: a
# straight line of slope $a$ means growth as $N^a$ (the legend gives the fitted slope for
# $N \ge 1024$). The two $N \times N$ methods climb with slope 2; every linear form with
# slope 1, at very different heights.

# %%
points = results["points"]
names = list(results["exponents"]["seconds"])
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
for name in names:
    ns = [p["n"] for p in points if name in p["seconds"]]
    left.loglog(ns, [1e3 * p["seconds"][name] for p in points if name in p["seconds"]], "o-",
                label=f"{name} (N^{results['exponents']['seconds'][name]:.2f})")
    right.loglog(ns, [p["bytes"][name] / 2**20 for p in points if name in p["bytes"]], "o-",
                 label=f"{name} (N^{results['exponents']['bytes'][name]:.2f})")
left.set(xlabel="N", ylabel="median time (ms)", title="time")
right.set(xlabel="N", ylabel="extra peak memory (MiB)", title="memory")
left.legend(fontsize=8)
right.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What the weights look like
#
# Linear attention never builds the $N \times N$ matrix, but for a short sequence we can
# draw it: row $i$ holds the weights $\phi(q_i)\cdot\phi(k_j) / \sum_{j' \le i}
# \phi(q_i)\cdot\phi(k_{j'})$. With random queries and keys, softmax attention picks out a
# few keys per row; the linear feature maps spread their weight much more evenly, which
# is the usual price of linearity.

# %%
torch.manual_seed(0)
n, d = 32, 16
q, k = torch.randn(n, d), torch.randn(n, d)
mask = causal_mask(n, n)
maps = {"softmax attention": None, "elu + 1": "elu", "relu": "relu"}
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for axis, (title, name) in zip(axes, maps.items()):
    if name is None:
        weights = (q @ k.T / d**0.5).masked_fill(~mask, float("-inf")).softmax(-1)
    else:
        phi_q, phi_k = feature_map_pair(q, k, name)
        raw = (phi_q @ phi_k.T).masked_fill(~mask, 0.0)
        weights = raw / (raw.sum(-1, keepdim=True) + 1e-6)
    entropy = -(weights * weights.clamp_min(1e-12).log()).sum(-1).mean()
    axis.imshow(weights, cmap="viridis")
    axis.set(title=f"{title}\nmean row entropy {entropy:.2f} nats", xlabel="key j", ylabel="query i")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## RoPE in the numerator: constant along diagonals
#
# Put the *same* feature vector at every position and rotate it by RoPE. The numerator
# weight between positions $m$ and $n$ is $\langle R_m \phi, R_n \phi\rangle$, a function
# of $n - m$ only, so the matrix is constant along each diagonal (a Toeplitz matrix). It
# can be negative, which is why the denominator keeps the unrotated features.

# %%
phi = feature_map_pair(torch.randn(1, d), torch.zeros(1, d), "elu")[0].expand(64, d)
rotated = apply_rope(phi, torch.arange(64))
logits = rotated @ rotated.T
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
left.imshow(logits, cmap="coolwarm")
left.set(title="⟨R_m φ, R_n φ⟩", xlabel="n", ylabel="m")
right.plot(logits[0].numpy(), label="row m = 0")
right.plot(range(20, 64), logits[20, 20:].numpy(), "--", label="row m = 20, from n = 20")
right.set(xlabel="n", ylabel="numerator weight", title="the same curve, shifted")
right.legend()
fig.tight_layout()
plt.show()

# With random queries and keys (elu + 1 features, so every unrotated weight is positive),
# a fair share of the rotated numerator weights is negative:
q, k = feature_map_pair(torch.randn(256, d), torch.randn(256, d), "elu")
numerator = (apply_rope(q, torch.arange(256)) @ apply_rope(k, torch.arange(256)).T).tril()
visible = 256 * 257 // 2
print(f"negative numerator weights: {int((numerator < 0).sum())} of {visible} visible pairs,"
      f" the smallest {numerator.min().item():.1f}")

# %% [markdown]
# A live check while the page builds: the chunked form equals the masked quadratic form
# for a sequence processed in pieces, with RoPE.

# %%
q, k, v = (torch.randn(1, 2, 200, 16, dtype=torch.float64) for _ in range(3))
positions = torch.arange(200)
whole = linear_attention(q, k, v, method="quadratic", rope_positions=positions)
first, state = linear_attention(q[:, :, :77], k[:, :, :77], v[:, :, :77], rope_positions=positions[:77],
                                return_final_state=True)
second = linear_attention(q[:, :, 77:], k[:, :, 77:], v[:, :, 77:], rope_positions=positions[77:],
                          initial_state=state)
torch.testing.assert_close(torch.cat([first, second], dim=2), whole)
print("two pieces of the chunked form equal one quadratic pass")
