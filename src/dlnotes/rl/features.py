"""Feature maps: from a state to the vector that a linear value function weighs.

A linear value function approximates the state value as

.. math::

    \\hat v(s, w) = \\phi(s)^\\top w, \\qquad \\phi(s) \\in \\mathbb{R}^d, \\; w \\in \\mathbb{R}^d,

so everything it can represent is decided by the feature map :math:`\\phi`. This module
provides the four maps of the value-function chapter, each a function from an array of
points to a feature matrix with one row per point:

* :func:`one_hot_features`: :math:`\\phi(s) = e_s`; the table itself, ``d = |S|``;
* :func:`polynomial_features`: every monomial :math:`x^i y^j` of total degree at most
  ``order`` (``[1, x, y]``, then ``x^2, xy, y^2``, ...);
* :func:`fourier_features`: :math:`\\cos(\\pi\\, c^\\top x)` for every integer vector
  :math:`c \\in \\{0, \\dots, \\text{order}\\}^k` (Konidaris et al., 2011);
* :func:`tile_features`: several offset grids ("tilings"); a point switches on one tile
  per tiling (Sutton & Barto, 2018, section 9.5.4).

:func:`cell_coordinates` turns the cells of a :class:`~dlnotes.rl.gridworld.GridWorld`
into points ``(x, y)`` in a box, so that ``polynomial_features(cell_coordinates(world), 2)``
is the ``(S, d)`` feature matrix whose row ``s`` is :math:`\\phi(s)`.
"""

from __future__ import annotations

import itertools

import numpy as np

from dlnotes._checks import check_int
from dlnotes.rl.gridworld import GridWorld

__all__ = ["cell_coordinates", "one_hot_features", "polynomial_features", "fourier_features", "tile_features"]


def cell_coordinates(world: GridWorld, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """The centre of every cell as a point ``(x, y)`` in ``[low, high]^2``.

    ``x`` grows with the column and ``y`` with the row (row 1 is ``y = low``); the first
    and last column (row) sit at ``low`` and ``high``. A board one cell wide maps to the
    middle of the interval.

    Shape:
        result: ``(rows * cols, 2)``, row ``s`` belongs to state ``s``.

    Args:
        world: The grid world.
        low: Coordinate of the first row/column.
        high: Coordinate of the last row/column (``> low``).

    Returns:
        Float array of points.

    Raises:
        TypeError: If ``world`` is not a :class:`GridWorld`.
        ValueError: If ``high <= low``.

    Examples:
        >>> cell_coordinates(GridWorld(rows=2, cols=3, forbidden=(), target=(1, 1))).tolist()
        [[0.0, 0.0], [0.5, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 1.0], [1.0, 1.0]]
    """
    if not isinstance(world, GridWorld):
        raise TypeError(f"world must be a GridWorld, got {type(world).__name__}")
    if not high > low:
        raise ValueError(f"need low < high, got low={low}, high={high}")

    def axis(n: int) -> np.ndarray:
        return np.full(1, (low + high) / 2) if n == 1 else np.linspace(low, high, n)

    rows, cols = np.meshgrid(axis(world.rows), axis(world.cols), indexing="ij")
    return np.stack([cols.reshape(-1), rows.reshape(-1)], axis=1)


def one_hot_features(n_states: int) -> np.ndarray:
    """The tabular representation as features: :math:`\\phi(s) = e_s`.

    With these features :math:`\\hat v(s, w) = w_s`, so the weight vector *is* the table
    and every linear method reduces to its tabular version.

    Shape:
        result: ``(n_states, n_states)``.

    Args:
        n_states: Number of states (>= 1).

    Returns:
        The identity matrix.

    Raises:
        TypeError: If ``n_states`` is not an int.
        ValueError: If ``n_states < 1``.

    Examples:
        >>> one_hot_features(3)[1].tolist()
        [0.0, 1.0, 0.0]
    """
    n_states = check_int(n_states, "n_states", minimum=1)
    return np.eye(n_states)


def polynomial_features(points: np.ndarray, order: int) -> np.ndarray:
    """All monomials of the coordinates with total degree at most ``order``.

    For two coordinates and ``order = 2`` the features are
    :math:`[1, x, y, x^2, xy, y^2]`; in general there are
    :math:`\\binom{k + \\text{order}}{k}` of them for ``k`` coordinates, ordered by degree.
    Centred coordinates (e.g. in ``[-1, 1]``) keep the columns far from collinear,
    which speeds up stochastic-gradient methods.

    Shape:
        points: ``(n, k)``; result: ``(n, C(k + order, k))``.

    Args:
        points: The points, one per row.
        order: Largest total degree (>= 0; 0 gives the constant feature alone).

    Returns:
        Float feature matrix.

    Raises:
        TypeError: If ``order`` is not an int.
        ValueError: If ``points`` is not 2-D or ``order < 0``.

    Examples:
        >>> polynomial_features(np.array([[2.0, 3.0]]), 2).tolist()
        [[1.0, 2.0, 3.0, 4.0, 6.0, 9.0]]
    """
    points = _check_points(points)
    order = check_int(order, "order", minimum=0)
    k = points.shape[1]
    columns = []
    for degree in range(order + 1):
        # Exponent vectors of this degree, largest power of the first coordinate first.
        for combo in itertools.combinations_with_replacement(range(k), degree):
            columns.append(np.prod(points[:, list(combo)], axis=1) if combo else np.ones(len(points)))
    return np.stack(columns, axis=1)


def fourier_features(points: np.ndarray, order: int) -> np.ndarray:
    """The Fourier cosine basis :math:`\\cos(\\pi\\, c^\\top x)`, :math:`c \\in \\{0..\\text{order}\\}^k`.

    On ``[0, 1]^k`` these are the cosine modes of a box: ``c = 0`` is the constant,
    larger entries of ``c`` oscillate faster along that coordinate. Points should lie
    in ``[0, 1]`` (use ``cell_coordinates(world)``).

    Shape:
        points: ``(n, k)``; result: ``(n, (order + 1) ** k)``.

    Args:
        points: The points, one per row.
        order: Largest frequency per coordinate (>= 0).

    Returns:
        Float feature matrix; column ``j`` belongs to the ``j``-th vector ``c`` in
        lexicographic order (``(0, 0), (0, 1), ..., (order, order)`` for ``k = 2``).

    Raises:
        TypeError: If ``order`` is not an int.
        ValueError: If ``points`` is not 2-D or ``order < 0``.

    Examples:
        >>> fourier_features(np.array([[0.5, 0.0]]), 1).round(6).tolist()
        [[1.0, 1.0, 0.0, 0.0]]
    """
    points = _check_points(points)
    order = check_int(order, "order", minimum=0)
    frequencies = np.array(list(itertools.product(range(order + 1), repeat=points.shape[1])), dtype=np.float64)
    return np.cos(np.pi * points @ frequencies.T)  # (n, k) @ (k, (order+1)^k)


def tile_features(
    points: np.ndarray, tilings: int, tiles: int, low: float = 0.0, high: float = 1.0
) -> np.ndarray:
    """Binary tile coding: ``tilings`` grids, each shifted a little, one active tile each.

    Every tiling cuts ``[low, high]^k`` into squares of side
    :math:`w = (\\text{high} - \\text{low}) / \\text{tiles}`. Tiling ``j`` is shifted by
    :math:`-\\tfrac{j}{\\text{tilings}}\\, w\\, (1, 3, 5, \\dots)` (asymmetric offsets,
    Sutton & Barto section 9.5.4), so it needs ``tiles + 1`` intervals per coordinate to
    cover the box. A point activates exactly one tile per tiling: each row has
    ``tilings`` ones. Nearby points share tiles, which is how an update generalises;
    finer tiles discriminate more. Divide the step size by ``tilings``.

    Shape:
        points: ``(n, k)``; result: ``(n, tilings * (tiles + 1) ** k)``.

    Args:
        points: Points inside ``[low, high]^k`` (values outside are clipped to it).
        tilings: Number of offset grids (>= 1).
        tiles: Tiles per coordinate in one unshifted grid (>= 1).
        low: Lower edge of the box.
        high: Upper edge of the box (``> low``).

    Returns:
        Float 0/1 feature matrix.

    Raises:
        TypeError: If ``tilings`` or ``tiles`` is not an int.
        ValueError: If ``points`` is not 2-D, ``tilings``/``tiles`` < 1 or ``high <= low``.

    Examples:
        >>> features = tile_features(np.array([[0.1, 0.1], [0.9, 0.9]]), tilings=2, tiles=2)
        >>> features.shape, features.sum(axis=1).tolist()
        ((2, 18), [2.0, 2.0])
    """
    points = _check_points(points)
    tilings = check_int(tilings, "tilings", minimum=1)
    tiles = check_int(tiles, "tiles", minimum=1)
    if not high > low:
        raise ValueError(f"need low < high, got low={low}, high={high}")
    n, k = points.shape
    width = (high - low) / tiles
    per_axis = tiles + 1
    unit = np.clip(points, low, high) - low  # (n, k), in [0, high - low]
    features = np.zeros((n, tilings * per_axis**k))
    displacement = 2 * np.arange(k) + 1  # (1, 3, 5, ...)
    for j in range(tilings):
        shift = (j / tilings) * width * displacement % width  # (k,), each in [0, width)
        index = np.minimum(((unit + shift) // width).astype(np.int64), tiles)  # (n, k) in [0, tiles]
        flat = np.ravel_multi_index(tuple(index.T), (per_axis,) * k)  # (n,)
        features[np.arange(n), j * per_axis**k + flat] = 1.0
    return features


def _check_points(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] < 1:
        raise ValueError(f"points must have shape (n, k) with k >= 1, got {points.shape}")
    return points
