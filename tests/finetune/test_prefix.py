"""Prefix tuning and prompt tuning against the frozen model run on real tokens."""

import pytest
import torch

from dlnotes.finetune.lora import count_parameters
from dlnotes.finetune.prefix import PrefixTuning, PromptTuning, PTuning
from dlnotes.models.gpt import GPT, GPTConfig


def small_gpt(positions: str = "rope") -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=30, n_layer=2, n_head=2, d_model=16, max_len=32, positions=positions)).eval()


def load_prefix_from_cache(tuned: PrefixTuning, cache) -> None:
    """Set a direct (hidden=None) prefix to the keys/values a real token sequence left in the cache."""
    rows = []
    for keys, values in cache:  # each (1, heads, p, head_dim)
        rows += [keys[0].permute(1, 0, 2).reshape(keys.shape[2], -1), values[0].permute(1, 0, 2).reshape(keys.shape[2], -1)]
    with torch.no_grad():
        tuned.prefix.copy_(torch.cat(rows, dim=1))


@pytest.mark.parametrize("positions", ["rope", "learned"])
def test_a_prefix_equal_to_real_tokens_reproduces_running_them(positions):
    model = small_gpt(positions)
    context, ids = torch.randint(0, 30, (1, 5)), torch.randint(0, 30, (2, 7))
    tuned = PrefixTuning(model, prefix_length=5, hidden=None)
    load_prefix_from_cache(tuned, model(context, use_cache=True).past_key_values)
    full = model(torch.cat([context.expand(2, -1), ids], dim=1)).logits[:, 5:]
    torch.testing.assert_close(tuned(ids).logits, full, rtol=1e-5, atol=1e-5)
    # generation behind the prefix equals generation after the real context
    generated = tuned.generate(ids[0], 6)
    after_context = model.generate(torch.cat([context[0], ids[0]]), 6)[5:]
    assert torch.equal(generated, after_context)


def test_zero_length_prefix_is_the_base_model():
    model = small_gpt()
    ids = torch.randint(0, 30, (2, 9))
    tuned = PrefixTuning(model, prefix_length=0)
    torch.testing.assert_close(tuned(ids).logits, model(ids).logits, rtol=0, atol=0)
    assert torch.equal(tuned.generate(ids[0], 5), model.generate(ids[0], 5))


def test_materialize_keeps_outputs_and_drops_the_mlp():
    model = small_gpt()
    tuned = PrefixTuning(model, prefix_length=3, hidden=8)
    ids = torch.randint(0, 30, (2, 6))
    before = tuned(ids).logits
    trainable_before = count_parameters(tuned)[0]
    tuned.materialize()
    assert tuned.reparameterization is None
    torch.testing.assert_close(tuned(ids).logits, before)
    assert count_parameters(tuned)[0] == 3 * 2 * 2 * 16 < trainable_before


def test_only_the_prefix_trains_and_the_loss_drops():
    model = small_gpt()
    frozen = {name: p.clone() for name, p in model.named_parameters()}
    tuned = PrefixTuning(model, prefix_length=4, hidden=32)
    assert all(not p.requires_grad for p in model.parameters())
    optimizer = torch.optim.Adam([p for p in tuned.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(0, 30, (4, 10))
    losses = []
    for _ in range(60):
        loss = tuned(ids[:, :-1], targets=ids[:, 1:]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, (losses[0], losses[-1])
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, frozen[name]), name


def test_prompt_tuning_initialised_from_tokens_equals_those_tokens():
    model = small_gpt()
    context, ids = [3, 1, 4, 1], torch.randint(0, 30, (2, 6))
    tuned = PromptTuning(model, num_virtual_tokens=4, init_ids=context)
    full = model(torch.cat([torch.tensor([context]).expand(2, -1), ids], dim=1)).logits[:, 4:]
    torch.testing.assert_close(tuned(ids).logits, full, rtol=1e-5, atol=1e-5)
    assert torch.equal(tuned.generate(ids[1], 5), model.generate(torch.cat([torch.tensor(context), ids[1]]), 5)[4:])
    targets = torch.randint(0, 30, (2, 6))
    out = tuned(ids, targets=targets)
    expected = torch.nn.functional.cross_entropy(out.logits.reshape(-1, 30), targets.reshape(-1))
    torch.testing.assert_close(out.loss, expected)
    assert count_parameters(tuned)[0] == 4 * 16


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: PrefixTuning(m, prefix_length=32), ValueError, "shorter than max_len"),
        (lambda m: PrefixTuning(m, prefix_length=-1), ValueError, "non-negative"),
        (lambda m: PrefixTuning(m, prefix_length=2, hidden=0), ValueError, "hidden"),
        (lambda m: PrefixTuning(torch.nn.Linear(2, 2), prefix_length=2), TypeError, "GPT"),
        (lambda m: PromptTuning(m, num_virtual_tokens=0), ValueError, "positive"),
        (lambda m: PromptTuning(m, num_virtual_tokens=40), ValueError, "shorter than max_len"),
        (lambda m: PrefixTuning(m, prefix_length=20).generate([1, 2, 3], 10), ValueError, "exceeds max_len=32"),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(small_gpt())


def test_p_tuning_encoder_is_a_bilstm_then_mlp():
    model = small_gpt()
    tuned = PTuning(model, num_virtual_tokens=5, hidden=6)
    e = tuned.soft_prompt.detach()
    # the LSTM run by hand, direction by direction (independent of batch_first / packing)
    lstm, layer_input = tuned.lstm, e
    for layer in range(2):
        outputs = []
        for suffix, order in (("", range(5)), ("_reverse", reversed(range(5)))):
            w_ih, w_hh = getattr(lstm, f"weight_ih_l{layer}{suffix}"), getattr(lstm, f"weight_hh_l{layer}{suffix}")
            bias = getattr(lstm, f"bias_ih_l{layer}{suffix}") + getattr(lstm, f"bias_hh_l{layer}{suffix}")
            h, c, out = torch.zeros(6), torch.zeros(6), [None] * 5
            for t in order:
                i, f, g, o = (w_ih @ layer_input[t] + w_hh @ h + bias).chunk(4)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                out[t] = h
            outputs.append(torch.stack(out))
        layer_input = torch.cat(outputs, dim=-1)
    expected = tuned.mlp(layer_input)
    torch.testing.assert_close(tuned.prompt_embeddings(), expected, rtol=1e-5, atol=1e-5)
    # the model sees those embeddings exactly as prompt tuning's soft prompt
    ids = torch.randint(0, 30, (2, 6))
    full = model(inputs_embeds=torch.cat([expected.expand(2, -1, -1), model.tok_emb(ids)], dim=1)).logits[:, 5:]
    torch.testing.assert_close(tuned(ids).logits, full, rtol=1e-5, atol=1e-5)


def test_p_tuning_trains_the_encoder_only_and_materializes():
    model = small_gpt()
    frozen = {name: p.clone() for name, p in model.named_parameters()}
    tuned = PTuning(model, num_virtual_tokens=4)
    trainable = {name for name, p in tuned.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith(("soft_prompt", "lstm.", "mlp.")) for name in trainable)
    optimizer = torch.optim.Adam([p for p in tuned.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(0, 30, (4, 10))
    losses = []
    encoder_before = {name: p.clone() for name, p in tuned.named_parameters() if p.requires_grad}
    for _ in range(20):
        loss = tuned(ids[:, :-1], targets=ids[:, 1:]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # a random tiny model leaves a soft prompt little to gain; the loss must still fall
    assert losses[-1] < losses[0] - 1e-3, (losses[0], losses[-1])
    for name, parameter in tuned.named_parameters():
        if name in encoder_before:
            assert not torch.equal(parameter, encoder_before[name]), f"{name} did not train"
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, frozen[name]), name
    before = tuned(ids).logits
    generated = tuned.generate(ids[0], 4)
    tuned.materialize()
    assert tuned.lstm is None and count_parameters(tuned)[0] == 4 * 16
    torch.testing.assert_close(tuned(ids).logits, before)
    assert torch.equal(tuned.generate(ids[0], 4), generated)


@pytest.mark.parametrize("hidden", [0, -2, 2.5])
def test_p_tuning_rejects_a_bad_hidden_size(hidden):
    with pytest.raises(ValueError, match="hidden"):
        PTuning(small_gpt(), num_virtual_tokens=3, hidden=hidden)
