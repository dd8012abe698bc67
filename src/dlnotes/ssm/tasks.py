"""Synthetic tasks that separate selective models from time-invariant ones, and a loop to train on them.

Gu and Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", 2023
(https://arxiv.org/abs/2312.00752), Section 3.1 and 4.1, use two toy tasks:

* **Selective copying.** A sequence of noise tokens hides ``num_tokens`` data tokens at
  random positions; then come ``num_tokens`` marker tokens, and at the marker positions
  the model must output the data tokens in their order of appearance. Where the data
  sits changes from sequence to sequence, so a fixed convolution kernel (an LTI model)
  cannot simply read fixed positions: the model has to decide, from the content, what to
  keep and what to ignore.
* **Induction heads.** A sequence of random tokens contains a trigger token once, followed
  by some token ``b``; the sequence ends with the trigger again, and the model must
  output ``b`` there (associative recall: "after the trigger came ``b`` last time").

Vocabulary layout (``vocab_size`` token ids in all):

* selective copying: 0 = noise, 1 = marker, data tokens ``2 .. vocab_size - 1``;
* induction heads: 0 = trigger, data tokens ``1 .. vocab_size - 1``.

Every generator returns a :class:`TaskBatch` ``(inputs, targets, mask)``: ``inputs`` are
the token ids fed to the model, ``targets`` the token expected at each position where
``mask`` is true and :data:`IGNORE_INDEX` elsewhere (so ``F.cross_entropy`` skips them by
default). :func:`train_on_task` trains any model mapping ``(batch, L)`` ids to
``(batch, L, vocab)`` logits on fresh batches and reports loss and accuracy curves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from dlnotes._checks import check_positive_ints as _check_positive
from dlnotes.foundations.api_export import export

__all__ = [
    "IGNORE_INDEX",
    "MARKER_TOKEN",
    "NOISE_TOKEN",
    "TRIGGER_TOKEN",
    "InductionHeads",
    "SelectiveCopying",
    "TaskBatch",
    "TrainingResult",
    "evaluate_on_task",
    "induction_heads",
    "selective_copying",
    "train_on_task",
]

#: Target value at unscored positions; ``F.cross_entropy``'s default ``ignore_index``.
IGNORE_INDEX = -100

#: Selective copying: the filler token, and the token that asks for the next copy.
NOISE_TOKEN, MARKER_TOKEN = 0, 1
#: Induction heads: the token whose successor must be recalled.
TRIGGER_TOKEN = 0


@export("ssm.TaskBatch")
class TaskBatch(NamedTuple):
    """One batch of a synthetic task.

    Shapes: all three ``(batch, L)``; ``inputs`` and ``targets`` int64, ``mask`` bool.

    Attributes:
        inputs: Token ids fed to the model.
        targets: The expected output token where ``mask`` is true, :data:`IGNORE_INDEX` elsewhere.
        mask: Where the output is scored.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor


@export("ssm.selective_copying")
def selective_copying(
    batch_size: int,
    body_length: int = 64,
    num_tokens: int = 8,
    vocab_size: int = 16,
    seed: int = 0,
    generator: torch.Generator | None = None,
) -> TaskBatch:
    """Draw a batch of the selective copying task.

    Each row is ``body_length`` tokens, noise except for ``num_tokens`` data tokens at
    distinct random positions, followed by ``num_tokens`` markers. The target at the
    ``k``-th marker is the ``k``-th data token of the body; nothing else is scored.

    Shapes: ``(batch_size, body_length + num_tokens)`` for inputs, targets and mask.

    Args:
        batch_size: Rows.
        body_length: Tokens before the markers (noise plus data).
        num_tokens: Data tokens to memorise and copy.
        vocab_size: Token ids in all: noise, marker and ``vocab_size - 2`` data tokens.
        seed: Seed of a fresh generator, used when ``generator`` is ``None``.
        generator: Draw from this generator instead (advances it).

    Returns:
        A :class:`TaskBatch`.

    Raises:
        ValueError: If a size is not a positive integer, ``num_tokens > body_length`` or
            ``vocab_size < 3``.
        TypeError: If ``seed`` is not an int or ``generator`` not a ``torch.Generator``.

    Examples:
        >>> batch = selective_copying(1, body_length=6, num_tokens=2, vocab_size=5, seed=1)
        >>> batch.inputs.tolist(), batch.targets[batch.mask].tolist()
        ([[0, 0, 3, 0, 4, 0, 1, 1]], [3, 4])
    """
    _check_positive(batch_size=batch_size, body_length=body_length, num_tokens=num_tokens, vocab_size=vocab_size)
    if num_tokens > body_length:
        raise ValueError(f"num_tokens ({num_tokens}) must fit in body_length ({body_length})")
    if vocab_size < 3:
        raise ValueError(f"vocab_size must be at least 3 (noise, marker and a data token), got {vocab_size}")
    generator = _generator(seed, generator)
    data = torch.randint(2, vocab_size, (batch_size, num_tokens), generator=generator)
    # Distinct positions per row: the num_tokens smallest of random keys, in increasing order.
    positions = torch.rand(batch_size, body_length, generator=generator).argsort(dim=1)[:, :num_tokens].sort(1).values
    body = torch.full((batch_size, body_length), NOISE_TOKEN, dtype=torch.long)
    body.scatter_(1, positions, data)
    markers = torch.full((batch_size, num_tokens), MARKER_TOKEN, dtype=torch.long)
    inputs = torch.cat([body, markers], dim=1)
    targets = torch.full_like(inputs, IGNORE_INDEX)
    targets[:, body_length:] = data
    return TaskBatch(inputs, targets, targets != IGNORE_INDEX)


@export("ssm.induction_heads")
def induction_heads(
    batch_size: int,
    length: int = 64,
    vocab_size: int = 16,
    seed: int = 0,
    generator: torch.Generator | None = None,
) -> TaskBatch:
    """Draw a batch of the induction heads (associative recall) task.

    Each row is ``length`` tokens: random data tokens, the trigger at one random position
    ``p <= length - 3``, and the trigger again at the last position. Only the last
    position is scored; its target is the token at ``p + 1``. The trigger occurs exactly
    twice, so the answer is unambiguous.

    Shapes: ``(batch_size, length)`` for inputs, targets and mask.

    Args:
        batch_size: Rows.
        length: Tokens per row, at least 3.
        vocab_size: Token ids in all: the trigger and ``vocab_size - 1`` data tokens.
        seed: Seed of a fresh generator, used when ``generator`` is ``None``.
        generator: Draw from this generator instead (advances it).

    Returns:
        A :class:`TaskBatch`.

    Raises:
        ValueError: If a size is not a positive integer, ``length < 3`` or ``vocab_size < 3``.
        TypeError: If ``seed`` is not an int or ``generator`` not a ``torch.Generator``.

    Examples:
        >>> batch = induction_heads(1, length=6, vocab_size=4, seed=0)
        >>> batch.inputs.tolist(), batch.targets[batch.mask].tolist()
        ([[3, 1, 3, 0, 2, 0]], [2])
    """
    _check_positive(batch_size=batch_size, length=length, vocab_size=vocab_size)
    if length < 3:
        raise ValueError(f"length must be at least 3 (trigger, answer, trigger), got {length}")
    if vocab_size < 3:
        raise ValueError(f"vocab_size must be at least 3 (the trigger and two data tokens), got {vocab_size}")
    generator = _generator(seed, generator)
    inputs = torch.randint(1, vocab_size, (batch_size, length), generator=generator)
    trigger_at = torch.randint(0, length - 2, (batch_size, 1), generator=generator)
    inputs.scatter_(1, trigger_at, TRIGGER_TOKEN)
    inputs[:, -1] = TRIGGER_TOKEN
    targets = torch.full_like(inputs, IGNORE_INDEX)
    targets[:, -1] = inputs.gather(1, trigger_at + 1)[:, 0]  # the token right after the first trigger
    return TaskBatch(inputs, targets, targets != IGNORE_INDEX)


class Task(Protocol):
    """Anything :func:`train_on_task` can draw batches from."""

    vocab_size: int

    def sample(self, batch_size: int, generator: torch.Generator) -> TaskBatch: ...


@export("ssm.SelectiveCopying")
@dataclass(frozen=True)
class SelectiveCopying:
    """The selective copying task at fixed sizes (see :func:`selective_copying`).

    Args:
        body_length: Tokens before the markers.
        num_tokens: Data tokens to copy.
        vocab_size: Token ids in all.

    Raises:
        ValueError: On sizes :func:`selective_copying` rejects.

    Examples:
        >>> task = SelectiveCopying(body_length=32, num_tokens=4)
        >>> task.sample(2, torch.Generator().manual_seed(0)).inputs.shape
        torch.Size([2, 36])
    """

    body_length: int = 64
    num_tokens: int = 8
    vocab_size: int = 16
    name: str = field(default="selective copying", init=False)

    def __post_init__(self) -> None:
        self.sample(1, torch.Generator().manual_seed(0))  # validates the sizes

    @property
    def length(self) -> int:
        """Tokens per sequence: body plus markers."""
        return self.body_length + self.num_tokens

    def sample(self, batch_size: int, generator: torch.Generator) -> TaskBatch:
        """A batch drawn from ``generator``."""
        return selective_copying(batch_size, self.body_length, self.num_tokens, self.vocab_size, generator=generator)


@export("ssm.InductionHeads")
@dataclass(frozen=True)
class InductionHeads:
    """The induction heads task at fixed sizes (see :func:`induction_heads`).

    Args:
        length: Tokens per sequence.
        vocab_size: Token ids in all.

    Raises:
        ValueError: On sizes :func:`induction_heads` rejects.

    Examples:
        >>> InductionHeads(length=16).sample(3, torch.Generator().manual_seed(0)).mask.sum().item()
        3
    """

    length: int = 64
    vocab_size: int = 16
    name: str = field(default="induction heads", init=False)

    def __post_init__(self) -> None:
        self.sample(1, torch.Generator().manual_seed(0))

    def sample(self, batch_size: int, generator: torch.Generator) -> TaskBatch:
        """A batch drawn from ``generator``."""
        return induction_heads(batch_size, self.length, self.vocab_size, generator=generator)


@export("ssm.TrainingResult")
@dataclass
class TrainingResult:
    """What :func:`train_on_task` measured.

    Attributes:
        losses: Training loss (mean cross-entropy over scored positions) of every step.
        eval_steps: Steps after which the model was evaluated (the last one is ``steps``).
        eval_accuracy: Token accuracy on the held-out batch at each of ``eval_steps``.
        accuracy: Final token accuracy on the held-out batch.
        sequence_accuracy: Final fraction of held-out rows with every scored token right.
    """

    losses: list[float]
    eval_steps: list[int]
    eval_accuracy: list[float]
    accuracy: float
    sequence_accuracy: float


@export("ssm.evaluate_on_task")
@torch.no_grad()
def evaluate_on_task(model: nn.Module, batch: TaskBatch) -> tuple[float, float]:
    """Greedy accuracy of ``model`` on one batch of a task, in eval mode.

    Args:
        model: Maps ids ``(batch, L)`` to logits ``(batch, L, vocab)``.
        batch: The inputs, targets and mask to score.

    Returns:
        ``(token_accuracy, sequence_accuracy)``: the fraction of scored positions whose
        arg-max prediction is the target, and the fraction of rows with all of them right.

    Raises:
        ValueError: If the logits do not have shape ``(batch, L, vocab)``.

    Examples:
        >>> class Oracle(nn.Module):  # puts all its weight on the targets
        ...     def __init__(self, targets): super().__init__(); self.targets = targets
        ...     def forward(self, ids): return F.one_hot(self.targets.clamp(min=0), 16).float()
        >>> batch = induction_heads(4, length=10)
        >>> evaluate_on_task(Oracle(batch.targets), batch)
        (1.0, 1.0)
    """
    was_training = model.training
    model.eval()
    try:
        logits = model(batch.inputs)
    finally:
        model.train(was_training)
    _check_logits(logits, batch.inputs)
    correct = (logits.argmax(-1) == batch.targets) & batch.mask
    token_accuracy = correct.sum().item() / batch.mask.sum().item()
    sequence_accuracy = (correct == batch.mask).all(dim=1).float().mean().item()
    return token_accuracy, sequence_accuracy


@export("ssm.train_on_task")
def train_on_task(
    model: nn.Module,
    task: Task,
    steps: int,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    weight_decay: float = 0.1,
    warmup_steps: int | None = None,
    eval_every: int | None = None,
    eval_size: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> TrainingResult:
    """Train ``model`` on fresh batches of ``task`` with AdamW and a cosine schedule.

    The loss is the cross-entropy at the scored positions only. The learning rate warms
    up linearly for ``warmup_steps`` (default: a tenth of ``steps``) and then decays to
    zero along a cosine; gradients are clipped to norm 1. A held-out batch of
    ``eval_size`` rows, drawn from its own generator (seeded with ``seed + 1``), is
    scored every ``eval_every`` steps and at the end. The training batches come from a
    generator seeded with ``seed``; the model's initialisation is the caller's business.

    Args:
        model: Maps ids ``(batch, L)`` to logits ``(batch, L, task.vocab_size)``; trained in place.
        task: Has ``vocab_size`` and ``sample(batch_size, generator) -> TaskBatch``
            (:class:`SelectiveCopying`, :class:`InductionHeads`).
        steps: Optimiser steps.
        batch_size: Rows per step.
        learning_rate: Peak learning rate.
        weight_decay: AdamW weight decay, on the weights of linear and embedding layers only.
        warmup_steps: Linear warm-up steps; ``None`` means ``steps // 10``.
        eval_every: Evaluate every this many steps; ``None`` means about 20 points.
        eval_size: Rows in the held-out batch.
        seed: Seed of the batch sampler (``seed``) and of the held-out batch (``seed + 1``).
        progress: Show a tqdm progress bar.

    Returns:
        A :class:`TrainingResult` with the loss of every step and the accuracy curve.

    Raises:
        ValueError: If ``steps``, ``batch_size`` or ``eval_size`` is not a positive
            integer, ``learning_rate`` is not positive, or the model's logits have the
            wrong shape.

    Examples:
        >>> from dlnotes.ssm.mamba import MambaConfig, MambaLM
        >>> task = InductionHeads(length=8, vocab_size=4)
        >>> model = MambaLM(MambaConfig(vocab_size=4, d_model=8, n_layer=1, d_state=4))
        >>> result = train_on_task(model, task, steps=3, batch_size=4, eval_size=8)
        >>> len(result.losses), result.eval_steps
        (3, [1, 2, 3])
    """
    _check_positive(steps=steps, batch_size=batch_size, eval_size=eval_size)
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
    warmup = steps // 10 if warmup_steps is None else warmup_steps
    every = eval_every or max(1, steps // 20)
    generator = torch.Generator().manual_seed(seed)
    held_out = task.sample(eval_size, torch.Generator().manual_seed(seed + 1))

    # Decay the weights of linear and embedding layers only (as nanoGPT and the Mamba code
    # do): not biases, norms, convolution kernels or SSM parameters such as A and D.
    decayed = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Linear, nn.Embedding))}
    matrices = [p for p in model.parameters() if p.requires_grad and id(p) in decayed]
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in decayed]
    optimizer = torch.optim.AdamW(
        [{"params": matrices, "weight_decay": weight_decay}, {"params": others, "weight_decay": 0.0}],
        lr=learning_rate,
        betas=(0.9, 0.98),
    )

    def schedule(step: int) -> float:  # factor on the peak learning rate
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    losses, eval_steps, eval_accuracy = [], [], []
    model.train()
    for step in tqdm(range(1, steps + 1), disable=not progress, desc=getattr(task, "name", "training")):
        batch = task.sample(batch_size, generator)
        logits = model(batch.inputs)
        _check_logits(logits, batch.inputs, task.vocab_size)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), ignore_index=IGNORE_INDEX)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if step % every == 0 or step == steps:
            eval_steps.append(step)
            eval_accuracy.append(evaluate_on_task(model, held_out)[0])
    accuracy, sequence_accuracy = evaluate_on_task(model, held_out)
    return TrainingResult(losses, eval_steps, eval_accuracy, accuracy, sequence_accuracy)


# ------------------------------------------------------------------------- helpers




def _generator(seed: int, generator: torch.Generator | None) -> torch.Generator:
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        return generator
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def _check_logits(logits: torch.Tensor, inputs: torch.Tensor, vocab_size: int | None = None) -> None:
    batch, length = inputs.shape
    if (
        not isinstance(logits, torch.Tensor)
        or logits.dim() != 3
        or tuple(logits.shape[:2]) != (batch, length)
        or (vocab_size is not None and logits.shape[2] != vocab_size)
    ):
        vocab = "vocab" if vocab_size is None else vocab_size
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"the model must return logits of shape ({batch}, {length}, {vocab}), got {got}")
