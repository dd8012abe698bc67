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

from dlnotes.foundations.api_export import export
from dlnotes.ssm.hippo import hippo_legs

__all__ = ["NPLR", "dplr_kernel", "legs_nplr"]


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

    k = torch.arange(length, device=Lambda.device, dtype=torch.float64)
    z = torch.exp(-2j * math.pi * k / length)[:, None]  # roots of unity (L, 1)
    half = (1 + z) / 2
    d = (1 - z) / dt - half * Lambda  # (L, N): the diagonal part at every root

    def cauchy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b / d).sum(-1)  # Σ_n a_n b_n / d_n(z), one value per root

    Q_star = Q.conj()
    generating = cauchy(C_tilde, B) - half[:, 0] * cauchy(C_tilde, P) * cauchy(Q_star, B) / (
        1 + half[:, 0] * cauchy(Q_star, P)
    )  # Woodbury: [D + h P Q*]^{-1} = D^{-1} - h D^{-1} P (1 + h Q* D^{-1} P)^{-1} Q* D^{-1}
    return torch.fft.ifft(generating)
