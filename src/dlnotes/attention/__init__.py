"""Attention part: position encodings, RoPE, sparse and linear attention, GAU/FLASH, and FlashAttention in Triton.

One module per chapter of ``docs/attention/``; see the chapter for the derivations."""
