"""The selective scan of Mamba: a linear recurrence whose coefficients depend on the input.

For every batch element ``b``, channel ``d`` and state index ``n`` the scan runs

.. math::

    x_t = \\exp(\\Delta_t A)\\, x_{t-1} + \\Delta_t B_t u_t, \\qquad
    y_t = C_t^\\top x_t + D u_t, \\qquad y_t \\leftarrow y_t \\cdot \\mathrm{silu}(z_t),

with :math:`x_0 = 0`, after optionally adding ``delta_bias`` to :math:`\\Delta` and
passing it through softplus. The semantics (shapes, grouping, fp32 compute, output in
``u``'s dtype) are those of ``selective_scan_ref`` in the ``mamba_ssm`` package (Gu and
Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", 2023).

Each step is the pair :math:`(a_t, b_t) = (e^{\\Delta_t A}, \\Delta_t B_t u_t)` of the
recurrence :math:`h_t = a_t h_{t-1} + b_t`. Such pairs compose associatively,

.. math::

    (a_2, b_2) \\circ (a_1, b_1) = (a_2 a_1,\\; a_2 b_1 + b_2),

which gives three ways to run the same scan:

* ``"sequential"``: the reference loop over time, one step per token (``L`` steps).
* ``"parallel"``: a Hillis–Steele inclusive scan with the operator above; after round
  ``k`` position ``t`` holds the composition of the ``2^k`` steps ending at ``t``, so
  ``ceil(log2 L)`` rounds of whole-tensor work suffice.
* ``"chunked"``: cut time into chunks of ``T`` steps; run the recurrence inside every
  chunk at once from a zero state (``T`` vectorised steps), carry the state from chunk
  to chunk with the chunk's total decay :math:`\\exp(A \\sum_{t \\in c} \\Delta_t)`
  (``L / T`` tiny steps), then rerun every chunk from its true incoming state while
  reading out :math:`y_t` (``T`` vectorised steps). The carry is itself a linear
  recurrence over chunks, scanned like ``"parallel"``. The Python loops run ``2T``
  times instead of ``L``, and every tensor they build is one step of all chunks,
  ``(state, batch, dim, L / T)``: sized to stay in cache. Apart from a per-channel copy
  of grouped B and C, nothing of size ``batch * dim * L * state`` is ever built (the
  other two methods build several), and :math:`e^x` is computed as
  :math:`2^{x \\log_2 e}`, which torch evaluates faster on CPU.

All three are plain PyTorch, so autograd differentiates through any of them. A fourth,
``"triton"`` (:mod:`dlnotes.ssm.selective_scan_triton`), runs the recurrence in one
kernel with the states in registers and differentiates through the chunked scan.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from dlnotes._checks import shape_or_type
from dlnotes.foundations.api_export import export

__all__ = ["METHODS", "selective_scan", "selective_scan_step"]

Method = Literal["sequential", "parallel", "chunked", "triton"]

#: The algorithms :func:`selective_scan` accepts for ``method``.
METHODS: tuple[str, ...] = ("sequential", "parallel", "chunked", "triton")
_BLOCK = 8  # steps discretised and read out together by the chunked scan


@export("ssm.selective_scan")
def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    method: Method = "sequential",
    chunk_size: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Run Mamba's selective state-space scan over a whole sequence.

    Shapes: ``u, delta, z: (batch, dim, L)``; ``A: (dim, state)``; ``B, C``: one of
    ``(dim, state)`` (fixed over time), ``(batch, state, L)`` (input dependent, shared by
    all channels) or ``(batch, groups, state, L)`` (channel ``d`` uses group
    ``d // (dim // groups)``); ``D, delta_bias: (dim,)``. Output ``(batch, dim, L)``;
    last state ``(batch, dim, state)``.

    Args:
        u: The input sequence.
        delta: The step sizes :math:`\\Delta` (before ``delta_bias`` and softplus).
        A: The real state matrix, diagonal per channel (usually negative).
        B: Input matrix, see the shapes above.
        C: Output matrix, see the shapes above.
        D: Optional skip connection, adds ``D[d] * u``.
        z: Optional gate; the output is multiplied by ``silu(z)``.
        delta_bias: Optional bias added to ``delta`` per channel.
        delta_softplus: Apply softplus to ``delta`` (after the bias).
        return_last_state: Also return the state after the last step.
        method: ``"sequential"`` (reference loop), ``"parallel"`` (log-depth associative
            scan), ``"chunked"`` (scan inside chunks, carry between them) or ``"triton"``
            (one kernel keeping the states in registers; CUDA tensors on a GPU, CPU
            tensors under the Triton interpreter, see
            :mod:`dlnotes.ssm.selective_scan_triton`).
        chunk_size: Chunk length for ``"chunked"``; by default the smallest power of two
            that keeps one step of all chunks near ``2**16`` floats.

    Returns:
        ``y`` in ``u``'s dtype, or ``(y, last_state)`` with the state in float32 when
        ``return_last_state`` is true. All arithmetic happens in float32.

    Raises:
        TypeError: If a tensor is not floating point (or ``A`` is complex).
        ValueError: On mismatched shapes, groups not dividing ``dim``, an unknown
            ``method``, a ``chunk_size`` below 1, or tensors on a device the Triton
            kernel cannot use here.

    Examples:
        >>> import torch
        >>> u, delta = torch.randn(2, 4, 10), torch.rand(2, 4, 10)
        >>> A, B, C = -torch.rand(4, 3), torch.randn(2, 3, 10), torch.randn(2, 3, 10)
        >>> y, last = selective_scan(u, delta, A, B, C, return_last_state=True, method="chunked")
        >>> y.shape, last.shape
        (torch.Size([2, 4, 10]), torch.Size([2, 4, 3]))
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    batch, dim, length, state = _check_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    dtype_in = u.dtype
    u32 = u.float()
    delta32 = _prepare_delta(delta, delta_bias, delta_softplus)
    A32 = A.float()
    if method == "chunked":
        y, last_state = _scan_chunked(u32, delta32, A32, B, C, chunk_size)
    elif method == "triton":
        from dlnotes.ssm.selective_scan_triton import selective_scan_core_triton  # imports triton lazily

        y, last_state = selective_scan_core_triton(u32, delta32, A32, B.float(), C.float())
    else:
        # Discretise: a_t = exp(Δ_t A), b_t = Δ_t B_t u_t, both (batch, dim, L, state).
        decay = torch.exp(delta32.unsqueeze(-1) * A32[:, None, :])
        drive = (delta32 * u32).unsqueeze(-1) * _as_sequence(B, batch, dim, length, state)
        readout = _as_sequence(C, batch, dim, length, state)
        if method == "sequential":
            y, last_state = _scan_sequential(decay, drive, readout)
        else:
            states = _scan_parallel(decay, drive)
            y = (states * readout).sum(-1)  # y_t = C_t · x_t
            last_state = states[:, :, -1]
    out = y if D is None else y + u32 * D.float()[:, None]
    if z is not None:
        out = out * F.silu(z.float())
    out = out.to(dtype_in)
    return (out, last_state) if return_last_state else out


@export("ssm.selective_scan_step")
def selective_scan_step(
    state: torch.Tensor,
    u_t: torch.Tensor,
    delta_t: torch.Tensor,
    A: torch.Tensor,
    B_t: torch.Tensor,
    C_t: torch.Tensor,
    D: torch.Tensor | None = None,
    z_t: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advance the selective scan by one token, for recurrent inference.

    Shapes: ``state: (batch, dim, state)``; ``u_t, delta_t, z_t: (batch, dim)``;
    ``A: (dim, state)``; ``B_t, C_t``: ``(batch, state)`` or ``(batch, groups, state)``
    (a time-invariant ``(dim, state)`` matrix ``B`` is ``B.expand(batch, dim, state)``:
    one group per channel); ``D, delta_bias: (dim,)``. Returns ``y_t: (batch, dim)``
    in ``u_t``'s dtype and the new float32 state ``(batch, dim, state)``.

    Running this from a zero state over ``t = 0, 1, ...`` reproduces
    :func:`selective_scan` token by token. The input ``state`` is not modified.

    Args:
        state: The state after the previous token (zeros before the first).
        u_t: This token's input.
        delta_t: This token's step size (before bias and softplus).
        A: The state matrix.
        B_t: This token's input matrix.
        C_t: This token's output matrix.
        D: Optional skip connection.
        z_t: Optional gate for this token.
        delta_bias: Optional bias added to ``delta_t``.
        delta_softplus: Apply softplus to ``delta_t`` (after the bias).

    Returns:
        ``(y_t, new_state)``.

    Raises:
        TypeError: If a tensor is not floating point.
        ValueError: On mismatched shapes.

    Examples:
        >>> import torch
        >>> state = torch.zeros(2, 4, 3)
        >>> y, state = selective_scan_step(state, torch.randn(2, 4), torch.rand(2, 4),
        ...                                -torch.rand(4, 3), torch.randn(2, 3), torch.randn(2, 3))
        >>> y.shape, state.shape
        (torch.Size([2, 4]), torch.Size([2, 4, 3]))
    """
    if not isinstance(state, torch.Tensor) or state.dim() != 3:
        raise ValueError(f"state must be a (batch, dim, state) tensor, got {shape_or_type(state)}")
    for name, tensor in (("u_t", u_t), ("delta_t", delta_t), ("B_t", B_t), ("C_t", C_t)):
        _check_floating(name, tensor)
    if u_t.dim() != 2:
        raise ValueError(f"u_t must be (batch, dim), got shape {tuple(u_t.shape)}")
    for name, matrix in (("B_t", B_t), ("C_t", C_t)):
        if matrix.dim() not in (2, 3):
            raise ValueError(f"{name} must be (batch, state) or (batch, groups, state), got shape {tuple(matrix.shape)}")
    # Reuse the sequence checks on a length-1 sequence.
    add_time = lambda t: None if t is None else t.unsqueeze(-1)  # noqa: E731
    B_seq, C_seq = add_time(B_t), add_time(C_t)
    batch, dim, _, n_state = _check_scan_inputs(
        add_time(u_t), add_time(delta_t), A, B_seq, C_seq, D, add_time(z_t), delta_bias
    )
    if tuple(state.shape) != (batch, dim, n_state):
        raise ValueError(f"state must have shape {(batch, dim, n_state)}, got {tuple(state.shape)}")
    delta32 = _prepare_delta(delta_t.unsqueeze(-1), delta_bias, delta_softplus)[..., 0]
    u32 = u_t.float()
    decay = torch.exp(delta32.unsqueeze(-1) * A.float())  # exp(Δ_t A): (batch, dim, state)
    drive = (delta32 * u32).unsqueeze(-1) * _as_sequence(B_seq, batch, dim, 1, n_state)[:, :, 0]
    new_state = decay * state.float() + drive  # x_t = exp(Δ_t A) x_{t-1} + Δ_t B_t u_t
    y = (new_state * _as_sequence(C_seq, batch, dim, 1, n_state)[:, :, 0]).sum(-1)  # C_t · x_t
    if D is not None:
        y = y + u32 * D.float()
    if z_t is not None:
        y = y * F.silu(z_t.float())
    return y.to(u_t.dtype), new_state


# --------------------------------------------------------------------------- scans


def _scan_sequential(decay, drive, readout):
    """The reference loop: one step per token, output read at every step."""
    batch, dim, length, state = decay.shape
    x = decay.new_zeros(batch, dim, state)
    ys = []
    # unbind: one view per step whose backward is a single stack (indexing with [:, :, t]
    # would make autograd build a full-size zero gradient for every step)
    for a_t, b_t, c_t in zip(decay.unbind(2), drive.unbind(2), readout.unbind(2)):
        x = a_t * x + b_t  # x_t = a_t x_{t-1} + b_t
        ys.append((x * c_t).sum(-1))  # y_t = C_t · x_t
    return torch.stack(ys, dim=2), x


def _scan_parallel(decay, drive, axis=2):
    """Hillis–Steele inclusive scan along ``axis`` of the pairs (a_t, b_t); returns all states."""
    a, b = decay.movedim(axis, 0), drive.movedim(axis, 0)
    length = a.shape[0]
    offset = 1
    while offset < length:
        # Position t absorbs the block ending at t - offset: (a, b) ∘ (a', b') = (a a', a b' + b).
        b = torch.cat([b[:offset], a[offset:] * b[:-offset] + b[offset:]])
        a = torch.cat([a[:offset], a[offset:] * a[:-offset]])
        offset *= 2
    return b.movedim(0, axis)  # with h_0 = 0 the state is the accumulated offset b


def _scan_chunked(u32, delta32, A32, B, C, chunk_size=None, block=_BLOCK):
    """Scan inside chunks of ``chunk_size`` steps at once, carry states across chunks.

    The sequence is cut into ``chunks`` pieces of ``size`` steps. Step ``t`` of every chunk
    is processed at once, on tensors laid out ``(batch, state, dim, chunks)``: small enough
    to stay in cache. Three stages:

    1. scan every chunk from a zero state, keeping only its final state;
    2. carry across chunks, a linear recurrence over the chunk index
       (``x_in(c+1) = exp(A Σ_{t in c} Δ_t) x_in(c) + local_end(c)``), in log depth;
    3. rescan every chunk from its true incoming state, reading out ``y``.

    Discretisation (``exp(Δ A)``, ``Δ u B``) and read-out are done ``block`` steps at a
    time, so the per-step Python loop runs one fused multiply-add. Without autograd the
    blocks live in two preallocated buffers updated in place (fresh large allocations
    cost more than the arithmetic on CPU); with autograd the same steps run out of place.
    """
    batch, dim, length = u32.shape
    state = A32.shape[1]
    size = min(chunk_size or _default_chunk_size(batch * dim * state, length), length)
    chunks = -(-length // size)
    pad = chunks * size - length
    if pad:  # Δ = 0 gives the identity step (a, b) = (1, 0): earlier states are unchanged
        u32, delta32 = F.pad(u32, (0, pad)), F.pad(delta32, (0, pad))
    B6, groups = _step_major_matrix(B, batch, dim, chunks, size, pad)
    C6, _ = _step_major_matrix(C, batch, dim, chunks, size, pad)
    per_group = dim // groups
    shape5 = (batch, state, dim, chunks)  # one step of every chunk
    shape6 = (batch, state, groups, per_group, chunks)  # the same, channels split by group
    dt = _step_major(delta32, size).unsqueeze(2)  # (size, batch, 1, dim, chunks)
    du6 = _step_major(delta32 * u32, size).view(size, batch, 1, groups, per_group, chunks)
    # exp(Δ A) = 2^(Δ A log2 e): torch's exp2 is a few times faster than exp on CPU.
    A_view = (A32 * math.log2(math.e)).t()[None, :, :, None]  # (1, state, dim, 1)
    inplace = not (torch.is_grad_enabled() and any(t.requires_grad for t in (u32, delta32, A32, B, C)))
    block = min(block, size)
    if inplace:
        decay_buffer = dt.new_empty(block, *shape5)
        state_buffers = dt.new_empty(2, block, *shape5)  # alternate: a block starts from the last one's end
        y_steps = dt.new_empty(size, batch, dim, chunks)

    def run(x, read):
        """Scan every chunk from ``x`` (``shape5``); returns the end states and y per block."""
        ys = []
        for number, start in enumerate(range(0, size, block)):
            steps = slice(start, min(start + block, size))
            n = steps.stop - steps.start
            if inplace:
                decay = torch.mul(dt[steps], A_view, out=decay_buffer[:n]).exp2_()
                states = state_buffers[number % 2, :n]
                torch.mul(du6[steps], _at(B6, steps), out=states.view(n, *shape6))  # the drives Δ u B
                states[0].addcmul_(decay[0], x)  # x_t = exp(Δ_t A) x_{t-1} + Δ_t u_t B_t
                for i in range(1, n):
                    states[i].addcmul_(decay[i], states[i - 1])
                x = states[n - 1]  # the next block writes the other buffer
                if read:  # y_t = C_t · x_t, the products in the decay buffer (not needed any more)
                    products = torch.mul(states.view(n, *shape6), _at(C6, steps), out=decay.view(n, *shape6))
                    torch.sum(products, dim=2, out=y_steps[steps].view(n, batch, groups, per_group, chunks))
            else:
                decay = torch.exp2(dt[steps] * A_view)
                drives = (du6[steps] * _at(B6, steps)).reshape(n, *shape5)
                states = []
                for i in range(n):
                    x = torch.addcmul(drives[i], decay[i], x)
                    states.append(x)
                if read:
                    products = torch.stack(states).view(n, *shape6) * _at(C6, steps)
                    ys.append(products.sum(dim=2).reshape(n, batch, dim, chunks))
        return x, ys

    # 1. Each chunk's final state when started from zero.
    local_end, _ = run(dt.new_zeros(shape5), read=False)
    # 2. Carry across chunks: scan the chunk-level recurrence in log depth.
    chunk_decay = torch.exp2(dt.sum(0) * A_view)  # (batch, state, dim, chunks)
    ends = _scan_parallel(chunk_decay, local_end.clone() if inplace else local_end, axis=3)
    incoming = torch.cat([torch.zeros_like(ends[..., :1]), ends[..., :-1]], dim=3)
    # 3. Rerun every chunk from its true incoming state, reading out y.
    _, ys = run(incoming, read=True)
    if not inplace:
        y_steps = torch.cat(ys)
    y = y_steps.view(size, -1).t().reshape(batch, dim, chunks * size)[:, :, :length]  # 2-D transpose: fast copy
    return y, ends[..., -1].transpose(1, 2).contiguous()  # padded steps are identities: the last end is x_L


def _at(matrix, steps):
    """The ``steps`` of a step-major matrix; a fixed one (leading size 1) is the same at all."""
    return matrix if matrix.shape[0] == 1 else matrix[steps]


def _step_major(x, size):
    """``(..., chunks * size)`` to ``(size, ..., chunks)`` as one 2-D transpose (torch copies those in tiles)."""
    return x.reshape(-1, size).t().contiguous().view(size, *x.shape[:-1], -1)


def _step_major_matrix(matrix, batch, dim, chunks, size, pad):
    """B or C in float32 as ``(size or 1, batch or 1, state, groups, 1, chunks or 1)``, and ``groups``.

    A fixed ``(dim, state)`` matrix is one group per channel; a ``(batch, state, L)`` one
    is a single group; a ``(batch, groups, state, L)`` one keeps its groups.
    """
    matrix = matrix.float()
    if matrix.dim() == 2:  # (dim, state): the same for every step
        return matrix.t()[None, None, :, :, None, None], dim
    if matrix.dim() == 3:  # (batch, state, L): shared by all channels
        matrix = matrix.unsqueeze(1)
    groups = matrix.shape[1]
    steps = _step_major(F.pad(matrix, (0, pad)).view(batch, groups, -1, chunks * size), size)
    return steps.permute(0, 1, 3, 2, 4).unsqueeze(4), groups  # (size, batch, state, groups, 1, chunks)


def _default_chunk_size(elements_per_step: int, length: int) -> int:
    """The smallest power of two that keeps one step of all chunks near 2^16 floats (in cache)."""
    size = 1
    while size < length and elements_per_step * length // size > 2**16:
        size *= 2
    return size


# ---------------------------------------------------------------------- validation


def _check_floating(name: str, tensor) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.is_complex():
        raise TypeError(f"{name} must be real; complex state matrices are not supported, got {tensor.dtype}")
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {tensor.dtype}")


def _check_scan_inputs(u, delta, A, B, C, D, z, delta_bias) -> tuple[int, int, int, int]:
    """Validate the shapes of a whole-sequence scan; return (batch, dim, L, state)."""
    for name, tensor in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C)):
        _check_floating(name, tensor)
    for name, tensor in (("D", D), ("z", z), ("delta_bias", delta_bias)):
        if tensor is not None:
            _check_floating(name, tensor)
    if u.dim() != 3:
        raise ValueError(f"u must be (batch, dim, L), got shape {tuple(u.shape)}")
    batch, dim, length = u.shape
    if length < 1:
        raise ValueError(f"u must have at least one time step, got L = {length}")
    if tuple(delta.shape) != tuple(u.shape):
        raise ValueError(f"delta must have u's shape (batch, dim, L) = {tuple(u.shape)}, got {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"A must be (dim, state) with dim = {dim}, got shape {tuple(A.shape)}")
    state = A.shape[1]
    for name, matrix in (("B", B), ("C", C)):
        _check_input_matrix(name, matrix, batch, dim, length, state)
    if z is not None and tuple(z.shape) != tuple(u.shape):
        raise ValueError(f"z must have u's shape {tuple(u.shape)}, got {tuple(z.shape)}")
    for name, vector in (("D", D), ("delta_bias", delta_bias)):
        if vector is not None and tuple(vector.shape) != (dim,):
            raise ValueError(f"{name} must be (dim,) = ({dim},), got shape {tuple(vector.shape)}")
    return batch, dim, length, state


def _check_input_matrix(name, matrix, batch, dim, length, state) -> None:
    shape = tuple(matrix.shape)
    if matrix.dim() == 2:
        expected = (dim, state)
    elif matrix.dim() == 3:
        expected = (batch, state, length)
    elif matrix.dim() == 4:
        groups = shape[1]
        if groups < 1 or dim % groups:
            raise ValueError(f"{name} has {groups} groups, which must divide dim = {dim} (shape {shape})")
        expected = (batch, groups, state, length)
    else:
        raise ValueError(
            f"{name} must be (dim, state), (batch, state, L) or (batch, groups, state, L), got shape {shape}"
        )
    if shape != expected:
        raise ValueError(
            f"{name} must have shape {expected} for (batch, dim, L, state) = {(batch, dim, length, state)}, got {shape}"
        )


def _prepare_delta(delta, delta_bias, delta_softplus):
    """Δ in float32, plus the per-channel bias, through softplus if asked."""
    delta32 = delta.float()
    if delta_bias is not None:
        delta32 = delta32 + delta_bias.float()[:, None]
    return F.softplus(delta32) if delta_softplus else delta32


def _as_sequence(matrix, batch, dim, length, state):
    """B or C as a float32 view broadcast to (batch, dim, L, state)."""
    matrix = matrix.float()
    if matrix.dim() == 2:  # (dim, state): the same for every token
        view = matrix[None, :, None, :]
    elif matrix.dim() == 3:  # (batch, state, L): shared by all channels
        view = matrix.transpose(1, 2)[:, None]
    else:  # (batch, groups, state, L): channel d reads group d // (dim // groups)
        view = matrix.repeat_interleave(dim // matrix.shape[1], dim=1).transpose(2, 3)
    return view.expand(batch, dim, length, state)
