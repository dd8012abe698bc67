"""Rotary position embedding (RoPE).

Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding", 2021,
https://arxiv.org/abs/2104.09864.

Pair up the channels of a query or key vector and treat each pair as a complex number.
Position :math:`m` multiplies pair :math:`i` by :math:`e^{\\mathrm{i} m \\theta_i}` with
:math:`\\theta_i = \\text{base}^{-2i/d}` (a rotation by the angle :math:`m\\theta_i`).
Because rotations compose, :math:`\\langle R_m q, R_n k\\rangle = \\langle q, R_{n-m} k\\rangle`:
the attention logit depends on positions only through :math:`n - m`.

Two conventions for *which* channels form a pair are in use:

* ``layout="half"`` (GPT-NeoX, Hugging Face Llama): channel ``j`` pairs with
  ``j + d/2``; rotation written as ``x * cos + rotate_half(x) * sin``.
* ``layout="interleaved"`` (the RoFormer paper, Meta's Llama code): channel ``2i`` pairs
  with ``2i + 1``.

They are the same operation up to a fixed permutation of channels. Angles are always
computed in fp32 (positions near 100k in fp16 would otherwise lose every digit of the
angle), and the result is cast back to the input dtype.

The logit of rotated vectors decays, on average, with the distance :math:`|m - n|`; the
RoFormer paper's upper bound on that decay is :func:`rope_decay_bound`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from dlnotes.foundations.api_export import export

__all__ = ["rope_angles", "apply_rope", "rope_decay_bound", "RotaryEmbedding"]

Layout = Literal["half", "interleaved"]


def rope_angles(
    positions: torch.Tensor, rotary_dim: int, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The rotation angles :math:`m\\theta_i`, in fp32 (or fp64 when asked).

    Shape:
        positions: ``(...)`` integer or float positions; result: ``(..., rotary_dim // 2)``.

    Args:
        positions: Token positions.
        rotary_dim: Number of rotated channels (even).
        base: The frequency base; :math:`\\theta_i = \\text{base}^{-2i/\\text{rotary\\_dim}}`.
        dtype: ``torch.float32`` or ``torch.float64``; never lower, whatever the input.

    Returns:
        A tensor of angles of ``dtype`` on ``positions``' device.

    Raises:
        ValueError: If ``rotary_dim`` is not a positive even integer or ``base <= 1``.
    """
    if not isinstance(rotary_dim, int) or rotary_dim <= 0 or rotary_dim % 2:
        raise ValueError(f"rotary_dim must be a positive even integer, got {rotary_dim!r}")
    if not base > 1.0:
        raise ValueError(f"base must be > 1, got {base}")
    # theta_i = base^(-2i/d), i = 0 .. d/2 - 1
    inv_freq = base ** (-torch.arange(0, rotary_dim, 2, device=positions.device, dtype=dtype) / rotary_dim)
    return positions.to(dtype)[..., None] * inv_freq  # m * theta_i


@export("attention.apply_rope")
def apply_rope(
    x: torch.Tensor,
    positions: torch.Tensor,
    base: float = 10000.0,
    layout: Layout = "half",
    rotary_dim: int | None = None,
) -> torch.Tensor:
    """Rotate queries or keys by their positions.

    Shape:
        x: ``(batch, heads, seq, head_dim)`` (any leading dims; the last two are seq and
        head_dim). positions: ``(seq,)`` or broadcastable to ``x.shape[:-1]``, e.g.
        ``(batch, 1, seq)``. Result: same shape and dtype as ``x``.

    Args:
        x: Queries or keys.
        positions: Integer position of every token.
        base: Frequency base (10000 in the paper; larger for long-context models).
        layout: ``"half"`` (GPT-NeoX / Hugging Face Llama) or ``"interleaved"``
            (RoFormer / Meta Llama).
        rotary_dim: Rotate only the first ``rotary_dim`` channels (partial rotary, as in
            GPT-NeoX and GPT-J); the rest pass through. Defaults to ``head_dim``.

    Returns:
        The rotated tensor, computed in fp32 (fp64 for fp64 inputs) and cast back to
        ``x.dtype``.

    Raises:
        TypeError: If ``x`` is not a floating tensor or ``positions`` is not a tensor.
        ValueError: If ``rotary_dim`` is odd, larger than ``head_dim`` or not positive,
            ``layout`` is unknown, or ``positions`` does not broadcast to ``x.shape[:-1]``.

    Examples:
        >>> q = torch.randn(1, 2, 5, 8)
        >>> apply_rope(q, torch.arange(5)).shape
        torch.Size([1, 2, 5, 8])
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if not isinstance(positions, torch.Tensor):
        raise TypeError(f"positions must be a torch.Tensor, got {type(positions).__name__}")
    if layout not in ("half", "interleaved"):
        raise ValueError(f"layout must be 'half' or 'interleaved', got {layout!r}")
    head_dim = x.shape[-1]
    rotary_dim = head_dim if rotary_dim is None else rotary_dim
    if not isinstance(rotary_dim, int) or rotary_dim <= 0 or rotary_dim % 2 or rotary_dim > head_dim:
        raise ValueError(f"rotary_dim must be a positive even integer <= head_dim={head_dim}, got {rotary_dim!r}")
    try:
        torch.broadcast_shapes(positions.shape, x.shape[:-1])
    except RuntimeError as error:
        raise ValueError(
            f"positions of shape {tuple(positions.shape)} must broadcast to x.shape[:-1] = {tuple(x.shape[:-1])}"
        ) from error

    compute = torch.float64 if x.dtype == torch.float64 else torch.float32  # never below fp32
    angles = rope_angles(positions, rotary_dim, base, dtype=compute)  # (..., rotary_dim/2)
    return _rotate(x, angles.cos(), angles.sin(), rotary_dim, layout)


def rope_decay_bound(distances: torch.Tensor, rotary_dim: int, base: float = 10000.0) -> torch.Tensor:
    r"""The RoFormer paper's long-range decay curve: the relative upper bound of a RoPE logit.

    Write the rotated logit in complex form, :math:`\sum_{i=0}^{d/2-1} h_i e^{\mathrm{i} r \theta_i}`
    with :math:`h_i = q_{[2i:2i+2]} \bar k_{[2i:2i+2]}` and relative distance :math:`r = m - n`.
    Abel summation with the partial sums :math:`S_j = \sum_{i<j} e^{\mathrm{i} r \theta_i}`
    (and :math:`h_{d/2} = 0`) gives

    .. math::

        \Big|\sum_i h_i e^{\mathrm{i} r \theta_i}\Big|
        \le \max_i |h_{i+1} - h_i| \sum_{j=1}^{d/2} |S_j|
        = \max_i |h_{i+1} - h_i| \cdot \tfrac{d}{2} \cdot B(r),

    and this function returns :math:`B(r) = \frac{1}{d/2} \sum_{j=1}^{d/2} |S_j|` (equal to
    :math:`(d/2 + 1)/2` at :math:`r = 0`), the quantity plotted in Figure 2 of the paper. It
    shrinks, with oscillations, as :math:`|r|` grows. Computed in fp64.

    Shape:
        distances: ``(...)``; result: ``(...)``, fp64.

    Args:
        distances: Relative distances :math:`r` (integer or real; the curve is even in r).
        rotary_dim: Number of rotated channels :math:`d` (positive, even).
        base: Frequency base, :math:`\theta_i = \text{base}^{-2i/d}`.

    Returns:
        :math:`B(r)` for every distance.

    Raises:
        TypeError: If ``distances`` is not a tensor.
        ValueError: If ``rotary_dim`` is not a positive even integer or ``base <= 1``.

    Examples:
        >>> rope_decay_bound(torch.tensor([0]), 8)
        tensor([2.5000], dtype=torch.float64)
    """
    if not isinstance(distances, torch.Tensor):
        raise TypeError(f"distances must be a torch.Tensor, got {type(distances).__name__}")
    angles = rope_angles(distances, rotary_dim, base, dtype=torch.float64)  # r * theta_i: (..., d/2)
    phases = torch.polar(torch.ones_like(angles), angles)  # e^{i r theta_i}
    partial_sums = phases.cumsum(dim=-1)  # S_j = sum_{i < j} e^{i r theta_i}, j = 1 .. d/2
    return partial_sums.abs().mean(dim=-1)  # (1 / (d/2)) sum_j |S_j|


@export("attention.RotaryEmbedding")
class RotaryEmbedding(nn.Module):
    """RoPE with cached cos/sin tables, for use inside an attention layer.

    The tables grow on demand when a longer sequence arrives; they are kept in fp32 (and
    rebuilt in fp32 on the next call if ``.half()`` or ``.to(dtype)`` cast them) and not
    saved in the ``state_dict`` (they are a pure function of the configuration).

    Args:
        head_dim: Channels per head.
        base: Frequency base.
        layout: ``"half"`` or ``"interleaved"``.
        rotary_dim: Rotated channels (defaults to ``head_dim``).
        max_positions: Initial size of the cache.

    Examples:
        >>> rope = RotaryEmbedding(16)
        >>> q = k = torch.randn(2, 4, 10, 16)
        >>> q_rot, k_rot = rope(q, k, torch.arange(10))
    """

    def __init__(
        self,
        head_dim: int,
        base: float = 10000.0,
        layout: Layout = "half",
        rotary_dim: int | None = None,
        max_positions: int = 2048,
    ) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.base = base
        self.layout = layout
        self.rotary_dim = head_dim if rotary_dim is None else rotary_dim
        if layout not in ("half", "interleaved"):
            raise ValueError(f"layout must be 'half' or 'interleaved', got {layout!r}")
        if self.rotary_dim <= 0 or self.rotary_dim % 2 or self.rotary_dim > head_dim:
            raise ValueError(f"rotary_dim must be a positive even integer <= head_dim={head_dim}, got {self.rotary_dim}")
        self.register_buffer("cos_cached", torch.empty(0), persistent=False)
        self.register_buffer("sin_cached", torch.empty(0), persistent=False)
        self._build(max_positions, device=None)

    def _build(self, length: int, device: torch.device | None) -> None:
        angles = rope_angles(torch.arange(length, device=device), self.rotary_dim, self.base)
        self.cos_cached, self.sin_cached = angles.cos(), angles.sin()

    def forward(self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate ``q`` and ``k`` by integer ``positions``.

        Shape:
            q, k: ``(batch, heads, seq, head_dim)`` (any leading dims); positions: ``(seq,)``
            or broadcastable to ``(..., seq)``, e.g. ``(batch, 1, seq)``.

        Args:
            q: Queries.
            k: Keys (same positions as ``q``).
            positions: Non-negative integer positions (indices into the cos/sin cache).

        Returns:
            The rotated ``(q, k)``, each in its own dtype (computed in fp32).

        Raises:
            TypeError: If ``positions`` is not an integer tensor.
            ValueError: If a position is negative or ``q``/``k`` do not end in ``head_dim``.
        """
        integer = isinstance(positions, torch.Tensor) and not (
            positions.is_floating_point() or positions.is_complex() or positions.dtype == torch.bool
        )
        if not integer:
            got = getattr(positions, "dtype", type(positions).__name__)
            raise TypeError(f"positions must be an integer tensor, got {got}")
        for name, tensor in (("q", q), ("k", k)):
            if tensor.shape[-1] != self.head_dim:
                raise ValueError(f"{name} must end in head_dim={self.head_dim}, got shape {tuple(tensor.shape)}")
        if positions.numel() and int(positions.min()) < 0:
            raise ValueError(f"positions must be non-negative, got minimum {int(positions.min())}")
        if positions.numel() and int(positions.max()) >= self.cos_cached.shape[0]:
            self._build(max(int(positions.max()) + 1, 2 * self.cos_cached.shape[0]), positions.device)
        # .to(device) moves the tables and .half()/.to(dtype) casts them: rebuild in fp32 when either happened
        if self.cos_cached.device != positions.device or self.cos_cached.dtype != torch.float32:
            self._build(self.cos_cached.shape[0], positions.device)
        cos, sin = self.cos_cached[positions], self.sin_cached[positions]
        return (
            _rotate(q, cos, sin, self.rotary_dim, self.layout),
            _rotate(k, cos, sin, self.rotary_dim, self.layout),
        )

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, rotary_dim={self.rotary_dim}, base={self.base}, layout={self.layout!r}"


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, rotary_dim: int, layout: str) -> torch.Tensor:
    """Rotate the channel pairs of ``x[..., :rotary_dim]`` by angles given as cos/sin (fp32)."""
    rotated, passthrough = x[..., :rotary_dim].to(cos.dtype), x[..., rotary_dim:]
    if layout == "half":
        first, second = rotated.chunk(2, dim=-1)  # pair (j, j + d/2)
    else:
        first, second = rotated[..., 0::2], rotated[..., 1::2]  # pair (2i, 2i + 1)
    # (a + ib) e^{i phi} = (a cos phi - b sin phi) + i (a sin phi + b cos phi)
    out_first = first * cos - second * sin
    out_second = first * sin + second * cos
    if layout == "half":
        out = torch.cat([out_first, out_second], dim=-1)
    else:
        out = torch.stack([out_first, out_second], dim=-1).flatten(-2)
    return torch.cat([out.to(x.dtype), passthrough], dim=-1)
