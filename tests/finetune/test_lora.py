"""LoRA: exact start, merge/unmerge, adapter-only state, freezing, any model, errors."""

import math

import pytest
import torch
from torch import nn

from dlnotes.finetune.lora import (
    LoRALinear,
    apply_lora,
    count_parameters,
    load_lora_state_dict,
    lora_state_dict,
    merge_lora,
    unmerge_lora,
)
from dlnotes.models.gpt import GPT, GPTConfig


def small_gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=30, n_layer=2, n_head=2, d_model=16, max_len=32)).eval()


class LlamaStyle(nn.Module):
    """The module layout of a Hugging Face Llama model (model.layers[i].self_attn.q_proj, mlp.gate_proj, ...)."""

    def __init__(self, width: int = 12, layers: int = 2) -> None:
        super().__init__()
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(20, width)
        self.model.layers = nn.ModuleList()
        for _ in range(layers):
            layer = nn.Module()
            layer.self_attn = nn.Module()
            for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
                setattr(layer.self_attn, name, nn.Linear(width, width, bias=False))
            layer.mlp = nn.Module()
            layer.mlp.gate_proj = nn.Linear(width, 2 * width, bias=False)
            layer.mlp.up_proj = nn.Linear(width, 2 * width, bias=False)
            layer.mlp.down_proj = nn.Linear(2 * width, width, bias=False)
            self.model.layers.append(layer)
        self.lm_head = nn.Linear(width, 20, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            a = layer.self_attn
            x = x + a.o_proj(a.q_proj(x).tanh() * a.k_proj(x).sigmoid() + a.v_proj(x))
            m = layer.mlp
            x = x + m.down_proj(nn.functional.silu(m.gate_proj(x)) * m.up_proj(x))
        return self.lm_head(x)


def randomise_lora(model: nn.Module, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("lora_B"):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)


def test_layer_shapes_scaling_and_math():
    base = nn.Linear(6, 5)
    layer = LoRALinear(base, r=3, alpha=6)
    assert layer.lora_A.shape == (3, 6) and layer.lora_B.shape == (5, 3) and layer.scaling == 2.0
    assert LoRALinear(nn.Linear(6, 5), r=4, alpha=6, use_rslora=True).scaling == 3.0
    randomise_lora(layer)
    x = torch.randn(7, 6)
    expected = x @ base.weight.T + base.bias + 2.0 * x @ (layer.lora_B @ layer.lora_A).T  # W0 x + b + (a/r) B A x
    torch.testing.assert_close(layer(x), expected)


def test_zero_b_leaves_the_model_unchanged():
    model = small_gpt()
    ids = torch.randint(0, 30, (2, 10))
    before = model(ids).logits
    apply_lora(model, ["q_proj", "v_proj", "up_proj"], r=4, alpha=8)
    torch.testing.assert_close(model(ids).logits, before, rtol=0, atol=0)


def test_only_lora_parameters_train_and_counts_are_right():
    model = small_gpt()
    _, total_before = count_parameters(model)
    apply_lora(model, ["q_proj", "v_proj"], r=4)
    trainable_names = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable_names and all(name.endswith(("lora_A", "lora_B")) for name in trainable_names)
    trainable, total = count_parameters(model)
    per_layer = 2 * (4 * 16 + 16 * 4)  # q and v: A (r x in) + B (out x r)
    assert trainable == 2 * per_layer and total == total_before + trainable


@pytest.mark.parametrize("use_rslora", [False, True])
def test_merge_equals_unmerged_and_unmerge_restores(use_rslora):
    model = small_gpt()
    original = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    apply_lora(model, ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"], r=4, alpha=16, use_rslora=use_rslora)
    randomise_lora(model)
    ids = torch.randint(0, 30, (2, 12))
    unmerged = model(ids).logits
    merge_lora(model)
    torch.testing.assert_close(model(ids).logits, unmerged, rtol=1e-5, atol=1e-5)
    merge_lora(model)  # idempotent
    torch.testing.assert_close(model(ids).logits, unmerged, rtol=1e-5, atol=1e-5)
    unmerge_lora(model)
    for name, tensor in model.state_dict().items():
        if "lora_" in name:
            continue
        key = name.replace(".base.", ".")
        torch.testing.assert_close(tensor, original[key], rtol=0, atol=1e-6)


def test_state_dict_round_trip_holds_only_adapter_weights():
    model = apply_lora(small_gpt(), ["q_proj", "v_proj"], r=2)
    randomise_lora(model, seed=4)
    saved = lora_state_dict(model)
    assert saved and all(key.endswith(("lora_A", "lora_B")) for key in saved)
    assert sum(t.numel() for t in saved.values()) == count_parameters(model)[0]
    fresh = apply_lora(small_gpt(), ["q_proj", "v_proj"], r=2)
    ids = torch.randint(0, 30, (1, 9))
    assert not torch.allclose(fresh(ids).logits, model(ids).logits)
    load_lora_state_dict(fresh, saved)
    torch.testing.assert_close(fresh(ids).logits, model(ids).logits)
    with pytest.raises(ValueError, match="keys do not match"):
        load_lora_state_dict(fresh, {k: v for k, v in list(saved.items())[1:]})
    merge_lora(fresh)
    with pytest.raises(ValueError, match="unmerge"):
        load_lora_state_dict(fresh, saved)


def test_works_on_a_llama_style_model_and_with_a_predicate():
    torch.manual_seed(0)
    model = LlamaStyle()
    ids = torch.randint(0, 20, (2, 5))
    before = model(ids)
    apply_lora(model, ["q_proj", "v_proj", "gate_proj"], r=2)
    wrapped = sorted(name for name, m in model.named_modules() if isinstance(m, LoRALinear))
    assert wrapped == sorted(
        f"model.layers.{i}.{part}" for i in range(2) for part in ("self_attn.q_proj", "self_attn.v_proj", "mlp.gate_proj")
    )
    torch.testing.assert_close(model(ids), before)
    other = apply_lora(LlamaStyle(), lambda name, module: name.endswith("mlp.down_proj"), r=2)
    assert sum(isinstance(m, LoRALinear) for m in other.modules()) == 2


def test_training_moves_only_the_adapters():
    model = apply_lora(small_gpt(), ["q_proj", "v_proj"], r=4, alpha=8)
    frozen = {name: p.clone() for name, p in model.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    ids = torch.randint(0, 30, (4, 12))
    losses = []
    for _ in range(30):
        loss = model(ids[:, :-1], targets=ids[:, 1:]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1, losses
    for name, parameter in model.named_parameters():
        if name in frozen:
            assert torch.equal(parameter, frozen[name]), name


def test_initialisation_matches_nn_linear_for_a():
    torch.manual_seed(3)
    layer = LoRALinear(nn.Linear(50, 7), r=8, alpha=8)
    bound = 1 / math.sqrt(50)  # kaiming_uniform(a=sqrt(5)) on fan_in = 50
    assert layer.lora_A.abs().max() <= bound and layer.lora_A.abs().max() > 0.8 * bound
    assert torch.count_nonzero(layer.lora_B) == 0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: apply_lora(m, ["nope"]), ValueError, r"\[.nope.\] match no submodule"),
        (lambda m: apply_lora(m, lambda name, module: False), ValueError, "satisfies the target predicate"),
        (lambda m: apply_lora(m, ["q_proj", "nope"]), ValueError, r"\['nope'\] match no submodule"),
        (lambda m: apply_lora(m, ["q_proj"], r=0), ValueError, "r must be a positive integer"),
        (lambda m: apply_lora(m, ["tok_emb"]), TypeError, "is a Embedding"),
        (lambda m: apply_lora(m, []), ValueError, "at least one"),
        (lambda m: LoRALinear(nn.Conv1d(2, 2, 1), r=1, alpha=1), TypeError, "nn.Linear"),
        (lambda m: LoRALinear(nn.Linear(2, 2), r=1, alpha=0), ValueError, "alpha"),
        (lambda m: LoRALinear(nn.Linear(2, 2), r=1, alpha=1, dropout=1.0), ValueError, "dropout"),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(small_gpt())


def test_wrapping_twice_is_refused():
    model = apply_lora(small_gpt(), ["q_proj"], r=2)
    with pytest.raises(ValueError, match="already carries LoRA"):
        apply_lora(model, ["q_proj"], r=2)
