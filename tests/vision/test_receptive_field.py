"""Receptive fields against published numbers, autograd and torch's own shape arithmetic."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlnotes.vision.receptive_field import (
    LayerSpec,
    alexnet_layers,
    empirical_receptive_field,
    layer_specs,
    receptive_field,
    receptive_field_top_down,
    resnet50_layers,
    vgg16_layers,
)

# Published values: receptive field, effective stride, effective padding (= -start) at
# 224x224 input, from the table of the receptive_field library that accompanies
# Araujo, Norris, Sim, "Computing Receptive Fields of Convolutional Neural Networks",
# Distill 2019 (github.com/google-research/receptive_field, RECEPTIVE_FIELD_TABLE.md),
# computed on the TF-Slim models alexnet_v2, vgg_16 and resnet_v1_50.
PUBLISHED = {
    "alexnet_v2": [
        ("conv1", 11, 4, 0), ("pool1", 19, 8, 0), ("conv2", 51, 8, 16), ("conv3", 99, 16, 32),
        ("conv4", 131, 16, 48), ("conv5", 163, 16, 64), ("pool5", 195, 32, 64),
    ],
    "vgg_16": [
        ("conv1_1", 3, 1, 1), ("pool1", 6, 2, 2), ("conv2_1", 10, 2, 4), ("pool2", 16, 4, 6),
        ("conv3_1", 24, 4, 10), ("conv3_2", 32, 4, 14), ("pool3", 44, 8, 18), ("conv4_1", 60, 8, 26),
        ("conv4_2", 76, 8, 34), ("pool4", 100, 16, 42), ("conv5_1", 132, 16, 58),
        ("conv5_2", 164, 16, 74), ("pool5", 212, 32, 90),
    ],
    # block{b} is the output of the last unit of block b.
    "resnet_v1_50": [
        ("block1/unit_3/conv3", 35, 8, 15), ("block2/unit_4/conv3", 99, 16, 47),
        ("block3/unit_6/conv3", 291, 32, 143), ("block4/unit_3/conv3", 483, 32, 239),
    ],
}
NETWORKS = {"alexnet_v2": alexnet_layers, "vgg_16": vgg16_layers, "resnet_v1_50": resnet50_layers}


@pytest.mark.parametrize("network", sorted(PUBLISHED))
def test_published_table(network):
    records = {r.name: r for r in receptive_field(NETWORKS[network](), 224)}
    for name, size, jump, padding in PUBLISHED[network]:
        got = records[name]
        assert (got.size, got.jump, -got.start) == (size, jump, padding), f"{network} {name}: {got}"


def test_final_layers_and_conventions():
    assert receptive_field(vgg16_layers())[-2].name == "conv5_3"
    assert receptive_field(vgg16_layers())[-2].size == 196  # 212 - (2 - 1) * 16: pool5 adds 16
    assert receptive_field(alexnet_layers("torch"))[-1].size == 195  # padding never changes the size
    assert receptive_field(resnet50_layers("paper"))[-1].size == 483
    assert receptive_field(resnet50_layers("torch"))[-1].size == 427  # stride moved earlier: smaller field
    with pytest.raises(ValueError, match="convention must be one of"):
        alexnet_layers("caffe")
    with pytest.raises(ValueError, match="stride_at must be one of"):
        resnet50_layers("v2")


def closed_form(specs):
    """Distill eq. (2): r = 1 + sum_l (kappa_l - 1) prod_{i<l} s_i, and eq. for u."""
    size, start = 1, 0
    for l, spec in enumerate(specs):
        product = math.prod(s.stride for s in specs[:l])
        size += (spec.dilation * (spec.kernel - 1)) * product
        start -= spec.padding * product
    return size, math.prod(s.stride for s in specs), start


layer_strategy = st.builds(
    LayerSpec, kernel=st.integers(1, 7), stride=st.integers(1, 3), padding=st.integers(0, 3), dilation=st.integers(1, 3)
)


@settings(max_examples=200, deadline=None)
@given(st.lists(layer_strategy, min_size=1, max_size=8))
def test_top_down_bottom_up_and_closed_form_agree(specs):
    records = receptive_field(specs)
    for depth in range(1, len(specs) + 1):
        prefix = specs[:depth]
        record = records[depth - 1]
        assert receptive_field_top_down(prefix) == record.size
        assert closed_form(prefix) == (record.size, record.jump, record.start)


def path_model(specs):
    """A 1-channel net of convolutions with positive weights and explicit zero padding."""
    layers = []
    for spec in specs:
        conv = nn.Conv1d(1, 1, spec.kernel, stride=spec.stride, dilation=spec.dilation, bias=False)
        nn.init.constant_(conv.weight, 1.0 / spec.kernel)
        layers += [nn.ConstantPad1d(spec.padding, 0.0), conv]
    return nn.Sequential(*layers)


@settings(max_examples=30, deadline=None)
@given(st.lists(layer_strategy, min_size=1, max_size=5))
def test_gradient_support_matches_span(specs):
    record = receptive_field(specs)[-1]
    length = record.size + 2 * record.jump + 4 * abs(record.start) + 8
    model = path_model(specs)
    n_out = model(torch.zeros(1, 1, length)).shape[-1]
    inside = [i for i in range(n_out) if record.span(i)[0] >= 0 and record.span(i)[1] <= length - 1]
    assert inside, (specs, length)
    for index in {inside[0], inside[len(inside) // 2], inside[-1]}:
        # Dilation leaves holes, but the first and last taps are always used: the bounding
        # box of the non-zero gradient is exactly the span.
        assert empirical_receptive_field(model, (1, 1, length), (index,)) == [record.span(index)], (specs, index)
    outside = [i for i in range(n_out) if record.span(i)[1] < 0]  # units that see only padding
    for index in outside[:1]:
        with pytest.raises(ValueError, match="no input position affects"):
            empirical_receptive_field(model, (1, 1, length), (index,))


def test_output_size_matches_torch_shapes():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 7, stride=2, padding=3), nn.BatchNorm2d(4), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), nn.Conv2d(4, 4, 3, padding="same", dilation=2),
        nn.AvgPool2d(2, ceil_mode=True), nn.Conv2d(4, 4, 3, padding="valid"),
    )
    for size in (17, 32, 45):
        records = receptive_field(model, size)
        expected = model.eval()(torch.zeros(1, 3, size, size)).shape[-1]
        assert records[-1].output_size == expected, (size, records)


def test_module_and_specs_agree_with_gradient_2d():
    model = nn.Sequential(
        nn.Conv2d(1, 2, 5, stride=2, padding=2), nn.ReLU(), nn.AvgPool2d(3, stride=2, padding=1),
        nn.Conv2d(2, 1, 3, padding=2, dilation=2),
    )
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.constant_(module.weight, 0.1)
            nn.init.zeros_(module.bias)
    record = receptive_field(model)[-1]
    assert (record.size, record.jump, record.start) == (5 + 2 * 2 + 4 * 4, 4, -2 - 1 * 2 - 2 * 4)
    box = empirical_receptive_field(model, (1, 1, 64, 64), (8, 5))
    assert box == [record.span(8), record.span(5)], (box, record)


def test_non_square_layers_need_an_axis():
    model = nn.Sequential(nn.Conv2d(1, 1, (1, 5), padding=(0, 2)), nn.MaxPool2d((2, 1), stride=(2, 1)))
    height = receptive_field(model, axis=0)[-1]
    width = receptive_field(model, axis=1)[-1]
    assert (height.size, height.jump, width.size, width.jump) == (2, 2, 5, 1)
    with pytest.raises(ValueError, match="differs across spatial axes"):
        receptive_field(model)
    with pytest.raises(ValueError, match="axis must be < 2"):
        receptive_field(model, axis=2)
    with pytest.raises(ValueError, match="axis must be None or a non-negative int"):
        layer_specs(model, axis=-1)


def residual_net_1d(stride_at):
    """A real 1-channel ResNet-50 with shortcuts (1-D), weights positive."""

    def conv(kernel, stride=1, padding=0):
        layer = nn.Conv1d(1, 1, kernel, stride=stride, padding=padding, bias=False)
        nn.init.constant_(layer.weight, 1.0 / kernel)
        return layer

    class Unit(nn.Module):
        def __init__(self, stride_1x1, stride_3x3):
            super().__init__()
            self.main = nn.Sequential(conv(1, stride_1x1), conv(3, stride_3x3, 1), conv(1))
            self.stride = stride_1x1 * stride_3x3

        def forward(self, x):
            return self.main(x) + x[..., :: self.stride]  # identity or 1x1 stride-s shortcut

    specs = resnet50_layers(stride_at)
    units = [Unit(specs[i].stride, specs[i + 1].stride) for i in range(2, len(specs), 3)]
    pool_left = specs[1].padding

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = conv(7, 2, 3)
            self.units = nn.Sequential(*units)

        def forward(self, x):
            x = self.stem(x)
            x = F.avg_pool1d(F.pad(x, (pool_left, 1)), 3, 2)  # TF SAME pads (0, 1); torch (1, 1)
            return self.units(x)

    return Net()


@pytest.mark.parametrize("stride_at", ["slim", "paper", "torch"])
def test_resnet_longest_path_equals_the_multi_path_network(stride_at):
    record = receptive_field(resnet50_layers(stride_at))[-1]
    length = 1600
    model = residual_net_1d(stride_at)
    index = model(torch.zeros(1, 1, length)).shape[-1] // 2
    assert empirical_receptive_field(model, (1, 1, length), (index,)) == [record.span(index)], record


def test_inputs_as_mappings_and_tuples():
    as_specs = receptive_field([LayerSpec(3, 2, 1), LayerSpec(3, 1, 2, 2)])
    as_tuples = receptive_field([(3, 2, 1), (3, 1, 2, 2)])
    as_dicts = receptive_field([{"kernel": 3, "stride": 2, "padding": 1}, {"kernel": 3, "padding": 2, "dilation": 2}])
    strip = lambda records: [(r.size, r.jump, r.start) for r in records]  # noqa: E731
    assert strip(as_specs) == strip(as_tuples) == strip(as_dicts) == [(3, 2, -1), (11, 2, -5)]


@pytest.mark.parametrize(
    ("layers", "kwargs", "error", "match"),
    [
        ([(0, 1)], {}, ValueError, "kernel must be >= 1, got 0"),
        ([(3, 0)], {}, ValueError, "stride must be >= 1, got 0"),
        ([(3, 1, -1)], {}, ValueError, "padding must be >= 0, got -1"),
        ([(3, 1, 0, 0)], {}, ValueError, "dilation must be >= 1, got 0"),
        ([(3.0, 1)], {}, TypeError, "kernel must be an int"),
        ([(True, 1)], {}, TypeError, "kernel must be an int"),
        ([(3, 1, 0, 1, 5)], {}, ValueError, "must be \\(kernel"),
        ([{"kernel": 3, "size": 2}], {}, ValueError, "unknown keys \\['size'\\]"),
        ([{"stride": 2}], {}, ValueError, "needs a 'kernel'"),
        ([], {}, ValueError, "at least one layer"),
        ([3], {}, TypeError, "layers\\[0\\] must be a LayerSpec"),
        ("conv", {}, TypeError, "layers must be a list"),
        ([(5, 1)], {"input_size": 4}, ValueError, "input size 4, smaller than its effective kernel 5"),
        ([(3, 1)], {"input_size": 0}, ValueError, "input_size must be >= 1"),
        ([(3, 1)], {"input_size": 3.5}, TypeError, "input_size must be an int"),
        (nn.Sequential(nn.Conv2d(1, 1, 3), nn.Flatten()), {}, TypeError, "unsupported module '1' of type Flatten"),
        (nn.Sequential(nn.Conv2d(1, 1, 3), nn.Linear(4, 2)), {}, TypeError, "unsupported module '1' of type Linear"),
        (nn.Sequential(nn.ConvTranspose2d(1, 1, 3)), {}, TypeError, "transposed convolution"),
        (nn.Sequential(nn.AdaptiveAvgPool2d(1)), {}, TypeError, "of type AdaptiveAvgPool2d"),
        (nn.Sequential(nn.ReLU()), {}, ValueError, "no convolution or pooling layer"),
    ],
)
def test_bad_input(layers, kwargs, error, match):
    with pytest.raises(error, match=match):
        receptive_field(layers, **kwargs)


def test_custom_multi_path_module_is_refused():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x):
            return x + self.conv(x)

    with pytest.raises(TypeError, match="'1' \\(Block\\) is not a sequential container"):
        receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), Block()))


def test_empirical_errors():
    model = nn.Conv1d(1, 1, 3)
    with pytest.raises(ValueError, match="input_shape must be \\(batch, channels, \\*spatial\\)"):
        empirical_receptive_field(model, (1, 10), (0,))
    with pytest.raises(ValueError, match="output_index must index the output's spatial shape \\(8,\\)"):
        empirical_receptive_field(model, (1, 1, 10), (8,))
    nn.init.zeros_(model.weight)
    with pytest.raises(ValueError, match="no input position affects"):
        empirical_receptive_field(model, (1, 1, 10), (3,))


def test_max_pooling_can_hide_part_of_the_field():
    model = nn.Sequential(nn.MaxPool1d(4, stride=4))
    (first, last), = empirical_receptive_field(model, (1, 1, 16), (1,))
    assert first == last and 4 <= first <= 7, (first, last)  # one arg-max, inside the analytic [4, 7]
    assert receptive_field(model)[-1].span(1) == (4, 7)
