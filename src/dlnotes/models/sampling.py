"""Choosing the next token from logits: greedy, temperature, top-k and top-p (nucleus)."""

from __future__ import annotations

import torch

__all__ = ["filter_logits", "sample_next_token"]


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set to ``-inf`` every logit outside the top-k and outside the top-p nucleus.

    Shape:
        logits: ``(..., vocab)``; result: the same.

    Args:
        logits: Unnormalised scores.
        top_k: Keep the ``k`` largest logits (ties at the boundary are all kept).
        top_p: Keep the smallest set of tokens, by decreasing probability, whose total
            probability reaches ``top_p`` (the most likely token is always kept).

    Returns:
        The filtered logits.

    Raises:
        ValueError: If ``top_k < 1`` or ``top_p`` is outside ``(0, 1]``.
    """
    if top_k is not None:
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        k = min(top_k, logits.shape[-1])
        kth = logits.topk(k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token when the tokens before it already reach top_p
        before = probs.cumsum(dim=-1) - probs
        drop_sorted = before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row of ``logits``.

    Shape:
        logits: ``(batch, vocab)``; result: ``(batch,)`` int64.

    Args:
        logits: Next-token scores.
        temperature: ``0`` means greedy (argmax); otherwise sample from
            ``softmax(logits / temperature)`` after top-k/top-p filtering.
        top_k: See :func:`filter_logits`.
        top_p: See :func:`filter_logits`.
        generator: Source of randomness for sampling.

    Returns:
        The chosen ids.

    Raises:
        ValueError: If ``temperature`` is negative.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    filtered = filter_logits(logits.float() / temperature, top_k=top_k, top_p=top_p)
    probs = filtered.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
