"""The Triton causal-product kernels against the masked matrix product and autograd, in float64.

Under Triton's CPU interpreter shapes stay tiny (seq <= 70, head_dim 16); larger shapes
are under the ``gpu`` marker.
"""

import pytest
import torch

from dlnotes._triton import default_device
from dlnotes.attention.linear_triton import causal_linear_product

DEVICE = default_device()


def inputs(seq, head_dim=16, value_dim=16, batch=1, heads=2, dtype=torch.float32, seed=0, positive=False):
    generator = torch.Generator().manual_seed(seed)
    make = lambda d: torch.randn(batch, heads, seq, d, generator=generator)  # noqa: E731
    q, k, v = make(head_dim), make(head_dim), make(value_dim)
    if positive:  # feature-mapped inputs are typically positive
        q, k = q.exp(), k.exp()
    s0 = torch.randn(batch, heads, head_dim, value_dim, generator=generator)
    return [t.to(device=DEVICE, dtype=dtype) for t in (q, k, v, s0)]


def exact(q, k, v, s0, grad_out, grad_state):
    """Masked matrix product and its autograd gradients in float64."""
    q, k, v = (t.detach().double().requires_grad_() for t in (q, k, v))
    s0 = None if s0 is None else s0.detach().double().requires_grad_()
    out = torch.tril(q @ k.transpose(-2, -1)) @ v  # (Q K^T o M) V
    state = k.transpose(-2, -1) @ v
    if s0 is not None:
        out, state = out + q @ s0, state + s0
    leaves = (q, k, v) if s0 is None else (q, k, v, s0)
    loss = (out * grad_out.double()).sum() + (state * grad_state.double()).sum()
    return out.detach(), state.detach(), torch.autograd.grad(loss, leaves)


def close(actual, expected, rtol):
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual.double(), expected, rtol=rtol, atol=rtol * max(scale, 1.0))


@pytest.mark.parametrize("seq", [1, 16, 45, 70])
@pytest.mark.parametrize("chunk_size", [16, 32])
@pytest.mark.parametrize("with_state", [False, True])
def test_forward_and_backward_match_autograd(seq, chunk_size, with_state):
    q, k, v, s0 = inputs(seq, value_dim=8)
    s0 = s0.requires_grad_() if with_state else None
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    out, state = causal_linear_product(q, k, v, s0, chunk_size=chunk_size)
    grad_out, grad_state = torch.randn_like(out), torch.randn_like(state)
    leaves = (q, k, v) if s0 is None else (q, k, v, s0)
    grads = torch.autograd.grad((out * grad_out).sum() + (state * grad_state).sum(), leaves)
    e_out, e_state, e_grads = exact(q, k, v, s0, grad_out, grad_state)
    close(out, e_out, 1e-5)
    close(state, e_state, 1e-5)
    for grad, expected in zip(grads, e_grads):
        close(grad, expected, 1e-5)


def test_gradient_through_output_only():
    q, k, v, _ = inputs(37)
    q.requires_grad_()
    out, _ = causal_linear_product(q, k, v, chunk_size=16)
    (grad,) = torch.autograd.grad(out.sum(), q)
    _, _, (e_grad, _, _) = exact(q, k, v, None, torch.ones_like(out), torch.zeros(1, 2, 16, 16, device=DEVICE))
    close(grad, e_grad, 1e-5)


@pytest.mark.parametrize("head_dim, value_dim", [(16, 1), (8, 24), (32, 16)])
def test_head_sizes_are_padded(head_dim, value_dim):
    q, k, v, s0 = inputs(20, head_dim, value_dim)
    out, state = causal_linear_product(q, k, v, s0, chunk_size=16)
    e_out, e_state, _ = exact(q, k, v, s0, torch.zeros_like(out), torch.zeros_like(state))
    close(out, e_out, 1e-5)
    close(state, e_state, 1e-5)


def test_fp16_inputs():
    q, k, v, s0 = inputs(40, dtype=torch.float16, positive=True)
    q, k = q / 4, k / 4
    out, state = causal_linear_product(q, k, v, s0, chunk_size=16)
    assert out.dtype == state.dtype == torch.float16
    e_out, e_state, _ = exact(q, k, v, s0, torch.zeros_like(out), torch.zeros_like(state))
    close(out, e_out, 1e-2)
    close(state, e_state, 1e-2)


def test_bad_inputs_raise_clear_errors():
    q, k, v, s0 = inputs(8)
    with pytest.raises(ValueError, match="chunk_size must be 16, 32 or 64"):
        causal_linear_product(q, k, v, chunk_size=8)
    with pytest.raises(ValueError, match="chunk_size must be 16, 32 or 64"):
        causal_linear_product(q, k, v, chunk_size=128)  # too slow to compile natively (see the docstring)
    with pytest.raises(TypeError, match="chunk_size must be an int"):
        causal_linear_product(q, k, v, chunk_size=16.0)
    with pytest.raises(ValueError, match="must have the heads and length of q"):
        causal_linear_product(q, k[:, :, :4], v[:, :, :4])
    with pytest.raises(ValueError, match="must have the heads and length of q"):
        causal_linear_product(q, k[:, :1], v[:, :1])
    with pytest.raises(ValueError, match="head_dim and value_dim must be <= 128"):
        big = torch.zeros(1, 1, 4, 256, device=DEVICE)
        causal_linear_product(big, big, big)
    with pytest.raises(TypeError, match="dtype must be one of"):
        causal_linear_product(q.double(), k.double(), v.double())
    with pytest.raises(ValueError, match="initial_state must have shape"):
        causal_linear_product(q, k, v, s0.transpose(-2, -1)[..., :3])
    with pytest.raises(TypeError, match="initial_state must have the dtype of q"):
        causal_linear_product(q, k, v, s0.double())
    with pytest.raises(TypeError, match="initial_state must be a torch.Tensor"):
        causal_linear_product(q, k, v, [0.0])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-4), (torch.float16, 2e-2)])
@pytest.mark.parametrize("head_dim, chunk_size", [(64, 64), (128, 64)])
def test_gpu_sizes(dtype, rtol, head_dim, chunk_size):
    q, k, v, s0 = inputs(3000, head_dim, head_dim, batch=2, heads=4, dtype=dtype, positive=True)
    q, k = q / head_dim, k / head_dim
    q, k, v, s0 = (t.requires_grad_() for t in (q, k, v, s0))
    out, state = causal_linear_product(q, k, v, s0, chunk_size=chunk_size)
    grad_out, grad_state = torch.randn_like(out), torch.randn_like(state)
    grads = torch.autograd.grad((out * grad_out).sum() + (state * grad_state).sum(), (q, k, v, s0))
    e_out, e_state, e_grads = exact(q, k, v, s0, grad_out, grad_state)
    close(out, e_out, rtol)
    close(state, e_state, rtol)
    for grad, expected in zip(grads, e_grads):
        close(grad, expected, rtol)


def test_non_contiguous_inputs():
    q, k, v, s0 = inputs(30)
    q_strided = q.transpose(1, 2).contiguous().transpose(1, 2)  # same values, (seq, heads) strides swapped
    assert not q_strided.is_contiguous()
    out, state = causal_linear_product(q_strided, k, v[..., ::2], s0[..., ::2], chunk_size=16)
    e_out, e_state, _ = exact(q, k, v[..., ::2], s0[..., ::2], torch.zeros(1, 2, 30, 8, device=DEVICE), torch.zeros(1, 2, 16, 8, device=DEVICE))
    close(out, e_out, 1e-5)
    close(state, e_state, 1e-5)
