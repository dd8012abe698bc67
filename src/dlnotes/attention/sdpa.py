"""Scaled dot-product attention: input checks, masks, GQA and the naive reference.

Vaswani et al., "Attention Is All You Need", NeurIPS 2017, https://arxiv.org/abs/1706.03762.

For queries :math:`Q \\in \\mathbb{R}^{N_q \\times d}`, keys :math:`K \\in \\mathbb{R}^{N_k \\times d}`
and values :math:`V \\in \\mathbb{R}^{N_k \\times d_v}`,

.. math::

    S = \\text{scale} \\cdot Q K^\\top, \\qquad P = \\operatorname{softmax}_{\\text{row}}(S), \\qquad O = P V,

with :math:`\\text{scale} = 1/\\sqrt{d}` by default and masked entries of :math:`S` set to
:math:`-\\infty` before the softmax.

This module is the shared plumbing of every attention chapter (FlashAttention, RoPE,
sparse and linear attention, GAU): one layout, ``(batch, heads, seq, head_dim)``; one
validation routine with clear messages; one causal-mask convention (aligned bottom-right,
so the *last* query sees every key, as in FlashAttention 2.1+ and KV-cache decoding);
grouped-query attention (GQA/MQA) by sharing each key/value head among
``heads // kv_heads`` query heads; and :func:`attention_reference`, the materialised
:math:`N_q \\times N_k` computation every faster method is tested against.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from dlnotes.foundations.api_export import export

__all__ = [
    "AttentionShape",
    "attention_reference",
    "causal_mask",
    "check_attention_inputs",
    "repeat_kv",
    "resolve_scale",
]


class AttentionShape(NamedTuple):
    """Sizes read off validated attention inputs (see :func:`check_attention_inputs`)."""

    batch: int
    heads: int
    kv_heads: int
    seq_q: int
    seq_k: int
    head_dim: int
    value_dim: int


def check_attention_inputs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    head_dims: tuple[int, ...] | None = None,
    dtypes: tuple[torch.dtype, ...] | None = None,
    same_value_dim: bool = False,
) -> AttentionShape:
    """Validate query, key and value tensors and return their sizes.

    Shape:
        q: ``(batch, heads, seq_q, head_dim)``; k: ``(batch, kv_heads, seq_k, head_dim)``;
        v: ``(batch, kv_heads, seq_k, value_dim)``, with ``heads`` a multiple of ``kv_heads``.

    Args:
        q: Queries.
        k: Keys.
        v: Values.
        head_dims: If given, the head sizes a caller supports (e.g. a kernel's
            ``(16, 32, 64, 128)``).
        dtypes: If given, the floating dtypes a caller supports.
        same_value_dim: Require ``value_dim == head_dim`` (kernels that share one tile size).

    Returns:
        An :class:`AttentionShape` with ``batch, heads, kv_heads, seq_q, seq_k, head_dim, value_dim``.

    Raises:
        TypeError: If an input is not a tensor, is not floating point, or the three
            dtypes differ, or the dtype is not in ``dtypes``.
        ValueError: If an input is not 4-D, the devices differ, batch sizes, key/value
            head counts or key/value lengths differ, ``head_dim`` of ``q`` and ``k``
            differ, ``heads`` is not a multiple of ``kv_heads``, a length is 0, or a
            head size is not in ``head_dims``.

    Examples:
        >>> q, k = torch.zeros(2, 8, 5, 16), torch.zeros(2, 2, 7, 16)
        >>> check_attention_inputs(q, k, k)
        AttentionShape(batch=2, heads=8, kv_heads=2, seq_q=5, seq_k=7, head_dim=16, value_dim=16)
    """
    for name, tensor in (("q", q), ("k", k), ("v", v)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
        if not tensor.is_floating_point():
            raise TypeError(f"{name} must have a floating dtype, got {tensor.dtype}")
        if tensor.dim() != 4:
            raise ValueError(
                f"{name} must be 4-D (batch, heads, seq, head_dim), got shape {tuple(tensor.shape)}"
            )
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"q, k and v must share one dtype, got {q.dtype}, {k.dtype} and {v.dtype}")
    if dtypes is not None and q.dtype not in dtypes:
        raise TypeError(f"dtype must be one of {list(dtypes)}, got {q.dtype}")
    if not q.device == k.device == v.device:
        raise ValueError(f"q, k and v must be on one device, got {q.device}, {k.device} and {v.device}")

    batch, heads, seq_q, head_dim = q.shape
    if k.shape[0] != batch or v.shape[0] != batch:
        raise ValueError(f"batch sizes differ: q has {batch}, k has {k.shape[0]}, v has {v.shape[0]}")
    kv_heads, seq_k = k.shape[1], k.shape[2]
    if v.shape[1] != kv_heads or v.shape[2] != seq_k:
        raise ValueError(
            f"k and v must agree in (kv_heads, seq_k): k has {tuple(k.shape[1:3])}, v has {tuple(v.shape[1:3])}"
        )
    if k.shape[3] != head_dim:
        raise ValueError(f"head_dim of q and k must match, got {head_dim} and {k.shape[3]}")
    value_dim = v.shape[3]
    if same_value_dim and value_dim != head_dim:
        raise ValueError(f"head_dim of v must equal head_dim of q ({head_dim}), got {value_dim}")
    if kv_heads == 0 or heads % kv_heads:
        raise ValueError(f"heads ({heads}) must be a positive multiple of kv_heads ({kv_heads})")
    if seq_q == 0 or seq_k == 0 or head_dim == 0:
        raise ValueError(f"seq_q, seq_k and head_dim must be positive, got {seq_q}, {seq_k} and {head_dim}")
    if head_dims is not None and head_dim not in head_dims:
        raise ValueError(f"head_dim must be one of {list(head_dims)}, got {head_dim}")
    return AttentionShape(batch, heads, kv_heads, seq_q, seq_k, head_dim, value_dim)


@export("attention.causal_mask")
def causal_mask(seq_q: int, seq_k: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean causal mask aligned bottom-right; ``True`` means "may attend".

    Query ``i`` sits at absolute position ``i + seq_k - seq_q``, so it may attend to key
    ``j`` iff ``j <= i + seq_k - seq_q``. With ``seq_q == seq_k`` this is the usual lower
    triangle; with ``seq_q < seq_k`` (decoding with a KV cache) the last query sees every
    key; with ``seq_q > seq_k`` the first ``seq_q - seq_k`` rows see nothing.

    Shape:
        result: ``(seq_q, seq_k)``, dtype ``torch.bool``.

    Args:
        seq_q: Number of queries (``>= 0``).
        seq_k: Number of keys (``>= 0``).
        device: Where to create the mask.

    Returns:
        The mask.

    Raises:
        TypeError: If a length is not an int.
        ValueError: If a length is negative.

    Examples:
        >>> causal_mask(2, 3).int()
        tensor([[1, 1, 0],
                [1, 1, 1]], dtype=torch.int32)
    """
    for name, value in (("seq_q", seq_q), ("seq_k", seq_k)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    rows = torch.arange(seq_q, device=device).unsqueeze(1)  # query index i
    cols = torch.arange(seq_k, device=device).unsqueeze(0)  # key index j
    return cols <= rows + (seq_k - seq_q)  # j <= i + offset


def repeat_kv(k: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Repeat each key/value head ``n_rep`` times along the head axis (GQA/MQA).

    Query head ``h`` uses key/value head ``h // n_rep``, the convention of Llama and
    ``torch.nn.functional.scaled_dot_product_attention(..., enable_gqa=True)``.

    Shape:
        k: ``(batch, kv_heads, seq, dim)``; result: ``(batch, kv_heads * n_rep, seq, dim)``.

    Args:
        k: Keys or values.
        n_rep: Query heads per key/value head (``>= 1``).

    Returns:
        ``k`` itself when ``n_rep == 1``, else a new tensor equal to
        ``k.repeat_interleave(n_rep, dim=1)``.

    Raises:
        TypeError: If ``k`` is not a tensor or ``n_rep`` is not an int.
        ValueError: If ``k`` is not 4-D or ``n_rep < 1``.

    Examples:
        >>> repeat_kv(torch.arange(2.0).view(1, 2, 1, 1), 2).flatten()
        tensor([0., 0., 1., 1.])
    """
    if not isinstance(k, torch.Tensor):
        raise TypeError(f"k must be a torch.Tensor, got {type(k).__name__}")
    if isinstance(n_rep, bool) or not isinstance(n_rep, int):
        raise TypeError(f"n_rep must be an int, got {type(n_rep).__name__}")
    if k.dim() != 4:
        raise ValueError(f"k must be 4-D (batch, kv_heads, seq, dim), got shape {tuple(k.shape)}")
    if n_rep < 1:
        raise ValueError(f"n_rep must be >= 1, got {n_rep}")
    if n_rep == 1:
        return k
    batch, kv_heads, seq, dim = k.shape
    # (b, kvh, s, d) -> (b, kvh, n_rep, s, d) as a view, then one copy into (b, kvh * n_rep, s, d).
    return k[:, :, None].expand(batch, kv_heads, n_rep, seq, dim).reshape(batch, kv_heads * n_rep, seq, dim)


@export("attention.attention_reference")
def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """Naive attention: materialise ``S = scale * Q K^T``, softmax it, multiply by ``V``.

    Everything is computed in the inputs' dtype (no upcasting), which makes it the
    "same-dtype PyTorch reference" that low-precision kernels are compared with. A query
    row whose keys are all masked gets an output of zeros (not NaN).

    Shape:
        q: ``(batch, heads, seq_q, head_dim)``; k: ``(batch, kv_heads, seq_k, head_dim)``;
        v: ``(batch, kv_heads, seq_k, value_dim)``; mask: broadcastable to
        ``(batch, heads, seq_q, seq_k)``; result: ``(batch, heads, seq_q, value_dim)``.

    Args:
        q: Queries.
        k: Keys (``heads`` must be a multiple of ``kv_heads``).
        v: Values.
        mask: Optional boolean mask (``True`` = may attend) or a floating additive bias.
        causal: Also apply :func:`causal_mask` (bottom-right aligned).
        scale: Multiplier of ``Q K^T``; ``1 / sqrt(head_dim)`` when ``None``.

    Returns:
        The attention output, same dtype as ``q``.

    Raises:
        TypeError: As :func:`check_attention_inputs`, or if ``mask`` is not a tensor of
            bool or floating dtype, or ``scale`` is not a real number.
        ValueError: As :func:`check_attention_inputs`, or if ``mask`` does not broadcast
            to ``(batch, heads, seq_q, seq_k)`` or is on another device.

    Examples:
        >>> q = torch.randn(1, 2, 3, 8)
        >>> attention_reference(q, q, q, causal=True).shape
        torch.Size([1, 2, 3, 8])
    """
    shape = check_attention_inputs(q, k, v)
    scale = resolve_scale(scale, shape.head_dim)
    target = (shape.batch, shape.heads, shape.seq_q, shape.seq_k)
    n_rep = shape.heads // shape.kv_heads
    k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)

    # Two seq_q x seq_k matrices live at the peak, S and P: scaling and masking act in place.
    scores = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)  # S = scale * Q K^T: (b, h, seq_q, seq_k)
    if mask is not None:
        _check_mask(mask, target, q.device)
        if mask.dtype == torch.bool:
            scores.masked_fill_(~mask, float("-inf"))
        else:
            scores.add_(mask.to(scores.dtype))
    if causal:
        scores.masked_fill_(~causal_mask(shape.seq_q, shape.seq_k, q.device), float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # P
    # A row with no visible key has softmax(-inf, ..., -inf) = NaN: give it zeros instead.
    empty_row = scores.amax(dim=-1, keepdim=True) == float("-inf")
    if bool(empty_row.any()):
        weights = weights.masked_fill(empty_row, 0.0)
    return torch.matmul(weights, v)  # O = P V


def resolve_scale(scale: float | None, head_dim: int) -> float:
    """The softmax scale: ``1 / sqrt(head_dim)`` when ``scale`` is ``None``, else ``float(scale)``.

    Args:
        scale: A real number or ``None``.
        head_dim: Size of each query/key vector.

    Returns:
        The scale as a Python float.

    Raises:
        TypeError: If ``scale`` is not a real number.
        ValueError: If ``scale`` is not finite.

    Examples:
        >>> resolve_scale(None, 64)
        0.125
    """
    if scale is None:
        return 1.0 / math.sqrt(head_dim)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise TypeError(f"scale must be a real number or None, got {type(scale).__name__}")
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale}")
    return float(scale)


def _check_mask(mask: torch.Tensor, target: tuple[int, ...], device: torch.device) -> None:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(f"mask must be bool (True = attend) or a floating additive bias, got {mask.dtype}")
    if mask.device != device:
        raise ValueError(f"mask must be on the device of q ({device}), got {mask.device}")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, target)
    except RuntimeError:
        broadcast = None
    if broadcast != torch.Size(target):
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to (batch, heads, seq_q, seq_k) = {target}"
        )
