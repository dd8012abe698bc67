"""GAU / FLASH against loop-by-loop definitions, causality, padding and input checks."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlnotes.attention.gau import (
    FLASH,
    GAU,
    FLASHQuad,
    RelativePositionBias,
    ScaleNorm,
    mixed_chunk_attention,
    relu2_attention,
)

F64 = torch.float64


def relu2_attention_loops(q, k, v, causal, bias=None):
    """Definition, one query and one key at a time: mean over visible keys of relu^2(q.k/sqrt(s) + b) v."""
    batch, heads, n, s = q.shape
    out = torch.zeros(batch, heads, n, v.shape[-1], dtype=F64)
    for b in range(batch):
        for h in range(heads):
            for i in range(n):
                visible = range(i + 1) if causal else range(n)
                for j in visible:
                    score = float(q[b, h, i] @ k[b, h, j]) / math.sqrt(s)
                    if bias is not None:
                        score += float(bias[i, j])
                    out[b, h, i] += max(score, 0.0) ** 2 * v[b, h, j]
                out[b, h, i] /= len(visible)
    return out


def mixed_chunk_loops(q_quad, k_quad, q_lin, k_lin, v, chunk, causal, bias=None):
    """Mixed chunk attention by its definition: explicit loops over chunks, no padding (short last chunk)."""
    batch, heads, n, s = q_quad.shape
    starts = list(range(0, n, chunk))
    out = torch.zeros(batch, heads, n, v.shape[-1], dtype=F64)
    for b in range(batch):
        for h in range(heads):
            for g, start in enumerate(starts):
                members = range(start, min(start + chunk, n))
                # The linear state: sum of k_lin_j v_j^T over the earlier chunks (causal) or all tokens.
                others = range(0, start) if causal else range(n)
                state = torch.zeros(s, v.shape[-1], dtype=F64)
                for j in others:
                    state += torch.outer(k_lin[b, h, j], v[b, h, j])
                for i in members:
                    for j in members:
                        if causal and j > i:
                            continue
                        score = float(q_quad[b, h, i] @ k_quad[b, h, j]) / math.sqrt(s)
                        if bias is not None:
                            score += float(bias[i - start, j - start])
                        out[b, h, i] += max(score, 0.0) ** 2 * v[b, h, j] / chunk
                    if len(others):
                        out[b, h, i] += q_lin[b, h, i] @ state / len(others)
    return out


def random_qkv(n, s=4, e=3, batch=2, heads=1, generator=None):
    shapes = [(batch, heads, n, s)] * 4 + [(batch, heads, n, e)]
    return [torch.randn(shape, dtype=F64, generator=generator) for shape in shapes]


# relu^2 attention ------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_relu2_attention_matches_loops(causal):
    q, k, _, _, v = random_qkv(7, heads=2)
    bias = torch.randn(7, 7, dtype=F64)
    ours = relu2_attention(q, k, v, causal=causal, bias=bias)
    torch.testing.assert_close(ours, relu2_attention_loops(q, k, v, causal, bias))


def test_relu2_attention_gradients():
    q, k, _, _, v = (t.requires_grad_() for t in random_qkv(5, s=3, e=2, batch=1))
    bias = torch.randn(5, 5, dtype=F64, requires_grad=True)
    for causal in (False, True):
        assert torch.autograd.gradcheck(
            lambda *ts: relu2_attention(*ts[:3], causal=causal, bias=ts[3]), (q, k, v, bias)
        ), "autograd gradients disagree with finite differences"


def test_relu2_rows_are_averages():
    # With q.k/sqrt(s) = 1 everywhere, relu^2 = 1 and each row averages the visible values.
    n, s = 6, 4
    q = k = torch.full((1, 1, n, s), s**-0.25, dtype=F64)  # q.k = sqrt(s)
    assert torch.allclose(q[0, 0, 0] @ k[0, 0, 0] / math.sqrt(s), torch.tensor(1.0, dtype=F64))
    v = torch.arange(n, dtype=F64).view(1, 1, n, 1)
    causal = relu2_attention(q, k, v, causal=True).flatten()
    torch.testing.assert_close(causal, torch.arange(n, dtype=F64) / 2)  # mean of 0..i
    full = relu2_attention(q, k, v).flatten()
    torch.testing.assert_close(full, torch.full((n,), (n - 1) / 2, dtype=F64))


# mixed chunk attention --------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n, chunk", [(12, 4), (10, 4), (3, 4), (7, 1), (9, 9)])
def test_mixed_chunk_matches_loops(causal, n, chunk):
    tensors = random_qkv(n)
    bias = torch.randn(chunk, chunk, dtype=F64)
    ours = mixed_chunk_attention(*tensors, chunk_size=chunk, causal=causal, bias=bias)
    torch.testing.assert_close(ours, mixed_chunk_loops(*tensors, chunk, causal, bias))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 14), chunk=st.integers(1, 6), causal=st.booleans(), seed=st.integers(0, 2**16))
def test_mixed_chunk_matches_loops_property(n, chunk, causal, seed):
    generator = torch.Generator().manual_seed(seed)
    tensors = random_qkv(n, batch=1, generator=generator)
    ours = mixed_chunk_attention(*tensors, chunk_size=chunk, causal=causal)
    torch.testing.assert_close(ours, mixed_chunk_loops(*tensors, chunk, causal))


@pytest.mark.parametrize("causal", [False, True])
def test_linear_part_equals_masked_matrix_form(causal):
    # Zero quadratic queries leave the linear part, whose matrix form is
    # (Q_lin K_lin^T * M) V / m with M[i, j] = [chunk(j) < chunk(i)] (causal) or 1.
    n, chunk = 11, 3
    q_quad, k_quad, q_lin, k_lin, v = random_qkv(n)
    ours = mixed_chunk_attention(torch.zeros_like(q_quad), k_quad, q_lin, k_lin, v, chunk, causal=causal)
    chunk_of = torch.arange(n) // chunk
    if causal:
        mask = (chunk_of[None, :] < chunk_of[:, None]).to(F64)
        count = (chunk_of * chunk).clamp(min=1).to(F64)[:, None]
    else:
        mask, count = torch.ones(n, n, dtype=F64), torch.tensor(float(n), dtype=F64)
    reference = (q_lin @ k_lin.transpose(-2, -1) * mask / count) @ v
    torch.testing.assert_close(ours, reference)


def test_one_chunk_without_mask_is_relu2_attention_plus_global_linear():
    # A single chunk holding the whole sequence: quadratic part = relu^2 attention (its 1/n = 1/C).
    n = 8
    q_quad, k_quad, q_lin, k_lin, v = random_qkv(n)
    ours = mixed_chunk_attention(q_quad, k_quad, q_lin, k_lin, v, chunk_size=n)
    reference = relu2_attention(q_quad, k_quad, v) + q_lin @ (k_lin.transpose(-2, -1) @ v) / n
    torch.testing.assert_close(ours, reference)


@pytest.mark.parametrize("causal", [False, True])
def test_internal_padding_is_invisible(causal):
    # n = 10 with C = 4 is padded to 12 inside; the loops never pad (their last chunk has 2
    # tokens). A positive bias gives padded keys positive relu^2 scores unless they are masked,
    # and the non-causal linear part must divide by the real n = 10, not by the padded 12.
    n, chunk = 10, 4
    tensors = random_qkv(n)
    bias = torch.full((chunk, chunk), 2.0, dtype=F64)
    ours = mixed_chunk_attention(*tensors, chunk_size=chunk, causal=causal, bias=bias)
    assert ours.shape == tensors[-1].shape, "output has the unpadded length"
    torch.testing.assert_close(ours, mixed_chunk_loops(*tensors, chunk, causal, bias))


def test_mixed_chunk_gradients():
    tensors = [t.requires_grad_() for t in random_qkv(5, s=2, e=2, batch=1)]
    bias = torch.randn(2, 2, dtype=F64, requires_grad=True)
    for causal in (False, True):
        assert torch.autograd.gradcheck(
            lambda *ts: mixed_chunk_attention(*ts[:5], chunk_size=2, causal=causal, bias=ts[5]), (*tensors, bias)
        ), "autograd gradients disagree with finite differences"


# causality: exact prefix invariance --------------------------------------------------------


def _layer(kind, **kwargs):
    torch.manual_seed(0)
    if kind == "gau":
        layer = GAU(16, qk_dim=8, causal=True, max_distance=5, **kwargs)
    else:
        layer = FLASH(16, chunk_size=4, qk_dim=8, causal=True, max_distance=5, **kwargs)
    with torch.no_grad():  # a non-zero bias, so the test exercises it
        layer.relative_bias.weight.normal_()
    return layer.double()


@pytest.mark.parametrize("kind", ["gau", "flash"])
@pytest.mark.parametrize("cut", [1, 4, 5, 8, 11])
def test_causal_prefix_is_exactly_unchanged_when_the_suffix_changes(kind, cut):
    layer = _layer(kind)
    x = torch.randn(2, 13, 16, dtype=F64)
    changed = x.clone()
    changed[:, cut:] = torch.randn(2, 13 - cut, 16, dtype=F64) * 100
    assert torch.equal(layer(x)[:, :cut], layer(changed)[:, :cut]), "the future leaked into the past"
    assert not torch.equal(layer(x)[:, cut:], layer(changed)[:, cut:]), "the suffix must change"


@pytest.mark.parametrize("kind", ["gau", "flash"])
@pytest.mark.parametrize("cut", [1, 3, 4, 6, 9])
def test_causal_prefix_equals_running_on_the_prefix_alone(kind, cut):
    # Running on fewer tokens changes the sizes of the matrix products (n keys for GAU, the
    # number of chunks for FLASH), and BLAS may sum in another order: equal up to fp64 rounding.
    layer = _layer(kind)
    x = torch.randn(2, 13, 16, dtype=F64)
    torch.testing.assert_close(layer(x[:, :cut]), layer(x)[:, :cut], rtol=0, atol=1e-13)


def test_noncausal_output_depends_on_the_future():
    layer = FLASH(16, chunk_size=4, qk_dim=8).double()
    x = torch.randn(1, 9, 16, dtype=F64)
    changed = x.clone()
    changed[:, -1] = torch.randn(16, dtype=F64)  # (not a constant shift: LayerNorm would erase it)
    assert not torch.allclose(layer(x)[:, 0], layer(changed)[:, 0]), "non-causal FLASH should see every token"


# modules ---------------------------------------------------------------------------------


def rotate_interleaved_complex(x, positions):
    """RoPE as complex multiplication, with the 'half' pairing (j, j + d/2) of the library's default."""
    half = x.shape[-1] // 2
    theta = 10000.0 ** (-torch.arange(half, dtype=F64) * 2 / x.shape[-1])
    z = torch.complex(x[..., :half], x[..., half:]) * torch.polar(torch.ones(1, dtype=F64), positions[:, None] * theta)
    return torch.cat([z.real, z.imag], dim=-1)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("rope, relative_bias", [(False, False), (True, True)])
def test_gau_matches_hand_written_formula(causal, rope, relative_bias):
    torch.manual_seed(0)
    layer = GAU(12, expansion=2, qk_dim=6, causal=causal, rope=rope, relative_bias=relative_bias, max_distance=3)
    layer = layer.double()
    if relative_bias:
        with torch.no_grad():
            layer.relative_bias.weight.normal_()
    n, e, s = 7, 24, 6
    x = torch.randn(2, n, 12, dtype=F64)
    hidden = F.silu(F.linear(F.layer_norm(x, (12,)), layer.to_uvz.weight, layer.to_uvz.bias))
    u, v, z = hidden[..., :e], hidden[..., e : 2 * e], hidden[..., 2 * e :]
    gamma, beta = layer.offset_scale.gamma, layer.offset_scale.beta
    q, k = z * gamma[0] + beta[0], z * gamma[1] + beta[1]
    if rope:
        positions = torch.arange(n, dtype=F64)
        q, k = rotate_interleaved_complex(q, positions), rotate_interleaved_complex(k, positions)
    scores = torch.einsum("bis,bjs->bij", q, k) / math.sqrt(s)
    if relative_bias:
        i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
        scores = scores + layer.relative_bias.weight[(j - i).clamp(-3, 3) + 3]
    if causal:
        mask = torch.ones(n, n, dtype=torch.bool).tril()
        weights = torch.where(mask, F.relu(scores) ** 2, 0.0) / torch.arange(1, n + 1, dtype=F64)[:, None]
    else:
        weights = F.relu(scores) ** 2 / n
    expected = x + F.linear(u * (weights @ v), layer.to_out.weight, layer.to_out.bias)
    torch.testing.assert_close(layer(x), expected)


def test_parameter_counts():
    d, s = 32, 16
    gau, flash = GAU(d, qk_dim=s, max_distance=4), FLASH(d, qk_dim=s, chunk_size=8, max_distance=4)
    e = 2 * d
    base = d * (2 * e + s) + (2 * e + s) + e * d + d + 2 * d + 9  # W_uvz, b, W_o, b_o, LayerNorm, bias table
    assert sum(p.numel() for p in gau.parameters()) == base + 2 * 2 * s, "GAU: two offset/scale pairs"
    assert sum(p.numel() for p in flash.parameters()) == base + 4 * 2 * s, "FLASH: four offset/scale pairs"
    assert FLASHQuad is GAU


@pytest.mark.parametrize("causal", [False, True])
def test_flash_any_length_and_float32(causal):
    layer = FLASH(16, chunk_size=5, qk_dim=8, causal=causal, norm="scale")
    for n in (1, 4, 5, 6, 17):
        out = layer(torch.randn(3, n, 16))
        assert out.shape == (3, n, 16) and out.dtype == torch.float32 and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in layer.parameters()), "every parameter gets a gradient"


def test_relative_position_bias_values():
    bias = RelativePositionBias(max_distance=2)
    with torch.no_grad():
        bias.weight.copy_(torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0]))  # w[d + R] = d
    expected = (torch.arange(4)[None, :] - torch.arange(4)[:, None]).clamp(-2, 2).float()  # j - i, clipped
    torch.testing.assert_close(bias(4, 4), expected)
    torch.testing.assert_close(bias(1, 4), expected[-1:])  # a single query sits at the last position


def test_scale_norm():
    norm = ScaleNorm(16)
    x = torch.randn(3, 16)
    torch.testing.assert_close(norm(x).norm(dim=-1), torch.full((3,), 4.0))


# errors ----------------------------------------------------------------------------------


def test_relu2_attention_errors():
    q = torch.randn(1, 2, 4, 8)
    with pytest.raises(ValueError, match="same number of heads"):
        relu2_attention(q, q[:, :1], q[:, :1])
    with pytest.raises(ValueError, match="does not broadcast"):
        relu2_attention(q, q, q, bias=torch.zeros(3, 4))
    with pytest.raises(TypeError, match="bias must be a floating"):
        relu2_attention(q, q, q, bias=torch.zeros(4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="must be 4-D"):
        relu2_attention(q[0], q[0], q[0])


def test_mixed_chunk_attention_errors():
    x = torch.randn(1, 1, 6, 4)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        mixed_chunk_attention(x, x, x, x, x, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size must be an int"):
        mixed_chunk_attention(x, x, x, x, x, chunk_size=2.0)
    with pytest.raises(ValueError, match="q_lin must have the shape of q_quad"):
        mixed_chunk_attention(x, x, x[..., :2], x[..., :2], x, chunk_size=2)
    with pytest.raises(ValueError, match="k_quad must have the shape"):
        mixed_chunk_attention(x[:, :, :3], x, x, x, x, chunk_size=2)
    with pytest.raises(ValueError, match="does not broadcast"):
        mixed_chunk_attention(x, x, x, x, x, chunk_size=2, bias=torch.zeros(3, 3))
    with pytest.raises(TypeError, match="share one dtype"):
        mixed_chunk_attention(x, x, x, x, x.double(), chunk_size=2)


def test_module_errors():
    with pytest.raises(ValueError, match="d_model must be a positive int"):
        GAU(0)
    with pytest.raises(ValueError, match="qk_dim must be a positive int"):
        GAU(8, qk_dim=-1)
    with pytest.raises(ValueError, match="even qk_dim"):
        GAU(8, qk_dim=5)
    with pytest.raises(ValueError, match="expansion must be a positive number"):
        GAU(8, expansion=0)
    with pytest.raises(ValueError, match="norm must be"):
        GAU(8, norm="batch")
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        FLASH(8, chunk_size=0)
    with pytest.raises(ValueError, match="max_distance must be a positive int"):
        RelativePositionBias(0)
    layer = GAU(8, qk_dim=4)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, seq >= 1, d_model=8\)"):
        layer(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="x must have shape"):
        layer(torch.randn(5, 8))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        layer(torch.ones(2, 5, 8, dtype=torch.long))
