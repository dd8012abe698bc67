"""Fine-tuning memory: the closed forms against published numbers, the measurement against hand counts."""

import pytest
import torch
from torch import nn

from dlnotes.finetune.lora import apply_lora
from dlnotes.finetune.memory import (
    MIXED_PRECISION_ADAM_BYTES,
    activation_bytes,
    decoder_parameter_count,
    full_finetune_memory,
    measure_training_memory,
)


def test_sixteen_bytes_per_parameter_as_in_zero():
    # ZeRO (Rajbhandari et al. 2020): 2 + 2 + K with K = 12 for mixed-precision Adam.
    assert sum(MIXED_PRECISION_ADAM_BYTES.values()) == 16
    memory = full_finetune_memory(7_500_000_000)
    assert memory["total"] == 120_000_000_000  # ZeRO's example: a 7.5B model needs 120 GB


def test_parameter_counts_of_published_models():
    # Llama-2-7B has 6,738,415,616 parameters, of which 65 RMSNorm vectors of 4096 are norms.
    assert decoder_parameter_count(32000, 4096, 32, 11008) == 6_738_415_616 - 65 * 4096
    # Qwen1.5-7B / -72B are published as 7.7B and 72.3B (plus q/k/v biases and norms, < 0.1 %).
    assert round(decoder_parameter_count(151936, 4096, 32, 11008) / 1e9, 1) == 7.7
    assert round(decoder_parameter_count(152064, 8192, 80, 24576) / 1e9, 1) == 72.3
    tied = decoder_parameter_count(100, 8, 1, 16, tied_embeddings=True)
    assert tied == 4 * 64 + 3 * 8 * 16 + 100 * 8


def test_activation_formula_by_hand():
    # one layer, s=2, b=1, h=4, a=2: 34*2*1*4 + 5*2*2*2*1 = 272 + 40
    assert activation_bytes(2, 1, 4, 1, 2) == 312
    assert activation_bytes(2, 3, 4, 5, 2) == 5 * 3 * 312


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: decoder_parameter_count(0, 4, 1, 4), "vocab_size"),
        (lambda: activation_bytes(2, 1, 4, 1, heads=0), "heads"),
        (lambda: full_finetune_memory(-1), "num_parameters"),
        (lambda: full_finetune_memory(10, activations=-1), "activations"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_measured_memory_of_a_linear_layer_with_adam():
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    x = torch.randn(5, 6)
    memory = measure_training_memory(layer, lambda: layer(x).square().sum(), torch.optim.Adam(layer.parameters()))
    weights = (6 * 4 + 4) * 4
    assert memory.parameters == weights and memory.gradients == weights
    assert memory.optimizer_states == 2 * weights + 2 * 4  # exp_avg, exp_avg_sq + a float32 step per tensor
    # saved for backward: x (for the weight gradient) and the output (for square)
    assert memory.activations == (5 * 6 + 5 * 4) * 4
    assert memory.total == 2 * weights + memory.optimizer_states + memory.activations


def test_frozen_weights_need_no_gradients_or_states():
    torch.manual_seed(0)
    model = apply_lora(nn.Sequential(nn.Linear(8, 8)), lambda name, module: isinstance(module, nn.Linear), r=2)
    lora = [p for p in model.parameters() if p.requires_grad]
    x = torch.randn(3, 8)
    memory = measure_training_memory(model, lambda: model(x).sum(), torch.optim.SGD(lora, lr=0.1))
    assert memory.parameters == (64 + 8 + 2 * 8 + 8 * 2) * 4
    assert memory.gradients == (2 * 8 + 8 * 2) * 4 and memory.optimizer_states == 0
    with pytest.raises(TypeError, match="scalar"):
        measure_training_memory(model, lambda: model(x), torch.optim.SGD(lora, lr=0.1))
