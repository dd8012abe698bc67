"""LoRA: low-rank adaptation of linear layers.

Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022,
https://arxiv.org/abs/2106.09685; Kalajdzievski, "A Rank Stabilization Scaling Factor
for Fine-Tuning with LoRA" (rsLoRA), 2023, https://arxiv.org/abs/2312.03732.

A frozen weight :math:`W_0 \\in \\mathbb{R}^{d_\\text{out} \\times d_\\text{in}}` is adapted
by a trainable low-rank update:

.. math::

    h = W_0 x + \\frac{\\alpha}{r} B A x, \\qquad
    A \\in \\mathbb{R}^{r \\times d_\\text{in}},\\; B \\in \\mathbb{R}^{d_\\text{out} \\times r},

with :math:`A` Kaiming-uniform and :math:`B = 0`, so training starts exactly from the
pretrained model. rsLoRA scales by :math:`\\alpha/\\sqrt{r}` instead. After training the
update can be *merged*, :math:`W = W_0 + \\frac{\\alpha}{r}BA`, and inference costs
nothing extra; *unmerging* subtracts it again. Only :math:`A` and :math:`B` need saving.
"""

from __future__ import annotations

import math
import torch
from torch import nn

from dlnotes.finetune.targets import Targets, wrap_linear_targets
from dlnotes.foundations.api_export import export

__all__ = [
    "LoRALinear",
    "apply_lora",
    "merge_lora",
    "unmerge_lora",
    "lora_state_dict",
    "load_lora_state_dict",
    "count_parameters",
]


@export("finetune.LoRALinear")
class LoRALinear(nn.Module):
    """An ``nn.Linear`` plus a trainable low-rank update :math:`\\tfrac{\\alpha}{r} B A`.

    Shape:
        input ``(..., in_features)``; output ``(..., out_features)``.
        ``lora_A``: ``(r, in_features)``; ``lora_B``: ``(out_features, r)``.

    Args:
        base: The linear layer to adapt (kept as ``self.base``; its parameters are frozen).
        r: Rank of the update (>= 1).
        alpha: Scaling numerator: the update is multiplied by ``alpha / r``
            (or ``alpha / sqrt(r)`` with ``use_rslora``).
        dropout: Dropout applied to the input of the low-rank branch.
        use_rslora: Use the rank-stabilised scaling ``alpha / sqrt(r)``.

    Raises:
        TypeError: If ``base`` is not an ``nn.Linear``.
        ValueError: If ``r < 1``, ``alpha <= 0`` or ``dropout`` is outside ``[0, 1)``.

    Examples:
        >>> layer = LoRALinear(nn.Linear(8, 4), r=2, alpha=4)
        >>> layer.lora_A.shape, layer.lora_B.shape, layer.scaling
        (torch.Size([2, 8]), torch.Size([4, 2]), 2.0)
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0, use_rslora: bool = False) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        _check_hyperparameters(r, alpha, dropout)
        self.base = base
        self.r, self.alpha, self.use_rslora = r, alpha, use_rslora
        self.scaling = alpha / math.sqrt(r) if use_rslora else alpha / r
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear initialises its weight
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        for parameter in self.base.parameters():
            parameter.requires_grad_(False)

    @property
    def in_features(self) -> int:
        """Input width of the wrapped layer."""
        return self.base.in_features

    @property
    def out_features(self) -> int:
        """Output width of the wrapped layer."""
        return self.base.out_features

    def delta_weight(self) -> torch.Tensor:
        """The update :math:`\\tfrac{\\alpha}{r} B A`, shaped like ``base.weight``."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)  # W0 x (+ bias); already includes BA when merged
        if not self.merged:
            out = out + (self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling  # (alpha/r) B A x
        return out

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into ``base.weight`` (no-op when already merged)."""
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update from ``base.weight`` again (no-op when not merged)."""
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, scaling={self.scaling:g}, merged={self.merged}"


@export("finetune.apply_lora")
def apply_lora(
    model: nn.Module,
    target_modules: Targets,
    r: int = 8,
    alpha: float = 8,
    dropout: float = 0.0,
    use_rslora: bool = False,
) -> nn.Module:
    """Wrap chosen ``nn.Linear`` submodules of any model in :class:`LoRALinear` and freeze the rest.

    Args:
        model: Any module (ours, or e.g. a Hugging Face Llama-style model).
        target_modules: Names matched against the *last* component of each submodule's
            path (``["q_proj", "v_proj"]`` matches ``blocks.0.attn.q_proj``), or a
            predicate ``(qualified_name, module) -> bool``.
        r: Rank.
        alpha: Scaling numerator.
        dropout: Dropout on the low-rank branch's input.
        use_rslora: Rank-stabilised scaling.

    Returns:
        The same model, modified in place: only LoRA parameters require gradients.

    Raises:
        ValueError: If no submodule matches, a name in ``target_modules`` matches
            nothing, a target already carries LoRA, or ``r``/``alpha``/``dropout`` are
            invalid.
        TypeError: If a matched submodule is not an ``nn.Linear``.

    Examples:
        >>> model = nn.Sequential()
        >>> model.add_module("q_proj", nn.Linear(4, 4))
        >>> _ = apply_lora(model, ["q_proj"], r=2)
        >>> count_parameters(model)
        (16, 36)
    """
    _check_hyperparameters(r, alpha, dropout)  # before anything is modified
    return wrap_linear_targets(
        model,
        target_modules,
        lambda linear: LoRALinear(linear, r, alpha, dropout=dropout, use_rslora=use_rslora),
        wrapper_type=LoRALinear,
        method="LoRA",
    )


@export("finetune.merge_lora")
def merge_lora(model: nn.Module) -> nn.Module:
    """Merge every :class:`LoRALinear` of ``model`` into its base weight (in place)."""
    for module in _lora_layers(model):
        module.merge()
    return model


@export("finetune.unmerge_lora")
def unmerge_lora(model: nn.Module) -> nn.Module:
    """Undo :func:`merge_lora` (in place)."""
    for module in _lora_layers(model):
        module.unmerge()
    return model


@export("finetune.lora_state_dict")
def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter weights: the ``lora_A``/``lora_B`` entries of ``model.state_dict()``."""
    return {
        name: tensor.detach().clone()
        for name, tensor in model.state_dict().items()
        if name.rsplit(".", 1)[-1] in ("lora_A", "lora_B")
    }


@export("finetune.load_lora_state_dict")
def load_lora_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """Load adapter weights saved by :func:`lora_state_dict` into a model with the same LoRA layers.

    Raises:
        ValueError: If a key is missing from or unknown to the model, or a layer is
            currently merged (loading would leave the merged weight stale).
    """
    expected = set(lora_state_dict(model))
    given = set(state_dict)
    if expected != given:
        raise ValueError(
            f"LoRA keys do not match: missing {sorted(expected - given)[:5]}, unexpected {sorted(given - expected)[:5]}"
        )
    if any(module.merged for module in _lora_layers(model)):
        raise ValueError("unmerge the model before loading LoRA weights")
    model.load_state_dict(state_dict, strict=False)
    return model


@export("finetune.count_parameters")
def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (shared tensors counted once)."""
    seen: set[int] = set()
    trainable = total = 0
    for parameter in model.parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        total += parameter.numel()
        trainable += parameter.numel() if parameter.requires_grad else 0
    return trainable, total


def _check_hyperparameters(r: int, alpha: float, dropout: float) -> None:
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"r must be a positive integer, got {r!r}")
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


def _lora_layers(model: nn.Module) -> list[LoRALinear]:
    return [module for module in model.modules() if isinstance(module, LoRALinear)]
