# %% [markdown]
# # Lab: selective copying and induction heads, Mamba against an LTI model
#
# This page is executed when the site is built. Training the models takes minutes, so it
# happens in `benchmarks/ssm_tasks.py`, which stores the curves and accuracies in
# `docs/ssm/results/ssm_tasks.json`; this page reads that file and draws it. The models
# have two layers each: a `MambaLM` (selective scan), an `S4DLM` (time-invariant S4D
# convolution) with about the same number of parameters, and a wider `S4DLM` with about
# twice as many. They see the same batches, in the same order, with the same optimiser
# and step budget.
# Back to the chapter: [From linear RNNs to Mamba](hippo-s4-mamba.md).

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from dlnotes.ssm.tasks import induction_heads, selective_copying

# The build runs this page from the repository root; a reader may run it from docs/ssm/.
results_dir = next(path for path in (Path("docs/ssm/results"), Path("results")) if path.is_dir())
results = json.loads((results_dir / "ssm_tasks.json").read_text())
print("measured with:", results["command"])
print("machine:", results["machine"]["cpu"], "| torch", results["machine"]["torch"])
print("tasks:", results["tasks"])
print("training:", results["training"], "| steps:", results["steps"])

# %% [markdown]
# ## What the two tasks look like
#
# Selective copying (0 = noise, 1 = marker): the data tokens sit at random positions, and
# at the markers the model must output them in order. Induction heads (0 = trigger): at
# the final trigger the model must output the token that followed the first one.

# %%
copy = selective_copying(1, **results["tasks"]["selective copying"], seed=1)
print("input :", copy.inputs[0].tolist())
print("target:", copy.targets[0][copy.mask[0]].tolist())
recall = induction_heads(1, **results["tasks"]["induction heads"], seed=1)
print("input :", recall.inputs[0].tolist())
print("target:", recall.targets[0][recall.mask[0]].tolist())

# %% [markdown]
# ## Final accuracy
#
# Token accuracy counts the scored positions predicted right (the markers, or the last
# position); sequence accuracy counts the sequences with all of them right. Chance is
# one over the number of data tokens.

# %%
print(f"{'task':>18} | {'model':>9} | {'parameters':>10} | steps | {'token acc.':>10} | {'sequence acc.':>13} | chance")
for run in results["runs"]:
    print(
        f"{run['task']:>18} | {run['model']:>9} | {run['parameters']:>10,} | {run['steps']:>5} | {100 * run['accuracy']:>9.1f}% "
        f"| {100 * run['sequence_accuracy']:>12.1f}% | {100 * results['chance'][run['task']]:.1f}%"
    )

# %% [markdown]
# ## Learning curves
#
# Top: held-out token accuracy during training. Bottom: the training loss (cross-entropy
# at the scored positions), smoothed over 25 steps. The dotted line is chance.

# %%
def smooth(values, width=25):
    values = torch.tensor(values)
    kernel = torch.ones(1, 1, width) / width
    padded = torch.cat([values[:1].repeat(width - 1), values])
    return torch.nn.functional.conv1d(padded.view(1, 1, -1), kernel).flatten().tolist()


task_names = list(results["tasks"])
fig, axes = plt.subplots(2, len(task_names), figsize=(5 * len(task_names), 7), sharex="col")
for column, task_name in enumerate(task_names):
    top, bottom = axes[0, column], axes[1, column]
    for run in (run for run in results["runs"] if run["task"] == task_name):
        label = f"{run['model']} ({run['parameters']:,} params)"
        top.plot(run["eval_steps"], run["eval_accuracy"], "o-", markersize=3, label=label)
        bottom.plot(range(1, len(run["losses"]) + 1), smooth(run["losses"]), label=label)
    top.axhline(results["chance"][task_name], color="k", linestyle=":", label="chance")
    top.set(title=task_name, ylabel="held-out token accuracy", ylim=(0, 1.02))
    bottom.set(xlabel="training step", ylabel="training loss")
    top.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Induction heads on longer sequences
#
# The models were trained at one length and are scored here on sequences up to eight
# times longer. A recurrent model has no position embedding to run out of; whether it
# generalises depends on whether what it learned ("remember what follows the trigger")
# is independent of the distance.

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for run in results["runs"]:
    if "length_generalisation" in run:
        lengths = [int(n) for n in run["length_generalisation"]]
        ax.semilogx(lengths, list(run["length_generalisation"].values()), "o-", base=2, label=run["model"])
ax.axhline(results["chance"]["induction heads"], color="k", linestyle=":", label="chance")
ax.set(xlabel="sequence length", ylabel="token accuracy", ylim=(0, 1.02), title="induction heads")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
