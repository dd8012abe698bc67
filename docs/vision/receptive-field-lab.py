# %% [markdown]
# # Lab: seeing a receptive field
#
# This page is executed when the site is built (in a few seconds on a CPU). It draws
# the input gradient of one output unit of a small convolutional network next to the
# analytic window from `receptive_field`, and the growth of the receptive field through
# AlexNet, VGG-16 and ResNet-50.
# Back to the chapter: [Receptive fields](receptive-field.md).

# %%
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle
from torch import nn

from dlnotes.vision.receptive_field import alexnet_layers, receptive_field, resnet50_layers, vgg16_layers

# %% [markdown]
# A network with positive weights (so nothing cancels) and average pooling. The
# gradient of unit $(4, 4)$ of its output with respect to the input is non-zero exactly
# inside the analytic window (the red box), and far from uniform inside it: the bright
# centre is what Luo et al. call the effective receptive field.

# %%
torch.manual_seed(0)
model = nn.Sequential(
    nn.Conv2d(1, 4, 5, stride=2, padding=2), nn.ReLU(), nn.AvgPool2d(3, stride=2, padding=1),
    nn.Conv2d(4, 4, 3, padding=2, dilation=2), nn.ReLU(), nn.AvgPool2d(2),
    nn.Conv2d(4, 1, 3, padding=1),
)
with torch.no_grad():
    for parameter in model.parameters():
        parameter.abs_()
unit = (4, 4)
image = torch.rand(1, 1, 80, 80, generator=torch.Generator().manual_seed(0)).add(0.5).requires_grad_(True)
model(image)[0, 0, unit[0], unit[1]].backward()
gradient = image.grad[0, 0]
last = receptive_field(model)[-1]
(top, bottom), (left, right) = last.span(unit[0]), last.span(unit[1])
print(f"analytic window: rows {top}..{bottom}, columns {left}..{right} (size {last.size}, jump {last.jump})")

fig, (heat, profile) = plt.subplots(1, 2, figsize=(10, 4))
heat.imshow(gradient, cmap="magma")
heat.add_patch(Rectangle((left - 0.5, top - 0.5), last.size, last.size, fill=False, edgecolor="red", linewidth=1.5))
heat.set(title=f"|d output{unit} / d input|, analytic box in red", xlabel="column", ylabel="row")
profile.plot(gradient.sum(dim=0), "o-", markersize=3)
profile.axvspan(left, right, color="red", alpha=0.15, label="analytic receptive field")
profile.set(title="gradient summed over rows", xlabel="column")
profile.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# How the receptive field grows, layer by layer, in the three networks of the chapter
# (TF-Slim padding, one spatial axis). Every stride multiplies the slope: after it, each
# kernel adds $(k-1)\,j$ with a larger jump $j$.

# %%
fig, axis = plt.subplots(figsize=(8, 4))
for label, layers in (("AlexNet", alexnet_layers()), ("VGG-16", vgg16_layers()), ("ResNet-50", resnet50_layers())):
    records = receptive_field(layers)
    axis.plot(range(1, len(records) + 1), [record.size for record in records], "o-", markersize=3,
              label=f"{label}: {records[-1].size}")
axis.axhline(224, color="gray", linestyle="--", label="224-pixel input")
axis.set(xlabel="layer (convolutions and pools, in order)", ylabel="receptive field (pixels)", yscale="log")
axis.legend()
fig.tight_layout()
plt.show()
