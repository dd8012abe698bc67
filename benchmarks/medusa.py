"""Medusa against plain greedy decoding on the pretrained small GPT.

Trains Medusa-1 heads on the frozen model's own greedy continuations (self-distillation),
then, for several candidate trees, generates from the same prompts with plain greedy
decoding (KV cache, one token per forward pass) and with Medusa, alternating the two,
and reports: mean tokens accepted per step, forward passes per generated token,
tokens/s of both and the speed-up. Every Medusa output is checked to be identical to the
greedy one. Writes ``docs/decoding/results/medusa.json`` for the chapter.

Run: ``python benchmarks/medusa.py [--quick]``
"""

from __future__ import annotations

import argparse
import random

import torch

from _harness import machine, markdown_table, median_times, write_results
from dlnotes.common.data import corpus
from dlnotes.common.pretrain import pretrained_gpt
from dlnotes.decoding.medusa import (
    MedusaHeads,
    build_tree,
    expected_accepted_length,
    head_accuracies,
    medusa_generate,
    self_distillation_data,
    sparse_tree_choices,
    train_medusa_heads,
)

RESULTS = "docs/decoding/results/medusa.json"
TOPK = 6  # candidates per head for the hand-made trees (which use at most 4) and the sparse ones
SPARSE_SIZES = (8, 16)  # non-root nodes of the trees built from measured head accuracies

TREES = {
    "chain of 3": [[0], [0, 0], [0, 0, 0]],
    "chain of 4": [[0], [0, 0], [0, 0, 0], [0, 0, 0, 0]],
    "small tree (10 nodes)": [[0], [1], [2], [0, 0], [0, 1], [1, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0, 0]],
    "wide tree (21 nodes)": (
        [[i] for i in range(4)]
        + [[0, i] for i in range(4)]
        + [[1, i] for i in range(2)]
        + [[0, 0, i] for i in range(3)]
        + [[0, 1, 0], [1, 0, 0]]
        + [[0, 0, 0, i] for i in range(2)]
        + [[0, 0, 0, 0, 0]]
    ),
}


def prompts(tokenizer, count: int, length: int, seed: int) -> list[list[int]]:
    """Random snippets of the held-out end of the corpus, cut at word starts."""
    text = corpus()
    tail = text[int(0.9 * len(text)) :]
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        start = rng.randrange(0, len(tail) - length)
        if start == 0 or tail[start - 1] == " ":
            out.append(tokenizer.encode(tail[start : start + length]))
    return out


def render(results: dict) -> str:
    header = [
        "tree", "nodes", "estimated accepted / step", "mean accepted / step", "forward passes / token",
        "greedy tok/s", "Medusa tok/s", "speed-up",
    ]  # fmt: skip
    rows = [
        [
            r["tree"], r["nodes"], f"{r['estimated_accepted']:.2f}", f"{r['mean_accepted']:.2f}", f"{r['passes_per_token']:.2f}",
            f"{r['greedy_tokens_per_s']:.0f}", f"{r['medusa_tokens_per_s']:.0f}", f"{r['speedup']:.2f}x",
        ]
        for r in results["trees"]
    ]
    return markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer prompts and training steps (a smoke test)")
    parser.add_argument("--no-write", action="store_true", help="do not update the results file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    bundle = pretrained_gpt()
    model, tokenizer = bundle.model, bundle.tokenizer
    training_prompts = prompts(tokenizer, 16 if args.quick else 256, 12, seed=1)
    data = self_distillation_data(model, training_prompts, length=120)
    heads = MedusaHeads(model.config.d_model, model.config.vocab_size, num_heads=5)
    losses = train_medusa_heads(
        model, heads, data, steps=60 if args.quick else 3000, batch_size=16, block_size=64, learning_rate=3e-3
    )
    # Calibration: each head's top-k accuracy on continuations of prompts used for neither
    # training nor testing; the sparse trees hold the paths most likely to be accepted.
    calibration = self_distillation_data(model, prompts(tokenizer, 8 if args.quick else 64, 12, seed=3), length=120)
    accuracies = head_accuracies(model, heads, calibration, topk=TOPK)
    trees = dict(TREES) | {f"sparse ({n + 1} nodes)": sparse_tree_choices(accuracies, n) for n in SPARSE_SIZES}
    test_prompts = prompts(tokenizer, 3 if args.quick else 8, 16, seed=2)
    new_tokens = 60 if args.quick else 160

    def greedy_all() -> list[torch.Tensor]:
        return [model.generate(p, new_tokens) for p in test_prompts]

    reference = greedy_all()
    rows = []
    for name, choices in trees.items():
        tree = build_tree(choices, topk=TOPK)
        outputs = [medusa_generate(model, heads, p, new_tokens, tree) for p in test_prompts]
        for (ids, _), expected in zip(outputs, reference):
            assert torch.equal(ids, expected), f"Medusa output differs from greedy with tree {name!r}"
        accepted = [a for _, stats in outputs for a in stats.accepted]
        passes = sum(stats.forward_passes for _, stats in outputs)
        seconds = median_times(
            {"greedy": greedy_all, "medusa": lambda t=tree: [medusa_generate(model, heads, p, new_tokens, t) for p in test_prompts]},
            repeats=1 if args.quick else 3,
        )
        total = new_tokens * len(test_prompts)
        rows.append(
            {
                "tree": name,
                "nodes": tree.size,
                "choices": [list(path) for path in choices],
                "estimated_accepted": expected_accepted_length(accuracies, choices),
                "mean_accepted": sum(accepted) / len(accepted),
                "passes_per_token": passes / total,
                "greedy_tokens_per_s": total / seconds["greedy"],
                "medusa_tokens_per_s": total / seconds["medusa"],
                "speedup": seconds["greedy"] / seconds["medusa"],
            }
        )
    results = {
        "model": {"parameters": model.num_parameters(), **bundle.config.to_dict()},
        "heads": {
            "num_heads": heads.num_heads,
            "final_loss": sum(losses[-20:]) / len(losses[-20:]),
            "accuracies": [[round(a, 4) for a in row] for row in accuracies.tolist()],
        },
        "prompts": len(test_prompts),
        "new_tokens": new_tokens,
        "trees": rows,
    }
    info = machine()
    print(f"machine: {info['cpu']}, torch {info['torch']}, 1 thread; {len(test_prompts)} prompts x {new_tokens} tokens\n")
    print(render(results))
    if not args.no_write and not args.quick:
        print(f"\nwrote {write_results(RESULTS, results)}")


if __name__ == "__main__":
    main()
