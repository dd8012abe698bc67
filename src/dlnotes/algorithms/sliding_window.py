"""Sliding-window maximum (LeetCode 239), four ways, plus a vectorised tensor version.

Given ``nums`` of length ``n`` and a window size ``k`` (``1 <= k <= n``), return the
``n - k + 1`` values

.. math::

    m_i = \\max(\\text{nums}_i, \\text{nums}_{i+1}, \\dots, \\text{nums}_{i+k-1}),
    \\qquad i = 0, \\dots, n - k.

Methods, from slowest to fastest:

* ``"brute"``: scan every window, :math:`O(nk)`.
* ``"heap"``: a max-heap of ``(value, index)`` with lazy deletion of entries that have
  left the window, :math:`O(n \\log n)`.
* ``"deque"``: a monotonic deque of indices whose values decrease from front to back;
  the front is the window maximum. Each index is pushed and popped at most once, so
  :math:`O(n)` in total.
* ``"blocks"``: cut the array into blocks of ``k``; a window straddles at most two blocks,
  so its maximum is ``max(suffix_max[i], prefix_max[i + k - 1])``, :math:`O(n)` with no
  data-dependent branching (the same idea vectorises for tensors).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from typing import Literal

import torch

from dlnotes.foundations.api_export import export

__all__ = ["METHODS", "sliding_window_max", "sliding_window_max_torch"]

Method = Literal["brute", "heap", "deque", "blocks"]

#: The algorithms :func:`sliding_window_max` accepts for ``method``.
METHODS: tuple[str, ...] = ("brute", "heap", "deque", "blocks")


@export("algorithms.sliding_window_max")
def sliding_window_max(nums: Sequence[float], k: int, method: Method = "deque") -> list:
    """Maximum of every contiguous window of ``k`` elements.

    Args:
        nums: The values, any sequence of mutually comparable numbers (length ``n >= 1``).
        k: Window size, ``1 <= k <= n``.
        method: ``"brute"`` (O(nk)), ``"heap"`` (O(n log n)), ``"deque"`` (O(n), the
            default) or ``"blocks"`` (O(n), prefix/suffix maxima).

    Returns:
        A list of ``n - k + 1`` maxima; element ``i`` is ``max(nums[i:i + k])``.

    Raises:
        TypeError: If ``k`` is not an integer or ``nums`` is not a sequence.
        ValueError: If ``nums`` is empty, ``k < 1``, ``k > len(nums)`` or ``method`` is
            unknown.

    Examples:
        >>> sliding_window_max([1, 3, -1, -3, 5, 3, 6, 7], 3)
        [3, 3, 5, 5, 6, 7]
    """
    values = _check_arguments(nums, k, method)
    return _IMPLEMENTATIONS[method](values, k)


@export("algorithms.sliding_window_max_torch")
def sliding_window_max_torch(x: torch.Tensor, k: int, dim: int = -1) -> torch.Tensor:
    """Sliding-window maximum along one dimension of a tensor, fully vectorised.

    Uses the block (prefix/suffix maxima) method: pad ``dim`` to a multiple of ``k``,
    take running maxima forwards and backwards inside each block with
    :func:`torch.cummax`, and combine ``max(suffix[i], prefix[i + k - 1])``. Work is
    O(n) per row with no Python loop over positions. For floating point inputs NaN
    propagates like :func:`torch.max` (a window containing NaN has maximum NaN).

    Shape:
        x: ``(..., n, ...)`` with ``n = x.shape[dim]``; result: ``(..., n - k + 1, ...)``.

    Args:
        x: Input tensor (integer or floating point, not complex or bool), at least 1-D.
        k: Window size, ``1 <= k <= x.shape[dim]``.
        dim: The dimension to slide along.

    Returns:
        A tensor of the same dtype and device as ``x`` whose ``dim`` has size
        ``n - k + 1``; equal to ``x.unfold(dim, k, 1).amax(-1)``.

    Raises:
        TypeError: If ``x`` is not a tensor, has a complex or bool dtype, or ``k`` is not
            an integer.
        ValueError: If ``x`` is 0-d, ``dim`` is out of range, the dimension is empty,
            or ``k`` is outside ``[1, x.shape[dim]]``.

    Examples:
        >>> sliding_window_max_torch(torch.tensor([1, 3, -1, -3, 5, 3, 6, 7]), 3)
        tensor([3, 3, 5, 5, 6, 7])
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"x must have a real integer or floating dtype, got {x.dtype}")
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension, got a 0-d tensor")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"dim must be in [{-x.dim()}, {x.dim() - 1}] for a {x.dim()}-d x, got {dim}")
    n = x.shape[dim]
    _check_window(k, n, "x.shape[dim]")

    moved = x.movedim(dim, -1)
    blocks = -(-n // k)  # ceil(n / k)
    pad = blocks * k - n
    # Padding with the first element never changes a maximum: every padded position
    # lies past n - 1 and is only ever combined with real positions of the same block.
    padded = torch.cat([moved, moved[..., :1].expand(*moved.shape[:-1], pad)], dim=-1)
    tiles = padded.reshape(*moved.shape[:-1], blocks, k)
    prefix = tiles.cummax(dim=-1).values.reshape(padded.shape)  # max(x[block_start .. i])
    suffix = tiles.flip(-1).cummax(dim=-1).values.flip(-1).reshape(padded.shape)  # max(x[i .. block_end])
    out = torch.maximum(suffix[..., : n - k + 1], prefix[..., k - 1 : n])
    return out.movedim(-1, dim)


def _brute(values: list, k: int) -> list:
    # m_i = max(nums[i : i + k]) computed directly: k - 1 comparisons per window.
    return [max(values[i : i + k]) for i in range(len(values) - k + 1)]


def _heap(values: list, k: int) -> list:
    # heapq is a min-heap, so store (-value, index); the root is the largest value seen
    # so far. An entry whose index fell out of the window is discarded only when it
    # reaches the root ("lazy deletion"), so each push and pop costs O(log n).
    heap: list[tuple] = []
    out = []
    for i, value in enumerate(values):
        heapq.heappush(heap, (_Negated(value), i))
        if i >= k - 1:
            while heap[0][1] <= i - k:  # root left the window [i - k + 1, i]
                heapq.heappop(heap)
            out.append(heap[0][0].value)
    return out


def _deque(values: list, k: int) -> list:
    # Invariant after step i: `window` holds indices j in [i - k + 1, i], increasing,
    # whose values strictly decrease, and values[window[0]] = max of the window.
    # An index j is dropped from the back when a later value >= values[j] arrives: j can
    # never again be a maximum, because the newcomer is at least as large and stays
    # in every future window at least as long as j.
    window: deque[int] = deque()
    out = []
    for i, value in enumerate(values):
        while window and values[window[-1]] <= value:
            window.pop()
        window.append(i)
        if window[0] <= i - k:  # the front slid out of the window
            window.popleft()
        if i >= k - 1:
            out.append(values[window[0]])
    return out


def _blocks(values: list, k: int) -> list:
    # Split into blocks [0, k), [k, 2k), ...  For window [i, i + k - 1]:
    #   prefix[j] = max of values from the start of j's block up to j,
    #   suffix[j] = max of values from j up to the end of j's block,
    # and the window covers the tail of i's block plus the head of (i + k - 1)'s block,
    # so m_i = max(suffix[i], prefix[i + k - 1]).
    n = len(values)
    prefix = list(values)
    suffix = list(values)
    for j in range(1, n):
        if j % k:
            prefix[j] = max(prefix[j - 1], values[j])
    for j in range(n - 2, -1, -1):
        if (j + 1) % k:
            suffix[j] = max(suffix[j + 1], values[j])
    return [max(suffix[i], prefix[i + k - 1]) for i in range(n - k + 1)]


class _Negated:
    """Wraps a value so that a min-heap orders it as a max-heap (works for any orderable)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __lt__(self, other: _Negated) -> bool:
        return self.value > other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Negated) and self.value == other.value


_IMPLEMENTATIONS = {"brute": _brute, "heap": _heap, "deque": _deque, "blocks": _blocks}


def _check_window(k: int, n: int, length_name: str) -> None:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if n == 0:
        raise ValueError(f"the input must not be empty ({length_name} is 0)")
    if not 1 <= k <= n:
        raise ValueError(f"k must satisfy 1 <= k <= {length_name} = {n}, got k={k}")


def _check_arguments(nums: Sequence[float], k: int, method: str) -> list:
    if method not in _IMPLEMENTATIONS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(nums, (str, bytes)) or not hasattr(nums, "__len__"):
        raise TypeError(f"nums must be a sequence of numbers, got {type(nums).__name__}")
    values = nums.tolist() if hasattr(nums, "tolist") else list(nums)
    _check_window(k, len(values), "len(nums)")
    return values
