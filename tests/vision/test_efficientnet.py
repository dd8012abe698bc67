"""EfficientNet against published numbers (torchvision, the paper) and first definitions."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dlnotes.vision.efficientnet import (
    ALPHA,
    BETA,
    GAMMA,
    VARIANTS,
    EfficientNet,
    MBConv,
    BlockConfig,
    SqueezeExcitation,
    block_configs,
    compound_multipliers,
    count_multiply_adds,
    efficientnet,
    make_divisible,
    stochastic_depth,
    synthetic_patterns,
    train_on_synthetic,
)

# torchvision's documented parameter counts of efficientnet_b0 ... efficientnet_b7.
TORCHVISION_PARAMETERS = {
    "b0": 5_288_548,
    "b1": 7_794_184,
    "b2": 9_109_994,
    "b3": 12_233_232,
    "b4": 19_341_616,
    "b5": 30_389_784,
    "b6": 43_040_704,
    "b7": 66_347_960,
}
# torchvision's documented GFLOPS (multiply-adds) at the crop size of its weights' transforms.
TORCHVISION_GFLOPS = {
    "b0": (224, 0.39),
    "b1": (240, 0.69),
    "b2": (288, 1.09),
    "b3": (300, 1.83),
    "b4": (380, 4.39),
    "b5": (456, 10.27),
    "b6": (528, 19.07),
    "b7": (600, 37.75),
}
# The paper's Table 2 "#FLOPs" (billions) at the paper's resolutions.
PAPER_GFLOPS = {"b0": 0.39, "b1": 0.70, "b2": 1.0, "b3": 1.8, "b4": 4.2, "b5": 9.9, "b6": 19, "b7": 37}
# Width of the head (classifier input) of torchvision's models.
TORCHVISION_HEAD = {"b0": 1280, "b1": 1280, "b2": 1408, "b3": 1536, "b4": 1792, "b5": 2048, "b6": 2304, "b7": 2560}


def meta_model(variant, num_classes=1000):
    with torch.device("meta"):
        return efficientnet(variant, num_classes)


@pytest.mark.parametrize("variant", list(TORCHVISION_PARAMETERS))
def test_parameter_counts_equal_torchvision(variant):
    count = sum(p.numel() for p in meta_model(variant).parameters())
    assert count == TORCHVISION_PARAMETERS[variant], f"{variant}: {count} != {TORCHVISION_PARAMETERS[variant]}"


@pytest.mark.parametrize("variant", list(TORCHVISION_HEAD))
def test_head_width_and_classes(variant):
    model = meta_model(variant, num_classes=7)
    linear = model.classifier[1]
    assert linear.in_features == TORCHVISION_HEAD[variant]
    assert linear.out_features == 7
    assert model.classifier[0].p == VARIANTS[variant].dropout


def test_real_b0_construction_matches_meta_and_runs():
    model = efficientnet("b0", num_classes=10).eval()
    head = sum(p.numel() for p in model.classifier.parameters())
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMETERS["b0"] - (1281 * 1000) + head
    with torch.no_grad():
        features = model.features(torch.randn(2, 3, 64, 64))
        logits = model(torch.randn(2, 3, 64, 64))
    assert features.shape == (2, 1280, 2, 2), "the network downsamples by 32"
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()


def test_unknown_variant_and_bad_arguments():
    with pytest.raises(ValueError, match="variant must be one of"):
        efficientnet("b8")
    with pytest.raises(ValueError, match="variant must be one of"):
        efficientnet("B0")
    with pytest.raises(ValueError, match="num_classes"):
        efficientnet("b0", num_classes=0)
    with pytest.raises(ValueError, match="stochastic_depth_prob"):
        EfficientNet(stochastic_depth_prob=1.0)
    with pytest.raises(ValueError, match="width_mult and depth_mult"):
        block_configs(0.0, 1.0)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3"):
        EfficientNet(0.25, 0.25, num_classes=2)(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="stride must be 1 or 2"):
        MBConv(BlockConfig(6, 3, 3, 8, 8, 1))


def test_make_divisible_known_values_and_errors():
    # Channel counts of torchvision's b2 (width 1.1) and b4 (width 1.4) stems and stages.
    base = (32, 16, 24, 40, 80, 112, 192, 320)
    assert [make_divisible(c * 1.1) for c in base] == [32, 16, 24, 48, 88, 120, 208, 352]
    assert [make_divisible(c * 1.4) for c in base] == [48, 24, 32, 56, 112, 160, 272, 448]
    with pytest.raises(ValueError, match="value must be > 0"):
        make_divisible(0)
    with pytest.raises(ValueError, match="divisor"):
        make_divisible(10, 0)


@settings(max_examples=200, deadline=None)
@given(value=st.floats(0.5, 5000), divisor=st.sampled_from([1, 4, 8, 16]))
def test_make_divisible_properties(value, divisor):
    result = make_divisible(value, divisor)
    assert result % divisor == 0
    assert result >= divisor
    assert result >= 0.9 * value, "never more than 10 % below the request"
    nearest = max(divisor, divisor * math.floor(value / divisor + 0.5))
    assert result in (nearest, nearest + divisor), "nearest multiple, bumped once at most"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_block_layout(variant):
    config = VARIANTS[variant]
    stages = block_configs(config.width_mult, config.depth_mult)
    base_layers = [1, 2, 2, 3, 3, 4, 1]
    assert [len(s) for s in stages] == [math.ceil(n * config.depth_mult) for n in base_layers]
    for stage, stride in zip(stages, [1, 2, 2, 2, 1, 2, 1]):
        assert stage[0].stride == stride
        assert all(block.stride == 1 and block.in_channels == block.out_channels for block in stage[1:])
    for before, after in zip(stages, stages[1:]):
        assert before[-1].out_channels == after[0].in_channels, "stages chain"


def test_b0_has_16_blocks_with_linear_drop_probabilities():
    model = efficientnet("b0")
    blocks = [m for m in model.modules() if isinstance(m, MBConv)]
    assert len(blocks) == 16, "Table 1 of the paper: 16 MBConv blocks"
    expected = [0.2 * i / 16 for i in range(16)]
    assert [b.drop_probability for b in blocks] == pytest.approx(expected)
    assert sum(b.use_residual for b in blocks) == 16 - 7, "every block but a stage's first is residual"


def test_squeeze_excitation_matches_functional_definition():
    torch.manual_seed(0)
    se = SqueezeExcitation(12, 3)
    nn.init.normal_(se.fc1.bias)
    nn.init.normal_(se.fc2.bias)
    x = torch.randn(2, 12, 5, 7)
    squeezed = x.mean(dim=(2, 3))  # (2, 12)
    hidden = torch.nn.functional.silu(squeezed @ se.fc1.weight.view(3, 12).T + se.fc1.bias)
    gate = torch.sigmoid(hidden @ se.fc2.weight.view(12, 3).T + se.fc2.bias)
    torch.testing.assert_close(se(x), x * gate[:, :, None, None], rtol=1e-5, atol=1e-6)


def test_mbconv_squeeze_uses_input_channels():
    block = MBConv(BlockConfig(6, 5, 2, 40, 80, 1))
    se = [m for m in block.modules() if isinstance(m, SqueezeExcitation)][0]
    assert (se.fc1.in_channels, se.fc1.out_channels) == (240, 10)
    depthwise = [m for m in block.modules() if isinstance(m, nn.Conv2d) and m.groups > 1][0]
    assert depthwise.groups == 240 and depthwise.kernel_size == (5, 5) and depthwise.stride == (2, 2)
    assert block(torch.randn(2, 40, 16, 16)).shape == (2, 80, 8, 8)


def test_stochastic_depth_eval_is_identity_and_errors():
    x = torch.randn(4, 3, 2, 2)
    assert stochastic_depth(x, 0.5, training=False) is x
    assert stochastic_depth(x, 0.0, training=True) is x
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="p must satisfy"):
            stochastic_depth(x, p)


def test_stochastic_depth_drops_whole_rows_and_keeps_the_mean():
    torch.manual_seed(0)
    p, n = 0.3, 20_000
    x = torch.rand(n, 2, 3) + 0.5
    y = stochastic_depth(x, p, training=True)
    dropped = (y == 0).all(dim=(1, 2))
    kept = ~dropped
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))  # survivors are scaled by 1 / (1 - p)
    assert ((y == 0) == dropped[:, None, None]).all(), "a sample is dropped whole or not at all"
    # Binomial(n, p): standard deviation sqrt(n p (1-p)) ~ 65; allow 5 of them.
    assert abs(dropped.sum().item() - p * n) < 5 * math.sqrt(n * p * (1 - p))
    ratio = (y.sum() / x.sum()).item()
    assert abs(ratio - 1) < 0.03, f"E[y] = x, got ratio {ratio}"


def test_residual_block_in_training_is_identity_when_dropped():
    torch.manual_seed(0)
    block = MBConv(BlockConfig(6, 3, 1, 8, 8, 1), drop_probability=0.5).train()
    x = torch.randn(64, 8, 4, 4)
    torch.manual_seed(1)
    y = block(x)
    torch.manual_seed(1)
    branch = block.block(x)
    torch.manual_seed(1)
    keep = torch.empty(64, 1, 1, 1).bernoulli_(0.5)
    torch.testing.assert_close(y, x + branch * keep / 0.5)
    assert 0 < keep.sum() < 64


def test_compound_multipliers():
    assert 1.9 < ALPHA * BETA**2 * GAMMA**2 < 2.0
    assert compound_multipliers(0) == (1.0, 1.0, 1.0)
    depth, width, resolution = compound_multipliers(3)
    assert depth == pytest.approx(1.728) and width == pytest.approx(1.331) and resolution == pytest.approx(1.520875)
    with pytest.raises(ValueError, match="beta must be >= 1"):
        compound_multipliers(1, beta=0.9)


def test_count_multiply_adds_single_layers():
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=8))
    # 8x8 input -> 4x4: (4*4*8) * 3*9 for the first, (4*4*8) * 1*9 for the depthwise one.
    assert count_multiply_adds(conv, 8) == 128 * 27 + 128 * 9
    assert count_multiply_adds(nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 2, 5)), 2) == 60
    with pytest.raises(ValueError, match="resolution"):
        count_multiply_adds(conv, 0)


def test_count_multiply_adds_matches_flop_counter_mode():
    model = meta_model("b0").eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, 224, 224, device="meta"))
    assert counter.get_total_flops() == 2 * count_multiply_adds(model, 224), "FlopCounterMode counts 2 per MAC"


@pytest.mark.parametrize("variant", list(TORCHVISION_GFLOPS))
def test_multiply_adds_equal_torchvision_and_paper(variant):
    model = meta_model(variant)
    crop, gflops = TORCHVISION_GFLOPS[variant]
    assert round(count_multiply_adds(model, crop) / 1e9, 2) == gflops
    paper = count_multiply_adds(model, VARIANTS[variant].resolution) / 1e9
    assert abs(paper / PAPER_GFLOPS[variant] - 1) < 0.05, f"{variant}: {paper:.3f} vs paper {PAPER_GFLOPS[variant]}"


def test_synthetic_patterns():
    images, labels = synthetic_patterns(64, 16, torch.Generator().manual_seed(3))
    again, labels_again = synthetic_patterns(64, 16, torch.Generator().manual_seed(3))
    assert images.shape == (64, 3, 16, 16) and labels.shape == (64,) and labels.dtype == torch.int64
    assert set(labels.tolist()) == {0, 1, 2, 3}
    torch.testing.assert_close(images, again)
    assert torch.equal(labels, labels_again)
    with pytest.raises(ValueError, match="batch"):
        synthetic_patterns(0)
    with pytest.raises(ValueError, match="resolution"):
        synthetic_patterns(4, 4)


def test_short_training_run_lowers_the_loss():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is fastest on a shared CPU
    try:
        torch.manual_seed(0)
        model = EfficientNet(0.25, 0.25, num_classes=4, dropout=0.0)
        losses = train_on_synthetic(model, steps=60, batch=32, resolution=32, learning_rate=1e-2, seed=0)
    finally:
        torch.set_num_threads(threads)
    assert len(losses) == 60
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first and last < math.log(4), f"loss {first:.3f} -> {last:.3f}"
    with pytest.raises(ValueError, match="steps"):
        train_on_synthetic(model, steps=0)


def test_torchvision_initialisation():
    torch.manual_seed(0)
    model = efficientnet("b0", num_classes=10)
    head_conv = model.features[-1][0]  # 1x1, 320 -> 1280: fan_out = 1280
    std = head_conv.weight.std().item()
    assert abs(std / math.sqrt(2 / 1280) - 1) < 0.05, f"He fan-out std, got {std}"
    linear = model.classifier[1]
    assert linear.weight.abs().max() <= 1 / math.sqrt(10) and (linear.bias == 0).all()
    se = [m for m in model.modules() if isinstance(m, SqueezeExcitation)][0]
    assert (se.fc1.bias == 0).all()
