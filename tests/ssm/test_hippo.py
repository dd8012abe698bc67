"""HiPPO matrices, discretisation and online function approximation.

References: the closed-form entries of Theorems 1 and 2 of the HiPPO paper (Gu et al.,
NeurIPS 2020, arXiv:2008.07669) written out as loops, the defining ODE checked by finite
differences of projections computed by Gauss-Legendre quadrature, numpy's Legendre
series, scipy.signal.cont2discrete and the scalar closed forms of each discretisation.
"""

import math

import numpy as np
import pytest
import torch
from scipy.signal import cont2discrete

from dlnotes.ssm.hippo import (
    discretize,
    hippo_lagt,
    hippo_legs,
    hippo_legt,
    hippo_online,
    hippo_reconstruct,
    laguerre,
    legendre,
)

THETA = 0.5  # LegT window in the tests


def smooth(t):
    return np.sin(6 * t) + 0.5 * np.cos(15 * t**2)


def projection(f, N, measure, t=1.0, theta=THETA, points=200):
    """c_n(t) = ∫ f g_n dμ_t by Gauss-Legendre quadrature (independent of the ODE)."""
    nodes, weights = np.polynomial.legendre.leggauss(points)
    x = (nodes + 1) / 2  # window positions in [0, 1], 1 = now
    times = x * t if measure == "legs" else t - theta * (1 - x)
    z = 2 * x - 1 if measure == "legs" else 1 - 2 * x  # LegT polynomials run in delay
    n = np.arange(N)[:, None]
    basis = np.sqrt(2 * n + 1) * np.stack([np.polynomial.legendre.Legendre.basis(k)(z) for k in range(N)])
    return torch.tensor(basis @ (f(times) * weights / 2))  # μ_t has total mass 1


# ------------------------------------------------------------------ closed-form matrices
def test_legs_matches_theorem_2():
    N = 7
    A, B = hippo_legs(N)
    for n in range(N):
        assert B[n].item() == pytest.approx(math.sqrt(2 * n + 1))
        for k in range(N):
            if n > k:
                paper = math.sqrt(2 * n + 1) * math.sqrt(2 * k + 1)
            elif n == k:
                paper = n + 1
            else:
                paper = 0.0
            assert A[n, k].item() == pytest.approx(-paper), (n, k)  # the paper writes c' = -A c / t


def test_legt_matches_theorem_1_up_to_the_basis_normalisation():
    """The paper's LegT uses un-normalised P_n: coefficients c̃_n = sqrt(2n+1) c_n."""
    N = 7
    A, B = hippo_legt(N)
    paper_A = torch.zeros(N, N, dtype=torch.float64)
    paper_B = torch.zeros(N, dtype=torch.float64)
    for n in range(N):
        paper_B[n] = (2 * n + 1) * (-1) ** n
        for k in range(N):
            paper_A[n, k] = (2 * n + 1) * ((-1) ** (n - k) if k <= n else 1)
    S = torch.diag(torch.sqrt(2 * torch.arange(N, dtype=torch.float64) + 1))
    torch.testing.assert_close(S @ A @ torch.linalg.inv(S), -paper_A)
    torch.testing.assert_close(S @ B, paper_B)


@pytest.mark.parametrize("measure", ["legs", "legt"])
def test_exact_projection_satisfies_the_hippo_ode(measure):
    """d/dt of the quadrature projection equals (1/θ or 1/t)(A c + B f) for a polynomial f.

    For LegS the ODE is exact for any f; for LegT it is exact when f is a polynomial of
    degree < N (then f(t - θ) is read back from c without error)."""
    N = 6
    coefficients = np.random.default_rng(0).normal(size=5)  # degree 4 < N
    f = np.polynomial.Polynomial(coefficients)
    A, B = hippo_legs(N) if measure == "legs" else hippo_legt(N)
    t, h = 1.3, 1e-5
    c = projection(f, N, measure, t)
    derivative = (projection(f, N, measure, t + h) - projection(f, N, measure, t - h)) / (2 * h)
    scale = 1 / t if measure == "legs" else 1 / THETA
    torch.testing.assert_close(derivative, scale * (A @ c + B * f(t)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("function", [hippo_legs, hippo_legt, hippo_lagt])
@pytest.mark.parametrize("N", [0, -1, 2.0, True])
def test_matrices_reject_bad_orders(function, N):
    with pytest.raises(ValueError, match="N must"):
        function(N)


# ------------------------------------------------------------------------------- Legendre
def test_legendre_matches_numpy_and_basis_is_orthonormal():
    z = torch.linspace(-1, 1, 11, dtype=torch.float64)
    ours = legendre(6, z)
    for n in range(6):
        reference = np.polynomial.legendre.Legendre.basis(n)(z.numpy())
        np.testing.assert_allclose(ours[n].numpy(), reference, rtol=1e-12, atol=1e-12)
    nodes, weights = np.polynomial.legendre.leggauss(20)
    x = torch.tensor((nodes + 1) / 2)
    for measure in ("legs", "legt"):
        g = hippo_reconstruct(torch.eye(6, dtype=torch.float64), x, measure)  # g_n at the nodes
        gram = g @ torch.diag(torch.tensor(weights / 2)) @ g.T
        torch.testing.assert_close(gram, torch.eye(6, dtype=torch.float64))


# -------------------------------------------------------------------------- discretisation
@pytest.mark.parametrize("method", ["zoh", "bilinear", "euler"])
@pytest.mark.parametrize("inputs", [1, 3])
def test_discretize_matches_scipy(method, inputs):
    rng = np.random.default_rng(1)
    A = rng.normal(size=(5, 5)) - 2 * np.eye(5)
    B = rng.normal(size=(5, inputs))
    dt = 0.07
    A_ref, B_ref, *_ = cont2discrete((A, B, np.eye(5), np.zeros((5, inputs))), dt, method=method)
    B_in = torch.tensor(B[:, 0]) if inputs == 1 else torch.tensor(B)
    A_bar, B_bar = discretize(torch.tensor(A), B_in, dt, method)
    np.testing.assert_allclose(A_bar.numpy(), A_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(B_bar.numpy(), B_ref[:, 0] if inputs == 1 else B_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("a", [-1.5, 0.8, -0.5 + 3.0j])
def test_discretize_scalar_closed_forms(a):
    b, dt = 0.7, 0.2
    dtype = torch.complex128 if isinstance(a, complex) else torch.float64
    A, B = torch.tensor([[a]], dtype=dtype), torch.tensor([b], dtype=dtype)
    closed = {
        "euler": (1 + dt * a, dt * b),
        "bilinear": ((1 + dt * a / 2) / (1 - dt * a / 2), dt * b / (1 - dt * a / 2)),
        "zoh": (np.exp(dt * a), (np.exp(dt * a) - 1) / a * b),
    }
    for method, (a_bar, b_bar) in closed.items():
        A_bar, B_bar = discretize(A, B, dt, method)
        assert complex(A_bar.item()) == pytest.approx(complex(a_bar), rel=1e-12), method
        assert complex(B_bar.item()) == pytest.approx(complex(b_bar), rel=1e-12), method


def test_zoh_needs_no_inverse_of_A():
    """A = 0 (a pure integrator): Ā = I, B̄ = ΔB, though A^{-1} does not exist."""
    A_bar, B_bar = discretize(torch.zeros(3, 3, dtype=torch.float64), torch.ones(3, dtype=torch.float64), 0.5)
    torch.testing.assert_close(A_bar, torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(B_bar, torch.full((3,), 0.5, dtype=torch.float64))


def test_zoh_is_exact_for_piecewise_constant_input():
    """Integrate x' = Ax + Bu finely with u constant per step: ZOH gives the same state."""
    A, B = hippo_legs(4)
    u = [0.3, -1.0, 2.0]
    dt, substeps = 0.1, 1000
    x = torch.zeros(4, dtype=torch.float64)
    h = dt / substeps
    for value in u:
        for _ in range(substeps):  # classic RK4 on a linear ODE, error ~ h^4
            k1 = A @ x + B * value
            k2 = A @ (x + h / 2 * k1) + B * value
            k3 = A @ (x + h / 2 * k2) + B * value
            k4 = A @ (x + h * k3) + B * value
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    A_bar, B_bar = discretize(A, B, dt, "zoh")
    state = torch.zeros(4, dtype=torch.float64)
    for value in u:
        state = A_bar @ state + B_bar * value
    torch.testing.assert_close(state, x, rtol=1e-9, atol=1e-10)


def test_discretize_errors():
    A, B = hippo_legs(3)
    with pytest.raises(ValueError, match="square"):
        discretize(torch.zeros(3, 4), torch.zeros(3), 0.1)
    with pytest.raises(ValueError, match="B must"):
        discretize(A, torch.zeros(4), 0.1)
    with pytest.raises(ValueError, match="B must"):
        discretize(A, torch.zeros(3, 1, 1), 0.1)
    for dt in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="dt"):
            discretize(A, B, dt)
    with pytest.raises(ValueError, match="method"):
        discretize(A, B, 0.1, "rk4")


# ------------------------------------------------------------ online function approximation
SAMPLES = 2000
TIMES = (np.arange(SAMPLES) + 1) / SAMPLES  # t_k = (k + 1)/L, the default grid of hippo_online


@pytest.mark.parametrize("method", ["zoh", "bilinear", "euler"])
def test_legs_remembers_a_constant_exactly(method):
    c = hippo_online(torch.full((50,), 2.5), 5, "legs", method=method)
    expected = torch.zeros(50, 5, dtype=torch.float64)
    expected[:, 0] = 2.5
    torch.testing.assert_close(c, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("measure, N, tolerance", [("legs", 12, 2e-3), ("legt", 16, 3e-3)])
def test_online_coefficients_approach_the_projection(measure, N, tolerance):
    online = hippo_online(torch.tensor(smooth(TIMES)), N, measure, theta=THETA, method="bilinear")[-1]
    error = (online - projection(smooth, N, measure)).abs().max().item()
    assert error < tolerance, f"{measure}: online vs quadrature projection differ by {error:.2e}"


@pytest.mark.parametrize("measure", ["legs", "legt"])
def test_reconstruction_error_decreases_with_N(measure):
    signal = torch.tensor(smooth(TIMES))
    x = torch.linspace(0, 1, 400, dtype=torch.float64)
    times = x.numpy() if measure == "legs" else 1 - THETA * (1 - x.numpy())
    target = torch.tensor(smooth(times))
    errors = []
    for N in (4, 8, 16):
        c = hippo_online(signal, N, measure, theta=THETA)[-1]
        errors.append((hippo_reconstruct(c, x, measure) - target).pow(2).mean().sqrt().item())
    assert errors[0] > errors[1] > errors[2], f"{measure} RMS errors {errors} should fall with N"
    assert errors[2] < 1e-2, f"{measure}: N=16 should reconstruct a smooth signal, RMS {errors[2]:.2e}"


def test_legt_forgets_what_left_the_window():
    """Two signals that differ only before t - θ end with (nearly) the same LegT state."""
    first = torch.tensor(smooth(TIMES))
    second = first.clone()
    second[: SAMPLES // 4] += 3.0  # a change long before the last window [0.5, 1]
    c1, c2 = (hippo_online(s, 16, "legt", theta=THETA)[-1] for s in (first, second))
    s1, s2 = (hippo_online(s, 16, "legs")[-1] for s in (first, second))
    assert (c1 - c2).abs().max() < 0.05 * (s1 - s2).abs().max(), "LegT should forget, LegS remember"


def test_batched_signals_match_one_by_one():
    signals = torch.randn(3, 40, dtype=torch.float64)
    batched = hippo_online(signals, 4, "legt", theta=0.3)
    for i in range(3):
        torch.testing.assert_close(batched[i], hippo_online(signals[i], 4, "legt", theta=0.3))


def test_online_and_reconstruct_errors():
    with pytest.raises(ValueError, match="measure"):
        hippo_online(torch.zeros(5), 3, "fourier")
    with pytest.raises(ValueError, match="signal"):
        hippo_online(torch.zeros(2, 2, 5), 3)
    with pytest.raises(ValueError, match="theta"):
        hippo_online(torch.zeros(5), 3, "legt", theta=0.0)
    with pytest.raises(ValueError, match="method"):
        hippo_online(torch.zeros(5), 3, "legt", method="rk4")
    with pytest.raises(ValueError, match="measure"):
        hippo_reconstruct(torch.zeros(3), torch.zeros(4), "fourier")
    with pytest.raises(ValueError, match="x must"):
        hippo_reconstruct(torch.zeros(3), torch.zeros(2, 2))


# ------------------------------------------------------------------------------ LagT
def test_lagt_matches_the_hand_derived_matrices():
    # c_n' = f - (c_0 + ... + c_n): ones on and below the diagonal, negated
    A, B = hippo_lagt(3)
    assert A.tolist() == [[-1.0, 0.0, 0.0], [-1.0, -1.0, 0.0], [-1.0, -1.0, -1.0]]
    assert B.tolist() == [1.0, 1.0, 1.0]


def test_laguerre_matches_numpy_and_is_orthonormal_under_exp():
    x = torch.linspace(0, 12, 25, dtype=torch.float64)
    ours = laguerre(7, x)
    for n in range(7):
        reference = np.polynomial.laguerre.Laguerre.basis(n)(x.numpy())
        np.testing.assert_allclose(ours[n].numpy(), reference, rtol=1e-11, atol=1e-11)
    nodes, weights = np.polynomial.laguerre.laggauss(30)  # ∫_0^∞ e^{-x} p(x) dx, exact for degree < 60
    g = hippo_reconstruct(torch.eye(7, dtype=torch.float64), torch.tensor(nodes), "lagt")
    torch.testing.assert_close(g @ torch.diag(torch.tensor(weights)) @ g.T, torch.eye(7, dtype=torch.float64))


def lagt_projection(samples, N, theta, dt, points=16):
    """c_n(T) = ∫_0^T f(s) L_n((T - s)/θ) e^{-(T - s)/θ} ds/θ for f held constant on each step.

    Gauss-Legendre quadrature on every step (independent of the ODE and its discretisation).
    """
    nodes, weights = np.polynomial.legendre.leggauss(points)
    T = len(samples) * dt
    total = np.zeros(N)
    for k, value in enumerate(samples):  # f = value on (k dt, (k + 1) dt]
        s = k * dt + (nodes + 1) / 2 * dt
        delay = (T - s) / theta
        basis = np.stack([np.polynomial.laguerre.Laguerre.basis(n)(delay) for n in range(N)])
        total += value * basis @ (np.exp(-delay) * weights * dt / 2) / theta
    return torch.tensor(total)


def test_lagt_zoh_recurrence_is_the_exact_projection_of_a_held_signal():
    # ZOH integrates the ODE exactly for a piecewise-constant input, so the recurrence must
    # reproduce the projection integral to rounding, for any step size.
    samples = np.random.default_rng(4).normal(size=120)
    theta, dt = 0.3, 1 / 120
    online = hippo_online(torch.tensor(samples), 6, "lagt", theta=theta, method="zoh")[-1]
    torch.testing.assert_close(online, lagt_projection(samples, 6, theta, dt), rtol=1e-9, atol=1e-10)


def test_lagt_remembers_a_long_constant_and_fades_old_input():
    c = hippo_online(torch.full((400,), 2.0), 5, "lagt", theta=0.02)[-1]  # history of 50 time constants
    expected = torch.zeros(5, dtype=torch.float64)
    expected[0] = 2.0  # ∫ L_n e^{-x} dx = 1 for n = 0, else 0
    torch.testing.assert_close(c, expected, rtol=0, atol=1e-9)
    # a spike 30 time constants ago has faded by e^{-30}, one time constant ago only by e^{-1}
    old, recent = torch.zeros(400), torch.zeros(400)
    old[400 - 1 - 240] = 1.0
    recent[400 - 1 - 8] = 1.0
    c_old, c_recent = (hippo_online(s, 5, "lagt", theta=0.02, method="zoh")[-1] for s in (old, recent))
    assert c_old.abs().max() < 1e-9 < c_recent.abs().max()


def test_lagt_reconstructs_the_recent_past():
    theta = 0.05
    signal = torch.tensor(smooth(TIMES))
    delays = torch.linspace(0, 2, 50, dtype=torch.float64)  # up to two time constants back
    target = torch.tensor(smooth(1 - theta * delays.numpy()))
    errors = []
    for N in (4, 8, 16):
        c = hippo_online(signal, N, "lagt", theta=theta, method="zoh")[-1]
        errors.append((hippo_reconstruct(c, delays, "lagt") - target).abs().max().item())
    assert errors[0] > errors[1] > errors[2], f"LagT errors {errors} should fall with N"
    assert errors[2] < 0.01, f"N=16 should reconstruct the last two time constants, max error {errors[2]:.2e}"
