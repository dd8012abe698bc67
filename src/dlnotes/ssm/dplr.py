"""S4's kernel for a diagonal-plus-low-rank state matrix: generating function, Woodbury, Cauchy.

Gu, Goel and Ré, "Efficiently Modeling Long Sequences with Structured State Spaces",
ICLR 2022 (https://arxiv.org/abs/2111.00396), Section 3 and Algorithm 1.

HiPPO-LegS is *normal plus low rank*: ``A = V Λ V* - P Pᵀ`` with ``V`` unitary and
``Λ`` diagonal (:func:`legs_nplr`). In the eigenbasis the state matrix is
``Λ - P̃ Q̃*``, diagonal plus rank one, and S4 computes the length-``L`` kernel
``K_j = C Ā^j B̄`` of its bilinear discretisation without ever forming ``Ā^j``
(:func:`dplr_kernel`):

1. The kernel's truncated generating function at the ``L``-th roots of unity ``z``
   (``z^L = 1``) is ``K̂(z) = Σ_{j<L} K_j z^j = C̃ (I - Ā z)^{-1} B̄`` with
   ``C̃ = C (I - Ā^L)``, since the geometric series telescopes.
2. For the bilinear ``Ā, B̄``, ``(I - Ā z)^{-1} B̄ = [(1 - z)/Δ · I - (1 + z)/2 · A]^{-1} B``:
   a diagonal matrix plus the rank-one ``(1 + z)/2 · P̃ Q̃*``, inverted by the Woodbury
   identity. What remains are sums ``Σ_n a_n b_n / d_n(z)`` over the diagonal,
   ``d_n(z) = (1 - z)/Δ - (1 + z) λ_n / 2``: Cauchy kernels, ``O(N)`` per root.
3. ``K̂(z_k)`` at ``z_k = e^{-2πik/L}`` is the discrete Fourier transform of ``K``, so an
   inverse FFT returns ``K``.

This form of the identity never divides by ``1 + z`` (S4's write-up factors out
``2/(1 + z)``, singular at ``z = -1`` when ``L`` is even); it is the same algebra.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from dlnotes.foundations.api_export import export
from dlnotes.ssm.hippo import hippo_legs
from dlnotes.ssm.s4 import S4DLayer

__all__ = ["NPLR", "S4Layer", "dplr_kernel", "legs_nplr"]


class NPLR(NamedTuple):
    """HiPPO-LegS as normal plus low rank: ``A = V (Λ - P̃ P̃*) V*``, ``B = V B̃``.

    Attributes:
        Lambda: ``(N,)`` complex eigenvalues of the normal part ``A + P Pᵀ``; real parts -1/2.
        P: ``(N,)`` complex, the low-rank vector in the eigenbasis, ``V* P``.
        B: ``(N,)`` complex, the input vector in the eigenbasis, ``V* B``.
        V: ``(N, N)`` complex unitary eigenvectors.
    """

    Lambda: torch.Tensor
    P: torch.Tensor
    B: torch.Tensor
    V: torch.Tensor


@export("ssm.legs_nplr")
def legs_nplr(N: int) -> NPLR:
    """HiPPO-LegS in S4's normal-plus-low-rank form.

    With ``P_n = sqrt(n + 1/2)`` (that is ``B / sqrt 2``), ``A + P Pᵀ = -I/2 + S`` with
    ``S`` skew-symmetric. ``-iS`` is Hermitian, so a Hermitian eigensolver gives real
    frequencies ``ω`` and a unitary ``V`` with ``S = V diag(iω) V*``; then
    ``A = V (Λ - P̃ P̃*) V*`` with ``Λ = -1/2 + iω`` and ``P̃ = V* P``.

    Args:
        N: State size.

    Returns:
        An :class:`NPLR` in complex128.

    Raises:
        ValueError: If ``N`` is not a positive integer.

    Examples:
        >>> nplr = legs_nplr(4)
        >>> nplr.Lambda.real
        tensor([-0.5000, -0.5000, -0.5000, -0.5000], dtype=torch.float64)
    """
    A, B = hippo_legs(N)
    P = B / math.sqrt(2.0)
    skew = A + torch.outer(P, P) + 0.5 * torch.eye(N, dtype=A.dtype)  # S: Sᵀ = -S
    omega, V = torch.linalg.eigh(-1j * skew.to(torch.complex128))  # -iS = V diag(ω) V*
    Lambda = -0.5 + 1j * omega.to(torch.complex128)
    V_star = V.conj().T
    return NPLR(Lambda, V_star @ P.to(torch.complex128), V_star @ B.to(torch.complex128), V)


@export("ssm.dplr_kernel")
def dplr_kernel(
    Lambda: torch.Tensor,
    P: torch.Tensor,
    Q: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    dt: float,
    length: int,
) -> torch.Tensor:
    """S4's kernel ``K_j = C Ā^j B̄`` for ``A = diag(Λ) - P Q*`` with the bilinear ``Ā, B̄``.

    Evaluates the generating function at the roots of unity with the Woodbury identity
    and Cauchy sums, then inverts the FFT (module docstring). ``C̃ = C (I - Ā^L)`` is
    formed here from the dense ``Ā`` by repeated squaring, ``O(N³ log L)``; S4 itself
    learns ``C̃`` directly and so never needs ``Ā^L`` during training. The rest costs
    ``O(N L)`` plus an FFT, against ``O(N² L)`` for :func:`dlnotes.ssm.s4.ssm_kernel`.

    Shapes: ``Lambda, P, Q, B, C (N,)`` complex -> ``(length,)`` complex. For a system
    that is real in some basis (such as :func:`legs_nplr` with ``C`` mapped by ``V``) the
    imaginary part is rounding error.

    Args:
        Lambda: Diagonal of the normal part.
        P: Left low-rank factor.
        Q: Right low-rank factor (``Q = P`` for HiPPO).
        B: Input vector.
        C: Output vector (row), in the same basis.
        dt: Step size ``Δ > 0``.
        length: Number of kernel taps ``L``.

    Returns:
        The kernel ``(K_0, ..., K_{L-1})``.

    Raises:
        TypeError: If an input is not a complex tensor.
        ValueError: On vectors of different shapes, ``dt <= 0`` or ``length < 1``.

    Examples:
        >>> nplr = legs_nplr(8)
        >>> C = torch.randn(8, dtype=torch.float64).to(torch.complex128) @ nplr.V  # C V
        >>> K = dplr_kernel(nplr.Lambda, nplr.P, nplr.P, nplr.B, C, dt=0.01, length=64)
        >>> K.shape, bool(K.imag.abs().max() < 1e-10)
        (torch.Size([64]), True)
    """
    vectors = {"Lambda": Lambda, "P": P, "Q": Q, "B": B, "C": C}
    for name, vector in vectors.items():
        if not isinstance(vector, torch.Tensor) or not vector.is_complex():
            raise TypeError(f"{name} must be a complex tensor, got {getattr(vector, 'dtype', type(vector).__name__)}")
        if vector.dim() != 1 or vector.shape != Lambda.shape:
            raise ValueError(f"{name} must have shape ({Lambda.shape[0]},) like Lambda, got {tuple(vector.shape)}")
    if not dt > 0:
        raise ValueError(f"dt must be positive, got {dt}")
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive integer, got {length!r}")
    N = Lambda.shape[0]
    A = torch.diag(Lambda) - torch.outer(P, Q.conj())
    eye = torch.eye(N, dtype=A.dtype, device=A.device)
    A_bar = torch.linalg.solve(eye - dt / 2 * A, eye + dt / 2 * A)
    C_tilde = C - C @ torch.linalg.matrix_power(A_bar, length)  # C (I - Ā^L)

    return torch.fft.ifft(_generating_function(Lambda, P, Q, B, C_tilde, torch.tensor(dt, dtype=torch.float64), length))


def _generating_function(
    Lambda: torch.Tensor, P: torch.Tensor, Q: torch.Tensor, B: torch.Tensor, C_tilde: torch.Tensor, dt: torch.Tensor,
    length: int,
) -> torch.Tensor:
    """``K̂(z) = C̃ (I - Ā z)^{-1} B̄`` at the roots ``z_k = e^{-2πik/L}``, by Woodbury and Cauchy sums.

    For ``A = diag(Λ) - P Q*`` and the bilinear ``Ā, B̄``, ``(I - Ā z)^{-1} B̄ =
    [D(z) + (1 + z)/2 · P Q*]^{-1} B`` with the diagonal ``d_n(z) = (1 - z)/Δ - (1 + z) λ_n / 2``.
    Shapes: vectors ``(..., N)``, ``dt (...)`` -> ``(..., L)``; an inverse FFT over the last
    axis gives the kernel.
    """
    k = torch.arange(length, device=Lambda.device, dtype=dt.dtype)
    z = torch.exp(-2j * math.pi * k / length)  # (L,)
    half = (1 + z) / 2
    d = ((1 - z) / dt[..., None])[..., None] - half[:, None] * Lambda[..., None, :]  # (..., L, N)

    def cauchy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((a * b)[..., None, :] / d).sum(-1)  # Σ_n a_n b_n / d_n(z), one value per root

    Q_star = Q.conj()
    # Woodbury: [D + h P Q*]^{-1} = D^{-1} - h D^{-1} P (1 + h Q* D^{-1} P)^{-1} Q* D^{-1}
    return cauchy(C_tilde, B) - half * cauchy(C_tilde, P) * cauchy(Q_star, B) / (1 + half * cauchy(Q_star, P))


def _with_conjugates(half_modes: torch.Tensor) -> torch.Tensor:
    """The stored modes followed by their complex conjugates: ``(..., N/2) -> (..., N)``."""
    return torch.cat([half_modes, half_modes.conj()], dim=-1)


@export("ssm.S4Layer")
class S4Layer(S4DLayer):
    """The original S4 layer: HiPPO-LegS state matrices in DPLR form, kernel by generating function.

    Like :class:`dlnotes.ssm.s4.S4DLayer` (same ``D`` skip, GELU and GLU output), but each
    channel's state matrix is diagonal plus rank one, ``Λ - P P*``, initialised to
    HiPPO-LegS in its eigenbasis (:func:`legs_nplr`), and the kernel is computed as in
    :func:`dplr_kernel` with the bilinear discretisation. Only the ``N/2`` modes with
    ``Im λ > 0`` are stored; the rest are their conjugates, so the kernel is real. As in
    S4, the layer learns ``C̃ = C (I - Ā^{l_max})`` directly and computes kernels of
    ``l_max`` taps (inputs may be shorter); ``Re Λ = -exp(·)`` stays negative.

    :meth:`step` runs the same layer as a recurrence, ``O(N)`` per token and channel
    (the diagonal-plus-rank-one structure again), with ``C = C̃ (I - Ā^{l_max})^{-1}``
    computed once from the dense matrices.

    Shape: ``(batch, L, d_model) -> (batch, L, d_model)`` with ``L <= l_max``.

    Args:
        d_model: Number of channels ``H``.
        d_state: State size ``N`` per channel (even).
        l_max: Longest sequence; the kernel's length.
        dt_min: Smallest initial step size.
        dt_max: Largest initial step size.
        dropout: Dropout probability after the GELU.

    Raises:
        ValueError: On non-positive sizes, an odd ``d_state``, ``0 < dt_min <= dt_max``
            violated, or ``dropout`` outside ``[0, 1)``; in :meth:`forward`, inputs longer
            than ``l_max``.

    Examples:
        >>> layer = S4Layer(d_model=4, d_state=8, l_max=32)
        >>> layer(torch.randn(2, 20, 4)).shape
        torch.Size([2, 20, 4])
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        l_max: int = 1024,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(d_model, d_state, "inv", "bilinear", dt_min, dt_max, dropout)
        if isinstance(l_max, bool) or not isinstance(l_max, int) or l_max < 1:
            raise ValueError(f"l_max must be a positive integer, got {l_max!r}")
        self.l_max = l_max
        del self.A_real_log, self.A_imag, self.B, self.C  # S4D's parameters, replaced below
        nplr = legs_nplr(d_state)
        keep = nplr.Lambda.imag > 0  # one of each conjugate pair
        Lambda = nplr.Lambda[keep].to(torch.complex64).repeat(d_model, 1)  # (H, N/2)
        self.Lambda_real_log = nn.Parameter(torch.log(-Lambda.real))
        self.Lambda_imag = nn.Parameter(Lambda.imag.clone())
        pairs = lambda t: nn.Parameter(torch.view_as_real(t.to(torch.complex64).repeat(d_model, 1)).clone())  # noqa: E731
        self.P, self.B = pairs(nplr.P[keep]), pairs(nplr.B[keep])
        self.C_tilde = nn.Parameter(torch.view_as_real(torch.randn(d_model, d_state // 2, dtype=torch.complex64)).clone())

    @property
    def A(self) -> torch.Tensor:
        """The diagonal part ``Λ`` of the stored modes, ``(H, N/2)`` complex."""
        return torch.complex(-torch.exp(self.Lambda_real_log), self.Lambda_imag)

    def kernel(self, length: int) -> torch.Tensor:
        """The layer's convolution kernel ``(H, length)``: the first taps of the ``l_max`` kernel."""
        if length > self.l_max:
            raise ValueError(f"sequence length {length} exceeds l_max={self.l_max}")
        Lambda = _with_conjugates(self.A)
        P, B, C_tilde = (_with_conjugates(torch.view_as_complex(t)) for t in (self.P, self.B, self.C_tilde))
        generating = _generating_function(Lambda, P, P, B, C_tilde, torch.exp(self.log_dt), self.l_max)
        return torch.fft.ifft(generating, dim=-1).real[:, :length]

    def dense_system(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The full ``N``-mode bilinear system per channel: ``Ā (H, N, N)``, ``B̄ (H, N)``, ``C (H, N)``."""
        Lambda = _with_conjugates(self.A)
        P, B, C_tilde = (_with_conjugates(torch.view_as_complex(t)) for t in (self.P, self.B, self.C_tilde))
        dt = torch.exp(self.log_dt)[:, None, None].to(Lambda.dtype)
        A = torch.diag_embed(Lambda) - P[..., :, None] * P.conj()[..., None, :]
        eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
        left = eye - dt / 2 * A
        A_bar = torch.linalg.solve(left, eye + dt / 2 * A)
        B_bar = torch.linalg.solve(left, (dt[..., 0] * B)[..., None])[..., 0]
        # C̃ = C (I - Ā^L)  =>  C = C̃ (I - Ā^L)^{-1}, solved as (I - Ā^L)^T C^T = C̃^T
        power = eye - torch.linalg.matrix_power(A_bar, self.l_max)
        C = torch.linalg.solve(power.transpose(-1, -2), C_tilde[..., None])[..., 0]
        return A_bar, B_bar, C

    def step(self, u: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the layer on one token in recurrent mode, ``O(N)`` per channel.

        ``x_k = Ā x_{k-1} + B̄ u_k`` with the bilinear ``Ā = (I - Δ/2 A)^{-1}(I + Δ/2 A)``
        is applied without forming ``Ā``: ``(I + Δ/2 A) x`` is a diagonal product plus
        one inner product with ``P``, and ``(I - Δ/2 A)^{-1}`` is diagonal plus rank one,
        inverted by the Woodbury identity. The output vector ``C = C̃ (I - Ā^{l_max})^{-1}``
        needs the dense matrices once; it is cached while the parameters are unchanged
        and gradients are off (with gradients on it is recomputed, so it is differentiable).

        Args:
            u: ``(batch, d_model)``, this token's input.
            state: ``(batch, d_model, d_state)`` complex, or ``None`` for zeros.

        Returns:
            ``(output, new_state)`` with ``output: (batch, d_model)``.

        Raises:
            ValueError: On shapes that do not fit the layer.
        """
        if u.dim() != 2 or u.shape[-1] != self.d_model:
            raise ValueError(f"u must be (batch, {self.d_model}), got shape {tuple(u.shape)}")
        if state is None:
            state = self.initial_state(u.shape[0], device=u.device)
        if tuple(state.shape) != (u.shape[0], self.d_model, self.d_state):
            raise ValueError(f"state must be {(u.shape[0], self.d_model, self.d_state)}, got {tuple(state.shape)}")
        Lambda = _with_conjugates(self.A)  # (H, N)
        P, B = (_with_conjugates(torch.view_as_complex(t)) for t in (self.P, self.B))
        half_dt = (torch.exp(self.log_dt) / 2)[:, None].to(Lambda.dtype)  # (H, 1)
        # (I + Δ/2 A) x + Δ B u, with A x = Λ x - P (P* x)
        inner = (P.conj() * state).sum(-1, keepdim=True)
        rhs = state + half_dt * (Lambda * state - P * inner) + 2 * half_dt * B * u[..., None]
        # (I - Δ/2 A)^{-1} = (D + Δ/2 P P*)^{-1}, D = I - Δ/2 Λ:
        # D^{-1} r - D^{-1} P (P* D^{-1} r) / (2/Δ + P* D^{-1} P)
        d_inv = 1 / (1 - half_dt * Lambda)
        r = d_inv * rhs
        scale = (P.conj() * r).sum(-1, keepdim=True) / (1 / half_dt + (P.conj() * d_inv * P).sum(-1, keepdim=True))
        state = r - d_inv * P * scale
        y = (self._output_vector() * state).sum(-1).real + self.D * u  # C x_k + D u_k (real: conjugate pairs)
        return self._output(y), state

    def _output_vector(self) -> torch.Tensor:
        """``C = C̃ (I - Ā^{l_max})^{-1}``, ``(H, N)``; cached for inference."""
        if torch.is_grad_enabled():
            return self.dense_system()[2]
        parameters = (self.Lambda_real_log, self.Lambda_imag, self.P, self.B, self.C_tilde, self.log_dt)
        key = tuple((p.data_ptr(), p._version) for p in parameters)
        cached = getattr(self, "_output_vector_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, self.dense_system()[2])
            self._output_vector_cache = cached
        return cached[1]

    def initial_state(self, batch: int, device: torch.device | None = None) -> torch.Tensor:
        """Zero state before the first token: ``(batch, d_model, d_state)`` complex."""
        dtype = torch.promote_types(self.log_dt.dtype, torch.complex64)  # complex128 for a float64 layer
        return torch.zeros(batch, self.d_model, self.d_state, dtype=dtype, device=device or self.log_dt.device)
