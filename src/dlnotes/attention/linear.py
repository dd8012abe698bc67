"""Linear attention: drop the softmax, reorder the matrix product, pay O(N) instead of O(N²).

Katharopoulos et al., "Transformers are RNNs: Fast Autoregressive Transformers with Linear
Attention", ICML 2020, https://arxiv.org/abs/2006.16236; Shen et al., "Efficient Attention:
Attention with Linear Complexities", WACV 2021, https://arxiv.org/abs/1812.01243.

Softmax attention normalises every row of :math:`QK^\\top`, so the :math:`N \\times N`
matrix must exist before :math:`V` can be applied. Replace the similarity
:math:`e^{q \\cdot k}` by :math:`\\phi(q) \\cdot \\phi(k)` for a feature map :math:`\\phi`
and the product can be reassociated:

.. math::

    O_i = \\frac{\\phi(q_i) \\sum_{j} \\phi(k_j)^\\top v_j}{\\phi(q_i) \\sum_{j} \\phi(k_j)^\\top}
        = \\frac{\\phi(q_i) S}{\\phi(q_i) \\cdot z},
    \\qquad S = \\phi(K)^\\top V \\ (d \\times d_v), \\quad z = \\textstyle\\sum_j \\phi(k_j) \\ (d).

With a causal mask the sums run over :math:`j \\le i`, so :math:`S` and :math:`z` become a
running state, :math:`S_t = S_{t-1} + \\phi(k_t)^\\top v_t`, computed here four ways:

* ``"quadratic"``: the masked :math:`N \\times N` matrix (the reference);
* ``"recurrent"``: the state updated one token at a time (an RNN);
* ``"cumsum"``: all :math:`N` states at once with a cumulative sum (:math:`N d d_v` memory);
* ``"chunked"``: quadratic inside chunks of ``chunk_size`` tokens, the state carried
  between chunks (what fast kernels do); ``"triton"`` runs the same algorithm as a fused
  kernel (:mod:`dlnotes.attention.linear_triton`).

Every method accepts the state of an earlier piece of the sequence and returns the new
one (:class:`LinearAttentionState`), so a long sequence can be processed piece by piece.

All four share one primitive, the *causal product* :math:`\\tilde O_i = \\phi(q_i)
(S_0 + \\sum_{j \\le i} \\phi(k_j)^\\top v_j)`; the normaliser is that same product with
:math:`v_j = 1`, and :math:`O = \\tilde O / (\\text{denominator} + \\varepsilon)`.

RoPE (Su et al., RoFormer, https://arxiv.org/abs/2104.09864, section 3.3) enters the
numerator only: :math:`\\phi(q_i)` and :math:`\\phi(k_j)` are rotated by their positions
there, so the numerator's weights depend on :math:`j - i` alone, while the denominator keeps
the unrotated, positive features.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from dlnotes.attention.rope import apply_rope
from dlnotes.attention.sdpa import causal_mask, check_attention_inputs, repeat_kv
from dlnotes.foundations.api_export import export

__all__ = ["FEATURE_MAPS", "METHODS", "LinearAttentionState", "feature_map_pair", "linear_attention"]

#: Names accepted by ``feature_map``.
FEATURE_MAPS: tuple[str, ...] = ("elu", "relu", "identity", "softmax")
#: Names accepted by ``method``.
METHODS: tuple[str, ...] = ("quadratic", "recurrent", "cumsum", "chunked", "triton")


class LinearAttentionState(NamedTuple):
    """What linear attention remembers of the tokens it has seen.

    Attributes:
        kv: :math:`S = \\sum_j \\phi(k_j)^\\top v_j`, shape ``(batch, heads, head_dim, value_dim)``
            (with RoPE, the keys are rotated by their positions first).
        k_sum: :math:`z = \\sum_j \\phi(k_j)`, shape ``(batch, heads, head_dim)``, the
            normaliser's state (never rotated). May be ``None`` in an ``initial_state``
            when ``normalize=False``; a returned state always carries it.

    ``heads`` is the number of *query* heads (with grouped-query attention each query head
    keeps its own copy). Both tensors have the dtype and device of ``q``.
    """

    kv: torch.Tensor
    k_sum: torch.Tensor | None


def feature_map_pair(
    q: torch.Tensor, k: torch.Tensor, feature_map: str | Callable[[torch.Tensor], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a feature map :math:`\\phi` to queries and keys.

    * ``"elu"``: :math:`\\phi(x) = \\operatorname{elu}(x) + 1 > 0` (Katharopoulos et al.);
    * ``"relu"``: :math:`\\phi(x) = \\max(x, 0) \\ge 0`;
    * ``"identity"``: :math:`\\phi(x) = x` (no positivity: use with ``normalize=False``);
    * ``"softmax"``: the Efficient-Attention variant, :math:`\\phi(Q) = \\operatorname{softmax}(Q)`
      over the feature axis and :math:`\\phi(K) = \\operatorname{softmax}(K)` over the *sequence*
      axis; every row of :math:`\\phi(Q)\\phi(K)^\\top` then sums to 1 by itself;
    * a callable, applied to ``q`` and ``k`` alike.

    Shape:
        q: ``(..., seq_q, head_dim)``; k: ``(..., seq_k, head_dim)``; results: the same.

    Args:
        q: Queries.
        k: Keys.
        feature_map: A name from :data:`FEATURE_MAPS` or a callable.

    Returns:
        ``(phi_q, phi_k)``.

    Raises:
        ValueError: If ``feature_map`` is an unknown name, or a callable changes the shape.
        TypeError: If ``feature_map`` is neither a string nor callable.

    Examples:
        >>> phi_q, phi_k = feature_map_pair(torch.zeros(1, 3, 2), torch.zeros(1, 3, 2), "elu")
        >>> phi_q[0, 0]
        tensor([1., 1.])
    """
    if callable(feature_map):
        phi_q, phi_k = feature_map(q), feature_map(k)
        if phi_q.shape != q.shape or phi_k.shape != k.shape:
            raise ValueError(
                f"a feature_map callable must keep the shape, got {tuple(q.shape)} -> {tuple(phi_q.shape)}"
            )
        return phi_q, phi_k
    if not isinstance(feature_map, str):
        raise TypeError(f"feature_map must be a name or a callable, got {type(feature_map).__name__}")
    if feature_map == "elu":
        return F.elu(q) + 1, F.elu(k) + 1  # elu(x) + 1 > 0
    if feature_map == "relu":
        return F.relu(q), F.relu(k)
    if feature_map == "identity":
        return q, k
    if feature_map == "softmax":
        return q.softmax(dim=-1), k.softmax(dim=-2)  # q over features, k over the sequence
    raise ValueError(f"feature_map must be one of {list(FEATURE_MAPS)} or a callable, got {feature_map!r}")


@export("attention.linear_attention")
def linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = True,
    feature_map: str | Callable[[torch.Tensor], torch.Tensor] = "elu",
    normalize: bool = True,
    method: str = "chunked",
    chunk_size: int = 64,
    initial_state: LinearAttentionState | tuple | None = None,
    return_final_state: bool = False,
    rope_positions: torch.Tensor | None = None,
    eps: float = 1e-6,
) -> torch.Tensor | tuple[torch.Tensor, LinearAttentionState]:
    """Linear attention :math:`O_i = \\phi(q_i) S_i / (\\phi(q_i) \\cdot z_i + \\varepsilon)`.

    With ``causal=True`` query ``i`` sees keys ``j <= i`` (plus whatever ``initial_state``
    summarises); with ``causal=False`` it sees all keys. ``feature_map="identity"`` with
    ``normalize=False`` is plain :math:`(QK^\\top)V` (masked when causal). Without
    ``normalize`` the output is just the numerator :math:`\\phi(q_i) S_i`.

    Methods give the same numbers (up to rounding) at different costs: ``"quadratic"``
    builds the masked :math:`N \\times N` matrix; ``"recurrent"`` loops over tokens;
    ``"cumsum"`` stores every prefix state; ``"chunked"`` (default) is quadratic inside
    chunks and carries the state across them; ``"triton"`` is the chunked algorithm as a
    fused kernel (fp32/fp16, ``chunk_size`` 16, 32 or 64, ``head_dim`` and
    ``value_dim`` <= 128, CUDA tensors, or CPU ones under Triton's interpreter). Without
    a causal mask there is nothing to scan: every method but ``"quadratic"`` computes
    :math:`\\phi(Q)(\\phi(K)^\\top V)` with two matrix products.

    Shape:
        q: ``(batch, heads, seq_q, head_dim)``; k: ``(batch, kv_heads, seq_k, head_dim)``;
        v: ``(batch, kv_heads, seq_k, value_dim)``; ``heads`` a multiple of ``kv_heads``;
        ``seq_q == seq_k`` when causal. Output: ``(batch, heads, seq_q, value_dim)``.
        rope_positions: ``(seq,)`` or broadcastable to ``(batch, heads, seq)``.

    Args:
        q: Queries.
        k: Keys.
        v: Values.
        causal: Mask future keys.
        feature_map: ``"elu"`` (elu + 1), ``"relu"``, ``"identity"``, ``"softmax"`` (the
            Efficient-Attention variant; non-causal only, since its key softmax runs over
            the whole sequence) or a callable applied to ``q`` and ``k``.
        normalize: Divide by :math:`\\phi(q_i) \\cdot z_i + \\varepsilon`.
        method: One of :data:`METHODS`.
        chunk_size: Tokens per chunk for ``"chunked"`` and ``"triton"`` (``>= 1``; any
            value works for ``"chunked"``, whatever the sequence length).
        initial_state: The state after earlier tokens, as returned with
            ``return_final_state=True``; ``None`` means no earlier tokens.
        return_final_state: Also return the state after the last key.
        rope_positions: If given, rotate :math:`\\phi(q)` and :math:`\\phi(k)` by RoPE at
            these positions in the numerator only (``head_dim`` must be even; causal
            attention needs ``seq_q == seq_k``, which is checked anyway). To resume a
            sequence, pass the absolute positions of the new piece.
        eps: Added to the denominator (guards against zero with ``"relu"``).

    Returns:
        The output (dtype of ``q``), or ``(output, final_state)`` with a
        :class:`LinearAttentionState`.

    Raises:
        TypeError: As :func:`~dlnotes.attention.sdpa.check_attention_inputs`; if
            ``chunk_size`` is not an int; ``feature_map`` is neither a name nor a
            callable; ``initial_state`` is not a ``(kv, k_sum)`` pair of tensors of the
            dtype of ``q``; ``rope_positions`` is not a tensor.
        ValueError: As :func:`~dlnotes.attention.sdpa.check_attention_inputs`; if
            ``method`` or ``feature_map`` is unknown; ``chunk_size < 1``; causal with
            ``seq_q != seq_k``; ``"softmax"`` with ``causal=True`` or an
            ``initial_state``; ``initial_state`` has the wrong shape, device, or lacks
            ``k_sum`` when ``normalize=True``; ``eps < 0``; ``rope_positions`` does not
            broadcast or ``head_dim`` is odd (as :func:`~dlnotes.attention.rope.apply_rope`);
            a ``"triton"`` constraint fails (see
            :func:`~dlnotes.attention.linear_triton.causal_linear_product`).

    Examples:
        >>> q = k = v = torch.randn(1, 2, 10, 8)
        >>> out, state = linear_attention(q, k, v, return_final_state=True)
        >>> out.shape, state.kv.shape, state.k_sum.shape
        (torch.Size([1, 2, 10, 8]), torch.Size([1, 2, 8, 8]), torch.Size([1, 2, 8]))
    """
    shape = check_attention_inputs(q, k, v)
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise TypeError(f"chunk_size must be an int, got {type(chunk_size).__name__}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if isinstance(feature_map, str) and feature_map not in FEATURE_MAPS:
        raise ValueError(f"feature_map must be one of {list(FEATURE_MAPS)} or a callable, got {feature_map!r}")
    if causal and shape.seq_q != shape.seq_k:
        raise ValueError(
            f"causal linear attention needs seq_q == seq_k (one token per step), got {shape.seq_q} and {shape.seq_k}"
        )
    if feature_map == "softmax" and (causal or initial_state is not None):
        raise ValueError(
            "feature_map='softmax' normalises keys over the whole sequence, so it needs causal=False "
            "and no initial_state"
        )
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    kv0, z0 = _check_state(initial_state, shape, normalize, q)

    phi_q, phi_k = feature_map_pair(q, k, feature_map)
    n_rep = shape.heads // shape.kv_heads
    phi_k, v = repeat_kv(phi_k, n_rep), repeat_kv(v, n_rep)  # GQA: one copy per query head
    if rope_positions is not None:
        rot_q, rot_k = apply_rope(phi_q, rope_positions), apply_rope(phi_k, rope_positions)  # numerator only
    else:
        rot_q, rot_k = phi_q, phi_k

    numerator, kv = _product(rot_q, rot_k, v, kv0, causal, method, chunk_size)  # phi(q_i) S_i
    if not (normalize or return_final_state):
        return numerator
    ones = v.new_ones(*v.shape[:-1], 1)  # the denominator is the same product with v_j = 1
    z0_column = None if z0 is None else z0.unsqueeze(-1)
    denominator, z = _product(phi_q, phi_k, ones, z0_column, causal, method, chunk_size)  # phi(q_i) . z_i
    out = numerator / (denominator + eps) if normalize else numerator
    if not return_final_state:
        return out
    return out, LinearAttentionState(kv, z.squeeze(-1))


# ----------------------------------------------------------------------------- the four forms


def _product(q, k, v, state, causal, method, chunk_size):
    """``(out, final_state)`` of the product ``out_i = q_i (state + sum_{j (<=i)} k_j^T v_j)``."""
    if method == "quadratic":
        return _quadratic(q, k, v, state, causal)
    if not causal:
        return _noncausal(q, k, v, state)
    if method == "recurrent":
        return _recurrent(q, k, v, state)
    if method == "cumsum":
        return _cumsum(q, k, v, state)
    if method == "chunked":
        return _chunked(q, k, v, state, chunk_size)
    from dlnotes.attention.linear_triton import causal_linear_product  # imports triton only when asked

    return causal_linear_product(q, k, v, state, chunk_size=chunk_size)


def _final_state(k, v, state):
    kv = k.transpose(-2, -1) @ v  # sum_j k_j^T v_j: (b, h, d, e)
    return kv if state is None else state + kv


def _quadratic(q, k, v, state, causal):
    weights = q @ k.transpose(-2, -1)  # A_ij = q_i . k_j: (b, h, n, n)
    if causal:
        weights = weights.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], q.device), 0.0)  # j <= i
    out = weights @ v  # (A o M) V
    if state is not None:
        out = out + q @ state  # what the earlier tokens contribute
    return out, _final_state(k, v, state)


def _noncausal(q, k, v, state):
    total = _final_state(k, v, state)  # S = S_0 + K^T V: (b, h, d, e), O(N d e)
    return q @ total, total  # O = Q S: O(N d e)


def _recurrent(q, k, v, state):
    kv = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1]) if state is None else state
    out = v.new_empty(*q.shape[:-1], v.shape[-1])
    for t in range(q.shape[-2]):
        kv = kv + k[..., t, :, None] * v[..., t, None, :]  # S_t = S_{t-1} + k_t^T v_t
        out[..., t, :] = (q[..., t, None, :] @ kv).squeeze(-2)  # o_t = q_t S_t
    return out, kv


def _cumsum(q, k, v, state):
    states = (k.unsqueeze(-1) * v.unsqueeze(-2)).cumsum(dim=-3)  # S_t for every t: (b, h, n, d, e)
    if state is not None:
        states = states + state.unsqueeze(-3)
    out = (q.unsqueeze(-2) @ states).squeeze(-2)  # o_t = q_t S_t
    return out, states[..., -1, :, :]


def _chunked(q, k, v, state, chunk_size):
    batch, heads, n, d = q.shape
    e = v.shape[-1]
    c = min(chunk_size, n)
    chunks = -(-n // c)  # ceil(n / c)
    pad = chunks * c - n  # zero keys and values add nothing to any state; padded queries are cut off
    q, k, v = (F.pad(x, (0, 0, 0, pad)).view(batch, heads, chunks, c, x.shape[-1]) for x in (q, k, v))
    chunk_kv = k.transpose(-2, -1) @ v  # K_c^T V_c: (b, h, chunks, d, e)
    before = chunk_kv.cumsum(dim=2) - chunk_kv  # exclusive prefix sum: state entering chunk c
    if state is not None:
        before = before + state.unsqueeze(2)
    inside = (q @ k.transpose(-2, -1)).masked_fill(~causal_mask(c, c, q.device), 0.0)  # tril(Q_c K_c^T)
    out = inside @ v + q @ before  # intra-chunk (quadratic in c) + inter-chunk (through the state)
    final = before[:, :, -1] + chunk_kv[:, :, -1]
    return out.reshape(batch, heads, chunks * c, e)[:, :, :n], final


# ----------------------------------------------------------------------------- checks


def _check_state(initial_state, shape, normalize, q):
    """Validate ``initial_state``; return ``(kv, k_sum)`` (either may be ``None``)."""
    if initial_state is None:
        return None, None
    if not isinstance(initial_state, tuple) or len(initial_state) != 2:
        raise TypeError(
            f"initial_state must be a LinearAttentionState (kv, k_sum) or None, got {type(initial_state).__name__}"
        )
    kv, k_sum = initial_state
    expected = {
        "kv": (shape.batch, shape.heads, shape.head_dim, shape.value_dim),
        "k_sum": (shape.batch, shape.heads, shape.head_dim),
    }
    for name, tensor in (("kv", kv), ("k_sum", k_sum)):
        if tensor is None:
            if name == "kv" or normalize:
                raise ValueError(f"initial_state.{name} is required{' when normalize=True' * (name == 'k_sum')}")
            continue
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"initial_state.{name} must be a torch.Tensor, got {type(tensor).__name__}")
        if tuple(tensor.shape) != expected[name]:
            raise ValueError(
                f"initial_state.{name} must have shape (batch, heads, {'head_dim, value_dim' if name == 'kv' else 'head_dim'})"
                f" = {expected[name]}, got {tuple(tensor.shape)}"
            )
        if tensor.dtype != q.dtype:
            raise TypeError(f"initial_state.{name} must have the dtype of q ({q.dtype}), got {tensor.dtype}")
        if tensor.device != q.device:
            raise ValueError(f"initial_state.{name} must be on the device of q ({q.device}), got {tensor.device}")
    return kv, k_sum
