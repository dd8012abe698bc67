"""FlashAttention: online softmax, the tiled PyTorch reference and the Triton kernels.

Everything is compared with torch.nn.functional.scaled_dot_product_attention (math
backend) and autograd through it, in float64. Low-precision kernels must stay within
twice the error of a same-dtype PyTorch implementation. Triton runs in its interpreter
here, so shapes are tiny; larger shapes are under the ``gpu`` marker.
"""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode

from dlnotes._triton import INTERPRET, default_device, tl, triton
from dlnotes.attention.flash import flash_attention_reference, flash_attention_reference_backward, online_softmax
from dlnotes.attention.flash_triton import _cast, flash_attention
from dlnotes.attention.sdpa import attention_reference

LOW_PRECISION = (torch.float16, torch.bfloat16)


def lower_right(seq_q, seq_k, device="cpu"):
    return torch.ones(seq_q, seq_k, dtype=torch.bool, device=device).tril(diagonal=seq_k - seq_q)


def random_qkv(batch, heads, kv_heads, seq_q, seq_k, head_dim, dtype=torch.float32, device="cpu", seed=0):
    generator = torch.Generator().manual_seed(seed)
    shapes = [(batch, heads, seq_q, head_dim), (batch, kv_heads, seq_k, head_dim), (batch, kv_heads, seq_k, head_dim)]
    return [torch.randn(shape, generator=generator).to(device=device, dtype=dtype) for shape in shapes]


def exact(q, k, v, grad_out, causal, scale=None):
    """Output, lse and (dq, dk, dv) from SDPA's math backend and autograd, in float64."""
    q, k, v = (t.detach().double().requires_grad_() for t in (q, k, v))
    seq_q, seq_k = q.shape[2], k.shape[2]
    mask = lower_right(seq_q, seq_k, q.device) if causal else None
    with sdpa_kernel(SDPBackend.MATH):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=True)
    grads = torch.autograd.grad(out, (q, k, v), grad_out.double())
    scores = q @ k.repeat_interleave(q.shape[1] // k.shape[1], dim=1).transpose(-2, -1)
    scores = scores * (scale if scale is not None else q.shape[-1] ** -0.5)
    if causal:
        scores = scores.masked_fill(~mask, float("-inf"))
    return out.detach(), scores.logsumexp(dim=-1).detach(), grads


def max_error(a, b):
    return (a.double() - b.double()).abs().max().item()


def assert_lse_close(lse, expected, atol):
    finite = torch.isfinite(expected)
    assert torch.equal(torch.isfinite(lse), finite), "lse must be -inf exactly on rows that see no key"
    assert bool((lse[~finite] == float("-inf")).all()), "empty rows have lse -inf"
    torch.testing.assert_close(lse[finite].double(), expected[finite], rtol=atol, atol=atol)


# ------------------------------------------------------------------ online softmax


@settings(max_examples=80, deadline=None)
@given(
    rows=st.integers(1, 4),
    n=st.integers(1, 70),
    block=st.integers(1, 80),
    seed=st.integers(0, 2**16),
    masked=st.integers(0, 70),
)
def test_online_softmax_matches_torch(rows, n, block, seed, masked):
    x = 5 * torch.randn(rows, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x[0, : min(masked, n - 1)] = float("-inf")  # a masked prefix must not poison later blocks
    torch.testing.assert_close(online_softmax(x, block), torch.softmax(x, dim=-1), rtol=1e-12, atol=1e-12)


def test_online_softmax_edge_cases():
    x = torch.tensor([[1000.0, 1000.0, -1000.0], [float("-inf")] * 3])
    expected = torch.softmax(x, dim=-1)  # the all -inf row is NaN in torch, and here
    torch.testing.assert_close(online_softmax(x, 2), expected, equal_nan=True)
    half = torch.randn(3, 40).half()
    out = online_softmax(half, 7)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out, torch.softmax(half.float(), dim=-1).half())


@pytest.mark.parametrize(
    ("x", "block", "error", "match"),
    [
        (torch.arange(4), 2, TypeError, "floating-point"),
        (torch.tensor(1.0), 2, ValueError, "at least one dimension"),
        (torch.ones(4), 0, ValueError, "block must be >= 1"),
        (torch.ones(4), 2.5, TypeError, "block must be an int"),
    ],
)
def test_online_softmax_errors(x, block, error, match):
    with pytest.raises(error, match=match):
        online_softmax(x, block)


# ------------------------------------------------------------------ tiled PyTorch reference

REFERENCE_GRID = [
    # batch, heads, kv_heads, seq_q, seq_k, head_dim, causal, block_q, block_k
    (1, 2, 2, 1, 1, 16, True, 64, 64),
    (2, 2, 2, 17, 17, 16, True, 8, 8),
    (1, 4, 2, 64, 64, 32, True, 16, 32),
    (1, 2, 1, 129, 129, 16, False, 32, 16),
    (1, 3, 1, 17, 129, 8, True, 7, 13),
    (2, 2, 2, 129, 17, 16, True, 16, 16),
    (1, 2, 2, 33, 64, 16, False, 64, 64),
]


@pytest.mark.parametrize(("batch", "heads", "kv_heads", "seq_q", "seq_k", "head_dim", "causal", "block_q", "block_k"), REFERENCE_GRID)
def test_reference_matches_sdpa(batch, heads, kv_heads, seq_q, seq_k, head_dim, causal, block_q, block_k):
    q, k, v = random_qkv(batch, heads, kv_heads, seq_q, seq_k, head_dim, dtype=torch.float64)
    grad_out = torch.randn_like(q)
    out_ref, lse_ref, grads_ref = exact(q, k, v, grad_out, causal)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    out, lse = flash_attention_reference(q, k, v, causal=causal, block_q=block_q, block_k=block_k)
    torch.testing.assert_close(out, out_ref, rtol=1e-10, atol=1e-10)
    assert_lse_close(lse, lse_ref, 1e-10)
    grads = torch.autograd.grad(out, (q, k, v), grad_out)  # through flash_attention_reference_backward
    for name, ours, theirs in zip("qkv", grads, grads_ref):
        torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9, msg=f"d{name}")


def test_reference_fp32_and_custom_scale():
    q, k, v = random_qkv(1, 2, 1, 40, 50, 16)
    grad_out = torch.randn_like(q)
    out_ref, lse_ref, grads_ref = exact(q, k, v, grad_out, causal=True, scale=0.3)
    out, lse = flash_attention_reference(q, k, v, causal=True, scale=0.3, block_q=16, block_k=16)
    assert out.dtype == torch.float32 and lse.dtype == torch.float32
    torch.testing.assert_close(out.double(), out_ref, rtol=1e-5, atol=1e-5)
    assert_lse_close(lse, lse_ref, 1e-5)
    grads = flash_attention_reference_backward(q, k, v, out, lse, grad_out, causal=True, scale=0.3, block_q=16, block_k=16)
    for ours, theirs in zip(grads, grads_ref):
        torch.testing.assert_close(ours.double(), theirs, rtol=1e-5, atol=1e-5)


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an operation creates."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for tensor in result if isinstance(result, (tuple, list)) else (result,):
            if isinstance(tensor, torch.Tensor):
                self.largest = max(self.largest, tensor.numel())
        return result


def test_reference_never_materialises_the_score_matrix():
    seq = 256
    q, k, v = (t.requires_grad_() for t in random_qkv(1, 1, 1, seq, seq, 16))
    with LargestTensor() as forward:
        out, _ = flash_attention_reference(q, k, v, block_q=64, block_k=64)
    with LargestTensor() as backward:
        out.sum().backward()
    with LargestTensor() as naive:
        attention_reference(q, k, v)
    assert naive.largest == seq * seq, "the naive version builds the seq x seq matrix"
    assert max(forward.largest, backward.largest) <= seq * 16, (forward.largest, backward.largest)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"block_q": 0}, ValueError, "block_q must be >= 1"),
        ({"block_k": 1.5}, TypeError, "block_k must be an int"),
        ({"scale": "x"}, TypeError, "scale must be a real number"),
        ({"v_dim": 8}, ValueError, "head_dim of v"),
    ],
)
def test_reference_errors(kwargs, error, match):
    kwargs = dict(kwargs)
    q = torch.zeros(1, 2, 4, 16)
    v = torch.zeros(1, 2, 4, kwargs.pop("v_dim", 16))
    with pytest.raises(error, match=match):
        flash_attention_reference(q, q, v, **kwargs)


def test_reference_backward_shape_errors():
    q = torch.zeros(1, 2, 4, 16)
    out, lse = flash_attention_reference(q, q, q)
    with pytest.raises(ValueError, match="lse must have shape"):
        flash_attention_reference_backward(q, q, q, out, lse[..., :2], out)
    with pytest.raises(ValueError, match="grad_out must have the shape of q"):
        flash_attention_reference_backward(q, q, q, out, lse, out[:, :1])


# ------------------------------------------------------------------ Triton kernels

TRITON_GRID = [
    # batch, heads, kv_heads, seq_q, seq_k, head_dim, causal
    (1, 2, 2, 1, 1, 16, False),
    (1, 2, 2, 1, 1, 16, True),
    (1, 2, 2, 17, 17, 16, True),
    (1, 2, 1, 64, 64, 32, True),
    (1, 2, 2, 129, 129, 16, False),
    (1, 2, 2, 129, 129, 16, True),
    (1, 4, 2, 17, 129, 16, True),  # seq_q < seq_k: decoding-style, GQA
    (1, 2, 1, 129, 17, 32, True),  # seq_q > seq_k: the first 112 rows see no key (MQA)
    (2, 2, 1, 33, 70, 16, False),
]


def run_triton(q, k, v, grad_out, causal, scale=None):
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out, lse = flash_attention(q, k, v, causal=causal, scale=scale, return_lse=True)
    grads = torch.autograd.grad(out, (q, k, v), grad_out)
    return out.detach(), lse, grads


@pytest.mark.parametrize(("batch", "heads", "kv_heads", "seq_q", "seq_k", "head_dim", "causal"), TRITON_GRID)
def test_triton_fp32_matches_sdpa(batch, heads, kv_heads, seq_q, seq_k, head_dim, causal):
    device = default_device()
    q, k, v = random_qkv(batch, heads, kv_heads, seq_q, seq_k, head_dim, device=device)
    grad_out = torch.randn_like(q)
    out_ref, lse_ref, grads_ref = exact(q, k, v, grad_out, causal)
    out, lse, grads = run_triton(q, k, v, grad_out, causal)
    assert out.dtype == torch.float32 and lse.dtype == torch.float32 and lse.shape == (batch, heads, seq_q)
    torch.testing.assert_close(out.double(), out_ref, rtol=1e-4, atol=1e-4)
    assert_lse_close(lse, lse_ref, 1e-4)
    for name, ours, theirs in zip("qkv", grads, grads_ref):
        assert ours.shape == theirs.shape and ours.dtype == torch.float32
        torch.testing.assert_close(ours.double(), theirs, rtol=1e-4, atol=1e-4, msg=f"d{name}")


LOW_PRECISION_GRID = [
    (1, 2, 2, 64, 64, 32, True),
    (1, 4, 2, 17, 129, 16, False),
    (1, 2, 1, 129, 33, 16, True),
]


@pytest.mark.parametrize("dtype", LOW_PRECISION)
@pytest.mark.parametrize(("batch", "heads", "kv_heads", "seq_q", "seq_k", "head_dim", "causal"), LOW_PRECISION_GRID)
def test_triton_low_precision_within_twice_pytorch_error(dtype, batch, heads, kv_heads, seq_q, seq_k, head_dim, causal):
    device = default_device()
    q, k, v = random_qkv(batch, heads, kv_heads, seq_q, seq_k, head_dim, dtype=dtype, device=device)
    grad_out = torch.randn_like(q)
    out_ref, lse_ref, grads_ref = exact(q, k, v, grad_out, causal)  # float64 truth from the rounded inputs
    # The yardstick: the same computation done naively by PyTorch in the same dtype.
    qp, kp, vp = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out_pt = attention_reference(qp, kp, vp, causal=causal)
    grads_pt = torch.autograd.grad(out_pt, (qp, kp, vp), grad_out)
    out, lse, grads = run_triton(q, k, v, grad_out, causal)
    assert out.dtype == dtype and all(g.dtype == dtype for g in grads)
    assert_lse_close(lse, lse_ref, 1e-3)  # lse is accumulated and stored in fp32
    pairs = [("out", out, out_pt, out_ref)] + [(f"d{n}", a, b, c) for n, a, b, c in zip("qkv", grads, grads_pt, grads_ref)]
    for name, ours, pytorch, truth in pairs:
        ours_error, pytorch_error = max_error(ours, truth), max_error(pytorch, truth)
        assert ours_error <= 2 * pytorch_error + 1e-6, f"{name}: error {ours_error:.3g} > 2 x PyTorch's {pytorch_error:.3g}"


def test_triton_fully_masked_rows_are_zero_and_custom_scale():
    q, k, v = random_qkv(1, 2, 2, 40, 8, 16, device=default_device())
    out, lse = flash_attention(q, k, v, causal=True, scale=0.7, return_lse=True)
    assert torch.equal(out[:, :, :32], torch.zeros_like(out[:, :, :32])), "rows that see no key give zeros"
    assert bool((lse[:, :, :32] == float("-inf")).all())
    out_ref, _, _ = exact(q, k, v, torch.zeros_like(q), causal=True, scale=0.7)
    torch.testing.assert_close(out.double(), out_ref, rtol=1e-4, atol=1e-4)


def test_triton_non_contiguous_inputs_and_deterministic_backward():
    # (batch, seq, heads, dim) storage viewed as (batch, heads, seq, dim): strided, not contiguous.
    device = default_device()
    generator = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 33, 2, 16, generator=generator).to(device).transpose(1, 2) for _ in range(3))
    assert not q.is_contiguous()
    grad_out = torch.randn(1, 2, 33, 16, generator=generator).to(device)
    first = run_triton(q, k, v, grad_out, causal=True)
    second = run_triton(q, k, v, grad_out, causal=True)
    for a, b in zip(first[2], second[2]):
        assert torch.equal(a, b), "no atomics: two backward passes agree bit for bit"
    out_ref, _, grads_ref = exact(q, k, v, grad_out, causal=True)
    torch.testing.assert_close(first[0].double(), out_ref, rtol=1e-4, atol=1e-4)
    for ours, theirs in zip(first[2], grads_ref):
        torch.testing.assert_close(ours.double(), theirs, rtol=1e-4, atol=1e-4)


@triton.jit
def _cast_kernel(x_ptr, out_ptr, n, EMULATE_BF16: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offsets, mask=offsets < n)
    tl.store(out_ptr + offsets, _cast(x, tl.bfloat16, EMULATE_BF16), mask=offsets < n)


def test_bf16_cast_rounds_like_torch():
    # Values straddling bf16 rounding boundaries, ties included; torch rounds to nearest-even.
    # (Subnormals are left out: the interpreter flushes bf16 subnormals, below 1.2e-38, to zero.)
    base = torch.tensor([1.0, -3.0, 1e-3, 7e4, 2.5], dtype=torch.float32)
    bits = base.view(torch.int32)
    x = torch.cat([(bits + delta).view(torch.float32) for delta in (0, 0x7FFF, 0x8000, 0x8001, 0x18000, 0xFFFF)])
    x = x.to(default_device())
    out = torch.empty(x.numel(), dtype=torch.bfloat16, device=x.device)
    _cast_kernel[(1,)](x, out, x.numel(), EMULATE_BF16=INTERPRET, BLOCK=64)
    assert torch.equal(out, x.to(torch.bfloat16)), (out, x.to(torch.bfloat16))


def test_triton_return_lse_flag():
    q, k, v = random_qkv(1, 2, 2, 5, 5, 16, device=default_device())
    out = flash_attention(q, k, v)
    assert isinstance(out, torch.Tensor) and out.shape == q.shape


@pytest.mark.parametrize(
    ("shapes", "dtype", "error", "match"),
    [
        (((1, 2, 8, 16), (2, 2, 8, 16), (2, 2, 8, 16)), torch.float32, ValueError, "batch sizes differ"),
        (((1, 2, 8, 16), (1, 2, 8, 32), (1, 2, 8, 32)), torch.float32, ValueError, "head_dim of q and k must match"),
        (((1, 6, 8, 16), (1, 4, 8, 16), (1, 4, 8, 16)), torch.float32, ValueError, "multiple of kv_heads"),
        (((1, 2, 8, 48), (1, 2, 8, 48), (1, 2, 8, 48)), torch.float32, ValueError, "head_dim must be one of \\[16, 32, 64, 128\\]"),
        (((1, 2, 8, 8), (1, 2, 8, 8), (1, 2, 8, 8)), torch.float32, ValueError, "head_dim must be one of"),
        (((1, 2, 8, 16), (1, 2, 8, 16), (1, 2, 8, 32)), torch.float32, ValueError, "head_dim of v"),
        (((1, 2, 8, 16), (1, 2, 8, 16), (1, 2, 8, 16)), torch.int32, TypeError, "floating dtype"),
        (((1, 2, 8, 16), (1, 2, 8, 16), (1, 2, 8, 16)), torch.float64, TypeError, "dtype must be one of"),
    ],
)
def test_triton_input_errors(shapes, dtype, error, match):
    q, k, v = (torch.zeros(shape, dtype=dtype, device=default_device()) for shape in shapes)
    with pytest.raises(error, match=match):
        flash_attention(q, k, v)


def test_triton_device_errors():
    q = torch.zeros(1, 2, 8, 16, device=default_device())
    other = torch.zeros(1, 2, 8, 16, device="meta")
    with pytest.raises(ValueError, match="must be on one device"):
        flash_attention(q, other, other)
    with pytest.raises(ValueError, match="must be (cpu|cuda) tensors"):
        flash_attention(other, other, other)
    with pytest.raises(TypeError, match="scale must be a real number"):
        flash_attention(q, q, q, scale="1")


# ------------------------------------------------------------------ GPU only


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, *LOW_PRECISION])
@pytest.mark.parametrize(
    ("batch", "heads", "kv_heads", "seq_q", "seq_k", "head_dim", "causal"),
    [
        (2, 8, 8, 1024, 1024, 64, True),
        (2, 8, 2, 1000, 1000, 128, False),
        (2, 8, 8, 1024, 1024, 128, False),
        (1, 4, 4, 256, 256, 128, False),
        (2, 8, 8, 1024, 1024, 128, True),
        (1, 8, 1, 257, 2049, 64, True),
        (2, 4, 4, 2049, 513, 32, True),
        (1, 4, 4, 4096, 4096, 16, True),
    ],
)
def test_gpu_larger_shapes(dtype, batch, heads, kv_heads, seq_q, seq_k, head_dim, causal):
    assert not INTERPRET
    q, k, v = random_qkv(batch, heads, kv_heads, seq_q, seq_k, head_dim, dtype=dtype, device="cuda")
    grad_out = torch.randn_like(q)
    out_ref, lse_ref, grads_ref = exact(q, k, v, grad_out, causal)
    out, lse, grads = run_triton(q, k, v, grad_out, causal)
    if dtype == torch.float32:
        torch.testing.assert_close(out.double(), out_ref, rtol=1e-4, atol=1e-4)
        assert_lse_close(lse, lse_ref, 1e-4)
        for ours, theirs in zip(grads, grads_ref):
            torch.testing.assert_close(ours.double(), theirs, rtol=1e-4, atol=1e-4)
        return
    qp, kp, vp = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out_pt = attention_reference(qp, kp, vp, causal=causal)
    grads_pt = torch.autograd.grad(out_pt, (qp, kp, vp), grad_out)
    pairs = [("out", out, out_pt, out_ref)] + [(f"d{n}", a, b, c) for n, a, b, c in zip("qkv", grads, grads_pt, grads_ref)]
    for name, ours, pytorch, truth in pairs:
        ours_error, pytorch_error = max_error(ours, truth), max_error(pytorch, truth)
        assert ours_error <= 2 * pytorch_error + 1e-6, f"{name}: error {ours_error:.3g} > 2 x PyTorch's {pytorch_error:.3g}"
