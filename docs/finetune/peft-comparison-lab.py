# %% [markdown]
# # Lab: fine-tuning methods compared
#
# This page is executed when the site is built. It reads what
# `benchmarks/peft_comparison.py` stored in `docs/finetune/results/peft_comparison.json`
# (every method fine-tuning the same pretrained small GPT on the same new-facts text)
# and draws the training curves, the training-memory breakdown and the singular values
# of the full fine-tuning delta.
# Back to the chapters: [adapter tuning](adapter-tuning.md),
# [prefix tuning](prefix-tuning.md), [LoRA](lora.md).

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

# The build runs this page from the repository root; a reader may run it from docs/finetune/.
results_file = next(path for path in (Path("docs/finetune/results"), Path("results")) if path.is_dir()) / "peft_comparison.json"
results = json.loads(results_file.read_text())
methods = results["methods"]
print("measured with:", results["command"])
print("machine:", results["machine"]["cpu"], "| torch", results["machine"]["torch"])
print(f"{results['steps']} steps of {results['batch_size']} x {results['block_size']} tokens per method")

# %% [markdown]
# Training loss per step (a 20-step moving average). Every method starts from the same
# pretrained model; full fine-tuning and LoRA move fastest, prompt tuning slowest.

# %%
fig, ax = plt.subplots(figsize=(7, 4))
window = 20
for name, row in methods.items():
    losses = np.array(row["train_losses"])
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    ax.plot(np.arange(window, len(losses) + 1), smooth, label=f"{name} ({row['trainable_parameters']:,} trained)")
ax.axhline(results["pretrained"]["val_loss"], color="gray", linestyle=":", label="pretrained, validation")
ax.set(xlabel="step", ylabel="training loss", title="fine-tuning on new facts")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Where the training memory goes: parameters (frozen ones included), gradients, AdamW
# states and the activations autograd saves for the backward pass (counted bytes, not
# process memory). Freezing removes gradients and optimizer states; the activations of
# the frozen network stay.

# %%
fig, ax = plt.subplots(figsize=(7, 4))
kinds = ["parameters", "gradients", "optimizer_states", "activations"]
bottom = np.zeros(len(methods))
for kind in kinds:
    values = np.array([row["memory_bytes"][kind] / 2**20 for row in methods.values()])
    ax.bar(list(methods), values, bottom=bottom, label=kind.replace("_", " "))
    bottom += values
ax.set(ylabel="MiB", title="memory held during one training step")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# The low-rank hypothesis behind LoRA: singular values of the full fine-tuning delta
# $W_\text{tuned} - W_0$ of each linear layer in block 1, normalised by the largest,
# against a random matrix of the same shape and norm.

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for name, values in results["full_delta_spectra"].items():
    values = np.array(values)
    style = "k--" if name.startswith("random") else "-"
    ax.semilogy(np.arange(1, len(values) + 1), values / values[0], style, label=name.replace("blocks.1.", ""))
ax.set(xlabel="index i", ylabel="sigma_i / sigma_1", title="spectra of fine-tuning deltas")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
