"""Shared attention plumbing against torch.nn.functional.scaled_dot_product_attention."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.attention import SDPBackend, sdpa_kernel

from dlnotes.attention.sdpa import (
    AttentionShape,
    attention_reference,
    causal_mask,
    check_attention_inputs,
    repeat_kv,
    resolve_scale,
)


def sdpa_math(q, k, v, mask=None, scale=None):
    """PyTorch's math backend: an implementation that shares no code with dlnotes."""
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=True)


def lower_right(seq_q, seq_k):
    """Bottom-right causal mask written independently: keep the diagonal seq_k - seq_q and below."""
    return torch.ones(seq_q, seq_k, dtype=torch.bool).tril(diagonal=seq_k - seq_q)


def random_qkv(batch, heads, kv_heads, seq_q, seq_k, head_dim, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, seq_q, head_dim, generator=generator, dtype=dtype)
    k = torch.randn(batch, kv_heads, seq_k, head_dim, generator=generator, dtype=dtype)
    v = torch.randn(batch, kv_heads, seq_k, head_dim, generator=generator, dtype=dtype)
    return q, k, v


# ------------------------------------------------------------------ check_attention_inputs


def test_check_returns_sizes():
    q, k, v = torch.zeros(2, 6, 5, 16), torch.zeros(2, 3, 7, 16), torch.zeros(2, 3, 7, 8)
    assert check_attention_inputs(q, k, v) == AttentionShape(2, 6, 3, 5, 7, 16, 8)


@pytest.mark.parametrize(
    ("q", "k", "v", "kwargs", "error", "match"),
    [
        ([1, 2, 4, 8], [1, 2, 4, 8], "list", {}, TypeError, "v must be a torch.Tensor"),
        ([1, 2, 4, 8], [1, 2, 4, 8], [1, 2, 4, 8], {"int": "q"}, TypeError, "q must have a floating dtype"),
        ([2, 4, 8], [1, 2, 4, 8], [1, 2, 4, 8], {}, ValueError, "q must be 4-D"),
        ([1, 2, 4, 8], [1, 2, 4, 8], [1, 2, 4, 8], {"half": "k"}, TypeError, "share one dtype"),
        ([1, 2, 4, 8], [1, 2, 4, 8], [1, 2, 4, 8], {"dtypes": (torch.float16,)}, TypeError, "dtype must be one of"),
        ([1, 2, 4, 8], [2, 2, 4, 8], [2, 2, 4, 8], {}, ValueError, "batch sizes differ"),
        ([1, 2, 4, 8], [1, 2, 4, 8], [1, 1, 4, 8], {}, ValueError, "k and v must agree"),
        ([1, 2, 4, 8], [1, 2, 4, 8], [1, 2, 5, 8], {}, ValueError, "k and v must agree"),
        ([1, 2, 4, 8], [1, 2, 4, 16], [1, 2, 4, 16], {}, ValueError, "head_dim of q and k must match, got 8 and 16"),
        ([1, 6, 4, 8], [1, 4, 4, 8], [1, 4, 4, 8], {}, ValueError, "heads \\(6\\) must be a positive multiple of kv_heads \\(4\\)"),
        ([1, 2, 4, 8], [1, 0, 4, 8], [1, 0, 4, 8], {}, ValueError, "positive multiple of kv_heads \\(0\\)"),
        ([1, 2, 0, 8], [1, 2, 4, 8], [1, 2, 4, 8], {}, ValueError, "must be positive"),
        ([1, 2, 4, 8], [1, 2, 4, 8], [1, 2, 4, 8], {"head_dims": (16, 32)}, ValueError, "head_dim must be one of"),
        ([1, 2, 4, 8], [1, 2, 4, 8], [1, 2, 4, 4], {"same_value_dim": True}, ValueError, "head_dim of v"),
    ],
)
def test_check_errors(q, k, v, kwargs, error, match):
    kwargs = dict(kwargs)
    tensors = {name: (value if isinstance(value, str) else torch.zeros(value)) for name, value in zip("qkv", (q, k, v))}
    if "int" in kwargs:
        name = kwargs.pop("int")
        tensors[name] = tensors[name].long()
    if "half" in kwargs:
        name = kwargs.pop("half")
        tensors[name] = tensors[name].half()
    with pytest.raises(error, match=match):
        check_attention_inputs(tensors["q"], tensors["k"], tensors["v"], **kwargs)


def test_check_rejects_mixed_devices():
    q = torch.zeros(1, 2, 4, 8)
    k = torch.zeros(1, 2, 4, 8, device="meta")
    with pytest.raises(ValueError, match="must be on one device"):
        check_attention_inputs(q, k, k)


# ------------------------------------------------------------------ causal_mask


@settings(max_examples=60, deadline=None)
@given(seq_q=st.integers(0, 20), seq_k=st.integers(0, 20))
def test_causal_mask_is_bottom_right_triangle(seq_q, seq_k):
    mask = causal_mask(seq_q, seq_k)
    assert mask.dtype == torch.bool and mask.shape == (seq_q, seq_k)
    for i in range(seq_q):
        for j in range(seq_k):
            # query i is the (seq_k - seq_q + i)-th token of the key sequence
            assert bool(mask[i, j]) == (j <= seq_k - seq_q + i), (i, j)
    if seq_q and seq_k:
        assert bool(mask[-1].all()), "the last query sees every key"


def test_causal_mask_matches_torch_lower_right_bias():
    from torch.nn.attention.bias import causal_lower_right

    for seq_q, seq_k in [(5, 5), (3, 8), (8, 8), (1, 9)]:
        expected = causal_lower_right(seq_q, seq_k)._materialize(torch.device("cpu"))
        assert torch.equal(causal_mask(seq_q, seq_k), expected), (seq_q, seq_k)


@pytest.mark.parametrize(
    ("seq_q", "seq_k", "error", "match"),
    [(-1, 3, ValueError, "seq_q must be >= 0"), (3, 2.0, TypeError, "seq_k must be an int"), (True, 3, TypeError, "seq_q")],
)
def test_causal_mask_errors(seq_q, seq_k, error, match):
    with pytest.raises(error, match=match):
        causal_mask(seq_q, seq_k)


# ------------------------------------------------------------------ repeat_kv


@pytest.mark.parametrize("n_rep", [1, 2, 3])
def test_repeat_kv_matches_repeat_interleave(n_rep):
    k = torch.randn(2, 3, 5, 4)
    repeated = repeat_kv(k, n_rep)
    assert torch.equal(repeated, k.repeat_interleave(n_rep, dim=1))
    if n_rep == 1:
        assert repeated is k


@pytest.mark.parametrize(
    ("k", "n_rep", "error", "match"),
    [
        (torch.zeros(2, 3, 4), 2, ValueError, "k must be 4-D"),
        (torch.zeros(1, 2, 3, 4), 0, ValueError, "n_rep must be >= 1"),
        (torch.zeros(1, 2, 3, 4), 2.0, TypeError, "n_rep must be an int"),
        ([1.0], 2, TypeError, "k must be a torch.Tensor"),
    ],
)
def test_repeat_kv_errors(k, n_rep, error, match):
    with pytest.raises(error, match=match):
        repeat_kv(k, n_rep)


# ------------------------------------------------------------------ attention_reference


@pytest.mark.parametrize(
    ("heads", "kv_heads", "seq_q", "seq_k", "causal"),
    [(2, 2, 1, 1, False), (2, 2, 17, 17, True), (4, 2, 17, 9, True), (4, 1, 9, 33, True), (3, 3, 64, 129, False)],
)
def test_reference_matches_sdpa_with_gradients(heads, kv_heads, seq_q, seq_k, causal):
    q, k, v = (t.requires_grad_() for t in random_qkv(2, heads, kv_heads, seq_q, seq_k, 8))
    mask = lower_right(seq_q, seq_k) if causal else None
    ours = attention_reference(q, k, v, causal=causal)
    theirs = sdpa_math(q, k, v, mask)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
    grad = torch.randn_like(ours)
    for a, b in zip(torch.autograd.grad(ours, (q, k, v), grad), torch.autograd.grad(theirs, (q, k, v), grad)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_reference_bool_and_float_masks_and_scale():
    q, k, v = random_qkv(1, 2, 2, 6, 7, 4)
    mask = torch.rand(2, 6, 7, generator=torch.Generator().manual_seed(1)) > 0.3
    mask[:, :, 0] = True  # keep every row non-empty so SDPA has no NaN
    torch.testing.assert_close(attention_reference(q, k, v, mask=mask, scale=0.3), sdpa_math(q, k, v, mask, scale=0.3))
    bias = torch.randn(1, 1, 6, 7, dtype=torch.float64)
    torch.testing.assert_close(attention_reference(q, k, v, mask=bias), sdpa_math(q, k, v, bias))


def test_reference_fully_masked_rows_are_zero():
    q, k, v = random_qkv(1, 2, 2, 6, 3, 4)  # causal with seq_q > seq_k: the first 3 rows see nothing
    out = attention_reference(q, k, v, causal=True)
    assert torch.equal(out[:, :, :3], torch.zeros_like(out[:, :, :3]))
    torch.testing.assert_close(out[:, :, 3:], sdpa_math(q, k, v, lower_right(6, 3))[:, :, 3:])
    q.requires_grad_()
    (grad,) = torch.autograd.grad(attention_reference(q, k, v, causal=True).sum(), q)
    assert torch.isfinite(grad).all(), "gradient through an empty row must not be NaN"


def test_reference_keeps_low_precision_dtype():
    q, k, v = random_qkv(1, 2, 2, 16, 16, 8, dtype=torch.float32)
    exact = sdpa_math(q.double(), k.double(), v.double())
    for dtype in (torch.float16, torch.bfloat16):
        out = attention_reference(q.to(dtype), k.to(dtype), v.to(dtype), causal=False)
        assert out.dtype == dtype
        torch.testing.assert_close(out.double(), exact, rtol=0.05, atol=0.05)


@pytest.mark.parametrize(
    ("mask", "scale", "error", "match"),
    [
        (torch.zeros(3, 4, 4, dtype=torch.bool), None, ValueError, "does not broadcast"),
        (torch.zeros(4, 4, dtype=torch.int64), None, TypeError, "mask must be bool"),
        ("causal", None, TypeError, "mask must be a torch.Tensor"),
        (None, "0.5", TypeError, "scale must be a real number"),
        (None, float("nan"), ValueError, "scale must be finite"),
    ],
)
def test_reference_errors(mask, scale, error, match):
    q = torch.zeros(1, 2, 4, 8)
    with pytest.raises(error, match=match):
        attention_reference(q, q, q, mask=mask, scale=scale)


def test_resolve_scale_default():
    assert resolve_scale(None, 64) == 0.125
    assert resolve_scale(2, 64) == 2.0
