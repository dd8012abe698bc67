"""Sparse Medusa trees: head accuracies against a per-position loop, best-first tree
selection against brute-force enumeration, the acceptance estimate against hand values."""

import itertools

import pytest
import torch

from dlnotes.decoding.medusa import (
    MedusaHeads,
    build_tree,
    expected_accepted_length,
    head_accuracies,
    sparse_tree_choices,
)
from dlnotes.models.gpt import GPT, GPTConfig


def all_paths(depth, topk):
    return [p for d in range(1, depth + 1) for p in itertools.product(range(topk), repeat=d)]


def chance(accuracies, path):
    value = 1.0
    for k, r in enumerate(path):
        value *= float(accuracies[k, r])
    return value


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("num_nodes", [1, 4, 9, 20])
def test_sparse_tree_is_the_top_paths_by_chance(seed, num_nodes):
    accuracies = torch.rand(3, 4, generator=torch.Generator().manual_seed(seed))  # no ties (almost surely)
    ranked = sorted(all_paths(3, 4), key=lambda p: -chance(accuracies, p))
    want = sorted((list(p) for p in ranked[:num_nodes]), key=lambda p: (len(p), p))
    got = sparse_tree_choices(accuracies, num_nodes)
    assert got == want
    build_tree(got, topk=4)  # every prefix is present: a valid tree


def test_sparse_tree_maximises_the_estimate_over_all_valid_trees():
    accuracies = torch.tensor([[0.7, 0.2, 0.05], [0.5, 0.3, 0.1]])
    paths = all_paths(2, 3)
    best = 0.0
    for subset in itertools.combinations(paths, 4):  # every 4-node tree, brute force
        if all(len(p) == 1 or p[:-1] in subset for p in subset):
            best = max(best, expected_accepted_length(accuracies, subset))
    got = expected_accepted_length(accuracies, sparse_tree_choices(accuracies, 4))
    assert got == pytest.approx(best)


def test_expected_length_hand_values():
    accuracies = torch.tensor([[0.5, 0.25], [0.5, 0.5]])
    assert expected_accepted_length(accuracies, [[0]]) == pytest.approx(1.5)
    # 1 + 0.5 + 0.25 + 0.5 * 0.5 + 0.25 * 0.5
    assert expected_accepted_length(accuracies, [[0], [1], [0, 0], [1, 0]]) == pytest.approx(2.125)


def test_head_accuracies_equal_a_position_by_position_count():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=7, n_layer=1, n_head=2, d_model=8, max_len=32)).double().eval()
    heads = MedusaHeads(8, 7, num_heads=2).double()
    for parameter in heads.parameters():  # random, not zero, so the heads disagree
        torch.nn.init.normal_(parameter, std=0.5)
    ids = torch.randint(0, 7, (45,))
    got = head_accuracies(model, heads, ids, topk=3, block_size=20)  # windows 20, 20, 5
    hits = torch.zeros(2, 3)
    counts = torch.zeros(2)
    for start in range(0, 45, 20):
        window = ids[start : start + 20]
        with torch.no_grad():
            hidden = model(window[None]).hidden_states[0]
            for t in range(window.numel()):
                for k in range(2):
                    if t + k + 2 >= window.numel():
                        continue
                    logits = heads(hidden[t], num_heads=k + 1)[k]
                    order = sorted(range(7), key=lambda token: -float(logits[token]))
                    counts[k] += 1
                    for r in range(3):
                        hits[k, r] += float(order[r] == int(window[t + k + 2]))
    torch.testing.assert_close(got, hits / counts[:, None])


@pytest.mark.parametrize(
    ("accuracies", "num_nodes", "message"),
    [
        (torch.rand(4), 2, "accuracies must be a"),
        (torch.tensor([[0.5, 1.5]]), 1, r"\[0, 1\]"),
        (torch.rand(2, 2), 0, r"num_nodes must be an integer in \[1, 6\]"),
        (torch.rand(2, 2), 7, r"num_nodes must be an integer in \[1, 6\]"),
    ],
)
def test_sparse_tree_errors(accuracies, num_nodes, message):
    with pytest.raises(ValueError, match=message):
        sparse_tree_choices(accuracies, num_nodes)


def test_estimate_and_accuracy_errors():
    with pytest.raises(ValueError, match="does not fit accuracies"):
        expected_accepted_length(torch.rand(2, 2), [[0, 0, 0]])
    model = GPT(GPTConfig(vocab_size=7, n_layer=1, n_head=2, d_model=8, max_len=32))
    heads = MedusaHeads(8, 7, num_heads=2)
    with pytest.raises(ValueError, match="ids must be 1-D"):
        head_accuracies(model, heads, torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="topk must be in"):
        head_accuracies(model, heads, torch.zeros(10, dtype=torch.long), topk=8)
    with pytest.raises(ValueError, match="block_size must be in"):
        head_accuracies(model, heads, torch.zeros(10, dtype=torch.long), topk=2, block_size=64)


def test_depth_first_renumbering_keeps_the_tree():
    from dlnotes.decoding.medusa import _depth_first

    tree = build_tree([[0], [1], [2], [0, 0], [0, 1], [1, 0], [0, 0, 0], [0, 0, 1]], topk=4)
    mask, positions, indices, retrieve = _depth_first(tree)
    # the all-best path is nodes 0, 1, 2, 3 in depth-first order
    assert [0, 1, 2, 3] in retrieve.tolist()
    # same set of (token index, depth) per path, and the ancestor relation is preserved
    old_paths = sorted(tuple(tree.tree_indices[n].item() for n in row if n >= 0) for row in tree.retrieve_indices)
    new_paths = sorted(tuple(indices[n].item() for n in row if n >= 0) for row in retrieve)
    assert old_paths == new_paths
    for row in retrieve.tolist():
        nodes = [n for n in row if n >= 0]
        assert nodes == sorted(nodes), "ancestors come first"
        for depth, node in enumerate(nodes):
            assert positions[node] == depth
            assert mask[node].nonzero().flatten().tolist() == nodes[: depth + 1]
