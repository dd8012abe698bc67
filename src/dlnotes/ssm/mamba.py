"""Mamba: a selective state-space block and a small language model built from it.

Gu and Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", 2023
(https://arxiv.org/abs/2312.00752). One block maps ``(batch, L, d_model)`` to the same
shape::

    x, z = in_proj(h).chunk(2)                # two branches of width d_inner = expand * d_model
    x    = silu(causal_depthwise_conv1d(x))   # local mixing over the last d_conv tokens
    Δ, B, C = x_proj(x)                       # input-dependent step size and matrices
    Δ    = softplus(dt_proj(Δ) + dt_bias)     # low-rank Δ, one value per channel and token
    y    = selective_scan(x, Δ, A, B, C, D)   # x_t = exp(ΔA) x_{t-1} + ΔB u_t, y = C x + D u
    out  = out_proj(y * silu(z))

``A = -exp(A_log)`` with ``A_log = log(1, 2, ..., d_state)`` for every channel (the S4D-real
initialisation), ``D = 1``, and the bias of ``dt_proj`` is the inverse softplus of step
sizes drawn log-uniformly from ``[dt_min, dt_max]``, so that ``softplus`` gives back those
step sizes at initialisation.

For generation a block runs one token at a time with two small states: the last
``d_conv`` inputs of the convolution, ``(batch, d_inner, d_conv)``, and the SSM state,
``(batch, d_inner, d_state)`` (:func:`selective_scan_step`). :class:`MambaLM` stacks
pre-norm residual blocks between an embedding and a tied output head.

The scan itself lives in :mod:`dlnotes.ssm.selective_scan` and is re-exported here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from dlnotes.foundations.api_export import export
from dlnotes.ssm.residual_lm import ResidualLM
from dlnotes.ssm.selective_scan import METHODS, selective_scan, selective_scan_step

__all__ = ["METHODS", "MambaBlock", "MambaConfig", "MambaLM", "selective_scan", "selective_scan_step"]

#: One ``(conv_state, ssm_state)`` pair per block, the recurrent state of a model.
BlockState = tuple[torch.Tensor, torch.Tensor]


@export("ssm.MambaBlock")
class MambaBlock(nn.Module):
    """The Mamba mixer: projections, causal depthwise convolution, selective scan, gate.

    Shape: ``(batch, L, d_model) -> (batch, L, d_model)``; :meth:`step` maps
    ``(batch, d_model)`` plus states to ``(batch, d_model)`` plus new states.

    Args:
        d_model: Width of the input and output.
        d_state: State size ``N`` per channel.
        d_conv: Kernel size of the causal depthwise convolution.
        expand: ``d_inner = expand * d_model``.
        dt_rank: Rank of the Δ projection; ``None`` means ``ceil(d_model / 16)``.
        dt_min: Smallest initial step size.
        dt_max: Largest initial step size.
        dt_init_floor: Initial step sizes are clamped to at least this.
        bias: Bias on ``in_proj`` and ``out_proj``.
        conv_bias: Bias on the convolution.
        scan_method: ``method`` passed to :func:`selective_scan` in :meth:`forward`.

    Raises:
        ValueError: On non-positive sizes, ``0 < dt_min <= dt_max`` violated or an
            unknown ``scan_method``.

    Examples:
        >>> block = MambaBlock(d_model=8, d_state=4)
        >>> block(torch.randn(2, 5, 8)).shape
        torch.Size([2, 5, 8])
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | None = None,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        bias: bool = False,
        conv_bias: bool = True,
        scan_method: str = "chunked",
    ) -> None:
        super().__init__()
        for name, value in (("d_model", d_model), ("d_state", d_state), ("d_conv", d_conv), ("expand", expand)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if dt_rank is not None and (not isinstance(dt_rank, int) or dt_rank < 1):
            raise ValueError(f"dt_rank must be a positive integer or None, got {dt_rank!r}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        if scan_method not in METHODS:
            raise ValueError(f"scan_method must be one of {METHODS}, got {scan_method!r}")
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        self.dt_rank = dt_rank or math.ceil(d_model / 16)
        self.scan_method = scan_method

        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        # Depthwise (groups = channels) and causal: pad d_conv - 1 on the left only.
        self.conv1d = nn.Conv1d(
            self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1, bias=conv_bias
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

        # Δ initialisation: weights uniform with std dt_rank^-1/2, bias = softplus^{-1}(dt),
        # dt log-uniform in [dt_min, dt_max], so softplus(bias) = dt at the start.
        std = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # log(e^dt - 1)
        # S4D-real: A = -(1, 2, ..., N) for every channel, stored as its log.
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.d_inner))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Run the block over a whole sequence.

        Args:
            hidden: ``(batch, L, d_model)``.

        Returns:
            ``(batch, L, d_model)``.

        Raises:
            ValueError: If ``hidden`` is not ``(batch, L, d_model)``.
        """
        if hidden.dim() != 3 or hidden.shape[-1] != self.d_model:
            raise ValueError(f"hidden must be (batch, L, {self.d_model}), got shape {tuple(hidden.shape)}")
        length = hidden.shape[1]
        x, z = self.in_proj(hidden).transpose(1, 2).chunk(2, dim=1)  # each (batch, d_inner, L)
        x = F.silu(self.conv1d(x)[..., :length])  # causal: keep the first L outputs
        delta, B, C = self._project(x.transpose(1, 2))  # (b, L, d_inner), (b, L, N), (b, L, N)
        y = selective_scan(
            x,
            delta.transpose(1, 2),
            self.A,
            B.transpose(1, 2),
            C.transpose(1, 2),
            self.D.float(),
            z=z,
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
            method=self.scan_method,
        )
        return self.out_proj(y.transpose(1, 2))

    def step(self, hidden: torch.Tensor, state: BlockState) -> tuple[torch.Tensor, BlockState]:
        """Run the block on one token, carrying the convolution and SSM states.

        Args:
            hidden: ``(batch, d_model)``, this token's input.
            state: ``(conv_state, ssm_state)`` from :meth:`initial_state` or the previous
                step: ``(batch, d_inner, d_conv)`` and ``(batch, d_inner, d_state)``.

        Returns:
            ``(output, new_state)`` with ``output: (batch, d_model)``.

        Raises:
            ValueError: On shapes that do not fit the block.
        """
        if hidden.dim() != 2 or hidden.shape[-1] != self.d_model:
            raise ValueError(f"hidden must be (batch, {self.d_model}), got shape {tuple(hidden.shape)}")
        conv_state, ssm_state = state
        batch = hidden.shape[0]
        if tuple(conv_state.shape) != (batch, self.d_inner, self.d_conv):
            raise ValueError(
                f"conv_state must be {(batch, self.d_inner, self.d_conv)}, got {tuple(conv_state.shape)}"
            )
        x, z = self.in_proj(hidden).chunk(2, dim=-1)  # each (batch, d_inner)
        # Shift the window left and append this token; the conv is a dot product with it.
        conv_state = torch.cat([conv_state[:, :, 1:], x.unsqueeze(-1)], dim=-1)
        x = (conv_state * self.conv1d.weight[:, 0]).sum(-1)
        if self.conv1d.bias is not None:
            x = x + self.conv1d.bias
        x = F.silu(x)
        delta, B, C = self._project(x)
        y, ssm_state = selective_scan_step(
            ssm_state,
            x,
            delta,
            self.A,
            B,
            C,
            self.D.float(),
            z_t=z,
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
        )
        return self.out_proj(y), (conv_state, ssm_state)

    def initial_state(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> BlockState:
        """Zero states before the first token: ``(conv_state, ssm_state)``."""
        device = device or self.A_log.device
        conv_state = torch.zeros(batch, self.d_inner, self.d_conv, device=device, dtype=dtype or self.A_log.dtype)
        ssm_state = torch.zeros(batch, self.d_inner, self.d_state, device=device, dtype=torch.float32)
        return conv_state, ssm_state

    @property
    def A(self) -> torch.Tensor:
        """The state matrix ``A = -exp(A_log)``, ``(d_inner, d_state)``, in float32."""
        return -torch.exp(self.A_log.float())

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (..., d_inner) -> Δ before bias (..., d_inner), B and C (..., d_state)."""
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        return dt @ self.dt_proj.weight.t(), B, C  # the bias is added inside the scan


@export("ssm.MambaConfig")
@dataclass(frozen=True)
class MambaConfig:
    """Hyper-parameters of :class:`MambaLM`.

    Args:
        vocab_size: Number of token ids.
        d_model: Width of the residual stream.
        n_layer: Number of Mamba blocks.
        d_state: SSM state size per channel.
        d_conv: Convolution kernel size.
        expand: Inner width as a multiple of ``d_model``.
        norm: ``"rms"`` (RMSNorm) or ``"layer"`` (LayerNorm).
        scan_method: Scan used by the blocks' full-sequence forward.

    Raises:
        ValueError: On non-positive sizes or an unknown ``norm``.
    """

    vocab_size: int
    d_model: int = 64
    n_layer: int = 2
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    norm: Literal["rms", "layer"] = "rms"
    scan_method: str = "chunked"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layer"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.norm not in ("rms", "layer"):
            raise ValueError(f"norm must be 'rms' or 'layer', got {self.norm!r}")


@export("ssm.MambaLM")
class MambaLM(ResidualLM):
    """A small Mamba language model: embedding, pre-norm residual blocks, tied head.

    Each layer computes ``h = h + block(norm(h))``; a final norm precedes the output
    head, whose weight is the embedding matrix (the shell is
    :class:`dlnotes.ssm.residual_lm.ResidualLM`, shared with the S4D model). Shape:
    ``ids (batch, L)`` to ``logits (batch, L, vocab_size)``; :meth:`step` runs one token
    with every block's ``(conv_state, ssm_state)``.

    Args:
        config: The hyper-parameters.

    Examples:
        >>> model = MambaLM(MambaConfig(vocab_size=10, d_model=16, n_layer=1, d_state=4))
        >>> model(torch.randint(0, 10, (2, 7))).shape
        torch.Size([2, 7, 10])
    """

    def __init__(self, config: MambaConfig) -> None:
        def block(index: int) -> MambaBlock:
            return MambaBlock(
                config.d_model,
                d_state=config.d_state,
                d_conv=config.d_conv,
                expand=config.expand,
                scan_method=config.scan_method,
            )

        norm = nn.RMSNorm if config.norm == "rms" else nn.LayerNorm
        super().__init__(config.vocab_size, config.d_model, config.n_layer, block, norm)
        self.config = config
