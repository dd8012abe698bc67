"""A small decoder-only transformer (GPT) with a key/value cache.

Small enough to read in one sitting, complete enough to build on: the finetune part
wraps its linear layers (LoRA, adapters) and feeds it prefix keys/values, and the
decoding part (Medusa) drives it with tree attention masks through the same cache.

Each block is pre-norm::

    x = x + o_proj(attention(q_proj(ln_1 x), k_proj(ln_1 x), v_proj(ln_1 x)))
    x = x + down_proj(gelu(up_proj(ln_2 x)))

Positions are either learned embeddings added to the token embeddings or rotary
embeddings applied to queries and keys (:mod:`dlnotes.attention.rope`). The output
head shares its weight with the token embedding.

The cache is a tuple with one ``(keys, values)`` pair per layer, each
``(batch, heads, cached_len, head_dim)``. A forward pass with ``past_key_values``
attends to the cached entries plus the new tokens and, with ``use_cache=True``, returns
the extended cache. New tokens get positions ``cached_len, cached_len + 1, ...`` unless
``position_ids`` says otherwise (Medusa's tree tokens share positions by depth).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dlnotes.attention.rope import RotaryEmbedding
from dlnotes.models.sampling import sample_next_token
from dlnotes.foundations.api_export import export

__all__ = ["GPTConfig", "GPTOutput", "KVCache", "GPT", "cache_length"]

#: One ``(keys, values)`` pair per layer, each ``(batch, heads, length, head_dim)``.
KVCache = tuple[tuple[torch.Tensor, torch.Tensor], ...]


@export("models.GPTConfig")
@dataclass(frozen=True)
class GPTConfig:
    """Hyper-parameters of :class:`GPT`.

    Args:
        vocab_size: Number of token ids.
        n_layer: Transformer blocks.
        n_head: Attention heads per block.
        d_model: Width of the residual stream (a multiple of ``n_head``).
        max_len: Longest sequence (cache included) the model accepts.
        dropout: Dropout on attention probabilities and residual branches.
        positions: ``"rope"`` (rotary, applied to q and k) or ``"learned"`` (embeddings).
        mlp_ratio: Hidden width of the MLP as a multiple of ``d_model``.
        rope_base: Frequency base for rotary positions.

    Raises:
        ValueError: On non-positive sizes, ``d_model`` not divisible by ``n_head``, an odd
            head size with rotary positions, dropout outside ``[0, 1)`` or an unknown
            ``positions``.
    """

    vocab_size: int
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    max_len: int = 256
    dropout: float = 0.0
    positions: Literal["rope", "learned"] = "rope"
    mlp_ratio: int = 4
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layer", "n_head", "d_model", "max_len", "mlp_ratio"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")
        if self.positions not in ("rope", "learned"):
            raise ValueError(f"positions must be 'rope' or 'learned', got {self.positions!r}")
        if self.positions == "rope" and self.head_dim % 2:
            raise ValueError(f"rotary positions need an even head size, got d_model/n_head = {self.head_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        """Channels per attention head."""
        return self.d_model // self.n_head

    def to_dict(self) -> dict:
        """The configuration as a plain dictionary."""
        return asdict(self)


class GPTOutput(NamedTuple):
    """What :meth:`GPT.forward` returns.

    Attributes:
        logits: ``(batch, seq, vocab_size)`` next-token scores.
        loss: Mean cross-entropy against ``targets`` when given, else ``None``.
        past_key_values: The extended cache when ``use_cache=True``, else ``None``.
        hidden_states: ``(batch, seq, d_model)`` final hidden states (after the last
            layer norm), the input of the LM head (and of Medusa's heads).
    """

    logits: torch.Tensor
    loss: torch.Tensor | None
    past_key_values: KVCache | None
    hidden_states: torch.Tensor


def cache_length(past_key_values: KVCache | None) -> int:
    """Number of positions held in a cache (0 for ``None`` or an empty cache)."""
    if not past_key_values:
        return 0
    return past_key_values[0][0].shape[-2]


class Attention(nn.Module):
    """Multi-head self-attention with projections named ``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.head_dim = config.n_head, config.head_dim
        self.q_proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.k_proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.v_proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.o_proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.dropout = config.dropout
        self.rotary = (
            RotaryEmbedding(config.head_dim, base=config.rope_base, max_positions=config.max_len)
            if config.positions == "rope"
            else None
        )

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        batch, seq, width = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:  # (batch, seq, width) -> (batch, heads, seq, head_dim)
            return t.view(batch, seq, self.n_head, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        if self.rotary is not None:
            q, k = self.rotary(q, k, positions[:, None, :])  # rotate by absolute position
        if past is not None:
            k = torch.cat([past[0], k], dim=-2)
            v = torch.cat([past[1], v], dim=-2)
        # softmax(q k^T / sqrt(d) + mask) v, mask True = may attend
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        out = out.transpose(1, 2).reshape(batch, seq, width)
        return self.o_proj(out), (k, v)


class MLP(nn.Module):
    """Position-wise feed-forward network: ``down_proj(gelu(up_proj(x)))``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.up_proj = nn.Linear(config.d_model, config.mlp_ratio * config.d_model, bias=False)
        self.down_proj = nn.Linear(config.mlp_ratio * config.d_model, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.gelu(self.up_proj(x)))


class Block(nn.Module):
    """One pre-norm transformer block: attention then MLP, each with a residual connection."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model)
        self.attn = Attention(config)
        self.ln_2 = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        attended, present = self.attn(self.ln_1(x), positions, mask, past)
        x = x + self.drop(attended)
        x = x + self.drop(self.mlp(self.ln_2(x)))
        return x, present


@export("models.GPT")
class GPT(nn.Module):
    """A decoder-only transformer language model with a KV cache.

    Args:
        config: The hyper-parameters.

    Examples:
        >>> model = GPT(GPTConfig(vocab_size=50, n_layer=2, d_model=32, max_len=64))
        >>> out = model(torch.tensor([[1, 2, 3]]), use_cache=True)
        >>> out.logits.shape, len(out.past_key_values)
        (torch.Size([1, 3, 50]), 2)
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.max_len, config.d_model) if config.positions == "learned" else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # weight tying
        self.apply(self._init_weights)
        # GPT-2's scaled init for the projections that write into the residual stream
        for name, parameter in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(parameter, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        position_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool = False,
        targets: torch.Tensor | None = None,
    ) -> GPTOutput:
        """Run the model on new tokens, optionally after cached ones.

        Shape:
            input_ids: ``(batch, seq)`` int64 (or ``inputs_embeds``: ``(batch, seq, d_model)``).
            position_ids: ``(seq,)`` or ``(batch, seq)``; default ``past + arange(seq)``.
            attention_mask: bool ``(seq, past + seq)`` or ``(batch, 1, seq, past + seq)``,
            True where a new token may attend; default causal (every cached position
            plus the new tokens up to itself). targets: ``(batch, seq)``, -100 ignored.

        Args:
            input_ids: Token ids of the new tokens.
            past_key_values: Cache from an earlier call (or prefix keys/values).
            position_ids: Positions of the new tokens.
            attention_mask: Which keys each new token may attend to.
            inputs_embeds: Token embeddings instead of ``input_ids`` (prompt tuning).
            use_cache: Return the extended cache.
            targets: Next-token targets for a cross-entropy loss.

        Returns:
            A :class:`GPTOutput`.

        Raises:
            ValueError: If neither or both of ``input_ids``/``inputs_embeds`` are given,
                shapes disagree, the sequence exceeds ``max_len``, or a mask or cache does
                not fit.
            TypeError: If ``input_ids`` is not an integer tensor.
        """
        config = self.config
        x, batch, seq = self._embed_tokens(input_ids, inputs_embeds)
        past_len = cache_length(past_key_values)
        if past_key_values is not None and len(past_key_values) not in (0, config.n_layer):
            raise ValueError(f"past_key_values must hold {config.n_layer} layers, got {len(past_key_values)}")
        positions = self._positions(position_ids, batch, seq, past_len, x.device)
        mask = self._attention_mask(attention_mask, batch, seq, past_len, x.device)

        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)
        x = self.drop(x)
        presents = []
        for index, block in enumerate(self.blocks):
            past = past_key_values[index] if past_key_values else None
            x, present = block(x, positions, mask, past)
            presents.append(present)
        hidden = self.ln_f(x)
        logits = self.lm_head(hidden)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        return GPTOutput(logits, loss, tuple(presents) if use_cache else None, hidden)

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: torch.Tensor | list[int],
        max_new_tokens: int,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        use_cache: bool = True,
        past_key_values: KVCache | None = None,
    ) -> torch.Tensor:
        """Extend a prompt token by token.

        Shape:
            prompt_ids: ``(seq,)`` or ``(batch, seq)``; result: ``(seq + max_new_tokens,)``
            or ``(batch, seq + max_new_tokens)`` (the prompt followed by the new ids).

        Args:
            prompt_ids: The prompt (at least one token).
            max_new_tokens: How many tokens to add.
            temperature: ``0`` for greedy decoding, else the sampling temperature.
            top_k: Sample only among the ``k`` most likely tokens.
            top_p: Sample only from the nucleus of probability ``top_p``.
            seed: Seed of the sampling generator (ignored when greedy).
            use_cache: Reuse keys/values (one new token per forward pass); ``False``
                recomputes the whole sequence each step (same result, slower).
            past_key_values: Keys/values that precede the prompt (a tuning prefix or a
                soft prompt's cache), with batch size 1 or the prompt's; they are not part
                of the returned ids.

        Returns:
            The prompt followed by the generated ids, on the model's device.

        Raises:
            ValueError: If the prompt is empty, ``max_new_tokens`` is negative, or the
                result would exceed ``max_len``.
        """
        device = self.tok_emb.weight.device
        ids = torch.as_tensor(prompt_ids, dtype=torch.long, device=device)
        squeeze = ids.dim() == 1
        ids = ids[None] if squeeze else ids
        if ids.dim() != 2 or ids.shape[1] == 0:
            raise ValueError(f"prompt_ids must be a non-empty (seq,) or (batch, seq) sequence, got shape {tuple(ids.shape)}")
        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
        prefix = cache_length(past_key_values)
        if prefix + ids.shape[1] + max_new_tokens > self.config.max_len:
            raise ValueError(
                f"prefix ({prefix}) + prompt ({ids.shape[1]}) + max_new_tokens ({max_new_tokens}) "
                f"exceeds max_len={self.config.max_len}"
            )
        if prefix and past_key_values[0][0].shape[0] not in (1, ids.shape[0]):
            raise ValueError(f"past_key_values has batch {past_key_values[0][0].shape[0]}, the prompt {ids.shape[0]}")
        if prefix:
            past_key_values = tuple(
                (k.expand(ids.shape[0], *k.shape[1:]), v.expand(ids.shape[0], *v.shape[1:])) for k, v in past_key_values
            )
        generator = None
        if temperature > 0:
            generator = torch.Generator(device=device)
            generator.manual_seed(0 if seed is None else seed)
        was_training = self.training
        self.eval()
        try:
            cache, step_input = past_key_values, ids
            for _ in range(max_new_tokens):
                if use_cache:
                    out = self(step_input, past_key_values=cache, use_cache=True)
                    cache = out.past_key_values
                else:
                    out = self(ids, past_key_values=past_key_values)
                next_id = sample_next_token(out.logits[:, -1], temperature, top_k, top_p, generator)
                ids = torch.cat([ids, next_id[:, None]], dim=1)
                step_input = next_id[:, None]
        finally:
            self.train(was_training)
        return ids[0] if squeeze else ids

    def _embed_tokens(
        self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None
    ) -> tuple[torch.Tensor, int, int]:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if input_ids is not None:
            if not isinstance(input_ids, torch.Tensor) or input_ids.dtype not in (torch.int64, torch.int32):
                raise TypeError(f"input_ids must be an int64 tensor, got {getattr(input_ids, 'dtype', type(input_ids))}")
            if input_ids.dim() != 2:
                raise ValueError(f"input_ids must be (batch, seq), got shape {tuple(input_ids.shape)}")
            return self.tok_emb(input_ids), input_ids.shape[0], input_ids.shape[1]
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.config.d_model:
            raise ValueError(
                f"inputs_embeds must be (batch, seq, {self.config.d_model}), got shape {tuple(inputs_embeds.shape)}"
            )
        return inputs_embeds, inputs_embeds.shape[0], inputs_embeds.shape[1]

    def _positions(
        self, position_ids: torch.Tensor | None, batch: int, seq: int, past_len: int, device: torch.device
    ) -> torch.Tensor:
        if past_len + seq > self.config.max_len:
            raise ValueError(
                f"sequence of {seq} new + {past_len} cached positions exceeds max_len={self.config.max_len}"
            )
        if position_ids is None:
            position_ids = torch.arange(past_len, past_len + seq, device=device)
        if position_ids.shape[-1] != seq:
            raise ValueError(f"position_ids must end in the sequence length {seq}, got shape {tuple(position_ids.shape)}")
        if position_ids.numel() and (int(position_ids.min()) < 0 or int(position_ids.max()) >= self.config.max_len):
            raise ValueError(f"position_ids must lie in [0, max_len={self.config.max_len})")
        return position_ids.expand(batch, seq)

    @staticmethod
    def _attention_mask(
        attention_mask: torch.Tensor | None, batch: int, seq: int, past_len: int, device: torch.device
    ) -> torch.Tensor:
        total = past_len + seq
        if attention_mask is None:
            # new token i (absolute position past_len + i) sees keys 0 .. past_len + i
            keys = torch.arange(total, device=device)
            return (keys[None, :] <= past_len + torch.arange(seq, device=device)[:, None])[None, None]
        if attention_mask.dtype != torch.bool:
            raise TypeError(f"attention_mask must be a bool tensor (True = may attend), got {attention_mask.dtype}")
        if attention_mask.shape[-2:] != (seq, total):
            raise ValueError(
                f"attention_mask must end in ({seq}, {total}) = (new tokens, cached + new), got {tuple(attention_mask.shape)}"
            )
        return attention_mask if attention_mask.dim() == 4 else attention_mask.reshape(1, 1, seq, total)

    def num_parameters(self) -> int:
        """Number of distinct parameters (the tied head counted once)."""
        return sum(parameter.numel() for parameter in self.parameters())
