"""The perceptron, and why it needs a bias.

Rosenblatt's perceptron fires when the weighted sum of its inputs exceeds a threshold
:math:`T`:

.. math::

    y = 1 \\iff w \\cdot x > T \\iff w \\cdot x + b > 0, \\qquad b = -T .

Moving :math:`T` to the left-hand side turns the hand-picked threshold into a learnable
*bias* :math:`b`, which is the same as a weight on a constant input 1. With labels
:math:`y_i \\in \\{-1, +1\\}` the learning rule visits the points in turn and, whenever
:math:`y_i (w \\cdot x_i + b) \\le 0` (a mistake), updates

.. math::

    w \\leftarrow w + \\eta\\, y_i x_i, \\qquad b \\leftarrow b + \\eta\\, y_i ,

until a whole pass makes no mistake. On data that some :math:`(w^*, b^*)` separates
with margin :math:`\\gamma` the number of mistakes is at most :math:`(R/\\gamma)^2`
(Novikoff, 1962), see :func:`mistake_bound`. Without the bias the boundary
:math:`w \\cdot x = 0` must pass through the origin, so some data sets cannot be fitted
at all: :func:`offset_dataset` builds one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm
from dlnotes.foundations.api_export import export

__all__ = [
    "PerceptronFit",
    "fits",
    "mistake_bound",
    "offset_dataset",
    "predict",
    "threshold_unit",
    "train_perceptron",
]


@dataclass(frozen=True)
class PerceptronFit:
    """Result of :func:`train_perceptron`.

    Attributes:
        weight: Learned weights, shape ``(d,)``, float64.
        bias: Learned bias (stays ``0.0`` when trained with ``use_bias=False``).
        converged: Whether the last pass over the data made no mistake.
        epochs: Number of passes made (the clean final pass included).
        mistakes: Total number of updates.
        mistakes_per_epoch: Updates made in each pass.
    """

    weight: torch.Tensor
    bias: float
    converged: bool
    epochs: int
    mistakes: int
    mistakes_per_epoch: list[int] = field(default_factory=list)


def threshold_unit(points: torch.Tensor, weight: torch.Tensor, threshold: float) -> torch.Tensor:
    """The perceptron in its threshold form: output 1 when ``w . x > T``, else 0.

    Shape:
        points: ``(n, d)``; weight: ``(d,)``; result: ``(n,)`` of 0/1 (int64).

    Args:
        points: Inputs, one per row.
        weight: Weights.
        threshold: Activation threshold ``T``.

    Returns:
        ``1`` where the weighted sum exceeds the threshold, ``0`` elsewhere.

    Raises:
        TypeError: If ``points`` or ``weight`` is not a tensor.
        ValueError: If the shapes do not match.

    Examples:
        >>> gates = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
        >>> threshold_unit(gates, torch.tensor([1.0, 1.0]), threshold=1.5)  # AND
        tensor([0, 0, 0, 1])
    """
    points, weight = _check_points_and_weight(points, weight)
    return (points @ weight > threshold).long()


def predict(points: torch.Tensor, weight: torch.Tensor, bias: float = 0.0) -> torch.Tensor:
    """Labels ``+1`` where ``w . x + b > 0`` and ``-1`` elsewhere.

    Shape:
        points: ``(n, d)``; weight: ``(d,)``; result: ``(n,)`` of -1/+1 (int64).

    Args:
        points: Inputs, one per row.
        weight: Weights.
        bias: Bias ``b`` (``= -T``).

    Returns:
        The predicted labels.

    Raises:
        TypeError: If ``points`` or ``weight`` is not a tensor.
        ValueError: If the shapes do not match.

    Examples:
        >>> gates = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
        >>> predict(gates, torch.tensor([1.0, 1.0]), bias=-1.5)
        tensor([-1, -1, -1,  1])
    """
    points, weight = _check_points_and_weight(points, weight)
    scores = points @ weight + bias
    return torch.where(scores > 0, 1, -1)


def fits(points: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, bias: float = 0.0) -> bool:
    """Whether ``(weight, bias)`` puts every point strictly on its own side: ``y_i (w . x_i + b) > 0``.

    This is the perceptron's stopping condition: a point on the boundary counts as a
    mistake.

    Shape:
        points: ``(n, d)``; labels: ``(n,)`` of -1/+1; weight: ``(d,)``.

    Args:
        points: Inputs, one per row.
        labels: Labels in ``{-1, +1}``.
        weight: Weights.
        bias: Bias.

    Returns:
        ``True`` if every margin ``y_i (w . x_i + b)`` is positive.

    Raises:
        TypeError: If a tensor argument is not a tensor.
        ValueError: If shapes do not match or a label is not -1 or +1.

    Examples:
        >>> x = torch.tensor([[1.0], [3.0]])
        >>> y = torch.tensor([-1, 1])
        >>> fits(x, y, torch.tensor([1.0]), bias=-2.0), fits(x, y, torch.tensor([1.0]))
        (True, False)
    """
    points, labels = _check_dataset(points, labels)
    points, weight = _check_points_and_weight(points, weight)
    return bool((labels * (points @ weight + bias) > 0).all())


@export("foundations.train_perceptron")
def train_perceptron(
    points: torch.Tensor,
    labels: torch.Tensor,
    *,
    use_bias: bool = True,
    learning_rate: float = 1.0,
    max_epochs: int = 100,
    progress: bool = False,
) -> PerceptronFit:
    """Rosenblatt's learning rule, from zero weights, visiting the points in order.

    For each point with ``y_i (w . x_i + b) <= 0``: ``w += lr * y_i * x_i`` and, if
    ``use_bias``, ``b += lr * y_i``. Stops after the first pass without a mistake or
    after ``max_epochs`` passes.

    Shape:
        points: ``(n, d)``; labels: ``(n,)`` of -1/+1; result weight: ``(d,)``.

    Args:
        points: Inputs, one per row (converted to float64).
        labels: Labels in ``{-1, +1}``.
        use_bias: Learn a bias; if false the boundary must pass through the origin.
        learning_rate: Step size ``lr > 0`` (from zero weights it only rescales the result).
        max_epochs: Maximum number of passes over the data, ``>= 1``.
        progress: Show a tqdm bar over epochs.

    Returns:
        A :class:`PerceptronFit` with the weights, bias and convergence record.

    Raises:
        TypeError: If ``points`` or ``labels`` is not a tensor, or ``max_epochs`` is not an int.
        ValueError: If shapes do not match, a label is not -1 or +1, the data set is
            empty, ``learning_rate <= 0`` or ``max_epochs < 1``.

    Examples:
        >>> gates = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
        >>> fit = train_perceptron(gates, torch.tensor([-1, -1, -1, 1]))
        >>> fit.converged, fit.weight.tolist(), fit.bias
        (True, [3.0, 2.0], -4.0)
    """
    points, labels = _check_dataset(points, labels)
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int):
        raise TypeError(f"max_epochs must be an int, got {type(max_epochs).__name__}")
    if max_epochs < 1:
        raise ValueError(f"max_epochs must be >= 1, got {max_epochs}")

    weight = torch.zeros(points.shape[1], dtype=torch.float64)
    bias = 0.0
    history: list[int] = []
    for _ in tqdm(range(max_epochs), desc="perceptron epochs", disable=not progress):
        mistakes = 0
        for x, y in zip(points, labels.tolist()):
            if y * (float(x @ weight) + bias) <= 0:  # wrong side, or on the boundary
                weight += learning_rate * y * x  # w <- w + lr * y * x
                if use_bias:
                    bias += learning_rate * y  # b <- b + lr * y  (a weight on the constant input 1)
                mistakes += 1
        history.append(mistakes)
        if mistakes == 0:
            break
    return PerceptronFit(weight, bias, history[-1] == 0, len(history), sum(history), history)


def mistake_bound(
    points: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor,
    bias: float = 0.0,
    *,
    use_bias: bool = True,
) -> float:
    """Novikoff's bound ``(R / gamma)^2`` on the perceptron's number of mistakes.

    The bias is folded in as a weight on a constant input 1: ``x~ = (x, 1)`` when
    ``use_bias`` (``x~ = x`` otherwise), ``R = max_i |x~_i|`` and
    ``gamma = min_i y_i (u . x~_i)`` for the unit vector ``u = (w, b) / |(w, b)|``. If
    ``gamma > 0``, :func:`train_perceptron` (from zero, any learning rate) makes at
    most ``(R / gamma)^2`` updates; any separator gives a valid bound, a wider margin a
    tighter one.

    Shape:
        points: ``(n, d)``; labels: ``(n,)``; weight: ``(d,)``.

    Args:
        points: Inputs, one per row.
        labels: Labels in ``{-1, +1}``.
        weight: Weights of a separating hyperplane.
        bias: Its bias (must be 0 when ``use_bias`` is false).
        use_bias: Whether the perceptron being bounded learns a bias.

    Returns:
        The bound, a float.

    Raises:
        TypeError: If a tensor argument is not a tensor.
        ValueError: If ``(weight, bias)`` does not separate the data with a positive
            margin, shapes do not match, a label is not -1 or +1, or a bias is given
            with ``use_bias=False``.

    Examples:
        >>> x = torch.tensor([[1.0], [3.0]])
        >>> round(mistake_bound(x, torch.tensor([-1, 1]), torch.tensor([1.0]), -2.0), 6)
        50.0
    """
    points, labels = _check_dataset(points, labels)
    points, weight = _check_points_and_weight(points, weight)
    if not use_bias and bias != 0:
        raise ValueError(f"bias must be 0 when use_bias=False, got {bias}")
    if use_bias:  # x~ = (x, 1), u = (w, b)
        points = torch.cat([points, torch.ones(len(points), 1, dtype=points.dtype)], dim=1)
        weight = torch.cat([weight, torch.tensor([float(bias)], dtype=weight.dtype)])
    norm = torch.linalg.vector_norm(weight)
    gamma = float((labels * (points @ weight)).min() / norm) if norm > 0 else 0.0
    if gamma <= 0:
        raise ValueError(f"(weight, bias) must separate the data with a positive margin, got margin {gamma:.3g}")
    radius = float(torch.linalg.vector_norm(points, dim=1).max())
    return (radius / gamma) ** 2


def offset_dataset(n: int = 40, *, margin: float = 0.25, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points that only a line *not* through the origin separates.

    Points are uniform in ``[-2, 2]^2`` and labelled ``+1`` below the line
    ``x_1 + x_2 = 1`` (the side containing the origin) and ``-1`` above it, i.e. the
    separator ``w* = (-1, -1)``, ``b* = 1``; points closer than ``margin`` to the line
    are redrawn. The first two points are a symmetric pair ``p`` and ``-p``, both
    labelled ``+1``: a bias-free model would need ``w . p > 0`` and ``w . (-p) > 0`` at
    once, so no bias-free perceptron fits this data.

    Shape:
        result: points ``(n, 2)`` float64, labels ``(n,)`` int64 in ``{-1, +1}``.

    Args:
        n: Number of points, ``>= 2``.
        margin: Minimum distance to the true line, in ``[0, 0.5]``.
        seed: Seed of the generator that draws the points.

    Returns:
        ``(points, labels)``.

    Raises:
        TypeError: If ``n`` is not an int.
        ValueError: If ``n < 2`` or ``margin`` is outside ``[0, 0.5]``.

    Examples:
        >>> points, labels = offset_dataset(6, seed=0)
        >>> torch.equal(points[1], -points[0]), labels[:2].tolist()
        (True, [1, 1])
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 2:
        raise ValueError(f"n must be >= 2 (the symmetric pair alone takes two), got {n}")
    if not 0 <= margin <= 0.5:
        raise ValueError(f"margin must be in [0, 0.5], got {margin}")
    generator = torch.Generator().manual_seed(seed)
    pair = torch.tensor([[0.6, -0.3], [-0.6, 0.3]], dtype=torch.float64)  # x1 + x2 = +-0.3: both below the line
    points = [pair]
    count = 2
    while count < n:
        candidates = 4 * torch.rand(2 * n, 2, generator=generator, dtype=torch.float64) - 2
        distance = (candidates.sum(dim=1) - 1).abs() / 2**0.5  # |x1 + x2 - 1| / |(1, 1)|
        keep = candidates[distance >= margin][: n - count]
        points.append(keep)
        count += len(keep)
    points = torch.cat(points)
    labels = torch.where(points.sum(dim=1) < 1, 1, -1)  # sign(-x1 - x2 + 1)
    return points, labels


def _check_dataset(points: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    for name, tensor in (("points", points), ("labels", labels)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if points.dim() != 2 or points.shape[0] == 0:
        raise ValueError(f"points must have shape (n, d) with n >= 1, got {tuple(points.shape)}")
    if labels.shape != (points.shape[0],):
        raise ValueError(f"labels must have shape ({points.shape[0]},) to match points, got {tuple(labels.shape)}")
    if not ((labels == 1) | (labels == -1)).all():
        raise ValueError(f"labels must be -1 or +1, got values {sorted(set(labels.tolist()))}")
    return points.to(torch.float64), labels.to(torch.int64)


def _check_points_and_weight(points: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    for name, tensor in (("points", points), ("weight", weight)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if points.dim() != 2 or weight.shape != (points.shape[1],):
        raise ValueError(
            f"points must be (n, d) and weight (d,), got points {tuple(points.shape)} and weight {tuple(weight.shape)}"
        )
    return points.to(torch.float64), weight.to(torch.float64)
