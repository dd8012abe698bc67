"""Memory of fine-tuning: the arithmetic for large models and a measurement for small ones.

Full fine-tuning with Adam in mixed precision keeps, for every parameter (Rajbhandari
et al., "ZeRO", SC 2020, https://arxiv.org/abs/1910.02054, section 3.1):

| kept per parameter | bytes |
|---|---|
| fp16/bf16 weights | 2 |
| fp16/bf16 gradients | 2 |
| fp32 master weights | 4 |
| fp32 Adam first moment | 4 |
| fp32 Adam second moment | 4 |

16 bytes in all, before a single activation is stored. The activations one transformer
layer saves for the backward pass, in 16-bit precision and without recomputation, are
(Korthikanti et al., "Reducing Activation Recomputation in Large Transformer Models",
MLSys 2023, https://arxiv.org/abs/2205.05198, section 4.1)

$$
s\\,b\\,h \\left(34 + 5\\,\\frac{a\\,s}{h}\\right) \\text{ bytes}
$$

for sequence length $s$, batch $b$, width $h$ and $a$ heads.

:func:`measure_training_memory` counts the same four terms for a real training step of
a small model: parameter, gradient and optimizer-state tensors by their sizes, and the
activations by recording every tensor autograd saves for the backward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dlnotes._checks import check_positive_ints as _check_positive

__all__ = [
    "MIXED_PRECISION_ADAM_BYTES",
    "decoder_parameter_count",
    "activation_bytes",
    "full_finetune_memory",
    "MemoryBreakdown",
    "measure_training_memory",
]

#: Bytes kept per parameter by mixed-precision training with Adam (ZeRO's 2 + 2 + 12).
MIXED_PRECISION_ADAM_BYTES: dict[str, int] = {
    "16-bit weights": 2,
    "16-bit gradients": 2,
    "fp32 master weights": 4,
    "fp32 Adam first moment": 4,
    "fp32 Adam second moment": 4,
}


def decoder_parameter_count(
    vocab_size: int, hidden: int, layers: int, intermediate: int, tied_embeddings: bool = False
) -> int:
    """Parameters of a Llama/Qwen-style decoder: embeddings, attention and a gated MLP.

    Per layer: four ``hidden x hidden`` attention projections and three
    ``hidden x intermediate`` MLP matrices (gate, up, down); plus the token embedding and,
    unless tied, the output head. Norm weights and biases (well under 0.1 %) are left out.

    Args:
        vocab_size: Vocabulary size.
        hidden: Model width.
        layers: Number of transformer layers.
        intermediate: Hidden width of the MLP.
        tied_embeddings: Whether the output head shares the embedding matrix.

    Returns:
        The parameter count.

    Raises:
        ValueError: If a size is not a positive integer.

    Examples:
        >>> decoder_parameter_count(32000, 4096, 32, 11008)  # Llama-2-7B without its norms
        6738149376
    """
    _check_positive(vocab_size=vocab_size, hidden=hidden, layers=layers, intermediate=intermediate)
    per_layer = 4 * hidden * hidden + 3 * hidden * intermediate  # q, k, v, o + gate, up, down
    embeddings = vocab_size * hidden * (1 if tied_embeddings else 2)
    return layers * per_layer + embeddings


def activation_bytes(seq_len: int, batch: int, hidden: int, layers: int, heads: int) -> int:
    """Bytes of activations saved for the backward pass: ``layers * s b h (34 + 5 a s / h)``.

    Korthikanti et al.'s count for 16-bit training without activation recomputation
    (attention scores, softmax, dropout masks, MLP inputs, layer-norm inputs ...).

    Args:
        seq_len: Tokens per sequence ``s``.
        batch: Sequences per step ``b``.
        hidden: Model width ``h``.
        layers: Transformer layers.
        heads: Attention heads ``a``.

    Returns:
        Bytes (rounded down to an integer).

    Raises:
        ValueError: If a size is not a positive integer.

    Examples:
        >>> activation_bytes(seq_len=2, batch=1, hidden=4, layers=1, heads=2)
        312
    """
    _check_positive(seq_len=seq_len, batch=batch, hidden=hidden, layers=layers, heads=heads)
    return layers * (34 * seq_len * batch * hidden + 5 * heads * seq_len * seq_len * batch)


def full_finetune_memory(num_parameters: int, activations: int = 0) -> dict[str, int]:
    """Bytes of full mixed-precision Adam fine-tuning, term by term.

    Args:
        num_parameters: Parameters of the model.
        activations: Bytes of saved activations (see :func:`activation_bytes`).

    Returns:
        One entry per row of :data:`MIXED_PRECISION_ADAM_BYTES`, then ``"activations"``
        and ``"total"``.

    Raises:
        ValueError: If ``num_parameters`` is not positive or ``activations`` is negative.

    Examples:
        >>> full_finetune_memory(1_000)["total"]
        16000
    """
    _check_positive(num_parameters=num_parameters)
    if isinstance(activations, bool) or not isinstance(activations, int) or activations < 0:
        raise ValueError(f"activations must be a non-negative integer, got {activations!r}")
    terms = {name: size * num_parameters for name, size in MIXED_PRECISION_ADAM_BYTES.items()}
    terms["activations"] = activations
    terms["total"] = sum(terms.values())
    return terms


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes held during one training step, by kind (see :func:`measure_training_memory`)."""

    parameters: int
    gradients: int
    optimizer_states: int
    activations: int

    @property
    def total(self) -> int:
        """The sum of the four terms."""
        return self.parameters + self.gradients + self.optimizer_states + self.activations


def measure_training_memory(
    model: nn.Module, loss_fn: Callable[[], torch.Tensor], optimizer: torch.optim.Optimizer
) -> MemoryBreakdown:
    """Run one training step and count the bytes of what it keeps alive.

    * parameters: every distinct parameter of ``model`` (frozen ones included);
    * gradients: the ``.grad`` tensors after ``backward``;
    * optimizer states: every tensor in ``optimizer.state`` after ``step``;
    * activations: every tensor autograd saves in the forward pass for the backward
      pass (recorded with :class:`torch.autograd.graph.saved_tensors_hooks`), each
      underlying storage counted once and parameters' storages left out.

    Temporaries that live only inside one operation are not counted, so this is the
    memory that stays resident, not the allocator's exact peak.

    Args:
        model: The model being trained.
        loss_fn: Computes the loss of one batch with ``model`` (called once).
        optimizer: The optimizer over the trainable parameters (stepped once).

    Returns:
        A :class:`MemoryBreakdown` in bytes.

    Raises:
        TypeError: If ``loss_fn`` does not return a scalar tensor that requires grad.

    Examples:
        >>> layer = nn.Linear(4, 3)
        >>> x = torch.randn(5, 4)
        >>> memory = measure_training_memory(layer, lambda: layer(x).sum(), torch.optim.SGD(layer.parameters(), 0.1))
        >>> memory.activations  # the input x: 5 * 4 float32 values
        80
    """
    parameters = {id(p): p for p in model.parameters()}
    parameter_storages = {p.untyped_storage().data_ptr() for p in parameters.values()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameter_storages:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    optimizer.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = loss_fn()
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0 or not loss.requires_grad:
        raise TypeError("loss_fn must return a scalar tensor that requires grad")
    loss.backward()
    optimizer.step()
    gradients = sum(_nbytes(p.grad) for p in parameters.values() if p.grad is not None)
    states = sum(_nbytes(value) for state in optimizer.state.values() for value in state.values() if isinstance(value, torch.Tensor))
    return MemoryBreakdown(
        parameters=sum(_nbytes(p) for p in parameters.values()),
        gradients=gradients,
        optimizer_states=states,
        activations=sum(saved.values()),
    )


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()
