"""Medusa: tree tables against hand derivations and brute force; lossless greedy decoding;
the KV cache after every step against recomputation; typical acceptance; errors."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlnotes.decoding.medusa import (
    MedusaHeads,
    build_tree,
    medusa_generate,
    self_distillation_data,
    train_medusa_heads,
)
from dlnotes.models.gpt import GPT, GPTConfig

TREES = {
    "chain": [[0], [0, 0], [0, 0, 0]],
    "paper-like": [[0], [1], [2], [0, 0], [0, 1], [1, 0], [0, 0, 0], [0, 0, 1]],
    "wide": [[i] for i in range(5)] + [[0, i] for i in range(3)],
}


@pytest.fixture(scope="module")
def model_and_heads():
    """A tiny fp64 GPT and Medusa heads trained on its own greedy output (so many guesses are right)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=12, n_layer=2, n_head=2, d_model=16, max_len=96)).double().eval()
    prompts = [torch.randint(0, 12, (3,)).tolist() for _ in range(24)]
    data = self_distillation_data(model, prompts, length=40)
    heads = MedusaHeads(16, 12, num_heads=3).double()
    train_medusa_heads(model, heads, data, steps=150, batch_size=16, block_size=24, learning_rate=1e-2)
    return model, heads


def test_hand_derived_tree():
    tree = build_tree([[0], [1], [0, 0]], topk=10)
    # nodes: 0 root, 1 = [0], 2 = [1], 3 = [0, 0]
    assert tree.attn_mask.int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 1]]
    assert tree.position_ids.tolist() == [0, 1, 1, 2]
    assert tree.tree_indices.tolist() == [0, 1, 2, 11]  # root, head0 rank0, head0 rank1, head1 rank0
    assert tree.retrieve_indices.tolist() == [[0, 1, 3], [0, 2, -1]]
    assert tree.size == 4 and tree.depth == 2


@st.composite
def choice_sets(draw):
    paths = draw(st.sets(st.lists(st.integers(0, 3), min_size=1, max_size=3).map(tuple), min_size=1, max_size=12))
    closed = {path[:cut] for path in paths for cut in range(1, len(path) + 1)}  # add every prefix
    return [list(path) for path in closed]


@settings(max_examples=60, deadline=None)
@given(choices=choice_sets())
def test_mask_equals_brute_force_ancestors(choices):
    tree = build_tree(choices, topk=4)
    nodes = [()] + [tuple(c) for c in tree.choices]
    for i, j in itertools.product(range(len(nodes)), repeat=2):
        is_ancestor_or_self = nodes[i][: len(nodes[j])] == nodes[j]
        assert bool(tree.attn_mask[i, j]) == is_ancestor_or_self, (nodes[i], nodes[j])
    assert tree.position_ids.tolist() == [len(n) for n in nodes]
    for row in tree.retrieve_indices.tolist():  # every path goes root -> leaf through parents
        real = [n for n in row if n >= 0]
        assert real[0] == 0 and all(nodes[b][:-1] == nodes[a] for a, b in zip(real, real[1:]))
        assert all(n == -1 for n in row[len(real):])
    leaves = {n for n in nodes if n and not any(m != n and m[: len(n)] == n for m in nodes)}
    assert {nodes[[n for n in row if n >= 0][-1]] for row in tree.retrieve_indices.tolist()} == leaves


@pytest.mark.parametrize("name", list(TREES))
def test_greedy_medusa_is_lossless_and_the_cache_stays_exact(model_and_heads, name):
    model, heads = model_and_heads
    tree = build_tree(TREES[name], topk=5)
    accepted = []
    for seed in range(6):
        prompt = torch.randint(0, 12, (4,), generator=torch.Generator().manual_seed(seed))

        def check_cache(ids, cache):
            reference = model(ids[None], use_cache=True).past_key_values
            for (k, v), (k_ref, v_ref) in zip(cache, reference):
                torch.testing.assert_close(k, k_ref)
                torch.testing.assert_close(v, v_ref)

        ids, stats = medusa_generate(model, heads, prompt, 30, tree, on_step=check_cache)
        assert torch.equal(ids, model.generate(prompt, 30)), f"tree {name}, prompt seed {seed}"
        assert stats.forward_passes == len(stats.accepted) + 1
        accepted += stats.accepted
    assert max(accepted) >= 2, "the trained heads should get some guesses right"


def test_typical_acceptance_at_temperature_zero_is_greedy(model_and_heads):
    model, heads = model_and_heads
    tree = build_tree(TREES["paper-like"], topk=4)
    prompt = [1, 2, 3]
    greedy, _ = medusa_generate(model, heads, prompt, 25, tree)
    typical, _ = medusa_generate(model, heads, prompt, 25, tree, acceptance="typical", temperature=0.0)
    assert torch.equal(greedy, typical)


def test_typical_acceptance_samples_reproducibly(model_and_heads):
    model, heads = model_and_heads
    tree = build_tree(TREES["paper-like"], topk=4)
    a, stats = medusa_generate(model, heads, [1, 2], 25, tree, acceptance="typical", temperature=0.7, seed=1)
    b, _ = medusa_generate(model, heads, [1, 2], 25, tree, acceptance="typical", temperature=0.7, seed=1)
    assert torch.equal(a, b) and a.shape == (27,) and stats.mean_accepted >= 1


def test_heads_start_as_identity_blocks_and_can_copy_the_lm_head():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=12, n_layer=1, n_head=2, d_model=16, max_len=32))
    heads = MedusaHeads(16, 12, num_heads=2, lm_head=model.lm_head)
    hidden = torch.randn(3, 16)
    for k in range(2):
        torch.testing.assert_close(heads(hidden)[k], model.lm_head(hidden))


def test_training_lowers_the_head_loss():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=12, n_layer=1, n_head=2, d_model=16, max_len=64)).eval()
    data = self_distillation_data(model, [[1, 2], [3, 4], [5, 6]], length=50)
    heads = MedusaHeads(16, 12, num_heads=2)
    losses = train_medusa_heads(model, heads, data, steps=60, batch_size=8, block_size=16, learning_rate=1e-2)
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10


@pytest.mark.parametrize(
    ("choices", "error", "match"),
    [
        ([], ValueError, "at least one path"),
        ([[]], ValueError, "must not be empty"),
        ([[0], [0]], ValueError, "repeated"),
        ([[0, 1]], ValueError, "needs its prefix"),
        ([[10]], ValueError, "outside"),
        (["ab"], TypeError, "sequence of ints"),
        ([[0.5]], TypeError, "sequence of ints"),
    ],
)
def test_bad_choices(choices, error, match):
    with pytest.raises(error, match=match):
        build_tree(choices, topk=10)


def test_generate_errors(model_and_heads):
    model, heads = model_and_heads
    tree = build_tree(TREES["chain"], topk=4)
    with pytest.raises(ValueError, match="acceptance"):
        medusa_generate(model, heads, [1], 5, tree, acceptance="nucleus")
    with pytest.raises(ValueError, match="only 3 Medusa heads"):
        medusa_generate(model, heads, [1], 5, build_tree([[0], [0, 0], [0, 0, 0], [0, 0, 0, 0]], topk=4))
    with pytest.raises(ValueError, match="heads are for d_model=8"):
        medusa_generate(model, MedusaHeads(8, 12, num_heads=3), [1], 5, tree)
    with pytest.raises(ValueError, match="exceeds max_len=96"):
        medusa_generate(model, heads, [1] * 10, 90, tree)
    with pytest.raises(ValueError, match="num_heads must be"):
        MedusaHeads(16, 12, num_heads=0)


@pytest.mark.parametrize("num_layers", [0, 1, 2])
def test_frozen_heads_equal_the_modules(num_layers):
    torch.manual_seed(0)
    heads = MedusaHeads(16, 12, num_heads=4, num_layers=num_layers)
    with torch.no_grad():
        for parameter in heads.parameters():
            parameter.normal_(0, 0.3)
    hidden = torch.randn(16)
    torch.testing.assert_close(heads.frozen(3)(hidden), heads(hidden, 3))
