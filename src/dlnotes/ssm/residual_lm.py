"""The language-model shell shared by the SSM part's models.

Embedding, ``n`` pre-norm residual *mixers* (``h = h + mixer(norm(h))``), a final norm
and an output head tied to the embedding. :class:`dlnotes.ssm.mamba.MambaLM` fills it
with Mamba blocks and :class:`dlnotes.ssm.s4.S4DLM` with S4D layers, so the two differ
only in the mixer. A mixer maps ``(batch, L, d_model)`` to the same shape and, for
token-by-token inference, has ``initial_state(batch, device=...)`` and
``step(hidden, state) -> (out, state)`` on ``(batch, d_model)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dlnotes._checks import check_positive_ints

__all__ = ["ResidualLM"]


class ResidualLM(nn.Module):
    """Embedding, pre-norm residual mixers, final norm and tied head.

    Shape: ``ids (batch, L)`` to ``logits (batch, L, vocab_size)``; :meth:`step` maps
    ``(batch,)`` ids and the mixers' states to ``(batch, vocab_size)`` logits.

    Args:
        vocab_size: Number of token ids.
        d_model: Width of the residual stream.
        n_layer: Number of mixers.
        make_mixer: Builds mixer ``i`` from its index (called after the embedding is
            initialised, so seeded models draw their weights in a fixed order).
        norm: Normalisation class, built as ``norm(d_model)``.

    Raises:
        ValueError: On a non-positive ``vocab_size``, ``d_model`` or ``n_layer``.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        n_layer: int,
        make_mixer: Callable[[int], nn.Module],
        norm: type[nn.Module] = nn.RMSNorm,
    ) -> None:
        super().__init__()
        check_positive_ints(vocab_size=vocab_size, d_model=d_model, n_layer=n_layer)
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.embedding.weight, std=0.02)  # small, as the head shares it
        self.norms = nn.ModuleList(norm(d_model) for _ in range(n_layer))
        self.blocks = nn.ModuleList(make_mixer(index) for index in range(n_layer))
        self.final_norm = norm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.embedding.weight  # tied

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits for every position.

        Args:
            ids: ``(batch, L)`` token ids.

        Returns:
            ``(batch, L, vocab_size)`` logits.

        Raises:
            ValueError: If ``ids`` is not a 2-d integer tensor.
        """
        if ids.dim() != 2 or ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"ids must be a (batch, L) integer tensor, got {ids.dtype} of shape {tuple(ids.shape)}")
        hidden = self.embedding(ids)
        for norm, block in zip(self.norms, self.blocks):
            hidden = hidden + block(norm(hidden))
        return self.lm_head(self.final_norm(hidden))

    def step(self, ids: torch.Tensor, states: list | None = None) -> tuple[torch.Tensor, list]:
        """Logits for one new token per sequence, carrying every mixer's state.

        Args:
            ids: ``(batch,)`` token ids.
            states: One state per mixer, as returned by the previous call; ``None``
                starts from the mixers' initial states.

        Returns:
            ``(logits, new_states)`` with ``logits: (batch, vocab_size)``.

        Raises:
            ValueError: If ``ids`` is not 1-d or ``states`` has the wrong length.
        """
        if ids.dim() != 1:
            raise ValueError(f"ids must be (batch,) for one step, got shape {tuple(ids.shape)}")
        if states is not None and len(states) != len(self.blocks):
            raise ValueError(f"states must hold one state per layer ({len(self.blocks)}), got {len(states)}")
        hidden = self.embedding(ids)
        if states is None:
            states = [block.initial_state(ids.shape[0], device=ids.device) for block in self.blocks]
        new_states = []
        for norm, block, state in zip(self.norms, self.blocks, states):
            out, state = block.step(norm(hidden), state)
            hidden = hidden + out
            new_states.append(state)
        return self.lm_head(self.final_norm(hidden)), new_states
