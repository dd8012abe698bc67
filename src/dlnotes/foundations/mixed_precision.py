"""Floating-point formats and the three techniques of mixed-precision training.

A binary floating-point number with ``E`` exponent bits and ``M`` mantissa (fraction)
bits stores a sign ``s``, a biased exponent ``e`` and a fraction ``m``; with the bias
:math:`b = 2^{E-1} - 1` its value is

.. math::

    x = (-1)^s \\cdot 2^{e - b} \\cdot \\left(1 + \\frac{m}{2^M}\\right)
        \\quad (0 < e < 2^E - 1, \\text{ normal}), \\qquad
    x = (-1)^s \\cdot 2^{1 - b} \\cdot \\frac{m}{2^M}
        \\quad (e = 0, \\text{ subnormal or zero}),

and the all-ones exponent encodes infinity (``m = 0``) and NaN (``m != 0``). The
exception is fp8 e4m3fn ("finite"), which has no infinity and spends the all-ones
exponent on normal numbers, keeping only ``m = 111`` for NaN.

What this module provides:

* :func:`float_bits` splits a number stored in a dtype into its three fields by reading
  the bit pattern (``tensor.view(<int dtype>)``) and decodes the value from the fields.
* :func:`format_info` derives each format's range and precision from its layout.
* :func:`running_sum` adds numbers one by one in a chosen accumulator dtype, to show why
  fp16 products are accumulated in fp32.
* :class:`DynamicLossScaler` multiplies the loss by a scale ``S`` before the backward
  pass, divides the gradients by ``S`` afterwards, skips steps whose gradients overflowed
  and adapts ``S`` (same rules and state machine as :class:`torch.amp.GradScaler`).
* :class:`MasterWeights` keeps an fp32 copy of a low-precision model's parameters, and
  :func:`train_with_master_weights` trains a small regression with all three techniques.

Paper: P. Micikevicius et al., "Mixed Precision Training", ICLR 2018,
https://arxiv.org/abs/1710.03740.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from dlnotes.foundations.api_export import export

__all__ = [
    "DynamicLossScaler",
    "FloatBits",
    "FloatFormat",
    "MasterWeights",
    "SUPPORTED_DTYPES",
    "TrainingHistory",
    "float_bits",
    "format_info",
    "running_sum",
    "train_with_master_weights",
]


@dataclass(frozen=True)
class _Layout:
    name: str
    exponent_bits: int
    mantissa_bits: int
    has_inf: bool  # IEEE-style specials; False for e4m3fn (finite numbers + NaN only)
    bits_dtype: torch.dtype  # integer dtype of the same width, to read the bit pattern


_LAYOUTS: dict[torch.dtype, _Layout] = {
    torch.float64: _Layout("fp64", 11, 52, True, torch.int64),
    torch.float32: _Layout("fp32", 8, 23, True, torch.int32),
    torch.float16: _Layout("fp16", 5, 10, True, torch.int16),
    torch.bfloat16: _Layout("bf16", 8, 7, True, torch.int16),
    torch.float8_e5m2: _Layout("fp8 e5m2", 5, 2, True, torch.uint8),
    torch.float8_e4m3fn: _Layout("fp8 e4m3fn", 4, 3, False, torch.uint8),
}

#: The dtypes :func:`float_bits` and :func:`format_info` understand, widest first.
SUPPORTED_DTYPES: tuple[torch.dtype, ...] = tuple(_LAYOUTS)


@dataclass(frozen=True)
class FloatBits:
    """The three bit fields of one floating-point number and the value they encode.

    Attributes:
        dtype: The format the number is stored in.
        sign: The sign bit, 0 or 1.
        exponent: The biased exponent field as an unsigned integer.
        mantissa: The fraction (mantissa) field as an unsigned integer.
        value: The value decoded from the three fields (a Python float, which holds
            every value of these formats exactly).
        kind: ``"normal"``, ``"subnormal"``, ``"zero"``, ``"inf"`` or ``"nan"``.
    """

    dtype: torch.dtype
    sign: int
    exponent: int
    mantissa: int
    value: float
    kind: str

    @property
    def bits(self) -> str:
        """The bit pattern as ``"sign exponent mantissa"``, e.g. ``"0 10000 0000000000"``."""
        layout = _LAYOUTS[self.dtype]
        return (
            f"{self.sign} {self.exponent:0{layout.exponent_bits}b} "
            f"{self.mantissa:0{layout.mantissa_bits}b}"
        )

    @property
    def formula(self) -> str:
        """How the fields combine into the value, written out with their numbers."""
        layout = _LAYOUTS[self.dtype]
        bias = 2 ** (layout.exponent_bits - 1) - 1
        scale = 2**layout.mantissa_bits
        sign = f"(-1)^{self.sign}"
        if self.kind == "normal":
            return f"{sign} * 2^({self.exponent}-{bias}) * (1 + {self.mantissa}/{scale})"
        if self.kind in ("subnormal", "zero"):
            return f"{sign} * 2^(1-{bias}) * (0 + {self.mantissa}/{scale})"
        return f"{sign} * {self.kind}"

    def __str__(self) -> str:
        return f"{self.bits}  {self.kind:<9} {self.formula} = {self.value!r}"


@dataclass(frozen=True)
class FloatFormat:
    """Range and precision of a floating-point format, derived from its bit layout.

    Attributes:
        dtype: The torch dtype.
        name: Short name, e.g. ``"fp16"`` or ``"fp8 e4m3fn"``.
        bits: Total width in bits, ``1 + exponent_bits + mantissa_bits``.
        exponent_bits: Width of the exponent field ``E``.
        mantissa_bits: Width of the fraction field ``M``.
        bias: Exponent bias ``2^(E-1) - 1``.
        max: Largest finite value.
        smallest_normal: ``2^(1 - bias)``.
        smallest_subnormal: ``2^(1 - bias - M)``, the gap between 0 and the next number.
        eps: ``2^-M``, the gap between 1 and the next larger number.
        has_inf: Whether the format can store infinity (False for e4m3fn).
    """

    dtype: torch.dtype
    name: str
    bits: int
    exponent_bits: int
    mantissa_bits: int
    bias: int
    max: float
    smallest_normal: float
    smallest_subnormal: float
    eps: float
    has_inf: bool


@export("foundations.float_bits")
def float_bits(x: float | torch.Tensor, dtype: torch.dtype) -> FloatBits:
    """Round ``x`` to ``dtype`` and split the stored number into sign, exponent and mantissa.

    The fields are read from the actual bit pattern (the one-element tensor is
    reinterpreted as an integer of the same width with ``Tensor.view``), and ``value`` is
    computed from the fields alone, so it can be compared with what PyTorch reports.

    Shape:
        x: a Python number or a one-element tensor; the result describes one number.

    Args:
        x: The number. A Python ``int``/``float`` is rounded to ``dtype`` by PyTorch's
            conversion from float64, which for the 16- and 8-bit formats passes through
            float32: in rare near-tie cases that double rounding differs from a direct
            IEEE rounding (``1 + 2**-11 + 2**-40`` becomes 1.0 in fp16, not
            ``1 + 2**-10``). A tensor is converted from its own dtype (no rounding when
            it already has ``dtype``).
        dtype: One of :data:`SUPPORTED_DTYPES`: ``torch.float64``, ``float32``,
            ``float16``, ``bfloat16``, ``float8_e5m2``, ``float8_e4m3fn``.

    Returns:
        A :class:`FloatBits` with the fields, the decoded value and its kind.

    Raises:
        TypeError: If ``dtype`` is not a ``torch.dtype``, or ``x`` is not a real number
            or a tensor (bool and complex are rejected).
        ValueError: If ``dtype`` is not supported or a tensor ``x`` has more than one
            element.

    Examples:
        >>> str(float_bits(2.0, torch.float16))
        '0 10000 0000000000  normal    (-1)^0 * 2^(16-15) * (1 + 0/1024) = 2.0'
    """
    layout = _layout(dtype)
    stored = _as_one_element(x, dtype)
    width = 1 + layout.exponent_bits + layout.mantissa_bits
    # Reinterpret the same bytes as an integer; mask to undo two's-complement sign.
    pattern = int(stored.view(layout.bits_dtype).item()) & ((1 << width) - 1)
    sign = pattern >> (layout.exponent_bits + layout.mantissa_bits)
    exponent = (pattern >> layout.mantissa_bits) & ((1 << layout.exponent_bits) - 1)
    mantissa = pattern & ((1 << layout.mantissa_bits) - 1)
    value, kind = _decode(layout, sign, exponent, mantissa)
    return FloatBits(dtype, sign, exponent, mantissa, value, kind)


@export("foundations.format_info")
def format_info(dtype: torch.dtype) -> FloatFormat:
    """Range and precision of a floating-point dtype, computed from its bit layout.

    Each limit is the value of a specific bit pattern: the largest finite number has the
    largest usable exponent and an all-ones fraction (for e4m3fn, whose all-ones exponent
    is usable, the fraction ``110`` because ``111`` is NaN); the smallest normal has
    exponent field 1 and fraction 0; the smallest subnormal has exponent field 0 and
    fraction 1; ``eps`` is the step from 1 (fraction 0) to fraction 1.

    Args:
        dtype: One of :data:`SUPPORTED_DTYPES`.

    Returns:
        A :class:`FloatFormat`; its ``max``, ``smallest_normal`` and ``eps`` equal
        ``torch.finfo(dtype)``'s.

    Raises:
        TypeError: If ``dtype`` is not a ``torch.dtype``.
        ValueError: If ``dtype`` is not supported.

    Examples:
        >>> format_info(torch.float16).max, format_info(torch.float8_e4m3fn).max
        (65504.0, 448.0)
    """
    layout = _layout(dtype)
    exponent_top = (1 << layout.exponent_bits) - 1  # the all-ones exponent field
    mantissa_top = (1 << layout.mantissa_bits) - 1
    bias = (1 << (layout.exponent_bits - 1)) - 1
    if layout.has_inf:
        largest = _decode(layout, 0, exponent_top - 1, mantissa_top)[0]
    else:
        largest = _decode(layout, 0, exponent_top, mantissa_top - 1)[0]
    one_plus = _decode(layout, 0, bias, 1)[0]  # the number right after 1.0
    return FloatFormat(
        dtype=dtype,
        name=layout.name,
        bits=1 + layout.exponent_bits + layout.mantissa_bits,
        exponent_bits=layout.exponent_bits,
        mantissa_bits=layout.mantissa_bits,
        bias=bias,
        max=largest,
        smallest_normal=_decode(layout, 0, 1, 0)[0],
        smallest_subnormal=_decode(layout, 0, 0, 1)[0],
        eps=one_plus - 1.0,
        has_inf=layout.has_inf,
    )


def running_sum(values: torch.Tensor, accumulator_dtype: torch.dtype) -> torch.Tensor:
    """Add the values one after another into an accumulator of ``accumulator_dtype``.

    Every partial sum is rounded to ``accumulator_dtype``, as in a naive loop
    ``acc = acc + v``. Once ``acc`` is so large that half its spacing exceeds ``v``,
    adding ``v`` changes nothing (``2048 + 1 == 2048`` in fp16): this is why
    mixed-precision kernels multiply in fp16 but accumulate in fp32.

    Shape:
        values: ``(n,)`` (any shape is flattened); result: a 0-d tensor.

    Args:
        values: Floating-point tensor; each value is first converted to
            ``accumulator_dtype`` (exact when that dtype is at least as wide).
        accumulator_dtype: A floating dtype from :data:`SUPPORTED_DTYPES`.

    Returns:
        The sum as a 0-d tensor of ``accumulator_dtype``.

    Raises:
        TypeError: If ``values`` is not a floating-point tensor or
            ``accumulator_dtype`` is not a ``torch.dtype``.
        ValueError: If ``accumulator_dtype`` is not supported.

    Examples:
        >>> running_sum(torch.ones(3000, dtype=torch.float16), torch.float16)
        tensor(2048., dtype=torch.float16)
    """
    _layout(accumulator_dtype)
    if not isinstance(values, torch.Tensor) or not values.is_floating_point():
        raise TypeError(f"values must be a floating-point tensor, got {_describe(values)}")
    terms = values.detach().reshape(-1).to(accumulator_dtype)
    total = torch.zeros((), dtype=accumulator_dtype, device=values.device)
    for term in terms:
        total = total + term  # rounded to accumulator_dtype after every addition
    return total


@export("foundations.DynamicLossScaler")
class DynamicLossScaler:
    """Loss scaling with a scale that adapts to overflow, step for step like ``torch.amp.GradScaler``.

    Small gradients underflow to zero in fp16. Multiplying the loss by ``S`` multiplies
    every gradient by ``S`` (the chain rule is linear), which lifts them into fp16's
    range; the optimizer must then see ``grad / S``. A too large ``S`` overflows to inf,
    so the scale is adapted:

    * a step whose gradients contain inf or NaN is skipped and ``S <- S * backoff_factor``;
    * after ``growth_interval`` consecutive good steps, ``S <- S * growth_factor``
      (unless that overflows float32).

    Usage per iteration, for each optimizer: ``scale(loss).backward()``, optionally
    ``unscale_(optimizer)`` (to clip or inspect true gradients), ``step(optimizer)``, and
    once per iteration ``update()``. The scale is a float32 value, as in GradScaler, and
    the gradients being unscaled must not be fp16 (keep fp32 master weights).

    Args:
        init_scale: Initial scale ``S``, positive and finite.
        growth_factor: Factor applied after ``growth_interval`` good steps, > 1.
        backoff_factor: Factor applied after a step with inf/NaN gradients, in (0, 1).
        growth_interval: Number of consecutive good steps before the scale grows, >= 1.

    Raises:
        ValueError: If an argument is outside the range given above.
        TypeError: If ``growth_interval`` is not an int.

    Examples:
        >>> scaler = DynamicLossScaler(init_scale=1024.0)
        >>> scaler.scale(torch.tensor(0.5))
        tensor(512.)
    """

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
    ) -> None:
        if not (isinstance(init_scale, numbers.Real) and 0 < init_scale < math.inf):
            raise ValueError(f"init_scale must be a positive finite number, got {init_scale!r}")
        if not (isinstance(growth_factor, numbers.Real) and 1 < growth_factor < math.inf):
            raise ValueError(f"growth_factor must be a finite number > 1, got {growth_factor!r}")
        if not (isinstance(backoff_factor, numbers.Real) and 0 < backoff_factor < 1):
            raise ValueError(f"backoff_factor must be in (0, 1), got {backoff_factor!r}")
        if isinstance(growth_interval, bool) or not isinstance(growth_interval, int):
            raise TypeError(f"growth_interval must be an int, got {type(growth_interval).__name__}")
        if growth_interval < 1:
            raise ValueError(f"growth_interval must be >= 1, got {growth_interval}")
        self._scale = _to_float32(float(init_scale))
        self.growth_factor = float(growth_factor)
        self.backoff_factor = float(backoff_factor)
        self.growth_interval = growth_interval
        self._good_steps = 0  # consecutive steps without inf/NaN since the last change
        self._optimizer_states: dict[int, _OptimizerState] = {}

    def get_scale(self) -> float:
        """The current scale ``S`` as a Python float (a float32 value)."""
        return self._scale

    @property
    def growth_tracker(self) -> int:
        """Consecutive good steps counted towards the next growth (resets at 0)."""
        return self._good_steps

    def scale(self, outputs: torch.Tensor | Sequence[Any]) -> Any:
        """Multiply a loss (or a list/tuple of them, nested) by the current scale.

        The scale is a float32 0-d tensor, so an fp16 loss comes back as float32, as with
        ``GradScaler``.

        Args:
            outputs: A tensor, or a list or tuple whose leaves are tensors.

        Returns:
            The scaled tensor(s), with the same nesting.

        Raises:
            TypeError: If a leaf is not a tensor.
        """
        if isinstance(outputs, torch.Tensor):
            return outputs * torch.tensor(self._scale, dtype=torch.float32, device=outputs.device)
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(item) for item in outputs)
        raise TypeError(f"outputs must be a tensor or a list/tuple of tensors, got {type(outputs).__name__}")

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients of ``optimizer``'s parameters by the scale, in place.

        Also records whether any gradient holds inf or NaN (checked on the scaled
        values), which decides whether :meth:`step` runs the optimizer. Call it at most
        once per optimizer between two :meth:`update` calls; :meth:`step` calls it when
        you have not.

        Args:
            optimizer: A ``torch.optim.Optimizer`` whose parameters have gradients.

        Raises:
            TypeError: If ``optimizer`` is not a ``torch.optim.Optimizer``.
            RuntimeError: If called twice for ``optimizer`` since the last :meth:`update`,
                or after :meth:`step`.
            ValueError: If a gradient is fp16 (unscaling in fp16 would underflow again;
                keep fp32 master parameters).
        """
        state = self._state(optimizer)
        if state.stage == "unscaled":
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state.stage == "stepped":
            raise RuntimeError("unscale_() is being called after step().")
        inverse = _to_float32(1.0 / self._scale)  # 1/S in float64, then rounded to float32
        found_inf = False
        with torch.no_grad():
            for group in optimizer.param_groups:
                for parameter in group["params"]:
                    if parameter.grad is None:
                        continue
                    if parameter.grad.dtype == torch.float16:
                        raise ValueError(
                            "cannot unscale fp16 gradients: keep fp32 master parameters in the optimizer "
                            "and copy the fp16 gradients into them"
                        )
                    grad = parameter.grad
                    found_inf = found_inf or not bool(torch.isfinite(grad).all())
                    grad.mul_(torch.tensor(inverse, dtype=torch.float32, device=grad.device))
        state.found_inf = found_inf
        state.stage = "unscaled"

    def step(self, optimizer: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
        """Unscale (if not done yet) and run ``optimizer.step`` unless a gradient overflowed.

        Args:
            optimizer: The optimizer to step.
            *args: Passed to ``optimizer.step``.
            **kwargs: Passed to ``optimizer.step`` (a ``closure`` is not supported).

        Returns:
            What ``optimizer.step`` returned, or None when the step was skipped.

        Raises:
            RuntimeError: If ``closure`` is passed, or ``step`` was already called for
                this optimizer since the last :meth:`update`.
        """
        if "closure" in kwargs:
            raise RuntimeError("a closure is not supported: compute the loss, scale it and call backward() first")
        state = self._state(optimizer)
        if state.stage == "stepped":
            raise RuntimeError("step() has already been called since the last update().")
        if state.stage == "ready":
            self.unscale_(optimizer)
        result = None if state.found_inf else optimizer.step(*args, **kwargs)
        state.stage = "stepped"
        return result

    def update(self, new_scale: float | None = None) -> None:
        """Adapt the scale after this iteration's steps, and start a new iteration.

        If any optimizer saw inf/NaN since the last update, ``S <- S * backoff_factor``
        and the good-step count resets; otherwise the count grows by one and, on reaching
        ``growth_interval``, ``S <- S * growth_factor`` (kept only if finite in float32)
        and the count resets.

        Args:
            new_scale: If given, set the scale to this value instead.

        Raises:
            RuntimeError: If neither :meth:`unscale_` nor :meth:`step` ran since the
                last update (there is nothing to decide on).
            ValueError: If ``new_scale`` is not a positive finite number.
        """
        if new_scale is not None:
            if not (isinstance(new_scale, numbers.Real) and 0 < new_scale < math.inf):
                raise ValueError(f"new_scale must be a positive finite number, got {new_scale!r}")
            self._scale = _to_float32(float(new_scale))
        else:
            checked = [state.found_inf for state in self._optimizer_states.values() if state.stage != "ready"]
            if not checked:
                raise RuntimeError("no inf checks were recorded: call step() or unscale_() before update()")
            if any(checked):
                self._scale = _to_float32(self._scale * self.backoff_factor)
                self._good_steps = 0
            else:
                self._good_steps += 1
                if self._good_steps == self.growth_interval:
                    grown = _to_float32(self._scale * self.growth_factor)
                    if math.isfinite(grown):
                        self._scale = grown
                    self._good_steps = 0
        self._optimizer_states.clear()

    def _state(self, optimizer: torch.optim.Optimizer) -> _OptimizerState:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        return self._optimizer_states.setdefault(id(optimizer), _OptimizerState())


class MasterWeights:
    """An fp32 copy of low-precision parameters, for the optimizer to update.

    The model computes in fp16 (or bf16); its gradients are copied into the fp32 master
    parameters, the optimizer updates those, and the result is rounded back into the
    model. Small updates accumulate in fp32 instead of being rounded away: in fp16,
    ``1 + 1e-4 == 1`` because the spacing of fp16 numbers near 1 is ``2**-10``.

    Args:
        parameters: The model's (low-precision) parameters.

    Raises:
        TypeError: If a parameter is not a floating-point tensor.
        ValueError: If ``parameters`` is empty.

    Examples:
        >>> model = nn.Linear(2, 1).half()
        >>> master = MasterWeights(model.parameters())
        >>> master.parameters[0].dtype
        torch.float32
    """

    def __init__(self, parameters: Iterable[torch.Tensor]) -> None:
        self.model_parameters = list(parameters)
        if not self.model_parameters:
            raise ValueError("parameters must not be empty")
        for parameter in self.model_parameters:
            if not isinstance(parameter, torch.Tensor) or not parameter.is_floating_point():
                raise TypeError(f"every parameter must be a floating-point tensor, got {_describe(parameter)}")
        #: fp32 copies; give these to the optimizer.
        self.parameters = [
            nn.Parameter(parameter.detach().to(torch.float32).clone()) for parameter in self.model_parameters
        ]

    def copy_gradients(self) -> None:
        """Set each master ``.grad`` to the model gradient converted to fp32 (None stays None)."""
        for master, parameter in zip(self.parameters, self.model_parameters):
            master.grad = None if parameter.grad is None else parameter.grad.detach().to(torch.float32)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        """Round the fp32 master values into the model's parameters."""
        for master, parameter in zip(self.parameters, self.model_parameters):
            parameter.copy_(master)


@dataclass
class TrainingHistory:
    """What :func:`train_with_master_weights` records, one entry per step.

    Attributes:
        losses: Mean squared error of the model (without the loss weight), in fp32.
        zero_gradient_fraction: Fraction of the model's gradient entries that are
            exactly zero (before unscaling).
        scales: The loss scale used at that step (1.0 without a scaler).
        skipped: Whether the optimizer step was skipped because of inf/NaN.
    """

    losses: list[float] = field(default_factory=list)
    zero_gradient_fraction: list[float] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    skipped: list[bool] = field(default_factory=list)


def train_with_master_weights(
    loss_scaler: DynamicLossScaler | None = None,
    *,
    model_dtype: torch.dtype = torch.float16,
    loss_weight: float = 1e-6,
    steps: int = 200,
    learning_rate: float = 1e-2,
    seed: int = 0,
    progress: bool = False,
) -> TrainingHistory:
    """Train a small MLP in ``model_dtype`` with fp32 master weights, with or without loss scaling.

    A student MLP (8 -> 32 -> 1, tanh) learns a teacher MLP of the same shape from 128
    fixed inputs. The loss is ``loss_weight * MSE``; Adam with a tiny ``eps`` ignores a
    constant factor on the loss, so in fp32 ``loss_weight`` changes nothing, while in
    fp16 it pushes the gradients below the smallest subnormal (``2**-24``) unless the
    loss is scaled. One step: forward in ``model_dtype``, loss in fp32, backward through
    the (scaled) loss, copy gradients to the fp32 master, unscale and step (skipped on
    overflow), update the scale, round the master back into the model.

    Args:
        loss_scaler: A :class:`DynamicLossScaler`, or None for no scaling.
        model_dtype: ``torch.float16``, ``torch.bfloat16`` or ``torch.float32``.
        loss_weight: Constant factor on the loss, > 0.
        steps: Number of optimizer iterations, >= 1.
        learning_rate: Adam's learning rate on the master weights, > 0.
        seed: Seeds data, teacher and student.
        progress: Show a tqdm progress bar.

    Returns:
        A :class:`TrainingHistory`.

    Raises:
        ValueError: If ``model_dtype`` is not one of the three, or a number is out of range.
        TypeError: If ``loss_scaler`` is neither None nor a :class:`DynamicLossScaler`.

    Examples:
        >>> history = train_with_master_weights(DynamicLossScaler(), steps=5)
        >>> len(history.losses)
        5
    """
    if model_dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"model_dtype must be torch.float16, torch.bfloat16 or torch.float32, got {model_dtype}")
    if loss_scaler is not None and not isinstance(loss_scaler, DynamicLossScaler):
        raise TypeError(f"loss_scaler must be a DynamicLossScaler or None, got {type(loss_scaler).__name__}")
    if not loss_weight > 0:
        raise ValueError(f"loss_weight must be > 0, got {loss_weight}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")

    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(128, 8, generator=generator)
    teacher, model = _mlp(generator), _mlp(generator)
    with torch.no_grad():
        targets = teacher(inputs)
    model.to(model_dtype)
    master = MasterWeights(model.parameters())
    # eps far below the gradients: Adam's update g / sqrt(v) then ignores the loss's size.
    optimizer = torch.optim.Adam(master.parameters, lr=learning_rate, eps=1e-20)
    low_precision_inputs = inputs.to(model_dtype)
    history = TrainingHistory()

    from tqdm.auto import tqdm  # imported here so the module imports fast

    for _ in tqdm(range(steps), disable=not progress, desc=f"{model_dtype} training"):
        model.zero_grad(set_to_none=True)
        predictions = model(low_precision_inputs).to(torch.float32)  # forward in low precision
        mse = torch.mean((predictions - targets) ** 2)  # the loss itself in fp32
        loss = loss_weight * mse
        scale = 1.0 if loss_scaler is None else loss_scaler.get_scale()
        (loss if loss_scaler is None else loss_scaler.scale(loss)).backward()
        gradients = [parameter.grad for parameter in model.parameters()]
        zeros = sum(int((grad == 0).sum()) for grad in gradients)
        master.copy_gradients()  # low-precision gradients -> fp32 master .grad
        if loss_scaler is None:
            optimizer.step()
            skipped = False
        else:
            loss_scaler.step(optimizer)  # divides by S in fp32, skips the step on inf/NaN
            skipped = _had_inf(gradients)
            loss_scaler.update()
        master.copy_to_model()  # fp32 master -> low-precision model
        history.losses.append(mse.item())
        history.zero_gradient_fraction.append(zeros / sum(grad.numel() for grad in gradients))
        history.scales.append(scale)
        history.skipped.append(skipped)
    return history


# --------------------------------------------------------------------------- helpers


@dataclass
class _OptimizerState:
    stage: str = "ready"  # "ready" -> "unscaled" -> "stepped", reset by update()
    found_inf: bool = False


def _decode(layout: _Layout, sign: int, exponent: int, mantissa: int) -> tuple[float, str]:
    # Exact: the integer significand has at most 53 bits and ldexp only shifts the exponent.
    bias = (1 << (layout.exponent_bits - 1)) - 1
    exponent_top = (1 << layout.exponent_bits) - 1
    mantissa_top = (1 << layout.mantissa_bits) - 1
    sign_factor = -1.0 if sign else 1.0
    if exponent == exponent_top and (layout.has_inf or mantissa == mantissa_top):
        if layout.has_inf and mantissa == 0:
            return sign_factor * math.inf, "inf"
        return math.copysign(math.nan, sign_factor), "nan"
    if exponent == 0:
        # subnormal: (-1)^s * 2^(1 - bias) * m / 2^M  (no implicit leading 1)
        value = math.ldexp(mantissa, 1 - bias - layout.mantissa_bits)
        return math.copysign(value, sign_factor), "zero" if mantissa == 0 else "subnormal"
    # normal: (-1)^s * 2^(e - bias) * (1 + m / 2^M) = (2^M + m) * 2^(e - bias - M)
    value = math.ldexp((1 << layout.mantissa_bits) + mantissa, exponent - bias - layout.mantissa_bits)
    return sign_factor * value, "normal"


def _layout(dtype: torch.dtype) -> _Layout:
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, got {type(dtype).__name__}")
    if dtype not in _LAYOUTS:
        names = ", ".join(str(supported) for supported in _LAYOUTS)
        raise ValueError(f"dtype must be one of {names}; got {dtype}")
    return _LAYOUTS[dtype]


def _as_one_element(x: float | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        if x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"x must be a real number or a real tensor, got a tensor of {x.dtype}")
        if x.numel() != 1:
            raise ValueError(f"x must have exactly one element, got shape {tuple(x.shape)}")
        return x.detach().reshape(()).cpu().to(dtype)
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"x must be a real number or a one-element tensor, got {type(x).__name__}")
    return torch.tensor(float(x), dtype=torch.float64).to(dtype)


def _to_float32(value: float) -> float:
    # Round a Python float (float64) to the nearest float32, inf on overflow.
    return torch.tensor(value, dtype=torch.float64).to(torch.float32).item()


def _had_inf(gradients: list[torch.Tensor | None]) -> bool:
    return any(grad is not None and not bool(torch.isfinite(grad).all()) for grad in gradients)


def _mlp(generator: torch.Generator) -> nn.Sequential:
    network = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.normal_(0.0, 0.5, generator=generator)
    return network


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of {value.dtype}"
    return type(value).__name__
