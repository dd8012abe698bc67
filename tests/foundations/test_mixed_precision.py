"""Float formats, loss scaling and master weights against independent references.

References: Python's ``struct`` and NumPy for bit patterns, ``torch.finfo`` and NumPy's
``finfo`` for format limits, PyTorch's own dtype conversions for decoded values, a NumPy
float16 loop for running sums, and ``torch.amp.GradScaler`` for the loss scaler.
"""

import copy
import math
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlnotes.foundations.mixed_precision import (
    SUPPORTED_DTYPES,
    DynamicLossScaler,
    MasterWeights,
    float_bits,
    format_info,
    running_sum,
    train_with_master_weights,
)

WIDTHS = {
    torch.float16: (1, 5, 10),
    torch.bfloat16: (1, 8, 7),
    torch.float32: (1, 8, 23),
    torch.float64: (1, 11, 52),
    torch.float8_e4m3fn: (1, 4, 3),
    torch.float8_e5m2: (1, 5, 2),
}


def same_float(a: float, b: float) -> bool:
    """Equal including the sign of zero, or both NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def pattern_of(result) -> int:
    _, exponent_bits, mantissa_bits = WIDTHS[result.dtype]
    return (result.sign << (exponent_bits + mantissa_bits)) | (result.exponent << mantissa_bits) | result.mantissa


# ----------------------------------------------------------------------------- float_bits


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
def test_field_widths(dtype):
    fields = float_bits(1.5, dtype).bits.split(" ")
    assert tuple(len(part) for part in fields) == WIDTHS[dtype]
    info = format_info(dtype)
    assert (1, info.exponent_bits, info.mantissa_bits) == WIDTHS[dtype]
    assert info.bits == sum(WIDTHS[dtype]) == torch.finfo(dtype).bits


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
@settings(max_examples=300, deadline=None)
@given(x=st.floats(allow_nan=True, allow_infinity=True))
def test_decoded_value_equals_torch_conversion(dtype, x):
    result = float_bits(x, dtype)
    stored = torch.tensor(x, dtype=torch.float64).to(dtype)
    assert same_float(result.value, stored.item())
    if not math.isnan(result.value):
        assert result.kind == (
            "inf" if math.isinf(result.value)
            else "zero" if result.value == 0
            else "subnormal" if abs(result.value) < torch.finfo(dtype).smallest_normal
            else "normal"
        )


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_values_near_the_format_range(dtype, data):
    # Draw magnitudes spread over the format's exponent range, including subnormals
    # and overflow, which uniformly drawn doubles almost never hit for small formats.
    info = format_info(dtype)
    low = math.log2(info.smallest_subnormal) - 2
    high = min(math.log2(info.max) + 2, 1023.0)
    power = data.draw(st.floats(low, high))
    x = data.draw(st.sampled_from([-1.0, 1.0])) * 2.0**power
    assert same_float(float_bits(x, dtype).value, torch.tensor(x, dtype=torch.float64).to(dtype).item())


@pytest.mark.parametrize(("dtype", "code"), [(torch.float16, ">e"), (torch.float32, ">f"), (torch.float64, ">d")])
@settings(max_examples=300, deadline=None)
@given(x=st.floats(allow_nan=False, allow_infinity=True))
def test_bit_pattern_matches_struct(dtype, code, x):
    result = float_bits(x, dtype)
    expected = int.from_bytes(struct.pack(code, result.value), "big")  # IEEE encoding by the C library
    assert pattern_of(result) == expected


@settings(max_examples=300, deadline=None)
@given(x=st.floats(allow_nan=False, allow_infinity=True, width=32))
def test_bfloat16_is_the_top_half_of_float32(x):
    result = float_bits(x, torch.bfloat16)
    expected = int.from_bytes(struct.pack(">f", result.value)[:2], "big")
    assert pattern_of(result) == expected


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_every_16_bit_pattern(dtype):
    patterns = np.arange(2**16, dtype=np.uint16)
    if dtype == torch.float16:  # NumPy's own float16 decoding
        reference = patterns.view(np.float16).astype(np.float64)
    else:  # bf16 bits followed by 16 zero bits are the same number as a float32
        with np.errstate(invalid="ignore"):  # NaN patterns
            reference = (patterns.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    stored = torch.from_numpy(patterns.view(np.int16)).view(dtype)
    for pattern in range(0, 2**16, 7):  # every 7th pattern keeps the test fast
        result = float_bits(stored[pattern], dtype)
        assert pattern_of(result) == pattern
        assert same_float(result.value, float(reference[pattern])), hex(pattern)


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_every_fp8_pattern(dtype):
    stored = torch.arange(256, dtype=torch.uint8).view(dtype)
    reference = stored.to(torch.float64)  # torch's fp8 -> fp64 conversion
    kinds = []
    for pattern in range(256):
        result = float_bits(stored[pattern], dtype)
        assert pattern_of(result) == pattern
        assert same_float(result.value, reference[pattern].item()), hex(pattern)
        kinds.append(result.kind)
    if dtype == torch.float8_e4m3fn:  # no infinities, one NaN per sign: S.1111.111
        assert kinds.count("inf") == 0 and kinds.count("nan") == 2
    else:  # IEEE-like: inf with fraction 00, NaN with the other three fractions
        assert kinds.count("inf") == 2 and kinds.count("nan") == 6
    assert kinds.count("zero") == 2


def test_known_fp16_encodings():
    cases = {
        1.0: ("0 01111 0000000000", "normal"),
        -2.0: ("1 10000 0000000000", "normal"),
        65504.0: ("0 11110 1111111111", "normal"),
        2.0**-14: ("0 00001 0000000000", "normal"),
        2.0**-24: ("0 00000 0000000001", "subnormal"),
        -0.0: ("1 00000 0000000000", "zero"),
        math.inf: ("0 11111 0000000000", "inf"),
        1e5: ("0 11111 0000000000", "inf"),  # overflow
        1e-8: ("0 00000 0000000000", "zero"),  # underflow
    }
    for x, (bits, kind) in cases.items():
        result = float_bits(x, torch.float16)
        assert (result.bits, result.kind) == (bits, kind), x
    assert float_bits(math.nan, torch.float16).kind == "nan"
    assert str(float_bits(2.0, torch.float16)) == "0 10000 0000000000  normal    (-1)^0 * 2^(16-15) * (1 + 0/1024) = 2.0"


def test_tensor_input_keeps_or_converts():
    half = torch.tensor([0.1], dtype=torch.float16)
    assert float_bits(half, torch.float16).value == half.item()
    assert float_bits(half, torch.float32).value == half.item()  # fp16 -> fp32 is exact
    assert float_bits(torch.tensor(3), torch.float16).value == 3.0
    assert float_bits(np.float32(0.5), torch.bfloat16).value == 0.5


@pytest.mark.parametrize(
    ("x", "dtype", "error", "match"),
    [
        (1.0, "float16", TypeError, "dtype must be a torch.dtype"),
        (1.0, torch.int32, ValueError, "dtype must be one of"),
        (1.0, torch.float8_e4m3fnuz, ValueError, "dtype must be one of"),
        ("1.0", torch.float16, TypeError, "x must be a real number"),
        (True, torch.float16, TypeError, "x must be a real number"),
        (1j, torch.float16, TypeError, "x must be a real number"),
        (torch.zeros(2), torch.float16, ValueError, "exactly one element, got shape \\(2,\\)"),
        (torch.tensor(1j), torch.float16, TypeError, "real tensor"),
        (torch.tensor(True), torch.float16, TypeError, "real tensor"),
    ],
)
def test_float_bits_bad_input(x, dtype, error, match):
    with pytest.raises(error, match=match):
        float_bits(x, dtype)


# ---------------------------------------------------------------------------- format_info


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
def test_format_info_matches_finfo(dtype):
    info, finfo = format_info(dtype), torch.finfo(dtype)
    assert info.max == finfo.max
    assert info.smallest_normal == finfo.smallest_normal == finfo.tiny
    assert info.eps == finfo.eps
    assert info.bias == 2 ** (info.exponent_bits - 1) - 1
    # The smallest subnormal is the first number after zero, and half of it rounds to 0.
    subnormal = torch.tensor(info.smallest_subnormal, dtype=torch.float64)
    assert subnormal.to(dtype).item() == info.smallest_subnormal > 0
    assert (0.75 * subnormal).to(dtype).item() == info.smallest_subnormal
    assert (0.5 * subnormal).to(dtype).item() == 0.0  # a tie, rounded to the even pattern 0
    assert info.has_inf == math.isinf(torch.tensor(math.inf).to(dtype).item())  # e4m3fn saturates to 448


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_smallest_subnormal_is_nextafter_zero(dtype):
    zero = torch.zeros((), dtype=dtype)
    assert format_info(dtype).smallest_subnormal == torch.nextafter(zero, zero + 1).item()


@pytest.mark.parametrize(("dtype", "numpy_dtype"), [(torch.float16, np.float16), (torch.float32, np.float32), (torch.float64, np.float64)])
def test_smallest_subnormal_matches_numpy(dtype, numpy_dtype):
    assert format_info(dtype).smallest_subnormal == float(np.finfo(numpy_dtype).smallest_subnormal)


def test_fp8_limits_from_the_ocp_spec():
    e4m3 = format_info(torch.float8_e4m3fn)
    assert (e4m3.max, e4m3.smallest_normal, e4m3.smallest_subnormal, e4m3.has_inf) == (448.0, 2.0**-6, 2.0**-9, False)
    e5m2 = format_info(torch.float8_e5m2)
    assert (e5m2.max, e5m2.smallest_normal, e5m2.smallest_subnormal, e5m2.has_inf) == (57344.0, 2.0**-14, 2.0**-16, True)


@pytest.mark.parametrize("bad", [torch.int8, torch.complex64, "fp16", None])
def test_format_info_bad_input(bad):
    with pytest.raises((TypeError, ValueError), match="dtype must be"):
        format_info(bad)


# ---------------------------------------------------------------------------- running_sum


def test_fp16_counting_stalls_at_2048():
    ones = torch.ones(3000, dtype=torch.float16)
    assert running_sum(ones, torch.float16).item() == 2048.0  # 2048 + 1 rounds back to 2048
    assert running_sum(ones, torch.float32).item() == 3000.0


@settings(max_examples=20, deadline=None)
@given(values=st.lists(st.floats(-100, 100, width=16), min_size=1, max_size=300))
def test_running_sum_matches_numpy_float16_loop(values):
    total = np.float16(0)
    for value in np.array(values, dtype=np.float16):
        total = np.float16(total + value)  # NumPy rounds each float16 addition
    ours = running_sum(torch.tensor(values, dtype=torch.float16), torch.float16)
    assert ours.dtype == torch.float16
    assert same_float(ours.item(), float(total)) or (ours.item() == 0 and total == 0)


def test_fp32_accumulator_is_close_to_exact():
    values = torch.rand(5000, generator=torch.Generator().manual_seed(1)).to(torch.float16)
    exact = math.fsum(values.double().tolist())
    fp32 = running_sum(values, torch.float32).item()
    fp16 = running_sum(values, torch.float16).item()
    assert abs(fp32 - exact) <= 5000 * 2**-24 * exact  # textbook bound n * u * sum
    assert abs(fp16 - exact) > 100 * abs(fp32 - exact)


def test_running_sum_bad_input():
    with pytest.raises(TypeError, match="floating-point tensor"):
        running_sum(torch.arange(3), torch.float32)
    with pytest.raises(TypeError, match="floating-point tensor"):
        running_sum([1.0, 2.0], torch.float32)
    with pytest.raises(ValueError, match="dtype must be one of"):
        running_sum(torch.ones(3), torch.int32)


# ------------------------------------------------------------------- DynamicLossScaler


def _tiny_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def _lockstep(ours, theirs, *, steps, overflow_at, optimizer_class=torch.optim.SGD, clip=False):
    """Train two copies of a model, one per scaler, and yield their states after each step."""
    model_a = _tiny_model(0)
    model_b = copy.deepcopy(model_a)
    opt_a = optimizer_class(model_a.parameters(), lr=0.05)
    opt_b = optimizer_class(model_b.parameters(), lr=0.05)
    counts = {"a": 0, "b": 0}
    opt_a.register_step_post_hook(lambda *args: counts.__setitem__("a", counts["a"] + 1))
    opt_b.register_step_post_hook(lambda *args: counts.__setitem__("b", counts["b"] + 1))
    generator = torch.Generator().manual_seed(0)
    for step in range(steps):
        x = torch.randn(32, 6, generator=generator)
        y = torch.randn(32, 3, generator=generator)
        for model, optimizer, scaler in ((model_a, opt_a, ours), (model_b, opt_b, theirs)):
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.float16):  # fp16 matmuls, fp32 weights
                loss = torch.nn.functional.mse_loss(model(x), y)
            if step in overflow_at:
                loss = loss * 1e38  # times the scale: inf in float32
            scaler.scale(loss).backward()
            if clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
        yield step, model_a, model_b, counts


@pytest.mark.parametrize(
    ("settings_", "optimizer_class", "clip"),
    [
        (dict(init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=3), torch.optim.SGD, False),
        (dict(init_scale=2.0**20, growth_factor=2.0, backoff_factor=0.5, growth_interval=2), torch.optim.Adam, True),
        (dict(init_scale=3000.0, growth_factor=3.0, backoff_factor=0.3, growth_interval=4), torch.optim.SGD, False),
    ],
)
def test_scaler_equals_grad_scaler_step_by_step(settings_, optimizer_class, clip):
    ours = DynamicLossScaler(**settings_)
    theirs = torch.amp.GradScaler("cpu", **settings_)
    overflow_at = {0, 1, 7, 8, 9, 15}
    scales, skipped = [], 0
    previous_count = 0
    for step, model_a, model_b, counts in _lockstep(ours, theirs, steps=24, overflow_at=overflow_at,
                                                    optimizer_class=optimizer_class, clip=clip):
        assert ours.get_scale() == theirs.get_scale(), step
        assert ours.growth_tracker == theirs._get_growth_tracker(), step
        assert counts["a"] == counts["b"], step  # the same steps were skipped
        skipped += counts["a"] == previous_count
        previous_count = counts["a"]
        for p, q in zip(model_a.parameters(), model_b.parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=0, msg=f"step {step}")
        scales.append(ours.get_scale())
    assert skipped >= len(overflow_at)  # injected overflows were skipped (natural ones may add)
    assert any(b > a for a, b in zip(scales, scales[1:])), "the scale grew after good steps"
    assert any(b < a for a, b in zip(scales, scales[1:])), "the scale backed off"


def test_scaler_growth_schedule_by_hand():
    scaler = DynamicLossScaler(init_scale=8.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=3)
    parameter = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    expected = []
    for step, overflow in enumerate([False, False, False, False, True, False, False, False]):
        (scaler.scale(parameter.sum() * (math.inf if overflow else 1.0))).backward()
        assert overflow or torch.equal(parameter.grad, torch.full((2,), scaler.get_scale())), step
        scaler.step(optimizer)
        scaler.update()
        parameter.grad = None
        expected.append(scaler.get_scale())
    # 3 good steps: 8 -> 16; one good; overflow: 16 -> 8; 3 good: 8 -> 16
    assert expected == [8.0, 8.0, 16.0, 16.0, 8.0, 8.0, 8.0, 16.0]


def test_scaler_skips_nan_and_leaves_parameters():
    scaler = DynamicLossScaler(init_scale=4.0)
    parameter = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scaler.scale(parameter.sum() * math.nan).backward()
    assert scaler.step(optimizer) is None
    scaler.update()
    assert torch.equal(parameter.detach(), torch.ones(3))
    assert scaler.get_scale() == 2.0


def test_scale_keeps_nesting_and_promotes_fp16_like_grad_scaler():
    ours, theirs = DynamicLossScaler(init_scale=1024.0), torch.amp.GradScaler("cpu", init_scale=1024.0)
    loss = torch.tensor(0.5, dtype=torch.float16)
    assert ours.scale(loss).dtype == theirs.scale(loss).dtype == torch.float32
    scaled = ours.scale([loss, (loss, torch.tensor(2.0))])
    assert isinstance(scaled, list) and isinstance(scaled[1], tuple)
    assert [scaled[0].item(), scaled[1][0].item(), scaled[1][1].item()] == [512.0, 512.0, 2048.0]


def test_scale_growth_stops_at_float32_max():
    scaler = DynamicLossScaler(init_scale=2.0**127, growth_interval=1)
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.0)
    (parameter.sum() * 0).backward()
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() == 2.0**127  # 2**128 overflows float32: kept


def test_update_with_new_scale():
    scaler = DynamicLossScaler()
    scaler.update(new_scale=128.0)
    assert scaler.get_scale() == 128.0


def test_scaler_state_errors():
    scaler = DynamicLossScaler()
    parameter = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    with pytest.raises(RuntimeError, match="no inf checks were recorded"):
        scaler.update()
    scaler.scale(parameter.sum()).backward()
    scaler.unscale_(optimizer)
    with pytest.raises(RuntimeError, match="already been called on this optimizer"):
        scaler.unscale_(optimizer)
    scaler.step(optimizer)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(optimizer)
    with pytest.raises(RuntimeError, match="after step"):
        scaler.unscale_(optimizer)
    with pytest.raises(RuntimeError, match="closure is not supported"):
        scaler.step(optimizer, closure=lambda: 0.0)
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        scaler.step([parameter])
    with pytest.raises(TypeError, match="outputs must be a tensor"):
        scaler.scale(1.0)
    scaler.update()
    half = torch.nn.Parameter(torch.ones(2, dtype=torch.float16))
    half.grad = torch.ones(2, dtype=torch.float16)
    with pytest.raises(ValueError, match="cannot unscale fp16 gradients"):
        scaler.unscale_(torch.optim.SGD([half], lr=0.1))
    with pytest.raises(ValueError, match="new_scale must be a positive"):
        scaler.update(new_scale=-1.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(init_scale=0.0), ValueError, "init_scale must be a positive finite"),
        (dict(init_scale=math.inf), ValueError, "init_scale must be a positive finite"),
        (dict(growth_factor=1.0), ValueError, "growth_factor must be a finite number > 1"),
        (dict(backoff_factor=1.0), ValueError, "backoff_factor must be in \\(0, 1\\)"),
        (dict(backoff_factor=0.0), ValueError, "backoff_factor must be in \\(0, 1\\)"),
        (dict(growth_interval=0), ValueError, "growth_interval must be >= 1"),
        (dict(growth_interval=2.0), TypeError, "growth_interval must be an int"),
    ],
)
def test_scaler_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DynamicLossScaler(**kwargs)


# --------------------------------------------------------------------- master weights


def test_master_weights_keep_small_updates():
    # In fp16, 1 + 1e-4 rounds back to 1; the fp32 master accumulates the updates.
    model_weight = torch.nn.Parameter(torch.ones(1, dtype=torch.float16))
    master = MasterWeights([model_weight])
    assert master.parameters[0].dtype == torch.float32
    optimizer = torch.optim.SGD(master.parameters, lr=1.0)
    naive = torch.ones(1, dtype=torch.float16)
    for _ in range(100):
        model_weight.grad = torch.full((1,), -1e-4, dtype=torch.float16)
        master.copy_gradients()
        optimizer.step()
        master.copy_to_model()
        naive += 1e-4  # the update applied directly in fp16
    assert naive.item() == 1.0
    assert model_weight.item() == torch.tensor(1 + 100 * float(torch.tensor(1e-4, dtype=torch.float16)),
                                               dtype=torch.float16).item()
    assert model_weight.item() > 1.009


def test_master_weights_bad_input():
    with pytest.raises(ValueError, match="must not be empty"):
        MasterWeights([])
    with pytest.raises(TypeError, match="floating-point tensor"):
        MasterWeights([torch.ones(2, dtype=torch.int64)])


def test_fp16_without_scaling_loses_gradients_and_scaling_recovers_fp32():
    fp32 = train_with_master_weights(None, model_dtype=torch.float32, steps=60)
    unscaled = train_with_master_weights(None, model_dtype=torch.float16, steps=60)
    scaled = train_with_master_weights(DynamicLossScaler(), model_dtype=torch.float16, steps=60)
    assert max(fp32.zero_gradient_fraction) == 0.0
    assert unscaled.zero_gradient_fraction[-1] > 0.9  # almost every gradient underflowed to 0
    assert max(scaled.zero_gradient_fraction) < 0.01
    assert unscaled.losses[-1] > 3 * fp32.losses[-1]
    assert scaled.losses[-1] == pytest.approx(fp32.losses[-1], rel=0.05)


def test_loss_weight_does_not_matter_in_fp32():
    # Adam with a negligible eps is invariant to a constant factor on the loss.
    weighted = train_with_master_weights(None, model_dtype=torch.float32, loss_weight=1e-6, steps=40)
    plain = train_with_master_weights(None, model_dtype=torch.float32, loss_weight=1.0, steps=40)
    assert weighted.losses == pytest.approx(plain.losses, rel=1e-3)


def test_bfloat16_needs_no_scaling():
    history = train_with_master_weights(None, model_dtype=torch.bfloat16, steps=30)
    assert max(history.zero_gradient_fraction) < 0.01
    assert history.losses[-1] < 0.2 * history.losses[0]


def test_training_records_skips():
    history = train_with_master_weights(DynamicLossScaler(init_scale=2.0**40), steps=12)
    assert history.skipped[0] and history.scales[1] == history.scales[0] / 2
    assert history.scales == sorted(history.scales, reverse=True)
    assert not history.skipped[-1]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(model_dtype=torch.float64), ValueError, "model_dtype must be"),
        (dict(loss_scaler=torch.amp.GradScaler("cpu")), TypeError, "loss_scaler must be a DynamicLossScaler"),
        (dict(loss_weight=0.0), ValueError, "loss_weight must be > 0"),
        (dict(steps=0), ValueError, "steps must be an int >= 1"),
        (dict(learning_rate=-1.0), ValueError, "learning_rate must be > 0"),
    ],
)
def test_training_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        train_with_master_weights(**kwargs)


def test_python_floats_are_rounded_by_torch_as_documented():
    # The docstring's example of PyTorch's double rounding (float64 -> float32 -> float16);
    # NumPy rounds float64 -> float16 directly.
    x = 1 + 2**-11 + 2**-40
    assert float_bits(x, torch.float16).value == torch.tensor(x, dtype=torch.float64).half().item() == 1.0
    assert float(np.float16(x)) == 1 + 2**-10
