"""Synthetic tasks of the Mamba paper and the training loop, checked by brute force.

The generators are checked row by row with plain Python loops (the targets are the
body's non-noise tokens in order; the induction target is the token after the first
trigger), by coverage over many rows, and on every documented error. The training loop
is checked against a cross-entropy computed here and against the closed-form optimum
of a model that can only learn the marginal distribution of the answers.
"""

import copy
import doctest
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

# Creating a torch optimizer imports triton (torch 2.13). dlnotes._triton must set
# TRITON_INTERPRET before that first import, or Triton kernels run later in this process
# (the chapter's blocks, under -n 0) fail with "Cannot call @triton.jit'd outside of
# the scope of a kernel". Importing it above, at collection time, keeps the order right.
import dlnotes._triton  # noqa: F401  (see the comment above)
import dlnotes.ssm.tasks as tasks_module
from dlnotes.ssm.tasks import (
    IGNORE_INDEX,
    MARKER_TOKEN,
    NOISE_TOKEN,
    TRIGGER_TOKEN,
    InductionHeads,
    SelectiveCopying,
    TaskBatch,
    evaluate_on_task,
    induction_heads,
    selective_copying,
    train_on_task,
)


# ------------------------------------------------------------------ selective copying


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 4),
    body=st.integers(1, 30),
    tokens_fraction=st.floats(0.0, 1.0),
    vocab=st.integers(3, 20),
    seed=st.integers(0, 2**31),
)
def test_selective_copying_rows_by_brute_force(batch, body, tokens_fraction, vocab, seed):
    num_tokens = max(1, round(tokens_fraction * body))
    inputs, targets, mask = selective_copying(batch, body, num_tokens, vocab, seed=seed)
    length = body + num_tokens
    for tensor in (inputs, targets, mask):
        assert tuple(tensor.shape) == (batch, length), tensor.shape
    assert inputs.dtype == targets.dtype == torch.int64 and mask.dtype == torch.bool
    for row in range(batch):
        row_inputs, row_targets, row_mask = inputs[row].tolist(), targets[row].tolist(), mask[row].tolist()
        hidden = [token for token in row_inputs[:body] if token != NOISE_TOKEN]
        assert len(hidden) == num_tokens, (row_inputs, num_tokens)
        assert all(2 <= token < vocab for token in hidden), hidden
        assert row_inputs[body:] == [MARKER_TOKEN] * num_tokens, row_inputs
        assert row_mask == [False] * body + [True] * num_tokens, row_mask
        assert row_targets[body:] == hidden, (row_targets, hidden)
        assert row_targets[:body] == [IGNORE_INDEX] * body, row_targets


def test_selective_copying_covers_every_position_and_token():
    inputs, _, _ = selective_copying(4000, body_length=16, num_tokens=4, vocab_size=7, seed=3)
    body = inputs[:, :16]
    per_position = (body != NOISE_TOKEN).float().mean(0)  # expected 4 / 16 everywhere
    assert torch.allclose(per_position, torch.full((16,), 0.25), atol=0.03), per_position
    counts = torch.bincount(body[body != NOISE_TOKEN], minlength=7)[2:].float()
    assert torch.allclose(counts / counts.sum(), torch.full((5,), 0.2), atol=0.02), counts


def test_selective_copying_is_seeded():
    a = selective_copying(3, 20, 5, seed=7)
    b = selective_copying(3, 20, 5, seed=7)
    c = selective_copying(3, 20, 5, seed=8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a.inputs, c.inputs)
    generator = torch.Generator().manual_seed(7)
    first = selective_copying(3, 20, 5, generator=generator)
    second = selective_copying(3, 20, 5, generator=generator)
    assert torch.equal(first.inputs, a.inputs), "generator seeded like seed must give the same batch"
    assert not torch.equal(first.inputs, second.inputs), "the generator must advance"


# -------------------------------------------------------------------- induction heads


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 4), length=st.integers(3, 40), vocab=st.integers(3, 20), seed=st.integers(0, 2**31))
def test_induction_heads_rows_by_brute_force(batch, length, vocab, seed):
    inputs, targets, mask = induction_heads(batch, length, vocab, seed=seed)
    for tensor in (inputs, targets, mask):
        assert tuple(tensor.shape) == (batch, length), tensor.shape
    for row in range(batch):
        tokens = inputs[row].tolist()
        triggers = [i for i, token in enumerate(tokens) if token == TRIGGER_TOKEN]
        assert len(triggers) == 2 and triggers[1] == length - 1, tokens
        assert triggers[0] <= length - 3, tokens
        assert all(0 <= token < vocab for token in tokens), tokens
        assert mask[row].tolist() == [False] * (length - 1) + [True]
        assert targets[row, -1].item() == tokens[triggers[0] + 1], (tokens, targets[row])
        assert targets[row, :-1].tolist() == [IGNORE_INDEX] * (length - 1)


def test_induction_heads_covers_every_trigger_position_and_answer():
    inputs, targets, _ = induction_heads(3000, length=10, vocab_size=5, seed=1)
    first = (inputs[:, :-1] == TRIGGER_TOKEN).float().argmax(1)
    assert torch.bincount(first, minlength=8).min() > 3000 / 8 * 0.8, torch.bincount(first)
    answers = torch.bincount(targets[:, -1], minlength=5)
    assert answers[0] == 0 and answers[1:].min() > 3000 / 4 * 0.85, answers


def test_task_classes_draw_the_functions_batches():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    ours = SelectiveCopying(body_length=12, num_tokens=3, vocab_size=9).sample(4, g1)
    direct = selective_copying(4, 12, 3, 9, generator=g2)
    assert isinstance(ours, TaskBatch) and all(torch.equal(x, y) for x, y in zip(ours, direct))
    assert SelectiveCopying(body_length=12, num_tokens=3).length == 15
    ours = InductionHeads(length=11, vocab_size=6).sample(4, torch.Generator().manual_seed(2))
    direct = induction_heads(4, 11, 6, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(ours, direct))


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.0}, "batch_size"),
        ({"body_length": 0}, "body_length"),
        ({"num_tokens": 0}, "num_tokens"),
        ({"body_length": 4, "num_tokens": 5}, "must fit"),
        ({"vocab_size": 2}, "vocab_size"),
        ({"vocab_size": True}, "vocab_size"),
    ],
)
def test_selective_copying_errors(kwargs, message):
    arguments = {"batch_size": 2, "body_length": 8, "num_tokens": 2, "vocab_size": 6} | kwargs
    with pytest.raises(ValueError, match=message):
        selective_copying(**arguments)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"batch_size": -1}, "batch_size"), ({"length": 2}, "at least 3"), ({"vocab_size": 2}, "vocab_size")],
)
def test_induction_heads_errors(kwargs, message):
    arguments = {"batch_size": 2, "length": 8, "vocab_size": 6} | kwargs
    with pytest.raises(ValueError, match=message):
        induction_heads(**arguments)


def test_seed_and_generator_type_errors():
    with pytest.raises(TypeError, match="seed"):
        selective_copying(2, seed=1.5)
    with pytest.raises(TypeError, match="generator"):
        induction_heads(2, generator=3)


def test_task_classes_validate_on_construction():
    with pytest.raises(ValueError, match="must fit"):
        SelectiveCopying(body_length=3, num_tokens=4)
    with pytest.raises(ValueError, match="at least 3"):
        InductionHeads(length=2)


# ------------------------------------------------------------------ evaluation, training


class FixedLogits(nn.Module):
    """Returns the logits it was given, whatever the ids."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, ids):
        return self.logits


class MarginalModel(nn.Module):
    """One learned logit vector for every position: can learn the answers' marginal only."""

    def __init__(self, vocab_size):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, ids):
        return self.bias.expand(*ids.shape, -1)


def test_evaluate_on_task_counts_like_a_loop():
    batch = selective_copying(6, body_length=10, num_tokens=3, vocab_size=8, seed=0)
    logits = torch.randn(6, 13, 8, generator=torch.Generator().manual_seed(1))
    # Force some right answers so that both accuracies are strictly between 0 and 1.
    logits[:3, -3:] = F.one_hot(batch.targets[:3, -3:], 8).float() * 100
    logits[3, -1] = F.one_hot(batch.targets[3, -1], 8).float() * 100
    predictions = logits.argmax(-1)
    right = [predictions[r, t] == batch.targets[r, t] for r in range(6) for t in range(13) if batch.mask[r, t]]
    rows = [all(predictions[r, t] == batch.targets[r, t] for t in range(10, 13)) for r in range(6)]
    token_accuracy, sequence_accuracy = evaluate_on_task(FixedLogits(logits), batch)
    assert token_accuracy == pytest.approx(sum(right) / len(right)), (token_accuracy, right)
    assert sequence_accuracy == pytest.approx(sum(rows) / 6), (sequence_accuracy, rows)
    assert 0 < token_accuracy < 1 and 0 < sequence_accuracy < 1


def test_evaluate_on_task_restores_training_mode_and_checks_shapes():
    batch = induction_heads(2, length=5, vocab_size=4)
    model = FixedLogits(torch.zeros(2, 5, 4)).train()
    evaluate_on_task(model, batch)
    assert model.training, "evaluate_on_task must put the model back in training mode"
    with pytest.raises(ValueError, match=r"logits of shape \(2, 5, vocab\)"):
        evaluate_on_task(FixedLogits(torch.zeros(2, 4, 4)), batch)


def test_first_training_loss_is_the_masked_cross_entropy_of_the_first_batch():
    torch.manual_seed(0)
    task = SelectiveCopying(body_length=10, num_tokens=3, vocab_size=7)
    from dlnotes.ssm.mamba import MambaConfig, MambaLM

    model = MambaLM(MambaConfig(vocab_size=7, d_model=8, n_layer=1, d_state=4))
    before = copy.deepcopy(model)
    result = train_on_task(model, task, steps=2, batch_size=5, eval_size=4, seed=11)
    first = task.sample(5, torch.Generator().manual_seed(11))
    logits = before(first.inputs)
    terms = [
        -torch.log_softmax(logits[r, t], -1)[first.targets[r, t]]
        for r in range(5)
        for t in range(13)
        if first.mask[r, t]
    ]
    assert len(terms) == 15
    assert result.losses[0] == pytest.approx(torch.stack(terms).mean().item(), rel=1e-5)
    assert not torch.equal(model.embedding.weight, before.embedding.weight), "the model must be trained in place"


def test_training_reaches_the_marginal_optimum():
    # Answers are uniform over the 4 data tokens: the best constant prediction has loss
    # ln 4. Counting the unscored noise positions would pull the bias toward token 0.
    task = SelectiveCopying(body_length=20, num_tokens=4, vocab_size=6)
    model = MarginalModel(6)
    result = train_on_task(model, task, steps=300, batch_size=64, learning_rate=0.05, eval_size=512)
    tail = sum(result.losses[-50:]) / 50
    assert tail == pytest.approx(math.log(4), abs=0.03), tail
    assert result.accuracy == pytest.approx(0.25, abs=0.05), result.accuracy
    probabilities = torch.softmax(model.bias.detach(), 0)
    assert probabilities[:2].sum() < 0.05, probabilities


def test_training_is_reproducible_and_reports_curves():
    task = InductionHeads(length=6, vocab_size=5)
    results = []
    for _ in range(2):
        torch.manual_seed(3)
        model = nn.Sequential(nn.Embedding(5, 8), nn.Linear(8, 5))
        results.append(train_on_task(model, task, steps=25, batch_size=8, eval_every=10, eval_size=16, seed=4))
    assert results[0].losses == results[1].losses
    assert results[0].eval_steps == [10, 20, 25]
    assert len(results[0].losses) == 25 and len(results[0].eval_accuracy) == 3
    assert results[0].accuracy == results[0].eval_accuracy[-1]
    assert 0 <= results[0].sequence_accuracy <= 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 0}, "steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"eval_size": 0}, "eval_size"),
        ({"learning_rate": 0.0}, "learning_rate"),
    ],
)
def test_train_on_task_errors(kwargs, message):
    arguments = {"steps": 2, "batch_size": 2, "eval_size": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        train_on_task(MarginalModel(6), InductionHeads(length=5, vocab_size=6), **arguments)


def test_train_on_task_rejects_wrong_vocabulary():
    with pytest.raises(ValueError, match=r"logits of shape \(2, 5, 6\)"):
        train_on_task(MarginalModel(7), InductionHeads(length=5, vocab_size=6), steps=1, batch_size=2)


def test_docstring_examples():
    result = doctest.testmod(tasks_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, result
