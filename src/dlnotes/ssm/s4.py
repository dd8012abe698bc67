"""S4 and S4D: a linear state-space model used as one long convolution.

Gu, Goel and Ré, "Efficiently Modeling Long Sequences with Structured State Spaces",
ICLR 2022 (https://arxiv.org/abs/2111.00396); Gu, Gupta, Goel and Ré, "On the
Parameterization and Initialization of Diagonal State Space Models", NeurIPS 2022
(https://arxiv.org/abs/2206.11893).

A discretised SSM ``x_k = Ā x_{k-1} + B̄ u_k``, ``y_k = C x_k + D u_k`` started from
``x_{-1} = 0`` unrolls to ``y_k = Σ_j C Ā^j B̄ u_{k-j} + D u_k``: a causal convolution
of ``u`` with the kernel::

    K = (C B̄, C Ā B̄, C Ā² B̄, ..., C Ā^{L-1} B̄)            # ssm_kernel, any dense Ā

When ``A`` is diagonal (S4D) with entries ``a_n``, ``Ā^j`` is diagonal too and
``K_j = Σ_n C_n B̄_n ā_n^j``: a matrix product of ``(C·B̄)`` with the Vandermonde matrix
``V[n, j] = ā_n^j`` (:func:`s4d_kernel`). The state is complex; its ``N/2`` modes stand for
``N`` real ones in conjugate pairs, so the real kernel is ``2 Re(...)``.

The convolution of a length-``L`` input with a length-``L`` kernel is computed by FFT
after zero-padding both to ``2L`` (:func:`fft_conv`), which makes the circular
convolution of the FFT equal to the linear, causal one; :func:`s4d_recurrence` computes
the same outputs step by step.

:class:`S4DLayer` is the S4D paper's layer (kernel, ``D`` skip, GELU, output projection
with a GLU) and :class:`S4DLM` stacks it into a language model with the interface of
:class:`dlnotes.ssm.mamba.MambaLM`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dlnotes.foundations.api_export import export
from dlnotes.ssm.residual_lm import ResidualLM

__all__ = [
    "DISCRETIZATIONS",
    "INITS",
    "S4DLM",
    "S4DLayer",
    "discretize_diagonal",
    "fft_conv",
    "s4d_init",
    "s4d_kernel",
    "s4d_recurrence",
    "ssm_kernel",
]

#: Discretisations the diagonal kernel supports.
DISCRETIZATIONS = ("zoh", "bilinear")
#: Initialisations of the diagonal ``A``.
INITS = ("inv", "lin")


@export("ssm.ssm_kernel")
def ssm_kernel(A_bar: torch.Tensor, B_bar: torch.Tensor, C: torch.Tensor, length: int) -> torch.Tensor:
    """The SSM convolution kernel ``K_j = C Ā^j B̄`` by repeated matrix-vector products.

    The plain definition, ``O(length · N²)``, for any dense (real or complex) ``Ā``.

    Shapes: ``A_bar (N, N)``, ``B_bar (N,)``, ``C (N,)`` -> ``(length,)``.

    Args:
        A_bar: The discrete state matrix.
        B_bar: The discrete input vector.
        C: The output vector.
        length: Number of kernel taps ``L``.

    Returns:
        ``(C B̄, C Ā B̄, ..., C Ā^{L-1} B̄)``.

    Raises:
        ValueError: On shapes that do not fit or a non-positive ``length``.

    Examples:
        >>> A_bar = torch.tensor([[0.5]]); B_bar = torch.tensor([1.0]); C = torch.tensor([2.0])
        >>> ssm_kernel(A_bar, B_bar, C, 3)
        tensor([2.0000, 1.0000, 0.5000])
    """
    if A_bar.dim() != 2 or A_bar.shape[0] != A_bar.shape[1]:
        raise ValueError(f"A_bar must be a square (N, N) matrix, got shape {tuple(A_bar.shape)}")
    state = A_bar.shape[0]
    for name, vector in (("B_bar", B_bar), ("C", C)):
        if tuple(vector.shape) != (state,):
            raise ValueError(f"{name} must have shape ({state},) to match A_bar, got {tuple(vector.shape)}")
    _check_length(length)
    taps = []
    x = B_bar  # Ā^0 B̄
    for _ in range(length):
        taps.append(C @ x)  # K_j = C Ā^j B̄
        x = A_bar @ x  # Ā^{j+1} B̄
    return torch.stack(taps)


@export("ssm.s4d_init")
def s4d_init(d_state: int, init: str = "inv") -> torch.Tensor:
    """The diagonal of ``A`` for S4D: one complex number per conjugate pair of modes.

    With ``n = 0, ..., N/2 - 1`` (``N = d_state``):

    - ``"lin"`` (S4D-Lin): ``a_n = -1/2 + iπn``, frequencies spaced evenly, like a Fourier basis;
    - ``"inv"`` (S4D-Inv): ``a_n = -1/2 + i (N/π)(N/(2n+1) - 1)``, imaginary parts falling
      off like ``1/n``, close to the spectrum of the HiPPO-LegS matrix.

    Shape: ``() -> (d_state // 2,)`` complex64.

    Args:
        d_state: The real state size ``N``; must be even.
        init: ``"inv"`` or ``"lin"``.

    Returns:
        The complex diagonal ``(a_0, ..., a_{N/2-1})``.

    Raises:
        ValueError: If ``d_state`` is not a positive even integer or ``init`` is unknown.

    Examples:
        >>> s4d_init(4, "lin")
        tensor([-0.5000+0.0000j, -0.5000+3.1416j])
    """
    if not isinstance(d_state, int) or d_state < 2 or d_state % 2:
        raise ValueError(f"d_state must be a positive even integer (conjugate pairs), got {d_state!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    n = torch.arange(d_state // 2, dtype=torch.float64)
    if init == "lin":
        imag = math.pi * n
    else:
        imag = d_state / math.pi * (d_state / (2 * n + 1) - 1)
    return torch.complex(torch.full_like(n, -0.5), imag).to(torch.complex64)


@export("ssm.discretize_diagonal")
def discretize_diagonal(
    A: torch.Tensor, B: torch.Tensor, dt: torch.Tensor, method: str = "zoh"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Discretise a diagonal SSM entry by entry.

    - ZOH: ``ā = exp(Δa)``, ``b̄ = (exp(Δa) - 1)/a · b``;
    - bilinear: ``ā = (1 + Δa/2)/(1 - Δa/2)``, ``b̄ = Δ b/(1 - Δa/2)``.

    These are :func:`dlnotes.ssm.hippo.discretize` for ``A = diag(a)``, where every matrix
    function acts on the diagonal alone. ZOH needs every ``a_n ≠ 0``.

    Shapes: ``A``, ``B`` and ``dt`` broadcast together (e.g. ``(H, N/2)``, ``(H, N/2)``,
    ``(H, 1)``); the results have the broadcast shape.

    Args:
        A: Diagonal of the continuous state matrix (complex or real).
        B: The continuous input vector.
        dt: Step sizes ``Δ > 0``.
        method: ``"zoh"`` or ``"bilinear"``.

    Returns:
        ``(A_bar, B_bar)``.

    Raises:
        ValueError: On an unknown ``method``.

    Examples:
        >>> A_bar, B_bar = discretize_diagonal(torch.tensor([-1.0]), torch.tensor([1.0]), torch.tensor(0.1))
        >>> round(A_bar.item(), 4), round(B_bar.item(), 4)
        (0.9048, 0.0952)
    """
    if method not in DISCRETIZATIONS:
        raise ValueError(f"method must be one of {DISCRETIZATIONS}, got {method!r}")
    dtA = dt * A
    if method == "zoh":
        A_bar = torch.exp(dtA)
        B_bar = (A_bar - 1) / A * B  # A^{-1}(e^{ΔA} - I) B
    else:
        half = 1 - dtA / 2
        A_bar = (1 + dtA / 2) / half  # (I - ΔA/2)^{-1}(I + ΔA/2)
        B_bar = dt * B / half  # (I - ΔA/2)^{-1} ΔB
    return A_bar, B_bar


@export("ssm.s4d_kernel")
def s4d_kernel(
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    dt: torch.Tensor,
    length: int,
    discretization: str = "zoh",
) -> torch.Tensor:
    """The S4D kernel from a Vandermonde matrix: ``K_j = 2 Re Σ_n C_n B̄_n ā_n^j``.

    ``ā_n^j = exp(j · log ā_n)``, and for ZOH ``log ā_n = Δ a_n`` exactly. Each of the
    ``N/2`` complex modes stands for a conjugate pair, hence the factor 2 and the real part.

    Shapes: ``A``, ``B``, ``C`` complex ``(H, N/2)``, ``dt`` real ``(H,)`` -> ``(H, length)`` real.

    Args:
        A: Diagonal state matrices, one row per channel.
        B: Input vectors.
        C: Output vectors.
        dt: One step size per channel.
        length: Number of taps ``L``.
        discretization: ``"zoh"`` or ``"bilinear"``.

    Returns:
        The real kernel, one row per channel.

    Raises:
        ValueError: On shapes that do not match, a non-positive ``length`` or an unknown
            ``discretization``.

    Examples:
        >>> A = s4d_init(4, "lin").unsqueeze(0)
        >>> ones = torch.ones_like(A)
        >>> s4d_kernel(A, ones, ones, torch.tensor([0.1]), 5).shape
        torch.Size([1, 5])
    """
    if A.dim() != 2:
        raise ValueError(f"A must be (H, N/2), got shape {tuple(A.shape)}")
    for name, tensor in (("B", B), ("C", C)):
        if tensor.shape != A.shape:
            raise ValueError(f"{name} must have A's shape {tuple(A.shape)}, got {tuple(tensor.shape)}")
    if tuple(dt.shape) != (A.shape[0],):
        raise ValueError(f"dt must be ({A.shape[0]},), one step per channel, got {tuple(dt.shape)}")
    _check_length(length)
    if discretization not in DISCRETIZATIONS:
        raise ValueError(f"discretization must be one of {DISCRETIZATIONS}, got {discretization!r}")
    A_bar, B_bar = discretize_diagonal(A, B, dt.unsqueeze(-1), discretization)
    log_A_bar = dt.unsqueeze(-1) * A if discretization == "zoh" else torch.log(A_bar)
    powers = torch.arange(length, device=A.device, dtype=dt.dtype)
    vandermonde = torch.exp(log_A_bar.unsqueeze(-1) * powers)  # V[h, n, j] = ā_{h,n}^j
    kernel = torch.einsum("hn,hnl->hl", C * B_bar, vandermonde)  # Σ_n C_n B̄_n ā_n^j
    return 2 * kernel.real


@export("ssm.fft_conv")
def fft_conv(u: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Causal convolution ``y_k = Σ_{j ≤ k} K_j u_{k-j}`` by FFT, padded to length ``2L``.

    An FFT of length ``n`` multiplies spectra of *circular* sequences: output ``k`` also
    receives ``K_j u_{k-j+n}`` for ``j > k``. With ``n = 2L`` those wrapped terms read the
    zero padding, so the first ``L`` outputs are the linear convolution.

    Shapes: ``u (..., H, L)``, ``kernel (H, L)`` -> ``(..., H, L)``.

    Args:
        u: Input sequences, time last.
        kernel: One kernel per channel, as long as the input.

    Returns:
        The causal convolution, ``u``'s shape.

    Raises:
        ValueError: If the kernel's shape is not ``u``'s last two dimensions.

    Examples:
        >>> fft_conv(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.0, 1.0, 0.0]])).round(decimals=4)
        tensor([[1., 3., 5.]])
    """
    if u.dim() < 2 or kernel.dim() != 2 or tuple(kernel.shape) != tuple(u.shape[-2:]):
        raise ValueError(
            f"kernel must be (H, L) matching u's last two dims, got u {tuple(u.shape)} and kernel {tuple(kernel.shape)}"
        )
    length = u.shape[-1]
    u_f = torch.fft.rfft(u, n=2 * length)  # zero-pad to 2L: no wrap-around
    k_f = torch.fft.rfft(kernel, n=2 * length)
    return torch.fft.irfft(u_f * k_f, n=2 * length)[..., :length]


@export("ssm.s4d_recurrence")
def s4d_recurrence(u: torch.Tensor, A_bar: torch.Tensor, B_bar: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """The diagonal SSM run as an RNN: ``x_k = ā ⊙ x_{k-1} + b̄ u_k``, ``y_k = 2 Re(C · x_k)``.

    The recurrent mode of S4D, one step per token from ``x_{-1} = 0``; it equals
    :func:`fft_conv` with :func:`s4d_kernel` (no ``D`` term here).

    Shapes: ``u (batch, H, L)`` real, ``A_bar``, ``B_bar``, ``C (H, N/2)`` complex -> ``(batch, H, L)``.

    Args:
        u: Input sequences.
        A_bar: Discrete diagonal state matrices.
        B_bar: Discrete input vectors.
        C: Output vectors.

    Returns:
        The outputs for every step.

    Raises:
        ValueError: On shapes that do not match.

    Examples:
        >>> a = torch.tensor([[0.5 + 0j]]); one = torch.tensor([[1 + 0j]])
        >>> s4d_recurrence(torch.tensor([[[1.0, 0.0, 0.0]]]), a, one, one)
        tensor([[[2.0000, 1.0000, 0.5000]]])
    """
    if u.dim() != 3:
        raise ValueError(f"u must be (batch, H, L), got shape {tuple(u.shape)}")
    if A_bar.dim() != 2 or A_bar.shape[0] != u.shape[1]:
        raise ValueError(f"A_bar must be (H={u.shape[1]}, N/2), got shape {tuple(A_bar.shape)}")
    for name, tensor in (("B_bar", B_bar), ("C", C)):
        if tensor.shape != A_bar.shape:
            raise ValueError(f"{name} must have A_bar's shape {tuple(A_bar.shape)}, got {tuple(tensor.shape)}")
    x = torch.zeros(u.shape[0], *A_bar.shape, dtype=A_bar.dtype, device=u.device)
    outputs = []
    for k in range(u.shape[-1]):
        x = A_bar * x + B_bar * u[..., k, None]  # x_k = ā x_{k-1} + b̄ u_k
        outputs.append(2 * (C * x).sum(-1).real)  # y_k = 2 Re(C x_k)
    return torch.stack(outputs, dim=-1)


@export("ssm.S4DLayer")
class S4DLayer(nn.Module):
    """The S4D layer: per-channel diagonal SSM convolution, ``D`` skip, GELU, projection.

    For ``H = d_model`` independent channels, each with its own diagonal ``A``, ``B``,
    ``C`` (``N/2 = d_state/2`` complex modes) and step size ``Δ`` (stored as ``log Δ``,
    initialised log-uniform in ``[dt_min, dt_max]``)::

        y = fft_conv(u, K) + D ⊙ u            # K from s4d_kernel, one row per channel
        y = dropout(gelu(y))
        out = glu(Linear(H, 2H)(y))           # position-wise output projection

    ``A = -exp(A_real_log) + i A_imag`` keeps the real part negative (a stable SSM).
    ``B`` starts at 1, ``C`` is complex normal, ``D`` is normal. Causal: output ``k``
    depends on inputs ``0..k`` only. :meth:`step` runs the same layer one token at a time.

    Shape: ``(batch, L, d_model) -> (batch, L, d_model)``.

    Args:
        d_model: Number of channels ``H``.
        d_state: Real state size ``N`` per channel (even).
        init: ``"inv"`` (S4D-Inv) or ``"lin"`` (S4D-Lin) for the imaginary parts of ``A``.
        discretization: ``"zoh"`` or ``"bilinear"``.
        dt_min: Smallest initial step size.
        dt_max: Largest initial step size.
        dropout: Dropout probability after the GELU.

    Raises:
        ValueError: On non-positive sizes, an odd ``d_state``, an unknown ``init`` or
            ``discretization``, ``0 < dt_min <= dt_max`` violated, or ``dropout`` outside ``[0, 1)``.

    Examples:
        >>> layer = S4DLayer(d_model=8, d_state=4)
        >>> layer(torch.randn(2, 16, 8)).shape
        torch.Size([2, 16, 8])
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        init: str = "inv",
        discretization: str = "zoh",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(d_model, int) or d_model < 1:
            raise ValueError(f"d_model must be a positive integer, got {d_model!r}")
        if discretization not in DISCRETIZATIONS:
            raise ValueError(f"discretization must be one of {DISCRETIZATIONS}, got {discretization!r}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        A = s4d_init(d_state, init).repeat(d_model, 1)  # (H, N/2); validates d_state and init
        self.d_model, self.d_state, self.discretization = d_model, d_state, discretization

        log_dt = torch.rand(d_model) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        self.A_real_log = nn.Parameter(torch.log(-A.real))  # Re(A) = -exp(A_real_log) < 0
        self.A_imag = nn.Parameter(A.imag.clone())
        # Complex parameters stored as (..., 2) real pairs, which every optimiser handles.
        self.B = nn.Parameter(torch.view_as_real(torch.ones_like(A)).clone())
        self.C = nn.Parameter(torch.view_as_real(torch.randn_like(A)).clone())
        self.D = nn.Parameter(torch.randn(d_model))
        self.dropout = nn.Dropout(dropout)
        self.output_linear = nn.Linear(d_model, 2 * d_model)

    @property
    def A(self) -> torch.Tensor:
        """The diagonal state matrices ``(H, N/2)``, complex."""
        return torch.complex(-torch.exp(self.A_real_log), self.A_imag)

    def kernel(self, length: int) -> torch.Tensor:
        """The layer's convolution kernel ``(H, length)`` (without the ``D`` term)."""
        return s4d_kernel(
            self.A,
            torch.view_as_complex(self.B),
            torch.view_as_complex(self.C),
            torch.exp(self.log_dt),
            length,
            self.discretization,
        )

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Run the layer over whole sequences in convolution mode.

        Args:
            u: ``(batch, L, d_model)``.

        Returns:
            ``(batch, L, d_model)``.

        Raises:
            ValueError: If ``u`` is not ``(batch, L, d_model)``.
        """
        if u.dim() != 3 or u.shape[-1] != self.d_model:
            raise ValueError(f"u must be (batch, L, {self.d_model}), got shape {tuple(u.shape)}")
        u_t = u.transpose(1, 2)  # (batch, H, L)
        y = fft_conv(u_t, self.kernel(u.shape[1])) + self.D.unsqueeze(-1) * u_t  # SSM + skip
        return self._output(y.transpose(1, 2))

    def step(self, u: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the layer on one token in recurrent mode, carrying the complex state.

        Args:
            u: ``(batch, d_model)``, this token's input.
            state: ``(batch, d_model, d_state // 2)`` complex, or ``None`` for zeros.

        Returns:
            ``(output, new_state)`` with ``output: (batch, d_model)``.

        Raises:
            ValueError: On shapes that do not fit the layer.
        """
        if u.dim() != 2 or u.shape[-1] != self.d_model:
            raise ValueError(f"u must be (batch, {self.d_model}), got shape {tuple(u.shape)}")
        modes = (self.d_model, self.d_state // 2)
        if state is None:
            state = self.initial_state(u.shape[0], device=u.device)
        if tuple(state.shape) != (u.shape[0], *modes):
            raise ValueError(f"state must be {(u.shape[0], *modes)}, got {tuple(state.shape)}")
        A_bar, B_bar = discretize_diagonal(
            self.A, torch.view_as_complex(self.B), torch.exp(self.log_dt).unsqueeze(-1), self.discretization
        )
        state = A_bar * state + B_bar * u.unsqueeze(-1)  # x_k = ā x_{k-1} + b̄ u_k
        y = 2 * (torch.view_as_complex(self.C) * state).sum(-1).real + self.D * u  # 2 Re(C x_k) + D u_k
        return self._output(y), state

    def initial_state(self, batch: int, device: torch.device | None = None) -> torch.Tensor:
        """Zero state before the first token: ``(batch, d_model, d_state // 2)`` complex."""
        return torch.zeros(
            batch, self.d_model, self.d_state // 2, dtype=torch.complex64, device=device or self.log_dt.device
        )

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        """GELU, dropout and the GLU output projection, position-wise: (..., H) -> (..., H)."""
        return F.glu(self.output_linear(self.dropout(F.gelu(y))), dim=-1)


@export("ssm.S4DLM")
class S4DLM(ResidualLM):
    """A small S4D language model: embedding, pre-norm residual S4D layers, tied head.

    Each layer computes ``h = h + S4DLayer(norm(h))``; a final norm precedes the output
    head, whose weight is the embedding matrix (RMSNorm, as in
    :class:`dlnotes.ssm.mamba.MambaLM`, so the two differ only in the mixer: a
    time-invariant convolution here, a selective scan there).
    Shape: ``ids (batch, L)`` to ``logits (batch, L, vocab_size)``.

    Args:
        vocab_size: Number of token ids.
        d_model: Width of the residual stream (channels of every S4D layer).
        n_layer: Number of S4D layers.
        d_state: Real state size per channel.
        init: ``"inv"`` or ``"lin"``, passed to every layer.
        discretization: ``"zoh"`` or ``"bilinear"``, passed to every layer.
        dropout: Dropout inside every layer.

    Raises:
        ValueError: On non-positive sizes (and whatever :class:`S4DLayer` rejects).

    Examples:
        >>> model = S4DLM(vocab_size=10, d_model=16, n_layer=1, d_state=4)
        >>> model(torch.randint(0, 10, (2, 7))).shape
        torch.Size([2, 7, 10])
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        n_layer: int = 2,
        d_state: int = 64,
        *,
        init: str = "inv",
        discretization: str = "zoh",
        dropout: float = 0.0,
    ) -> None:
        def layer(index: int) -> S4DLayer:
            return S4DLayer(d_model, d_state=d_state, init=init, discretization=discretization, dropout=dropout)

        super().__init__(vocab_size, d_model, n_layer, layer)


def _check_length(length: int) -> None:
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive integer, got {length!r}")
