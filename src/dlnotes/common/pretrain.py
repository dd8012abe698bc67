"""Pretrain the small GPT on the bundled corpus, once per machine.

:func:`pretrained_gpt` trains a tiny character-level model in well under a minute on a
laptop CPU and caches the result in a user cache directory (``$DLNOTES_CACHE``, else
``~/.cache/dlnotes``). The cache key is a hash of everything that determines the
weights: model configuration, training settings, the corpus and the torch version. Later
calls (other chapters, tests, benchmarks) load the file instead of training again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from dlnotes.common.data import corpus, random_batch, train_val_split
from dlnotes.models.gpt import GPT, GPTConfig
from dlnotes.models.tokenizer import CharTokenizer
from dlnotes.foundations.api_export import export

__all__ = ["TrainingConfig", "Pretrained", "cache_dir", "train_language_model", "evaluate_loss", "pretrained_gpt"]


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of :func:`train_language_model`.

    Args:
        steps: Optimiser steps.
        batch_size: Sequences per step.
        block_size: Tokens per sequence.
        learning_rate: Peak AdamW learning rate (cosine decay to 10 % after a warm-up).
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warm-up steps.
        seed: Seed of the initialisation and the batch sampler.
    """

    steps: int = 300
    batch_size: int = 32
    block_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 30
    seed: int = 0


@dataclass
class Pretrained:
    """A trained model with what it needs: tokenizer, configurations, final losses."""

    model: GPT
    tokenizer: CharTokenizer
    config: GPTConfig
    training: TrainingConfig
    train_loss: float
    val_loss: float
    path: Path | None = None


def cache_dir() -> Path:
    """Folder for cached checkpoints: ``$DLNOTES_CACHE`` or ``~/.cache/dlnotes``."""
    return Path(os.environ.get("DLNOTES_CACHE", Path.home() / ".cache" / "dlnotes"))


def train_language_model(
    model: GPT,
    train_ids: torch.Tensor,
    training: TrainingConfig,
    progress: bool = False,
) -> list[float]:
    """Train ``model`` for next-token prediction on random windows of ``train_ids``.

    Args:
        model: The model to train (in place).
        train_ids: 1-D tensor of token ids.
        training: Step count, batch shape, optimiser settings and seed.
        progress: Show a tqdm progress bar.

    Returns:
        The training loss of every step.
    """
    generator = torch.Generator().manual_seed(training.seed)
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": training.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=training.learning_rate,
    )

    def learning_rate_factor(step: int) -> float:
        if step < training.warmup_steps:
            return (step + 1) / training.warmup_steps
        progress_fraction = (step - training.warmup_steps) / max(1, training.steps - training.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * progress_fraction)).item())

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate_factor)
    model.train()
    losses = []
    for _ in tqdm(range(training.steps), disable=not progress, desc="pretraining"):
        inputs, targets = random_batch(train_ids, training.batch_size, training.block_size, generator)
        loss = model(inputs, targets=targets).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def evaluate_loss(model: GPT, ids: torch.Tensor, block_size: int, max_windows: int = 64) -> float:
    """Mean next-token cross-entropy over consecutive windows of ``ids`` (deterministic)."""
    was_training = model.training
    model.eval()
    starts = range(0, len(ids) - block_size - 1, block_size)
    losses = []
    for start in list(starts)[:max_windows]:
        window = ids[start : start + block_size + 1]
        losses.append(model(window[None, :-1], targets=window[None, 1:]).loss.item())
    model.train(was_training)
    return sum(losses) / len(losses)


@export("common.pretrained_gpt")
def pretrained_gpt(
    config: GPTConfig | None = None,
    training: TrainingConfig | None = None,
    text: str | None = None,
    use_cache: bool = True,
    progress: bool = False,
) -> Pretrained:
    """The small GPT trained on the bundled corpus, from the cache when possible.

    Args:
        config: Model configuration; by default 4 layers, 4 heads, width 128, rotary
            positions, ``max_len`` 256, with the corpus' vocabulary.
        training: Training settings (default :class:`TrainingConfig`).
        text: Training text (default :func:`dlnotes.common.data.corpus`).
        use_cache: Load from and save to :func:`cache_dir`.
        progress: Show a progress bar while training.

    Returns:
        A :class:`Pretrained` with the model in eval mode.

    Raises:
        ValueError: If ``config.vocab_size`` does not match the text's alphabet.

    Examples:
        >>> bundle = pretrained_gpt()                                   # doctest: +SKIP
        >>> ids = bundle.tokenizer.encode("alice lives in ")            # doctest: +SKIP
        >>> bundle.tokenizer.decode(bundle.model.generate(ids, 5))      # doctest: +SKIP
        'alice lives in paris'
    """
    text = corpus() if text is None else text
    tokenizer = CharTokenizer(text)
    config = config or GPTConfig(vocab_size=tokenizer.vocab_size)
    if config.vocab_size != tokenizer.vocab_size:
        raise ValueError(f"config.vocab_size={config.vocab_size} but the text has {tokenizer.vocab_size} characters")
    training = training or TrainingConfig()
    key = _cache_key(config, training, text)
    path = cache_dir() / f"gpt-{key}.pt"
    if use_cache and path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model = GPT(config)
        model.load_state_dict(saved["state_dict"])
        model.eval()
        return Pretrained(model, tokenizer, config, training, saved["train_loss"], saved["val_loss"], path)

    torch.manual_seed(training.seed)
    model = GPT(config)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train_ids, val_ids = train_val_split(ids)
    losses = train_language_model(model, train_ids, training, progress=progress)
    train_loss = sum(losses[-20:]) / len(losses[-20:])
    val_loss = evaluate_loss(model, val_ids, training.block_size)
    if use_cache:
        _atomic_save({"state_dict": model.state_dict(), "train_loss": train_loss, "val_loss": val_loss}, path)
    return Pretrained(model, tokenizer, config, training, train_loss, val_loss, path if use_cache else None)


def _cache_key(config: GPTConfig, training: TrainingConfig, text: str) -> str:
    description = {
        "config": config.to_dict(),
        "training": asdict(training),
        "text": hashlib.sha256(text.encode()).hexdigest(),
        "torch": torch.__version__.split("+")[0],
        "format": 1,
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]


def _atomic_save(payload: dict, path: Path) -> None:
    # Write to a temporary file and rename, so parallel test workers never read half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    torch.save(payload, temporary)
    os.replace(temporary, path)
