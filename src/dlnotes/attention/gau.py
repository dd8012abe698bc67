"""Gated Attention Unit (GAU), FLASH-Quad and FLASH with mixed chunk attention.

Hua, Dai, Liu and Le, "Transformer Quality in Linear Time", ICML 2022,
https://arxiv.org/abs/2202.10447.

A GAU replaces the attention block *and* the feed-forward block of a transformer layer.
From the normalised input :math:`X \\in \\mathbb{R}^{n \\times d}` it computes

.. math::

    U = \\phi(X W_u),\\quad V = \\phi(X W_v) \\quad (n \\times e),\\qquad
    Z = \\phi(X W_z) \\quad (n \\times s),\\qquad \\phi = \\text{SiLU},

    Q = \\gamma_q \\odot Z + \\beta_q,\\qquad K = \\gamma_k \\odot Z + \\beta_k,

    A_{ij} = \\frac{1}{n_i}\\,\\operatorname{relu}^2\\!\\Big(\\frac{q_i \\cdot k_j}{\\sqrt{s}} + b_{j-i}\\Big),
    \\qquad O = \\big(U \\odot A V\\big) W_o,

and returns :math:`X + O` (pre-norm residual). :math:`n_i` is the number of keys query
:math:`i` may see: :math:`n` without a causal mask, :math:`i + 1` with one, so every row
of :math:`A` is an average and a causal output never depends on the total length.
:math:`b` is a learned relative position bias (:class:`RelativePositionBias`); RoPE
(:func:`dlnotes.attention.rope.apply_rope`) may be applied to :math:`Q, K` as well.
FLASH-Quad is the paper's name for a stack of GAUs (:data:`FLASHQuad` is :class:`GAU`).

FLASH cuts the sequence into chunks of :math:`C` tokens and mixes two attentions that
share :math:`Z` (four offset/scale pairs give :math:`Q_{quad}, K_{quad}, Q_{lin}, K_{lin}`):

.. math::

    \\hat V_g = \\tfrac{1}{C}\\operatorname{relu}^2\\!\\big(Q^{quad}_g {K^{quad}_g}^\\top/\\sqrt{s} + B\\big) V_g
    + \\tfrac{1}{m_g} Q^{lin}_g \\textstyle\\sum_{h \\in H_g} {K^{lin}_h}^\\top V_h

(quadratic inside chunk :math:`g`, linear across chunks),
with :math:`H_g = \\{h < g\\}` and :math:`m_g = gC` when causal (an *exclusive* cumulative
sum over chunks; :math:`\\hat V_0` has no linear term), :math:`H_g` = all chunks and
:math:`m_g = n` otherwise. Any length works: the sequence is padded to a multiple of
:math:`C` inside :func:`mixed_chunk_attention` and padded keys are masked out.

Layout: functions take ``(batch, heads, seq, dim)`` like :mod:`dlnotes.attention.sdpa`
(a GAU has one head); modules take ``(batch, seq, d_model)``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from dlnotes.attention.rope import apply_rope
from dlnotes.attention.sdpa import causal_mask, check_attention_inputs, resolve_scale
from dlnotes.foundations.api_export import export

__all__ = [
    "relu2_attention",
    "mixed_chunk_attention",
    "RelativePositionBias",
    "ScaleNorm",
    "OffsetScale",
    "GAU",
    "FLASHQuad",
    "FLASH",
]

Norm = Literal["layer", "scale"]


def relu2_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Squared-ReLU attention averaged over the visible keys (the GAU's quadratic attention).

    Computes ``A = relu(scale * Q K^T + bias)^2``, zeroes masked entries, divides row ``i``
    by its number of visible keys (``seq_k``, or ``i + 1 + seq_k - seq_q`` when causal;
    the causal mask is the bottom-right aligned one of :func:`dlnotes.attention.sdpa.causal_mask`)
    and returns ``A V``. No softmax: nothing couples a row's entries except the fixed
    divisor, so masked keys never influence the result, not even through a normaliser.

    Shape:
        q: ``(batch, heads, seq_q, dim)``; k: ``(batch, heads, seq_k, dim)``;
        v: ``(batch, heads, seq_k, value_dim)``; bias: broadcastable to
        ``(batch, heads, seq_q, seq_k)``; result: ``(batch, heads, seq_q, value_dim)``.

    Args:
        q: Queries.
        k: Keys (as many heads as ``q``).
        v: Values.
        causal: Apply the causal mask.
        bias: Optional additive bias of the scores (e.g. :class:`RelativePositionBias`).
        scale: Multiplier of ``Q K^T``; ``1 / sqrt(dim)`` when ``None``.

    Returns:
        The attention output, dtype of ``q``.

    Raises:
        TypeError: As :func:`dlnotes.attention.sdpa.check_attention_inputs`, or if ``bias``
            is not a floating tensor or ``scale`` is not a real number.
        ValueError: As :func:`~dlnotes.attention.sdpa.check_attention_inputs`, if ``k`` has
            fewer heads than ``q`` (no grouped queries here), or ``bias`` does not broadcast.

    Examples:
        >>> q = torch.randn(1, 1, 6, 8)
        >>> relu2_attention(q, q, q, causal=True).shape
        torch.Size([1, 1, 6, 8])
    """
    shape = check_attention_inputs(q, k, v)
    if shape.kv_heads != shape.heads:
        raise ValueError(f"q and k must have the same number of heads, got {shape.heads} and {shape.kv_heads}")
    scale = resolve_scale(scale, shape.head_dim)
    # One n_q x n_k buffer, updated in place where autograd allows: this matrix is the whole cost.
    scores = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)  # q_i . k_j / sqrt(s): (b, h, n_q, n_k)
    if bias is not None:
        _check_bias(bias, (shape.batch, shape.heads, shape.seq_q, shape.seq_k), q)
        scores = scores.add_(bias)
    weights = F.relu(scores).square()  # relu^2
    if causal:
        visible = causal_mask(shape.seq_q, shape.seq_k, q.device)  # True where j <= i (+ offset)
        weights = weights.masked_fill_(~visible, 0.0)  # exactly zero: the future cannot leak
        counts = visible.sum(-1, keepdim=True).clamp(min=1).to(q.dtype)  # n_i = i + 1 (+ offset)
    else:
        counts = torch.tensor(float(shape.seq_k), dtype=q.dtype, device=q.device)  # n_i = n
    return torch.matmul(weights, v) / counts  # (A V) / n_i: divide the n x e result, not the n x n matrix


def mixed_chunk_attention(
    q_quad: torch.Tensor,
    k_quad: torch.Tensor,
    q_lin: torch.Tensor,
    k_lin: torch.Tensor,
    v: torch.Tensor,
    chunk_size: int,
    causal: bool = False,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """FLASH's mixed chunk attention: relu² attention inside chunks plus linear attention across them.

    The sequence is cut into ``G = ceil(n / C)`` chunks of ``C = chunk_size`` tokens (the
    last one zero-padded and masked). For a query in chunk ``g``:

    * quadratic part: ``relu(scale * q k^T + bias)^2 / C`` against the keys of chunk
      ``g`` (only the earlier ones when causal), times their values;
    * linear part: ``q_lin @ S_g / m_g`` with ``S_g = sum_h k_lin_h^T v_h`` over chunks
      ``h < g`` (causal, an exclusive cumulative sum, ``m_g = g C``; chunk 0 gets 0) or
      over all chunks (non-causal, ``m_g = n``).

    Cost: ``O(n C s)`` for the chunks plus ``O(n s e)`` for the linear part, linear in ``n``.

    Shape:
        q_quad, k_quad, q_lin, k_lin: ``(batch, heads, seq, dim)``;
        v: ``(batch, heads, seq, value_dim)``; bias: broadcastable to
        ``(chunk_size, chunk_size)`` (query offset, key offset inside a chunk);
        result: ``(batch, heads, seq, value_dim)``.

    Args:
        q_quad: Queries of the quadratic part.
        k_quad: Keys of the quadratic part.
        q_lin: Queries of the linear part.
        k_lin: Keys of the linear part.
        v: Values, shared by both parts.
        chunk_size: Tokens per chunk ``C`` (any ``seq`` works; the input is padded).
        causal: Causal attention (autoregressive); else every token sees every token.
        bias: Optional additive bias of the in-chunk scores (a relative position bias).
        scale: Multiplier of ``q_quad k_quad^T``; ``1 / sqrt(dim)`` when ``None``.

    Returns:
        The attention output, dtype of ``v``.

    Raises:
        TypeError: As :func:`dlnotes.attention.sdpa.check_attention_inputs`, if
            ``chunk_size`` is not an int, or ``bias`` is not a floating tensor.
        ValueError: If the four query/key tensors and ``v`` differ in batch, heads or
            length, their last sizes differ, ``chunk_size < 1``, or ``bias`` does not
            broadcast to ``(chunk_size, chunk_size)``.

    Examples:
        >>> x = torch.randn(1, 1, 10, 8)
        >>> mixed_chunk_attention(x, x, x, x, x, chunk_size=4, causal=True).shape
        torch.Size([1, 1, 10, 8])
    """
    shape = check_attention_inputs(q_quad, k_quad, v)
    check_attention_inputs(q_lin, k_lin, v)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise TypeError(f"chunk_size must be an int, got {type(chunk_size).__name__}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    reference = q_quad.shape
    for name, tensor in (("k_quad", k_quad), ("q_lin", q_lin), ("k_lin", k_lin)):
        if tensor.shape != reference:
            raise ValueError(f"{name} must have the shape of q_quad {tuple(reference)}, got {tuple(tensor.shape)}")
    if v.shape[:3] != reference[:3]:
        raise ValueError(
            f"v must match q_quad in (batch, heads, seq) = {tuple(reference[:3])}, got {tuple(v.shape[:3])}"
        )
    if bias is not None:
        _check_bias(bias, (chunk_size, chunk_size), q_quad)
    scale = resolve_scale(scale, shape.head_dim)

    n, chunk = shape.seq_q, chunk_size
    groups = -(-n // chunk)  # G = ceil(n / C)
    pad = groups * chunk - n

    def chunked(t: torch.Tensor) -> torch.Tensor:  # (b, h, n, x) -> (b, h, G, C, x), zero-padded
        t = F.pad(t, (0, 0, 0, pad))
        return t.view(*t.shape[:2], groups, chunk, t.shape[-1])

    qq, kq, ql, kl, vv = (chunked(t) for t in (q_quad, k_quad, q_lin, k_lin, v))
    real = (torch.arange(groups * chunk, device=v.device) < n).view(groups, chunk)  # (G, C): not padding

    # Quadratic part inside each chunk: (1/C) relu^2(q k^T * scale + B) V, masked.
    scores = torch.matmul(qq, kq.transpose(-2, -1)) * scale  # (b, h, G, C, C)
    if bias is not None:
        scores = scores + bias
    weights = F.relu(scores).square()
    keep = real[:, None, :]  # (G, 1, C): padded keys never count
    if causal:
        keep = keep & causal_mask(chunk, chunk, v.device)  # (G, C, C): key offset <= query offset
    weights = weights.masked_fill(~keep, 0.0)
    quadratic = torch.matmul(weights, vv) / chunk  # (b, h, G, C, e)

    # Linear part across chunks: per-chunk sums K_lin_h^T V_h, then a (cumulative) sum over h.
    kl = kl.masked_fill(~real[..., None], 0.0)  # padded keys contribute nothing
    per_chunk = torch.matmul(kl.transpose(-2, -1), vv)  # K_lin_h^T V_h: (b, h, G, s, e)
    if causal:
        inclusive = per_chunk.cumsum(dim=2)  # sum_{h <= g}
        state = F.pad(inclusive[:, :, :-1], (0, 0, 0, 0, 1, 0))  # shift by one chunk: sum_{h < g}
        seen = torch.arange(groups, device=v.device, dtype=v.dtype) * chunk  # m_g = g C keys
        linear = torch.matmul(ql, state) / seen.clamp(min=1)[:, None, None]  # chunk 0: state = 0
    else:
        state = per_chunk.sum(dim=2, keepdim=True)  # sum over all chunks: (b, h, 1, s, e)
        linear = torch.matmul(ql, state) / n  # m_g = n
    out = (quadratic + linear).reshape(*v.shape[:2], groups * chunk, v.shape[-1])
    return out[:, :, :n]


class RelativePositionBias(nn.Module):
    """A learned scalar per relative distance, clipped: ``b(i, j) = w[clip(j - i, -R, R) + R]``.

    A simplified T5-style bias (one weight per distance instead of log-spaced buckets),
    initialised to zero so a fresh layer starts without positional preference.

    Args:
        max_distance: ``R``; distances beyond it share the weight of ``±R``.

    Raises:
        ValueError: If ``max_distance`` is not a positive int.

    Examples:
        >>> bias = RelativePositionBias(max_distance=4)
        >>> bias(3, 3).shape
        torch.Size([3, 3])
    """

    def __init__(self, max_distance: int = 128) -> None:
        super().__init__()
        if isinstance(max_distance, bool) or not isinstance(max_distance, int) or max_distance < 1:
            raise ValueError(f"max_distance must be a positive int, got {max_distance!r}")
        self.max_distance = max_distance
        self.weight = nn.Parameter(torch.zeros(2 * max_distance + 1))

    def forward(self, seq_q: int, seq_k: int) -> torch.Tensor:
        """The ``(seq_q, seq_k)`` bias; query ``i`` sits at position ``i + seq_k - seq_q`` (as in a cache)."""
        device = self.weight.device
        query = torch.arange(seq_q, device=device)[:, None] + (seq_k - seq_q)
        key = torch.arange(seq_k, device=device)[None, :]
        distance = (key - query).clamp(-self.max_distance, self.max_distance)  # j - i, clipped
        return self.weight[distance + self.max_distance]

    def extra_repr(self) -> str:
        return f"max_distance={self.max_distance}"


class ScaleNorm(nn.Module):
    """Scale normalisation ``g * x / ||x||`` with one learned scalar ``g`` (init ``sqrt(d)``).

    Nguyen and Salazar, "Transformers without Tears", 2019, https://arxiv.org/abs/1910.05895.

    Args:
        d_model: Width of the input (sets the initial ``g``).
        eps: Floor of the norm.
    """

    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(math.sqrt(d_model)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x / x.norm(dim=-1, keepdim=True).clamp(min=self.eps)


class OffsetScale(nn.Module):
    """Per-channel scale and offset of one shared tensor into ``heads`` cheap variants.

    ``out[..., h, :] = gamma[h] * z + beta[h]``; this is how a GAU turns its single
    ``Z`` into queries and keys (two variants) and FLASH into four.

    Args:
        dim: Channels of ``z``.
        heads: Number of variants.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(heads, dim))
        self.beta = nn.Parameter(torch.zeros(heads, dim))
        nn.init.normal_(self.gamma, mean=1.0, std=0.02)  # break the symmetry between q and k

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return ``heads`` tensors shaped like ``z``."""
        return tuple(z * self.gamma[h] + self.beta[h] for h in range(self.gamma.shape[0]))


@export("attention.GAU")
class GAU(nn.Module):
    """Gated Attention Unit: one layer that stands in for attention + feed-forward.

    ``x + W_o(U * relu2_attention(Q, K, V))`` with ``U, V, Z`` from one projection of the
    normalised ``x`` (see the module docstring). Parameters: ``d (2e + s) + e d`` plus a
    few vectors, about ``6 d^2`` for ``e = 2d``: two GAUs weigh what one multi-head
    attention + MLP block weighs.

    Shape:
        x: ``(batch, seq, d_model)``; result: same.

    Args:
        d_model: Width ``d`` of the residual stream.
        expansion: ``e / d`` (the paper uses 2).
        qk_dim: Width ``s`` of the shared ``Z`` (the paper uses 128).
        causal: Causal attention.
        rope: Rotate ``Q`` and ``K`` with RoPE (needs an even ``qk_dim``).
        relative_bias: Add a :class:`RelativePositionBias` to the scores.
        max_distance: Clipping distance of the relative bias.
        norm: ``"layer"`` (LayerNorm) or ``"scale"`` (:class:`ScaleNorm`) before the unit.

    Raises:
        ValueError: On a non-positive size, an odd ``qk_dim`` with ``rope=True``, or an
            unknown ``norm``; in :meth:`forward`, on a wrong input shape.
        TypeError: In :meth:`forward`, if ``x`` is not a floating tensor.

    Examples:
        >>> layer = GAU(d_model=32, qk_dim=16, causal=True)
        >>> layer(torch.randn(2, 10, 32)).shape
        torch.Size([2, 10, 32])
    """

    variants = 2  # offset/scale pairs made from Z: q, k

    def __init__(
        self,
        d_model: int,
        expansion: float = 2.0,
        qk_dim: int = 128,
        causal: bool = False,
        rope: bool = True,
        relative_bias: bool = True,
        max_distance: int = 128,
        norm: Norm = "layer",
    ) -> None:
        super().__init__()
        for name, value in (("d_model", d_model), ("qk_dim", qk_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(expansion, (int, float)) or isinstance(expansion, bool) or expansion <= 0:
            raise ValueError(f"expansion must be a positive number, got {expansion!r}")
        if rope and qk_dim % 2:
            raise ValueError(f"rope=True needs an even qk_dim, got {qk_dim}")
        if norm not in ("layer", "scale"):
            raise ValueError(f"norm must be 'layer' or 'scale', got {norm!r}")
        self.d_model, self.qk_dim, self.causal, self.rope = d_model, qk_dim, causal, rope
        self.hidden = max(1, round(expansion * d_model))  # e
        self.norm = nn.LayerNorm(d_model) if norm == "layer" else ScaleNorm(d_model)
        self.to_uvz = nn.Linear(d_model, 2 * self.hidden + qk_dim)  # [W_u, W_v, W_z] in one matmul
        self.offset_scale = OffsetScale(qk_dim, self.variants)
        self.relative_bias = RelativePositionBias(max_distance) if relative_bias else None
        self.to_out = nn.Linear(self.hidden, d_model)  # W_o

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the unit (normalisation and residual included)."""
        self._check_input(x)
        u, v, z = F.silu(self.to_uvz(self.norm(x))).split([self.hidden, self.hidden, self.qk_dim], dim=-1)
        queries_keys = [t[:, None] for t in self.offset_scale(z)]  # gamma * Z + beta, as (b, 1, n, s)
        if self.rope:
            positions = torch.arange(x.shape[1], device=x.device)
            queries_keys = [apply_rope(t, positions) for t in queries_keys]
        attended = self._attend(*queries_keys, v[:, None])[:, 0]  # A V: (b, n, e)
        return x + self.to_out(u * attended)  # x + W_o (U * A V)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        n = q.shape[-2]
        bias = self.relative_bias(n, n) if self.relative_bias is not None else None
        return relu2_attention(q, k, v, causal=self.causal, bias=bias)

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        if x.dim() != 3 or x.shape[-1] != self.d_model or x.shape[1] == 0:
            raise ValueError(
                f"x must have shape (batch, seq >= 1, d_model={self.d_model}), got {tuple(x.shape)}"
            )

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, hidden={self.hidden}, qk_dim={self.qk_dim}, "
            f"causal={self.causal}, rope={self.rope}"
        )


#: FLASH-Quad, the paper's name for a model made of GAU layers: the layer is :class:`GAU`.
FLASHQuad = GAU


@export("attention.FLASH")
class FLASH(GAU):
    """A FLASH layer: a GAU whose attention is :func:`mixed_chunk_attention` (linear in length).

    Same projections as :class:`GAU`, except that ``Z`` yields four offset/scale variants
    (``Q_quad, K_quad, Q_lin, K_lin``). RoPE (if on) rotates all four by absolute
    position; the relative bias (if on) acts inside chunks. Any sequence length works.

    Shape:
        x: ``(batch, seq, d_model)``; result: same.

    Args:
        d_model: Width ``d`` of the residual stream.
        chunk_size: Tokens per chunk ``C`` (the paper uses 256).
        **kwargs: The other arguments of :class:`GAU` (``expansion``, ``qk_dim``,
            ``causal``, ``rope``, ``relative_bias``, ``max_distance``, ``norm``).

    Raises:
        ValueError: If ``chunk_size`` is not a positive int, and as :class:`GAU`.

    Examples:
        >>> layer = FLASH(d_model=32, chunk_size=4, qk_dim=16, causal=True)
        >>> layer(torch.randn(2, 10, 32)).shape
        torch.Size([2, 10, 32])
    """

    variants = 4  # q_quad, k_quad, q_lin, k_lin

    def __init__(self, d_model: int, chunk_size: int = 256, **kwargs: object) -> None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
        super().__init__(d_model, **kwargs)
        self.chunk_size = chunk_size

    def _attend(
        self, q_quad: torch.Tensor, k_quad: torch.Tensor, q_lin: torch.Tensor, k_lin: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        size = self.chunk_size
        bias = self.relative_bias(size, size) if self.relative_bias is not None else None
        return mixed_chunk_attention(q_quad, k_quad, q_lin, k_lin, v, size, causal=self.causal, bias=bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", chunk_size={self.chunk_size}"


def _check_bias(bias: torch.Tensor, target: tuple[int, ...], like: torch.Tensor) -> None:
    if not isinstance(bias, torch.Tensor) or not bias.is_floating_point():
        raise TypeError(f"bias must be a floating-point tensor, got {getattr(bias, 'dtype', type(bias).__name__)}")
    if bias.device != like.device:
        raise ValueError(f"bias must be on the device of the queries ({like.device}), got {bias.device}")
    try:
        broadcast = torch.broadcast_shapes(bias.shape, target)
    except RuntimeError:
        broadcast = None
    if broadcast != torch.Size(target):
        raise ValueError(f"bias of shape {tuple(bias.shape)} does not broadcast to {target}")
