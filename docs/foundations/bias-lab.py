# %% [markdown]
# # Lab: decision boundaries with and without a bias
#
# This page is executed when the site is built. It trains the perceptron of the chapter
# [What the bias does](bias.md) on `offset_dataset`, once with a bias and once without,
# and draws both learned boundaries over the data. The data are labelled $+1$ on the
# origin's side of the line $x_1 + x_2 = 1$; the first two points are a mirror pair
# $p$, $-p$ with the same label, which no line through the origin can put on one side.

# %%
import matplotlib.pyplot as plt
import torch

from dlnotes.foundations.perceptron import fits, offset_dataset, train_perceptron

points, labels = offset_dataset(60, seed=0)
with_bias = train_perceptron(points, labels)
without_bias = train_perceptron(points, labels, use_bias=False, max_epochs=50)
print(f"with bias:    converged={with_bias.converged} after {with_bias.epochs} passes, "
      f"w={[round(v, 2) for v in with_bias.weight.tolist()]}, b={with_bias.bias}")
print(f"without bias: converged={without_bias.converged} after {without_bias.epochs} passes, "
      f"w={[round(v, 2) for v in without_bias.weight.tolist()]}")
assert fits(points, labels, with_bias.weight, with_bias.bias)
assert not fits(points, labels, without_bias.weight)

# %% [markdown]
# Left: the data, the true boundary (dashed), the boundary learned with a bias, and the
# bias-free boundary after the last pass, pinned to the origin (the black cross). The
# mirror pair is circled. Right: mistakes per pass; with a bias they reach zero, without
# one they never do.

# %%


def draw_line(axis, weight, bias, **style):
    """The line w1 x1 + w2 x2 + b = 0 across the plotting window [-2, 2]^2."""
    w1, w2 = weight.tolist()
    xs = torch.linspace(-2, 2, 2)
    if abs(w2) > abs(w1):
        axis.plot(xs, -(w1 * xs + bias) / w2, **style)
    else:
        axis.plot(-(w2 * xs + bias) / w1, xs, **style)


fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8))
for label, colour in ((1, "tab:blue"), (-1, "tab:orange")):
    chosen = labels == label
    left.scatter(points[chosen, 0], points[chosen, 1], s=18, color=colour, label=f"label {label:+d}")
left.scatter(points[:2, 0], points[:2, 1], s=140, facecolors="none", edgecolors="black", label="mirror pair p, -p")
draw_line(left, torch.tensor([-1.0, -1.0]), 1.0, color="gray", linestyle="--", label="true boundary")
draw_line(left, with_bias.weight, with_bias.bias, color="tab:green", linewidth=2, label="learned, with bias")
draw_line(left, without_bias.weight, 0.0, color="tab:red", linewidth=2, label="learned, no bias")
left.plot([0], [0], "k+", markersize=12)
left.set(xlim=(-2, 2), ylim=(-2, 2), xlabel="$x_1$", ylabel="$x_2$", aspect="equal", title="decision boundaries")
left.legend(fontsize=8, loc="lower left")

right.plot(range(1, with_bias.epochs + 1), with_bias.mistakes_per_epoch, "o-", color="tab:green", label="with bias")
right.plot(range(1, without_bias.epochs + 1), without_bias.mistakes_per_epoch, ".-", color="tab:red", label="no bias")
right.set(xlabel="pass over the data", ylabel="mistakes (updates) in the pass", title="learning curves")
right.legend()
fig.tight_layout()
plt.show()
