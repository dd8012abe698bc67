"""Full fine-tuning against adapters, prefix tuning, prompt tuning and LoRA on the small GPT.

Each method adapts the same pretrained model (:func:`dlnotes.common.pretrain.pretrained_gpt`)
to text about six new people in a partly new sentence pattern
(:func:`dlnotes.finetune.task.new_facts_text`), with the same steps and batches. The
script prints one Markdown table (trainable parameters, training memory, step time,
validation losses, recall of the new facts) and writes it, with every training curve,
to ``docs/finetune/results/peft_comparison.json`` for the chapters and the lab page.

Training memory is *counted*, not sampled from the process: the bytes of parameters,
gradients and AdamW states plus every tensor autograd saves for the backward pass
(:func:`dlnotes.finetune.memory.measure_training_memory`). Step times are medians of
alternating repeats in one process (:func:`_harness.median_times`).

Run: ``python benchmarks/peft_comparison.py [--quick] [--steps N]``
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from _harness import machine, markdown_table, median_times, write_results
from dlnotes.common.data import corpus, random_batch, train_val_split
from dlnotes.common.pretrain import TrainingConfig, evaluate_loss, pretrained_gpt, train_language_model
from dlnotes.finetune.adapter import add_adapters
from dlnotes.finetune.lora import apply_lora, count_parameters
from dlnotes.finetune.memory import measure_training_memory
from dlnotes.finetune.prefix import PrefixTuning, PromptTuning
from dlnotes.finetune.task import fact_recall, new_facts_text

RESULTS = "docs/finetune/results/peft_comparison.json"
BATCH, BLOCK = 16, 64
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"]

#: method -> (how to wrap a copy of the pretrained model, learning rate, description)
METHODS = {
    "full fine-tuning": (lambda model, tok: model, 1e-3, "every parameter"),
    "adapter": (lambda model, tok: add_adapters(model, bottleneck=16), 1e-2, "Houlsby, bottleneck 16 after o_proj and down_proj"),
    "prefix": (lambda model, tok: PrefixTuning(model, prefix_length=10, hidden=128), 1e-2, "10 virtual tokens, MLP width 128"),
    "prompt": (
        lambda model, tok: PromptTuning(model, num_virtual_tokens=10, init_ids=tok.encode("facts about")),
        3e-2,
        "10 soft-prompt vectors, initialised from text",
    ),
    "lora": (lambda model, tok: apply_lora(model, ALL_LINEAR, r=8, alpha=16), 1e-2, "r 8, alpha 16, all six linear layers"),
}


def build(method: str, bundle) -> torch.nn.Module:
    wrap = METHODS[method][0]
    return wrap(copy.deepcopy(bundle.model), bundle.tokenizer)


def optimizer_for(tuned: torch.nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in tuned.parameters() if p.requires_grad], lr=learning_rate, weight_decay=0.0)


def delta_spectra(base: torch.nn.Module, tuned: torch.nn.Module) -> dict[str, list[float]]:
    """Singular values of the full fine-tuning delta of every linear weight in block 1,
    and of a random matrix with the shape and norm of the v_proj delta (the reference)."""
    spectra = {}
    tuned_weights = dict(tuned.named_parameters())
    for name, weight in base.named_parameters():
        if name.startswith("blocks.1.") and name.endswith("proj.weight"):
            delta = (tuned_weights[name] - weight).detach()
            spectra[name] = torch.linalg.svdvals(delta).tolist()
    reference = dict(base.named_parameters())["blocks.1.attn.v_proj.weight"]
    delta = (tuned_weights["blocks.1.attn.v_proj.weight"] - reference).detach()
    noise = torch.randn(delta.shape, generator=torch.Generator().manual_seed(0))
    spectra["random (v_proj shape and norm)"] = torch.linalg.svdvals(noise * delta.norm() / noise.norm()).tolist()
    return spectra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps, no results file (a smoke test)")
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning steps per method")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update the results file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = 5 if args.quick else args.steps

    bundle = pretrained_gpt()
    tokenizer = bundle.tokenizer
    train_ids = torch.tensor(tokenizer.encode(new_facts_text(20_000, seed=1)))
    val_ids = torch.tensor(tokenizer.encode(new_facts_text(5_000, seed=2)))
    _, old_val_ids = train_val_split(torch.tensor(tokenizer.encode(corpus())))
    batch = random_batch(train_ids, BATCH, BLOCK, torch.Generator().manual_seed(0))

    base_row = {
        "val_loss": evaluate_loss(bundle.model, val_ids, BLOCK),
        "old_val_loss": evaluate_loss(bundle.model, old_val_ids, BLOCK),
        "fact_recall": fact_recall(bundle.model, tokenizer),
    }

    # Memory (counted) and step time (alternating medians), each on a fresh copy.
    memory, step_functions = {}, {}
    for method, (_, learning_rate, _) in METHODS.items():
        tuned = build(method, bundle)
        optimizer = optimizer_for(tuned, learning_rate)
        memory[method] = measure_training_memory(tuned, lambda: tuned(batch[0], targets=batch[1]).loss, optimizer)

        def step(tuned=tuned, optimizer=optimizer) -> None:
            loss = tuned(batch[0], targets=batch[1]).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        step_functions[method] = step
    seconds = median_times(step_functions, repeats=3 if args.quick else 7)

    rows = {}
    for method, (_, learning_rate, description) in METHODS.items():
        tuned = build(method, bundle)
        trainable, total = count_parameters(tuned)
        training = TrainingConfig(
            steps=steps, batch_size=BATCH, block_size=BLOCK, learning_rate=learning_rate, weight_decay=0.0, warmup_steps=min(20, steps), seed=1
        )
        start = time.perf_counter()
        losses = train_language_model(tuned, train_ids, training)
        rows[method] = {
            "description": description,
            "learning_rate": learning_rate,
            "trainable_parameters": trainable,
            "total_parameters": total,
            "memory_bytes": vars(memory[method]) | {"total": memory[method].total},
            "step_seconds": seconds[method],
            "train_seconds": time.perf_counter() - start,
            "val_loss": evaluate_loss(tuned, val_ids, BLOCK),
            "old_val_loss": evaluate_loss(tuned, old_val_ids, BLOCK),
            "fact_recall": fact_recall(tuned, tokenizer),
            "train_losses": losses,
        }
        print(f"{method}: val {rows[method]['val_loss']:.3f}, recall {rows[method]['fact_recall']:.2f}", flush=True)
        if method == "full fine-tuning":
            spectra = delta_spectra(bundle.model, tuned)

    results = {
        "task": "new_facts_text(20_000, seed=1) for training, seed=2 for validation",
        "steps": steps,
        "batch_size": BATCH,
        "block_size": BLOCK,
        "pretrained": {"config": bundle.config.to_dict(), **base_row},
        "methods": rows,
        "full_delta_spectra": spectra,
    }
    info = machine()
    print(f"\nmachine: {info['cpu']}, torch {info['torch']}, 1 thread\n")
    print(render(results))
    if not args.no_write and not args.quick:
        path = write_results(RESULTS, results)
        print(f"\nwrote {path}; paste the table above into the chapters")


def render(results: dict) -> str:
    """The Markdown table the chapters show, rendered from a results dictionary."""
    rows = results["methods"]
    full = rows["full fine-tuning"]
    header = [
        "method", "learning rate", "trainable params", "% of model", "training memory (KiB)", "memory vs full",
        "step time (ms)", "val loss", "old-text val loss", "facts recalled",
    ]
    base = results["pretrained"]
    table = [["pretrained, no tuning", "", 0, "0", "", "", "", f"{base['val_loss']:.3f}", f"{base['old_val_loss']:.3f}", f"{base['fact_recall']:.0%}"]]
    for method, row in rows.items():
        table.append(
            [
                method,
                f"{row['learning_rate']:g}",
                f"{row['trainable_parameters']:,}",
                f"{100 * row['trainable_parameters'] / full['total_parameters']:.2f}",
                f"{row['memory_bytes']['total'] / 1024:,.0f}",
                f"{row['memory_bytes']['total'] / full['memory_bytes']['total']:.2f}",
                f"{1e3 * row['step_seconds']:.0f}",
                f"{row['val_loss']:.3f}",
                f"{row['old_val_loss']:.3f}",
                f"{row['fact_recall']:.0%}",
            ]
        )
    return (
        f"{results['steps']} AdamW steps of {results['batch_size']} x {results['block_size']} tokens per method.\n\n"
        + markdown_table(header, table)
    )


if __name__ == "__main__":
    main()
