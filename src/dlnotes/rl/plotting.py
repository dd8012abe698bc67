"""Figures of grid-world state values and policies, drawn like the book's figures.

:func:`plot_values` writes each cell's value on a colour map; :func:`plot_policy` draws
an arrow per action, its length proportional to the action's probability (a circle for
"stay"). Both shade forbidden cells, outline the target, and return the matplotlib
``Axes`` so several panels can share one figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dlnotes.rl.gridworld import ACTION_DELTAS, ACTIONS, GridWorld, policy_probabilities

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_policy", "plot_values"]

_FORBIDDEN_COLOUR = "#f4b183"
_TARGET_COLOUR = "#5b9bd5"


def plot_values(
    world: GridWorld, values: np.ndarray, ax: Axes | None = None, title: str | None = None, decimals: int = 1
) -> Axes:
    """Draw state values on the board, one number per cell.

    Shape:
        ``values``: ``(rows, cols)`` or ``(rows * cols,)``.

    Args:
        world: The grid world (its shape, forbidden cells and target).
        values: The state values to show.
        ax: A matplotlib ``Axes`` to draw into; a new figure when ``None``.
        title: Optional axes title.
        decimals: Digits after the decimal point in the cell labels (>= 0).

    Returns:
        The ``Axes`` drawn into.

    Raises:
        ValueError: If ``values`` does not fit the board or ``decimals < 0``.

    Examples:
        >>> from dlnotes.rl.gridworld import value_iteration
        >>> world = GridWorld()
        >>> ax = plot_values(world, value_iteration(world)[0])
        >>> len(ax.texts)
        25
    """
    import matplotlib.pyplot as plt

    v = np.asarray(values, dtype=np.float64)
    if v.shape not in (world.shape, (world.n_states,)):
        raise ValueError(f"values must have shape {world.shape} or ({world.n_states},), got {v.shape}")
    if isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 0:
        raise ValueError(f"decimals must be an int >= 0, got {decimals!r}")
    v = v.reshape(world.shape)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.7 * world.cols + 1, 0.7 * world.rows + 0.6))
    limit = max(np.abs(v).max(), 1e-12)
    ax.imshow(v, cmap="RdYlGn", vmin=-limit, vmax=limit, alpha=0.55)
    _draw_board(world, ax, fill=False)
    for row in range(world.rows):
        for col in range(world.cols):
            ax.text(col, row, f"{v[row, col]:.{decimals}f}", ha="center", va="center", fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_policy(world: GridWorld, policy: np.ndarray, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Draw a policy: per cell an arrow for each action with probability > 0.

    A deterministic policy gives one full-length arrow per cell (or a circle for
    "stay"); a stochastic one gives arrows whose lengths are the action probabilities.

    Shape:
        ``policy``: integer ``(rows, cols)`` or floating ``(rows, cols, 5)`` (see
        :func:`dlnotes.rl.gridworld.policy_probabilities`).

    Args:
        world: The grid world.
        policy: Action indices (integer dtype) or probabilities (floating dtype).
        ax: A matplotlib ``Axes`` to draw into; a new figure when ``None``.
        title: Optional axes title.

    Returns:
        The ``Axes`` drawn into.

    Raises:
        ValueError, TypeError: As :func:`~dlnotes.rl.gridworld.policy_probabilities`.

    Examples:
        >>> from dlnotes.rl.gridworld import value_iteration
        >>> world = GridWorld()
        >>> ax = plot_policy(world, value_iteration(world)[1])
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    pi = policy_probabilities(world, policy).reshape(world.shape + (world.n_actions,))
    if ax is None:
        _, ax = plt.subplots(figsize=(0.7 * world.cols + 1, 0.7 * world.rows + 0.6))
    _draw_board(world, ax, fill=True)
    stay = ACTIONS.index("stay")
    for row in range(world.rows):
        for col in range(world.cols):
            for action, (d_row, d_col) in enumerate(ACTION_DELTAS):
                p = pi[row, col, action]
                if p <= 1e-9:
                    continue
                if action == stay:
                    ax.add_patch(Circle((col, row), 0.12 * np.sqrt(p), fill=False, color="green", lw=1.5))
                else:
                    length = 0.4 * p
                    # A sure action gets an arrow centred on the cell; others start at the centre.
                    back = 0.5 * length if p > 1 - 1e-9 else 0.0
                    ax.arrow(col - d_col * back, row - d_row * back, d_col * length, d_row * length, width=0.02, head_width=0.1 * np.sqrt(p),
                             head_length=0.08 * np.sqrt(p), length_includes_head=True, color="green")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def _draw_board(world: GridWorld, ax, fill: bool) -> None:
    from matplotlib.patches import Rectangle

    forbidden = world.forbidden_mask
    for row in range(world.rows):
        for col in range(world.cols):
            if fill and forbidden[row, col]:
                ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, color=_FORBIDDEN_COLOUR, zorder=0))
            elif not fill and forbidden[row, col]:
                ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, hatch="//", color=_FORBIDDEN_COLOUR, lw=0))
    t_row, t_col = world.target[0] - 1, world.target[1] - 1
    if fill:
        ax.add_patch(Rectangle((t_col - 0.5, t_row - 0.5), 1, 1, color=_TARGET_COLOUR, alpha=0.6, zorder=0))
    else:
        ax.add_patch(Rectangle((t_col - 0.5, t_row - 0.5), 1, 1, fill=False, color=_TARGET_COLOUR, lw=2.5))
    ax.set_xlim(-0.5, world.cols - 0.5)
    ax.set_ylim(world.rows - 0.5, -0.5)  # row 1 at the top, as in the book
    ax.set_xticks(range(world.cols), [str(c + 1) for c in range(world.cols)])
    ax.set_yticks(range(world.rows), [str(r + 1) for r in range(world.rows)])
    ax.set_xticks(np.arange(-0.5, world.cols), minor=True)
    ax.set_yticks(np.arange(-0.5, world.rows), minor=True)
    ax.grid(which="minor", color="grey", lw=0.8)
    ax.tick_params(which="both", length=0)
    ax.set_aspect("equal")
