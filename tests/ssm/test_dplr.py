"""S4's DPLR kernel against the plain definition K_j = C Ā^j B̄.

References: the dense HiPPO-LegS matrices of :mod:`dlnotes.ssm.hippo` (the NPLR form must
reproduce them), and :func:`dlnotes.ssm.s4.ssm_kernel` run on the dense bilinear
discretisation (repeated matrix-vector products, no generating function, no FFT).
"""

import pytest
import torch

from dlnotes.ssm.dplr import S4Layer, dplr_kernel, legs_nplr
from dlnotes.ssm.hippo import discretize, hippo_legs
from dlnotes.ssm.s4 import ssm_kernel


def complex_randn(generator, *shape):
    return torch.complex(torch.randn(*shape, generator=generator, dtype=torch.float64),
                         torch.randn(*shape, generator=generator, dtype=torch.float64))


@pytest.mark.parametrize("N", [1, 2, 7, 32])
def test_legs_nplr_reproduces_the_hippo_matrices(N):
    nplr = legs_nplr(N)
    A, B = hippo_legs(N)
    V = nplr.V
    eye = torch.eye(N, dtype=torch.complex128)
    torch.testing.assert_close(V.conj().T @ V, eye, rtol=0, atol=1e-12)  # unitary
    dense = V @ (torch.diag(nplr.Lambda) - torch.outer(nplr.P, nplr.P.conj())) @ V.conj().T
    torch.testing.assert_close(dense, A.to(torch.complex128), rtol=0, atol=1e-11)
    torch.testing.assert_close(V @ nplr.B, B.to(torch.complex128), rtol=0, atol=1e-12)
    torch.testing.assert_close(nplr.Lambda.real, torch.full((N,), -0.5, dtype=torch.float64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("length", [1, 2, 255, 256, 1000])
@pytest.mark.parametrize("dt", [1e-3, 0.05])
def test_legs_kernel_equals_the_dense_definition(length, dt):
    N = 16
    nplr = legs_nplr(N)
    A, B = hippo_legs(N)
    C = torch.randn(N, generator=torch.Generator().manual_seed(length), dtype=torch.float64)
    A_bar, B_bar = discretize(A, B, dt, "bilinear")
    expected = ssm_kernel(A_bar, B_bar, C, length)
    K = dplr_kernel(nplr.Lambda, nplr.P, nplr.P, nplr.B, C.to(torch.complex128) @ nplr.V, dt, length)
    scale = expected.abs().max().item()
    assert K.imag.abs().max().item() < 1e-12 * max(scale, 1.0), "a real system has a real kernel"
    torch.testing.assert_close(K.real, expected, rtol=0, atol=1e-11 * max(scale, 1.0))


def test_large_state_long_kernel():
    N, length, dt = 64, 4096, 1e-3
    nplr = legs_nplr(N)
    A, B = hippo_legs(N)
    C = torch.randn(N, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = ssm_kernel(*discretize(A, B, dt, "bilinear"), C, length)
    K = dplr_kernel(nplr.Lambda, nplr.P, nplr.P, nplr.B, C.to(torch.complex128) @ nplr.V, dt, length)
    torch.testing.assert_close(K.real, expected, rtol=0, atol=1e-10 * expected.abs().max().item())


def test_general_complex_dplr_with_distinct_factors():
    generator = torch.Generator().manual_seed(0)
    N = 8
    Lambda = -0.2 - torch.rand(N, generator=generator, dtype=torch.float64) + 3j * torch.randn(
        N, generator=generator, dtype=torch.float64
    )
    P, Q = 0.3 * complex_randn(generator, N), 0.3 * complex_randn(generator, N)
    B, C = complex_randn(generator, N), complex_randn(generator, N)
    dense = torch.diag(Lambda) - torch.outer(P, Q.conj())
    expected = ssm_kernel(*discretize(dense, B, 0.1, "bilinear"), C, 100)
    torch.testing.assert_close(dplr_kernel(Lambda, P, Q, B, C, 0.1, 100), expected, rtol=0, atol=1e-12)


def test_bad_inputs_raise_clear_errors():
    nplr = legs_nplr(4)
    args = dict(Lambda=nplr.Lambda, P=nplr.P, Q=nplr.P, B=nplr.B, C=nplr.B, dt=0.1, length=8)
    with pytest.raises(TypeError, match="C must be a complex tensor"):
        dplr_kernel(**dict(args, C=nplr.B.real))
    with pytest.raises(ValueError, match="P must have shape \\(4,\\)"):
        dplr_kernel(**dict(args, P=nplr.P[:3]))
    with pytest.raises(ValueError, match="dt must be positive"):
        dplr_kernel(**dict(args, dt=0.0))
    with pytest.raises(ValueError, match="length must be a positive integer"):
        dplr_kernel(**dict(args, length=0))
    with pytest.raises(ValueError, match="N must"):
        legs_nplr(0)


# ------------------------------------------------------------------------------ S4Layer
def s4_layer(d_model=3, d_state=8, l_max=64, seed=0):
    torch.manual_seed(seed)
    return S4Layer(d_model, d_state, l_max=l_max).double()


def test_conjugate_halves_rebuild_hippo_legs():
    # The layer stores the modes with Im λ > 0 and treats the others as their conjugates;
    # with conjugated eigenvectors that is again an eigenbasis of LegS.
    nplr = legs_nplr(8)
    keep = nplr.Lambda.imag > 0
    assert int(keep.sum()) == 4
    full = lambda t: torch.cat([t[keep], t[keep].conj()])  # noqa: E731
    V = torch.cat([nplr.V[:, keep], nplr.V[:, keep].conj()], dim=1)
    P = full(nplr.P)
    A, B = hippo_legs(8)
    dense = V @ (torch.diag(full(nplr.Lambda)) - torch.outer(P, P.conj())) @ V.conj().T
    torch.testing.assert_close(dense, A.to(torch.complex128), rtol=0, atol=1e-11)
    torch.testing.assert_close(V @ full(nplr.B), B.to(torch.complex128), rtol=0, atol=1e-12)


def test_s4_layer_starts_as_hippo_legs():
    layer = S4Layer(2, 8, l_max=16)
    nplr = legs_nplr(8)
    keep = nplr.Lambda.imag > 0
    for stored, expected in ((layer.A, nplr.Lambda), (torch.view_as_complex(layer.P), nplr.P),
                             (torch.view_as_complex(layer.B), nplr.B)):
        torch.testing.assert_close(stored, expected[keep].to(torch.complex64).expand(2, -1))


@pytest.mark.parametrize("length", [64, 17])
def test_s4_layer_kernel_equals_its_dense_system(length):
    layer = s4_layer()
    with torch.no_grad():
        layer.C_tilde.normal_()  # any C̃, not only the initial one
        kernel = layer.kernel(length)
        A_bar, B_bar, C = layer.dense_system()
        for h in range(layer.d_model):
            expected = ssm_kernel(A_bar[h], B_bar[h], C[h], length)
            assert expected.imag.abs().max() < 1e-10, "conjugate pairs make the system real"
            torch.testing.assert_close(kernel[h], expected.real, rtol=0, atol=1e-10)


def test_s4_layer_step_equals_forward():
    layer = s4_layer()
    x = torch.randn(2, 40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = layer(x)
        state, outputs = None, []
        for t in range(40):
            out, state = layer.step(x[:, t], state)
            outputs.append(out)
    torch.testing.assert_close(torch.stack(outputs, dim=1), full, rtol=0, atol=1e-9)


def test_s4_layer_fast_step_equals_the_dense_recurrence():
    layer = s4_layer()
    generator = torch.Generator().manual_seed(3)
    state = torch.complex(*(torch.randn(2, 3, 8, generator=generator, dtype=torch.float64) for _ in range(2)))
    u = torch.randn(2, 3, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        _, fast = layer.step(u, state)
        A_bar, B_bar, _ = layer.dense_system()
    dense = (A_bar @ state[..., None])[..., 0] + B_bar * u[..., None]
    torch.testing.assert_close(fast, dense, rtol=0, atol=1e-12)


def test_s4_layer_step_cache_follows_parameter_updates():
    layer = s4_layer()
    u = torch.randn(1, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        before, _ = layer.step(u)
        layer.C_tilde.add_(0.5)  # an in-place update, as an optimiser makes
        after, _ = layer.step(u)
    fresh, _ = layer.step(u)  # gradients on: C is recomputed, and differentiable
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, fresh.detach(), rtol=0, atol=1e-12)
    fresh.sum().backward()
    assert layer.C_tilde.grad is not None and layer.C_tilde.grad.abs().sum() > 0


def test_s4_layer_learns_a_delay():
    """Copy the input five steps late: trainable through the DPLR kernel (Λ, P, B, C̃, Δ)."""
    torch.manual_seed(0)
    layer = S4Layer(d_model=4, d_state=16, l_max=64)
    readout = torch.nn.Linear(4, 1)
    optimizer = torch.optim.Adam([*layer.parameters(), *readout.parameters()], lr=1e-2)
    generator = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(150):
        u = torch.randn(16, 64, 1, generator=generator)
        target = torch.nn.functional.pad(u, (0, 0, 5, 0))[:, :64]
        prediction = readout(layer(u.expand(-1, -1, 4)))
        loss = (prediction - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(p).all() for p in layer.parameters())
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10, (losses[:3], losses[-3:])


def test_s4_layer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="l_max must be a positive integer"):
        S4Layer(2, 8, l_max=0)
    with pytest.raises(ValueError, match="exceeds l_max=16"):
        S4Layer(2, 8, l_max=16)(torch.zeros(1, 17, 2))
    with pytest.raises(ValueError, match="state must be"):
        S4Layer(2, 8, l_max=16).step(torch.zeros(1, 2), torch.zeros(1, 2, 4, dtype=torch.complex64))
