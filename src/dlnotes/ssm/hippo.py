"""HiPPO: remember a signal online as its best polynomial approximation.

Gu, Dao, Ermon, Rudra and Ré, "HiPPO: Recurrent Memory with Optimal Polynomial
Projections", NeurIPS 2020 (https://arxiv.org/abs/2008.07669).

Keep ``c(t) ∈ R^N``, the coefficients of the projection of the history ``f(s), s ≤ t``
onto the first ``N`` Legendre polynomials, orthonormal for a measure ``μ_t`` on the past.
Differentiating ``c_n(t) = ∫ f(s) g_n(t, s) dμ_t(s)`` gives a linear ODE::

    LegT (μ_t uniform on [t - θ, t]):  c'(t) = (1/θ) (A c(t) + B f(t))
    LegS (μ_t uniform on [0, t]):      c'(t) = (1/t) (A c(t) + B f(t))
    LagT (μ_t = e^{-(t-s)/θ}/θ, s ≤ t, Laguerre polynomials): c'(t) = (1/θ) (A c(t) + B f(t))

with fixed matrices (``s_n = sqrt(2n + 1)``)::

    LegT: A_nk = -s_n s_k · ((-1)^{n-k} if k <= n else 1),   B_n = s_n (-1)^n
    LegS: A_nk = -(s_n s_k if n > k, n + 1 if n = k, 0 if n < k),   B_n = s_n
    LagT: A_nk = -(1 if k <= n else 0),   B_n = 1

All are returned in the convention ``x' = A x + B u``, i.e. the paper's matrices negated.
The history is read back as ``f(s) ≈ Σ_n c_n g_n(s)``: :func:`hippo_reconstruct`.
:func:`discretize` turns ``(A, B)`` into a recurrence ``x_k = Ā x_{k-1} + B̄ u_k`` by
forward Euler, the bilinear (Tustin) transform or a zero-order hold; :func:`hippo_online`
runs it over a sampled signal.
"""

from __future__ import annotations

import math

import torch

from dlnotes.foundations.api_export import export

__all__ = [
    "MEASURES",
    "METHODS",
    "discretize",
    "hippo_lagt",
    "hippo_legs",
    "hippo_legt",
    "hippo_online",
    "hippo_reconstruct",
    "laguerre",
    "legendre",
]

#: Discretisation methods of :func:`discretize`.
METHODS = ("zoh", "bilinear", "euler")
#: HiPPO measures implemented here.
MEASURES = ("legt", "legs", "lagt")


@export("ssm.hippo_legt")
def hippo_legt(N: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """HiPPO-LegT: the translated Legendre measure, a sliding window of length ``θ``.

    ``c'(t) = (1/θ)(A c + B f)`` keeps ``c`` equal to the coefficients of ``f`` on
    ``[t - θ, t]`` in the basis ``g_n(s) = s_n P_n(2τ - 1)``, ``τ = (t - s)/θ`` the delay as a
    fraction of the window (``τ = 0`` now, ``τ = 1`` the oldest point), ``s_n = sqrt(2n+1)``.
    Returned for ``θ = 1``: divide both by ``θ`` for another window.

    Shape: ``A (N, N)``, ``B (N,)``.

    Args:
        N: Number of coefficients.
        dtype: Floating dtype of the result.

    Returns:
        ``(A, B)`` with ``A_nk = -s_n s_k ((-1)^{n-k} if k <= n else 1)``, ``B_n = s_n (-1)^n``.

    Raises:
        ValueError: If ``N`` is not a positive integer.

    Examples:
        >>> A, B = hippo_legt(2)
        >>> A
        tensor([[-1.0000, -1.7321],
                [ 1.7321, -3.0000]], dtype=torch.float64)
    """
    _check_order(N)
    s = torch.sqrt(2 * torch.arange(N, dtype=dtype) + 1)
    n, k = torch.meshgrid(torch.arange(N), torch.arange(N), indexing="ij")
    sign = torch.where(k <= n, (-1.0) ** (n - k), torch.ones((), dtype=dtype)).to(dtype)
    A = -s[:, None] * s[None, :] * sign
    B = s * (-1.0) ** torch.arange(N, dtype=dtype)
    return A, B


@export("ssm.hippo_legs")
def hippo_legs(N: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """HiPPO-LegS: the scaled Legendre measure, uniform over the whole history ``[0, t]``.

    ``c'(t) = (1/t)(A c + B f)`` keeps ``c`` equal to the coefficients of ``f`` on
    ``[0, t]`` in the basis ``g_n(s) = s_n P_n(2s/t - 1)``; the window grows with ``t`` so
    nothing is forgotten, and the dynamics do not depend on the time scale.

    Shape: ``A (N, N)``, ``B (N,)``.

    Args:
        N: Number of coefficients.
        dtype: Floating dtype of the result.

    Returns:
        ``(A, B)`` with ``A_nk = -(s_n s_k if n > k, n + 1 if n = k, 0 if n < k)``, ``B_n = s_n``.

    Raises:
        ValueError: If ``N`` is not a positive integer.

    Examples:
        >>> A, B = hippo_legs(3)
        >>> A
        tensor([[-1.0000,  0.0000,  0.0000],
                [-1.7321, -2.0000,  0.0000],
                [-2.2361, -3.8730, -3.0000]], dtype=torch.float64)
    """
    _check_order(N)
    s = torch.sqrt(2 * torch.arange(N, dtype=dtype) + 1)
    A = torch.tril(s[:, None] * s[None, :], diagonal=-1) + torch.diag(torch.arange(1, N + 1, dtype=dtype))
    return 0.0 - A, s.clone()  # 0 - A, not -A: no negative zeros above the diagonal


@export("ssm.hippo_lagt")
def hippo_lagt(N: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """HiPPO-LagT: an exponentially fading memory in the Laguerre basis.

    The measure weighs the past by ``e^{-(t-s)}`` (``s <= t``), so recent input counts
    most and nothing is cut off sharply; its orthonormal polynomials are the Laguerre
    polynomials ``L_n(x)`` of the delay ``x = t - s``. From ``c_n(t) = ∫ f(s) L_n(t - s)
    e^{-(t-s)} ds``, ``L_n(0) = 1`` and ``L_n' = -(L_0 + ... + L_{n-1})`` follows
    ``c_n' = f - (c_0 + ... + c_n)``. Returned for a time constant of ``1``: divide both by
    ``θ`` for the measure ``e^{-(t-s)/θ}/θ``.

    Shape: ``A (N, N)``, ``B (N,)``.

    Args:
        N: Number of coefficients.
        dtype: Floating dtype of the result.

    Returns:
        ``(A, B)`` with ``A_nk = -1`` for ``k <= n`` (else 0) and ``B_n = 1``.

    Raises:
        ValueError: If ``N`` is not a positive integer.

    Examples:
        >>> A, B = hippo_lagt(3)
        >>> A
        tensor([[-1.,  0.,  0.],
                [-1., -1.,  0.],
                [-1., -1., -1.]], dtype=torch.float64)
    """
    _check_order(N)
    return 0.0 - torch.tril(torch.ones(N, N, dtype=dtype)), torch.ones(N, dtype=dtype)


@export("ssm.discretize")
def discretize(
    A: torch.Tensor, B: torch.Tensor, dt: float, method: str = "zoh"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn ``x' = A x + B u`` into ``x_k = Ā x_{k-1} + B̄ u_k`` for a step ``Δ = dt``.

    - ``"euler"`` (forward Euler): ``Ā = I + ΔA``, ``B̄ = ΔB``;
    - ``"bilinear"`` (Tustin, trapezoid rule): ``Ā = (I - ΔA/2)^{-1}(I + ΔA/2)``,
      ``B̄ = (I - ΔA/2)^{-1} ΔB``;
    - ``"zoh"`` (zero-order hold, ``u`` constant over the step, exact for such ``u``):
      ``Ā = exp(ΔA)``, ``B̄ = ∫_0^Δ exp(sA) ds B`` ``= A^{-1}(exp(ΔA) - I) B`` when ``A`` is
      invertible; computed as the top blocks of ``exp(Δ [[A, B], [0, 0]])``, which needs
      no inverse.

    Works for real and complex ``A``.

    Shapes: ``A (N, N)``, ``B (N,)`` or ``(N, M)`` -> ``A_bar (N, N)``, ``B_bar`` like ``B``.

    Args:
        A: Continuous state matrix.
        B: Continuous input matrix (a vector for one input).
        dt: Step size ``Δ > 0``.
        method: ``"zoh"``, ``"bilinear"`` or ``"euler"``.

    Returns:
        ``(A_bar, B_bar)``.

    Raises:
        ValueError: If ``A`` is not square, ``B`` does not have ``N`` rows, ``dt`` is not
            positive or ``method`` is unknown.

    Examples:
        >>> A_bar, B_bar = discretize(torch.tensor([[-1.0]]), torch.tensor([1.0]), 0.1, "euler")
        >>> A_bar, B_bar
        (tensor([[0.9000]]), tensor([0.1000]))
    """
    if A.dim() != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square (N, N) matrix, got shape {tuple(A.shape)}")
    N = A.shape[0]
    if B.dim() not in (1, 2) or B.shape[0] != N:
        raise ValueError(f"B must be ({N},) or ({N}, M) to match A, got shape {tuple(B.shape)}")
    dt = float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive finite step, got {dt}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    column = B.dim() == 1
    dtype = torch.promote_types(A.dtype, B.dtype)
    steps = torch.tensor([dt], dtype=torch.float64, device=A.device)
    A_bar, B_bar = _discretize_steps(A, B.unsqueeze(-1) if column else B, steps, method)
    return A_bar[0].to(dtype), (B_bar[0].squeeze(-1) if column else B_bar[0]).to(dtype)


@export("ssm.legendre")
def legendre(N: int, z: torch.Tensor) -> torch.Tensor:
    """Legendre polynomials ``P_0(z), ..., P_{N-1}(z)`` by Bonnet's recurrence.

    ``(n + 1) P_{n+1} = (2n + 1) z P_n - n P_{n-1}``, with ``P_0 = 1`` and ``P_1 = z``;
    orthogonal on ``[-1, 1]`` with ``∫ P_n² = 2/(2n + 1)``.

    Shape: ``z (...)`` -> ``(N, ...)``.

    Args:
        N: Number of polynomials.
        z: Points, usually in ``[-1, 1]``.

    Returns:
        ``P_n(z)`` stacked along a new first dimension.

    Raises:
        ValueError: If ``N`` is not a positive integer.

    Examples:
        >>> legendre(3, torch.tensor([0.5]))
        tensor([[ 1.0000],
                [ 0.5000],
                [-0.1250]])
    """
    _check_order(N)
    values = [torch.ones_like(z), z]
    for n in range(1, N - 1):
        values.append(((2 * n + 1) * z * values[n] - n * values[n - 1]) / (n + 1))
    return torch.stack(values[:N])


@export("ssm.laguerre")
def laguerre(N: int, x: torch.Tensor) -> torch.Tensor:
    """Laguerre polynomials ``L_0(x), ..., L_{N-1}(x)`` by their three-term recurrence.

    ``(n + 1) L_{n+1} = (2n + 1 - x) L_n - n L_{n-1}``, with ``L_0 = 1`` and ``L_1 = 1 - x``;
    orthonormal on ``[0, ∞)`` under the weight ``e^{-x}``.

    Shape: ``x (...)`` -> ``(N, ...)``.

    Args:
        N: Number of polynomials.
        x: Points, usually ``>= 0``.

    Returns:
        ``L_n(x)`` stacked along a new first dimension.

    Raises:
        ValueError: If ``N`` is not a positive integer.

    Examples:
        >>> laguerre(3, torch.tensor([1.0]))
        tensor([[ 1.0000],
                [ 0.0000],
                [-0.5000]])
    """
    _check_order(N)
    values = [torch.ones_like(x), 1 - x]
    for n in range(1, N - 1):
        values.append(((2 * n + 1 - x) * values[n] - n * values[n - 1]) / (n + 1))
    return torch.stack(values[:N])


@export("ssm.hippo_online")
def hippo_online(
    signal: torch.Tensor,
    N: int,
    measure: str = "legs",
    theta: float = 0.25,
    dt: float | None = None,
    method: str = "bilinear",
) -> torch.Tensor:
    """Run the discretised HiPPO ODE over a sampled signal: coefficients after every sample.

    Samples ``f_k = f(t_k)`` with ``t_k = (k + 1) Δ``, ``Δ = dt`` (default ``1/L``: the
    signal spans ``[0, 1]``). LegT and LagT use the fixed recurrence from
    ``discretize(A/θ, B/θ, Δ, method)`` from ``c = 0`` (the signal is taken as zero
    before ``t = 0``). LegS, whose ODE has the factor ``1/t``, starts from the projection
    of the first sample, ``c_0 = f_0 e_0`` (on ``[0, t_0]`` only ``f_0`` is known, a
    constant), then steps from ``t_{k-1}`` to ``t_k`` with ``discretize(A/t_k, B/t_k, Δ,
    method)``, i.e. ``A/(k + 1)``: the coefficients do not depend on ``Δ`` at all
    (timescale invariance), and a constant signal is remembered exactly, since
    ``A e_0 = -B`` makes ``c = f e_0`` a fixed point of every step.

    Shape: ``signal (L,)`` or ``(batch, L)`` -> ``(L, N)`` or ``(batch, L, N)``.

    Args:
        signal: The samples, in time order.
        N: Number of Legendre coefficients.
        measure: ``"legs"`` (whole history), ``"legt"`` (window of length ``theta``) or
            ``"lagt"`` (memory fading as ``e^{-(t-s)/θ}``).
        theta: Window length of LegT, time constant of LagT, in the time unit of ``dt``.
        dt: Time between samples; ``None`` means ``1 / L``.
        method: Discretisation passed to :func:`discretize`.

    Returns:
        ``c(t_k)`` for every ``k``, in float64.

    Raises:
        ValueError: On an unknown ``measure``, a signal that is not 1-d or 2-d, a
            non-positive ``theta`` (and whatever :func:`discretize` rejects).

    Examples:
        >>> coefficients = hippo_online(torch.ones(100), N=3)
        >>> [round(c, 6) + 0.0 for c in coefficients[-1].tolist()]  # a constant is g_0 alone
        [1.0, 0.0, 0.0]
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    if signal.dim() not in (1, 2):
        raise ValueError(f"signal must be (L,) or (batch, L), got shape {tuple(signal.shape)}")
    if not theta > 0:
        raise ValueError(f"theta must be positive, got {theta}")
    f = signal.to(torch.float64).reshape(-1, signal.shape[-1])  # (batch, L)
    length = f.shape[-1]
    dt = 1.0 / length if dt is None else dt
    if measure in ("legt", "lagt"):
        A, B = hippo_legt(N) if measure == "legt" else hippo_lagt(N)
        A_bar, B_bar = discretize(A / theta, B / theta, dt, method)  # one fixed recurrence
        A_bars, B_bars = A_bar.expand(length, N, N), B_bar.expand(length, N)
        c = torch.zeros(f.shape[0], N, dtype=torch.float64)
        first = 0
    else:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        A, B = hippo_legs(N)
        steps = 1.0 / torch.arange(1, length + 1, dtype=torch.float64)  # Δ · (1/t_k) = 1/(k + 1)
        A_bars, B_bars = _discretize_steps(A, B.unsqueeze(-1), steps, method)
        B_bars = B_bars.squeeze(-1)
        c = torch.zeros(f.shape[0], N, dtype=torch.float64)
        c[:, 0] = f[:, 0]  # projection of the constant f_0 on [0, t_0]
        first = 1
    history = [c] if first else []
    for k in range(first, length):
        c = c @ A_bars[k].T + f[:, k, None] * B_bars[k]  # c_k = Ā_k c_{k-1} + B̄_k f_k
        history.append(c)
    out = torch.stack(history, dim=1)  # (batch, L, N)
    return out[0] if signal.dim() == 1 else out


@export("ssm.hippo_reconstruct")
def hippo_reconstruct(coefficients: torch.Tensor, x: torch.Tensor, measure: str = "legs") -> torch.Tensor:
    """Read the remembered history back: ``f ≈ Σ_n c_n g_n`` at positions ``x`` of the window.

    For the Legendre measures ``x ∈ [0, 1]`` is the position inside the window, ``0`` the
    oldest point and ``1`` the present: for LegS the time ``x · t``, for LegT the time
    ``t - θ(1 - x)``. LegS uses ``g_n = s_n P_n(2x - 1)``; LegT, whose polynomials run in
    delay ``τ = 1 - x``, uses ``g_n = s_n P_n(1 - 2x)``. LagT's memory has no window: there
    ``x >= 0`` is the delay in units of ``θ`` (``0`` the present, the time ``t - θ x``), and
    ``g_n = L_n(x)``; the approximation is best where the measure ``e^{-x}`` is large.

    Shape: ``coefficients (..., N)``, ``x (M,)`` -> ``(..., M)``.

    Args:
        coefficients: HiPPO coefficients at one time (or a batch of times).
        x: Positions in the window (LegS, LegT) or delays (LagT).
        measure: ``"legs"``, ``"legt"`` or ``"lagt"``.

    Returns:
        The approximation at ``x``.

    Raises:
        ValueError: On an unknown ``measure`` or a non-1-d ``x``.

    Examples:
        >>> hippo_reconstruct(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0]))
        tensor([2., 2.])
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    if x.dim() != 1:
        raise ValueError(f"x must be a 1-d tensor of window positions, got shape {tuple(x.shape)}")
    N = coefficients.shape[-1]
    if measure == "lagt":
        return coefficients @ laguerre(N, x.to(coefficients.dtype))  # g_n(x) = L_n(x): (N, M)
    z = 2 * x - 1 if measure == "legs" else 1 - 2 * x
    z = z.to(coefficients.dtype)
    basis = torch.sqrt(2 * torch.arange(N, dtype=z.dtype) + 1)[:, None] * legendre(N, z)  # g_n(x): (N, M)
    return coefficients @ basis


def _discretize_steps(
    A: torch.Tensor, B: torch.Tensor, steps: torch.Tensor, method: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`discretize` for many step sizes at once, unchecked: A (N, N), B (N, M), steps (T,).

    Returns ``A_bar (T, N, N)`` and ``B_bar (T, N, M)``; one batched solve or matrix
    exponential instead of ``T`` small ones.
    """
    dtype = torch.promote_types(A.dtype, B.dtype)
    A, B = A.to(dtype), B.to(dtype)
    N, M = B.shape
    dt = steps.to(dtype)[:, None, None]  # (T, 1, 1)
    eye = torch.eye(N, dtype=dtype, device=A.device)
    if method == "euler":
        return eye + dt * A, dt * B
    if method == "bilinear":
        left = eye - dt / 2 * A
        return torch.linalg.solve(left, eye + dt / 2 * A), torch.linalg.solve(left, dt * B)
    block = torch.zeros(N + M, N + M, dtype=dtype, device=A.device)
    block[:N, :N], block[:N, N:] = A, B
    exp_block = torch.linalg.matrix_exp(dt * block)  # [[e^{ΔA}, ∫e^{sA}ds B], [0, I]]
    return exp_block[:, :N, :N], exp_block[:, :N, N:]


def _check_order(N: int) -> None:
    if not isinstance(N, int) or isinstance(N, bool) or N < 1:
        raise ValueError(f"N must be a positive integer, got {N!r}")
