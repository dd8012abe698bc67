# %% [markdown]
# # Lab: ThunderNet on synthetic shapes
#
# This page is executed when the site is built. It reads what
# `benchmarks/thundernet.py` stored in `docs/vision/results/thundernet.json` (the
# backbone counts, CPU timings, and a 1000-step training run of SNet49-ThunderNet on
# 128×128 images of rectangles and discs), draws the loss curves and the detections on
# held-out images, and draws the paper's 25 anchors live.
# Back to the chapter: [ThunderNet](thundernet.md).

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

from dlnotes.vision.detection import make_anchors
from dlnotes.vision.thundernet import SHAPES, synthetic_shapes

# The build runs this page from the repository root; a reader may run it from docs/vision/.
results_dir = next(path for path in (Path("docs/vision/results"), Path("results")) if path.is_dir())
results = json.loads((results_dir / "thundernet.json").read_text())
training = results["training"]
print("measured with:", results["command"])
print("machine:", results["machine"]["cpu"], "| torch", results["machine"]["torch"])
print(f"training: {training['steps']} steps of {training['batch']} images of "
      f"{training['image_size']}x{training['image_size']}, {training['seconds']:.0f} s on one CPU thread")

# %% [markdown]
# ## The loss
#
# The total loss of every step (light) and its running mean over 25 steps (dark). The
# RPN's objectness loss falls first (telling shapes from noise is easy); the R-CNN's
# classification, rectangle against disc, takes most of the run. The losses go up for
# a while early on: as the proposals improve, more of the sampled RoIs are foreground,
# which brings box-regression and class terms that were absent at the start.

# %%
losses = torch.tensor(training["losses"])
window = 25
running = losses.unfold(0, window, 1).mean(dim=1)
fig, axis = plt.subplots(figsize=(7, 3.5))
axis.plot(losses, color="tab:blue", alpha=0.3, label="loss per step")
axis.plot(range(window - 1, len(losses)), running, color="tab:blue", label=f"running mean ({window} steps)")
axis.set(xlabel="step", ylabel="sum of the four losses", title="SNet49-ThunderNet, synthetic shapes")
axis.legend()
fig.tight_layout()
plt.show()
print(f"loss {losses[0]:.3f} at step 1, {losses[-50:].mean():.3f} over the last 50 steps")

# %% [markdown]
# ## Detections on held-out images
#
# The validation images are regenerated from their seed (they were never trained on).
# Dashed white: ground truth. Solid: detections with score ≥ 0.5, orange for
# rectangles and cyan for discs, with their scores. Where the classifier hesitates, a
# shape gets two boxes, one per label: non-maximum suppression runs per class, so they
# do not suppress each other, and the average precision counts the wrong one as a false
# positive of its class.

# %%
images, targets = synthetic_shapes(
    training["validation_images"], training["image_size"],
    generator=torch.Generator().manual_seed(training["validation_seed"]),
)
colours = {0: "tab:orange", 1: "cyan"}
shown = training["detections"]
fig, axes = plt.subplots(2, 3, figsize=(10, 7))
for axis, image, target, found in zip(axes.flat, images, targets, shown):
    axis.imshow(image.clamp(0, 1).permute(1, 2, 0).numpy())
    for x1, y1, x2, y2 in target["boxes"].tolist():
        axis.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="white", linestyle="--"))
    for (x1, y1, x2, y2), score, label in zip(found["boxes"], found["scores"], found["labels"]):
        if score < 0.5:
            continue
        axis.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colours[label], linewidth=2))
        axis.text(x1, y1 - 2, f"{SHAPES[label]} {score:.2f}", color=colours[label], fontsize=8,
                  bbox={"facecolor": "black", "alpha": 0.6, "pad": 1, "edgecolor": "none"})
    axis.axis("off")
fig.tight_layout()
plt.show()
for name, value in training["average_precision"].items():
    print(f"AP at IoU 0.5, {name}: {value:.3f} (on {training['validation_images']} held-out images)")

# %% [markdown]
# ## Backbone cost against the names
#
# Multiply-adds at 224×224 of the three SNets divided by the number in each name, with
# SNet's 5×5 and with ShuffleNetV2's 3×3 depthwise kernels. The grey band is ±10 %.

# %%
cost = results["cost"]
names = [row["backbone"] for row in cost]
positions = torch.arange(len(names)).float()
fig, axis = plt.subplots(figsize=(7, 3.5))
axis.axhspan(0.9, 1.1, color="0.9")
axis.axhline(1.0, color="black", linewidth=1)
axis.bar(positions - 0.2, [row["multiply_adds_224"] / 1e6 / row["name_mflops"] for row in cost], 0.4, label="5x5 (SNet)")
axis.bar(positions + 0.2, [row["multiply_adds_224_3x3"] / 1e6 / row["name_mflops"] for row in cost], 0.4, label="3x3")
axis.set(xticks=positions.tolist(), xticklabels=names, ylabel="counted / name", ylim=(0.8, 1.2))
axis.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The 25 anchors of one cell
#
# Live: the anchors of the cell at the centre of a 320×320 image (CEM map 20×20,
# stride 16), 5 sizes from 32 to 512 pixels times 5 aspect ratios. The largest reach far
# outside the image; they are meant for objects that fill it.

# %%
anchors = make_anchors((20, 20), 16, (32, 64, 128, 256, 512), (1 / 2, 3 / 4, 1, 4 / 3, 2))
centre = anchors.view(20, 20, 25, 4)[10, 10]
fig, axis = plt.subplots(figsize=(5, 5))
axis.add_patch(Rectangle((0, 0), 320, 320, fill=False, edgecolor="black", linewidth=2))
for index, (x1, y1, x2, y2) in enumerate(centre.tolist()):
    axis.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=plt.cm.viridis(index // 5 / 4)))
axis.set(xlim=(-300, 620), ylim=(620, -300), aspect="equal", title="anchors of cell (10, 10); black: the image")
plt.show()
