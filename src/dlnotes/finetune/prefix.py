"""Prefix tuning and prompt tuning: learn continuous "virtual tokens", freeze the model.

Li and Liang, "Prefix-Tuning: Optimizing Continuous Prompts for Generation", ACL 2021,
https://arxiv.org/abs/2101.00190; Lester, Al-Rfou and Constant, "The Power of Scale for
Parameter-Efficient Prompt Tuning", EMNLP 2021, https://arxiv.org/abs/2104.08691.

*Prefix tuning* gives every layer :math:`\\ell` its own trainable keys and values
:math:`P_K^\\ell, P_V^\\ell \\in \\mathbb{R}^{p \\times d}` that every real token attends
to, exactly as if :math:`p` earlier tokens had left them in the KV cache. Optimising them
directly is unstable, so during training they are produced by a reparameterisation:
a small matrix :math:`P' \\in \\mathbb{R}^{p \\times d'}` passed through an MLP,
:math:`[P_K^1, P_V^1, \\dots] = \\text{MLP}(P')`; afterwards the MLP is dropped and only
the resulting keys and values are kept (:meth:`PrefixTuning.materialize`). The real
tokens' positions start at :math:`p`, as they would after :math:`p` cached tokens.

*Prompt tuning* is the lighter comparison: only :math:`p` input embeddings are learned
and prepended to the embedded input; the layers above see them as ordinary tokens.
*P-tuning* (Liu et al., "GPT Understands, Too", 2021, https://arxiv.org/abs/2103.10385)
produces those embeddings with a prompt encoder, a bidirectional LSTM followed by an MLP
over trainable pseudo-token inputs, so that the virtual tokens depend on each other.
"""

from __future__ import annotations

import torch
from torch import nn

from dlnotes.models.gpt import GPT, GPTOutput, KVCache
from dlnotes.foundations.api_export import export

__all__ = ["PrefixTuning", "PromptTuning", "PTuning"]


@export("finetune.PrefixTuning")
class PrefixTuning(nn.Module):
    """Trainable per-layer prefix keys/values in front of a frozen :class:`~dlnotes.models.gpt.GPT`.

    Args:
        model: The GPT to adapt (its parameters are frozen).
        prefix_length: Number of virtual tokens ``p`` (``0`` gives back the base model).
        hidden: Width of the reparameterisation MLP (``None``: no MLP, the keys and values
            are trained directly).
        seed: Seed of the prefix initialisation.

    Raises:
        TypeError: If ``model`` is not a GPT.
        ValueError: If ``prefix_length`` is negative or not shorter than ``max_len``, or
            ``hidden`` is not positive.

    Examples:
        >>> from dlnotes.models.gpt import GPTConfig
        >>> tuned = PrefixTuning(GPT(GPTConfig(vocab_size=10, n_layer=2, d_model=16)), prefix_length=4)
        >>> keys, values = tuned.prefix_key_values(batch_size=3)[0]
        >>> tuple(keys.shape)
        (3, 4, 4, 4)
    """

    def __init__(self, model: GPT, prefix_length: int, hidden: int | None = 64, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(model, GPT):
            raise TypeError(f"model must be a dlnotes GPT, got {type(model).__name__}")
        config = model.config
        if isinstance(prefix_length, bool) or not isinstance(prefix_length, int) or prefix_length < 0:
            raise ValueError(f"prefix_length must be a non-negative integer, got {prefix_length!r}")
        if prefix_length >= config.max_len:
            raise ValueError(f"prefix_length ({prefix_length}) must be shorter than max_len ({config.max_len})")
        if hidden is not None and (not isinstance(hidden, int) or hidden < 1):
            raise ValueError(f"hidden must be a positive integer or None, got {hidden!r}")
        self.model = model
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        self.prefix_length = prefix_length
        self.n_layer, self.n_head, self.head_dim = config.n_layer, config.n_head, config.head_dim
        out_width = 2 * config.n_layer * config.d_model  # keys and values of every layer
        generator = torch.Generator().manual_seed(seed)
        device = model.tok_emb.weight.device
        if hidden is None:
            self.prefix = nn.Parameter(0.02 * torch.randn(prefix_length, out_width, generator=generator).to(device))
            self.reparameterization = None
        else:
            # P' (p x d') -> MLP -> (p x 2 L d): the reparameterisation of Li & Liang, section 4.3
            self.prefix = nn.Parameter(torch.randn(prefix_length, config.d_model, generator=generator).to(device))
            self.reparameterization = nn.Sequential(
                nn.Linear(config.d_model, hidden), nn.Tanh(), nn.Linear(hidden, out_width)
            ).to(device)

    def prefix_key_values(self, batch_size: int = 1) -> KVCache:
        """The prefix as a KV cache: per layer ``(keys, values)`` of shape ``(batch, heads, p, head_dim)``."""
        flat = self.prefix if self.reparameterization is None else self.reparameterization(self.prefix)
        # (p, 2 L d) -> (2 L, heads, p, head_dim)
        per_layer = flat.view(self.prefix_length, 2 * self.n_layer, self.n_head, self.head_dim).permute(1, 2, 0, 3)
        per_layer = per_layer.unsqueeze(1).expand(-1, batch_size, -1, -1, -1)
        return tuple((per_layer[2 * i], per_layer[2 * i + 1]) for i in range(self.n_layer))

    @torch.no_grad()
    def materialize(self) -> None:
        """Replace the reparameterisation by the keys/values it produces (as the paper does after training)."""
        if self.reparameterization is not None:
            flat = self.reparameterization(self.prefix)
            self.prefix = nn.Parameter(flat.detach().clone())
            self.reparameterization = None

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor | None = None) -> GPTOutput:
        """Run the frozen model on ``input_ids`` (``(batch, seq)``) behind the prefix."""
        return self.model(input_ids, past_key_values=self.prefix_key_values(input_ids.shape[0]), targets=targets)

    @torch.no_grad()
    def generate(self, prompt_ids: torch.Tensor | list[int], max_new_tokens: int, **kwargs: object) -> torch.Tensor:
        """:meth:`GPT.generate <dlnotes.models.gpt.GPT.generate>` behind the prefix (prefix not returned)."""
        return self.model.generate(prompt_ids, max_new_tokens, past_key_values=self.prefix_key_values(1), **kwargs)


@export("finetune.PromptTuning")
class PromptTuning(nn.Module):
    """Trainable soft-prompt embeddings prepended to the input of a frozen GPT.

    Args:
        model: The GPT to adapt (its parameters are frozen).
        num_virtual_tokens: Number of soft-prompt vectors ``p``.
        init_ids: Optional ids of real tokens whose embeddings initialise the soft
            prompt (Lester et al. found vocabulary initialisation helps); repeated or
            cut to length ``p``. Default: small random vectors.
        seed: Seed of the random initialisation.

    Raises:
        TypeError: If ``model`` is not a GPT.
        ValueError: If ``num_virtual_tokens`` is not positive or not shorter than ``max_len``.
    """

    def __init__(self, model: GPT, num_virtual_tokens: int, init_ids: list[int] | None = None, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(model, GPT):
            raise TypeError(f"model must be a dlnotes GPT, got {type(model).__name__}")
        if isinstance(num_virtual_tokens, bool) or not isinstance(num_virtual_tokens, int) or num_virtual_tokens < 1:
            raise ValueError(f"num_virtual_tokens must be a positive integer, got {num_virtual_tokens!r}")
        if num_virtual_tokens >= model.config.max_len:
            raise ValueError(
                f"num_virtual_tokens ({num_virtual_tokens}) must be shorter than max_len ({model.config.max_len})"
            )
        self.model = model
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        embedding = model.tok_emb.weight
        if init_ids:
            index = torch.tensor(init_ids, device=embedding.device).repeat(num_virtual_tokens)[:num_virtual_tokens]
            initial = embedding[index].detach().clone()
        else:
            generator = torch.Generator().manual_seed(seed)
            initial = 0.02 * torch.randn(num_virtual_tokens, model.config.d_model, generator=generator)
        self.soft_prompt = nn.Parameter(initial.to(embedding.device, embedding.dtype))

    def prompt_embeddings(self) -> torch.Tensor:
        """The ``(p, d_model)`` virtual-token embeddings put in front of the input."""
        return self.soft_prompt

    @property
    def num_virtual_tokens(self) -> int:
        """Length of the soft prompt."""
        return self.soft_prompt.shape[0]

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor | None = None) -> GPTOutput:
        """Logits for the real tokens only (the soft prompt's positions are dropped).

        Shape:
            input_ids, targets: ``(batch, seq)``; logits ``(batch, seq, vocab)``.
        """
        batch = input_ids.shape[0]
        prompt = self.prompt_embeddings()
        embeds = torch.cat([prompt.expand(batch, -1, -1), self.model.tok_emb(input_ids)], dim=1)
        if targets is not None:  # no loss on the virtual tokens
            ignore = targets.new_full((batch, self.num_virtual_tokens), -100)
            targets = torch.cat([ignore, targets], dim=1)
        out = self.model(inputs_embeds=embeds, targets=targets)
        p = self.num_virtual_tokens
        return GPTOutput(out.logits[:, p:], out.loss, None, out.hidden_states[:, p:])

    @torch.no_grad()
    def generate(self, prompt_ids: torch.Tensor | list[int], max_new_tokens: int, **kwargs: object) -> torch.Tensor:
        """Generate after the soft prompt: its keys/values are computed once and reused."""
        was_training = self.model.training
        self.model.eval()
        try:
            cache = self.model(inputs_embeds=self.prompt_embeddings()[None], use_cache=True).past_key_values
        finally:
            self.model.train(was_training)
        return self.model.generate(prompt_ids, max_new_tokens, past_key_values=cache, **kwargs)


@export("finetune.PTuning")
class PTuning(PromptTuning):
    """P-tuning: soft-prompt embeddings produced by a prompt encoder (BiLSTM, then MLP).

    The trainable ``soft_prompt`` here is the encoder's *input* :math:`e_1 \\dots e_p`;
    the virtual tokens put in front of the input are

    .. math::

        h_i = \\text{MLP}\\big([\\overrightarrow{\\text{LSTM}}(e_{1:i});
        \\overleftarrow{\\text{LSTM}}(e_{i:p})]\\big),

    so each virtual token depends on all the others. After training,
    :meth:`materialize` replaces the encoder by its output, leaving plain prompt tuning.

    Args:
        model: The GPT to adapt (its parameters are frozen).
        num_virtual_tokens: Number of virtual tokens ``p``.
        hidden: Hidden size of each LSTM direction (default ``d_model // 2``).
        seed: Seed of the encoder's and the inputs' initialisation.

    Raises:
        TypeError: If ``model`` is not a GPT.
        ValueError: If ``num_virtual_tokens`` is invalid (see :class:`PromptTuning`) or
            ``hidden`` is not a positive integer.

    Examples:
        >>> from dlnotes.models.gpt import GPTConfig
        >>> tuned = PTuning(GPT(GPTConfig(vocab_size=10, n_layer=1, d_model=16)), num_virtual_tokens=3)
        >>> tuple(tuned.prompt_embeddings().shape)
        (3, 16)
    """

    def __init__(self, model: GPT, num_virtual_tokens: int, hidden: int | None = None, seed: int = 0) -> None:
        super().__init__(model, num_virtual_tokens, seed=seed)
        width = model.config.d_model
        hidden = width // 2 if hidden is None else hidden
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
        device = self.soft_prompt.device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            with torch.no_grad():  # unit-scale inputs: the LSTM's gates need more than 0.02
                self.soft_prompt.normal_()
            self.lstm = nn.LSTM(width, hidden, num_layers=2, bidirectional=True, batch_first=True).to(device)
            self.mlp = nn.Sequential(nn.Linear(2 * hidden, width), nn.ReLU(), nn.Linear(width, width)).to(device)

    def prompt_embeddings(self) -> torch.Tensor:
        """``MLP(BiLSTM(soft_prompt))``, or the stored result after :meth:`materialize`."""
        if self.lstm is None:
            return self.soft_prompt
        encoded, _ = self.lstm(self.soft_prompt[None])  # (1, p, 2 hidden): both directions
        return self.mlp(encoded[0])

    @torch.no_grad()
    def materialize(self) -> None:
        """Replace the encoder by the embeddings it produces (nothing else is needed at inference)."""
        if self.lstm is not None:
            embeddings = self.prompt_embeddings().detach().clone()
            self.lstm, self.mlp = None, None
            self.soft_prompt = nn.Parameter(embeddings)
