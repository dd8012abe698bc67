# %% [markdown]
# # Lab: the checkerboard artefact of transposed convolutions
#
# This page is executed when the site is built. It feeds a constant image through
# transposed convolutions and through "resize, then convolve" layers and draws what comes
# out, following Odena, Dumoulin and Olah, "Deconvolution and Checkerboard Artifacts"
# (Distill 2016). A constant input carries no pattern, so any pattern in the output
# comes from the layer itself.
# Back to the chapter: [Upsampling](upsampling.md).

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from dlnotes.vision.upsampling import conv_transpose2d, interpolate

constant = torch.ones(1, 1, 8, 8, dtype=torch.float64)


def resize_then_convolve(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling followed by a same-size 3x3 convolution."""
    return F.conv2d(interpolate(x, scale_factor=2), kernel, padding=kernel.shape[-1] // 2)


def show(axes, images: dict[str, torch.Tensor]) -> None:
    for ax, (title, image) in zip(axes, images.items()):
        picture = ax.imshow(image[0, 0].detach().numpy(), cmap="viridis")
        ax.set(title=title, xticks=[], yticks=[])
        plt.colorbar(picture, ax=ax, fraction=0.046)


# %% [markdown]
# ## Overlap counts
#
# With an all-ones kernel the output of a transposed convolution counts, at every pixel,
# how many kernel "stamps" land there. Kernel 3 with stride 2 overlaps unevenly (1, 2 or
# 4 stamps: the checkerboard); kernel 4 with stride 2 overlaps evenly away from the
# borders; resizing first and then convolving sees the same number of inputs everywhere.

# %%
counts = {
    "transposed conv, k=3, s=2": conv_transpose2d(constant, torch.ones(1, 1, 3, 3, dtype=torch.float64), stride=2),
    "transposed conv, k=4, s=2": conv_transpose2d(constant, torch.ones(1, 1, 4, 4, dtype=torch.float64), stride=2, padding=1),
    "resize, then 3x3 conv": resize_then_convolve(constant, torch.ones(1, 1, 3, 3, dtype=torch.float64)),
}
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
show(axes, counts)
fig.tight_layout()
plt.show()
print("centre row of the k=3, s=2 counts:", counts["transposed conv, k=3, s=2"][0, 0, 8, 2:-2].int().tolist())

# %% [markdown]
# ## Random kernels
#
# A trained network does not use all-ones kernels. With random kernels (positive here, as
# an upsampling filter tends to be), the transposed convolution's output on a constant
# image still repeats with period 2: the four output "phases" (even or odd row, even or
# odd column) each use a different subset of the kernel's weights, whose sums differ.
# That is true even for k=4, where the overlap *count* is even: an even overlap removes
# the artefact only if the weights are balanced, and nothing in training forces that.
# Resize-then-convolve applies every weight to every output, so its interior is flat.

# %%
generator = torch.Generator().manual_seed(0)
kernel3 = torch.rand(1, 1, 3, 3, generator=generator, dtype=torch.float64)
kernel4 = torch.rand(1, 1, 4, 4, generator=generator, dtype=torch.float64)
random_kernels = {
    "transposed conv, k=3, s=2": conv_transpose2d(constant, kernel3, stride=2),
    "transposed conv, k=4, s=2": conv_transpose2d(constant, kernel4, stride=2, padding=1),
    "resize, then 3x3 conv": resize_then_convolve(constant, kernel3),
}
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
show(axes, random_kernels)
fig.tight_layout()
plt.show()
for name, image in random_kernels.items():
    interior = image[0, 0, 3:-3, 3:-3]
    print(f"{name:26} interior max - min = {float(interior.max() - interior.min()):.3f}")

# %% [markdown]
# ## Two stacked layers
#
# Generators stack upsampling layers, and the patterns multiply: after two k=3, s=2
# transposed convolutions the grid has several scales. Two resize-then-convolve layers
# stay flat inside.

# %%
stacked = {
    "2 x transposed conv, k=3, s=2": conv_transpose2d(conv_transpose2d(constant, kernel3, stride=2), kernel3, stride=2),
    "2 x (resize, then 3x3 conv)": resize_then_convolve(resize_then_convolve(constant, kernel3), kernel3),
}
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
show(axes, stacked)
fig.tight_layout()
plt.show()

# %% [markdown]
# A live check while the page builds: the from-scratch transposed convolution used above
# agrees with PyTorch's on these inputs.

# %%
for kernel, kwargs in ((kernel3, dict(stride=2)), (kernel4, dict(stride=2, padding=1))):
    torch.testing.assert_close(conv_transpose2d(constant, kernel, **kwargs), F.conv_transpose2d(constant, kernel, **kwargs))
print("conv_transpose2d matches torch.nn.functional.conv_transpose2d")
