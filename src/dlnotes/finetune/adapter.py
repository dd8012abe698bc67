"""Adapter tuning: small bottleneck networks inserted into a frozen model.

Houlsby et al., "Parameter-Efficient Transfer Learning for NLP", ICML 2019,
https://arxiv.org/abs/1902.00751.

An adapter maps a hidden vector :math:`h \\in \\mathbb{R}^d` to

.. math::

    h + W_\\text{up}\\, f(W_\\text{down} h + b_\\text{down}) + b_\\text{up},
    \\qquad W_\\text{down} \\in \\mathbb{R}^{m \\times d},\\; W_\\text{up} \\in \\mathbb{R}^{d \\times m},

with a bottleneck :math:`m \\ll d` and :math:`W_\\text{up}` initialised near zero, so a
freshly inserted adapter is (almost) the identity and training starts from the
pretrained model. Houlsby places one adapter after the attention output projection and
one after the feed-forward network of every layer, before the residual addition; only
the adapters (and optionally the layer norms) are trained.
"""

from __future__ import annotations

import torch
from torch import nn

from dlnotes._checks import check_positive_ints
from dlnotes.finetune.targets import Targets, wrap_linear_targets
from dlnotes.foundations.api_export import export

__all__ = ["Adapter", "AdaptedLayer", "add_adapters"]


class Adapter(nn.Module):
    """Bottleneck adapter: ``h + up(act(down(h)))``.

    Shape:
        input and output ``(..., d_model)``.

    Args:
        d_model: Width of the hidden vectors.
        bottleneck: Width of the bottleneck (>= 1).
        init_scale: Standard deviation of the up-projection's initial weights (its
            bias starts at zero); ``0`` makes the adapter exactly the identity at first.

    Raises:
        ValueError: If ``bottleneck`` or ``d_model`` is not positive or ``init_scale < 0``.

    Examples:
        >>> adapter = Adapter(16, bottleneck=4)
        >>> x = torch.randn(2, 16)
        >>> bool((adapter(x) - x).abs().max() < 1e-2)
        True
    """

    def __init__(self, d_model: int, bottleneck: int = 64, init_scale: float = 1e-3) -> None:
        super().__init__()
        _check_arguments(d_model=d_model, bottleneck=bottleneck, init_scale=init_scale)
        self.down = nn.Linear(d_model, bottleneck)
        self.up = nn.Linear(bottleneck, d_model)
        self.act = nn.GELU()
        # Near-identity start (Houlsby, section 2.1): the up-projection is (almost) zero,
        # so the branch adds (almost) nothing; the down-projection keeps nn.Linear's
        # default initialisation, otherwise both factors would start tiny and learn slowly.
        nn.init.normal_(self.up.weight, std=init_scale)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(self.act(self.down(h)))  # skip connection around the bottleneck


class AdaptedLayer(nn.Module):
    """A layer followed by an adapter on its output: ``adapter(layer(x))``."""

    def __init__(self, layer: nn.Module, adapter: Adapter) -> None:
        super().__init__()
        self.layer = layer
        self.adapter = adapter

    def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.layer(*args, **kwargs))


@export("finetune.add_adapters")
def add_adapters(
    model: nn.Module,
    bottleneck: int = 64,
    target_modules: Targets = ("o_proj", "down_proj"),
    init_scale: float = 1e-3,
    train_layer_norms: bool = False,
) -> nn.Module:
    """Insert an adapter after each targeted linear layer and freeze everything else.

    The defaults reproduce Houlsby's placement in :class:`dlnotes.models.gpt.GPT` (and
    in Llama-style models, which use the same names): after the attention output
    projection ``o_proj`` and after the MLP's ``down_proj``, before each residual add.

    Args:
        model: The model to adapt, in place.
        bottleneck: Adapter bottleneck width.
        target_modules: Last path components of the ``nn.Linear`` layers to follow
            with an adapter, or a predicate (see :func:`~dlnotes.finetune.targets.find_targets`).
        init_scale: Initial weight scale of the adapters (near-identity start).
        train_layer_norms: Also train every ``nn.LayerNorm`` (Houlsby does).

    Returns:
        The model; only adapter (and optionally layer-norm) parameters require gradients.

    Raises:
        ValueError: If a target name matches nothing, or a target already carries an adapter.
        TypeError: If a target is not an ``nn.Linear``.

    Examples:
        >>> from dlnotes.models.gpt import GPT, GPTConfig
        >>> model = add_adapters(GPT(GPTConfig(vocab_size=10, n_layer=2, d_model=16)), bottleneck=4)
        >>> sum(isinstance(m, Adapter) for m in model.modules())
        4
    """
    _check_arguments(bottleneck=bottleneck, init_scale=init_scale)  # before anything is modified

    def wrap(linear: nn.Linear) -> AdaptedLayer:
        adapter = Adapter(linear.out_features, bottleneck, init_scale).to(linear.weight.device, linear.weight.dtype)
        return AdaptedLayer(linear, adapter)

    wrap_linear_targets(model, target_modules, wrap, wrapper_type=AdaptedLayer, method="an adapter")
    if train_layer_norms:
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                for parameter in module.parameters():
                    parameter.requires_grad_(True)
    return model


def _check_arguments(init_scale: float, **sizes: int) -> None:
    check_positive_ints(**sizes)
    if init_scale < 0:
        raise ValueError(f"init_scale must be >= 0, got {init_scale}")
