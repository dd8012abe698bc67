"""Medusa: several tokens per forward pass from extra decoding heads, verified by a tree.

Cai et al., "Medusa: Simple LLM Inference Acceleration Framework with Multiple Decoding
Heads", ICML 2024, https://arxiv.org/abs/2401.10774.

Autoregressive decoding runs the whole model once per token, and at small batch sizes
each pass is bound by reading the weights, not by arithmetic. Medusa adds ``K`` small
heads on the base model's last hidden state; head ``k`` guesses the token ``k + 1``
positions after the one the language-model head predicts. One step:

1. The LM head's next token is the tree's root; each Medusa head proposes its top-k.
2. The candidates are arranged as a tree (``medusa_choices``: paths of top-k indices per
   head) and verified in *one* forward pass: every tree node attends to the cache and to
   its own ancestors only (the tree attention mask), at position ``cache + depth``.
3. Along each root-to-leaf path, the longest prefix the base model agrees with is
   accepted (greedy: each token is the argmax after its parent; *typical acceptance*:
   its probability exceeds ``min(threshold, alpha * exp(-H))``). The best path's tokens
   are appended, and the keys/values of exactly those nodes are kept in the cache.

With greedy acceptance the output is token for token the base model's greedy output:
every accepted token is the argmax given exactly its prefix.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from dlnotes._checks import check_positive_ints, shape_or_type
from dlnotes.common.data import random_batch
from dlnotes.models.gpt import GPT, KVCache
from dlnotes.models.sampling import sample_next_token
from dlnotes.foundations.api_export import export

__all__ = [
    "MedusaHeads",
    "MedusaTree",
    "MedusaStats",
    "build_tree",
    "medusa_generate",
    "train_medusa_heads",
    "self_distillation_data",
    "head_accuracies",
    "sparse_tree_choices",
    "expected_accepted_length",
]


class _ResidualSiLU(nn.Module):
    """``x + SiLU(W x + b)`` with ``W`` and ``b`` zero-initialised (an identity at start)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.silu(self.linear(x))


@export("decoding.MedusaHeads")
class MedusaHeads(nn.Module):
    """``num_heads`` extra heads on the last hidden state; head ``k`` predicts token ``t + k + 2``.

    Each head is ``num_layers`` residual SiLU blocks (zero-initialised, so each starts as
    the identity) followed by a linear map to the vocabulary.

    Shape:
        hidden: ``(..., d_model)``; result: ``(num_heads, ..., vocab_size)``.

    Args:
        d_model: Width of the base model's hidden states.
        vocab_size: Vocabulary size.
        num_heads: Number of Medusa heads ``K``.
        num_layers: Residual blocks per head.
        lm_head: Optionally the base model's LM head, whose weight initialises every
            head's output layer (then each head starts by predicting the next token).

    Raises:
        ValueError: On non-positive sizes or an ``lm_head`` of the wrong shape.

    Examples:
        >>> heads = MedusaHeads(16, 30, num_heads=3)
        >>> heads(torch.zeros(2, 5, 16)).shape
        torch.Size([3, 2, 5, 30])
    """

    def __init__(
        self,
        d_model: int,
        vocab_size: int,
        num_heads: int = 4,
        num_layers: int = 1,
        lm_head: nn.Linear | None = None,
    ) -> None:
        super().__init__()
        check_positive_ints(d_model=d_model, vocab_size=vocab_size, num_heads=num_heads)
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"num_layers must be a non-negative integer, got {num_layers!r}")
        self.d_model, self.vocab_size, self.num_heads = d_model, vocab_size, num_heads
        self.heads = nn.ModuleList()
        for _ in range(num_heads):
            output = nn.Linear(d_model, vocab_size, bias=False)
            if lm_head is not None:
                if tuple(lm_head.weight.shape) != (vocab_size, d_model):
                    raise ValueError(
                        f"lm_head weight must be ({vocab_size}, {d_model}), got {tuple(lm_head.weight.shape)}"
                    )
                output.weight.data.copy_(lm_head.weight.data)
            self.heads.append(nn.Sequential(*[_ResidualSiLU(d_model) for _ in range(num_layers)], output))

    def forward(self, hidden: torch.Tensor, num_heads: int | None = None) -> torch.Tensor:
        """Logits of the first ``num_heads`` heads (all by default), stacked on a new first axis."""
        return torch.stack([head(hidden) for head in self.heads[:num_heads]])

    @torch.no_grad()
    def frozen(self, num_heads: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """A fast inference version of :meth:`forward` for one hidden vector.

        The heads' weights are stacked once, so each call is a few batched matrix products
        instead of one small module call per layer and head (decoding calls it every step).

        Shape:
            hidden: ``(d_model,)``; result: ``(num_heads, vocab_size)``.
        """
        heads = self.heads[:num_heads]
        count = len(heads)
        blocks = [
            (torch.stack([head[i].linear.weight for head in heads]), torch.stack([head[i].linear.bias for head in heads]))
            for i in range(len(heads[0]) - 1)
        ]  # per layer: weights (K, d, d), biases (K, d)
        if blocks:  # the first layer's weights as one (K d, d) matrix and a (K d,) bias
            first_weight, first_bias = blocks[0][0].flatten(0, 1), blocks[0][1].flatten()
        output = torch.stack([head[-1].weight.t() for head in heads]).contiguous()  # (K, d, vocab)

        def apply(hidden: torch.Tensor) -> torch.Tensor:
            x = hidden.expand(count, -1)  # (K, d)
            for index, (weight, bias) in enumerate(blocks):  # x + SiLU(W x + b), every head at once
                if index == 0:  # all heads start from the same vector: one matrix-vector product
                    pre = torch.addmv(first_bias, first_weight, hidden).view(count, -1)
                else:  # tiny per-head products: a broadcast multiply-and-sum beats bmm here
                    pre = (weight * x[:, None, :]).sum(-1) + bias
                x = F.silu(pre).add_(x)
            return torch.bmm(x.unsqueeze(1), output).squeeze(1)  # (K, 1, d) @ (K, d, vocab)

        return apply


@dataclass(frozen=True)
class MedusaTree:
    """A candidate tree built by :func:`build_tree` (``T`` nodes, node 0 the root).

    Attributes:
        choices: The sorted paths, one per non-root node (node ``i + 1`` is ``choices[i]``).
        topk: Candidates taken from each head.
        attn_mask: ``(T, T)`` bool; node ``i`` may attend to node ``j`` iff ``j`` is ``i``
            or one of its ancestors.
        position_ids: ``(T,)`` depth of each node (added to the cache length).
        tree_indices: ``(T,)`` index of each node's token in the flattened candidates
            ``[root, head0 top-k, head1 top-k, ...]``.
        retrieve_indices: ``(P, depth + 1)`` node indices of each root-to-leaf path,
            padded with ``-1`` (a pad never matches, so it is never accepted).
    """

    choices: tuple[tuple[int, ...], ...]
    topk: int
    attn_mask: torch.Tensor
    position_ids: torch.Tensor
    tree_indices: torch.Tensor
    retrieve_indices: torch.Tensor

    @property
    def size(self) -> int:
        """Number of nodes ``T`` (root included)."""
        return self.attn_mask.shape[0]

    @property
    def depth(self) -> int:
        """Length of the longest path (the number of Medusa heads it needs)."""
        return max(len(choice) for choice in self.choices)


@export("decoding.build_tree")
def build_tree(medusa_choices: Sequence[Sequence[int]], topk: int = 10) -> MedusaTree:
    """Build the tree attention mask, positions and index tables from ``medusa_choices``.

    A choice ``(i_1, ..., i_d)`` is the node reached by taking head 1's ``i_1``-th best
    token, then head 2's ``i_2``-th best, ...; every prefix of a choice must be a choice.

    Args:
        medusa_choices: The tree's non-root nodes as paths of top-k indices.
        topk: Candidates per head (every index must be below it).

    Returns:
        A :class:`MedusaTree`.

    Raises:
        ValueError: If ``medusa_choices`` is empty, has an empty, repeated or
            out-of-range path, or lacks the prefix of a path.
        TypeError: If a path is not a sequence of integers.

    Examples:
        >>> tree = build_tree([[0], [1], [0, 0]])
        >>> tree.position_ids.tolist(), tree.retrieve_indices.tolist()
        ([0, 1, 1, 2], [[0, 1, 3], [0, 2, -1]])
    """
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ValueError(f"topk must be a positive integer, got {topk!r}")
    if not medusa_choices:
        raise ValueError("medusa_choices must contain at least one path")
    paths = []
    for choice in medusa_choices:
        if isinstance(choice, (str, bytes)) or not isinstance(choice, Sequence):
            raise TypeError(f"each choice must be a sequence of ints, got {choice!r}")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in choice):
            raise TypeError(f"each choice must be a sequence of ints, got {choice!r}")
        path = tuple(choice)
        if not path:
            raise ValueError("a choice must not be empty (the root is implicit)")
        if any(not 0 <= i < topk for i in path):
            raise ValueError(f"choice {list(path)} has an index outside [0, topk={topk})")
        paths.append(path)
    if len(set(paths)) != len(paths):
        raise ValueError("medusa_choices contains a repeated path")
    known = set(paths)
    for path in paths:
        if len(path) > 1 and path[:-1] not in known:
            raise ValueError(f"choice {list(path)} needs its prefix {list(path[:-1])} in medusa_choices")
    paths.sort(key=lambda p: (len(p), p))
    node_of = {(): 0} | {path: index + 1 for index, path in enumerate(paths)}
    size = len(paths) + 1

    attn_mask = torch.eye(size, dtype=torch.bool)
    attn_mask[:, 0] = True  # every node sees the root
    position_ids = torch.zeros(size, dtype=torch.long)
    tree_indices = torch.zeros(size, dtype=torch.long)
    for path, node in node_of.items():
        if not path:
            continue
        for cut in range(1, len(path)):
            attn_mask[node, node_of[path[:cut]]] = True  # ancestors
        position_ids[node] = len(path)
        tree_indices[node] = 1 + (len(path) - 1) * topk + path[-1]  # head len(path)-1, rank path[-1]

    leaves = [path for path in paths if not any(other[: len(path)] == path and other != path for other in paths)]
    depth = max(len(path) for path in paths)
    retrieve = torch.full((len(leaves), depth + 1), -1, dtype=torch.long)
    for row, leaf in enumerate(sorted(leaves)):
        nodes = [0] + [node_of[leaf[:cut]] for cut in range(1, len(leaf) + 1)]
        retrieve[row, : len(nodes)] = torch.tensor(nodes)
    return MedusaTree(tuple(paths), topk, attn_mask, position_ids, tree_indices, retrieve)


@dataclass
class MedusaStats:
    """Per-step statistics of :func:`medusa_generate`.

    Attributes:
        accepted: Tokens appended at each step (root included, so at least 1).
        forward_passes: Model forward passes, prefill included.
        seconds: Wall-clock time of the whole generation.
    """

    accepted: list[int] = field(default_factory=list)
    forward_passes: int = 0
    seconds: float = 0.0

    @property
    def mean_accepted(self) -> float:
        """Mean tokens appended per decoding step."""
        return sum(self.accepted) / max(1, len(self.accepted))


@export("decoding.medusa_generate")
@torch.no_grad()
def medusa_generate(
    model: GPT,
    heads: MedusaHeads,
    prompt_ids: torch.Tensor | Sequence[int],
    max_new_tokens: int,
    tree: MedusaTree,
    acceptance: str = "greedy",
    posterior_threshold: float = 0.09,
    posterior_alpha: float = 0.3,
    temperature: float = 0.0,
    seed: int | None = None,
    on_step: Callable[[torch.Tensor, KVCache], None] | None = None,
) -> tuple[torch.Tensor, MedusaStats]:
    """Generate with Medusa heads and tree verification, reusing the KV cache.

    Shape:
        prompt_ids: ``(seq,)``; result ids: ``(seq + max_new_tokens,)``.

    Args:
        model: The base model (frozen).
        heads: Medusa heads for it (at least ``tree.depth`` of them).
        prompt_ids: The prompt, one sequence.
        max_new_tokens: Tokens to generate.
        tree: The candidate tree (:func:`build_tree`).
        acceptance: ``"greedy"`` (lossless) or ``"typical"``.
        posterior_threshold: Typical acceptance's hard threshold (epsilon).
        posterior_alpha: Typical acceptance's entropy factor (delta); the threshold is
            ``min(posterior_threshold, posterior_alpha * exp(-H(p)))``.
        temperature: Sampling temperature of typical acceptance; ``0`` makes typical
            acceptance identical to greedy.
        seed: Seed for sampling the root token when ``temperature > 0``.
        on_step: Called after every step with the ids so far and the KV cache, which
            then holds exactly those ids' keys and values (for inspection and tests).

    Returns:
        The prompt followed by the new ids, and a :class:`MedusaStats`.

    Raises:
        ValueError: On an unknown ``acceptance``, too few heads for the tree, heads
            that do not fit the model, a negative temperature, or a generation that
            would not fit in ``max_len`` (prompt + new tokens + tree size).
    """
    if acceptance not in ("greedy", "typical"):
        raise ValueError(f"acceptance must be 'greedy' or 'typical', got {acceptance!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    config = model.config
    if heads.d_model != config.d_model or heads.vocab_size != config.vocab_size:
        raise ValueError(
            f"heads are for d_model={heads.d_model}, vocab_size={heads.vocab_size}; "
            f"the model has d_model={config.d_model}, vocab_size={config.vocab_size}"
        )
    if heads.num_heads < tree.depth:
        raise ValueError(f"the tree is {tree.depth} deep but there are only {heads.num_heads} Medusa heads")
    device = model.tok_emb.weight.device
    ids = torch.as_tensor(prompt_ids, dtype=torch.long, device=device)
    if ids.dim() != 1 or ids.numel() == 0:
        raise ValueError(f"prompt_ids must be a non-empty 1-D sequence, got shape {tuple(ids.shape)}")
    if ids.numel() + max_new_tokens + tree.size > config.max_len:
        raise ValueError(
            f"prompt ({ids.numel()}) + max_new_tokens ({max_new_tokens}) + tree size ({tree.size}) "
            f"exceeds max_len={config.max_len}"
        )
    typical = acceptance == "typical" and temperature > 0
    generator = torch.Generator(device=device).manual_seed(0 if seed is None else seed) if typical else None
    attn_mask, position_ids, tree_indices, retrieve = (t.to(device) for t in _depth_first(tree))
    guess = heads.frozen(tree.depth)  # only the heads the tree uses
    # one mask buffer for the whole generation: the cache columns are all True, the tree
    # block (ancestors only) moves right as the cache grows
    mask_buffer = torch.zeros(tree.size, config.max_len, dtype=torch.bool, device=device)
    if typical:  # path tables for comparing paths as tensors
        padded = retrieve.clamp(min=0)  # pads point at the root; `valid` keeps them from counting
        paths = _PathTables(padded[:, :-1], padded[:, 1:], retrieve[:, 1:] >= 0, retrieve)
    else:  # parents and chains for the greedy walk
        walk = _TreeWalk.of(attn_mask)
    flat = torch.empty(1 + tree.depth * tree.topk, dtype=torch.long, device=device)  # root, then each head's top-k
    new_ids: list[int] = []
    was_training = model.training
    model.eval()
    stats = MedusaStats()
    start = time.perf_counter()
    try:
        out = model(ids[None], use_cache=True)  # prefill
        stats.forward_passes += 1
        cache: KVCache = out.past_key_values
        logits, hidden = out.logits[0, -1], out.hidden_states[0, -1]
        root = int(sample_next_token(logits, temperature if typical else 0.0, generator=generator))
        past, filled = ids.numel(), 0  # cache length; mask columns already set to True
        while len(new_ids) < max_new_tokens:
            # 1. candidates: the LM head's token (root) and each Medusa head's top-k
            flat[0] = root
            flat[1:] = guess(hidden).topk(tree.topk, dim=-1).indices.flatten()  # (depth, topk) guesses
            tree_tokens = flat[tree_indices]  # (T,)
            # 2. verify all nodes in one pass: cache + tree attention, positions cache + depth
            mask_buffer[:, filled:past] = True  # columns that now hold accepted tokens
            mask_buffer[:, past : past + tree.size] = attn_mask
            filled = past
            out = model(
                tree_tokens[None], past_key_values=cache, position_ids=past + position_ids,
                attention_mask=mask_buffer[:, : past + tree.size], use_cache=True,
            )
            stats.forward_passes += 1
            tree_logits = out.logits[0]  # (T, vocab): prediction after each node
            tokens = tree_tokens.tolist()
            # 3. the longest accepted prefix over all root-to-leaf paths
            if typical:
                path, length = _best_typical_path(
                    tree_tokens, tree_logits, paths, temperature, posterior_threshold, posterior_alpha
                )
                nodes = path[: length + 1].tolist()  # root plus accepted nodes
            else:
                nodes, predictions = walk.greedy(tokens, tree_logits)
                length = len(nodes) - 1
            new_ids += [tokens[node] for node in nodes]
            stats.accepted.append(length + 1)
            # 4. keep exactly the accepted nodes' keys/values, in path order
            cache = _keep_accepted(out.past_key_values, past, nodes)
            past += length + 1
            hidden = out.hidden_states[0, nodes[-1]]
            if typical:
                root = int(sample_next_token(tree_logits[nodes[-1]], temperature, generator=generator))
            else:
                root = predictions[nodes[-1]]  # the model's greedy token after the last accepted one
            if on_step is not None:
                on_step(torch.cat([ids, torch.tensor(new_ids, dtype=torch.long, device=device)]), cache)
    finally:
        model.train(was_training)
    stats.seconds = time.perf_counter() - start
    new = torch.tensor(new_ids[:max_new_tokens], dtype=torch.long, device=device)
    return torch.cat([ids, new]), stats


def _depth_first(tree: MedusaTree) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The tree's tables with its nodes renumbered in depth-first (pre-)order.

    :func:`build_tree` numbers nodes by depth. Verification works with any numbering in
    which ancestors come first; depth-first order also makes the all-best-guesses path
    ``[0], [0, 0], ...`` (the one accepted most often) the nodes ``0, 1, 2, ...``, which
    then already sit where the accepted keys and values belong in the cache.

    Returns:
        ``attn_mask``, ``position_ids``, ``tree_indices`` and ``retrieve_indices`` in
        the new numbering (paths in the same order).
    """
    order = [0] + [1 + tree.choices.index(path) for path in sorted(tree.choices)]  # new -> old
    perm = torch.tensor(order)
    new_of_old = torch.empty_like(perm)
    new_of_old[perm] = torch.arange(perm.numel())
    retrieve = tree.retrieve_indices
    renumbered = torch.where(retrieve >= 0, new_of_old[retrieve.clamp(min=0)], retrieve)
    return tree.attn_mask[perm][:, perm], tree.position_ids[perm], tree.tree_indices[perm], renumbered


class _TreeWalk(NamedTuple):
    """Greedy verification as a walk over the tree in plain Python.

    A tree has a few dozen nodes at most, so after two ``tolist`` calls a Python loop is
    cheaper than the dozen small tensor operations of the path-table version (each costs
    microseconds of dispatch, and decoding runs this every step). Under greedy
    acceptance a node is accepted when its parent is and the model's argmax at the
    parent is the node's token; siblings hold different tokens, so the accepted nodes
    form one chain from the root, and its deepest node ends the accepted path.
    """

    parent: list[int]  # parent of each node (-1 for the root), in an ancestors-first numbering
    depth: list[int]
    chains: list[list[int]]  # the nodes from the root to each node

    @classmethod
    def of(cls, attn_mask: torch.Tensor) -> "_TreeWalk":
        """Read parents from an ancestors-first tree mask (row ``i``: ``i`` and its ancestors)."""
        chains = [torch.nonzero(row).flatten().tolist() for row in attn_mask.cpu()]
        return cls([chain[-2] if len(chain) > 1 else -1 for chain in chains], [len(c) - 1 for c in chains], chains)

    def greedy(self, tokens: list[int], tree_logits: torch.Tensor) -> tuple[list[int], list[int]]:
        """The accepted chain (root first) and the model's argmax token at every node."""
        predictions = tree_logits.argmax(-1).tolist()
        accepted = [True] + [False] * (len(tokens) - 1)
        best = 0
        for node in range(1, len(tokens)):
            parent = self.parent[node]
            if accepted[parent] and predictions[parent] == tokens[node]:
                accepted[node] = True
                if self.depth[node] > self.depth[best]:
                    best = node
        return self.chains[best], predictions


class _PathTables(NamedTuple):
    """Per-tree index tables used at every step, built once per generation."""

    parents: torch.Tensor  # (P, depth) node before each position of each path (pads -> root)
    children: torch.Tensor  # (P, depth) node at each position (pads -> root)
    valid: torch.Tensor  # (P, depth) False where the path is padded
    retrieve: torch.Tensor  # (P, depth + 1) the tree's retrieve indices


def _best_typical_path(
    tree_tokens: torch.Tensor,
    tree_logits: torch.Tensor,
    paths: _PathTables,
    temperature: float,
    threshold: float,
    alpha: float,
) -> tuple[torch.Tensor, int]:
    """Under typical acceptance, the root-to-leaf path with the longest accepted prefix (first on ties).

    Every node's verdict is computed once, on the ``T`` tree logits, and then looked up
    along the paths (nodes are shared by many paths). Unlike greedy acceptance, several
    children of one node may pass, so the paths are compared as tensors.
    """
    candidates = tree_tokens[paths.children]  # (P, depth): token at each child node
    probs = (tree_logits.float() / temperature).softmax(-1)  # (T, vocab)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)
    limit = torch.clamp(alpha * torch.exp(-entropy), max=threshold)  # (T,)
    ok = probs[paths.parents, candidates] > limit[paths.parents]
    ok &= paths.valid  # a pad is never accepted
    accepted = ok.cumprod(dim=1).sum(dim=1)  # length of the accepted prefix per path
    best = int(accepted.argmax())
    return paths.retrieve[best], int(accepted[best])


def _keep_accepted(cache: KVCache, past: int, nodes: list[int]) -> KVCache:
    """The cache of the prefix plus the accepted ``nodes`` (in path order), without copying the prefix.

    The verification pass returned fresh tensors holding ``past`` prefix entries and then
    one entry per tree node. Nodes are numbered so that a path's nodes increase, so an
    accepted node never moves up: the ones not yet in place (often none, or only the
    last) are copied down, in path order, and a view of the front is the new cache.
    """
    end = past + len(nodes)
    for position, node in enumerate(nodes):
        if node != position:  # move this node's entry down to its place in the sequence
            source, target = past + node, past + position
            for k, v in cache:
                k[:, :, target].copy_(k[:, :, source])
                v[:, :, target].copy_(v[:, :, source])
    return tuple((k.narrow(2, 0, end), v.narrow(2, 0, end)) for k, v in cache)


def self_distillation_data(
    model: GPT,
    prompts: Sequence[Sequence[int]],
    length: int,
    temperature: float = 0.0,
    seed: int = 0,
) -> torch.Tensor:
    """The base model's own continuations of ``prompts``, concatenated (Medusa-1 training data).

    Args:
        model: The base model.
        prompts: Token-id prompts.
        length: New tokens per prompt.
        temperature: ``0`` for greedy continuations, else sampling temperature.
        seed: Seed of the sampling.

    Returns:
        A 1-D tensor of ids: each prompt followed by its continuation, one after another.
    """
    pieces = [
        model.generate(list(prompt), length, temperature=temperature, seed=seed + index)
        for index, prompt in enumerate(prompts)
    ]
    return torch.cat(pieces)


@export("decoding.train_medusa_heads")
def train_medusa_heads(
    model: GPT,
    heads: MedusaHeads,
    ids: torch.Tensor,
    steps: int = 300,
    batch_size: int = 16,
    block_size: int = 64,
    learning_rate: float = 1e-3,
    decay: float = 0.8,
    seed: int = 0,
    progress: bool = False,
) -> list[float]:
    """Medusa-1: train the heads on a frozen backbone.

    Head ``k`` (0-based) learns to predict the token ``k + 2`` positions after each
    position from that position's hidden state; the loss of head ``k`` is weighted by
    ``decay ** k`` (later heads are harder and matter less), as in the paper.

    Args:
        model: The frozen base model.
        heads: The heads to train (in place).
        ids: 1-D training ids, e.g. from :func:`self_distillation_data`.
        steps: Optimiser steps.
        batch_size: Windows per step.
        block_size: Tokens per window.
        learning_rate: AdamW learning rate.
        decay: Per-head loss weight factor.
        seed: Seed of the batch sampler.
        progress: Show a progress bar.

    Returns:
        The weighted loss of each step.

    Raises:
        ValueError: If the heads do not fit the model or ``block_size`` leaves no target
            for the last head.
    """
    if heads.d_model != model.config.d_model or heads.vocab_size != model.config.vocab_size:
        raise ValueError("heads must match the model's d_model and vocab_size")
    if block_size <= heads.num_heads + 1:
        raise ValueError(f"block_size must exceed num_heads + 1 = {heads.num_heads + 1}, got {block_size}")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(heads.parameters(), lr=learning_rate)
    weights = [decay**k for k in range(heads.num_heads)]
    model.eval()
    heads.train()
    losses = []
    for _ in tqdm(range(steps), disable=not progress, desc="Medusa heads"):
        inputs, _ = random_batch(ids, batch_size, block_size, generator)
        with torch.no_grad():
            hidden = model(inputs).hidden_states  # (batch, block, d_model), backbone frozen
        logits = heads(hidden)  # (K, batch, block, vocab)
        loss = torch.zeros((), device=hidden.device)
        for k in range(heads.num_heads):
            shift = k + 2  # head k at position t predicts token t + k + 2
            prediction = logits[k, :, :-shift].reshape(-1, heads.vocab_size)
            target = inputs[:, shift:].reshape(-1)
            loss = loss + weights[k] * F.cross_entropy(prediction, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    heads.eval()
    return losses



@export("decoding.head_accuracies")
@torch.no_grad()
def head_accuracies(model: GPT, heads: MedusaHeads, ids: torch.Tensor, topk: int = 10, block_size: int = 128) -> torch.Tensor:
    """How often each head's ``r``-th best guess is right, measured on held-out ids.

    Head ``k`` at position ``t`` guesses the token at ``t + k + 2``; entry ``[k, r]`` is
    the fraction of positions where its ``r``-th most likely token (0-based) is that
    token. The ids are cut into windows of ``block_size`` (a short last window included).

    Shape:
        ids: ``(n,)``; result: ``(num_heads, topk)``.

    Args:
        model: The base model.
        heads: Trained heads for it.
        ids: 1-D token ids, e.g. :func:`self_distillation_data` of prompts not used in training.
        topk: Ranks to measure.
        block_size: Window length fed to the model at once (at most its ``max_len``).

    Returns:
        Float tensor of accuracies in ``[0, 1]``.

    Raises:
        ValueError: If ``ids`` is not 1-D, ``topk`` exceeds the vocabulary, or a window
            is too short to give every head a target.

    Examples:
        >>> # acc = head_accuracies(model, heads, held_out_ids, topk=4); acc[0, 0] is head 0's top-1 accuracy
    """
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
    if not 1 <= topk <= heads.vocab_size:
        raise ValueError(f"topk must be in [1, vocab_size={heads.vocab_size}], got {topk}")
    if not heads.num_heads + 1 < block_size <= model.config.max_len:
        raise ValueError(f"block_size must be in ({heads.num_heads + 1}, max_len={model.config.max_len}], got {block_size}")
    if ids.numel() <= heads.num_heads + 1:
        raise ValueError(f"ids must hold more than num_heads + 1 = {heads.num_heads + 1} tokens, got {ids.numel()}")
    was_training = model.training
    model.eval()
    hits = torch.zeros(heads.num_heads, topk)
    counts = torch.zeros(heads.num_heads)
    try:
        for start in range(0, ids.numel(), block_size):
            window = ids[start : start + block_size]
            if window.numel() <= heads.num_heads + 1:
                break
            guesses = heads(model(window[None]).hidden_states)[:, 0].topk(topk, dim=-1).indices  # (K, L, topk)
            for k in range(heads.num_heads):
                shift = k + 2
                truth = window[shift:, None]  # (L - shift, 1)
                hits[k] += (guesses[k, :-shift] == truth).sum(0).float()
                counts[k] += truth.shape[0]
    finally:
        model.train(was_training)
    return hits / counts[:, None]


@export("decoding.sparse_tree_choices")
def sparse_tree_choices(accuracies: torch.Tensor, num_nodes: int) -> list[list[int]]:
    """The ``num_nodes`` paths with the largest estimated chance of being accepted.

    A path ``(i_1, ..., i_d)`` is accepted only if head 1's ``i_1``-th guess, ..., head
    ``d``'s ``i_d``-th guess are all right; treating heads as independent, its chance is
    ``acc[0, i_1] * ... * acc[d-1, i_d]``. The expected number of tokens a step accepts
    is one (the root) plus the sum of these chances over the tree's nodes, so the best
    tree of a given size holds the paths with the largest chances. A child's chance is
    at most its parent's, so taking paths best-first (a heap over the frontier) always
    yields a valid tree (every prefix present). This is how the Medusa paper builds its
    sparse trees from accuracies measured on a calibration set.

    Args:
        accuracies: ``(num_heads, topk)`` from :func:`head_accuracies`.
        num_nodes: Non-root nodes wanted.

    Returns:
        The paths, sorted by length then lexicographically (input for :func:`build_tree`).

    Raises:
        ValueError: If ``accuracies`` is not a 2-D tensor with values in ``[0, 1]`` or
            ``num_nodes`` is not between 1 and the number of possible paths.

    Examples:
        >>> acc = torch.tensor([[0.6, 0.2], [0.4, 0.1]])
        >>> sparse_tree_choices(acc, 3)
        [[0], [1], [0, 0]]
    """
    if not isinstance(accuracies, torch.Tensor) or accuracies.dim() != 2 or accuracies.numel() == 0:
        raise ValueError(f"accuracies must be a (num_heads, topk) tensor, got {shape_or_type(accuracies)}")
    if bool(((accuracies < 0) | (accuracies > 1)).any()):
        raise ValueError("accuracies must lie in [0, 1]")
    depth, topk = accuracies.shape
    possible = sum(topk**d for d in range(1, depth + 1))
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or not 1 <= num_nodes <= possible:
        raise ValueError(f"num_nodes must be an integer in [1, {possible}], got {num_nodes!r}")
    table = accuracies.double().tolist()
    frontier = [(-table[0][r], (r,)) for r in range(topk)]  # max-heap through negated chances
    heapq.heapify(frontier)
    chosen: list[list[int]] = []
    while len(chosen) < num_nodes:
        negative, path = heapq.heappop(frontier)
        chosen.append(list(path))
        if len(path) < depth:
            for r in range(topk):
                heapq.heappush(frontier, (negative * table[len(path)][r], path + (r,)))
    return sorted(chosen, key=lambda p: (len(p), p))


@export("decoding.expected_accepted_length")
def expected_accepted_length(accuracies: torch.Tensor, medusa_choices: Sequence[Sequence[int]]) -> float:
    """Tokens per step a tree is expected to yield under the independence estimate.

    One for the root (always kept) plus, for every node, the product of the accuracies
    along its path (see :func:`sparse_tree_choices`).

    Args:
        accuracies: ``(num_heads, topk)`` from :func:`head_accuracies`.
        medusa_choices: The tree's paths.

    Returns:
        The estimate, at least 1.

    Raises:
        ValueError: If a path is deeper than the heads or uses a rank beyond ``topk``.

    Examples:
        >>> expected_accepted_length(torch.tensor([[0.5, 0.25], [0.5, 0.5]]), [[0], [1], [0, 0]])
        2.0
    """
    depth, topk = accuracies.shape
    total = 1.0
    for path in medusa_choices:
        if len(path) > depth or any(not 0 <= r < topk for r in path):
            raise ValueError(f"path {list(path)} does not fit accuracies of shape {tuple(accuracies.shape)}")
        chance = 1.0
        for k, r in enumerate(path):
            chance *= float(accuracies[k, r])
        total += chance
    return total
