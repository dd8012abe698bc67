# %% [markdown]
# # Lab: a tiny language model with a transformer, FLASH-Quad and FLASH
#
# Training three models for 200 steps takes longer than a page build should, so
# `benchmarks/gau_flash.py` does it and stores every step's loss and time in
# `docs/attention/results/gau_flash.json`; this page, executed when the site is built,
# draws them. The three models have about the same number of parameters (2 transformer
# blocks against 4 GAU or FLASH layers, width 64), are trained once for each of three
# seeds, see the same batches in the same order within a seed, and take their steps in
# turn.
# Back to the chapter: [GAU and FLASH](gau-flash.md).

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from dlnotes.attention.gau import FLASH

# The build runs this page from the repository root; a reader may run it from docs/attention/.
results_dir = next(path for path in (Path("docs/attention/results"), Path("results")) if path.is_dir())
results_file = results_dir / "gau_flash.json"
results = json.loads(results_file.read_text())
print("measured with:", results["command"])
print("machine:", results["machine"]["cpu"], "| torch", results["machine"]["torch"])
print("settings:", results["training"]["settings"])
for name, entry in results["training"]["models"].items():
    print(f"{name:12} {entry['parameters']:>8,} parameters  {entry['step_ms']:6.1f} ms/step  "
          f"val loss per seed {[round(value, 3) for value in entry['val_loss']]}")

# %% [markdown]
# Left: training loss, as a running mean over 10 steps, averaged over the seeds (line) and
# its range across seeds (band); within a seed all three models see the same batches.
# Right: the median time of one training step (forward, backward, optimiser) on the
# machine above.

# %%
def running_mean(values: list[float], window: int = 10) -> list[float]:
    return [sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
            for i in range(len(values))]


models = results["training"]["models"]
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
for color, (name, entry) in zip(("tab:gray", "tab:blue", "tab:orange"), models.items()):
    curves = torch.tensor([running_mean(losses) for losses in entry["losses"]])  # (seeds, steps)
    steps = range(1, curves.shape[1] + 1)
    left.fill_between(steps, curves.min(0).values, curves.max(0).values, color=color, alpha=0.2)
    left.plot(steps, curves.mean(0), color=color, label=f"{name} ({entry['parameters']:,} params)")
left.set(xlabel="step", ylabel="training loss (nats / character)", ylim=(0, 3.5), title="loss curves")
left.legend()
names = list(models)
right.bar(names, [models[name]["step_ms"] for name in names], color=("tab:gray", "tab:blue", "tab:orange"))
right.set(ylabel="ms per training step (median)", title="step time")
fig.tight_layout()
plt.show()

# %% [markdown]
# One layer's forward time against the sequence length, on log-log axes: a straight line
# of slope $a$ means time $\propto n^a$. FLASH (chunks of 128) grows linearly; the GAU and
# the softmax block grow towards quadratically.

# %%
points = results["layer_times"]
fig, ax = plt.subplots(figsize=(6, 4))
for name in points[0]["seconds"]:
    ax.loglog([p["n"] for p in points], [1e3 * p["seconds"][name] for p in points], "o-",
              label=f"{name} (n^{results['exponents'][name]:.2f})")
ax.set_xscale("log", base=2)
ax.set_xticks([p["n"] for p in points], [str(p["n"]) for p in points])
ax.minorticks_off()
ax.set(xlabel="sequence length n", ylabel="forward time (ms)", title="one layer, batch 1")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# A live check while the page builds: a causal FLASH layer's output for the first tokens
# does not change, by a single bit, when the later tokens are replaced.

# %%
torch.manual_seed(0)
layer = FLASH(d_model=32, chunk_size=8, qk_dim=16, causal=True).double()
x = torch.randn(1, 50, 32, dtype=torch.float64)
changed = x.clone()
changed[:, 20:] = torch.randn(1, 30, 32, dtype=torch.float64)
assert torch.equal(layer(x)[:, :20], layer(changed)[:, :20]), "the future leaked into the past"
print("first 20 outputs bit-identical after rewriting tokens 20..49")
