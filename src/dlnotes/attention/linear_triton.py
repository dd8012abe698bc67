"""Chunked causal linear attention in Triton: forward and backward kernels.

Katharopoulos et al., "Transformers are RNNs", ICML 2020, https://arxiv.org/abs/2006.16236
(the causal product); the chunked ("block-parallel") form as in Yang et al., "Gated Linear
Attention Transformers with Hardware-Efficient Training", ICML 2024,
https://arxiv.org/abs/2312.06635. The PyTorch forms it is tested against live in
:mod:`dlnotes.attention.linear`.

The kernels compute the *causal product* (feature maps and the normaliser are applied
around it in PyTorch):

.. math::

    o_i = q_i \\Big(S_0 + \\sum_{j \\le i} k_j^\\top v_j\\Big), \\qquad
    S_N = S_0 + \\sum_{j} k_j^\\top v_j.

Split the sequence into chunks of ``T`` tokens, let :math:`S` be the state entering chunk
:math:`c` and :math:`M` the lower-triangular mask (diagonal included); then
:math:`O_c = (Q_c K_c^\\top \\odot M) V_c + Q_c S` and :math:`S \\leftarrow S + K_c^\\top V_c`.

Kernels (one program per (batch, head); the :math:`d \\times d_v` state stays in registers
while the program walks the chunks):

* ``_forward_kernel``: the two lines above, chunk by chunk; writes :math:`O` and :math:`S_N`.
* ``_backward_dq_kernel``: the same forward walk recomputing :math:`S`;
  :math:`dQ_c = (dO_c V_c^\\top \\odot M) K_c + dO_c S^\\top` (with :math:`S` before the chunk).
* ``_backward_dkdv_kernel``: a walk from the last chunk to the first with the reverse state
  :math:`G = dS_N + \\sum_{\\text{later } i} q_i^\\top dO_i`:
  :math:`dV_c = (Q_c K_c^\\top \\odot M)^\\top dO_c + K_c G`,
  :math:`dK_c = (dO_c V_c^\\top \\odot M)^\\top Q_c + V_c G^\\top`, then
  :math:`G \\leftarrow G + Q_c^\\top dO_c`; at the start :math:`G = dS_0`.

Inputs (fp32 or fp16) are upcast to fp32 inside the kernel and every product accumulates
in fp32 (``ieee`` precision for fp32 inputs, TF32 for fp16 ones, whose 10-bit mantissa
TF32 holds exactly). Head sizes are padded to a power of two >= 16 with masks.
"""

from __future__ import annotations

import torch

from dlnotes._triton import INTERPRET, tl, triton
from dlnotes.attention.sdpa import check_attention_inputs

__all__ = ["CHUNK_SIZES", "DTYPES", "MAX_HEAD_DIM", "causal_linear_product"]

#: Input dtypes the kernels accept (accumulation is always fp32).
DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float16)
#: Largest ``head_dim`` and ``value_dim`` (the state must fit in registers).
MAX_HEAD_DIM = 128
#: Chunk lengths the kernels accept.
CHUNK_SIZES: tuple[int, ...] = (16, 32, 64)


# ----------------------------------------------------------------------------- kernels


@triton.jit
def _load_tile(base, start, seq, dim, rows, cols):
    """Rows ``start + rows`` of a contiguous ``(seq, dim)`` matrix, zero outside, as fp32."""
    t = start + rows
    inside = (t[:, None] < seq) & (cols[None, :] < dim)
    return tl.load(base + t[:, None] * dim + cols[None, :], mask=inside, other=0.0).to(tl.float32)


@triton.jit
def _store_tile(base, start, seq, dim, rows, cols, value):
    t = start + rows
    inside = (t[:, None] < seq) & (cols[None, :] < dim)
    tl.store(base + t[:, None] * dim + cols[None, :], value.to(base.dtype.element_ty), mask=inside)


@triton.jit
def _forward_kernel(
    Q, K, V, S0, Out, SN, seq, head_dim, value_dim,
    HAS_S0: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_E: tl.constexpr,
    PRECISION: tl.constexpr,
):
    bh = tl.program_id(0).to(tl.int64)  # 64-bit offsets: batch * heads * seq * dim may exceed 2^31
    q_base, k_base = Q + bh * seq * head_dim, K + bh * seq * head_dim
    v_base, o_base = V + bh * seq * value_dim, Out + bh * seq * value_dim
    rows = tl.arange(0, BLOCK_T)
    dims, vdims = tl.arange(0, BLOCK_D), tl.arange(0, BLOCK_E)
    state_offsets = bh * head_dim * value_dim + dims[:, None] * value_dim + vdims[None, :]
    state_inside = (dims[:, None] < head_dim) & (vdims[None, :] < value_dim)
    if HAS_S0:
        state = tl.load(S0 + state_offsets, mask=state_inside, other=0.0)  # S_0 (fp32)
    else:
        state = tl.zeros([BLOCK_D, BLOCK_E], dtype=tl.float32)
    lower = rows[:, None] >= rows[None, :]  # M: key j visible to query i iff j <= i
    for start in range(0, seq, BLOCK_T):
        q = _load_tile(q_base, start, seq, head_dim, rows, dims)
        k = _load_tile(k_base, start, seq, head_dim, rows, dims)
        v = _load_tile(v_base, start, seq, value_dim, rows, vdims)
        scores = tl.where(lower, tl.dot(q, tl.trans(k), input_precision=PRECISION), 0.0)  # Q_c K_c^T o M
        out = tl.dot(scores, v, input_precision=PRECISION)  # inside the chunk
        out = tl.dot(q, state, out, input_precision=PRECISION)  # + Q_c S: the earlier chunks
        _store_tile(o_base, start, seq, value_dim, rows, vdims, out)
        state = tl.dot(tl.trans(k), v, state, input_precision=PRECISION)  # S += K_c^T V_c
    tl.store(SN + state_offsets, state, mask=state_inside)


@triton.jit
def _backward_dq_kernel(
    K, V, S0, DO, DQ, seq, head_dim, value_dim,
    HAS_S0: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_E: tl.constexpr,
    PRECISION: tl.constexpr,
):
    bh = tl.program_id(0).to(tl.int64)  # 64-bit offsets: batch * heads * seq * dim may exceed 2^31
    k_base, dq_base = K + bh * seq * head_dim, DQ + bh * seq * head_dim
    v_base, do_base = V + bh * seq * value_dim, DO + bh * seq * value_dim
    rows = tl.arange(0, BLOCK_T)
    dims, vdims = tl.arange(0, BLOCK_D), tl.arange(0, BLOCK_E)
    state_offsets = bh * head_dim * value_dim + dims[:, None] * value_dim + vdims[None, :]
    state_inside = (dims[:, None] < head_dim) & (vdims[None, :] < value_dim)
    if HAS_S0:
        state = tl.load(S0 + state_offsets, mask=state_inside, other=0.0)
    else:
        state = tl.zeros([BLOCK_D, BLOCK_E], dtype=tl.float32)
    lower = rows[:, None] >= rows[None, :]
    for start in range(0, seq, BLOCK_T):
        k = _load_tile(k_base, start, seq, head_dim, rows, dims)
        v = _load_tile(v_base, start, seq, value_dim, rows, vdims)
        d_out = _load_tile(do_base, start, seq, value_dim, rows, vdims)
        d_scores = tl.where(lower, tl.dot(d_out, tl.trans(v), input_precision=PRECISION), 0.0)  # dO_c V_c^T o M
        dq = tl.dot(d_scores, k, input_precision=PRECISION)
        dq = tl.dot(d_out, tl.trans(state), dq, input_precision=PRECISION)  # + dO_c S^T
        _store_tile(dq_base, start, seq, head_dim, rows, dims, dq)
        state = tl.dot(tl.trans(k), v, state, input_precision=PRECISION)  # S += K_c^T V_c
    return


@triton.jit
def _backward_dkdv_kernel(
    Q, K, V, DSN, DO, DK, DV, DS0, seq, head_dim, value_dim,
    HAS_DSN: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_E: tl.constexpr,
    PRECISION: tl.constexpr,
):
    bh = tl.program_id(0).to(tl.int64)  # 64-bit offsets: batch * heads * seq * dim may exceed 2^31
    q_base, k_base = Q + bh * seq * head_dim, K + bh * seq * head_dim
    dk_base = DK + bh * seq * head_dim
    v_base, do_base = V + bh * seq * value_dim, DO + bh * seq * value_dim
    dv_base = DV + bh * seq * value_dim
    rows = tl.arange(0, BLOCK_T)
    dims, vdims = tl.arange(0, BLOCK_D), tl.arange(0, BLOCK_E)
    state_offsets = bh * head_dim * value_dim + dims[:, None] * value_dim + vdims[None, :]
    state_inside = (dims[:, None] < head_dim) & (vdims[None, :] < value_dim)
    if HAS_DSN:
        reverse = tl.load(DSN + state_offsets, mask=state_inside, other=0.0)  # G = dS_N
    else:
        reverse = tl.zeros([BLOCK_D, BLOCK_E], dtype=tl.float32)
    lower = rows[:, None] >= rows[None, :]
    chunks = tl.cdiv(seq, BLOCK_T)
    for step in range(0, chunks):
        start = (chunks - 1 - step) * BLOCK_T  # last chunk first
        q = _load_tile(q_base, start, seq, head_dim, rows, dims)
        k = _load_tile(k_base, start, seq, head_dim, rows, dims)
        v = _load_tile(v_base, start, seq, value_dim, rows, vdims)
        d_out = _load_tile(do_base, start, seq, value_dim, rows, vdims)
        scores = tl.where(lower, tl.dot(q, tl.trans(k), input_precision=PRECISION), 0.0)  # A = Q_c K_c^T o M
        dv = tl.dot(tl.trans(scores), d_out, input_precision=PRECISION)  # A^T dO_c
        dv = tl.dot(k, reverse, dv, input_precision=PRECISION)  # + K_c G
        d_scores = tl.where(lower, tl.dot(d_out, tl.trans(v), input_precision=PRECISION), 0.0)  # B = dO_c V_c^T o M
        dk = tl.dot(tl.trans(d_scores), q, input_precision=PRECISION)  # B^T Q_c
        dk = tl.dot(v, tl.trans(reverse), dk, input_precision=PRECISION)  # + V_c G^T
        _store_tile(dk_base, start, seq, head_dim, rows, dims, dk)
        _store_tile(dv_base, start, seq, value_dim, rows, vdims, dv)
        reverse = tl.dot(tl.trans(q), d_out, reverse, input_precision=PRECISION)  # G += Q_c^T dO_c
    tl.store(DS0 + state_offsets, reverse, mask=state_inside)  # dS_0 = G at the start


# ----------------------------------------------------------------------------- wrapper


def causal_linear_product(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal product :math:`o_i = q_i (S_0 + \\sum_{j \\le i} k_j^\\top v_j)` with Triton, differentiable.

    The inputs are already feature-mapped (this is the kernel behind
    ``linear_attention(..., method="triton")``, which adds the feature map, the normaliser
    and RoPE around it). Gradients flow to ``q``, ``k``, ``v``, ``initial_state`` and from
    the returned final state.

    Shape:
        q, k: ``(batch, heads, seq, head_dim)``; v: ``(batch, heads, seq, value_dim)``;
        initial_state and final state: ``(batch, heads, head_dim, value_dim)``;
        output: ``(batch, heads, seq, value_dim)``.

    Args:
        q: Queries, fp32 or fp16; CUDA tensors, or CPU ones when Triton runs in its
            interpreter (no CUDA present).
        k: Keys, same dtype, device and number of heads.
        v: Values.
        initial_state: :math:`S_0`, same dtype and device; ``None`` for zeros.
        chunk_size: Tokens per chunk: 16, 32 or 64. (128 worked in the interpreter, but
            on an H100 with Triton 3.6 its fp32 tiles did not finish compiling within
            100 s, so it is refused everywhere.)

    Returns:
        ``(output, final_state)``, both of the dtype of ``q`` (the state is accumulated in
        fp32 inside the kernel).

    Raises:
        TypeError: If inputs are not tensors of one dtype among :data:`DTYPES`,
            ``chunk_size`` is not an int, or ``initial_state`` is not a tensor of that dtype.
        ValueError: If shapes disagree (``k`` and ``v`` must have the heads and length of
            ``q``), ``head_dim`` or ``value_dim`` exceeds :data:`MAX_HEAD_DIM`,
            ``chunk_size`` is not 16, 32 or 64, ``initial_state`` has the
            wrong shape or device, or the device is one the kernels cannot use here.

    Examples:
        >>> from dlnotes._triton import default_device
        >>> q = torch.rand(1, 2, 20, 16, device=default_device())
        >>> out, state = causal_linear_product(q, q, q, chunk_size=16)
        >>> out.shape, state.shape
        (torch.Size([1, 2, 20, 16]), torch.Size([1, 2, 16, 16]))
    """
    shape = check_attention_inputs(q, k, v, dtypes=DTYPES)
    if shape.kv_heads != shape.heads or shape.seq_k != shape.seq_q:
        raise ValueError(
            f"k and v must have the heads and length of q {tuple(q.shape[1:3])}, got {tuple(k.shape[1:3])}"
        )
    if max(shape.head_dim, shape.value_dim) > MAX_HEAD_DIM:
        raise ValueError(
            f"head_dim and value_dim must be <= {MAX_HEAD_DIM}, got {shape.head_dim} and {shape.value_dim}"
        )
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise TypeError(f"chunk_size must be an int, got {type(chunk_size).__name__}")
    if chunk_size not in CHUNK_SIZES:
        raise ValueError(f"chunk_size must be 16, 32 or 64 for the Triton kernel, got {chunk_size}")
    expected = "cpu" if INTERPRET else "cuda"
    if q.device.type != expected:
        where = "Triton runs in its CPU interpreter here (no CUDA)" if INTERPRET else "Triton runs on the GPU here"
        raise ValueError(f"q, k and v must be {expected} tensors because {where}; got {q.device}")
    if initial_state is not None:
        wanted = (shape.batch, shape.heads, shape.head_dim, shape.value_dim)
        if not isinstance(initial_state, torch.Tensor):
            raise TypeError(f"initial_state must be a torch.Tensor or None, got {type(initial_state).__name__}")
        if tuple(initial_state.shape) != wanted:
            raise ValueError(
                f"initial_state must have shape (batch, heads, head_dim, value_dim) = {wanted}, "
                f"got {tuple(initial_state.shape)}"
            )
        if initial_state.dtype != q.dtype:
            raise TypeError(f"initial_state must have the dtype of q ({q.dtype}), got {initial_state.dtype}")
        if initial_state.device != q.device:
            raise ValueError(f"initial_state must be on the device of q ({q.device}), got {initial_state.device}")
    return _CausalLinearProduct.apply(q, k, v, initial_state, chunk_size)


class _CausalLinearProduct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, initial_state, chunk_size):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        s0 = None if initial_state is None else initial_state.detach().float().contiguous()
        out, final = _forward(q, k, v, s0, chunk_size)
        ctx.save_for_backward(q, k, v, s0)
        ctx.chunk_size = chunk_size
        ctx.state_dtype = None if initial_state is None else initial_state.dtype
        ctx.set_materialize_grads(False)
        return out, final.to(q.dtype)

    @staticmethod
    def backward(ctx, grad_out, grad_final):
        q, k, v, s0 = ctx.saved_tensors
        grad_out = torch.zeros_like(v) if grad_out is None else grad_out.contiguous()
        d_final = None if grad_final is None else grad_final.float().contiguous()
        dq, dk, dv, ds0 = _backward(q, k, v, s0, grad_out, d_final, ctx.chunk_size)
        ds0 = ds0.to(ctx.state_dtype) if ctx.needs_input_grad[3] else None
        return dq, dk, dv, ds0, None


def _launch_config(q: torch.Tensor, v: torch.Tensor, chunk_size: int) -> dict:
    head_dim, value_dim = q.shape[-1], v.shape[-1]
    config = dict(
        BLOCK_T=chunk_size,
        BLOCK_D=triton.next_power_of_2(max(head_dim, 16)),
        BLOCK_E=triton.next_power_of_2(max(value_dim, 16)),
        PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
    )
    if not INTERPRET:
        config["num_warps"] = 4 if max(head_dim, value_dim) <= 64 else 8
        # Tiles are fp32 in shared memory: past 64 x 64 (16 KiB a tile, four tiles a step) the
        # default three-stage software pipeline needs more than an H100's 227 KiB per block.
        if chunk_size * max(config["BLOCK_D"], config["BLOCK_E"]) > 64 * 64:
            config["num_stages"] = 1
    return config


def _forward(q, k, v, s0, chunk_size):
    batch, heads, seq, head_dim = q.shape
    value_dim = v.shape[-1]
    out = torch.empty_like(v)
    final = torch.empty(batch, heads, head_dim, value_dim, dtype=torch.float32, device=q.device)
    _forward_kernel[(batch * heads,)](
        q, k, v, q if s0 is None else s0, out, final, seq, head_dim, value_dim,
        HAS_S0=s0 is not None, **_launch_config(q, v, chunk_size),
    )
    return out, final


def _backward(q, k, v, s0, grad_out, d_final, chunk_size):
    batch, heads, seq, head_dim = q.shape
    value_dim = v.shape[-1]
    config = _launch_config(q, v, chunk_size)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    ds0 = torch.empty(batch, heads, head_dim, value_dim, dtype=torch.float32, device=q.device)
    _backward_dq_kernel[(batch * heads,)](
        k, v, k if s0 is None else s0, grad_out, dq, seq, head_dim, value_dim,
        HAS_S0=s0 is not None, **config,
    )
    _backward_dkdv_kernel[(batch * heads,)](
        q, k, v, q if d_final is None else d_final, grad_out, dk, dv, ds0, seq, head_dim, value_dim,
        HAS_DSN=d_final is not None, **config,
    )
    return dq, dk, dv, ds0
