# %% [markdown]
# # Lab: RoPE's frequencies and its long-range decay, drawn
#
# This page is executed when the site is built (about a second of work). It draws the
# rotation frequencies $\theta_i = \text{base}^{-2i/d}$, what they do to a vector as the
# position grows, and the RoFormer paper's long-range decay bound
# $B(r) = \frac{1}{d/2}\sum_{j=1}^{d/2} |S_j|$ with $S_j = \sum_{i<j} e^{\mathrm{i} r\theta_i}$.
# Back to the chapter: [Rotary position embedding](rope.md).

# %%
import math

import matplotlib.pyplot as plt
import torch

from dlnotes.attention.rope import apply_rope, rope_angles, rope_decay_bound

d = 128  # head size of most 7B-class models
bases = (10_000.0, 500_000.0, 1_000_000.0)

# %% [markdown]
# ## Rotation frequencies
#
# Left: the angle per token of each of the $d/2 = 64$ channel pairs, on a log axis. The
# frequencies form a geometric sequence from one radian per token (pair 0) down to about
# $1/\text{base}$; a larger base only changes the slow end. The dashed line marks one full
# turn per 4096 tokens: pairs below it never complete a turn within such a context.
# Right: $\cos(m\theta_i)$, the cosine table a `RotaryEmbedding` caches, for base 10000 and
# the first 256 positions. Fast pairs (top) oscillate from token to token; slow pairs
# (bottom) hardly move, so they carry almost pure content with little position signal.

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
pairs = torch.arange(d // 2)
for base in bases:
    theta = rope_angles(torch.tensor(1), d, base, dtype=torch.float64)
    left.semilogy(pairs, theta, label=f"base {base:,.0f}")
left.axhline(2 * math.pi / 4096, color="gray", linestyle="--", label="one turn per 4096 tokens")
left.set(xlabel="pair index i", ylabel=r"$\theta_i$ (radians per token)", title=f"frequencies, d = {d}")
left.legend(fontsize=8)
table = rope_angles(torch.arange(256), d).cos().T  # (pairs, positions)
image = right.imshow(table, aspect="auto", cmap="RdBu", vmin=-1, vmax=1, interpolation="nearest")
right.set(xlabel="position m", ylabel="pair index i", title=r"$\cos(m\theta_i)$, base 10000")
fig.colorbar(image, ax=right)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The long-range decay bound
#
# Left: $B(r)$ for the first 256 tokens with base 10000, on linear axes as in the paper:
# a quick fall with ripples. Middle: the same bound over five orders of magnitude of
# distance for three bases. After a few thousand tokens the base-10000 bound stops
# falling, because its slowest pairs have not turned yet; a larger base makes the fall
# slower and reaches the plateau later. Right: the expected logit of a random Gaussian
# vector with itself $r$ tokens away, $\frac{1}{d/2}\sum_i\cos(r\theta_i)$, which follows
# the same pattern (and turns slightly negative once the fast pairs average out).

# %%
fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4))
near = torch.arange(0, 257)
left.plot(near, rope_decay_bound(near, d))
left.set(xlabel="relative distance r", ylabel="B(r)", title="relative upper bound, base 10000")
far = torch.unique(torch.logspace(0, 5, 600).round().long())
for base in bases:
    middle.semilogx(far, rope_decay_bound(far, d, base), linewidth=0.8, label=f"base {base:,.0f}")
    right.semilogx(far, rope_angles(far, d, base, dtype=torch.float64).cos().mean(-1), linewidth=0.8,
                   label=f"base {base:,.0f}")
middle.set(xlabel="relative distance r (log)", ylabel="B(r)", title="bound vs base")
right.axhline(0, color="gray", linewidth=0.5)
right.set(xlabel="relative distance r (log)", ylabel=r"$E\langle R_r q, q\rangle / E|q|^2$",
          title="expected self-logit, q ~ N(0, I)")
middle.legend(fontsize=8)
right.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## A live check
#
# While the page builds: the bound really bounds the logits of random vectors. For each
# pair $(q, k)$ the chapter's inequality reads
# $|\langle R_r q, k\rangle| \le \max_i|h_{i+1} - h_i| \cdot \frac{d}{2} \cdot B(r)$.

# %%
generator = torch.Generator().manual_seed(0)
q, k = torch.randn(2, 200, d, dtype=torch.float64, generator=generator)
distances = torch.randint(-5000, 5000, (200,), generator=generator)
logits = (apply_rope(q, distances, layout="interleaved") * k).sum(-1)  # <R_r q, k>
h = torch.view_as_complex(q.unflatten(-1, (-1, 2)).contiguous()) * torch.view_as_complex(
    k.unflatten(-1, (-1, 2)).contiguous()
).conj()
steps = torch.cat([h, h.new_zeros(200, 1)], dim=-1).diff(dim=-1).abs().amax(-1)
bounds = steps * (d // 2) * rope_decay_bound(distances, d)
assert (logits.abs() <= bounds).all()
print(f"200 random (q, k, r): largest |logit| / bound = {(logits.abs() / bounds).max():.3f} (must be <= 1)")
