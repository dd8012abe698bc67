"""Houlsby adapters: near-identity start, placement, freezing, training, errors."""

import pytest
import torch
from torch import nn

from dlnotes.finetune.adapter import Adapter, AdaptedLayer, add_adapters
from dlnotes.finetune.lora import count_parameters
from dlnotes.models.gpt import GPT, GPTConfig


def small_gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=30, n_layer=2, n_head=2, d_model=16, max_len=32)).eval()


def test_adapter_is_a_residual_bottleneck():
    torch.manual_seed(0)
    adapter = Adapter(8, bottleneck=3, init_scale=0.5)
    h = torch.randn(5, 8)
    expected = h + adapter.up(torch.nn.functional.gelu(adapter.down(h)))
    torch.testing.assert_close(adapter(h), expected)
    assert adapter.down.weight.shape == (3, 8) and adapter.up.weight.shape == (8, 3)


def test_zero_init_is_exactly_the_identity_and_default_is_near_it():
    h = torch.randn(4, 16)
    torch.testing.assert_close(Adapter(16, 4, init_scale=0.0)(h), h, rtol=0, atol=0)
    torch.manual_seed(0)
    h = torch.randn(64, 128)
    change = (Adapter(128, bottleneck=16)(h) - h).norm() / h.norm()
    assert change < 1e-2, f"a fresh adapter must be close to the identity, relative change {change:.3g}"
    model = small_gpt()
    ids = torch.randint(0, 30, (2, 10))
    before = model(ids).logits
    exact = add_adapters(small_gpt(), bottleneck=8, init_scale=0.0)
    torch.testing.assert_close(exact(ids).logits, before, rtol=0, atol=0)


def test_placement_freezing_and_counts():
    model = small_gpt()
    _, total_before = count_parameters(model)
    add_adapters(model, bottleneck=4)
    adapted = sorted(name for name, m in model.named_modules() if isinstance(m, AdaptedLayer))
    assert adapted == [f"blocks.{i}.{part}" for i in range(2) for part in ("attn.o_proj", "mlp.down_proj")]
    trainable, total = count_parameters(model)
    per_adapter = (16 * 4 + 4) + (4 * 16 + 16)
    assert trainable == 4 * per_adapter and total == total_before + trainable
    assert all(".adapter." in name for name, p in model.named_parameters() if p.requires_grad)
    with_norms = add_adapters(small_gpt(), bottleneck=4, train_layer_norms=True)
    norm_params = sum(p.numel() for n, p in with_norms.named_parameters() if p.requires_grad and ("ln_" in n))
    assert norm_params == (2 * 2 + 1) * 2 * 16


def test_training_changes_only_adapters_and_layer_norms():
    # Frozen tied embeddings of a random tiny model bound the logits' range, so the layer
    # norms (trained in Houlsby's recipe) must be free to rescale them for the loss to drop.
    model = add_adapters(small_gpt(), bottleneck=8, train_layer_norms=True)
    frozen = {name: p.clone() for name, p in model.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    ids = torch.randint(0, 30, (4, 12))
    first = None
    for _ in range(100):
        loss = model(ids[:, :-1], targets=ids[:, 1:]).loss
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first - 0.1, (first, loss.item())
    for name, parameter in model.named_parameters():
        if name in frozen:
            assert torch.equal(parameter, frozen[name]), name


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: add_adapters(m, target_modules=["nothing"]), ValueError, "match no submodule"),
        (lambda m: add_adapters(m, target_modules=["tok_emb"]), TypeError, "is a Embedding"),
        (lambda m: add_adapters(add_adapters(m), bottleneck=4), ValueError, "already carries an adapter"),
        (lambda m: Adapter(16, bottleneck=0), ValueError, "bottleneck must be a positive"),
        (lambda m: add_adapters(m, bottleneck=0), ValueError, "bottleneck must be a positive"),
        (lambda m: Adapter(16, init_scale=-1.0), ValueError, "init_scale"),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(small_gpt())


def test_any_model_with_linear_layers():
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 4))
    add_adapters(model, bottleneck=2, target_modules=lambda name, module: isinstance(module, nn.Linear))
    assert isinstance(model[0], AdaptedLayer) and isinstance(model[2], AdaptedLayer)
    assert model(torch.randn(3, 4)).shape == (3, 4)


def test_a_failed_call_leaves_the_model_untouched():
    model = small_gpt()
    with pytest.raises(ValueError):
        add_adapters(model, bottleneck=0)
    assert all(p.requires_grad for p in model.parameters())
    assert not any(isinstance(m, AdaptedLayer) for m in model.modules())
