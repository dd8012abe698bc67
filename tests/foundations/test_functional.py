"""Our conv2d / batch_norm / dropout and their modules against torch.nn.functional and torch.nn."""

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlnotes.foundations.functional import BatchNorm2d, Conv2d, Dropout, batch_norm, conv2d, dropout

# ---------------------------------------------------------------- conv2d

# torch warns (once per process) that it copies the input for padding="same" with an even kernel.
SAME_PADDING_WARNING = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")


@st.composite
def conv_case(draw):
    """A random valid F.conv2d call: shapes, stride, padding, dilation, groups."""
    groups = draw(st.integers(1, 3))
    in_channels = groups * draw(st.integers(1, 2))
    out_channels = groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    use_same = draw(st.booleans()) and draw(st.booleans())
    stride = (1, 1) if use_same else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = "same" if use_same else (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    span = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    pad = (0, 0) if use_same else padding
    height = draw(st.integers(max(1, span[0] - 2 * pad[0]), 8))
    width = draw(st.integers(max(1, span[1] - 2 * pad[1]), 8))
    batch = draw(st.integers(1, 2))
    return dict(
        input_shape=(batch, in_channels, height, width),
        weight_shape=(out_channels, in_channels // groups, *kernel),
        stride=stride, padding=padding, dilation=dilation, groups=groups,
        bias=draw(st.booleans()), seed=draw(st.integers(0, 2**16)),
        scalar_args=draw(st.booleans()),
    )


@SAME_PADDING_WARNING
@settings(max_examples=150, deadline=None)
@given(case=conv_case())
def test_conv2d_matches_torch_values_and_gradients(case):
    generator = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(case["input_shape"], generator=generator, dtype=torch.float64, requires_grad=True)
    w = torch.randn(case["weight_shape"], generator=generator, dtype=torch.float64, requires_grad=True)
    b = torch.randn(case["weight_shape"][0], generator=generator, dtype=torch.float64, requires_grad=True) if case["bias"] else None
    kwargs = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=case["groups"])
    if case["scalar_args"] and case["stride"][0] == case["stride"][1] and case["dilation"][0] == case["dilation"][1]:
        kwargs["stride"], kwargs["dilation"] = case["stride"][0], case["dilation"][0]  # int form
    ours = conv2d(x, w, b, **kwargs)
    reference = F.conv2d(x, w, b, **kwargs)
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-10)
    upstream = torch.randn(reference.shape, generator=generator, dtype=torch.float64)
    inputs = [x, w] + ([b] if b is not None else [])
    grads_ours = torch.autograd.grad(ours, inputs, upstream)
    grads_reference = torch.autograd.grad(reference, inputs, upstream)
    for mine, theirs in zip(grads_ours, grads_reference):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-10)


@SAME_PADDING_WARNING
def test_conv2d_same_padding_even_kernel_is_asymmetric_like_torch():
    x = torch.randn(2, 3, 7, 6)
    w = torch.randn(4, 3, 2, 4)
    for dilation in (1, 2, (3, 1)):
        reference = F.conv2d(x, w, padding="same", dilation=dilation)
        ours = conv2d(x, w, padding="same", dilation=dilation)
        assert ours.shape == x.shape[:1] + (4,) + x.shape[2:]
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding", ["valid", 0, (0, 0), [0, 0]])
def test_conv2d_valid_spellings(padding):
    x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
    torch.testing.assert_close(conv2d(x, w, padding=padding), F.conv2d(x, w, padding=padding), rtol=1e-5, atol=1e-5)


def test_conv2d_unbatched_input_and_float32():
    x, w, b = torch.randn(4, 6, 5), torch.randn(2, 2, 3, 3), torch.randn(2)
    ours = conv2d(x, w, b, stride=(2, 1), padding=1, groups=2)
    assert ours.shape == (2, 3, 5)
    torch.testing.assert_close(ours, F.conv2d(x, w, b, stride=(2, 1), padding=1, groups=2), rtol=1e-5, atol=1e-5)


def test_conv2d_depthwise():
    x, w = torch.randn(2, 6, 9, 9), torch.randn(12, 1, 3, 3)  # depth multiplier 2
    torch.testing.assert_close(conv2d(x, w, groups=6, padding=2, dilation=2), F.conv2d(x, w, groups=6, padding=2, dilation=2),
                               rtol=1e-5, atol=1e-5)


def test_conv2d_docstring_example_by_hand():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    # 2x2 sums with stride 2: 0+1+4+5, 2+3+6+7, 8+9+12+13, 10+11+14+15
    assert conv2d(x, torch.ones(1, 1, 2, 2), stride=2).flatten().tolist() == [10.0, 18.0, 42.0, 50.0]


X4, W4 = torch.zeros(1, 4, 5, 5), torch.zeros(6, 2, 3, 3)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: conv2d(torch.zeros(4, 5, 5, 1, 1), W4), ValueError, "input must be 4-D"),
        (lambda: conv2d(torch.zeros(5, 5), W4), ValueError, "input must be 4-D"),
        (lambda: conv2d(X4, torch.zeros(6, 4, 3)), ValueError, "weight must be 4-D"),
        (lambda: conv2d(X4, W4, groups=3), ValueError, r"input.shape\[1\] \(4\) must be divisible by groups \(3\)"),
        (lambda: conv2d(X4, torch.zeros(5, 2, 3, 3), groups=2), ValueError, r"weight.shape\[0\] \(5\) must be divisible"),
        (lambda: conv2d(X4, W4), ValueError, r"weight.shape\[1\] \* groups must equal"),
        (lambda: conv2d(X4, W4, groups=0), ValueError, "groups must be a positive int"),
        (lambda: conv2d(X4, W4, torch.zeros(5), groups=2), ValueError, r"bias must have shape \(6,\)"),
        (lambda: conv2d(X4, W4, groups=2, stride=0), ValueError, "stride must be >= 1"),
        (lambda: conv2d(X4, W4, groups=2, dilation=(1, 0)), ValueError, "dilation must be >= 1"),
        (lambda: conv2d(X4, W4, groups=2, padding=-1), ValueError, "padding must be >= 0"),
        (lambda: conv2d(X4, W4, groups=2, padding=(1, 2, 3)), ValueError, "padding must be an int or a pair"),
        (lambda: conv2d(X4, W4, groups=2, stride=1.5), TypeError, "stride must be an int or a pair"),
        (lambda: conv2d(X4, W4, groups=2, padding="full"), ValueError, "padding must be an int, a pair of ints, 'same'"),
        (lambda: conv2d(X4, W4, groups=2, padding="same", stride=2), ValueError, "padding='same' needs stride 1"),
        (lambda: conv2d(X4, W4, groups=2, dilation=3), ValueError, r"dilated kernel \(7 x 7\) is larger"),
        (lambda: conv2d(X4.long(), W4.long(), groups=2), TypeError, "input must have a floating-point dtype"),
        (lambda: conv2d(X4, W4.double(), groups=2), TypeError, "weight must have the input's dtype"),
        (lambda: conv2d(X4, W4, torch.zeros(6, dtype=torch.float64), groups=2), TypeError, "bias must have the input's dtype"),
        (lambda: conv2d(X4.numpy(), W4, groups=2), TypeError, "input must be a torch.Tensor"),
    ],
)
def test_conv2d_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------- batch_norm


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (4, 3, 2, 5), (2, 3, 2, 2, 2)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_training_matches_torch(shape, affine):
    generator = torch.Generator().manual_seed(len(shape))
    x = (3 * torch.randn(shape, generator=generator, dtype=torch.float64) + 2).requires_grad_()
    gamma = torch.randn(3, generator=generator, dtype=torch.float64, requires_grad=True) if affine else None
    beta = torch.randn(3, generator=generator, dtype=torch.float64, requires_grad=True) if affine else None
    mean_ours, var_ours = torch.rand(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64) + 0.5
    mean_ref, var_ref = mean_ours.clone(), var_ours.clone()
    ours = batch_norm(x, mean_ours, var_ours, gamma, beta, training=True, momentum=0.3, eps=1e-3)
    reference = F.batch_norm(x, mean_ref, var_ref, gamma, beta, training=True, momentum=0.3, eps=1e-3)
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(mean_ours, mean_ref)
    torch.testing.assert_close(var_ours, var_ref)
    upstream = torch.randn(shape, generator=generator, dtype=torch.float64)
    inputs = [x] + ([gamma, beta] if affine else [])
    for mine, theirs in zip(torch.autograd.grad(ours, inputs, upstream), torch.autograd.grad(reference, inputs, upstream)):
        torch.testing.assert_close(mine, theirs)


def test_batch_norm_running_statistics_by_hand():
    """Closed form: r <- (1 - m) r + m * stat, with the unbiased variance (Bessel's m / (m - 1))."""
    x = torch.tensor([[1.0, 10.0], [2.0, 20.0], [6.0, 30.0]])  # 3 samples, 2 channels
    mean, var = torch.zeros(2), torch.ones(2)
    batch_norm(x, mean, var, training=True, momentum=0.5)
    torch.testing.assert_close(mean, torch.tensor([0.5 * 3.0, 0.5 * 20.0]))
    # unbiased variances: [1, 2, 6] -> 7, [10, 20, 30] -> 100
    torch.testing.assert_close(var, torch.tensor([0.5 + 0.5 * 7.0, 0.5 + 0.5 * 100.0]))


def test_batch_norm_eval_uses_running_stats_and_leaves_them():
    x = torch.randn(5, 3, 4, 4)
    mean, var = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([2.0, 0.5, 1.0])
    gamma, beta = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 0.1, -0.1])
    ours = batch_norm(x, mean, var, gamma, beta, training=False)
    torch.testing.assert_close(ours, F.batch_norm(x, mean, var, gamma, beta, training=False))
    by_hand = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 1e-5) * gamma[:, None, None] + beta[:, None, None]
    torch.testing.assert_close(ours, by_hand)
    assert mean.tolist() == [0.5, -1.0, 2.0] and var.tolist() == [2.0, 0.5, 1.0], "eval must not update buffers"


def test_batch_norm_training_without_running_stats():
    x = torch.randn(6, 4, 3)
    torch.testing.assert_close(batch_norm(x, None, None, training=True), F.batch_norm(x, None, None, training=True))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: batch_norm(torch.zeros(3), None, None, training=True), ValueError, "at least 2 dimensions"),
        (lambda: batch_norm(torch.zeros(1, 3), torch.zeros(3), torch.ones(3), training=True), ValueError, "more than 1 value per channel"),
        (lambda: batch_norm(torch.zeros(4, 3), None, None, training=False), ValueError, "required when training=False"),
        (lambda: batch_norm(torch.zeros(4, 3), torch.zeros(3), None, training=True), ValueError, "given together"),
        (lambda: batch_norm(torch.zeros(4, 3), torch.zeros(2), torch.ones(2)), ValueError, r"running_mean must have shape \(C,\) = \(3,\)"),
        (lambda: batch_norm(torch.zeros(4, 3), None, None, torch.ones(4), training=True), ValueError, r"weight must have shape \(C,\) = \(3,\)"),
        (lambda: batch_norm(torch.zeros(4, 3), torch.zeros(3), torch.ones(3), training=True, momentum=None), TypeError, "momentum must be a real number"),
        (lambda: batch_norm(torch.zeros(4, 3), torch.zeros(3), torch.ones(3), training=True, momentum=1.5), ValueError, r"momentum must be in \[0, 1\]"),
        (lambda: batch_norm(torch.zeros(4, 3), torch.zeros(3), torch.ones(3), eps=-1.0), ValueError, "eps must be >= 0"),
        (lambda: batch_norm(torch.zeros(4, 3, dtype=torch.long), None, None, training=True), TypeError, "floating-point"),
        (lambda: batch_norm(torch.zeros(4, 3), torch.zeros(3).double(), torch.ones(3).double()), TypeError, "running_mean must have the input's dtype"),
    ],
)
def test_batch_norm_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------- dropout


def test_dropout_values_are_zero_or_scaled_and_keep_rate():
    x = torch.randn(200_000, dtype=torch.float64) + 3.0
    p = 0.3
    y = dropout(x, p, generator=torch.Generator().manual_seed(1))
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))  # survivors scaled by 1 / (1 - p)
    rate = kept.double().mean().item()
    # Binomial(n, 0.7): standard deviation of the rate is sqrt(0.7 * 0.3 / n) ~ 0.001; allow 5 sigma.
    assert abs(rate - (1 - p)) < 5 * (p * (1 - p) / x.numel()) ** 0.5, rate


def test_dropout_keep_rate_matches_torch_in_distribution():
    """Same law as F.dropout: keep rates of both agree within sampling error, same scale factor."""
    x = torch.ones(100_000)
    torch.manual_seed(3)
    reference = F.dropout(x, 0.6)
    ours = dropout(x, 0.6, generator=torch.Generator().manual_seed(4))
    assert set(reference.unique().tolist()) == set(ours.unique().tolist()) == {0.0, 2.5}
    assert abs((reference != 0).float().mean() - (ours != 0).float().mean()) < 0.01


def test_dropout_expectation_is_preserved():
    x = torch.full((400, 1000), 2.0)
    y = dropout(x, 0.5, generator=torch.Generator().manual_seed(0))
    assert abs(y.mean().item() - 2.0) < 0.02


def test_dropout_is_reproducible_with_a_generator():
    x = torch.randn(1000)
    first = dropout(x, 0.5, generator=torch.Generator().manual_seed(7))
    second = dropout(x, 0.5, generator=torch.Generator().manual_seed(7))
    other = dropout(x, 0.5, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_dropout_edge_cases_like_torch():
    x = torch.randn(50)
    assert dropout(x, 0.5, training=False) is x
    torch.testing.assert_close(dropout(x, 0.5, training=False), F.dropout(x, 0.5, training=False))
    torch.testing.assert_close(dropout(x, 0.0), F.dropout(x, 0.0))
    torch.testing.assert_close(dropout(x, 1.0), F.dropout(x, 1.0))
    assert dropout(x, 1.0).eq(0).all()


def test_dropout_gradient_is_mask_over_keep_probability():
    x = torch.randn(1000, requires_grad=True)
    y = dropout(x, 0.25, generator=torch.Generator().manual_seed(0))
    y.sum().backward()
    expected = (y != 0).float() / 0.75
    torch.testing.assert_close(x.grad, expected)


def test_dropout_inplace():
    x = torch.ones(1000)
    y = dropout(x, 0.5, inplace=True, generator=torch.Generator().manual_seed(0))
    assert y is x and set(x.unique().tolist()) == {0.0, 2.0}
    z = torch.ones(10)
    assert dropout(z, 1.0, inplace=True) is z and z.eq(0).all()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: dropout(torch.ones(3), 1.5), ValueError, r"p must be in \[0, 1\], got 1.5"),
        (lambda: dropout(torch.ones(3), -0.1), ValueError, r"p must be in \[0, 1\]"),
        (lambda: dropout(torch.ones(3), "0.5"), TypeError, "p must be a real number"),
        (lambda: dropout(torch.ones(3, dtype=torch.long), 0.5), TypeError, "floating-point"),
        (lambda: Dropout(2.0), ValueError, r"p must be in \[0, 1\]"),
        (lambda: Dropout(None), TypeError, "p must be a real number"),
    ],
)
def test_dropout_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------- modules


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(in_channels=3, out_channels=8, kernel_size=3),
        dict(in_channels=4, out_channels=8, kernel_size=(3, 1), stride=2, padding=1, dilation=2, groups=2, bias=False),
        dict(in_channels=3, out_channels=6, kernel_size=(2, 3), padding="same"),
        dict(in_channels=6, out_channels=6, kernel_size=3, groups=6, padding="valid"),
    ],
)
def test_conv2d_module_matches_nn_conv2d(kwargs):
    torch.manual_seed(0)
    ours = Conv2d(**kwargs)
    torch.manual_seed(0)
    reference = nn.Conv2d(**kwargs)
    # Same initialisation law and draw order: same numbers from the same seed.
    torch.testing.assert_close(ours.weight, reference.weight, rtol=1e-6, atol=1e-7)
    assert repr(ours) == repr(reference)
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict())  # loads without renaming
    x = torch.randn(2, kwargs["in_channels"], 7, 6)
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
    assert [name for name, _ in ours.named_parameters()] == [name for name, _ in reference.named_parameters()]


def test_conv2d_module_init_bounds():
    layer = Conv2d(4, 16, 3, groups=2)
    bound = 1 / (2 * 3 * 3) ** 0.5  # fan_in = (4 / 2) * 3 * 3
    assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.8 * bound
    assert layer.bias.abs().max() <= bound


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: Conv2d(3, 8, 3, groups=2), r"in_channels \(3\) must be divisible by groups \(2\)"),
        (lambda: Conv2d(4, 6, 3, groups=4), r"out_channels \(6\) must be divisible by groups \(4\)"),
        (lambda: Conv2d(0, 6, 3), "in_channels must be a positive int"),
        (lambda: Conv2d(3, 6, 0), "kernel_size must be >= 1"),
        (lambda: Conv2d(3, 6, 3, stride=2, padding="same"), "padding='same' needs stride 1"),
    ],
)
def test_conv2d_module_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _train_both(ours, reference, batches):
    for x in batches:
        torch.testing.assert_close(ours(x), reference(x))


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batch_norm_module_running_stats_and_eval(momentum):
    ours, reference = BatchNorm2d(3, momentum=momentum), nn.BatchNorm2d(3, momentum=momentum)
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randn(4, 3, 5, 5, generator=generator) * (i + 1) + i for i in range(5)]
    _train_both(ours, reference, batches)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(reference, name))
    assert ours.num_batches_tracked.item() == 5 and ours.num_batches_tracked.dtype == torch.long
    ours.eval(), reference.eval()
    x = torch.randn(2, 3, 5, 5, generator=generator)
    torch.testing.assert_close(ours(x), reference(x))
    assert ours.num_batches_tracked.item() == 5, "eval must not count batches"


def test_batch_norm_module_cumulative_average_is_the_plain_mean():
    """momentum=None: the running mean is the arithmetic mean of all batch means (closed form)."""
    norm = BatchNorm2d(2, momentum=None)
    generator = torch.Generator().manual_seed(1)
    batches = [torch.randn(8, 2, 3, 3, generator=generator, dtype=torch.float64) + 5 * i for i in range(4)]
    norm = norm.double()
    for x in batches:
        norm(x)
    batch_means = torch.stack([x.mean(dim=(0, 2, 3)) for x in batches])
    batch_vars = torch.stack([x.var(dim=(0, 2, 3), correction=1) for x in batches])
    torch.testing.assert_close(norm.running_mean, batch_means.mean(0))
    torch.testing.assert_close(norm.running_var, batch_vars.mean(0))


def test_batch_norm_module_state_dict_is_torch_compatible():
    ours, reference = BatchNorm2d(4), nn.BatchNorm2d(4)
    assert list(ours.state_dict()) == list(reference.state_dict())
    assert list(ours.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    reference.train()(torch.randn(3, 4, 2, 2) + 1)
    ours.load_state_dict(reference.state_dict())
    assert ours.num_batches_tracked.item() == 1
    torch.testing.assert_close(ours.running_mean, reference.running_mean)
    reference.load_state_dict(ours.state_dict())  # and back
    assert [name for name, _ in ours.named_buffers()] == [name for name, _ in reference.named_buffers()]
    assert sum(p.numel() for p in ours.parameters()) == 8, "buffers are not parameters"


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_module_without_tracking(affine):
    ours = BatchNorm2d(3, affine=affine, track_running_stats=False)
    reference = nn.BatchNorm2d(3, affine=affine, track_running_stats=False)
    assert list(ours.state_dict()) == list(reference.state_dict())
    x = torch.randn(4, 3, 2, 2)
    torch.testing.assert_close(ours(x), reference(x))
    ours.eval(), reference.eval()  # still batch statistics: there are no running ones
    torch.testing.assert_close(ours(x), reference(x))


def test_batch_norm_module_gradients_match():
    ours, reference = BatchNorm2d(3).double(), nn.BatchNorm2d(3).double()
    with torch.no_grad():
        for module in (ours, reference):
            module.weight.copy_(torch.tensor([0.5, 1.5, -2.0]))
            module.bias.copy_(torch.tensor([0.1, 0.0, 0.3]))
    x = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    g_ours = torch.autograd.grad(ours(x), [x, ours.weight, ours.bias], upstream)
    g_ref = torch.autograd.grad(reference(x), [x, reference.weight, reference.bias], upstream)
    for mine, theirs in zip(g_ours, g_ref):
        torch.testing.assert_close(mine, theirs)


def test_batch_norm_module_errors():
    with pytest.raises(ValueError, match=r"4-D input \(N, C, H, W\), got shape \(2, 3, 4\)"):
        BatchNorm2d(3)(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="num_features must be a positive int"):
        BatchNorm2d(0)
    with pytest.raises(ValueError, match=r"running_mean must have shape \(C,\) = \(4,\) to match input.shape\[1\], got \(3,\)"):
        BatchNorm2d(3)(torch.zeros(2, 4, 2, 2))


def test_batch_norm_module_reset_running_stats():
    norm = BatchNorm2d(2)
    norm(torch.randn(3, 2, 2, 2) + 4)
    norm.reset_running_stats()
    assert norm.running_mean.tolist() == [0, 0] and norm.running_var.tolist() == [1, 1] and norm.num_batches_tracked == 0


def test_dropout_module_follows_train_and_eval():
    layer = Dropout(0.5, generator=torch.Generator().manual_seed(0))
    assert repr(layer) == repr(nn.Dropout(0.5))
    x = torch.ones(1000)
    assert (layer(x) == 0).any()
    layer.eval()
    assert torch.equal(layer(x), x)
    assert list(layer.state_dict()) == [] == list(nn.Dropout(0.5).state_dict())


def test_modules_work_inside_sequential_with_hooks_and_deepcopy():
    model = nn.Sequential(Conv2d(3, 4, 3, padding=1, bias=False), BatchNorm2d(4), nn.ReLU(), Dropout(0.2))
    reference = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.2))
    assert list(model.state_dict()) == list(reference.state_dict())
    reference.load_state_dict(model.state_dict())
    seen = []
    model[0].register_forward_hook(lambda module, args, output: seen.append(output.shape))
    model.eval(), reference.eval()
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(model(x), reference(x))
    assert seen == [torch.Size([2, 4, 6, 6])]
    clone = copy.deepcopy(model)
    torch.testing.assert_close(clone(x), model(x))
