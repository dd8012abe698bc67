"""GAU and FLASH against a standard transformer: a tiny language model, then layer time vs length.

Part 1 trains three character-level language models of about the same size on the
bundled corpus, once for each of three seeds: a standard transformer (``dlnotes.models.gpt.GPT``, 2 blocks of softmax
attention + MLP), FLASH-Quad (4 GAU layers) and FLASH (4 FLASH layers, chunk 32). The
three take their optimiser steps in turn on the *same* batches, so a slow phase of the
machine hits them alike; the step time reported is the median over steps.

Part 2 times the forward pass of one layer of each kind (a transformer block, a GAU, a
FLASH layer) at growing sequence lengths, alternating, and fits the growth exponent
(time ~ n^a).

Writes ``docs/attention/results/gau_flash.json`` (the lab page plots it) and prints the
Markdown tables pasted into ``docs/attention/gau-flash.md``.

Run: ``python benchmarks/gau_flash.py [--quick] [--threads N]`` (one torch thread by default).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from _harness import machine, markdown_table, median_times, write_results
from dlnotes.attention.gau import FLASH, GAU
from dlnotes.common.data import corpus, random_batch, train_val_split
from dlnotes.common.pretrain import evaluate_loss
from dlnotes.models.gpt import GPT, Block, GPTConfig
from dlnotes.models.tokenizer import CharTokenizer

RESULTS = "docs/attention/results/gau_flash.json"
WIDTH, BLOCK_SIZE, CHUNK, QK_DIM = 64, 128, 32, 32
EXPANSION = 1.75  # e = 112 instead of the paper's 2d = 128, so 4 gated layers weigh what 2 blocks weigh


class UnitLanguageModel(nn.Module):
    """Token embedding, a stack of GAU or FLASH layers (each with its own norm and residual),
    a final LayerNorm and an output head tied to the embedding, like ``GPT``."""

    def __init__(self, vocab_size: int, layers: list[nn.Module]) -> None:
        super().__init__()
        width = layers[0].d_model
        self.tok_emb = nn.Embedding(vocab_size, width)
        nn.init.normal_(self.tok_emb.weight, std=0.02)
        self.layers = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(width)

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor | None = None) -> SimpleNamespace:
        x = self.tok_emb(input_ids)
        for layer in self.layers:
            x = layer(x)
        logits = self.norm(x) @ self.tok_emb.weight.T
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return SimpleNamespace(logits=logits, loss=loss)


def models(vocab_size: int, seed: int) -> dict[str, nn.Module]:
    """The three contenders, seeded; 2 transformer blocks weigh about what 4 GAUs weigh (printed)."""
    made = {}
    torch.manual_seed(seed)
    made["transformer"] = GPT(GPTConfig(vocab_size, n_layer=2, n_head=4, d_model=WIDTH, max_len=BLOCK_SIZE))
    torch.manual_seed(seed)
    made["FLASH-Quad"] = UnitLanguageModel(
        vocab_size, [GAU(WIDTH, EXPANSION, qk_dim=QK_DIM, causal=True) for _ in range(4)]
    )
    torch.manual_seed(seed)
    made["FLASH"] = UnitLanguageModel(
        vocab_size, [FLASH(WIDTH, chunk_size=CHUNK, expansion=EXPANSION, qk_dim=QK_DIM, causal=True) for _ in range(4)]
    )
    return made


def train_all(steps: int, batch_size: int, seeds: list[int], learning_rate: float = 3e-3, warmup: int = 20) -> dict:
    """Train the three models once per seed; per-seed losses, median step time over all steps."""
    runs = [train_once(steps, batch_size, seed, learning_rate, warmup) for seed in seeds]
    summary = {}
    for name in runs[0]:
        summary[name] = {
            "parameters": runs[0][name]["parameters"],
            "step_ms": 1e3 * statistics.median(t for run in runs for t in run[name]["seconds"]),
            "final_train_loss": [run[name]["final_train_loss"] for run in runs],
            "val_loss": [run[name]["val_loss"] for run in runs],
            "losses": [run[name]["losses"] for run in runs],
        }
    settings = {"steps": steps, "batch_size": batch_size, "block_size": BLOCK_SIZE, "width": WIDTH,
                "learning_rate": learning_rate, "chunk_size": CHUNK, "qk_dim": QK_DIM, "expansion": EXPANSION,
                "seeds": seeds}
    return {"settings": settings, "models": summary}


def train_once(steps: int, batch_size: int, seed: int, learning_rate: float, warmup: int) -> dict:
    text = corpus()
    tokenizer = CharTokenizer(text)
    train_ids, val_ids = train_val_split(torch.tensor(tokenizer.encode(text)))
    contenders = models(tokenizer.vocab_size, seed)
    optimizers, schedulers = {}, {}

    def factor(step: int) -> float:  # linear warm-up, cosine decay to 10 %
        if step < warmup:
            return (step + 1) / warmup
        fraction = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * fraction))

    for name, model in contenders.items():
        optimizers[name] = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
        schedulers[name] = torch.optim.lr_scheduler.LambdaLR(optimizers[name], factor)
        model.train()
    losses = {name: [] for name in contenders}
    seconds = {name: [] for name in contenders}
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        inputs, targets = random_batch(train_ids, batch_size, BLOCK_SIZE, generator)  # shared by all three
        for name, model in contenders.items():
            start = time.perf_counter()
            loss = model(inputs, targets=targets).loss
            optimizers[name].zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizers[name].step()
            schedulers[name].step()
            seconds[name].append(time.perf_counter() - start)
            losses[name].append(round(loss.item(), 4))
    return {
        name: {
            "parameters": sum(p.numel() for p in model.parameters()),
            "seconds": seconds[name],
            "final_train_loss": statistics.fmean(losses[name][-20:]),
            "val_loss": evaluate_loss(model, val_ids, BLOCK_SIZE, max_windows=32),
            "losses": losses[name],
        }
        for name, model in contenders.items()
    }


def layer_times(lengths: list[int], repeats: int) -> list[dict]:
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=2, n_layer=1, n_head=4, d_model=WIDTH, max_len=max(lengths))
    block = Block(config).eval()
    gau = GAU(WIDTH, qk_dim=QK_DIM, causal=True).eval()
    flash = FLASH(WIDTH, chunk_size=CHUNK * 4, qk_dim=QK_DIM, causal=True).eval()
    points = []
    for n in lengths:
        x = torch.randn(1, n, WIDTH)
        positions = torch.arange(n)[None]
        mask = torch.ones(n, n, dtype=torch.bool).tril()
        with torch.no_grad():
            functions = {
                "transformer block": lambda: block(x, positions, mask, None),
                "GAU": lambda: gau(x),
                "FLASH": lambda: flash(x),
            }
            points.append({"n": n, "seconds": median_times(functions, repeats=repeats)})
    return points


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) against log(x)."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def render(results: dict) -> str:
    """The two Markdown tables the chapter shows."""
    trained = results["training"]["models"]
    def spread(values: list[float]) -> str:
        return f"{statistics.fmean(values):.3f} ± {statistics.pstdev(values):.3f}"

    rows = [
        [name, f"{entry['parameters']:,}", f"{entry['step_ms']:.0f}", spread(entry["final_train_loss"]),
         spread(entry["val_loss"]), ", ".join(f"{value:.3f}" for value in entry["val_loss"])]
        for name, entry in trained.items()
    ]
    header = ["model", "parameters", "step (ms, median)", "train loss (last 20)", "val loss", "val loss per seed"]
    first = markdown_table(header, rows)
    points = results["layer_times"]
    names = list(points[0]["seconds"])
    header = ["n"] + [f"{name} (ms)" for name in names]
    rows = [[point["n"]] + [f"{1e3 * point['seconds'][name]:.1f}" for name in names] for point in points]
    rows.append(["growth exponent"] + [f"{results['exponents'][name]:.2f}" for name in names])
    return first + "\n\n" + markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps and short lengths (smoke test)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps, batch_size, seeds = (20, 4, [0]) if args.quick else (200, 16, [0, 1, 2])
    lengths = [128, 256, 512] if args.quick else [256, 512, 1024, 2048, 4096]
    repeats = 2 if args.quick else 15

    results = {"training": train_all(steps, batch_size, seeds)}
    points = layer_times(lengths, repeats)
    names = list(points[0]["seconds"])
    exponents = {name: slope([p["n"] for p in points], [p["seconds"][name] for p in points]) for name in names}
    results.update(layer_times=points, exponents=exponents)
    info = machine()
    print(f"machine: {info['cpu']} ({info['cores']} threads), torch {info['torch']}\n")
    print(render(results))
    if not args.quick:
        print("\nwrote", write_results(RESULTS, results))


if __name__ == "__main__":
    main()
