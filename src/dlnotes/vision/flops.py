"""Count the multiply-accumulates (MACs) of a network's convolutions and linear layers.

Papers on efficient networks report cost as "FLOPs" or "mult-adds"; for MobileNet and
ShuffleNet both mean the number of multiply-accumulate operations of one forward pass.
A convolution with ``C_in / groups`` input channels per group and a ``k_h x k_w`` kernel
produces ``N * C_out * H_out * W_out`` outputs, each a dot product of length
``(C_in / groups) * k_h * k_w``:

.. math::

    \\text{MACs}_{\\text{conv}} = N \\, C_{out} H_{out} W_{out} \\cdot \\frac{C_{in}}{g} k_h k_w,
    \\qquad
    \\text{MACs}_{\\text{linear}} = (\\text{outputs}) \\cdot d_{in}.

Bias additions, batch normalisation, activations and pooling are not counted (the
convention of the papers and of ``torch.utils.flop_counter``, which reports
``2 x MACs`` for the same layers because a multiply-accumulate is two floating-point
operations).

:func:`count_flops` finds the output shapes with forward hooks during one forward pass
on the ``meta`` device, so it does no arithmetic and allocates no memory.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from dlnotes.foundations.api_export import export

__all__ = ["count_flops"]


@export("vision.count_flops")
def count_flops(model: nn.Module, input_size: Sequence[int]) -> int:
    """Multiply-accumulates of all convolutions and linear layers in one forward pass.

    Convention: one multiply-add is counted once ("FLOPs" as in the MobileNet and
    ShuffleNet papers). ``torch.utils.flop_counter.FlopCounterMode`` counts the same
    layers as two FLOPs per multiply-add, so its total is twice this number.

    Shape:
        The model is called on one tensor of shape ``input_size`` (batch included), e.g.
        ``(1, 3, 224, 224)``; the count covers the whole batch.

    Args:
        model: Any module that accepts a single float tensor. It is deep-copied to the
            ``meta`` device and put in eval mode; the model passed in is not modified.
            Hooks already registered on it are copied too and run during that pass.
        input_size: The input shape, a sequence of positive integers including the batch
            dimension.

    Returns:
        The number of multiply-accumulates of ``nn.Conv1d/2d/3d`` and ``nn.Linear``
        modules (``ConvTranspose`` and functional calls are not seen).

    Raises:
        TypeError: If ``model`` is not an ``nn.Module`` or ``input_size`` is not a
            sequence of integers.
        ValueError: If ``input_size`` is empty or has a dimension < 1.

    Examples:
        >>> count_flops(nn.Conv2d(3, 8, kernel_size=3, padding=1), (1, 3, 4, 4))  # 4*4*8 * 3*3*3
        3456
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    shape = _check_input_size(input_size)

    meta_model = copy.deepcopy(model).to("meta").eval()
    total = 0

    def conv_hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        # each output element is a dot product over (C_in / groups) * prod(kernel) inputs
        total += output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)

    def linear_hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features  # each output: a length-d_in dot product

    handles = []
    for module in meta_model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            meta_model(torch.empty(shape, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return total


def _check_input_size(input_size: Sequence[int]) -> tuple[int, ...]:
    if isinstance(input_size, (str, bytes)) or not isinstance(input_size, (Sequence, torch.Size)):
        raise TypeError(
            f"input_size must be a sequence of ints such as (1, 3, 224, 224), got {input_size!r}"
        )
    if len(input_size) == 0:
        raise ValueError("input_size must have at least one dimension, got ()")
    for size in input_size:
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"input_size must contain ints, got {input_size!r}")
        if size < 1:
            raise ValueError(f"every dimension of input_size must be >= 1, got {tuple(input_size)}")
    return tuple(input_size)
