"""Selective copying and induction heads: a Mamba LM against an LTI (S4D) LM of about the same size.

Trains :class:`dlnotes.ssm.mamba.MambaLM` and :class:`dlnotes.ssm.s4.S4DLM` (two layers
each, parameter counts within a few percent), plus an S4D model of twice the size, on
the two synthetic tasks of the Mamba paper (:mod:`dlnotes.ssm.tasks`) at toy size, with
the same seeds, batches, optimiser and step budget. Records the loss and held-out accuracy curves, the final accuracies,
and, for induction heads, the accuracy on sequences longer than those seen in
training. Prints a Markdown table and writes ``docs/ssm/results/ssm_tasks.json``, which
the chapter and its lab render.

Run: ``python benchmarks/ssm_tasks.py [--quick] [--no-write] [--progress]`` (about six
minutes on one CPU core, most of it the Mamba runs; ``--quick`` is a smoke test of a
few steps that writes nothing).
"""

from __future__ import annotations

import argparse
import time

import torch

from _harness import machine, markdown_table, write_results
from dlnotes.ssm.mamba import MambaConfig, MambaLM
from dlnotes.ssm.s4 import S4DLM
from dlnotes.ssm.tasks import InductionHeads, SelectiveCopying, evaluate_on_task, induction_heads, train_on_task

RESULTS = "docs/ssm/results/ssm_tasks.json"
SEED = 0
VOCAB = 16
TASKS = {
    "selective copying": SelectiveCopying(body_length=32, num_tokens=4, vocab_size=VOCAB),
    "induction heads": InductionHeads(length=32, vocab_size=VOCAB),
}
#: Optimiser steps per task (each model gets the same budget on a task).
STEPS = {"selective copying": 2000, "induction heads": 1000}
#: The models: a kind and its constructor arguments. Mamba's and the first S4D's widths
#: are chosen so that their parameter counts match; the second S4D is the chapter's
#: default width, with about twice the parameters.
MODELS = {
    "Mamba": ("mamba", {"d_model": 32, "n_layer": 2, "d_state": 16, "scan_method": "sequential"}),
    "S4D": ("s4d", {"d_model": 36, "n_layer": 2, "d_state": 64}),
    "S4D, wide": ("s4d", {"d_model": 64, "n_layer": 2, "d_state": 64}),
}
#: The two models whose parameter counts match (within 5 %).
MATCHED = ("Mamba", "S4D")
TRAINING = {"batch_size": 32, "learning_rate": 6e-3, "eval_every": 50, "eval_size": 512}
#: Induction heads is also scored on these multiples of the training length.
LENGTH_MULTIPLES = [1, 2, 4, 8, 16]


def build(name: str) -> torch.nn.Module:
    """A freshly initialised model (seeded) of the given name."""
    torch.manual_seed(SEED)
    kind, settings = MODELS[name]
    if kind == "mamba":
        return MambaLM(MambaConfig(vocab_size=VOCAB, **settings))
    return S4DLM(VOCAB, **settings)


def parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def accuracy_in_slices(model: torch.nn.Module, batch, rows: int = 32) -> float:
    """Token accuracy over a large batch, scored ``rows`` sequences at a time (bounded memory)."""
    correct = 0.0
    for start in range(0, len(batch.inputs), rows):
        piece = type(batch)(*(tensor[start : start + rows] for tensor in batch))
        correct += evaluate_on_task(model, piece)[0] * piece.mask.sum().item()
    return correct / batch.mask.sum().item()


def run(task_name: str, model_name: str, training: dict, progress: bool) -> dict:
    task = TASKS[task_name]
    model = build(model_name)
    start = time.perf_counter()
    result = train_on_task(model, task, seed=SEED, progress=progress, **training)
    seconds = time.perf_counter() - start
    record = {
        "task": task_name,
        "model": model_name,
        "parameters": parameters(model),
        "steps": training["steps"],
        "seconds": seconds,
        "accuracy": result.accuracy,
        "sequence_accuracy": result.sequence_accuracy,
        "eval_steps": result.eval_steps,
        "eval_accuracy": result.eval_accuracy,
        "losses": [round(loss, 4) for loss in result.losses],
    }
    if isinstance(task, InductionHeads):  # longer sequences than in training, fresh draws
        record["length_generalisation"] = {
            str(task.length * k): accuracy_in_slices(
                model, induction_heads(training["eval_size"], task.length * k, task.vocab_size, seed=SEED + 100 + k)
            )
            for k in LENGTH_MULTIPLES
        }
    return record


def chance(task_name: str) -> float:
    """Accuracy of guessing uniformly among the data tokens."""
    task = TASKS[task_name]
    return 1 / (task.vocab_size - (2 if isinstance(task, SelectiveCopying) else 1))


def render(results: dict) -> str:
    """The Markdown the chapter shows, rendered from a results dictionary."""
    header = ["task", "model", "parameters", "steps", "token accuracy", "sequence accuracy", "chance", "train time (s)"]
    rows = [
        [
            run["task"],
            run["model"],
            f"{run['parameters']:,}",
            run["steps"],
            f"{100 * run['accuracy']:.1f} %",
            f"{100 * run['sequence_accuracy']:.1f} %",
            f"{100 * results['chance'][run['task']]:.1f} %",
            f"{run['seconds']:.0f}",
        ]
        for run in results["runs"]
    ]
    training = results["training"]
    lines = [
        f"Batches of {training['batch_size']}, AdamW at peak learning rate "
        f"{training['learning_rate']}, accuracy on {training['eval_size']} held-out sequences "
        f"(1 CPU thread, {results['machine_cpu']}):",
        "",
        markdown_table(header, rows),
    ]
    induction = [run for run in results["runs"] if "length_generalisation" in run]
    if induction:
        lengths = list(induction[0]["length_generalisation"])
        lines += [
            "",
            "Induction heads, trained at length "
            f"{lengths[0]}, scored on longer sequences (token accuracy):",
            "",
            markdown_table(
                ["model"] + [f"L = {length}" for length in lengths],
                [[run["model"]] + [f"{100 * run['length_generalisation'][n]:.1f} %" for n in lengths] for run in induction],
            ),
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps only (a smoke test); writes nothing")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update the results file")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    args = parser.parse_args()
    torch.set_num_threads(1)
    training = dict(TRAINING, eval_every=5, eval_size=32) if args.quick else TRAINING

    runs = []
    for task_name in TASKS:
        steps = 10 if args.quick else STEPS[task_name]
        for model_name in MODELS:
            runs.append(run(task_name, model_name, dict(training, steps=steps), args.progress))
            print(f"{task_name:>18} | {model_name:>9}: accuracy {runs[-1]['accuracy']:.3f} in {runs[-1]['seconds']:.0f} s")
    info = machine()
    results = {
        "seed": SEED,
        "vocab_size": VOCAB,
        "tasks": {name: {k: v for k, v in vars(task).items() if k != "name"} for name, task in TASKS.items()},
        "models": {name: {"kind": kind, **settings} for name, (kind, settings) in MODELS.items()},
        "matched": list(MATCHED),
        "steps": STEPS,
        "training": training,
        "threads": 1,
        "machine_cpu": info["cpu"],
        "chance": {name: chance(name) for name in TASKS},
        "runs": runs,
    }
    print(f"\nmachine: {info['cpu']}, torch {info['torch']}, 1 thread\n")
    print(render(results))
    if not args.no_write and not args.quick:
        path = write_results(RESULTS, results)
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
