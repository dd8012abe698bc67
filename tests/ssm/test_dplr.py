"""S4's DPLR kernel against the plain definition K_j = C Ā^j B̄.

References: the dense HiPPO-LegS matrices of :mod:`dlnotes.ssm.hippo` (the NPLR form must
reproduce them), and :func:`dlnotes.ssm.s4.ssm_kernel` run on the dense bilinear
discretisation (repeated matrix-vector products, no generating function, no FFT).
"""

import pytest
import torch

from dlnotes.ssm.dplr import dplr_kernel, legs_nplr
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
