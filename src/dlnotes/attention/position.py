"""Position encodings for attention: absolute, relative, ALiBi and the unconventional ones.

Survey: Su Jianlin, "让研究人员绞尽脑汁的Transformer位置编码" (Transformer position
encodings that had researchers racking their brains), kexue.fm, 2021.

Attention without positions is permutation-equivariant: permuting the tokens permutes
the outputs and changes nothing else. Two families repair this.

* **Absolute** encodings change the *inputs*: token :math:`k` enters as
  :math:`x_k + p_k` (or :math:`x_k \\odot p_k`). :func:`sinusoidal_positions`,
  :class:`LearnedPositions`, :class:`RecurrentPositions`, :func:`inject_positions`.
* **Relative** encodings change the *attention logits* so that they see only the offset
  between query and key. :func:`shaw_relative_logits` (Shaw et al.),
  :func:`xl_relative_logits` (Transformer-XL / XLNet), :func:`t5_relative_bucket` and
  :class:`T5RelativeBias` (T5), :func:`deberta_logits` (DeBERTa), :func:`alibi_bias`
  (ALiBi).
* **Others**: position from zero padding (:class:`ConvolutionalPositions`), complex
  embeddings whose phase turns with position (:class:`ComplexOrderEmbedding`); RoPE,
  which fuses the two families, lives in :mod:`dlnotes.attention.rope`.

Conventions. Tensors are ``(batch, heads, seq, head_dim)`` as in
:mod:`dlnotes.attention.sdpa`. Positions default to the bottom-right alignment of
:func:`dlnotes.attention.sdpa.causal_mask`: key ``j`` sits at position ``j`` and query
``i`` at ``i + seq_k - seq_q``. The *relative position* of a key seen from a query is
``key_position - query_position`` (negative for the past). Logit functions return raw
logits, before the softmax scale; :func:`softmax_attention` turns scaled logits into
outputs, and schemes that are a pure additive bias (T5, ALiBi) go through
:func:`dlnotes.attention.sdpa.attention_reference` with the bias as a float ``mask``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlnotes._checks import check_int
from dlnotes.attention.sdpa import causal_mask, check_attention_inputs, repeat_kv
from dlnotes.foundations.api_export import export

__all__ = [
    "ComplexOrderEmbedding",
    "ConvolutionalPositions",
    "LearnedPositions",
    "RecurrentPositions",
    "ShawRelativeAttention",
    "T5RelativeBias",
    "alibi_bias",
    "alibi_slopes",
    "clipped_relative_index",
    "deberta_logits",
    "inject_positions",
    "relative_positions",
    "shaw_relative_logits",
    "shaw_relative_values",
    "sinusoidal_encoding",
    "sinusoidal_positions",
    "sinusoidal_shift_matrix",
    "softmax_attention",
    "t5_relative_bucket",
    "xl_relative_logits",
]


# ----------------------------------------------------------------------------- absolute


def sinusoidal_encoding(positions: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """Sinusoidal vectors of arbitrary (integer or real, possibly negative) positions.

    .. math::

        p_{k, 2i} = \\sin(k\\,\\omega_i), \\qquad p_{k, 2i+1} = \\cos(k\\,\\omega_i), \\qquad
        \\omega_i = \\text{base}^{-2i/\\text{dim}}.

    Angles are computed in fp64 (fp32 loses digits of :math:`k\\omega_i` for large
    :math:`k`) and returned as fp32.

    Shape:
        positions: ``(...)``; result: ``(..., dim)``, fp32.

    Args:
        positions: Positions :math:`k`.
        dim: Encoding size (positive, even).
        base: Frequency base (10000 in Vaswani et al.).

    Returns:
        The encodings.

    Raises:
        TypeError: If ``positions`` is not a tensor or ``dim`` is not an int.
        ValueError: If ``dim`` is not positive and even or ``base <= 1``.

    Examples:
        >>> sinusoidal_encoding(torch.tensor([0]), 4)
        tensor([[0., 1., 0., 1.]])
    """
    if not isinstance(positions, torch.Tensor):
        raise TypeError(f"positions must be a torch.Tensor, got {type(positions).__name__}")
    _check_even_dim(dim, "dim")
    _check_base(base)
    omega = base ** (-torch.arange(0, dim, 2, dtype=torch.float64, device=positions.device) / dim)  # omega_i
    angles = positions.to(torch.float64)[..., None] * omega  # k * omega_i: (..., dim/2)
    # interleave: channel 2i = sin, channel 2i+1 = cos
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2).to(torch.float32)


@export("attention.sinusoidal_positions")
def sinusoidal_positions(seq_len: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """The sinusoidal table of Vaswani et al. for positions ``0 .. seq_len - 1``.

    Shape:
        result: ``(seq_len, dim)``, fp32.

    Args:
        seq_len: Number of positions (``>= 1``).
        dim: Model width (positive, even).
        base: Frequency base.

    Returns:
        Row ``k`` is :math:`p_k` (see :func:`sinusoidal_encoding`).

    Raises:
        TypeError: If ``seq_len`` or ``dim`` is not an int.
        ValueError: If ``seq_len < 1``, ``dim`` is not positive and even, or ``base <= 1``.

    Examples:
        >>> sinusoidal_positions(3, 8).shape
        torch.Size([3, 8])
    """
    check_int(seq_len, "seq_len", 1)
    return sinusoidal_encoding(torch.arange(seq_len), dim, base)


def sinusoidal_shift_matrix(shift: int | float, dim: int, base: float = 10000.0) -> torch.Tensor:
    """The matrix :math:`M_k` with :math:`p_{m+k} = M_k\\,p_m` for every position :math:`m`.

    Each channel pair :math:`(\\sin m\\omega_i, \\cos m\\omega_i)` is rotated by the
    angle :math:`k\\omega_i`, because
    :math:`\\sin(a+b) = \\sin a\\cos b + \\cos a\\sin b` and
    :math:`\\cos(a+b) = \\cos a\\cos b - \\sin a\\sin b`; so :math:`M_k` is block
    diagonal with blocks :math:`\\begin{pmatrix}\\cos k\\omega_i & \\sin k\\omega_i\\\\
    -\\sin k\\omega_i & \\cos k\\omega_i\\end{pmatrix}`, independent of :math:`m`.

    Shape:
        result: ``(dim, dim)``, fp32.

    Args:
        shift: The offset :math:`k`.
        dim: Encoding size (positive, even).
        base: Frequency base.

    Returns:
        :math:`M_k`.

    Raises:
        TypeError: If ``shift`` is not a real number or ``dim`` is not an int.
        ValueError: If ``dim`` is not positive and even or ``base <= 1``.

    Examples:
        >>> m = sinusoidal_shift_matrix(3, 8)
        >>> p = sinusoidal_positions(10, 8)
        >>> torch.allclose(p[2] @ m.T, p[5], atol=1e-6)
        True
    """
    if isinstance(shift, bool) or not isinstance(shift, (int, float)):
        raise TypeError(f"shift must be a real number, got {type(shift).__name__}")
    _check_even_dim(dim, "dim")
    _check_base(base)
    omega = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    cos, sin = torch.cos(shift * omega), torch.sin(shift * omega)
    blocks = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # (dim/2, 2, 2)
    return torch.block_diag(*blocks).to(torch.float32)


def inject_positions(x: torch.Tensor, positions: torch.Tensor, mode: str = "add") -> torch.Tensor:
    """Combine token vectors with absolute position vectors: :math:`x_k + p_k` or :math:`x_k \\odot p_k`.

    Shape:
        x: ``(..., seq, dim)``; positions: ``(seq_max, dim)`` with ``seq_max >= seq``
        (rows ``0 .. seq - 1`` are used) or broadcastable to ``x``; result: like ``x``.

    Args:
        x: Token vectors.
        positions: Position vectors (a table or an already-aligned tensor).
        mode: ``"add"`` (the usual choice) or ``"multiply"`` (the multiplicative variant).

    Returns:
        ``x + p`` or ``x * p``.

    Raises:
        TypeError: If an input is not a floating tensor.
        ValueError: If ``mode`` is unknown, ``x`` has fewer than 2 dims, the widths
            differ, or the table has fewer rows than ``x`` has positions.

    Examples:
        >>> inject_positions(torch.zeros(2, 3, 4), sinusoidal_positions(8, 4))[0, 0]
        tensor([0., 1., 0., 1.])
    """
    _check_float_tensor(x, "x")
    _check_float_tensor(positions, "positions")
    if mode not in ("add", "multiply"):
        raise ValueError(f"mode must be 'add' or 'multiply', got {mode!r}")
    if x.dim() < 2:
        raise ValueError(f"x must have shape (..., seq, dim), got {tuple(x.shape)}")
    seq, dim = x.shape[-2:]
    if positions.shape[-1] != dim:
        raise ValueError(f"positions must have width {dim} (last dim of x), got shape {tuple(positions.shape)}")
    if positions.dim() == 2:
        if positions.shape[0] < seq:
            raise ValueError(f"positions has {positions.shape[0]} rows but x has {seq} positions")
        positions = positions[:seq]
    positions = positions.to(x.dtype)
    return x + positions if mode == "add" else x * positions


class LearnedPositions(nn.Module):
    """Trained absolute positions (BERT, GPT): a table of ``max_len`` free vectors.

    The table is a parameter like any embedding; it knows nothing beyond ``max_len``,
    so longer inputs raise an error (this encoding cannot extrapolate).

    Args:
        max_len: Number of positions in the table.
        dim: Model width.
        init_std: Standard deviation of the normal initialisation (0.02 as in BERT/GPT-2).
        generator: Random generator for the initialisation.

    Examples:
        >>> layer = LearnedPositions(16, 8, generator=torch.Generator().manual_seed(0))
        >>> layer(torch.zeros(2, 5, 8)).shape
        torch.Size([2, 5, 8])
    """

    def __init__(
        self, max_len: int, dim: int, init_std: float = 0.02, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        check_int(max_len, "max_len", 1)
        check_int(dim, "dim", 1)
        self.max_len, self.dim = max_len, dim
        self.table = nn.Parameter(torch.randn(max_len, dim, generator=generator) * init_std)

    def forward(self, x: torch.Tensor, mode: str = "add") -> torch.Tensor:
        """Return ``x + p`` (or ``x * p``) for ``x`` of shape ``(..., seq, dim)`` with ``seq <= max_len``."""
        _check_float_tensor(x, "x")
        if x.dim() >= 2 and x.shape[-2] > self.max_len:
            raise ValueError(f"sequence length {x.shape[-2]} exceeds max_len={self.max_len} of the learned table")
        return inject_positions(x, self.table, mode)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, dim={self.dim}"


class RecurrentPositions(nn.Module):
    """Absolute positions generated by a recurrence :math:`p_{k+1} = f(p_k)` (FLOATER's idea, with an RNN).

    :math:`p_0` is learned and :math:`f` is a GRU cell driven by a learned constant
    input, :math:`f(p) = \\mathrm{GRUCell}(c, p)`. Any length can be generated (no
    table to run out of), at the cost of a sequential loop over positions.

    Args:
        dim: Model width.
        generator: Random generator for the initialisation.

    Examples:
        >>> gen = RecurrentPositions(8, generator=torch.Generator().manual_seed(0))
        >>> gen.positions(5).shape
        torch.Size([5, 8])
    """

    def __init__(self, dim: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        check_int(dim, "dim", 1)
        self.dim = dim
        self.cell = nn.GRUCell(dim, dim)
        bound = 1.0 / math.sqrt(dim)
        with torch.no_grad():  # re-initialise from `generator` so the module is reproducible
            for parameter in self.cell.parameters():
                parameter.copy_((torch.rand(parameter.shape, generator=generator) * 2 - 1) * bound)
        self.start = nn.Parameter(torch.randn(dim, generator=generator))  # p_0
        self.drive = nn.Parameter(torch.randn(dim, generator=generator))  # constant input c

    def step(self, p: torch.Tensor) -> torch.Tensor:
        """One application of :math:`f`: ``p`` of shape ``(..., dim)`` to :math:`f(p)`."""
        flat = p.reshape(-1, self.dim)
        return self.cell(self.drive.expand_as(flat), flat).reshape(p.shape)

    def positions(self, seq_len: int) -> torch.Tensor:
        """The vectors :math:`p_0, \\dots, p_{\\text{seq\\_len}-1}` as a ``(seq_len, dim)`` tensor."""
        check_int(seq_len, "seq_len", 1)
        rows = [self.start]
        for _ in range(seq_len - 1):
            rows.append(self.step(rows[-1]))  # p_{k+1} = f(p_k)
        return torch.stack(rows)

    def forward(self, x: torch.Tensor, mode: str = "add") -> torch.Tensor:
        """Return ``x + p`` (or ``x * p``) for ``x`` of shape ``(..., seq, dim)``."""
        _check_float_tensor(x, "x")
        if x.dim() < 2:
            raise ValueError(f"x must have shape (..., seq, dim), got {tuple(x.shape)}")
        return inject_positions(x, self.positions(x.shape[-2]), mode)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


# ----------------------------------------------------------------------------- relative


def relative_positions(
    seq_q: int,
    seq_k: int,
    q_positions: torch.Tensor | None = None,
    k_positions: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The matrix of relative positions ``key_position - query_position``.

    Without explicit positions, key ``j`` is at ``j`` and query ``i`` at
    ``i + seq_k - seq_q`` (the alignment of :func:`~dlnotes.attention.sdpa.causal_mask`).

    Shape:
        q_positions: ``(seq_q,)``; k_positions: ``(seq_k,)``; result: ``(seq_q, seq_k)``, int64.

    Args:
        seq_q: Number of queries (``>= 1``).
        seq_k: Number of keys (``>= 1``).
        q_positions: Optional integer positions of the queries.
        k_positions: Optional integer positions of the keys.
        device: Device of the default positions.

    Returns:
        ``R[i, j] = k_positions[j] - q_positions[i]``.

    Raises:
        TypeError: If a length is not an int or given positions are not an integer tensor.
        ValueError: If a length is < 1 or given positions have the wrong shape.

    Examples:
        >>> relative_positions(2, 3)
        tensor([[-1,  0,  1],
                [-2, -1,  0]])
    """
    check_int(seq_q, "seq_q", 1)
    check_int(seq_k, "seq_k", 1)
    if q_positions is None:
        q_positions = torch.arange(seq_q, device=device) + (seq_k - seq_q)
    if k_positions is None:
        k_positions = torch.arange(seq_k, device=device)
    for name, value, length in (("q_positions", q_positions, seq_q), ("k_positions", k_positions, seq_k)):
        _check_integer_tensor(value, name)
        if value.shape != (length,):
            raise ValueError(f"{name} must have shape ({length},), got {tuple(value.shape)}")
    return k_positions.long()[None, :] - q_positions.long()[:, None]


def clipped_relative_index(relative: torch.Tensor, max_distance: int) -> torch.Tensor:
    """Shaw et al.'s index: ``clip(relative, -max_distance, max_distance) + max_distance``.

    Shape:
        relative: any integer shape; result: same shape, values in ``[0, 2 max_distance]``.

    Args:
        relative: Relative positions (``key - query``).
        max_distance: The clipping distance :math:`K` (``>= 1``).

    Returns:
        Row indices into a table of :math:`2K + 1` relative embeddings.

    Raises:
        TypeError: If ``relative`` is not an integer tensor or ``max_distance`` is not an int.
        ValueError: If ``max_distance < 1``.

    Examples:
        >>> clipped_relative_index(torch.tensor([-5, -1, 0, 3]), 2)
        tensor([0, 1, 2, 4])
    """
    _check_integer_tensor(relative, "relative")
    check_int(max_distance, "max_distance", 1)
    return relative.clamp(-max_distance, max_distance) + max_distance


def shaw_relative_logits(
    q: torch.Tensor,
    k: torch.Tensor,
    rel_emb: torch.Tensor,
    max_distance: int,
    q_positions: torch.Tensor | None = None,
    k_positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Shaw et al.'s logits :math:`e_{ij} = q_i \\cdot (k_j + a^K_{\\mathrm{clip}(j-i, K)})` (unscaled).

    Shape:
        q: ``(batch, heads, seq_q, d)``; k: ``(batch, kv_heads, seq_k, d)``;
        rel_emb: ``(2 * max_distance + 1, d)`` (shared by all heads, as in the paper) or
        ``(heads, 2 * max_distance + 1, d)``; result: ``(batch, heads, seq_q, seq_k)``.

    Args:
        q: Queries.
        k: Keys.
        rel_emb: The key-side relative embeddings :math:`a^K_{-K}, \\dots, a^K_{K}`.
        max_distance: The clipping distance :math:`K`.
        q_positions: Optional query positions (see :func:`relative_positions`).
        k_positions: Optional key positions.

    Returns:
        The logits, to be multiplied by the softmax scale :math:`1/\\sqrt{d}`.

    Raises:
        TypeError: If inputs are not floating tensors of one dtype.
        ValueError: If shapes do not fit the above.

    Examples:
        >>> q = k = torch.randn(1, 2, 5, 4)
        >>> shaw_relative_logits(q, k, torch.randn(7, 4), 3).shape
        torch.Size([1, 2, 5, 5])
    """
    shape = check_attention_inputs(q, k, k)
    _check_max_distance(max_distance)
    table = _check_relative_table(rel_emb, "rel_emb", shape.heads, 2 * max_distance + 1, shape.head_dim, q)
    index = clipped_relative_index(
        relative_positions(shape.seq_q, shape.seq_k, q_positions, k_positions, q.device), max_distance
    )
    content = q @ repeat_kv(k, shape.heads // shape.kv_heads).transpose(-2, -1)  # q_i . k_j
    q_rel = q @ table.transpose(-2, -1)  # q_i . a_r for every r: (b, h, seq_q, 2K+1)
    position = torch.gather(q_rel, -1, index.expand(*q_rel.shape[:2], -1, -1))  # q_i . a_{clip(j-i)}
    return content + position


def shaw_relative_values(
    weights: torch.Tensor,
    rel_emb_v: torch.Tensor,
    max_distance: int,
    q_positions: torch.Tensor | None = None,
    k_positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """The value-side term of Shaw et al.: :math:`\\sum_j \\alpha_{ij}\\, a^V_{\\mathrm{clip}(j-i, K)}`.

    Attention weights that share a clipped offset are summed into :math:`2K+1` bins
    first, so the cost is ``seq_q * (seq_k + (2K+1) * d)`` rather than ``seq_q * seq_k * d``.

    Shape:
        weights: ``(batch, heads, seq_q, seq_k)``; rel_emb_v: ``(2K+1, d_v)`` or
        ``(heads, 2K+1, d_v)``; result: ``(batch, heads, seq_q, d_v)``.

    Args:
        weights: Attention probabilities :math:`\\alpha_{ij}`.
        rel_emb_v: Value-side relative embeddings :math:`a^V_{-K}, \\dots, a^V_{K}`.
        max_distance: The clipping distance :math:`K`.
        q_positions: Optional query positions.
        k_positions: Optional key positions.

    Returns:
        The term to add to :math:`\\sum_j \\alpha_{ij} v_j`.

    Raises:
        TypeError: If inputs are not floating tensors of one dtype.
        ValueError: If shapes do not fit the above.

    Examples:
        >>> w = torch.full((1, 1, 2, 2), 0.5)
        >>> shaw_relative_values(w, torch.eye(3), 1)
        tensor([[[[0.0000, 0.5000, 0.5000],
                  [0.5000, 0.5000, 0.0000]]]])
    """
    _check_float_tensor(weights, "weights")
    if weights.dim() != 4:
        raise ValueError(f"weights must be 4-D (batch, heads, seq_q, seq_k), got shape {tuple(weights.shape)}")
    _check_max_distance(max_distance)
    batch, heads, seq_q, seq_k = weights.shape
    n_rel = 2 * max_distance + 1
    dim_v = rel_emb_v.shape[-1] if isinstance(rel_emb_v, torch.Tensor) and rel_emb_v.dim() else 0
    table = _check_relative_table(rel_emb_v, "rel_emb_v", heads, n_rel, dim_v, weights)
    relative = relative_positions(seq_q, seq_k, q_positions, k_positions, weights.device)
    index = clipped_relative_index(relative, max_distance)
    binned = weights.new_zeros(batch, heads, seq_q, n_rel)
    binned.scatter_add_(-1, index.expand(batch, heads, -1, -1), weights)  # sum of alpha_ij per clipped offset
    return binned @ table  # (b, h, seq_q, 2K+1) @ (.., 2K+1, d_v)


@export("attention.ShawRelativeAttention")
class ShawRelativeAttention(nn.Module):
    """Attention with Shaw et al.'s clipped relative embeddings on both keys and values.

    .. math::

        e_{ij} = \\frac{q_i\\cdot(k_j + a^K_{ij})}{\\sqrt d}, \\qquad
        o_i = \\sum_j \\alpha_{ij}(v_j + a^V_{ij}), \\qquad a_{ij} = a_{\\mathrm{clip}(j-i, K)}.

    The module holds only the two tables (shared across heads); the projections to
    ``q, k, v`` belong to the surrounding layer.

    Args:
        head_dim: Size of queries and keys.
        max_distance: The clipping distance :math:`K` (4 or 16 in the paper).
        value_dim: Size of values (defaults to ``head_dim``).
        init_std: Standard deviation of the tables' initialisation.
        generator: Random generator for the initialisation.

    Examples:
        >>> layer = ShawRelativeAttention(8, 2, generator=torch.Generator().manual_seed(0))
        >>> q = torch.randn(1, 2, 5, 8)
        >>> layer(q, q, q, causal=True).shape
        torch.Size([1, 2, 5, 8])
    """

    def __init__(
        self,
        head_dim: int,
        max_distance: int,
        value_dim: int | None = None,
        init_std: float = 0.02,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_int(head_dim, "head_dim", 1)
        _check_max_distance(max_distance)
        value_dim = head_dim if value_dim is None else value_dim
        check_int(value_dim, "value_dim", 1)
        self.max_distance = max_distance
        n_rel = 2 * max_distance + 1
        self.rel_k = nn.Parameter(torch.randn(n_rel, head_dim, generator=generator) * init_std)
        self.rel_v = nn.Parameter(torch.randn(n_rel, value_dim, generator=generator) * init_std)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        causal: bool = False,
        mask: torch.Tensor | None = None,
        q_positions: torch.Tensor | None = None,
        k_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend: ``q (b, h, seq_q, d)``, ``k``/``v (b, kvh, seq_k, d | d_v)`` -> ``(b, h, seq_q, d_v)``.

        ``mask`` (bool or additive float) and ``causal`` act as in
        :func:`~dlnotes.attention.sdpa.attention_reference`; positions as in :func:`relative_positions`.
        """
        shape = check_attention_inputs(q, k, v)
        logits = shaw_relative_logits(q, k, self.rel_k, self.max_distance, q_positions, k_positions)
        weights = softmax_attention(logits / math.sqrt(shape.head_dim), None, mask=mask, causal=causal)
        out = weights @ repeat_kv(v, shape.heads // shape.kv_heads)
        return out + shaw_relative_values(weights, self.rel_v, self.max_distance, q_positions, k_positions)

    def extra_repr(self) -> str:
        return f"max_distance={self.max_distance}, head_dim={self.rel_k.shape[1]}, value_dim={self.rel_v.shape[1]}"


@export("attention.xl_relative_logits")
def xl_relative_logits(
    q: torch.Tensor,
    k: torch.Tensor,
    u_bias: torch.Tensor,
    v_bias: torch.Tensor,
    w_rel: torch.Tensor,
    base: float = 10000.0,
    q_positions: torch.Tensor | None = None,
    k_positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Transformer-XL / XLNet logits: content, content-position, and two global biases (unscaled).

    With :math:`r_{i-j}` the sinusoidal vector of the offset *query minus key* and
    :math:`W_R` its per-head projection,

    .. math::

        e_{ij} = \\underbrace{q_i\\cdot k_j}_{(a)} + \\underbrace{q_i\\cdot W_R^\\top r_{i-j}}_{(b)}
               + \\underbrace{u\\cdot k_j}_{(c)} + \\underbrace{v\\cdot W_R^\\top r_{i-j}}_{(d)}.

    Only the :math:`\\text{seq\\_q} + \\text{seq\\_k} - 1` distinct offsets are
    projected; the :math:`(i, j)` matrix is gathered from them.

    Shape:
        q: ``(batch, heads, seq_q, d)``; k: ``(batch, kv_heads, seq_k, d)``;
        u_bias, v_bias: ``(heads, d)``; w_rel: ``(heads, rel_dim, d)`` (``rel_dim`` even);
        result: ``(batch, heads, seq_q, seq_k)``.

    Args:
        q: Queries.
        k: Keys.
        u_bias: The global content bias :math:`u` (replaces :math:`W_Q^\\top p_i` in term c).
        v_bias: The global position bias :math:`v` (replaces :math:`W_Q^\\top p_i` in term d).
        w_rel: The projection :math:`W_R` of the relative sinusoids.
        base: Frequency base of the sinusoids.
        q_positions: Optional query positions.
        k_positions: Optional key positions.

    Returns:
        The logits, to be multiplied by :math:`1/\\sqrt d`.

    Raises:
        TypeError: If inputs are not floating tensors of one dtype.
        ValueError: If shapes do not fit the above.

    Examples:
        >>> q = k = torch.randn(1, 2, 5, 4)
        >>> xl_relative_logits(q, k, torch.zeros(2, 4), torch.zeros(2, 4), torch.randn(2, 6, 4)).shape
        torch.Size([1, 2, 5, 5])
    """
    shape = check_attention_inputs(q, k, k)
    for name, bias in (("u_bias", u_bias), ("v_bias", v_bias)):
        _check_same_float(bias, name, q)
        if bias.shape != (shape.heads, shape.head_dim):
            raise ValueError(
                f"{name} must have shape (heads, head_dim) = {(shape.heads, shape.head_dim)}, got {tuple(bias.shape)}"
            )
    _check_same_float(w_rel, "w_rel", q)
    if w_rel.dim() != 3 or w_rel.shape[0] != shape.heads or w_rel.shape[2] != shape.head_dim or w_rel.shape[1] % 2:
        raise ValueError(
            f"w_rel must have shape (heads, rel_dim, head_dim) = ({shape.heads}, even, {shape.head_dim}), "
            f"got {tuple(w_rel.shape)}"
        )
    offsets = -relative_positions(shape.seq_q, shape.seq_k, q_positions, k_positions, q.device)  # i - j
    distinct, index = torch.unique(offsets, return_inverse=True)  # r is needed only once per offset
    r = sinusoidal_encoding(distinct, w_rel.shape[1]).to(q.dtype)  # (n_off, rel_dim)
    r_proj = torch.einsum("nr,hrd->hnd", r, w_rel)  # W_R^T r for each offset: (h, n_off, d)
    k_full = repeat_kv(k, shape.heads // shape.kv_heads)
    gather_index = index.expand(shape.batch, shape.heads, -1, -1)
    term_a = q @ k_full.transpose(-2, -1)  # q_i . k_j
    term_b = torch.gather(q @ r_proj.transpose(-2, -1), -1, gather_index)  # q_i . W_R^T r_{i-j}
    term_c = torch.einsum("hd,bhjd->bhj", u_bias, k_full)[:, :, None, :]  # u . k_j
    term_d = (r_proj @ v_bias[:, :, None])[:, :, 0][:, index]  # v . W_R^T r_{i-j}: (h, seq_q, seq_k)
    return term_a + term_b + term_c + term_d


@export("attention.t5_relative_bucket")
def t5_relative_bucket(
    relative_position: torch.Tensor,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> torch.Tensor:
    """T5's bucket of each relative position (``key - query``): exact near, logarithmic far.

    With ``n = query - key`` and (bidirectional) half of the buckets for each sign:
    distances :math:`|n| < B/2` get a bucket each (``B`` buckets per direction), and
    :math:`B/2 \\le |n|` get
    :math:`B/2 + \\lfloor \\log(|n| / (B/2)) / \\log(\\text{max\\_distance} / (B/2)) \\cdot B/2 \\rfloor`,
    capped at :math:`B - 1`: every distance from ``max_distance`` on shares the last bucket.
    Unidirectional (decoder) buckets map every future key (``n < 0``) to bucket 0.
    The logarithm is taken in fp32, as in T5, so buckets match pretrained checkpoints.

    Shape:
        relative_position: any integer shape; result: same shape, int64 in ``[0, num_buckets)``.

    Args:
        relative_position: ``key_position - query_position``.
        bidirectional: Separate buckets for keys before and after the query (encoder).
        num_buckets: Total number of buckets (even and ``>= 4`` when bidirectional, ``>= 2`` otherwise).
        max_distance: Distance from which all positions share the last bucket.

    Returns:
        The bucket indices.

    Raises:
        TypeError: If ``relative_position`` is not an integer tensor or an option has the wrong type.
        ValueError: If ``num_buckets`` or ``max_distance`` is out of range.

    Examples:
        >>> t5_relative_bucket(torch.tensor([-3, 0, 3, 200]), num_buckets=8, max_distance=16)
        tensor([2, 0, 6, 7])
    """
    _check_integer_tensor(relative_position, "relative_position")
    if not isinstance(bidirectional, bool):
        raise TypeError(f"bidirectional must be a bool, got {type(bidirectional).__name__}")
    check_int(num_buckets, "num_buckets", 1)
    check_int(max_distance, "max_distance", 1)
    if bidirectional and (num_buckets % 2 or num_buckets < 4):
        raise ValueError(f"num_buckets must be even and >= 4 when bidirectional, got {num_buckets}")
    if num_buckets < 2:
        raise ValueError(f"num_buckets must be >= 2, got {num_buckets}")
    per_side = num_buckets // 2 if bidirectional else num_buckets
    exact = per_side // 2  # distances 0 .. exact-1 get their own bucket
    if max_distance <= exact:
        raise ValueError(
            f"max_distance must exceed the exact range num_buckets//{4 if bidirectional else 2} = {exact}, "
            f"got {max_distance}"
        )

    n = -relative_position.long()  # query - key: positive for keys in the past
    bucket = torch.zeros_like(n)
    if bidirectional:
        bucket = bucket + (n < 0).long() * per_side  # keys in the future use the upper half
        n = n.abs()
    else:
        n = n.clamp(min=0)  # every future key falls into bucket 0
    # log-spaced buckets for exact <= n: exact + floor(log(n/exact) / log(max_distance/exact) * (per_side - exact))
    log_ratio = torch.log(n.float().clamp(min=exact) / exact) / math.log(max_distance / exact)
    far = (exact + (log_ratio * (per_side - exact)).long()).clamp(max=per_side - 1)
    return bucket + torch.where(n < exact, n, far)


@export("attention.T5RelativeBias")
class T5RelativeBias(nn.Module):
    """T5's learned scalar bias per (bucket, head), added to the logits.

    Args:
        heads: Number of attention heads.
        num_buckets: Number of buckets (32 in T5).
        max_distance: Distance of the last bucket (128 in T5).
        bidirectional: ``True`` for encoders, ``False`` for causal decoders.
        init_std: Standard deviation of the initialisation.
        generator: Random generator for the initialisation.

    Examples:
        >>> bias = T5RelativeBias(4, generator=torch.Generator().manual_seed(0))
        >>> bias(3, 5).shape
        torch.Size([1, 4, 3, 5])
    """

    def __init__(
        self,
        heads: int,
        num_buckets: int = 32,
        max_distance: int = 128,
        bidirectional: bool = True,
        init_std: float = 0.02,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_int(heads, "heads", 1)
        t5_relative_bucket(torch.zeros(1, dtype=torch.long), bidirectional, num_buckets, max_distance)  # validates
        self.num_buckets, self.max_distance, self.bidirectional = num_buckets, max_distance, bidirectional
        self.table = nn.Parameter(torch.randn(num_buckets, heads, generator=generator) * init_std)

    def forward(
        self,
        seq_q: int,
        seq_k: int,
        q_positions: torch.Tensor | None = None,
        k_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The bias ``(1, heads, seq_q, seq_k)``, ready for ``attention_reference(..., mask=bias)``."""
        relative = relative_positions(seq_q, seq_k, q_positions, k_positions, self.table.device)
        bucket = t5_relative_bucket(relative, self.bidirectional, self.num_buckets, self.max_distance)
        return self.table[bucket].permute(2, 0, 1)[None]  # (seq_q, seq_k, heads) -> (1, heads, seq_q, seq_k)

    def extra_repr(self) -> str:
        return (
            f"heads={self.table.shape[1]}, num_buckets={self.num_buckets}, "
            f"max_distance={self.max_distance}, bidirectional={self.bidirectional}"
        )


@export("attention.deberta_logits")
def deberta_logits(
    q: torch.Tensor,
    k: torch.Tensor,
    q_rel: torch.Tensor,
    k_rel: torch.Tensor,
    max_distance: int,
    q_positions: torch.Tensor | None = None,
    k_positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """DeBERTa's disentangled logits: content-to-content + content-to-position + position-to-content (unscaled).

    With :math:`\\delta(i, j) = \\mathrm{clip}(i - j, -K, K - 1) + K \\in [0, 2K)`
    (query minus key, shifted),

    .. math::

        e_{ij} = q_i\\cdot k_j + q_i\\cdot k^r_{\\delta(i,j)} + k_j\\cdot q^r_{\\delta(j,i)},

    where :math:`q^r = P W_{q,r}` and :math:`k^r = P W_{k,r}` are the projected
    relative embeddings. The paper scales by :math:`1/\\sqrt{3d}` (three terms).

    Shape:
        q: ``(batch, heads, seq_q, d)``; k: ``(batch, kv_heads, seq_k, d)``;
        q_rel, k_rel: ``(2K, d)`` or ``(heads, 2K, d)``; result: ``(batch, heads, seq_q, seq_k)``.

    Args:
        q: Content queries :math:`Q_c`.
        k: Content keys :math:`K_c`.
        q_rel: Position queries :math:`Q_r` (one row per bucket).
        k_rel: Position keys :math:`K_r`.
        max_distance: :math:`K`, half the number of buckets.
        q_positions: Optional query positions.
        k_positions: Optional key positions.

    Returns:
        The logits.

    Raises:
        TypeError: If inputs are not floating tensors of one dtype.
        ValueError: If shapes do not fit the above.

    Examples:
        >>> q = k = torch.randn(1, 2, 5, 4)
        >>> deberta_logits(q, k, torch.randn(6, 4), torch.randn(6, 4), 3).shape
        torch.Size([1, 2, 5, 5])
    """
    shape = check_attention_inputs(q, k, k)
    _check_max_distance(max_distance)
    n_rel = 2 * max_distance
    q_table = _check_relative_table(q_rel, "q_rel", shape.heads, n_rel, shape.head_dim, q)
    k_table = _check_relative_table(k_rel, "k_rel", shape.heads, n_rel, shape.head_dim, q)
    offset = -relative_positions(shape.seq_q, shape.seq_k, q_positions, k_positions, q.device)  # i - j
    delta_ij = (offset.clamp(-max_distance, max_distance - 1) + max_distance).expand(shape.batch, shape.heads, -1, -1)
    delta_ji = (-offset).clamp(-max_distance, max_distance - 1) + max_distance  # delta(j, i), indexed [i, j]
    k_full = repeat_kv(k, shape.heads // shape.kv_heads)
    c2c = q @ k_full.transpose(-2, -1)  # q_i . k_j
    c2p = torch.gather(q @ k_table.transpose(-2, -1), -1, delta_ij)  # q_i . k^r_{delta(i,j)}
    k_dot_qr = k_full @ q_table.transpose(-2, -1)  # k_j . q^r_r: (b, h, seq_k, 2K)
    p2c = torch.gather(k_dot_qr, -1, delta_ji.t().expand(shape.batch, shape.heads, -1, -1)).transpose(-2, -1)
    return c2c + c2p + p2c


def softmax_attention(
    logits: torch.Tensor,
    v: torch.Tensor | None,
    mask: torch.Tensor | None = None,
    causal: bool = False,
) -> torch.Tensor:
    """Softmax over already-scaled logits, with masks; then multiply by ``v`` if given.

    This is the second half of :func:`~dlnotes.attention.sdpa.attention_reference` for
    schemes whose logits are not ``scale * q k^T + bias``. A query row with no visible
    key gets zero weights (not NaN).

    Shape:
        logits: ``(batch, heads, seq_q, seq_k)``; v: ``(batch, kv_heads, seq_k, d_v)``;
        mask: broadcastable to ``logits`` (bool: ``True`` = attend; float: additive);
        result: ``(batch, heads, seq_q, d_v)``, or the weights ``(batch, heads, seq_q, seq_k)``
        when ``v`` is ``None``.

    Args:
        logits: Scaled attention logits.
        v: Values, or ``None`` to return the attention weights.
        mask: Optional boolean mask or additive float bias.
        causal: Apply :func:`~dlnotes.attention.sdpa.causal_mask` too.

    Returns:
        Outputs or weights.

    Raises:
        TypeError: If ``logits``/``v``/``mask`` have the wrong types.
        ValueError: If shapes do not fit the above.

    Examples:
        >>> softmax_attention(torch.zeros(1, 1, 2, 2), None, causal=True)[0, 0]
        tensor([[1.0000, 0.0000],
                [0.5000, 0.5000]])
    """
    _check_float_tensor(logits, "logits")
    if logits.dim() != 4:
        raise ValueError(f"logits must be 4-D (batch, heads, seq_q, seq_k), got shape {tuple(logits.shape)}")
    batch, heads, seq_q, seq_k = logits.shape
    scores = logits.clone()
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or not (mask.dtype == torch.bool or mask.is_floating_point()):
            got = getattr(mask, "dtype", type(mask).__name__)
            raise TypeError(f"mask must be a bool or floating tensor, got {got}")
        try:
            torch.broadcast_to(mask, logits.shape)
        except RuntimeError as error:
            message = f"mask of shape {tuple(mask.shape)} does not broadcast to {tuple(logits.shape)}"
            raise ValueError(message) from error
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask.to(scores.dtype)
    if causal:
        scores = scores.masked_fill(~causal_mask(seq_q, seq_k, logits.device), float("-inf"))
    empty_row = scores.amax(dim=-1, keepdim=True) == float("-inf")
    weights = torch.softmax(scores, dim=-1).masked_fill(empty_row, 0.0)  # NaN rows -> 0
    if v is None:
        return weights
    _check_same_float(v, "v", logits)
    if v.dim() != 4 or v.shape[0] != batch or v.shape[2] != seq_k or v.shape[1] == 0 or heads % v.shape[1]:
        raise ValueError(
            f"v must have shape (batch={batch}, kv_heads dividing {heads}, seq_k={seq_k}, d_v), got {tuple(v.shape)}"
        )
    return weights @ repeat_kv(v, heads // v.shape[1])


# ----------------------------------------------------------------------------- ALiBi


@export("attention.alibi_slopes")
def alibi_slopes(n_heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes: a geometric sequence starting at :math:`2^{-8/n}` with that ratio.

    For ``n`` a power of two, head ``h`` (1-based) gets :math:`2^{-8h/n}`; 8 heads get
    :math:`2^{-1}, \\dots, 2^{-8}`. Otherwise (as in the paper's code) take the slopes of
    the largest power of two :math:`n' < n`, then the odd-numbered slopes of :math:`2n'`
    heads (those falling between the others) until there are ``n``.

    Shape:
        result: ``(n_heads,)``, fp32.

    Args:
        n_heads: Number of heads (``>= 1``).

    Returns:
        The slopes, steepest first.

    Raises:
        TypeError: If ``n_heads`` is not an int.
        ValueError: If ``n_heads < 1``.

    Examples:
        >>> alibi_slopes(4)
        tensor([0.2500, 0.0625, 0.0156, 0.0039])
    """
    check_int(n_heads, "n_heads", 1)
    closest = 2 ** int(math.floor(math.log2(n_heads)))  # largest power of two <= n_heads
    slopes = _power_of_two_slopes(closest)
    if closest < n_heads:
        slopes += _power_of_two_slopes(2 * closest)[0::2][: n_heads - closest]  # interleaved extra slopes
    return torch.tensor(slopes, dtype=torch.float32)


@export("attention.alibi_bias")
def alibi_bias(
    seq_q: int,
    seq_k: int,
    n_heads: int,
    bidirectional: bool = False,
    q_positions: torch.Tensor | None = None,
    k_positions: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """ALiBi's additive bias :math:`-m_h \\cdot (\\text{query} - \\text{key})`, no learned parameters.

    Causal (default): :math:`b_{hij} = m_h (j - i)`, a penalty growing linearly with the
    distance into the past; keys in the future get a positive value, so use it with
    ``causal=True``. ``bidirectional=True`` uses :math:`-m_h |i - j|` (the symmetric
    variant used for encoders).

    Shape:
        result: ``(1, n_heads, seq_q, seq_k)``, fp32.

    Args:
        seq_q: Number of queries.
        seq_k: Number of keys.
        n_heads: Number of heads.
        bidirectional: Penalise distance in both directions.
        q_positions: Optional query positions.
        k_positions: Optional key positions.
        device: Device of the result.

    Returns:
        The bias, for ``attention_reference(q, k, v, mask=bias, causal=True)``.

    Raises:
        TypeError: If a size is not an int or ``bidirectional`` is not a bool.
        ValueError: If a size is < 1.

    Examples:
        >>> alibi_bias(3, 3, 1)[0, 0]
        tensor([[ 0.0000,  0.0039,  0.0078],
                [-0.0039,  0.0000,  0.0039],
                [-0.0078, -0.0039,  0.0000]])
    """
    if not isinstance(bidirectional, bool):
        raise TypeError(f"bidirectional must be a bool, got {type(bidirectional).__name__}")
    slopes = alibi_slopes(n_heads)
    slopes = slopes if device is None else slopes.to(device)
    relative = relative_positions(seq_q, seq_k, q_positions, k_positions, device).float()  # j - i
    distance = -relative.abs() if bidirectional else relative
    return (slopes[:, None, None] * distance)[None]


# ----------------------------------------------------------------------------- others


class ConvolutionalPositions(nn.Module):
    """Position from zero padding: :math:`x + \\mathrm{DWConv}(x)` (a CPVT-style encoding generator).

    A convolution is translation-equivariant, so it can only learn *where* a token is
    from the zero padding at the borders, which each layer propagates
    ``kernel_size // 2`` tokens further inward. With ``padding_mode="circular"`` there
    is no border and no position information at all.

    Args:
        dim: Channels.
        kernel_size: Odd kernel size.
        padding_mode: ``"zeros"`` (the point) or ``"circular"`` (the control).
        generator: Random generator for the initialisation.

    Examples:
        >>> layer = ConvolutionalPositions(4, generator=torch.Generator().manual_seed(0))
        >>> layer(torch.ones(1, 6, 4)).shape
        torch.Size([1, 6, 4])
    """

    def __init__(
        self, dim: int, kernel_size: int = 3, padding_mode: str = "zeros", generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        check_int(dim, "dim", 1)
        check_int(kernel_size, "kernel_size", 1)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (to keep the length), got {kernel_size}")
        if padding_mode not in ("zeros", "circular"):
            raise ValueError(f"padding_mode must be 'zeros' or 'circular', got {padding_mode!r}")
        self.conv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, padding_mode=padding_mode)
        bound = 1.0 / math.sqrt(kernel_size)
        with torch.no_grad():
            self.conv.weight.copy_((torch.rand(self.conv.weight.shape, generator=generator) * 2 - 1) * bound)
            self.conv.bias.copy_((torch.rand(dim, generator=generator) * 2 - 1) * bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` of shape ``(batch, seq, dim)`` to ``x + DWConv(x)`` of the same shape."""
        _check_float_tensor(x, "x")
        if x.dim() != 3 or x.shape[-1] != self.conv.in_channels:
            raise ValueError(f"x must have shape (batch, seq, {self.conv.in_channels}), got {tuple(x.shape)}")
        return x + self.conv(x.transpose(1, 2)).transpose(1, 2)


class ComplexOrderEmbedding(nn.Module):
    """Complex word embeddings whose phase turns with position (Wang et al., ICLR 2020).

    .. math::

        f(w, k)_d = r_{w,d}\\, e^{\\mathrm{i}(\\omega_{w,d} k + \\theta_{w,d})},

    with amplitude :math:`r`, frequency :math:`\\omega` and initial phase
    :math:`\\theta` learned per word :math:`w` and channel :math:`d`. Moving a word by
    :math:`\\Delta` multiplies it by :math:`e^{\\mathrm{i}\\omega\\Delta}` whatever
    :math:`k` is (relative order), and :math:`|f|` does not depend on position.

    Args:
        vocab_size: Number of words.
        dim: Complex channels.
        generator: Random generator for the initialisation.

    Examples:
        >>> emb = ComplexOrderEmbedding(10, 4, generator=torch.Generator().manual_seed(0))
        >>> emb(torch.tensor([[1, 2, 3]])).dtype
        torch.complex64
    """

    def __init__(self, vocab_size: int, dim: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        check_int(vocab_size, "vocab_size", 1)
        check_int(dim, "dim", 1)
        self.amplitude = nn.Parameter(torch.randn(vocab_size, dim, generator=generator))  # r
        self.frequency = nn.Parameter(torch.randn(vocab_size, dim, generator=generator))  # omega
        self.phase = nn.Parameter(torch.rand(vocab_size, dim, generator=generator) * 2 * math.pi)  # theta

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """``tokens (batch, seq)`` (int) at ``positions`` (default ``0 .. seq-1``) to complex ``(batch, seq, dim)``."""
        _check_integer_tensor(tokens, "tokens")
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape (batch, seq), got {tuple(tokens.shape)}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.amplitude.shape[0]):
            low, high = int(tokens.min()), int(tokens.max())
            raise ValueError(f"tokens must lie in [0, {self.amplitude.shape[0]}), got range [{low}, {high}]")
        if positions is None:
            positions = torch.arange(tokens.shape[1], device=tokens.device)
        if not isinstance(positions, torch.Tensor):
            raise TypeError(f"positions must be a torch.Tensor, got {type(positions).__name__}")
        try:
            positions = torch.broadcast_to(positions, tokens.shape)
        except RuntimeError as error:
            message = f"positions of shape {tuple(positions.shape)} must broadcast to tokens {tuple(tokens.shape)}"
            raise ValueError(message) from error
        k = positions.to(self.frequency.dtype)[..., None]
        angle = self.frequency[tokens] * k + self.phase[tokens]  # omega k + theta
        return torch.polar(self.amplitude[tokens], angle)  # r e^{i angle} (a negative r flips the phase by pi)


# ----------------------------------------------------------------------------- helpers


def _power_of_two_slopes(n: int) -> list[float]:
    start = 2.0 ** (-8.0 / n)  # 2^(-8/n), then its powers
    return [start ** (h + 1) for h in range(n)]


def _check_even_dim(dim: object, name: str) -> None:
    check_int(dim, name, 1)
    if dim % 2:  # type: ignore[operator]
        raise ValueError(f"{name} must be even (sin/cos pairs), got {dim}")


def _check_base(base: object) -> None:
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not base > 1:
        raise ValueError(f"base must be a real number > 1, got {base!r}")


def _check_max_distance(max_distance: object) -> None:
    check_int(max_distance, "max_distance", 1)


def _check_float_tensor(x: object, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")


def _check_integer_tensor(x: object, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {x.dtype}")


def _check_same_float(x: object, name: str, like: torch.Tensor) -> None:
    _check_float_tensor(x, name)
    if x.dtype != like.dtype:  # type: ignore[union-attr]
        got = x.dtype  # type: ignore[union-attr]
        raise TypeError(f"{name} must have dtype {like.dtype} (that of the queries), got {got}")
    if x.device != like.device:  # type: ignore[union-attr]
        raise ValueError(f"{name} must be on {like.device}, got {x.device}")  # type: ignore[union-attr]


def _check_relative_table(
    table: object, name: str, heads: int, n_rel: int, dim: int, like: torch.Tensor
) -> torch.Tensor:
    """Validate a ``(n_rel, dim)`` or ``(heads, n_rel, dim)`` table; return it with a head axis."""
    _check_same_float(table, name, like)
    shape = tuple(table.shape)  # type: ignore[union-attr]
    if shape != (n_rel, dim) and shape != (heads, n_rel, dim):
        raise ValueError(f"{name} must have shape ({n_rel}, {dim}) or ({heads}, {n_rel}, {dim}), got {shape}")
    return table if table.dim() == 3 else table[None]  # type: ignore[union-attr]
