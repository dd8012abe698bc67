"""From-scratch upsampling ops against PyTorch's operators, a brute-force scatter, and autograd."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlnotes.vision.upsampling import conv_transpose2d, interpolate, max_unpool2d, pixel_shuffle, pixel_unshuffle

EXACT = dict(rtol=0, atol=0)
F64 = dict(rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- interpolate


@st.composite
def resize_case(draw):
    """An input shape, a mode, and either a size or a scale factor (up or down, non-integer)."""
    spatial = draw(st.sampled_from([1, 2]))
    shape = [draw(st.integers(1, 2)), draw(st.integers(1, 3))] + [draw(st.integers(1, 9)) for _ in range(spatial)]
    mode = draw(st.sampled_from(["nearest", "linear" if spatial == 1 else "bilinear"]))
    align_corners = None if mode == "nearest" else draw(st.sampled_from([True, False, None]))
    if draw(st.booleans()):
        size = [draw(st.integers(1, 17)) for _ in range(spatial)]
        return shape, dict(size=size if draw(st.booleans()) else size[0], mode=mode, align_corners=align_corners)
    factors = []
    for n in shape[2:]:
        factor = draw(st.floats(0.25, 4.0, allow_nan=False))
        if math.floor(n * factor) < 1:
            factor = 1.0 / n + 0.01
        factors.append(factor)
    recompute = draw(st.sampled_from([None, False, True]))
    factor = factors if (spatial == 1 or draw(st.booleans())) else factors[0]
    if not isinstance(factor, list) and any(math.floor(n * factor) < 1 for n in shape[2:]):
        factor = factors
    return shape, dict(scale_factor=factor, mode=mode, align_corners=align_corners, recompute_scale_factor=recompute)


@settings(max_examples=300, deadline=None)
@given(case=resize_case(), dtype=st.sampled_from([torch.float64, torch.float32]))
def test_interpolate_matches_torch(case, dtype):
    shape, kwargs = case
    x = torch.randn(shape, dtype=dtype)
    ours = interpolate(x, **kwargs)
    reference = F.interpolate(x, **kwargs)
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    if kwargs["mode"] == "nearest":
        torch.testing.assert_close(ours, reference, **EXACT)  # same indices, bit for bit
    elif dtype == torch.float64:
        torch.testing.assert_close(ours, reference, **F64)
    else:
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_interpolate_half_precision(dtype, mode):
    x = torch.randn(2, 3, 5, 6).to(dtype)
    ours = interpolate(x, scale_factor=(1.5, 2.25), mode=mode)
    reference = F.interpolate(x, scale_factor=(1.5, 2.25), mode=mode)
    assert ours.dtype == dtype, ours.dtype
    torch.testing.assert_close(ours, reference, **(EXACT if mode == "nearest" else dict(rtol=1e-2, atol=1e-2)))


def test_scale_factor_and_size_sample_differently_like_torch():
    # 5 * 1.7 = 8.5 -> 8 outputs; the ratio is 1/1.7 = 0.588 with scale_factor, 5/8 = 0.625 with size.
    x = torch.arange(5.0, dtype=torch.float64).view(1, 1, 5)
    by_factor = interpolate(x, scale_factor=1.7)
    by_size = interpolate(x, size=8)
    recomputed = interpolate(x, scale_factor=1.7, recompute_scale_factor=True)
    # floor(d / 1.7) and floor(d * 5 / 8), written out by hand for d = 0..7
    assert by_factor.flatten().tolist() == [0, 0, 1, 1, 2, 2, 3, 4]
    assert by_size.flatten().tolist() == [0, 0, 1, 1, 2, 3, 3, 4]
    torch.testing.assert_close(recomputed, by_size, **EXACT)
    torch.testing.assert_close(by_factor, F.interpolate(x, scale_factor=1.7), **EXACT)
    torch.testing.assert_close(by_size, F.interpolate(x, size=8), **EXACT)
    for align_corners in (False, True):
        ours = interpolate(x, scale_factor=1.7, mode="linear", align_corners=align_corners)
        torch.testing.assert_close(ours, F.interpolate(x, scale_factor=1.7, mode="linear", align_corners=align_corners), **F64)


def test_nearest_shortcuts_of_the_2d_kernel():
    # 2 * 1.25 = 2.5 -> 2 outputs: the formula floor(d / 1.25) gives [0, 0]; PyTorch's 2-D kernel
    # short-cuts n_out == n_in to the identity, its 1-D kernel does not.
    row = torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert interpolate(row.view(1, 1, 2), scale_factor=1.25).flatten().tolist() == [3.0, 3.0]
    assert interpolate(row.view(1, 1, 1, 2), scale_factor=(1.0, 1.25)).flatten().tolist() == [3.0, 4.0]
    # 3 * 2.1 = 6.3 -> 6 outputs: floor(d / 2.1) = [0, 0, 0, 1, 1, 2], short-cut d // 2 = [0, 0, 1, 1, 2, 2]
    row = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    assert interpolate(row.view(1, 1, 3), scale_factor=2.1).flatten().tolist() == [0, 0, 0, 1, 1, 2]
    assert interpolate(row.view(1, 1, 1, 3), scale_factor=(1.0, 2.1)).flatten().tolist() == [0, 0, 1, 1, 2, 2]


def test_bilinear_by_hand():
    # A 1-D ramp [0, 10] resized to 4 samples, from the definitions:
    # align_corners=True: s = d * (2-1)/(4-1) -> 0, 1/3, 2/3, 1
    # align_corners=False: s = max(0, (d + 0.5) * 2/4 - 0.5) -> 0, 0.25, 0.75, 1.25 (right clamped)
    x = torch.tensor([[[0.0, 10.0]]], dtype=torch.float64)
    corners = interpolate(x, size=4, mode="linear", align_corners=True).flatten()
    half_pixel = interpolate(x, size=4, mode="linear", align_corners=False).flatten()
    torch.testing.assert_close(corners, torch.tensor([0, 10 / 3, 20 / 3, 10], dtype=torch.float64), **F64)
    torch.testing.assert_close(half_pixel, torch.tensor([0, 2.5, 7.5, 10], dtype=torch.float64), **F64)


def test_nn_upsampling_layers():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(interpolate(x, scale_factor=2), torch.nn.UpsamplingNearest2d(scale_factor=2)(x), **EXACT)
    # UpsamplingBilinear2d is bilinear with align_corners=True
    torch.testing.assert_close(
        interpolate(x, size=(7, 9), mode="bilinear", align_corners=True),
        torch.nn.UpsamplingBilinear2d(size=(7, 9))(x), **F64,
    )
    torch.testing.assert_close(
        interpolate(x, scale_factor=3, mode="bilinear"), torch.nn.Upsample(scale_factor=3, mode="bilinear")(x), **F64
    )


@pytest.mark.parametrize("align_corners", [True, False])
def test_interpolate_gradients(align_corners):
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: interpolate(t, scale_factor=(1.5, 0.75), mode="bilinear", align_corners=align_corners), (x,)
    ), "gradcheck"
    upstream = torch.randn(1, 2, 5, 7, dtype=torch.float64)
    (ours,) = torch.autograd.grad(interpolate(x, size=(5, 7), mode="bilinear", align_corners=align_corners), x, upstream)
    (theirs,) = torch.autograd.grad(F.interpolate(x, size=(5, 7), mode="bilinear", align_corners=align_corners), x, upstream)
    torch.testing.assert_close(ours, theirs, **F64)
    upstream = torch.randn(1, 2, 7, 10, dtype=torch.float64)  # nearest, 3 x 4 -> floor(7.5) x 10
    (ours,) = torch.autograd.grad(interpolate(x, scale_factor=2.5), x, upstream)
    (theirs,) = torch.autograd.grad(F.interpolate(x, scale_factor=2.5), x, upstream)
    torch.testing.assert_close(ours, theirs, **F64)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(size=4, scale_factor=2), ValueError, "both"),
        (dict(), ValueError, "neither"),
        (dict(size=4, align_corners=True), ValueError, "align_corners"),
        (dict(size=4, mode="bicubic"), ValueError, "mode must be one of"),
        (dict(size=4, mode="linear"), ValueError, "3-D"),
        (dict(size=(4, 4, 4)), ValueError, "2 entries"),
        (dict(size=0), ValueError, "positive"),
        (dict(scale_factor=-1.0), ValueError, "positive"),
        (dict(scale_factor=0.1), ValueError, ">= 1"),
        (dict(size=4, recompute_scale_factor=True), ValueError, "recompute_scale_factor"),
    ],
)
def test_interpolate_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        interpolate(torch.zeros(1, 1, 3, 3), **kwargs)


def test_interpolate_input_errors():
    with pytest.raises(TypeError, match="floating-point"):
        interpolate(torch.zeros(1, 1, 3, 3, dtype=torch.int64), size=4)
    with pytest.raises(ValueError, match=r"\(N, C, L\) or \(N, C, H, W\)"):
        interpolate(torch.zeros(3, 3), size=4)
    with pytest.raises(ValueError, match="4-D"):
        interpolate(torch.zeros(1, 1, 3), size=4, mode="bilinear")
    with pytest.raises(TypeError, match="sequence of numbers"):
        interpolate(torch.zeros(1, 1, 3, 3), scale_factor=torch.tensor(2.0))


# ---------------------------------------------------------------- pixel shuffle


@settings(max_examples=100, deadline=None)
@given(
    batch=st.lists(st.integers(1, 2), max_size=2),
    channels=st.integers(1, 3),
    r=st.integers(1, 3),
    height=st.integers(1, 4),
    width=st.integers(1, 4),
)
def test_pixel_shuffle_matches_torch(batch, channels, r, height, width):
    x = torch.randn(*batch, channels * r * r, height, width)
    shuffled = pixel_shuffle(x, r)
    torch.testing.assert_close(shuffled, torch.nn.PixelShuffle(r)(x), **EXACT)
    torch.testing.assert_close(pixel_unshuffle(shuffled, r), x, **EXACT)
    torch.testing.assert_close(pixel_unshuffle(shuffled, r), torch.nn.PixelUnshuffle(r)(shuffled), **EXACT)


def test_pixel_shuffle_layout_by_hand():
    # channel c*r*r + i*r + j lands at row h*r + i, column w*r + j
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert pixel_shuffle(x, 2).tolist() == [[[[0.0, 1.0], [2.0, 3.0]], [[4.0, 5.0], [6.0, 7.0]]]]


def test_pixel_shuffle_errors():
    with pytest.raises(ValueError, match="divisible by upscale_factor"):
        pixel_shuffle(torch.zeros(1, 3, 2, 2), 2)
    with pytest.raises(ValueError, match="divisible by downscale_factor"):
        pixel_unshuffle(torch.zeros(1, 1, 3, 4), 2)
    with pytest.raises(ValueError, match="at least 3 dims"):
        pixel_shuffle(torch.zeros(4, 4), 2)
    with pytest.raises(ValueError, match=">= 1"):
        pixel_unshuffle(torch.zeros(1, 1, 2, 2), 0)
    with pytest.raises(TypeError, match="must be an int"):
        pixel_shuffle(torch.zeros(1, 4, 2, 2), 2.0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        pixel_shuffle([[[0.0]]], 1)


# ---------------------------------------------------------------- max-unpooling


@settings(max_examples=100, deadline=None)
@given(
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    stride=st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))),
    pad_fraction=st.tuples(st.booleans(), st.booleans()),
    size=st.tuples(st.integers(3, 9), st.integers(3, 9)),
    extra=st.tuples(st.integers(0, 2), st.integers(0, 2)),
)
def test_max_unpool_matches_torch(kernel, stride, pad_fraction, size, extra):
    padding = tuple(k // 2 if use else 0 for k, use in zip(kernel, pad_fraction))
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    pooled, indices = F.max_pool2d(x, kernel, stride, padding, return_indices=True)
    default_size = [(n - 1) * s - 2 * p + k for n, s, p, k in zip(pooled.shape[2:], stride or kernel, padding, kernel)]
    if indices.max().item() < default_size[0] * default_size[1]:
        ours = max_unpool2d(pooled, indices, kernel, stride, padding)
        torch.testing.assert_close(ours, F.max_unpool2d(pooled, indices, kernel, stride, padding), **EXACT)
    # Any size in [default, default + stride - 1] is allowed; the input's own size is one of them.
    strides = kernel if stride is None else stride
    bigger = [n + min(e, s - 1) for n, e, s in zip(default_size, extra, strides)]
    for output_size in (bigger, size):
        if indices.max().item() < output_size[0] * output_size[1]:  # torch would reject it too
            ours = max_unpool2d(pooled, indices, kernel, stride, padding, output_size=output_size)
            torch.testing.assert_close(
                ours, F.max_unpool2d(pooled, indices, kernel, stride, padding, output_size=output_size), **EXACT
            )
    # output_size may also carry the leading (N, C), as in nn.MaxUnpool2d
    torch.testing.assert_close(
        max_unpool2d(pooled, indices, kernel, stride, padding, output_size=x.shape),
        F.max_unpool2d(pooled, indices, kernel, stride, padding, output_size=x.shape), **EXACT,
    )
    # With the input's size, unpooling puts every maximum back where it came from.
    restored = max_unpool2d(pooled, indices, kernel, stride, padding, output_size=size)
    assert torch.equal(restored.flatten(2).gather(2, indices.flatten(2)), x.flatten(2).gather(2, indices.flatten(2)))


def test_max_unpool_by_hand_and_gradient():
    x = torch.tensor([[[[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 8.0, 7.0]]]], dtype=torch.float64)
    pooled, indices = F.max_pool2d(x, 2, return_indices=True)
    unpooled = max_unpool2d(pooled, indices, 2)
    assert unpooled.tolist() == [[[[0.0, 5.0, 0.0, 0.0], [0.0, 0.0, 8.0, 0.0]]]]
    values = pooled.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: max_unpool2d(v, indices, 2), (values,)), "gradcheck"


def test_max_unpool_errors():
    pooled, indices = F.max_pool2d(torch.randn(1, 1, 4, 4), 2, return_indices=True)
    with pytest.raises(TypeError, match="int64"):
        max_unpool2d(pooled, indices.float(), 2)
    with pytest.raises(ValueError, match="shape of x"):
        max_unpool2d(pooled, indices[..., :1], 2)
    with pytest.raises(ValueError, match="4-D"):
        max_unpool2d(pooled[0], indices[0], 2)
    with pytest.raises(ValueError, match=r"output_size\[0\] must be in \[4, 5\]"):
        max_unpool2d(pooled, indices, 2, output_size=(6, 4))
    with pytest.raises(ValueError, match=r"output_size must be \(H_out, W_out\)"):
        max_unpool2d(pooled, indices, 2, output_size=(1, 4, 4))
    with pytest.raises(ValueError, match="indices must lie in"):
        max_unpool2d(pooled, indices + 100, 2)
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        max_unpool2d(pooled, indices, 0)


# ---------------------------------------------------------------- transposed convolution


def scatter_conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation):
    """The definition, brute force: every input pixel adds a scaled copy of the kernel to the output."""
    n, c_in, h, w = x.shape
    _, c_out_g, kh, kw = weight.shape
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    full_h, full_w = (h - 1) * sh + dh * (kh - 1) + 1 + oph, (w - 1) * sw + dw * (kw - 1) + 1 + opw
    out = torch.zeros(n, c_out_g * groups, full_h, full_w, dtype=x.dtype)
    c_in_g = c_in // groups
    for ci in range(c_in):
        g = ci // c_in_g
        for i in range(h):
            for j in range(w):
                for a in range(kh):
                    for b in range(kw):
                        out[:, g * c_out_g:(g + 1) * c_out_g, i * sh + a * dh, j * sw + b * dw] += (
                            x[:, ci, i, j, None] * weight[ci, :, a, b]
                        )
    out = out[:, :, ph:full_h - ph, pw:full_w - pw]
    return out if bias is None else out + bias.view(1, -1, 1, 1)


@st.composite
def conv_transpose_case(draw):
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    size = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    padding = []
    for n, s, d, k, op in zip(size, stride, dilation, kernel, output_padding):
        full = (n - 1) * s + d * (k - 1) + op + 1
        padding.append(draw(st.integers(0, (full - 1) // 2)))  # keep the output non-empty
    return dict(
        x_shape=(draw(st.integers(1, 2)), c_in, *size),
        weight_shape=(c_in, c_out // groups, *kernel),
        bias=draw(st.booleans()),
        kwargs=dict(stride=stride, padding=tuple(padding), output_padding=output_padding, groups=groups, dilation=dilation),
    )


@settings(max_examples=200, deadline=None)
@given(case=conv_transpose_case())
def test_conv_transpose2d_matches_torch(case):
    x = torch.randn(case["x_shape"], dtype=torch.float64)
    weight = torch.randn(case["weight_shape"], dtype=torch.float64)
    bias = torch.randn(weight.shape[1] * case["kwargs"]["groups"], dtype=torch.float64) if case["bias"] else None
    ours = conv_transpose2d(x, weight, bias, **case["kwargs"])
    reference = F.conv_transpose2d(x, weight, bias, **case["kwargs"])
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    torch.testing.assert_close(ours, reference, **F64)


@settings(max_examples=40, deadline=None)
@given(case=conv_transpose_case())
def test_conv_transpose2d_matches_scatter_definition(case):
    x = torch.randn(case["x_shape"], dtype=torch.float64)
    weight = torch.randn(case["weight_shape"], dtype=torch.float64)
    bias = torch.randn(weight.shape[1] * case["kwargs"]["groups"], dtype=torch.float64) if case["bias"] else None
    kwargs = case["kwargs"]
    expected = scatter_conv_transpose2d(
        x, weight, bias, kwargs["stride"], kwargs["padding"], kwargs["output_padding"], kwargs["groups"], kwargs["dilation"]
    )
    torch.testing.assert_close(conv_transpose2d(x, weight, bias, **kwargs), expected, **F64)


def test_conv_transpose2d_float32_and_module():
    layer = torch.nn.ConvTranspose2d(4, 6, kernel_size=3, stride=2, padding=1, output_padding=1, groups=2, dilation=1)
    x = torch.randn(2, 4, 5, 6)
    ours = conv_transpose2d(x, layer.weight, layer.bias, stride=2, padding=1, output_padding=1, groups=2)
    torch.testing.assert_close(ours, layer(x), rtol=1e-5, atol=1e-5)
    assert ours.shape == (2, 6, 10, 12), ours.shape  # 2x upsampling: (5 - 1) * 2 - 2 + 2 + 1 + 1


def test_conv_transpose2d_gradients():
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, requires_grad=True)
    kwargs = dict(stride=(2, 1), padding=(1, 0), output_padding=(1, 0), groups=2, dilation=(1, 2))
    assert torch.autograd.gradcheck(lambda *t: conv_transpose2d(*t, **kwargs), (x, weight, bias)), "gradcheck"
    upstream = torch.randn_like(F.conv_transpose2d(x, weight, bias, **kwargs))
    ours = torch.autograd.grad(conv_transpose2d(x, weight, bias, **kwargs), (x, weight, bias), upstream)
    theirs = torch.autograd.grad(F.conv_transpose2d(x, weight, bias, **kwargs), (x, weight, bias), upstream)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, **F64)


def test_checkerboard_overlap_counts():
    # kernel 3, stride 2: output positions are covered by 1, 2, 1, 2, ... kernel taps (uneven);
    # kernel 4, stride 2: every interior position by exactly 2 (even).
    ones = torch.ones(1, 1, 1, 5, dtype=torch.float64)
    uneven = conv_transpose2d(ones, torch.ones(1, 1, 1, 3, dtype=torch.float64), stride=2).flatten()
    even = conv_transpose2d(ones, torch.ones(1, 1, 1, 4, dtype=torch.float64), stride=2).flatten()
    assert uneven.tolist() == [1, 1, 2, 1, 2, 1, 2, 1, 2, 1, 1]
    assert even.tolist() == [1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1]


def test_output_padding_rule_agrees_with_torch():
    x, weight = torch.randn(1, 1, 3, 3), torch.randn(1, 1, 3, 3)
    # output_padding=1 with stride 1 is allowed when the dilation is 2 (both here and in torch)
    torch.testing.assert_close(
        conv_transpose2d(x, weight, output_padding=1, dilation=2),
        F.conv_transpose2d(x, weight, output_padding=1, dilation=2), rtol=1e-5, atol=1e-5,
    )
    with pytest.raises(RuntimeError):
        F.conv_transpose2d(x, weight, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="smaller than either stride or dilation"):
        conv_transpose2d(x, weight, stride=2, output_padding=2)


@pytest.mark.parametrize(
    ("x_shape", "weight_shape", "bias_shape", "kwargs", "error", "message"),
    [
        ((1, 3, 4, 4), (2, 1, 3, 3), None, {}, ValueError, "x has 3 channels"),
        ((1, 3, 4, 4), (3, 1, 3, 3), None, dict(groups=2), ValueError, "divisible by groups"),
        ((1, 2, 4, 4), (2, 1, 3, 3), (3,), {}, ValueError, "bias must have shape"),
        ((2, 4, 4), (2, 1, 3, 3), None, {}, ValueError, r"x must have shape \(N, C_in, H, W\)"),
        ((1, 2, 4, 4), (2, 1, 3), None, {}, ValueError, "weight must have shape"),
        ((1, 2, 4, 4), (2, 1, 3, 3), None, dict(stride=0), ValueError, "stride must be >= 1"),
        ((1, 2, 4, 4), (2, 1, 3, 3), None, dict(dilation=0), ValueError, "dilation must be >= 1"),
        ((1, 2, 4, 4), (2, 1, 3, 3), None, dict(padding=-1), ValueError, "padding must be >= 0"),
        ((1, 2, 4, 4), (2, 1, 3, 3), None, dict(stride=2, output_padding=2), ValueError, "smaller than either"),
        ((1, 2, 4, 4), (2, 1, 3, 3), None, dict(output_padding=1), ValueError, "smaller than either"),
        ((1, 2, 1, 1), (2, 1, 1, 1), None, dict(padding=1), ValueError, "output size would be"),
        ((1, 2, 4, 4), (2, 1, 3, 3), None, dict(groups=0), ValueError, "groups must be >= 1"),
        ((1, 2, 4, 4), (2, 1, 3, 3), None, dict(groups=1.0), TypeError, "groups must be an int"),
        ((1, 2, 4, 4), (2, 1, 3, 3), None, dict(stride=1.5), TypeError, "stride must be an int"),
    ],
)
def test_conv_transpose2d_errors(x_shape, weight_shape, bias_shape, kwargs, error, message):
    bias = None if bias_shape is None else torch.zeros(bias_shape)
    with pytest.raises(error, match=message):
        conv_transpose2d(torch.zeros(x_shape), torch.zeros(weight_shape), bias, **kwargs)


def test_conv_transpose2d_dtype_errors():
    with pytest.raises(TypeError, match="share a dtype"):
        conv_transpose2d(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="must be tensors"):
        conv_transpose2d([[0.0]], torch.zeros(1, 1, 2, 2))
