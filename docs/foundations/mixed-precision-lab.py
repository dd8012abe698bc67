# %% [markdown]
# # Lab: floating-point formats and loss scaling, drawn
#
# This page is executed when the site is built. It draws where the numbers of each
# format lie, where a small network's gradients fall relative to FP16's range, and how
# training and the dynamic loss scale evolve.
# Back to the chapter: [Mixed-precision training](mixed-precision.md).

# %%
import math

import matplotlib.pyplot as plt
import torch
from torch import nn

from dlnotes.foundations.mixed_precision import (
    DynamicLossScaler,
    float_bits,
    format_info,
    train_with_master_weights,
)

# %% [markdown]
# ## Every positive FP8 number
#
# All 256 bit patterns of each FP8 format, decoded with `float_bits`. On a logarithmic
# axis the normal numbers are evenly spread within each power of two (the spacing
# doubles from one binade to the next); the subnormals crowd towards zero on the left.

# %%
fig, ax = plt.subplots(figsize=(10, 2.8))
for row, dtype in enumerate((torch.float8_e4m3fn, torch.float8_e5m2)):
    patterns = torch.arange(128, dtype=torch.uint8).view(dtype)  # sign bit 0: the positive half
    decoded = [float_bits(value, dtype) for value in patterns]
    for kind, color in (("subnormal", "tab:orange"), ("normal", "tab:blue")):
        values = [bits.value for bits in decoded if bits.kind == kind]
        ax.scatter(values, [row] * len(values), marker="|", s=300, color=color,
                   label=kind if row == 0 else None)
    info = format_info(dtype)
    ax.annotate(f"max {info.max:g}", (info.max, row + 0.25), ha="right", fontsize=8)
ax.set_xscale("log", base=2)
ax.set_yticks([0, 1], ["e4m3fn", "e5m2"])
ax.set_ylim(-0.6, 1.6)
ax.set_xlabel("value (log2 scale)")
ax.legend(loc="lower right", fontsize=8)
ax.set_title("positive finite FP8 values")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Where the gradients fall
#
# The gradients of the chapter's small network with its loss weighted by $10^{-6}$,
# computed in FP32, as a histogram of $\log_2 |g|$. Values left of $2^{-24}$ round to
# 0 (or, between $2^{-25}$ and $2^{-24}$, to $2^{-24}$) in FP16, and the orange band is
# FP16's subnormal range, where precision is lost.
# Scaling the loss by $2^{16}$ shifts the whole histogram right by 16 binades.

# %%
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
x, y = torch.randn(128, 8), torch.randn(128, 1)
gradients = torch.autograd.grad(1e-6 * torch.mean((model(x) - y) ** 2), list(model.parameters()))
log_magnitudes = torch.cat([g.flatten() for g in gradients]).abs().clamp_min(2.0**-60).log2()
half = format_info(torch.float16)

fig, ax = plt.subplots(figsize=(10, 3.5))
bins = torch.arange(-50, 20, 1.0)
ax.hist(log_magnitudes, bins=bins, alpha=0.7, label="loss scale 1")
ax.hist(log_magnitudes + 16, bins=bins, alpha=0.7, label="loss scale 2^16")
ax.axvspan(-60, math.log2(half.smallest_subnormal), color="tab:red", alpha=0.15, label="below fp16's smallest subnormal")
ax.axvspan(math.log2(half.smallest_subnormal), math.log2(half.smallest_normal), color="tab:orange",
           alpha=0.15, label="fp16 subnormal")
ax.axvline(math.log2(half.max), color="black", lw=1, label="fp16 max")
ax.set_xlim(-50, 20)
ax.set_xlabel("log2 |gradient|")
ax.set_ylabel("count")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Training curves
#
# The chapter's four runs: FP32, FP16 without and with loss scaling, and BF16. Left:
# the mean squared error; right: the fraction of FP16/BF16 gradient entries that are
# exactly zero.

# %%
runs = {
    "fp32": train_with_master_weights(None, model_dtype=torch.float32, steps=100),
    "fp16, no scaling": train_with_master_weights(None, model_dtype=torch.float16, steps=100),
    "fp16 + loss scaling": train_with_master_weights(DynamicLossScaler(), model_dtype=torch.float16, steps=100),
    "bf16, no scaling": train_with_master_weights(None, model_dtype=torch.bfloat16, steps=100),
}
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
for (name, history), style in zip(runs.items(), ("-", "-", "--", ":")):
    left.semilogy(history.losses, style, label=name)
    right.plot(history.zero_gradient_fraction, style, label=name)
left.set(xlabel="step", ylabel="MSE")
right.set(xlabel="step", ylabel="fraction of zero gradients")
left.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The dynamic loss scale
#
# Starting far too high ($2^{40}$) with a growth interval of 10: the scale halves on
# every overflow (red marks: skipped steps) until the gradients fit, then grows every 10
# good steps until the next overflow. As the network learns, its gradients shrink and
# the level the scale settles at rises.

# %%
history = train_with_master_weights(DynamicLossScaler(init_scale=2.0**40, growth_interval=10), steps=150)
log_scales = [math.log2(scale) for scale in history.scales]
fig, ax = plt.subplots(figsize=(10, 3))
ax.step(range(len(log_scales)), log_scales, where="post")
skipped = [step for step, was_skipped in enumerate(history.skipped) if was_skipped]
ax.scatter(skipped, [log_scales[step] for step in skipped], color="tab:red", zorder=3, label="skipped step")
ax.set(xlabel="step", ylabel="log2 loss scale")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
print("skipped steps:", skipped)
