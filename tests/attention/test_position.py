"""Position encodings against their formulas written out by hand, brute-force loops, and their defining properties."""

import doctest
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dlnotes.attention.position as position_module
from dlnotes.attention.position import (
    ComplexOrderEmbedding,
    ConvolutionalPositions,
    LearnedPositions,
    RecurrentPositions,
    ShawRelativeAttention,
    T5RelativeBias,
    alibi_bias,
    alibi_slopes,
    clipped_relative_index,
    deberta_logits,
    inject_positions,
    relative_positions,
    shaw_relative_logits,
    shaw_relative_values,
    sinusoidal_encoding,
    sinusoidal_positions,
    sinusoidal_shift_matrix,
    softmax_attention,
    t5_relative_bucket,
    xl_relative_logits,
)
from dlnotes.attention.sdpa import attention_reference


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=generator(seed), dtype=dtype)


def test_docstring_examples():
    result = doctest.testmod(position_module, extraglobs={"torch": torch}, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 20 and result.failed == 0, result


# ----------------------------------------------------------------------------- absolute


def test_sinusoidal_matches_its_formula():
    seq, dim, base = 50, 16, 10000.0
    table = sinusoidal_positions(seq, dim, base)
    expected = torch.empty(seq, dim, dtype=torch.float64)
    for k in range(seq):
        for i in range(dim // 2):
            angle = k / base ** (2 * i / dim)
            expected[k, 2 * i] = math.sin(angle)
            expected[k, 2 * i + 1] = math.cos(angle)
    assert table.dtype == torch.float32
    torch.testing.assert_close(table, expected.float(), rtol=0, atol=1e-6)


def test_sinusoidal_large_positions_keep_their_digits():
    # fp64 angles: position 100000 still matches math.sin to fp32 precision.
    value = sinusoidal_encoding(torch.tensor([100000]), 2)[0, 0]
    assert abs(float(value) - math.sin(100000.0)) < 1e-6


@settings(max_examples=30, deadline=None)
@given(m=st.integers(0, 3000), shift=st.integers(-500, 500))
def test_sinusoidal_shift_is_a_fixed_linear_map(m, shift):
    dim = 32
    matrix = sinusoidal_shift_matrix(shift, dim).double()
    p_m = sinusoidal_encoding(torch.tensor(m), dim).double()
    p_shifted = sinusoidal_encoding(torch.tensor(m + shift), dim).double()
    torch.testing.assert_close(matrix @ p_m, p_shifted, rtol=0, atol=1e-5)
    torch.testing.assert_close(matrix @ matrix.T, torch.eye(dim, dtype=torch.float64), rtol=0, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(m=st.integers(0, 2000), n=st.integers(0, 2000), shift=st.integers(0, 2000))
def test_sinusoidal_inner_product_depends_only_on_offset(m, n, shift):
    p = sinusoidal_encoding(torch.tensor([m, n, m + shift, n + shift]), 64).double()
    assert abs(float(p[0] @ p[1]) - float(p[2] @ p[3])) < 1e-4
    # closed form: sum_i cos((m - n) omega_i)
    omega = 10000.0 ** (-torch.arange(0, 64, 2, dtype=torch.float64) / 64)
    assert abs(float(p[0] @ p[1]) - float(torch.cos((m - n) * omega).sum())) < 1e-4


def test_inject_positions_add_and_multiply():
    x = randn(2, 5, 8, dtype=torch.float32)
    table = sinusoidal_positions(9, 8)
    torch.testing.assert_close(inject_positions(x, table), x + table[:5])
    torch.testing.assert_close(inject_positions(x, table, mode="multiply"), x * table[:5])
    torch.testing.assert_close(inject_positions(x, table[:5].expand(2, 5, 8)), x + table[:5])


def test_attention_needs_positions_to_see_order():
    # Without positions, permuting tokens only permutes outputs; with sinusoids added it does not.
    x = randn(1, 1, 6, 8)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    plain = attention_reference(x, x, x)
    torch.testing.assert_close(attention_reference(x[:, :, perm], x[:, :, perm], x[:, :, perm]), plain[:, :, perm])
    table = sinusoidal_positions(6, 8).double()
    y, y_perm = x + table, x[:, :, perm] + table
    shuffled_out = attention_reference(y_perm, y_perm, y_perm)
    assert not torch.allclose(shuffled_out, attention_reference(y, y, y)[:, :, perm], atol=1e-3)


def test_learned_positions_add_rows_of_the_table_and_learn():
    layer = LearnedPositions(10, 4, generator=generator())
    x = torch.randn(3, 7, 4)
    out = layer(x)
    torch.testing.assert_close(out, x + layer.table.detach()[:7])
    out.sum().backward()
    expected_grad = torch.zeros(10, 4)
    expected_grad[:7] = 3.0  # each used row receives one gradient per batch element
    torch.testing.assert_close(layer.table.grad, expected_grad)
    with pytest.raises(ValueError, match="exceeds max_len=10"):
        layer(torch.zeros(1, 11, 4))


def test_recurrent_positions_follow_a_gru_run():
    layer = RecurrentPositions(6, generator=generator(1))
    table = layer.positions(9)
    # Independent reference: torch.nn.GRU with the same weights, fed the constant drive.
    gru = torch.nn.GRU(6, 6, batch_first=True)
    with torch.no_grad():
        gru.weight_ih_l0.copy_(layer.cell.weight_ih)
        gru.weight_hh_l0.copy_(layer.cell.weight_hh)
        gru.bias_ih_l0.copy_(layer.cell.bias_ih)
        gru.bias_hh_l0.copy_(layer.cell.bias_hh)
        outputs, _ = gru(layer.drive.expand(1, 8, 6), layer.start[None, None])
    torch.testing.assert_close(table[0], layer.start)
    torch.testing.assert_close(table[1:], outputs[0], rtol=1e-5, atol=1e-6)
    # Any length, and a longer run extends a shorter one.
    torch.testing.assert_close(layer.positions(40)[:9], table)
    x = torch.randn(2, 9, 6)
    torch.testing.assert_close(layer(x), x + table)


# ----------------------------------------------------------------------------- relative


def test_relative_positions_default_alignment():
    assert relative_positions(2, 4).tolist() == [[-2, -1, 0, 1], [-3, -2, -1, 0]]
    q_pos, k_pos = torch.tensor([10, 4]), torch.tensor([0, 5, 7])
    assert relative_positions(2, 3, q_pos, k_pos).tolist() == [[-10, -5, -3], [-4, 1, 3]]


def brute_shaw_logits(q, k, rel_k, max_distance, q_pos, k_pos):
    b, h, sq, d = q.shape
    out = torch.empty(b, h, sq, k.shape[2], dtype=q.dtype)
    for bb in range(b):
        for hh in range(h):
            for i in range(sq):
                for j in range(k.shape[2]):
                    r = min(max(int(k_pos[j]) - int(q_pos[i]), -max_distance), max_distance)
                    out[bb, hh, i, j] = q[bb, hh, i] @ (k[bb, hh, j] + rel_k[r + max_distance])
    return out


def test_shaw_logits_and_values_match_loops():
    q, k = randn(2, 3, 5, 4, seed=1), randn(2, 3, 7, 4, seed=2)
    rel_k, rel_v = randn(5, 4, seed=3), randn(5, 6, seed=4)
    q_pos, k_pos = torch.arange(5) + 2, torch.arange(7)
    logits = shaw_relative_logits(q, k, rel_k, 2)
    torch.testing.assert_close(logits, brute_shaw_logits(q, k, rel_k, 2, q_pos, k_pos))
    weights = torch.softmax(logits, -1)
    expected = torch.zeros(2, 3, 5, 6, dtype=torch.float64)
    for i in range(5):
        for j in range(7):
            r = min(max(j - int(q_pos[i]), -2), 2)
            expected[:, :, i] += weights[:, :, i, j, None] * rel_v[r + 2]
    torch.testing.assert_close(shaw_relative_values(weights, rel_v, 2), expected)


def test_shaw_per_head_tables_and_gqa():
    q, k = randn(1, 4, 3, 2, seed=5), randn(1, 2, 3, 2, seed=6)
    tables = randn(4, 3, 2, seed=7)
    logits = shaw_relative_logits(q, k, tables, 1)
    k_full = k.repeat_interleave(2, dim=1)
    for head in range(4):
        one = slice(head, head + 1)
        expected = brute_shaw_logits(q[:, one], k_full[:, one], tables[head], 1, torch.arange(3), torch.arange(3))
        torch.testing.assert_close(logits[:, head:head + 1], expected)


def test_shaw_attention_module_against_loops_and_reference():
    layer = ShawRelativeAttention(4, 2, value_dim=3, generator=generator(2)).double()
    q, k, v = randn(1, 2, 6, 4, seed=8), randn(1, 2, 6, 4, seed=9), randn(1, 2, 6, 3, seed=10)
    out = layer(q, k, v, causal=True)
    pos = torch.arange(6)
    logits = brute_shaw_logits(q, k, layer.rel_k.detach(), 2, pos, pos) / 2.0  # 1/sqrt(4)
    expected = torch.zeros(1, 2, 6, 3, dtype=torch.float64)
    for i in range(6):
        weights = torch.softmax(logits[:, :, i, : i + 1], -1)  # causal: keys 0..i
        for j in range(i + 1):
            r = max(j - i, -2)
            expected[:, :, i] += weights[..., j, None] * (v[:, :, j] + layer.rel_v.detach()[r + 2])
    torch.testing.assert_close(out, expected)
    # With zero tables it is plain attention.
    with torch.no_grad():
        layer.rel_k.zero_()
        layer.rel_v.zero_()
    torch.testing.assert_close(layer(q, k, v, causal=True), attention_reference(q, k, v, causal=True))


def brute_xl_logits(q, k, u, v, w_rel, q_pos, k_pos):
    b, h, sq, d = q.shape
    rel_dim = w_rel.shape[1]
    out = torch.empty(b, h, sq, k.shape[2], dtype=q.dtype)
    for i in range(sq):
        for j in range(k.shape[2]):
            distance = int(q_pos[i]) - int(k_pos[j])
            # channel 2i: sin(distance * omega_i), channel 2i + 1: cos(distance * omega_i)
            values = []
            for c in range(rel_dim):
                angle = distance / 10000.0 ** (2 * (c // 2) / rel_dim)
                values.append(math.sin(angle) if c % 2 == 0 else math.cos(angle))
            r = torch.tensor(values, dtype=q.dtype)
            for hh in range(h):
                r_proj = w_rel[hh].T @ r
                out[:, hh, i, j] = ((q[:, hh, i] + u[hh]) * k[:, hh, j]).sum(-1) + (q[:, hh, i] + v[hh]) @ r_proj
    return out


def test_xl_logits_match_loops():
    q, k = randn(2, 2, 4, 6, seed=11), randn(2, 2, 5, 6, seed=12)
    u, v, w_rel = randn(2, 6, seed=13), randn(2, 6, seed=14), randn(2, 8, 6, seed=15)
    q_pos, k_pos = torch.tensor([1, 2, 3, 4]), torch.arange(5)
    expected = brute_xl_logits(q, k, u, v, w_rel, q_pos, k_pos)
    torch.testing.assert_close(xl_relative_logits(q, k, u, v, w_rel), expected, rtol=1e-5, atol=1e-5)


def t5_bucket_by_hand(rel: int, bidirectional: bool, num_buckets: int, max_distance: int) -> int:
    """One relative position at a time, from the T5 paper's description (independent of the module)."""
    distance = -rel  # query - key
    offset = 0
    if bidirectional:
        num_buckets //= 2
        if distance < 0:
            offset = num_buckets  # future keys: second half of the buckets
        distance = abs(distance)
    elif distance < 0:
        return 0
    exact = num_buckets // 2
    if distance < exact:
        return offset + distance
    log_part = math.log(distance / exact) / math.log(max_distance / exact)
    return offset + min(num_buckets - 1, exact + int(log_part * (num_buckets - exact)))


@pytest.mark.parametrize(
    "bidirectional,num_buckets,max_distance",
    [(True, 32, 128), (False, 32, 128), (True, 8, 20), (False, 16, 50), (True, 64, 1000)],
)
def test_t5_bucket_matches_brute_force_table(bidirectional, num_buckets, max_distance):
    rel = torch.arange(-1500, 1501)
    ours = t5_relative_bucket(rel, bidirectional, num_buckets, max_distance)
    table = [t5_bucket_by_hand(r, bidirectional, num_buckets, max_distance) for r in rel.tolist()]
    assert ours.tolist() == table
    assert ours.min() >= 0 and ours.max() == num_buckets - 1


def test_t5_default_buckets_known_values():
    # T5 defaults: 16 buckets per direction, 8 exact, all distances >= 128 share bucket 15 (past) / 31 (future).
    # By hand: 100 -> 8 + floor(log(100/8) / log(128/8) * 8) = 8 + floor(7.29) = 15;
    # decoder (32 buckets, 16 exact): 16 + floor(log(100/16) / log(8) * 16) = 16 + floor(14.1) = 30.
    rel = torch.tensor([0, -1, -7, -8, -100, -128, -5000, 1, 7, 128, 5000])
    assert t5_relative_bucket(rel).tolist() == [0, 1, 7, 8, 15, 15, 15, 17, 23, 31, 31]
    assert t5_relative_bucket(rel, bidirectional=False).tolist() == [0, 1, 7, 8, 30, 31, 31, 0, 0, 0, 0]


def test_t5_relative_bias_looks_up_the_table():
    bias_layer = T5RelativeBias(3, num_buckets=8, max_distance=16, generator=generator(3))
    bias = bias_layer(4, 6)
    assert bias.shape == (1, 3, 4, 6)
    rel = relative_positions(4, 6)
    for i in range(4):
        for j in range(6):
            bucket = t5_bucket_by_hand(int(rel[i, j]), True, 8, 16)
            torch.testing.assert_close(bias[0, :, i, j], bias_layer.table.detach()[bucket])


def brute_deberta_logits(q, k, q_rel, k_rel, K, q_pos, k_pos):
    def delta(a, b):
        d = a - b
        return 0 if d <= -K else 2 * K - 1 if d >= K else d + K

    out = torch.empty(q.shape[0], q.shape[1], q.shape[2], k.shape[2], dtype=q.dtype)
    for i in range(q.shape[2]):
        for j in range(k.shape[2]):
            a, b = int(q_pos[i]), int(k_pos[j])
            out[:, :, i, j] = (
                (q[:, :, i] * k[:, :, j]).sum(-1)
                + q[:, :, i] @ k_rel[delta(a, b)]  # (batch, heads)
                + k[:, :, j] @ q_rel[delta(b, a)]
            )
    return out


def test_deberta_logits_match_loops():
    q, k = randn(2, 2, 5, 4, seed=16), randn(2, 2, 7, 4, seed=17)
    q_rel, k_rel = randn(6, 4, seed=18), randn(6, 4, seed=19)
    expected = brute_deberta_logits(q, k, q_rel, k_rel, 3, torch.arange(5) + 2, torch.arange(7))
    torch.testing.assert_close(deberta_logits(q, k, q_rel, k_rel, 3), expected)


SHIFTABLE = ["shaw", "xl", "t5", "deberta", "alibi"]


def logits_at(scheme: str, q, k, q_pos, k_pos):
    if scheme == "shaw":
        return shaw_relative_logits(q, k, randn(7, 8, seed=20), 3, q_pos, k_pos)
    if scheme == "xl":
        u, v, w_rel = randn(2, 8, seed=21), randn(2, 8, seed=22), randn(2, 8, 8, seed=23)
        return xl_relative_logits(q, k, u, v, w_rel, q_positions=q_pos, k_positions=k_pos)
    if scheme == "t5":
        bias = T5RelativeBias(2, generator=generator(4)).double()
        return q @ k.transpose(-2, -1) + bias(q.shape[2], k.shape[2], q_pos, k_pos)
    if scheme == "deberta":
        return deberta_logits(q, k, randn(8, 8, seed=24), randn(8, 8, seed=25), 4, q_pos, k_pos)
    bias = alibi_bias(q.shape[2], k.shape[2], 2, q_positions=q_pos, k_positions=k_pos)
    return q @ k.transpose(-2, -1) + bias.double()


@pytest.mark.parametrize("scheme", SHIFTABLE)
@settings(max_examples=15, deadline=None)
@given(shift=st.integers(-1000, 1000), start=st.integers(0, 50))
def test_relative_logits_invariant_to_shifting_both_positions(scheme, shift, start):
    q, k = randn(1, 2, 4, 8, seed=26), randn(1, 2, 6, 8, seed=27)
    q_pos = torch.tensor([start + 2, start + 3, start + 7, start + 9])
    k_pos = torch.arange(6) * 2 + start
    before = logits_at(scheme, q, k, q_pos, k_pos)
    after = logits_at(scheme, q, k, q_pos + shift, k_pos + shift)
    torch.testing.assert_close(before, after, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scheme", SHIFTABLE)
def test_relative_logits_do_see_the_offset(scheme):
    # The property above must not hold because positions are ignored: moving one key changes the logits.
    q, k = randn(1, 2, 4, 8, seed=26), randn(1, 2, 6, 8, seed=27)
    q_pos, k_pos = torch.arange(4) + 2, torch.arange(6)
    moved = k_pos.clone()
    moved[0] = -1
    before, after = logits_at(scheme, q, k, q_pos, k_pos), logits_at(scheme, q, k, q_pos, moved)
    assert not torch.allclose(before[..., 0], after[..., 0])


# ----------------------------------------------------------------------------- ALiBi


def test_alibi_slopes_for_powers_of_two():
    assert alibi_slopes(8).tolist() == [2.0**-h for h in range(1, 9)]
    assert alibi_slopes(16).tolist() == pytest.approx([2.0 ** (-h / 2) for h in range(1, 17)], rel=1e-6)
    assert alibi_slopes(1).tolist() == [2.0**-8]


def test_alibi_slopes_for_other_head_counts():
    # The paper's rule: slopes of the largest power of two below, then every other slope of twice that.
    assert alibi_slopes(6).tolist() == [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]
    expected_12 = [2.0**-h for h in range(1, 9)] + [2.0 ** (-h / 2) for h in (1, 3, 5, 7)]
    assert alibi_slopes(12).tolist() == pytest.approx(expected_12, rel=1e-6)


def test_alibi_bias_matches_formula_and_row_shift_form():
    bias = alibi_bias(5, 5, 4)
    slopes = [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8]
    for h in range(4):
        for i in range(5):
            for j in range(5):
                assert bias[0, h, i, j].item() == pytest.approx(slopes[h] * (j - i))
                symmetric = alibi_bias(5, 5, 4, bidirectional=True)[0, h, i, j].item()
                assert symmetric == pytest.approx(-slopes[h] * abs(j - i))
    # The paper's code adds m * j only (no -m * i): softmax removes a per-row constant, so outputs agree.
    q, k, v = randn(2, 4, 5, 8, seed=28), randn(2, 4, 5, 8, seed=29), randn(2, 4, 5, 8, seed=30)
    row_form = (torch.tensor(slopes)[:, None, None] * torch.arange(5.0)).double()[None].expand(1, 4, 5, 5)
    torch.testing.assert_close(
        attention_reference(q, k, v, mask=bias.double(), causal=True),
        attention_reference(q, k, v, mask=row_form, causal=True),
    )


# ----------------------------------------------------------------------------- softmax_attention


def test_softmax_attention_matches_attention_reference():
    q, k, v = randn(2, 4, 5, 8, seed=31), randn(2, 2, 7, 8, seed=32), randn(2, 2, 7, 3, seed=33)
    logits = q @ k.repeat_interleave(2, dim=1).transpose(-2, -1) / math.sqrt(8)
    bias = randn(4, 5, 7, seed=34)
    torch.testing.assert_close(
        softmax_attention(logits, v, mask=bias, causal=True), attention_reference(q, k, v, mask=bias, causal=True)
    )
    keep = randn(5, 7, seed=35) > 0
    keep[0] = False  # an empty row gives zeros, as in attention_reference
    torch.testing.assert_close(softmax_attention(logits, v, mask=keep), attention_reference(q, k, v, mask=keep))
    weights = softmax_attention(logits, None, causal=True)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 5, dtype=torch.float64))


# ----------------------------------------------------------------------------- others


def test_convolutional_positions_come_from_zero_padding():
    x = torch.ones(1, 12, 3)  # a constant sequence: no content clue about position
    zeros = ConvolutionalPositions(3, kernel_size=5, generator=generator(5))
    out = zeros(x)
    padded = torch.nn.functional.pad(x.transpose(1, 2), (2, 2))  # explicit zero padding
    expected = x + torch.nn.functional.conv1d(padded, zeros.conv.weight, zeros.conv.bias, groups=3).transpose(1, 2)
    torch.testing.assert_close(out, expected)
    interior = out[0, 2:-2]
    torch.testing.assert_close(interior, interior[:1].expand_as(interior))  # far from the borders: identical
    assert not torch.allclose(out[0, 0], out[0, 5]) and not torch.allclose(out[0, 1], out[0, 5])  # borders differ
    circular = ConvolutionalPositions(3, kernel_size=5, padding_mode="circular", generator=generator(5))
    torch.testing.assert_close(circular(x), circular(x)[:, :1].expand(1, 12, 3))  # no border, no position


def test_complex_order_embedding_formula_and_shift_property():
    emb = ComplexOrderEmbedding(7, 5, generator=generator(6)).double()
    tokens = torch.tensor([[3, 1, 3, 6]])
    out = emb(tokens)
    r, w, t = emb.amplitude.detach(), emb.frequency.detach(), emb.phase.detach()
    for k, token in enumerate(tokens[0].tolist()):
        expected = r[token] * torch.exp(1j * (w[token] * k + t[token]))
        torch.testing.assert_close(out[0, k], expected)
    shifted = emb(tokens, torch.arange(4) + 9)
    torch.testing.assert_close(shifted, out * torch.exp(1j * w[tokens] * 9))  # shift = fixed phase rotation per word
    torch.testing.assert_close(shifted.abs(), out.abs())


# ----------------------------------------------------------------------------- errors

Q4 = torch.zeros(1, 2, 3, 4)  # a valid (batch, heads, seq, head_dim) tensor for the error cases


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: sinusoidal_positions(0, 8), ValueError, "seq_len must be >= 1"),
        (lambda: sinusoidal_positions(4.0, 8), TypeError, "seq_len must be an int"),
        (lambda: sinusoidal_positions(4, 7), ValueError, "dim must be even"),
        (lambda: sinusoidal_positions(4, 8, base=1.0), ValueError, "base must be a real number > 1"),
        (lambda: sinusoidal_encoding([1, 2], 8), TypeError, "positions must be a torch.Tensor"),
        (lambda: sinusoidal_shift_matrix("3", 8), TypeError, "shift must be a real number"),
        (lambda: inject_positions(torch.zeros(2, 4), torch.zeros(4, 4), mode="concat"), ValueError, "mode must be"),
        (lambda: inject_positions(torch.zeros(5, 4), torch.zeros(3, 4)), ValueError, "has 3 rows but x has 5"),
        (lambda: inject_positions(torch.zeros(5, 4), torch.zeros(5, 6)), ValueError, "width 4"),
        (lambda: inject_positions(torch.zeros(4), torch.zeros(4, 4)), ValueError, r"\(\.\.\., seq, dim\)"),
        (
            lambda: inject_positions(torch.zeros(2, 4, dtype=torch.long), torch.zeros(4, 4)),
            TypeError,
            "x must have a floating dtype",
        ),
        (lambda: LearnedPositions(0, 4), ValueError, "max_len must be >= 1"),
        (lambda: RecurrentPositions(4).positions(0), ValueError, "seq_len must be >= 1"),
        (
            lambda: relative_positions(2, 3, q_positions=torch.tensor([0.0, 1.0])),
            TypeError,
            "q_positions must be an integer tensor",
        ),
        (
            lambda: relative_positions(2, 3, k_positions=torch.arange(4)),
            ValueError,
            r"k_positions must have shape \(3,\)",
        ),
        (lambda: clipped_relative_index(torch.tensor([1.0]), 2), TypeError, "relative must be an integer tensor"),
        (lambda: clipped_relative_index(torch.tensor([1]), 0), ValueError, "max_distance must be >= 1"),
        (
            lambda: shaw_relative_logits(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4), torch.zeros(6, 4), 2),
            ValueError,
            r"rel_emb must have shape \(5, 4\)",
        ),
        (
            lambda: shaw_relative_logits(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(5, 4), 2),
            ValueError,
            "q must be 4-D",
        ),
        (
            lambda: shaw_relative_logits(Q4, Q4, torch.zeros(5, 4, dtype=torch.float64), 2),
            TypeError,
            "rel_emb must have dtype torch.float32",
        ),
        (lambda: shaw_relative_values(torch.zeros(2, 3, 3), torch.zeros(5, 4), 2), ValueError, "weights must be 4-D"),
        (
            lambda: shaw_relative_values(torch.zeros(1, 1, 3, 3), torch.zeros(4, 4), 2),
            ValueError,
            r"rel_emb_v must have shape \(5, 4\)",
        ),
        (lambda: ShawRelativeAttention(4, 0), ValueError, "max_distance must be >= 1"),
        (
            lambda: xl_relative_logits(Q4, Q4, torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 6, 4)),
            ValueError,
            r"u_bias must have shape",
        ),
        (
            lambda: xl_relative_logits(Q4, Q4, torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2, 5, 4)),
            ValueError,
            "w_rel must have shape",
        ),
        (lambda: t5_relative_bucket(torch.tensor([1.5])), TypeError, "relative_position must be an integer tensor"),
        (lambda: t5_relative_bucket(torch.tensor([1]), num_buckets=7), ValueError, "num_buckets must be even and >= 4"),
        (
            lambda: t5_relative_bucket(torch.tensor([1]), bidirectional=False, num_buckets=1),
            ValueError,
            "num_buckets must be >= 2",
        ),
        (
            lambda: t5_relative_bucket(torch.tensor([1]), num_buckets=32, max_distance=8),
            ValueError,
            "max_distance must exceed",
        ),
        (lambda: t5_relative_bucket(torch.tensor([1]), bidirectional=1), TypeError, "bidirectional must be a bool"),
        (lambda: T5RelativeBias(2, num_buckets=5), ValueError, "num_buckets must be even"),
        (
            lambda: deberta_logits(Q4, Q4, torch.zeros(5, 4), torch.zeros(6, 4), 3),
            ValueError,
            r"q_rel must have shape \(6, 4\)",
        ),
        (lambda: softmax_attention(torch.zeros(2, 3, 3), None), ValueError, "logits must be 4-D"),
        (
            lambda: softmax_attention(torch.zeros(1, 2, 3, 3), None, mask=torch.ones(3, 3, dtype=torch.long)),
            TypeError,
            "mask must be a bool or floating",
        ),
        (
            lambda: softmax_attention(torch.zeros(1, 2, 3, 3), None, mask=torch.ones(4, 3, dtype=torch.bool)),
            ValueError,
            "does not broadcast",
        ),
        (lambda: softmax_attention(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 4, 5)), ValueError, "v must have shape"),
        (lambda: alibi_slopes(0), ValueError, "n_heads must be >= 1"),
        (lambda: alibi_slopes(2.0), TypeError, "n_heads must be an int"),
        (lambda: alibi_bias(3, 3, 4, bidirectional="yes"), TypeError, "bidirectional must be a bool"),
        (lambda: alibi_bias(0, 3, 4), ValueError, "seq_q must be >= 1"),
        (lambda: ConvolutionalPositions(4, kernel_size=4), ValueError, "kernel_size must be odd"),
        (lambda: ConvolutionalPositions(4, padding_mode="reflect"), ValueError, "padding_mode must be"),
        (lambda: ConvolutionalPositions(4)(torch.zeros(1, 5, 3)), ValueError, r"x must have shape \(batch, seq, 4\)"),
        (lambda: ComplexOrderEmbedding(5, 4)(torch.tensor([[0, 5]])), ValueError, r"tokens must lie in \[0, 5\)"),
        (lambda: ComplexOrderEmbedding(5, 4)(torch.tensor([[0.0]])), TypeError, "tokens must be an integer tensor"),
        (
            lambda: ComplexOrderEmbedding(5, 4)(torch.tensor([[0, 1]]), torch.arange(3)),
            ValueError,
            "must broadcast to tokens",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
