"""FlashAttention in plain PyTorch: online softmax, tiled forward, tiled backward.

Dao et al., "FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness",
NeurIPS 2022, https://arxiv.org/abs/2205.14135; Dao, "FlashAttention-2: Faster Attention
with Better Parallelism and Work Partitioning", ICLR 2024, https://arxiv.org/abs/2307.08691.

**Online softmax.** Scan a row :math:`x` in blocks. Keep the running maximum :math:`m`
and the running sum :math:`\\ell = \\sum_{j \\text{ seen}} e^{x_j - m}`. A new block
:math:`B` with maximum :math:`\\tilde m` updates them as

.. math::

    m' = \\max(m, \\tilde m), \\qquad
    \\ell' = e^{m - m'}\\,\\ell + \\sum_{j \\in B} e^{x_j - m'},

and at the end :math:`\\operatorname{softmax}(x)_j = e^{x_j - m}/\\ell` and
:math:`\\log\\sum_j e^{x_j} = m + \\log \\ell` (the log-sum-exp, "lse").

**Forward.** For a block of query rows, the same rescaling applies to the unnormalised
output :math:`\\tilde O = \\sum_j e^{s_j - m} v_j`: multiply it by :math:`e^{m - m'}` and add
the new block's :math:`e^{S_B - m'} V_B`. Only ``block_q x block_k`` scores exist at any
time; the ``seq_q x seq_k`` matrix is never built.

**Backward.** With the saved lse, :math:`P_{ij} = e^{S_{ij} - \\text{lse}_i}` is recomputed
tile by tile, and with :math:`D_i = \\sum_c dO_{ic} O_{ic}`:

.. math::

    dV = P^\\top dO, \\quad dP = dO\\,V^\\top, \\quad dS = P \\circ (dP - D), \\quad
    dQ = \\text{scale}\\cdot dS\\,K, \\quad dK = \\text{scale}\\cdot dS^\\top Q.

Everything here is a readable reference for the Triton kernels in
:mod:`dlnotes.attention.flash_triton`: same loop order (FlashAttention-2: query blocks
outside in the forward, key blocks outside in the backward), same masking, fp32
accumulation whatever the input dtype.
"""

from __future__ import annotations

import torch

from dlnotes.attention.sdpa import check_attention_inputs, repeat_kv, resolve_scale
from dlnotes.foundations.api_export import export

__all__ = ["flash_attention_reference", "flash_attention_reference_backward", "online_softmax"]


@export("attention.online_softmax")
def online_softmax(x: torch.Tensor, block: int) -> torch.Tensor:
    """Softmax over the last dimension, computed by one streaming pass over blocks of columns.

    The first pass keeps only a running maximum and a running rescaled sum per row
    (two numbers, whatever the row length); the second pass normalises. Equal to
    ``torch.softmax(x, dim=-1)`` up to rounding, including a row of ``-inf`` (NaN, as in
    torch). Half-precision inputs are processed in fp32 and returned in their dtype.

    Shape:
        x: ``(..., n)``; result: same shape.

    Args:
        x: Floating-point tensor with at least one dimension.
        block: Number of columns read per step (``>= 1``).

    Returns:
        The softmax of ``x`` along its last dimension.

    Raises:
        TypeError: If ``x`` is not a floating tensor or ``block`` is not an int.
        ValueError: If ``x`` is 0-d or ``block < 1``.

    Examples:
        >>> online_softmax(torch.tensor([1.0, 2.0, 3.0]), block=2)
        tensor([0.0900, 0.2447, 0.6652])
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension, got a 0-d tensor")
    _check_block(block, "block")
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    n = work.shape[-1]
    running_max = torch.full(work.shape[:-1], float("-inf"), dtype=work.dtype, device=work.device)  # m
    running_sum = torch.zeros(work.shape[:-1], dtype=work.dtype, device=work.device)  # l
    for start in range(0, n, block):
        chunk = work[..., start : start + block]
        new_max = torch.maximum(running_max, chunk.amax(dim=-1))  # m' = max(m, max_B x)
        safe_max = _finite_or_zero(new_max)  # while a row has seen only -inf, subtract 0
        # l' = e^{m - m'} l + sum_B e^{x - m'}
        running_sum = torch.exp(running_max - safe_max) * running_sum + torch.exp(chunk - safe_max[..., None]).sum(-1)
        running_max = new_max
    return (torch.exp(work - running_max[..., None]) / running_sum[..., None]).to(x.dtype)


@export("attention.flash_attention_reference")
def flash_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    scale: float | None = None,
    block_q: int = 64,
    block_k: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tiled exact attention in PyTorch; never materialises the ``seq_q x seq_k`` matrix.

    Loops over blocks of ``block_q`` query rows (outer) and ``block_k`` keys (inner),
    keeping a running maximum, running sum and unnormalised output per row. Under
    ``causal`` (aligned bottom-right, see :func:`dlnotes.attention.sdpa.causal_mask`)
    key blocks entirely above the diagonal are skipped and only blocks that cross it
    are masked. Differentiable: the backward is :func:`flash_attention_reference_backward`,
    which recomputes the probabilities from the saved log-sum-exp.

    Shape:
        q: ``(batch, heads, seq_q, head_dim)``; k, v: ``(batch, kv_heads, seq_k, head_dim)``
        with ``heads`` a multiple of ``kv_heads``; output: ``(batch, heads, seq_q, head_dim)``;
        lse: ``(batch, heads, seq_q)``.

    Args:
        q: Queries.
        k: Keys.
        v: Values.
        causal: Apply the bottom-right-aligned causal mask.
        scale: Multiplier of ``Q K^T``; ``1 / sqrt(head_dim)`` when ``None``.
        block_q: Query rows per tile.
        block_k: Keys per tile.

    Returns:
        ``(output, lse)``: the output in ``q``'s dtype and the natural-log
        ``logsumexp_j(scale * q_i . k_j)`` over visible keys in fp32 (fp64 for fp64
        inputs). A row that sees no
        key (causal with ``seq_q > seq_k``) has output 0 and lse ``-inf``.

    Raises:
        TypeError: As :func:`dlnotes.attention.sdpa.check_attention_inputs`, or if a block
            size is not an int or ``scale`` is not a real number.
        ValueError: As :func:`dlnotes.attention.sdpa.check_attention_inputs` (with
            ``value_dim == head_dim``), or if a block size is < 1.

    Examples:
        >>> q = torch.randn(1, 2, 100, 16)
        >>> out, lse = flash_attention_reference(q, q, q, causal=True, block_q=32, block_k=32)
        >>> out.shape, lse.shape
        (torch.Size([1, 2, 100, 16]), torch.Size([1, 2, 100]))
    """
    shape = check_attention_inputs(q, k, v, same_value_dim=True)
    _check_block(block_q, "block_q")
    _check_block(block_k, "block_k")
    scale = resolve_scale(scale, shape.head_dim)
    return _FlashReference.apply(q, k, v, bool(causal), scale, block_q, block_k)


def flash_attention_reference_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    grad_out: torch.Tensor,
    causal: bool = False,
    scale: float | None = None,
    block_q: int = 64,
    block_k: int = 64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of tiled attention, recomputing ``P`` tile by tile from the saved lse.

    FlashAttention-2 order: key blocks outside (each owns its ``dK``, ``dV`` tile), query
    blocks inside; ``dQ`` accumulates in an fp32 buffer of size ``seq_q x head_dim``.
    With :math:`D_i = \\sum_c dO_{ic} O_{ic}`: :math:`P = e^{S - \\text{lse}}`,
    :math:`dV \\mathrel{+}= P^\\top dO`, :math:`dS = P \\circ (dO V^\\top - D)`,
    :math:`dQ \\mathrel{+}= \\text{scale}\\, dS K`, :math:`dK \\mathrel{+}= \\text{scale}\\, dS^\\top Q`.
    With GQA the per-query-head ``dK``, ``dV`` are summed over the heads that share a
    key/value head.

    Shape:
        q, out, grad_out: ``(batch, heads, seq_q, head_dim)``; k, v: ``(batch, kv_heads,
        seq_k, head_dim)``; lse: ``(batch, heads, seq_q)``. Results have the shapes of q, k, v.

    Args:
        q: Queries of the forward pass.
        k: Keys of the forward pass.
        v: Values of the forward pass.
        out: Forward output.
        lse: Forward log-sum-exp (natural log), as returned by :func:`flash_attention_reference`.
        grad_out: Gradient of the loss with respect to ``out``.
        causal: Whether the forward pass was causal.
        scale: The forward pass's scale (``None`` = ``1 / sqrt(head_dim)``).
        block_q: Query rows per tile.
        block_k: Keys per tile.

    Returns:
        ``(dq, dk, dv)`` in the dtypes of ``q``, ``k``, ``v``.

    Raises:
        TypeError: As :func:`flash_attention_reference`.
        ValueError: As :func:`flash_attention_reference`, or if ``out``, ``grad_out`` or
            ``lse`` have the wrong shape.

    Examples:
        >>> q = torch.randn(1, 1, 10, 16)
        >>> out, lse = flash_attention_reference(q, q, q)
        >>> dq, dk, dv = flash_attention_reference_backward(q, q, q, out, lse, torch.ones_like(out))
        >>> dq.shape
        torch.Size([1, 1, 10, 16])
    """
    shape = check_attention_inputs(q, k, v, same_value_dim=True)
    for name, tensor in (("out", out), ("grad_out", grad_out)):
        if not isinstance(tensor, torch.Tensor) or tensor.shape != q.shape:
            got = tuple(getattr(tensor, "shape", ()))
            raise ValueError(f"{name} must have the shape of q {tuple(q.shape)}, got {got}")
    if not isinstance(lse, torch.Tensor) or lse.shape != q.shape[:3]:
        got = tuple(getattr(lse, "shape", ()))
        raise ValueError(f"lse must have shape (batch, heads, seq_q) = {tuple(q.shape[:3])}, got {got}")
    _check_block(block_q, "block_q")
    _check_block(block_k, "block_k")
    scale = resolve_scale(scale, shape.head_dim)
    return _backward(q, k, v, out, lse, grad_out, bool(causal), scale, block_q, block_k)


class _FlashReference(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal, scale, block_q, block_k):
        out, lse = _forward(q, k, v, causal, scale, block_q, block_k)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.settings = (causal, scale, block_q, block_k)
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, grad_out, grad_lse):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _backward(q, k, v, out, lse, grad_out, *ctx.settings)
        return dq, dk, dv, None, None, None, None


def _forward(q, k, v, causal, scale, block_q, block_k):
    batch, heads, seq_q, head_dim = q.shape
    seq_k = k.shape[2]
    n_rep = heads // k.shape[1]
    offset = seq_k - seq_q  # query i sits at key position i + offset (bottom-right causal)
    work = _accumulation_dtype(q.dtype)
    qf = q.to(work)
    kf, vf = repeat_kv(k, n_rep).to(work), repeat_kv(v, n_rep).to(work)
    out = torch.empty(batch, heads, seq_q, head_dim, dtype=work, device=q.device)
    lse = torch.empty(batch, heads, seq_q, dtype=work, device=q.device)
    for q_start in range(0, seq_q, block_q):
        q_end = min(q_start + block_q, seq_q)
        q_tile = qf[:, :, q_start:q_end]
        row_max = torch.full(q_tile.shape[:-1], float("-inf"), dtype=work, device=q.device)  # m
        row_sum = torch.zeros(q_tile.shape[:-1], dtype=work, device=q.device)  # l
        acc = torch.zeros_like(q_tile)  # unnormalised output, sum_j e^{s_j - m} v_j
        # Causal: the block's last row sees keys up to q_end - 1 + offset; later key blocks are skipped.
        k_stop = min(seq_k, q_end + offset) if causal else seq_k
        for k_start in range(0, max(k_stop, 0), block_k):
            k_end = min(k_start + block_k, k_stop)
            scores = scale * q_tile @ kf[:, :, k_start:k_end].transpose(-2, -1)  # S tile
            if causal and k_end - 1 > q_start + offset:  # the tile crosses the diagonal: mask it
                visible = _causal_tile(q_start, q_end, k_start, k_end, offset, q.device)
                scores = scores.masked_fill(~visible, float("-inf"))
            new_max = torch.maximum(row_max, scores.amax(dim=-1))  # m' = max(m, rowmax(S))
            safe_max = _finite_or_zero(new_max)
            rescale = torch.exp(row_max - safe_max)  # e^{m - m'}
            probs = torch.exp(scores - safe_max[..., None])  # e^{S - m'}
            row_sum = rescale * row_sum + probs.sum(dim=-1)  # l' = e^{m-m'} l + rowsum(e^{S-m'})
            acc = rescale[..., None] * acc + probs @ vf[:, :, k_start:k_end]  # O' = e^{m-m'} O + e^{S-m'} V
            row_max = new_max
        empty = row_sum == 0  # no visible key
        out[:, :, q_start:q_end] = acc / torch.where(empty, 1.0, row_sum)[..., None]
        lse[:, :, q_start:q_end] = torch.where(empty, float("-inf"), row_max + torch.log(row_sum))  # m + log l
    return out.to(q.dtype), lse


def _backward(q, k, v, out, lse, grad_out, causal, scale, block_q, block_k):
    batch, heads, seq_q, head_dim = q.shape
    kv_heads, seq_k = k.shape[1], k.shape[2]
    n_rep = heads // kv_heads
    offset = seq_k - seq_q
    work = _accumulation_dtype(q.dtype)
    qf, dof = q.to(work), grad_out.to(work)
    kf, vf = repeat_kv(k, n_rep).to(work), repeat_kv(v, n_rep).to(work)
    lse = lse.to(work)
    delta = (dof * out.to(work)).sum(dim=-1)  # D_i = rowsum(dO * O) = sum_j P_ij dP_ij
    dq = torch.zeros_like(qf)
    dk = torch.zeros_like(kf)  # per query head; summed over the GQA group at the end
    dv = torch.zeros_like(vf)
    for k_start in range(0, seq_k, block_k):
        k_end = min(k_start + block_k, seq_k)
        k_tile, v_tile = kf[:, :, k_start:k_end], vf[:, :, k_start:k_end]
        # Causal: rows i with i + offset < k_start see none of these keys; start at the first block that does.
        first_row = max(0, k_start - offset) if causal else 0
        for q_start in range(first_row - first_row % block_q, seq_q, block_q):
            q_end = min(q_start + block_q, seq_q)
            scores = scale * qf[:, :, q_start:q_end] @ k_tile.transpose(-2, -1)
            probs = torch.exp(scores - lse[:, :, q_start:q_end, None])  # P = e^{S - lse}, recomputed
            if causal:
                visible = _causal_tile(q_start, q_end, k_start, k_end, offset, q.device)
                probs = torch.where(visible, probs, 0.0)
            do_tile = dof[:, :, q_start:q_end]
            dv[:, :, k_start:k_end] += probs.transpose(-2, -1) @ do_tile  # dV += P^T dO
            dprobs = do_tile @ v_tile.transpose(-2, -1)  # dP = dO V^T
            dscores = probs * (dprobs - delta[:, :, q_start:q_end, None])  # dS = P o (dP - D)
            dq[:, :, q_start:q_end] += scale * dscores @ k_tile  # dQ += scale dS K
            dk[:, :, k_start:k_end] += scale * dscores.transpose(-2, -1) @ qf[:, :, q_start:q_end]  # dK += scale dS^T Q
    dk = dk.view(batch, kv_heads, n_rep, seq_k, head_dim).sum(dim=2)
    dv = dv.view(batch, kv_heads, n_rep, seq_k, head_dim).sum(dim=2)
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    # fp32 accumulation for fp32/fp16/bf16 (as in the kernels); fp64 stays fp64.
    return torch.float64 if dtype == torch.float64 else torch.float32


def _causal_tile(q_start, q_end, k_start, k_end, offset, device):
    rows = torch.arange(q_start, q_end, device=device)[:, None]
    cols = torch.arange(k_start, k_end, device=device)[None, :]
    return cols <= rows + offset


def _finite_or_zero(x: torch.Tensor) -> torch.Tensor:
    # Subtracting a running max of -inf would give -inf - (-inf) = NaN; subtract 0 instead.
    return torch.where(x == float("-inf"), 0.0, x)


def _check_block(block: int, name: str) -> None:
    if isinstance(block, bool) or not isinstance(block, int):
        raise TypeError(f"{name} must be an int, got {type(block).__name__}")
    if block < 1:
        raise ValueError(f"{name} must be >= 1, got {block}")
