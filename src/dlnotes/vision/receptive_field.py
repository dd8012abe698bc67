"""Receptive field, jump (effective stride) and start offset of every layer of a CNN.

A unit of layer :math:`l` sees a window of the input. For a single path of layers with
kernel :math:`k_l`, stride :math:`s_l`, left padding :math:`p_l` and dilation
:math:`d_l` (effective kernel :math:`\\kappa_l = d_l (k_l - 1) + 1`) three numbers
describe that window (Araujo, Norris and Sim, Distill 2019):

.. math::

    j_l = j_{l-1} s_l, \\qquad
    r_l = r_{l-1} + (\\kappa_l - 1) j_{l-1}, \\qquad
    u_l = u_{l-1} - p_l j_{l-1},

starting from the input itself, :math:`j_0 = r_0 = 1, u_0 = 0`. Unit :math:`i` of layer
:math:`l` then covers input positions :math:`u_l + i j_l, \\dots, u_l + i j_l + r_l - 1`.
This is the *bottom-up* recurrence. The *top-down* one walks from a single unit of the
top layer back to the input, :math:`R \\leftarrow (R - 1) s_l + \\kappa_l` for
:math:`l = L, \\dots, 1`; both equal the closed form
:math:`r_L = 1 + \\sum_l (\\kappa_l - 1) \\prod_{i<l} s_i`.

Public functions:

* :func:`receptive_field`: the per-layer records for a list of layer specs or a
  sequential ``nn.Module``.
* :func:`receptive_field_top_down`: the seed article's top-down formula (size only).
* :func:`layer_specs`: the conv/pool layers of a sequential module as :class:`LayerSpec`.
* :func:`empirical_receptive_field`: the input region where the gradient of one output
  unit is non-zero, the measurement the analytic numbers must match.
* :func:`alexnet_layers`, :func:`vgg16_layers`, :func:`resnet50_layers`: layer specs of
  three classic networks, written from their papers (and TF-Slim's padding, to compare
  with the published table).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from dlnotes.foundations.api_export import export

__all__ = [
    "LayerSpec",
    "ReceptiveField",
    "alexnet_layers",
    "empirical_receptive_field",
    "layer_specs",
    "receptive_field",
    "receptive_field_top_down",
    "resnet50_layers",
    "vgg16_layers",
]


@dataclass(frozen=True)
class LayerSpec:
    """One convolution or pooling layer along one spatial axis.

    Attributes:
        kernel: Kernel size ``k >= 1``.
        stride: Stride ``s >= 1``.
        padding: Padding added on the *left* (top) side, ``p >= 0``; PyTorch pads both
            sides by this amount, TensorFlow's ``SAME`` may pad the right side more.
        dilation: Dilation ``d >= 1``; the effective kernel is ``d * (k - 1) + 1``.
        name: A label for tables and error messages.
        ceil_mode: Round the output size up (PyTorch pooling's ``ceil_mode``); it only
            changes ``output_size``, never the receptive field.
    """

    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    name: str = ""
    ceil_mode: bool = False

    def __post_init__(self) -> None:
        where = f"layer {self.name!r}" if self.name else "LayerSpec"
        for field, value, low in (("kernel", self.kernel, 1), ("stride", self.stride, 1),
                                  ("padding", self.padding, 0), ("dilation", self.dilation, 1)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{where}: {field} must be an int, got {type(value).__name__} {value!r}")
            if value < low:
                raise ValueError(f"{where}: {field} must be >= {low}, got {value}")
        if not isinstance(self.name, str):
            raise TypeError(f"{where}: name must be a str, got {type(self.name).__name__}")

    @property
    def effective_kernel(self) -> int:
        """Input span of one application of the kernel, ``d * (k - 1) + 1``."""
        return self.dilation * (self.kernel - 1) + 1


@dataclass(frozen=True)
class ReceptiveField:
    """Where the units of one layer look in the input (one spatial axis).

    Attributes:
        name: The layer's name.
        size: Receptive field size ``r``: how many input positions one unit sees.
        jump: Effective stride ``j``: input distance between neighbouring units.
        start: Input position of the first (leftmost) pixel seen by unit 0; negative
            when that window starts in the padding. ``-start`` is Distill's
            "effective padding".
        output_size: Number of units along the axis, when ``input_size`` was given.
    """

    name: str
    size: int
    jump: int
    start: int
    output_size: int | None = None

    @property
    def center(self) -> float:
        """Centre of unit 0's window, ``start + (size - 1) / 2``."""
        return self.start + (self.size - 1) / 2

    def span(self, index: int) -> tuple[int, int]:
        """First and last input position (inclusive) seen by unit ``index``."""
        first = self.start + index * self.jump
        return first, first + self.size - 1


LayerLike = LayerSpec | Mapping | Sequence[int]


@export("vision.receptive_field")
def receptive_field(
    layers: Iterable[LayerLike] | nn.Module,
    input_size: int | None = None,
    *,
    axis: int | None = None,
) -> list[ReceptiveField]:
    """Receptive field size, jump and start of every layer, bottom-up.

    Implements :math:`j_l = j_{l-1} s_l`, :math:`r_l = r_{l-1} + (\\kappa_l - 1) j_{l-1}`,
    :math:`u_l = u_{l-1} - p_l j_{l-1}` with :math:`j_0 = r_0 = 1`, :math:`u_0 = 0`.

    Shape:
        One spatial axis. ``input_size`` is the input's length along it; each record's
        ``output_size`` uses PyTorch's rule ``floor((n + 2p - kappa) / s) + 1``.

    Args:
        layers: The layers in forward order: :class:`LayerSpec` objects, mappings with
            keys ``kernel``, ``stride``, ``padding``, ``dilation``, ``name``,
            ``ceil_mode`` or tuples ``(kernel[, stride[, padding[, dilation]]])``; or a
            sequential ``nn.Module`` (read with :func:`layer_specs`).
        input_size: Optional input length, to fill ``output_size`` and check that every
            layer has at least one output unit.
        axis: For an ``nn.Module`` with non-square kernels, the spatial axis to read
            (0 = height); ``None`` requires all axes to agree. Ignored for a list of specs.

    Returns:
        One :class:`ReceptiveField` per layer; the last one is the network's.

    Raises:
        TypeError: For a layer that is neither a spec, mapping nor tuple, non-integer
            fields, or an unsupported module type.
        ValueError: For an empty list, ``kernel < 1``, ``stride < 1``, ``padding < 0``,
            ``dilation < 1``, unknown mapping keys, or an ``input_size`` too small.

    Examples:
        >>> [(r.size, r.jump, r.start) for r in receptive_field([(3, 1, 1), (2, 2), (3, 1, 1)])]
        [(3, 1, -1), (4, 2, -1), (8, 2, -3)]
    """
    specs = layer_specs(layers, axis=axis) if isinstance(layers, nn.Module) else _to_specs(layers)
    if input_size is not None:
        if isinstance(input_size, bool) or not isinstance(input_size, int):
            raise TypeError(f"input_size must be an int or None, got {type(input_size).__name__}")
        if input_size < 1:
            raise ValueError(f"input_size must be >= 1, got {input_size}")
    size, jump, start, length = 1, 1, 0, input_size
    records = []
    for index, spec in enumerate(specs):
        size = size + (spec.effective_kernel - 1) * jump  # r_l = r_{l-1} + (kappa_l - 1) j_{l-1}
        start = start - spec.padding * jump  # u_l = u_{l-1} - p_l j_{l-1}
        jump = jump * spec.stride  # j_l = j_{l-1} s_l
        if length is not None:
            length = _output_length(length, spec, index)
        records.append(ReceptiveField(spec.name or f"layer{index}", size, jump, start, length))
    return records


@export("vision.receptive_field_top_down")
def receptive_field_top_down(layers: Iterable[LayerLike] | nn.Module) -> int:
    """Receptive field of one top-layer unit, walking from the top back to the input.

    The seed article's formula: start from ``R = 1`` (one unit of the top layer) and for
    each layer from the top down replace ``R`` by the span it needs in the layer below,
    ``R <- (R - 1) * stride + kappa`` (``kappa`` the effective kernel size).

    Args:
        layers: As for :func:`receptive_field`.

    Returns:
        The receptive field size of the last layer, in input positions.

    Raises:
        TypeError: As for :func:`receptive_field`.
        ValueError: As for :func:`receptive_field`.

    Examples:
        >>> receptive_field_top_down([(3, 1), (2, 2), (3, 1)])
        8
    """
    specs = layer_specs(layers) if isinstance(layers, nn.Module) else _to_specs(layers)
    size = 1
    for spec in reversed(specs):
        size = (size - 1) * spec.stride + spec.effective_kernel  # R_{l-1} = (R_l - 1) s_l + kappa_l
    return size


_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
#: Layers that act on each position separately (batch norm as at inference).
_POINTWISE = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
    nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh,
    nn.Softplus, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
)
_CONTAINERS = (nn.Sequential, nn.ModuleList)


@export("vision.layer_specs")
def layer_specs(layers: Iterable[LayerLike] | nn.Module, axis: int | None = None) -> list[LayerSpec]:
    """The convolution and pooling layers of a sequential model, as :class:`LayerSpec`.

    Containers (``nn.Sequential``, ``nn.ModuleList``) are walked in registration order,
    which is the forward order of a sequential model. Pointwise layers (activations,
    dropout, batch norm) leave the receptive field unchanged and are skipped. Anything
    else (``nn.Linear``, transposed convolutions, adaptive pooling, a custom block with
    several paths) raises, because its receptive field cannot be read off a list.

    Args:
        layers: An ``nn.Module``, or already a list of specs (returned normalised).
        axis: Spatial axis to read from tuple-valued ``kernel_size`` etc. (0 = first);
            ``None`` requires every spatial axis to agree.

    Returns:
        The specs in forward order, named by their module path.

    Raises:
        TypeError: For an unsupported module type, or a custom module with children.
        ValueError: For an empty model, an ``axis`` out of range, or per-axis values
            that differ while ``axis`` is ``None``.

    Examples:
        >>> specs = layer_specs(nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)))
        >>> [(spec.name, spec.kernel, spec.stride, spec.padding) for spec in specs]
        [('0', 3, 1, 1), ('2', 2, 2, 0)]
    """
    if not isinstance(layers, nn.Module):
        return _to_specs(layers)
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, int) or axis < 0):
        raise ValueError(f"axis must be None or a non-negative int, got {axis!r}")
    specs: list[LayerSpec] = []
    _collect(layers, "", axis, specs)
    if not specs:
        raise ValueError(f"the model {type(layers).__name__} has no convolution or pooling layer")
    return specs


@export("vision.empirical_receptive_field")
def empirical_receptive_field(
    model: nn.Module,
    input_shape: Sequence[int],
    output_index: Sequence[int],
    seed: int = 0,
) -> list[tuple[int, int]]:
    """Bounding box of the input positions where one output unit's gradient is non-zero.

    Feeds a positive random input (``U(0.5, 1.5)``), sums the output channels at
    ``output_index`` and back-propagates. The positions with a non-zero input gradient
    are those the unit actually depends on: a subset of the analytic receptive field
    (clipped to the input), equal to it when the weights are positive and pooling is
    average pooling. Max pooling passes gradient to one position per window, so the
    measured region can then be smaller.

    Shape:
        ``input_shape`` is ``(batch, channels, *spatial)``; ``output_index`` has one
        entry per spatial axis of the model's output.

    Args:
        model: Maps ``(batch, channels, *spatial)`` to ``(batch, channels', *spatial')``.
        input_shape: Shape of the probe input.
        output_index: Spatial index of the output unit (batch element 0).
        seed: Seed of the random input.

    Returns:
        For each spatial axis, ``(first, last)`` input positions (inclusive) with
        non-zero gradient.

    Raises:
        ValueError: If ``input_shape`` has fewer than 3 entries, ``output_index`` has the
            wrong length or lies outside the output, or no input position affects the unit.

    Examples:
        >>> empirical_receptive_field(nn.Conv1d(1, 1, 3), (1, 1, 10), (4,))
        [(4, 6)]
    """
    shape = tuple(int(n) for n in input_shape)
    if len(shape) < 3 or min(shape) < 1:
        raise ValueError(
            f"input_shape must be (batch, channels, *spatial) with positive sizes, got {tuple(input_shape)}"
        )
    generator = torch.Generator().manual_seed(seed)
    inputs = (torch.rand(shape, generator=generator) + 0.5).requires_grad_(True)
    outputs = model(inputs)
    spatial = outputs.shape[2:]
    index = tuple(int(i) for i in output_index)
    if len(index) != len(spatial) or any(not 0 <= i < n for i, n in zip(index, spatial)):
        raise ValueError(
            f"output_index must index the output's spatial shape {tuple(spatial)}, got {tuple(output_index)}"
        )
    outputs[(0, slice(None), *index)].sum().backward()
    touched = inputs.grad.abs().sum(dim=(0, 1)) > 0  # (*spatial) mask of influential positions
    if not touched.any():
        raise ValueError("no input position affects this output unit (zero weights or dead ReLUs?)")
    boxes = []
    for dim in range(touched.dim()):
        others = tuple(d for d in range(touched.dim()) if d != dim)
        along = touched.any(dim=others) if others else touched
        positions = along.nonzero().flatten()
        boxes.append((int(positions[0]), int(positions[-1])))
    return boxes


# ---------------------------------------------------------------------------------------
# Three classic networks, one spatial axis, with the padding conventions of TF-Slim (the
# implementations behind the published table of Araujo et al.); PyTorch's symmetric
# padding differs only where noted.


@export("vision.alexnet_layers")
def alexnet_layers(convention: Literal["slim", "torch"] = "slim") -> list[LayerSpec]:
    """AlexNet's eight spatial layers (Krizhevsky et al. 2012): conv1 ... pool5.

    Args:
        convention: ``"slim"``: TF-Slim's ``alexnet_v2`` (conv1 unpadded), the network in
            the published table; ``"torch"``: padding 2 on conv1 as in torchvision.

    Returns:
        conv1 11/4, pool1 3/2, conv2 5, pool2 3/2, conv3-5 3, pool5 3/2.

    Raises:
        ValueError: For an unknown convention.
    """
    _check_choice("convention", convention, ("slim", "torch"))
    return [
        LayerSpec(11, 4, 0 if convention == "slim" else 2, name="conv1"),
        LayerSpec(3, 2, name="pool1"),
        LayerSpec(5, 1, 2, name="conv2"),
        LayerSpec(3, 2, name="pool2"),
        LayerSpec(3, 1, 1, name="conv3"),
        LayerSpec(3, 1, 1, name="conv4"),
        LayerSpec(3, 1, 1, name="conv5"),
        LayerSpec(3, 2, name="pool5"),
    ]


@export("vision.vgg16_layers")
def vgg16_layers() -> list[LayerSpec]:
    """VGG-16's convolutional part (Simonyan and Zisserman 2015, configuration D).

    Returns:
        Thirteen 3x3 convolutions with padding 1 (``conv1_1`` ... ``conv5_3``) in five
        groups of 2, 2, 3, 3, 3, each followed by a 2x2 max pool of stride 2.
    """
    layers = []
    for group, count in enumerate((2, 2, 3, 3, 3), start=1):
        layers += [LayerSpec(3, 1, 1, name=f"conv{group}_{i}") for i in range(1, count + 1)]
        layers.append(LayerSpec(2, 2, name=f"pool{group}"))
    return layers


@export("vision.resnet50_layers")
def resnet50_layers(stride_at: Literal["slim", "paper", "torch"] = "slim") -> list[LayerSpec]:
    """ResNet-50 (He et al. 2016) along its longest path: the 3x3 convolutions.

    Every bottleneck unit is ``1x1 -> 3x3 -> 1x1`` plus a shortcut. The shortcut (identity
    or a 1x1 projection) sees a sub-window of what the 3x3 path sees, centred on the same
    point, so the union of both paths is the 3x3 path's window and the network can be
    read as one sequence of its convolutions. Where the stride-2 down-sampling sits
    changes the receptive field:

    * ``"slim"``: TF-Slim's ``resnet_v1_50``, stride 2 in the 3x3 of the *last* unit of
      blocks 1-3 (the network of the published table);
    * ``"paper"``: the original Caffe model, stride 2 in the first 1x1 of conv3_1,
      conv4_1, conv5_1;
    * ``"torch"``: torchvision's "v1.5", stride 2 in the 3x3 of those first units.

    Args:
        stride_at: Which of the three placements.

    Returns:
        conv1 7/2 (padding 3), pool1 3/2, then 16 units of three convolutions, named
        ``block{b}/unit_{u}/conv{1,2,3}``.

    Raises:
        ValueError: For an unknown ``stride_at``.
    """
    _check_choice("stride_at", stride_at, ("slim", "paper", "torch"))
    # TF "SAME" max pooling of a 112-wide map with a 3-wide kernel and stride 2 pads 0
    # on the left (1 on the right); torchvision pads 1 on both sides.
    pool_padding = 1 if stride_at == "torch" else 0
    layers = [LayerSpec(7, 2, 3, name="conv1"), LayerSpec(3, 2, pool_padding, name="pool1")]
    for block, units in enumerate((3, 4, 6, 3), start=1):
        for unit in range(1, units + 1):
            down_last = stride_at == "slim" and block < 4 and unit == units
            down_first = stride_at != "slim" and block > 1 and unit == 1
            stride_1x1 = 2 if down_first and stride_at == "paper" else 1
            stride_3x3 = 2 if down_last or (down_first and stride_at == "torch") else 1
            prefix = f"block{block}/unit_{unit}"
            layers += [
                LayerSpec(1, stride_1x1, name=f"{prefix}/conv1"),
                LayerSpec(3, stride_3x3, 1, name=f"{prefix}/conv2"),
                LayerSpec(1, 1, name=f"{prefix}/conv3"),
            ]
    return layers


# ---------------------------------------------------------------------------------------
# Private helpers.

_SPEC_KEYS = ("kernel", "stride", "padding", "dilation", "name", "ceil_mode")


def _to_specs(layers: Iterable[LayerLike]) -> list[LayerSpec]:
    """Normalise specs, mappings and tuples to a non-empty list of LayerSpec."""
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable):
        raise TypeError(f"layers must be a list of layer specs or an nn.Module, got {type(layers).__name__}")
    specs = []
    for index, layer in enumerate(layers):
        if isinstance(layer, LayerSpec):
            specs.append(layer)
        elif isinstance(layer, Mapping):
            unknown = sorted(set(layer) - set(_SPEC_KEYS))
            if unknown:
                raise ValueError(f"layers[{index}] has unknown keys {unknown}; allowed: {list(_SPEC_KEYS)}")
            if "kernel" not in layer:
                raise ValueError(f"layers[{index}] needs a 'kernel' entry, got keys {sorted(layer)}")
            specs.append(LayerSpec(**{"name": f"layer{index}", **layer}))
        elif isinstance(layer, Sequence) and not isinstance(layer, (str, bytes)):
            if not 1 <= len(layer) <= 4:
                raise ValueError(
                    f"layers[{index}] must be (kernel[, stride[, padding[, dilation]]]), got {tuple(layer)}"
                )
            specs.append(LayerSpec(*layer, name=f"layer{index}"))
        else:
            raise TypeError(f"layers[{index}] must be a LayerSpec, a mapping or a tuple, got {type(layer).__name__}")
    if not specs:
        raise ValueError("layers must contain at least one layer, got an empty list")
    return specs


def _output_length(length: int, spec: LayerSpec, index: int) -> int:
    """PyTorch's output length of one layer; raises if there is no output unit."""
    span = length + 2 * spec.padding - spec.effective_kernel
    if span < 0:
        raise ValueError(
            f"layer {index} ({spec.name or 'unnamed'}) gets input size {length}, smaller than its effective "
            f"kernel {spec.effective_kernel} after padding {spec.padding} on each side"
        )
    if not spec.ceil_mode:
        return span // spec.stride + 1
    out = -(-span // spec.stride) + 1
    if (out - 1) * spec.stride >= length + spec.padding:  # the last window must start inside
        out -= 1
    return out


def _collect(module: nn.Module, path: str, axis: int | None, specs: list[LayerSpec]) -> None:
    """Append the specs of ``module`` (recursing into containers) to ``specs``."""
    label = path or type(module).__name__
    if isinstance(module, _CONTAINERS):
        for name, child in module.named_children():
            _collect(child, f"{path}.{name}" if path else name, axis, specs)
    elif isinstance(module, nn.modules.conv._ConvTransposeNd):
        raise TypeError(
            f"module {label!r} ({type(module).__name__}) is a transposed convolution; "
            "receptive_field supports Conv1d/2d/3d, MaxPool and AvgPool layers"
        )
    elif isinstance(module, _CONVOLUTIONS):
        kernel, stride, dilation = (
            _pick(label, field, getattr(module, field), axis) for field in ("kernel_size", "stride", "dilation")
        )
        padding = module.padding
        if padding == "valid":
            padding = 0
        elif padding == "same":  # PyTorch puts total // 2 on the left, the rest on the right
            padding = dilation * (kernel - 1) // 2
        else:
            padding = _pick(label, "padding", padding, axis)
        specs.append(LayerSpec(kernel, stride, padding, dilation, name=label))
    elif isinstance(module, _POOLS):
        kernel, stride, padding = (
            _pick(label, field, getattr(module, field), axis) for field in ("kernel_size", "stride", "padding")
        )
        dilation = _pick(label, "dilation", getattr(module, "dilation", 1), axis)
        specs.append(LayerSpec(kernel, stride, padding, dilation, label, bool(module.ceil_mode)))
    elif isinstance(module, _POINTWISE):
        return
    elif any(True for _ in module.children()):
        raise TypeError(
            f"module {label!r} ({type(module).__name__}) is not a sequential container; its forward order is "
            "unknown, so pass its longest path as a list of LayerSpec instead"
        )
    else:
        raise TypeError(
            f"unsupported module {label!r} of type {type(module).__name__}; receptive_field supports "
            "Conv1d/2d/3d, MaxPool1d/2d/3d, AvgPool1d/2d/3d, pointwise layers and nn.Sequential"
        )


def _pick(label: str, field: str, value: int | Sequence[int], axis: int | None) -> int:
    """One spatial axis of an int-or-tuple module attribute."""
    if isinstance(value, int):
        return value
    values = tuple(int(v) for v in value)
    if axis is None:
        if len(set(values)) != 1:
            raise ValueError(f"module {label!r} has {field}={values}, which differs across spatial axes; pass axis=")
        return values[0]
    if axis >= len(values):
        raise ValueError(f"axis must be < {len(values)} for module {label!r} ({field}={values}), got {axis}")
    return values[axis]


def _check_choice(argument: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{argument} must be one of {choices}, got {value!r}")
