# %% [markdown]
# # Lab: position encodings in pictures
#
# This page is executed when the site is built. It draws the objects of the chapter
# [Position encodings](position-encodings.md): the sinusoidal table and the similarity of
# its vectors, T5's buckets, ALiBi's biases, and what each scheme does to the attention
# logits when both positions move. Everything is computed live in well under a minute.

# %%
import matplotlib.pyplot as plt
import torch

from dlnotes.attention.position import (
    T5RelativeBias,
    alibi_bias,
    alibi_slopes,
    shaw_relative_logits,
    sinusoidal_positions,
    t5_relative_bucket,
)

torch.manual_seed(0)

# %% [markdown]
# ## The sinusoidal table
#
# Left: $p_{k}$ for $k = 0 \dots 199$ and $d = 128$; the first channels turn fast, the
# last ones barely move. Right: $p_m \cdot p_n$ depends only on $m - n$ (one curve from
# $m = 0$, dots from $m = 100$) and shrinks, unevenly, as the distance grows.

# %%
table = sinusoidal_positions(400, 128)
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
image = left.imshow(table[:200].T, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
left.set(xlabel="position k", ylabel="channel", title="sinusoidal p_k (d = 128)")
fig.colorbar(image, ax=left)
offsets = torch.arange(0, 300)
right.plot(offsets, table[0] @ table[offsets].T, label="p_0 . p_k")
right.plot(offsets[::10], table[100] @ table[100 + offsets[::10]].T, "o", markersize=3, label="p_100 . p_(100+k)")
right.set(xlabel="offset k", ylabel="inner product", title="similarity depends on the offset only")
right.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## T5's buckets
#
# Exact buckets for the nearest 8 offsets in each direction, then logarithmically wider
# ones up to `max_distance = 128`, after which everything shares the last bucket.
# A decoder (`bidirectional=False`) spends all 32 buckets on the past.

# %%
offsets = torch.arange(-200, 201)
fig, ax = plt.subplots(figsize=(9, 3.5))
ax.step(offsets, t5_relative_bucket(offsets), where="mid", label="encoder (bidirectional)")
ax.step(offsets, t5_relative_bucket(offsets, bidirectional=False), where="mid", label="decoder (causal)")
for edge in (-128, 128):
    ax.axvline(edge, color="gray", linestyle=":")
ax.set(xlabel="key - query offset", ylabel="bucket", title="T5 relative position buckets (32 buckets, max_distance 128)")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## ALiBi's biases
#
# The causal bias $m_h (j - i)$ for 4 of 8 heads on one colour scale, on a 24-token
# sequence (future keys masked; the shallow heads barely penalise distance), and the attention weight a query with no content preference ($q = 0$) puts at
# each distance: a soft window whose width doubles from one head to the next.

# %%
heads, length = 8, 24
bias = alibi_bias(length, length, heads).masked_fill(~torch.ones(length, length, dtype=torch.bool).tril(), float("nan"))
fig, axes = plt.subplots(1, 5, figsize=(17, 3.4), gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.8]})
for ax, head in zip(axes[:4], (0, 2, 4, 7)):
    image = ax.imshow(bias[0, head], cmap="viridis", vmin=-0.5 * (length - 1), vmax=0)  # one colour scale for all
    ax.set(title=f"head {head + 1}: slope {alibi_slopes(heads)[head]:.4f}", xlabel="key j", ylabel="query i")
fig.colorbar(image, ax=axes[3], fraction=0.046, pad=0.04)
distances = torch.arange(0, 300)
for head, slope in enumerate(alibi_slopes(heads).tolist()):
    weights = torch.softmax(-slope * distances.float(), dim=0)
    axes[4].semilogy(distances, weights, label=f"m = 2^-{head + 1}")
axes[4].set(xlabel="distance i - j", ylabel="weight (q = 0, 300 keys)", title="ALiBi attention by distance", ylim=(1e-6, 1))
axes[4].legend(fontsize=7, loc="upper right", ncol=2)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Shifting both positions
#
# The defining property of a relative scheme: moving every token by the same amount
# leaves the logits unchanged. Absolute sinusoids added to the inputs do not have it;
# Shaw's clipped embeddings, T5's buckets and ALiBi do.

# %%
q, k = torch.randn(2, 1, 1, 16, 32, dtype=torch.float64).unbind(0)
positions = torch.arange(16)
shifts = list(range(0, 200, 10))


def absolute_logits(shift):
    p = sinusoidal_positions(16 + shift, 32).double()[shift:]
    return (q + p) @ (k + p).transpose(-2, -1)


rel_emb = torch.randn(9, 32, dtype=torch.float64)
t5 = T5RelativeBias(1, generator=torch.Generator().manual_seed(0)).double()
schemes = {
    "absolute sinusoids": absolute_logits,
    "Shaw (K = 4)": lambda s: shaw_relative_logits(q, k, rel_emb, 4, positions + s, positions + s),
    "T5 bias": lambda s: q @ k.transpose(-2, -1) + t5(16, 16, positions + s, positions + s),
    "ALiBi": lambda s: q @ k.transpose(-2, -1) + alibi_bias(16, 16, 1, q_positions=positions + s, k_positions=positions + s),
}
fig, ax = plt.subplots(figsize=(7, 3.5))
with torch.no_grad():
    for name, logits_at in schemes.items():
        base = logits_at(0)
        changes = [float((logits_at(s) - base).abs().max()) + 1e-18 for s in shifts]  # + tiny: zero on a log axis
        ax.plot(shifts, changes, "o-", label=name)
ax.set_yscale("log")
ax.set(xlabel="shift of both positions", ylabel="max |logit change|", title="relative schemes ignore a common shift")
ax.legend()
fig.tight_layout()
plt.show()
