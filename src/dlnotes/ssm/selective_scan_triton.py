r"""A Triton kernel for the selective scan's recurrence (forward), with autograd.

One program owns a block of ``BLOCK_D`` channels of one batch element and keeps their
``(BLOCK_D, state)`` states in registers while it walks through time:

.. math::

    x_t = \exp(\Delta_t A) \odot x_{t-1} + (\Delta_t u_t) B_t, \qquad y_t = x_t C_t,

reading ``u, Δ`` for its channels and ``B_t, C_t`` (fixed, shared or grouped: the wrapper
passes strides and a channels-per-group count, so nothing is expanded in memory) at
every step. The states never touch memory except the last one, which is stored.

Bias, softplus, ``D`` and the ``silu(z)`` gate are elementwise and stay in PyTorch
(:func:`dlnotes.ssm.selective_scan.selective_scan` applies them around this core).
The backward pass recomputes the core with the chunked PyTorch scan and differentiates
that, so gradients are exact but not fused.

Without CUDA the kernel runs in Triton's CPU interpreter (``dlnotes._triton``): correct
but slow, so keep shapes small there.
"""

from __future__ import annotations

import torch

from dlnotes._triton import INTERPRET, tl, triton

__all__ = ["selective_scan_core_triton"]


# ----------------------------------------------------------------------------- kernel


@triton.jit
def _forward_kernel(
    U, DELTA, A, B, C, Y, LAST, dim, length, state,
    b_batch, b_group, b_state, b_time, b_per_group,
    c_batch, c_group, c_state, c_time, c_per_group,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):
    batch = tl.program_id(0).to(tl.int64)  # 64-bit offsets for long sequences
    channels = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    states = tl.arange(0, BLOCK_N)
    channel_in = channels < dim
    tile_in = channel_in[:, None] & (states[None, :] < state)
    a = tl.load(A + channels[:, None] * state + states[None, :], mask=tile_in, other=0.0)
    x = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    rows = batch * dim * length + channels * length  # start of (batch, channel) in u, Δ, y
    b_rows = batch * b_batch + (channels // b_per_group) * b_group
    c_rows = batch * c_batch + (channels // c_per_group) * c_group
    for t in range(0, length):
        u = tl.load(U + rows + t, mask=channel_in, other=0.0)
        dt = tl.load(DELTA + rows + t, mask=channel_in, other=0.0)
        b = tl.load(B + b_rows[:, None] + states[None, :] * b_state + t * b_time, mask=tile_in, other=0.0)
        c = tl.load(C + c_rows[:, None] + states[None, :] * c_state + t * c_time, mask=tile_in, other=0.0)
        x = tl.exp(dt[:, None] * a) * x + (dt * u)[:, None] * b  # x_t = exp(Δ_t A) x_{t-1} + Δ_t u_t B_t
        tl.store(Y + rows + t, tl.sum(x * c, axis=1), mask=channel_in)  # y_t = C_t · x_t
    tl.store(LAST + batch * dim * state + channels[:, None] * state + states[None, :], x, mask=tile_in)


# ---------------------------------------------------------------------------- wrapper


def selective_scan_core_triton(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrence of the selective scan in one Triton kernel, differentiable.

    Shapes: ``u, delta: (batch, dim, L)`` float32 (Δ already biased and softplus-ed);
    ``A: (dim, state)``; ``B, C``: ``(dim, state)``, ``(batch, state, L)`` or
    ``(batch, groups, state, L)``, float32, validated by the caller. Returns
    ``y: (batch, dim, L)`` (no ``D``, no gate) and the last state ``(batch, dim, state)``.

    Args:
        u: Inputs.
        delta: Step sizes.
        A: State matrix.
        B: Input matrix.
        C: Output matrix.

    Returns:
        ``(y, last_state)``, both float32.

    Raises:
        ValueError: If the tensors are not on the device Triton runs on here (CPU under
            the interpreter, CUDA otherwise) or ``state`` exceeds 256.

    Examples:
        >>> u, delta = torch.randn(1, 4, 6), torch.rand(1, 4, 6)
        >>> y, last = selective_scan_core_triton(u, delta, -torch.rand(4, 2), torch.randn(1, 2, 6), torch.randn(1, 2, 6))
        >>> y.shape, last.shape
        (torch.Size([1, 4, 6]), torch.Size([1, 4, 2]))
    """
    expected = "cpu" if INTERPRET else "cuda"
    for name, tensor in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C)):
        if tensor.device.type != expected:
            where = "Triton runs in its CPU interpreter here (no CUDA)" if INTERPRET else "Triton runs on the GPU here"
            raise ValueError(f"{name} must be a {expected} tensor because {where}; got {tensor.device}")
    if A.shape[1] > 256:
        raise ValueError(f"the Triton scan keeps the state in registers: state must be <= 256, got {A.shape[1]}")
    return _SelectiveScanCore.apply(u, delta, A, B, C)


class _SelectiveScanCore(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C):
        ctx.save_for_backward(u, delta, A, B, C)
        return _forward(u, delta, A, B, C)

    @staticmethod
    def backward(ctx, grad_y, grad_last):
        from dlnotes.ssm.selective_scan import _scan_chunked  # the PyTorch twin of the kernel

        inputs = [t.detach().requires_grad_(t_needs) for t, t_needs in zip(ctx.saved_tensors, ctx.needs_input_grad)]
        with torch.enable_grad():
            y, last = _scan_chunked(*inputs)
            wanted = [t for t in inputs if t.requires_grad]
            grads = iter(torch.autograd.grad((y, last), wanted, (grad_y, grad_last), allow_unused=True))
        return tuple(next(grads) if t.requires_grad else None for t in inputs)


def _forward(u, delta, A, B, C):
    batch, dim, length = u.shape
    state = A.shape[1]
    u, delta, A, B, C = (t.contiguous() for t in (u, delta, A, B, C))
    y = torch.empty(batch, dim, length, dtype=torch.float32, device=u.device)
    last = torch.empty(batch, dim, state, dtype=torch.float32, device=u.device)
    block_d = min(32, triton.next_power_of_2(dim))
    grid = (batch, triton.cdiv(dim, block_d))
    _forward_kernel[grid](
        u, delta, A, B, C, y, last, dim, length, state,
        *_matrix_strides(B, dim), *_matrix_strides(C, dim),
        BLOCK_D=block_d, BLOCK_N=triton.next_power_of_2(state),
    )
    return y, last


def _matrix_strides(matrix: torch.Tensor, dim: int) -> tuple[int, int, int, int, int]:
    """(batch, group, state, time) strides and channels per group of a contiguous B or C."""
    if matrix.dim() == 2:  # (dim, state): one "group" per channel, constant in time
        return 0, matrix.stride(0), matrix.stride(1), 0, 1
    if matrix.dim() == 3:  # (batch, state, L): one group for all channels
        return matrix.stride(0), 0, matrix.stride(1), matrix.stride(2), dim
    groups = matrix.shape[1]  # (batch, groups, state, L)
    return matrix.stride(0), matrix.stride(1), matrix.stride(2), matrix.stride(3), dim // groups
