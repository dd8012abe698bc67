"""Linear attention: every form against a brute-force per-query loop in float64.

The reference below is written independently of ``dlnotes.attention.linear``: feature maps
straight from ``torch.nn.functional``, a Python loop over queries with an explicit list of
visible keys, RoPE as complex multiplication. Implementations run in float32 (the task's
precision) or float64 (for gradients).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlnotes._triton import default_device
from dlnotes.attention.linear import METHODS, LinearAttentionState, feature_map_pair, linear_attention

CAUSAL_METHODS = METHODS  # every method handles both causal and non-causal inputs
SCAN_METHODS = ("recurrent", "cumsum", "chunked", "triton")

PHI = {
    "elu": lambda x: F.elu(x) + 1,
    "relu": F.relu,
    "identity": lambda x: x,
}


def rotate(x, positions, base=10000.0):
    """RoPE, 'half' layout (channel j pairs with j + d/2), as complex multiplication in fp64."""
    d = x.shape[-1]
    z = torch.complex(x[..., : d // 2].double(), x[..., d // 2 :].double())
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    z = z * torch.polar(torch.ones((), dtype=torch.float64), positions.double()[:, None] * theta).to(z.dtype)
    return torch.cat([z.real, z.imag], dim=-1)


def brute_force(q, k, v, causal=True, feature="elu", normalize=True, kv0=None, z0=None, positions=None, eps=1e-6):
    """Output and final state, one query at a time, in float64."""
    q, k, v = q.double(), k.double(), v.double()
    n_rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(n_rep, dim=1), v.repeat_interleave(n_rep, dim=1)
    pq, pk = PHI[feature](q), PHI[feature](k)
    rq, rk = (rotate(pq, positions), rotate(pk, positions)) if positions is not None else (pq, pk)
    outs = []
    for i in range(q.shape[2]):
        visible = range(i + 1) if causal else range(k.shape[2])
        num = sum(((rq[:, :, i] * rk[:, :, j]).sum(-1, keepdim=True) * v[:, :, j] for j in visible))
        den = sum(((pq[:, :, i] * pk[:, :, j]).sum(-1, keepdim=True) for j in visible))
        if kv0 is not None:
            num = num + torch.einsum("bhd,bhde->bhe", rq[:, :, i], kv0.double())
        if z0 is not None:
            den = den + (pq[:, :, i] * z0.double()).sum(-1, keepdim=True)
        outs.append(num / (den + eps) if normalize else num)
    kv = torch.einsum("bhnd,bhne->bhde", rk, v) + (0 if kv0 is None else kv0.double())
    z = pk.sum(dim=2) + (0 if z0 is None else z0.double())
    return torch.stack(outs, dim=2), kv, z


def attend(q, k, v, method, initial_state=None, rope_positions=None, **kwargs):
    """``linear_attention`` on the device the method needs, results back on the CPU.

    The Triton kernel takes CUDA tensors on a GPU (CPU ones under the interpreter); the
    other methods run on the CPU. Gradients flow back through ``.to`` to the CPU leaves.
    """
    device = default_device() if method == "triton" else torch.device("cpu")
    move = lambda t: None if t is None else t.to(device)  # noqa: E731
    if initial_state is not None:
        initial_state = LinearAttentionState(*map(move, initial_state))
    result = linear_attention(move(q), move(k), move(v), method=method, initial_state=initial_state,
                              rope_positions=move(rope_positions), **kwargs)
    if isinstance(result, tuple):
        out, state = result
        return out.cpu(), LinearAttentionState(*(None if t is None else t.cpu() for t in state))
    return result.cpu()


def qkv(batch=2, heads=2, kv_heads=2, seq=13, head_dim=16, value_dim=16, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    make = lambda h, d: torch.randn(batch, h, seq, d, generator=generator, dtype=torch.float64).to(dtype)  # noqa: E731
    return make(heads, head_dim), make(kv_heads, head_dim), make(kv_heads, value_dim)


def assert_fp32_close(actual, expected):
    """fp32 against an fp64 reference: rtol 1e-5 plus an atol relative to the output's scale."""
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=1e-5 * max(scale, 1.0))


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("feature, normalize", [("elu", True), ("relu", True), ("elu", False), ("identity", False)])
def test_every_form_equals_brute_force(method, causal, feature, normalize):
    q, k, v = qkv(seq=37, value_dim=8)
    out, state = attend(
        q, k, v, causal=causal, feature_map=feature, normalize=normalize, method=method, chunk_size=16,
        return_final_state=True,
    )
    expected, kv, z = brute_force(q, k, v, causal, feature, normalize)
    assert out.dtype == torch.float32 and out.shape == (2, 2, 37, 8)
    assert_fp32_close(out, expected)
    assert_fp32_close(state.kv, kv)
    assert_fp32_close(state.k_sum, z)


def test_identity_without_normaliser_is_masked_matrix_product():
    q, k, v = qkv(seq=20, dtype=torch.float64)
    expected = torch.tril(q @ k.transpose(-2, -1)) @ v  # (Q K^T o M) V, no feature map
    for method in METHODS[:-1]:  # the Triton kernel takes fp32/fp16 only: covered by the test above
        out = linear_attention(q, k, v, feature_map="identity", normalize=False, method=method, chunk_size=16)
        torch.testing.assert_close(out, expected, msg=f"method {method}")
    torch.testing.assert_close(
        linear_attention(q, k, v, causal=False, feature_map="identity", normalize=False), (q @ k.transpose(-2, -1)) @ v
    )


@settings(max_examples=40, deadline=None)
@given(seq=st.integers(1, 70), chunk_size=st.integers(1, 80), value_dim=st.integers(1, 9))
def test_chunked_any_length_any_chunk_size(seq, chunk_size, value_dim):
    q, k, v = qkv(batch=1, heads=1, kv_heads=1, seq=seq, head_dim=4, value_dim=value_dim, seed=seq)
    out, state = linear_attention(q, k, v, chunk_size=chunk_size, return_final_state=True)
    expected, kv, z = brute_force(q, k, v)
    assert_fp32_close(out, expected)
    assert_fp32_close(state.kv, kv)


def test_grouped_query_heads_share_keys():
    q, k, v = qkv(heads=4, kv_heads=2, seq=19)
    expected, kv, _ = brute_force(q, k, v)
    for method in METHODS:
        out, state = attend(q, k, v, method=method, chunk_size=16, return_final_state=True)
        assert_fp32_close(out, expected)
        assert state.kv.shape == (2, 4, 16, 16), "one state per query head"


def test_softmax_feature_map_rows_sum_to_one():
    q, k, v = qkv(seq=30, dtype=torch.float64)
    explicit = q.softmax(-1) @ (k.softmax(-2).transpose(-2, -1) @ v)  # Efficient Attention, no normaliser
    weights = q.softmax(-1) @ k.softmax(-2).transpose(-2, -1)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 30, dtype=torch.float64))
    for normalize in (True, False):
        out = linear_attention(q, k, v, causal=False, feature_map="softmax", normalize=normalize, eps=0.0)
        torch.testing.assert_close(out, explicit)


def test_callable_feature_map():
    q, k, v = qkv(seq=11)
    out = linear_attention(q, k, v, feature_map=torch.exp, method="cumsum")
    weights = torch.tril(q.double().exp() @ k.double().exp().transpose(-2, -1))
    assert_fp32_close(out, (weights @ v.double()) / (weights.sum(-1, keepdim=True) + 1e-6))


def test_feature_map_pair_values():
    x = torch.tensor([[-1.0, 0.0, 2.0]])
    phi_q, _ = feature_map_pair(x, x, "elu")
    torch.testing.assert_close(phi_q, torch.tensor([[math.exp(-1.0), 1.0, 3.0]]))
    phi_q, _ = feature_map_pair(x, x, "relu")
    torch.testing.assert_close(phi_q, torch.tensor([[0.0, 0.0, 2.0]]))


# ----------------------------------------------------------------------------- state


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("normalize", [True, False])
def test_split_and_resume_equals_one_pass(method, normalize):
    q, k, v = qkv(seq=50, value_dim=8)
    whole, whole_state = attend(
        q, k, v, normalize=normalize, method=method, chunk_size=16, return_final_state=True
    )
    pieces, state = [], None
    for start, stop in ((0, 7), (7, 40), (40, 50)):  # uneven pieces, not multiples of the chunk
        out, state = attend(
            q[:, :, start:stop], k[:, :, start:stop], v[:, :, start:stop], normalize=normalize, method=method,
            chunk_size=16, initial_state=state, return_final_state=True,
        )
        pieces.append(out)
    assert_fp32_close(torch.cat(pieces, dim=2), whole.double())
    assert_fp32_close(state.kv, whole_state.kv.double())
    assert_fp32_close(state.k_sum, whole_state.k_sum.double())


def test_initial_state_against_brute_force_and_state_type():
    q, k, v = qkv(seq=21, value_dim=8)
    kv0, z0 = torch.rand(2, 2, 16, 8) * 3, torch.rand(2, 2, 16) * 3
    expected, kv, z = brute_force(q, k, v, kv0=kv0, z0=z0)
    for method in METHODS:
        out, state = attend(
            q, k, v, method=method, chunk_size=16, initial_state=(kv0, z0), return_final_state=True
        )
        assert isinstance(state, LinearAttentionState)
        assert_fp32_close(out, expected)
        assert_fp32_close(state.kv, kv)
        assert_fp32_close(state.k_sum, z)


def test_without_normaliser_k_sum_may_be_none():
    q, k, v = qkv(seq=12)
    kv0 = torch.randn(2, 2, 16, 16)
    out = linear_attention(q, k, v, normalize=False, initial_state=LinearAttentionState(kv0, None))
    expected, _, _ = brute_force(q, k, v, normalize=False, kv0=kv0)
    assert_fp32_close(out, expected)


# ----------------------------------------------------------------------------- RoPE


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("causal", [True, False])
def test_rope_in_numerator_equals_explicit_rotation(method, causal):
    q, k, v = qkv(seq=24, value_dim=8)
    positions = torch.arange(24)
    out = attend(q, k, v, causal=causal, method=method, chunk_size=16, rope_positions=positions)
    expected, _, _ = brute_force(q, k, v, causal, positions=positions)
    assert_fp32_close(out, expected)
    without, _, _ = brute_force(q, k, v, causal)
    assert (out.double() - without).abs().max() > 1e-2, "RoPE must change the output"


def test_rope_numerator_depends_only_on_relative_position():
    # The numerator's weight <R_m phi(q), R_n phi(k)> is unchanged by shifting both positions.
    q, k, v = qkv(seq=30, value_dim=8, dtype=torch.float64)
    base = linear_attention(q, k, v, rope_positions=torch.arange(30))
    shifted = linear_attention(q, k, v, rope_positions=torch.arange(30) + 1000)
    torch.testing.assert_close(shifted, base)
    # The weight matrix itself is constant along diagonals for one repeated query/key.
    phi = F.elu(torch.randn(16, dtype=torch.float64)) + 1
    rotated = rotate(phi.expand(30, 16), torch.arange(30))
    logits = rotated @ rotated.T  # logits[m, n] = <R_m phi, R_n phi>
    for offset in (0, 1, 5):
        diagonal = torch.diagonal(logits, offset)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal))


def test_rope_resume_with_absolute_positions():
    q, k, v = qkv(seq=40)
    positions = torch.arange(40)
    whole = linear_attention(q, k, v, rope_positions=positions)
    first, state = linear_attention(
        q[:, :, :25], k[:, :, :25], v[:, :, :25], rope_positions=positions[:25], return_final_state=True
    )
    second = linear_attention(
        q[:, :, 25:], k[:, :, 25:], v[:, :, 25:], rope_positions=positions[25:], initial_state=state
    )
    assert_fp32_close(torch.cat([first, second], dim=2), whole.double())


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("method", SCAN_METHODS + ("quadratic",))
@pytest.mark.parametrize("rope", [False, True])
def test_gradients_equal_autograd_through_brute_force(method, rope):
    dtype = torch.float32 if method == "triton" else torch.float64
    q, k, v = (x.requires_grad_() for x in qkv(seq=33, value_dim=8, dtype=dtype))
    kv0 = torch.rand(2, 2, 16, 8, dtype=dtype, requires_grad=True)
    z0 = torch.rand(2, 2, 16, dtype=dtype, requires_grad=True)
    positions = torch.arange(33) if rope else None
    out, state = attend(
        q, k, v, method=method, chunk_size=16, initial_state=(kv0, z0), return_final_state=True,
        rope_positions=positions,
    )
    generator = torch.Generator().manual_seed(1)
    g_out, g_kv, g_z = (torch.randn(t.shape, generator=generator, dtype=torch.float64) for t in (out, *state))
    loss = (out * g_out).sum() + (state.kv * g_kv).sum() + (state.k_sum * g_z).sum()
    grads = torch.autograd.grad(loss, (q, k, v, kv0, z0))

    leaves = [t.detach().double().requires_grad_() for t in (q, k, v, kv0, z0)]
    e_out, e_kv, e_z = brute_force(*leaves[:3], kv0=leaves[3], z0=leaves[4], positions=positions)
    e_loss = (e_out * g_out).sum() + (e_kv * g_kv).sum() + (e_z * g_z).sum()
    expected = torch.autograd.grad(e_loss, leaves)
    for name, grad, exp in zip(("q", "k", "v", "kv0", "z0"), grads, expected):
        if dtype == torch.float32:
            assert_fp32_close(grad, exp)
        else:
            torch.testing.assert_close(grad, exp, msg=f"gradient of {name}")


# ----------------------------------------------------------------------------- errors


def test_bad_inputs_raise_clear_errors():
    q, k, v = qkv(seq=8)
    with pytest.raises(ValueError, match="head_dim of q and k"):
        linear_attention(q, k[..., :8], v)
    with pytest.raises(ValueError, match="k and v must agree"):
        linear_attention(q, k, v[:, :, :5])
    with pytest.raises(ValueError, match="seq_q == seq_k"):
        linear_attention(q[:, :, :4], k, v)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        linear_attention(q, k, v, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size must be an int"):
        linear_attention(q, k, v, chunk_size=16.0)
    with pytest.raises(ValueError, match="feature_map must be one of"):
        linear_attention(q, k, v, feature_map="tanh")
    with pytest.raises(TypeError, match="feature_map must be a name or a callable"):
        feature_map_pair(q, k, 3)
    with pytest.raises(ValueError, match="must keep the shape"):
        linear_attention(q, k, v, feature_map=lambda x: x[..., :4])
    with pytest.raises(ValueError, match="method must be one of"):
        linear_attention(q, k, v, method="fft")
    with pytest.raises(ValueError, match="causal=False"):
        linear_attention(q, k, v, feature_map="softmax")
    with pytest.raises(ValueError, match="eps must be >= 0"):
        linear_attention(q, k, v, eps=-1.0)


def test_bad_initial_state_raises_clear_errors():
    q, k, v = qkv(seq=8, value_dim=4)
    kv0, z0 = torch.zeros(2, 2, 16, 4), torch.zeros(2, 2, 16)
    with pytest.raises(ValueError, match=r"initial_state.kv must have shape .* = \(2, 2, 16, 4\), got \(2, 2, 4, 16\)"):
        linear_attention(q, k, v, initial_state=(kv0.transpose(-2, -1), z0))
    with pytest.raises(ValueError, match=r"initial_state.k_sum must have shape"):
        linear_attention(q, k, v, initial_state=(kv0, z0[..., :3]))
    with pytest.raises(ValueError, match="k_sum is required when normalize=True"):
        linear_attention(q, k, v, initial_state=(kv0, None))
    with pytest.raises(ValueError, match="kv is required"):
        linear_attention(q, k, v, normalize=False, initial_state=(None, None))
    with pytest.raises(TypeError, match="initial_state must be a LinearAttentionState"):
        linear_attention(q, k, v, initial_state=kv0)
    with pytest.raises(TypeError, match="initial_state.kv must have the dtype of q"):
        linear_attention(q, k, v, initial_state=(kv0.double(), z0))
    with pytest.raises(TypeError, match="initial_state.k_sum must be a torch.Tensor"):
        linear_attention(q, k, v, initial_state=(kv0, [0.0]))
    with pytest.raises(ValueError, match="no initial_state"):
        linear_attention(q, k, v, causal=False, feature_map="softmax", initial_state=(kv0, z0))


def test_rope_needs_even_head_dim_and_tensor_positions():
    q, k, v = qkv(seq=8, head_dim=5)
    with pytest.raises(ValueError, match="rotary_dim must be a positive even integer"):
        linear_attention(q, k, v, rope_positions=torch.arange(8))
    q, k, v = qkv(seq=8)
    with pytest.raises(TypeError, match="positions must be a torch.Tensor"):
        linear_attention(q, k, v, rope_positions=list(range(8)))
    with pytest.raises(ValueError, match="must broadcast"):
        linear_attention(q, k, v, rope_positions=torch.arange(9))


def test_feature_map_of_wrong_type():
    q, k, v = qkv(seq=8)
    with pytest.raises(TypeError, match="feature_map must be a name or a callable, got int"):
        linear_attention(q, k, v, feature_map=3)


def test_triton_method_constraints():
    q, k, v = qkv(seq=8)
    with pytest.raises(ValueError, match="chunk_size must be 16, 32 or 64"):
        linear_attention(q, k, v, method="triton", chunk_size=48)
    with pytest.raises(TypeError, match="dtype must be one of"):
        linear_attention(*qkv(seq=8, dtype=torch.float64), method="triton", chunk_size=16)
