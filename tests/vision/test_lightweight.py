"""Lightweight networks against published numbers, FlopCounterMode and hand-written references."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dlnotes.vision.lightweight import (
    DepthwiseSeparableConv,
    InceptionModule,
    InvertedResidual,
    MobileNetV2,
    ShuffleNetV2,
    ShuffleUnit,
    channel_shuffle,
    conv_bn,
    conv_cost,
    count_flops,
    mobilenet_v1,
    mobilenet_v2,
    shufflenet_v2,
)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flop_counter_macs(model: nn.Module, shape) -> int:
    """Independent count: PyTorch's dispatcher-level FLOP counter, 2 FLOPs per MAC."""
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(shape))
    flops = counter.get_total_flops()
    assert flops % 2 == 0, f"FlopCounterMode should count 2 FLOPs per MAC, got odd {flops}"
    return flops // 2


# ---------------------------------------------------------------- published parameter counts


def test_mobilenet_v2_matches_torchvision_parameter_count():
    assert n_params(mobilenet_v2()) == 3_504_872, "torchvision documents 3,504,872 for mobilenet_v2"


@pytest.mark.parametrize(
    ("width", "expected"),
    [(0.5, 1_366_792), (1.0, 2_278_604), (1.5, 3_503_624), (2.0, 7_393_996)],
)
def test_shufflenet_v2_matches_torchvision_parameter_counts(width, expected):
    assert n_params(shufflenet_v2(width)) == expected, f"torchvision shufflenet_v2_x{width}"


def test_num_classes_changes_only_the_classifier():
    # the classifier holds (d + 1) * classes parameters, d = 1280 (MobileNetV2) or 1024 (ShuffleNetV2)
    assert n_params(mobilenet_v2()) - n_params(mobilenet_v2(num_classes=10)) == 1281 * 990
    assert n_params(shufflenet_v2(1.0)) - n_params(shufflenet_v2(1.0, num_classes=10)) == 1025 * 990


@pytest.mark.parametrize(
    ("alpha", "paper_macs_millions", "paper_params_millions"),
    [(1.0, 569, 4.2), (0.75, 325, 2.6), (0.5, 149, 1.3), (0.25, 41, 0.5)],
)
def test_mobilenet_v1_matches_paper_table_6(alpha, paper_macs_millions, paper_params_millions):
    model = mobilenet_v1(alpha)
    assert round(count_flops(model, (1, 3, 224, 224)) / 1e6) == paper_macs_millions, f"alpha={alpha}"
    assert round(n_params(model) / 1e6, 1) == paper_params_millions, f"alpha={alpha}"


def test_mobilenet_v2_structure_matches_paper_table_2():
    blocks = [m for m in mobilenet_v2().modules() if isinstance(m, InvertedResidual)]
    assert len(blocks) == 17, "1 + 2 + 3 + 4 + 3 + 3 + 1 bottleneck blocks"
    assert sum(block.use_residual for block in blocks) == 10, "repeats after the first keep their shape"


# ----------------------------------------------------------------------------- count_flops


def test_count_flops_agrees_with_flop_counter_on_mobilenet_v2_at_224():
    model = mobilenet_v2()
    macs = count_flops(model, (1, 3, 224, 224))
    assert macs == flop_counter_macs(model, (1, 3, 224, 224))
    assert abs(macs / 1e6 - 300) < 3, f"paper reports 300M multiply-adds, got {macs / 1e6:.1f}M"


def test_count_flops_agrees_with_flop_counter_on_shufflenet_v2():
    model = shufflenet_v2(1.0, num_classes=10)
    assert count_flops(model, (2, 3, 64, 64)) == flop_counter_macs(model, (2, 3, 64, 64))
    macs = count_flops(shufflenet_v2(1.0), (1, 3, 224, 224))
    assert abs(macs / 1e6 - 146) / 146 < 0.015, f"paper reports 146M FLOPs, got {macs / 1e6:.1f}M"


@settings(max_examples=25, deadline=None)
@given(
    in_groups=st.integers(1, 4),
    per_group_in=st.integers(1, 3),
    per_group_out=st.integers(1, 3),
    kernel=st.sampled_from([1, 3, 5]),
    stride=st.integers(1, 2),
    side=st.integers(5, 9),
    batch=st.integers(1, 2),
)
def test_count_flops_agrees_with_flop_counter_on_random_convolutions(
    in_groups, per_group_in, per_group_out, kernel, stride, side, batch
):
    model = nn.Sequential(
        nn.Conv2d(in_groups * per_group_in, in_groups * per_group_out, kernel, stride, groups=in_groups),
        nn.Flatten(),
        nn.LazyLinear(3),
    )
    shape = (batch, in_groups * per_group_in, side, side)
    model(torch.zeros(shape))  # materialise the lazy linear layer
    assert count_flops(model, shape) == flop_counter_macs(model, shape)


def test_count_flops_handles_conv1d_and_keeps_the_model():
    model = nn.Sequential(nn.Conv1d(4, 6, 3), nn.ReLU(), nn.Linear(8, 2))
    model.train()
    assert count_flops(model, (1, 4, 10)) == 6 * 8 * 4 * 3 + 6 * 2 * 8
    assert model.training and model[0].weight.device.type == "cpu", "the model passed in is untouched"


def test_count_flops_errors():
    with pytest.raises(TypeError, match="model"):
        count_flops(lambda x: x, (1, 3, 8, 8))
    with pytest.raises(TypeError, match="input_size"):
        count_flops(nn.Identity(), 224)
    with pytest.raises(TypeError, match="input_size"):
        count_flops(nn.Identity(), (1, 3, 2.5))
    with pytest.raises(ValueError, match="input_size"):
        count_flops(nn.Identity(), ())
    with pytest.raises(ValueError, match=">= 1"):
        count_flops(nn.Identity(), (1, 0, 8))


# ----------------------------------------------------------------------------- Inception


INCEPTION_3A = (192, 64, 96, 128, 16, 32, 32)  # GoogLeNet Table 1, input 28x28x192


def test_inception_3a_cost_matches_closed_form_and_paper():
    reduced = InceptionModule(*INCEPTION_3A)
    weights = sum(m.weight.numel() for m in reduced.modules() if isinstance(m, nn.Conv2d))
    # the six convolutions written out by hand: 1x1; 1x1 -> 3x3; 1x1 -> 5x5; pool -> 1x1
    by_hand = 192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 25 + 192 * 32
    assert weights == by_hand == 163_328
    layers = [(192, 64, 1), (192, 96, 1), (96, 128, 3), (192, 16, 1), (16, 32, 5), (192, 32, 1)]
    assert sum(conv_cost(i, o, k, 28)[0] for i, o, k in layers) == by_hand
    macs = count_flops(reduced, (1, 192, 28, 28))
    assert macs == by_hand * 28 * 28
    assert round(macs / 1e6) == 128, "GoogLeNet Table 1 lists 128M ops for inception (3a)"


def test_naive_inception_is_wider_and_costlier():
    naive = InceptionModule(*INCEPTION_3A, reduce=False)
    reduced = InceptionModule(*INCEPTION_3A)
    x = torch.randn(1, 192, 8, 8)
    assert naive(x).shape == (1, 64 + 128 + 32 + 192, 8, 8) and naive.out_channels == 416
    assert reduced(x).shape == (1, 256, 8, 8) and reduced.out_channels == 256
    naive_macs = count_flops(naive, (1, 192, 28, 28))
    assert naive_macs == (192 * 64 + 192 * 128 * 9 + 192 * 32 * 25) * 28 * 28
    assert naive_macs > 2.3 * count_flops(reduced, (1, 192, 28, 28))


def test_inception_module_errors():
    with pytest.raises(ValueError, match="ch3x3_reduce"):
        InceptionModule(192, 64, 0, 128, 16, 32, 32)


# ------------------------------------------------------- depthwise, pointwise, separable


def test_depthwise_separable_conv_matches_a_hand_written_reference():
    torch.manual_seed(0)
    block = DepthwiseSeparableConv(4, 6, stride=2).eval()
    for m in block.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    x = torch.randn(2, 4, 9, 9)
    (dw, dw_bn, _), (pw, pw_bn, _) = block[0], block[1]

    def bn(y, m):
        shape = (1, -1, 1, 1)
        return (y - m.running_mean.view(shape)) / torch.sqrt(m.running_var.view(shape) + m.eps) * m.weight.view(
            shape
        ) + m.bias.view(shape)

    # depthwise: every channel filtered alone by its own 3x3 kernel
    per_channel = torch.cat(
        [F.conv2d(x[:, c : c + 1], dw.weight[c : c + 1], stride=2, padding=1) for c in range(4)], dim=1
    )
    hidden = bn(per_channel, dw_bn).relu()
    # pointwise: a matrix product over channels at every position
    expected = bn(torch.einsum("oc,nchw->nohw", pw.weight[:, :, 0, 0], hidden), pw_bn).relu()
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("channels_in", "channels_out"), [(32, 64), (512, 512)])
def test_separable_cost_ratio_is_one_over_n_plus_one_over_k_squared(channels_in, channels_out):
    separable = count_flops(DepthwiseSeparableConv(channels_in, channels_out), (1, channels_in, 14, 14))
    _, full = conv_cost(channels_in, channels_out, 3, 14)
    assert separable / full == pytest.approx(1 / channels_out + 1 / 9, rel=1e-12)


def test_conv_cost_with_groups_matches_pytorch_weight_shapes():
    for groups in (1, 2, 4, 8):
        conv = nn.Conv2d(8, 16, 3, groups=groups, bias=False)
        assert conv_cost(8, 16, 3, groups=groups)[0] == conv.weight.numel()
    assert conv_cost(3, 4, 3, (5, 7)) == (108, 108 * 35)


def test_conv_cost_and_conv_bn_errors():
    with pytest.raises(ValueError, match=r"groups \(3\) must divide"):
        conv_cost(8, 16, 3, groups=3)
    with pytest.raises(ValueError, match="kernel_size"):
        conv_cost(8, 16, 0)
    with pytest.raises(ValueError, match="output_size"):
        conv_cost(8, 16, 3, (4, 0))
    with pytest.raises(ValueError, match="output_size"):
        conv_cost(8, 16, 3, (4, 4, 4))
    with pytest.raises(ValueError, match=r"groups \(4\) must divide in_channels \(6\)"):
        conv_bn(6, 8, 3, groups=4)
    with pytest.raises(ValueError, match="odd"):
        conv_bn(4, 4, 2)
    with pytest.raises(ValueError, match="stride"):
        conv_bn(4, 4, 3, stride=0)


# ------------------------------------------------------------------------------ MobileNetV2


def test_inverted_residual_shortcut_and_linear_bottleneck():
    block = InvertedResidual(16, 16, 1, 6).eval()
    projection_bn = block.conv[-1][-1]
    assert isinstance(projection_bn, nn.BatchNorm2d), "the projection ends in BN, no activation"
    nn.init.zeros_(projection_bn.weight)
    nn.init.zeros_(projection_bn.bias)
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x)  # residual branch silenced: identity
    assert not InvertedResidual(16, 16, 2, 6).use_residual
    assert not InvertedResidual(16, 24, 1, 6).use_residual
    hidden = InvertedResidual(16, 24, 1, 6).conv[0][0]
    assert hidden.out_channels == 96, "expansion t = 6"
    assert len(InvertedResidual(32, 16, 1, 1).conv) == 2, "t = 1 skips the expansion"


def test_inverted_residual_errors():
    with pytest.raises(ValueError, match="stride"):
        InvertedResidual(16, 16, 3, 6)
    with pytest.raises(ValueError, match="expand_ratio"):
        InvertedResidual(16, 16, 1, 0.5)


# ----------------------------------------------------------------------------- ShuffleNetV2


def test_channel_shuffle_matches_explicit_permutation():
    x = torch.randn(2, 12, 3, 3)
    for groups in (1, 2, 3, 4, 6, 12):
        per_group = 12 // groups
        order = [i * per_group + j for j in range(per_group) for i in range(groups)]
        torch.testing.assert_close(channel_shuffle(x, groups), x[:, order])
        # shuffling with C / g groups undoes a shuffle with g groups
        torch.testing.assert_close(channel_shuffle(channel_shuffle(x, groups), per_group), x)


def test_channel_shuffle_errors():
    with pytest.raises(ValueError, match=r"groups \(5\) must divide the number of channels \(12\)"):
        channel_shuffle(torch.zeros(1, 12, 2, 2), 5)
    with pytest.raises(ValueError, match="4-D"):
        channel_shuffle(torch.zeros(12, 2, 2), 2)
    with pytest.raises(ValueError, match="groups"):
        channel_shuffle(torch.zeros(1, 12, 2, 2), 0)


def test_stride_one_shuffle_unit_passes_half_the_channels_through():
    unit = ShuffleUnit(8, 8, 1).eval()
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        out = unit(x)
    # after the 2-group shuffle the untouched half sits at the even channels
    torch.testing.assert_close(out[:, 0::2], x[:, :4])
    assert (out[:, 1::2] >= 0).all(), "the processed half ends in ReLU"


def test_stride_two_shuffle_unit_halves_resolution():
    assert ShuffleUnit(24, 116, 2)(torch.randn(1, 24, 9, 9)).shape == (1, 116, 5, 5)


def test_shuffle_unit_errors():
    with pytest.raises(ValueError, match="even"):
        ShuffleUnit(24, 117, 2)
    with pytest.raises(ValueError, match="in_channels must equal out_channels"):
        ShuffleUnit(24, 48, 1)
    with pytest.raises(ValueError, match="stride"):
        ShuffleUnit(24, 24, 3)
    with pytest.raises(ValueError, match="even"):
        ShuffleNetV2((4, 8, 4), (24, 117, 232, 464, 1024))
    with pytest.raises(ValueError, match="5 entries"):
        ShuffleNetV2((4, 8, 4), (24, 116, 232, 464))


# ------------------------------------------------------------------------ whole networks


@pytest.mark.parametrize("build", [mobilenet_v1, mobilenet_v2, shufflenet_v2], ids=lambda f: f.__name__)
def test_forward_shape_at_64(build):
    model = build(num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)


@pytest.mark.parametrize("bad", [0, -1.0, "1.0", True, float("nan")])
def test_bad_width_mult(bad):
    with pytest.raises(ValueError, match="width_mult"):
        mobilenet_v2(width_mult=bad)
    with pytest.raises(ValueError, match="width_mult"):
        mobilenet_v1(width_mult=bad)
    with pytest.raises(ValueError, match="width_mult"):
        shufflenet_v2(width_mult=bad)


def test_shufflenet_rejects_widths_outside_the_paper():
    with pytest.raises(ValueError, match=r"width_mult must be one of \[0.5, 1.0, 1.5, 2.0\], got 0.75"):
        shufflenet_v2(0.75)


def test_bad_num_classes():
    for build in (mobilenet_v1, mobilenet_v2, shufflenet_v2):
        with pytest.raises(ValueError, match="num_classes"):
            build(num_classes=0)
    with pytest.raises(ValueError, match="dropout"):
        MobileNetV2(dropout=1.0)
