"""RoPE against the complex-number definition and its defining properties."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlnotes.attention.rope import RotaryEmbedding, apply_rope, rope_angles, rope_decay_bound


def rope_complex(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Independent reference: interleaved pairs as complex numbers times e^{i m theta}, in fp64."""
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    phase = torch.polar(torch.ones(1, dtype=torch.float64), positions.double()[:, None] * theta)
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    return torch.view_as_real(z * phase).flatten(-2)


def half_to_interleaved(d: int) -> torch.Tensor:
    """Channel permutation taking the 'half' pairing (j, j + d/2) to (2j, 2j + 1)."""
    return torch.stack([torch.arange(d // 2), torch.arange(d // 2) + d // 2], dim=-1).flatten()


def test_interleaved_equals_complex_multiplication():
    x = torch.randn(2, 3, 11, 16, dtype=torch.float64)
    positions = torch.arange(11)
    torch.testing.assert_close(apply_rope(x, positions, layout="interleaved"), rope_complex(x, positions))


@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_norm_is_preserved(layout):
    x = torch.randn(1, 2, 50, 32)
    out = apply_rope(x, torch.arange(50) * 37, layout=layout)
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))


@pytest.mark.parametrize("layout", ["half", "interleaved"])
@settings(max_examples=30, deadline=None)
@given(m=st.integers(0, 5000), n=st.integers(0, 5000), shift=st.integers(0, 5000))
def test_inner_product_depends_only_on_offset(layout, m, n, shift):
    generator = torch.Generator().manual_seed(m + 7 * n)
    q, k = torch.randn(2, 64, dtype=torch.float64, generator=generator)
    def logit(a, b):
        return (apply_rope(q, torch.tensor(a), layout=layout) * apply_rope(k, torch.tensor(b), layout=layout)).sum()
    torch.testing.assert_close(logit(m, n), logit(m + shift, n + shift), rtol=1e-9, atol=1e-9)


def test_layouts_equal_up_to_a_channel_permutation():
    d = 24
    perm = half_to_interleaved(d)
    x = torch.randn(2, 2, 9, d)
    positions = torch.arange(9)
    half = apply_rope(x, positions, layout="half")
    interleaved = apply_rope(x[..., perm], positions, layout="interleaved")
    torch.testing.assert_close(interleaved, half[..., perm])


def test_partial_rotary_leaves_the_rest_untouched():
    x = torch.randn(1, 1, 6, 16)
    out = apply_rope(x, torch.arange(6), rotary_dim=8)
    torch.testing.assert_close(out[..., 8:], x[..., 8:], rtol=0, atol=0)
    torch.testing.assert_close(out[..., :8], apply_rope(x[..., :8], torch.arange(6)))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs_at_large_positions_stay_accurate(dtype):
    # Angles are computed in fp32: at m = 100k an fp16 angle would be off by whole radians.
    x = torch.randn(1, 2, 4, 64)
    positions = torch.arange(100_000, 100_004)
    reference = rope_complex(x, positions)  # fp64, interleaved
    out = apply_rope(x.to(dtype), positions, layout="interleaved").double()
    input_rounding = (x.to(dtype).double() - x.double()).abs().max()
    assert (out - reference).abs().max() < 4 * input_rounding + 2 * torch.finfo(dtype).eps * x.abs().max(), "inaccurate"
    assert out.dtype == torch.float64 and apply_rope(x.to(dtype), positions).dtype == dtype


def test_angles_follow_the_formula():
    angles = rope_angles(torch.tensor([3]), 8, base=100.0)
    expected = torch.tensor([[3 * 100.0 ** (-2 * i / 8) for i in range(4)]])
    torch.testing.assert_close(angles, expected)


def test_positions_broadcast_per_batch():
    x = torch.randn(2, 3, 5, 8)
    positions = torch.tensor([[0, 1, 2, 3, 4], [10, 11, 12, 13, 14]])[:, None, :]
    out = apply_rope(x, positions)
    torch.testing.assert_close(out[1], apply_rope(x[1], torch.arange(10, 15)))


@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_rotary_embedding_module_matches_function_and_grows_its_cache(layout):
    rope = RotaryEmbedding(16, layout=layout, rotary_dim=12, max_positions=8)
    q, k = torch.randn(2, 1, 2, 30, 16)
    positions = torch.arange(100, 130)
    q_rot, k_rot = rope(q, k, positions)
    torch.testing.assert_close(q_rot, apply_rope(q, positions, layout=layout, rotary_dim=12))
    torch.testing.assert_close(k_rot, apply_rope(k, positions, layout=layout, rotary_dim=12))
    assert rope.cos_cached.shape[0] >= 130
    assert "cos_cached" not in rope.state_dict()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x": torch.zeros(1, 1, 2, 7)}, ValueError, "rotary_dim must be a positive even integer <= head_dim=7"),
        ({"rotary_dim": 10}, ValueError, "<= head_dim=8, got 10"),
        ({"rotary_dim": 3}, ValueError, "positive even"),
        ({"layout": "neox"}, ValueError, "layout must be"),
        ({"x": torch.zeros(1, 1, 2, 8, dtype=torch.long)}, TypeError, "floating-point"),
        ({"positions": [0, 1]}, TypeError, "positions must be a torch.Tensor"),
        ({"positions": torch.arange(3)}, ValueError, "must broadcast"),
        ({"base": 1.0}, ValueError, "base must be > 1"),
    ],
)
def test_bad_input(kwargs, error, match):
    arguments = {"x": torch.zeros(1, 1, 2, 8), "positions": torch.arange(2)} | kwargs
    with pytest.raises(error, match=match):
        apply_rope(**arguments)


def test_module_rejects_bad_configuration():
    with pytest.raises(ValueError, match="layout"):
        RotaryEmbedding(8, layout="x")
    with pytest.raises(ValueError, match="rotary_dim"):
        RotaryEmbedding(8, rotary_dim=5)
    assert math.isclose(RotaryEmbedding(8, base=500.0).base, 500.0)


def decay_bound_by_hand(distance: float, d: int, base: float) -> float:
    """(1/(d/2)) sum_j |S_j|, S_j = sum_{i<j} e^{i r theta_i}, with Python's cmath."""
    import cmath

    total, partial = 0.0, 0j
    for i in range(d // 2):
        partial += cmath.exp(1j * distance * base ** (-2 * i / d))
        total += abs(partial)
    return total / (d // 2)


@pytest.mark.parametrize(("d", "base"), [(8, 10000.0), (128, 10000.0), (64, 500.0)])
def test_decay_bound_matches_the_definition(d, base):
    distances = torch.tensor([0, 1, 7, 100, 2500, -30])
    expected = torch.tensor([decay_bound_by_hand(float(r), d, base) for r in distances], dtype=torch.float64)
    torch.testing.assert_close(rope_decay_bound(distances, d, base), expected)
    assert math.isclose(float(rope_decay_bound(torch.tensor(0), d, base)), (d // 2 + 1) / 2), "S_j = j at r = 0"


@settings(max_examples=40, deadline=None)
@given(distance=st.integers(-3000, 3000), seed=st.integers(0, 10_000))
def test_decay_bound_bounds_the_rotated_logit(distance, seed):
    # Abel summation: |sum_i h_i e^{i r theta_i}| <= max_i |h_{i+1} - h_i| * (d/2) * B(r), h_{d/2} = 0.
    d = 32
    generator = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, d, dtype=torch.float64, generator=generator)
    logit = (apply_rope(q, torch.tensor(distance), layout="interleaved") * k).sum()  # <R_r q, k> = <R_m q, R_n k>
    h = torch.view_as_complex(q.reshape(-1, 2).contiguous()) * torch.view_as_complex(k.reshape(-1, 2).contiguous()).conj()
    h_steps = (torch.cat([h, h.new_zeros(1)]).diff()).abs().max()
    bound = h_steps * (d // 2) * rope_decay_bound(torch.tensor(distance), d)
    assert abs(float(logit)) <= float(bound) * (1 + 1e-12), f"logit {float(logit)} exceeds bound {float(bound)}"


def test_decay_bound_decays_on_average():
    near = rope_decay_bound(torch.arange(0, 64), 128).mean()
    far = rope_decay_bound(torch.arange(4000, 4064), 128).mean()
    assert far < near / 2, f"mean bound {float(far):.2f} at ~4000 vs {float(near):.2f} at < 64"


def test_decay_bound_rejects_bad_input():
    with pytest.raises(TypeError, match="distances must be a torch.Tensor"):
        rope_decay_bound([1, 2], 8)
    with pytest.raises(ValueError, match="rotary_dim must be a positive even integer"):
        rope_decay_bound(torch.tensor([1]), 7)
    with pytest.raises(ValueError, match="base must be > 1"):
        rope_decay_bound(torch.tensor([1]), 8, base=0.5)


@pytest.mark.parametrize("cast", [torch.float16, torch.bfloat16])
def test_module_keeps_fp32_tables_after_a_dtype_cast(cast):
    # Module.half() / .to(bf16) casts every floating buffer; the tables must come back in fp32.
    x = torch.randn(1, 2, 6, 16)
    positions = torch.arange(300, 306)
    rope = RotaryEmbedding(16, max_positions=512).to(cast)
    q_rot, k_rot = rope(x.to(cast), x.to(cast), positions)
    assert rope.cos_cached.dtype == torch.float32 and q_rot.dtype == cast
    torch.testing.assert_close(q_rot, apply_rope(x.to(cast), positions), rtol=0, atol=0)


def test_module_rejects_bad_positions_and_shapes():
    rope = RotaryEmbedding(8, max_positions=16)
    q = torch.zeros(1, 1, 2, 8)
    with pytest.raises(ValueError, match="non-negative"):
        rope(q, q, torch.tensor([-1, 0]))  # would silently index the end of the cache
    with pytest.raises(TypeError, match="integer tensor"):
        rope(q, q, torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match="integer tensor"):
        rope(q, q, torch.tensor([True, False]))
    with pytest.raises(ValueError, match="k must end in head_dim=8"):
        rope(q, torch.zeros(1, 1, 2, 6), torch.arange(2))
