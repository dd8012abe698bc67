"""Sparse attention against the Sparse Transformer's set definitions, dense masked attention and PyTorch's SDPA."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.attention import SDPBackend, sdpa_kernel

from dlnotes.attention.sdpa import attention_reference
from dlnotes.attention.sparse import (
    Blocked,
    Dilated,
    Fixed,
    Local,
    Pattern,
    Strided,
    Summary,
    Union,
    block_sparse_cost,
    parse_pattern,
    sparse_attention,
)


def random_qkv(batch, heads, kv_heads, seq_q, seq_k, head_dim, value_dim=None, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    value_dim = head_dim if value_dim is None else value_dim
    q = torch.randn(batch, heads, seq_q, head_dim, generator=generator, dtype=dtype)
    k = torch.randn(batch, kv_heads, seq_k, head_dim, generator=generator, dtype=dtype)
    v = torch.randn(batch, kv_heads, seq_k, value_dim, generator=generator, dtype=dtype)
    return q, k, v


# ------------------------------------------------------------------ masks from the definitions


def mask_from_rule(rule, seq_q, seq_k, causal):
    """Loop over (i, j) and ask a plain-Python rule on absolute positions (p = i + seq_k - seq_q)."""
    mask = torch.zeros(seq_q, seq_k, dtype=torch.bool)
    for i in range(seq_q):
        p = i + seq_k - seq_q
        for j in range(seq_k):
            mask[i, j] = rule(p, j) and (not causal or j <= p)
    return mask


# The Sparse Transformer paper (Child et al. 2019, section 4.3) in its own terms, for a
# causal model: strided A1 = {t, ..., i} with t = max(0, i - l), A2 = {j : (i - j) mod l = 0};
# fixed A1 = {j : floor(j / l) = floor(i / l)}, A2 = {j : j mod l in {l - c, ..., l - 1}}.
RULES = {
    "local": (Local(3), lambda p, j: abs(p - j) <= 2),
    "dilated": (Dilated(3), lambda p, j: (p - j) % 3 == 0),
    "dilated-window": (Dilated(2, window=3), lambda p, j: (p - j) % 2 == 0 and abs(p - j) <= 4),
    "blocked": (Blocked(4), lambda p, j: p // 4 == j // 4),
    "summary": (Summary(4, 2), lambda p, j: j % 4 in (2, 3)),
    "strided": (Strided(4), lambda p, j: (max(0, p - 4) <= j <= p) or (p - j) % 4 == 0 or abs(p - j) < 4),
    "fixed": (Fixed(4, 1), lambda p, j: j // 4 == p // 4 or j % 4 == 3),
    "union": (Local(2) | Summary(5, 1), lambda p, j: abs(p - j) < 2 or j % 5 == 4),
}


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize(("seq_q", "seq_k"), [(13, 13), (5, 17), (17, 6)])
@pytest.mark.parametrize("causal", [True, False])
def test_mask_matches_definition(name, seq_q, seq_k, causal):
    pattern, rule = RULES[name]
    expected = mask_from_rule(rule, seq_q, seq_k, causal)
    assert torch.equal(pattern.mask(seq_q, seq_k, causal=causal), expected), f"{name} mask differs from its definition"


def test_strided_matches_paper_sets_causally():
    """Causally, Local(l) | Dilated(l) is exactly the paper's A1 | A2 (A1 reaches back l, not l - 1)."""
    n, stride = 30, 5
    expected = mask_from_rule(lambda p, j: max(0, p - stride) <= j or (p - j) % stride == 0, n, n, causal=True)
    assert torch.equal(Strided(stride).mask(n, n, causal=True), expected), "strided pattern differs from the paper"


def test_local_window_counts_the_token_itself():
    mask = Local(4).mask(10, 10, causal=True)
    assert mask.diagonal().all(), "a token must see itself"
    assert mask.sum(dim=1).tolist() == [1, 2, 3, 4, 4, 4, 4, 4, 4, 4], "causal Local(w) sees the w most recent keys"


# ------------------------------------------------------------------ block layouts


def layout_from_mask(mask, block_size):
    """Brute force: a tile is non-empty iff its slice of the fine mask has a True."""
    rows, cols = -(-mask.shape[0] // block_size), -(-mask.shape[1] // block_size)
    layout = torch.zeros(rows, cols, dtype=torch.bool)
    for r in range(rows):
        for c in range(cols):
            layout[r, c] = mask[r * block_size : (r + 1) * block_size, c * block_size : (c + 1) * block_size].any()
    return layout


@st.composite
def patterns(draw, depth=0):
    a = draw(st.integers(1, 9))
    c = draw(st.integers(1, a))
    choices = [
        Local(a),
        Dilated(a),
        Dilated(a, window=draw(st.integers(1, 4))),
        Blocked(a),
        Summary(a, c),
        Strided(a),
        Fixed(a, c),
    ]
    pattern = choices[draw(st.integers(0, len(choices) - 1))]
    if depth == 0 and draw(st.booleans()):
        pattern = pattern | draw(patterns(depth=1))
    return pattern


@settings(max_examples=300, deadline=None)
@given(
    pattern=patterns(),
    seq_q=st.integers(1, 40),
    seq_k=st.integers(1, 40),
    block_size=st.integers(1, 12),
    causal=st.booleans(),
)
def test_block_layout_equals_tiles_of_the_mask(pattern, seq_q, seq_k, block_size, causal):
    layout = pattern.block_layout(seq_q, seq_k, block_size, causal=causal)
    expected = layout_from_mask(pattern.mask(seq_q, seq_k, causal=causal), block_size)
    assert layout.dtype == torch.bool and layout.shape == expected.shape, f"layout shape {tuple(layout.shape)}"
    assert torch.equal(layout, expected), f"{pattern} layout wrong at {(layout != expected).nonzero().tolist()}"


# ------------------------------------------------------------------ attention vs dense references

CASES = [
    # pattern, batch, heads, kv_heads, seq_q, seq_k, head_dim, value_dim, block_size
    (Local(5), 2, 2, 2, 37, 37, 16, 16, 8),
    (Dilated(3), 1, 4, 2, 29, 29, 8, 8, 4),
    (Dilated(2, window=4), 1, 2, 1, 50, 50, 8, 12, 16),
    (Strided(6), 2, 4, 1, 45, 45, 16, 16, 8),
    (Fixed(8, 2), 1, 2, 2, 61, 61, 16, 8, 16),
    (Fixed(5, 1), 1, 2, 2, 23, 40, 8, 8, 7),
    (Local(3) | Dilated(7), 1, 3, 3, 19, 11, 8, 8, 4),
    (Summary(4, 1), 1, 2, 2, 33, 33, 8, 8, 64),
    ("strided:4+fixed:6:2", 1, 2, 2, 31, 31, 8, 8, 5),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: str(case[0]))
@pytest.mark.parametrize("causal", [True, False])
def test_matches_masked_dense_attention_fp32(case, causal):
    pattern, batch, heads, kv_heads, seq_q, seq_k, head_dim, value_dim, block_size = case
    q, k, v = random_qkv(batch, heads, kv_heads, seq_q, seq_k, head_dim, value_dim)
    mask = parse_pattern(pattern).mask(seq_q, seq_k, causal=causal)
    ours = sparse_attention(q, k, v, pattern, causal=causal, block_size=block_size)
    reference = attention_reference(q, k, v, mask=mask)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=lambda case: str(case[0]))
def test_matches_masked_dense_attention_fp64(case):
    pattern, batch, heads, kv_heads, seq_q, seq_k, head_dim, value_dim, block_size = case
    q, k, v = random_qkv(batch, heads, kv_heads, seq_q, seq_k, head_dim, value_dim, dtype=torch.float64, seed=1)
    mask = parse_pattern(pattern).mask(seq_q, seq_k, causal=True)
    ours = sparse_attention(q, k, v, pattern, block_size=block_size, scale=0.3)
    reference = attention_reference(q, k, v, mask=mask, scale=0.3)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=lambda case: str(case[0]))
def test_matches_torch_sdpa(case):
    """PyTorch's math backend shares no code with dlnotes; compare on rows that see some key."""
    pattern, batch, heads, kv_heads, seq_q, seq_k, head_dim, value_dim, block_size = case
    q, k, v = random_qkv(batch, heads, kv_heads, seq_q, seq_k, head_dim, value_dim, seed=2)
    mask = parse_pattern(pattern).mask(seq_q, seq_k, causal=True)
    with sdpa_kernel(SDPBackend.MATH):
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    ours = sparse_attention(q, k, v, pattern, block_size=block_size)
    seen = mask.any(dim=1)
    torch.testing.assert_close(ours[:, :, seen], expected[:, :, seen], rtol=0, atol=1e-6)
    assert torch.equal(ours[:, :, ~seen], torch.zeros_like(ours[:, :, ~seen])), "rows with no key must be zeros"


@pytest.mark.parametrize(("dtype", "atol"), [(torch.bfloat16, 2e-2), (torch.float16, 2e-3)])
def test_low_precision_against_fp32_reference(dtype, atol):
    q, k, v = random_qkv(1, 2, 2, 70, 70, 16, dtype=dtype)
    mask = Strided(8).mask(70, 70, causal=True)
    ours = sparse_attention(q, k, v, Strided(8), block_size=16)
    assert ours.dtype == dtype, f"output dtype {ours.dtype}"
    reference = attention_reference(q.float(), k.float(), v.float(), mask=mask)
    torch.testing.assert_close(ours.float(), reference, rtol=0, atol=atol)


def test_non_contiguous_inputs():
    x = torch.randn(1, 70, 2, 16, generator=torch.Generator().manual_seed(3)).transpose(1, 2)  # (b, h, n, d) view
    assert not x.is_contiguous()
    ours = sparse_attention(x, x, x, "fixed:8:2", block_size=16)
    reference = attention_reference(x, x, x, mask=Fixed(8, 2).mask(70, 70, causal=True))
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)


def test_rows_without_keys_are_zero():
    # Summary(8, 1) causally: positions 0..6 have no summary cell before them yet.
    q, k, v = random_qkv(1, 2, 2, 20, 20, 8)
    out = sparse_attention(q, k, v, Summary(8, 1), block_size=4)
    assert torch.equal(out[:, :, :7], torch.zeros_like(out[:, :, :7])), "rows with no allowed key must be zeros"
    assert out[:, :, 7:].abs().sum(dim=-1).gt(0).all(), "rows with a key must not be zero"
    assert torch.isfinite(out).all(), "no NaN from empty rows"


def test_more_queries_than_keys_causal():
    q, k, v = random_qkv(1, 1, 1, 12, 5, 8)
    out = sparse_attention(q, k, v, Local(3), block_size=4)
    assert torch.equal(out[:, :, :7], torch.zeros_like(out[:, :, :7])), "queries before the first key see nothing"
    torch.testing.assert_close(out, attention_reference(q, k, v, mask=Local(3).mask(12, 5), causal=True), rtol=0, atol=1e-6)


def test_gradients_match_dense():
    q, k, v = random_qkv(1, 4, 2, 21, 21, 8, dtype=torch.float64)
    pattern = Strided(4)
    for t in (q, k, v):
        t.requires_grad_(True)
    grad_out = torch.randn(1, 4, 21, 8, dtype=torch.float64)
    ours = torch.autograd.grad((sparse_attention(q, k, v, pattern, block_size=4) * grad_out).sum(), (q, k, v))
    mask = pattern.mask(21, 21, causal=True)
    dense = torch.autograd.grad((attention_reference(q, k, v, mask=mask) * grad_out).sum(), (q, k, v))
    for name, a, b in zip("qkv", ours, dense):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12, msg=lambda m, name=name: f"grad of {name}: {m}")


def test_computes_only_the_tiles_of_the_layout(monkeypatch):
    """Record every score matrix the function multiplies out: their entries add up to the layout's tiles."""
    batch, heads, n, block_size = 2, 3, 100, 8
    pattern = Fixed(16, 2)
    q, k, v = random_qkv(batch, heads, heads, n, n, 8)
    sizes = []
    original = torch.matmul

    def recording_matmul(a, b):
        result = original(a, b)
        sizes.append(result.shape)
        return result

    monkeypatch.setattr(torch, "matmul", recording_matmul)
    sparse_attention(q, k, v, pattern, block_size=block_size)
    monkeypatch.undo()
    score_sizes = sizes[0::2]  # scores, then weights @ values, per query block
    cost = block_sparse_cost(pattern, n, block_size=block_size)
    assert sum(s.numel() for s in score_sizes) == batch * heads * cost.computed_entries, "computed entries"
    assert max(s[-1] for s in score_sizes) == cost.max_row_keys, "largest gathered key set"
    assert cost.computed_entries < n * n / 2, "the pattern should skip most tiles"


# ------------------------------------------------------------------ two-hop connectivity


def bool_matmul(a, b):
    """Boolean matrix product: (a b)[i, j] = any_m a[i, m] and b[m, j]."""
    return (a.double() @ b.double()) > 0


@pytest.mark.parametrize("n", [16, 37, 64])
@pytest.mark.parametrize("stride", [2, 3, 4, 8])
def test_strided_reaches_every_earlier_position_in_two_steps(n, stride):
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    local, dilated = (part.mask(n, n, causal=True) for part in Strided(stride).parts)
    # Head 1 (local) then head 2 (dilated) -- and the other order too.
    assert torch.equal(bool_matmul(local, dilated), causal), "local -> dilated must cover the causal mask"
    assert torch.equal(bool_matmul(dilated, local), causal), "dilated -> local must cover the causal mask"
    # Neither half alone, nor two hops of one half, suffices once n > stride.
    assert not bool_matmul(local, local).equal(causal), "two local hops must not reach everything"
    assert not bool_matmul(dilated, dilated).equal(causal), "two dilated hops must not reach everything"


@pytest.mark.parametrize("n", [16, 37, 64])
@pytest.mark.parametrize(("block", "c"), [(4, 1), (5, 2), (8, 3)])
def test_fixed_reaches_every_earlier_position_in_two_steps(n, block, c):
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    blocked, summary = (part.mask(n, n, causal=True) for part in Fixed(block, c).parts)
    # Own block directly; an earlier block through one of its summary cells.
    reach = blocked | bool_matmul(summary, blocked)
    assert torch.equal(reach, causal), "blocked | summary -> blocked must cover the causal mask"
    full = Fixed(block, c).mask(n, n, causal=True)
    assert torch.equal(bool_matmul(full, full), causal), "two hops of the fixed pattern must cover the causal mask"
    assert not torch.equal(full, causal), "one hop must not: the pattern is sparse"


def test_local_alone_is_not_two_hop_connected():
    n = 32
    local = Local(4).mask(n, n, causal=True)
    assert not torch.equal(bool_matmul(local, local), torch.ones(n, n, dtype=torch.bool).tril())


# ------------------------------------------------------------------ cost accounting


def test_cost_of_dense_causal_pattern():
    n, b = 64, 8
    cost = block_sparse_cost(Dilated(1), n, block_size=b)  # every key: plain causal attention
    rows = n // b
    assert cost.tiles == rows * (rows + 1) // 2, "causal dense visits the lower triangle of tiles"
    assert cost.allowed_entries == n * (n + 1) // 2
    assert cost.computed_entries == cost.tiles * b * b
    assert cost.dense_entries == n * n and cost.total_tiles == rows * rows


def test_cost_of_local_pattern_closed_form():
    n, w = 100, 7
    cost = block_sparse_cost("local:7", n, block_size=10)
    assert cost.allowed_entries == sum(min(i + 1, w) for i in range(n)), "causal local: min(i + 1, w) keys per row"
    assert cost.tiles == 10 + 9, "a window shorter than a block touches the diagonal tile and the one before"
    assert cost.computed_entries == 19 * 100


def test_cost_counts_allowed_entries_like_the_mask():
    pattern = Fixed(6, 2) | Local(3)
    assert block_sparse_cost(pattern, 45, block_size=8, causal=False).allowed_entries == int(pattern.mask(45, 45).sum())


# ------------------------------------------------------------------ parsing and errors


def test_parse_pattern():
    assert parse_pattern("local:5") == Local(5)
    assert parse_pattern(" dilated:3:2 ") == Dilated(3, window=2)
    assert parse_pattern("fixed:8") == Fixed(8, 1)
    assert parse_pattern("Strided:4+summary:8:2") == Union(Strided(4), Summary(8, 2))
    assert parse_pattern(Local(2)) == Local(2)
    assert Union(Local(1) | Local(2), Local(3)).patterns == (Local(1), Local(2), Local(3)), "unions flatten"


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Local(0), ValueError, "window must be >= 1, got 0"),
        (lambda: Local(2.5), TypeError, "window must be an int, got float"),
        (lambda: Local(True), TypeError, "window must be an int, got bool"),
        (lambda: Dilated(0), ValueError, "dilation must be >= 1, got 0"),
        (lambda: Dilated(2, window=0), ValueError, "window must be >= 1, got 0"),
        (lambda: Blocked(-1), ValueError, "block must be >= 1, got -1"),
        (lambda: Summary(4, 5), ValueError, "c must be at most block \\(4\\), got 5"),
        (lambda: Summary(4, 0), ValueError, "c must be >= 1, got 0"),
        (lambda: Strided(0), ValueError, "stride must be >= 1, got 0"),
        (lambda: Fixed(4, 9), ValueError, "c must be at most block"),
        (lambda: Union(), ValueError, "at least one pattern"),
        (lambda: Union(Local(2), "local:3"), TypeError, "Union takes Pattern objects, got str"),
        (lambda: parse_pattern("banded:3"), ValueError, "unknown pattern 'banded'"),
        (lambda: parse_pattern("local"), ValueError, "wrong number of arguments in 'local'"),
        (lambda: parse_pattern("fixed:8:2:1"), ValueError, "wrong number of arguments"),
        (lambda: parse_pattern("local:x"), ValueError, "arguments must be integers"),
        (lambda: parse_pattern("local:0"), ValueError, "window must be >= 1"),
        (lambda: parse_pattern(7), TypeError, "pattern must be a Pattern or a string"),
        (lambda: Local(2).mask(0, 4), ValueError, "seq_q must be >= 1, got 0"),
        (lambda: Local(2).block_layout(4, 4, 0), ValueError, "block_size must be >= 1, got 0"),
        (lambda: block_sparse_cost(Local(2), 8, block_size=2.0), TypeError, "block_size must be an int"),
    ],
)
def test_pattern_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_union_operator_rejects_non_patterns():
    with pytest.raises(TypeError):
        Local(2) | 3


@pytest.mark.parametrize(
    ("shapes", "kwargs", "error", "match"),
    [
        (((1, 2, 8, 4), (1, 2, 8, 6), (1, 2, 8, 4)), {}, ValueError, "head_dim of q and k must match"),
        (((1, 2, 8, 4), (1, 2, 8, 4), (1, 2, 9, 4)), {}, ValueError, "k and v must agree"),
        (((1, 3, 8, 4), (1, 2, 8, 4), (1, 2, 8, 4)), {}, ValueError, "must be a positive multiple of kv_heads"),
        (((2, 8, 4), (1, 2, 8, 4), (1, 2, 8, 4)), {}, ValueError, "q must be 4-D"),
        (((1, 2, 8, 4), (1, 2, 8, 4), (1, 2, 8, 4)), {"pattern": "diagonal:1"}, ValueError, "unknown pattern 'diagonal'"),
        (((1, 2, 8, 4), (1, 2, 8, 4), (1, 2, 8, 4)), {"pattern": None}, TypeError, "pattern must be a Pattern"),
        (((1, 2, 8, 4), (1, 2, 8, 4), (1, 2, 8, 4)), {"block_size": 0}, ValueError, "block_size must be >= 1, got 0"),
        (((1, 2, 8, 4), (1, 2, 8, 4), (1, 2, 8, 4)), {"block_size": "4"}, TypeError, "block_size must be an int"),
        (((1, 2, 8, 4), (1, 2, 8, 4), (1, 2, 8, 4)), {"causal": "yes"}, TypeError, "causal must be a bool"),
        (((1, 2, 8, 4), (1, 2, 8, 4), (1, 2, 8, 4)), {"scale": float("nan")}, ValueError, "scale must be finite"),
    ],
)
def test_attention_errors(shapes, kwargs, error, match):
    q, k, v = (torch.zeros(shape) for shape in shapes)
    kwargs = {"pattern": Local(2), **kwargs}
    with pytest.raises(error, match=match):
        sparse_attention(q, k, v, **kwargs)


def test_integer_inputs_rejected():
    q = torch.zeros(1, 1, 4, 4, dtype=torch.int64)
    with pytest.raises(TypeError, match="q must have a floating dtype"):
        sparse_attention(q, q, q, Local(2))


def test_pattern_base_is_abstract():
    with pytest.raises(NotImplementedError):
        Pattern().mask(2, 2)
