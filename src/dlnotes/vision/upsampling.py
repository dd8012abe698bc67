"""Upsampling from scratch: interpolation, pixel shuffle, max-unpooling, transposed convolution.

Every function here reproduces a PyTorch operator exactly (same output size, same
sampling positions, same corner cases) using only indexing, reshapes and one plain
convolution, so the chapter ``docs/vision/upsampling.md`` can show what each one computes.

* :func:`interpolate` (``mode="nearest"``, ``"linear"`` for ``(N, C, L)``,
  ``"bilinear"`` for ``(N, C, H, W)``) is :func:`torch.nn.functional.interpolate`. Along
  each spatial axis, output index :math:`d` reads the source coordinate

  .. math::

      s(d) = \\begin{cases}
        \\lfloor d \\cdot r \\rfloor & \\text{nearest} \\\\
        d \\cdot \\frac{n_\\text{in} - 1}{n_\\text{out} - 1} & \\text{linear, align\\_corners=True} \\\\
        \\max\\left(0, (d + \\tfrac12) r - \\tfrac12\\right) & \\text{linear, align\\_corners=False}
      \\end{cases}

  with :math:`r = 1/\\text{scale\\_factor}` when a scale factor is given and
  :math:`r = n_\\text{in}/n_\\text{out}` when a size is given. Linear modes blend the two
  neighbours :math:`\\lfloor s \\rfloor` and :math:`\\lfloor s \\rfloor + 1` with weights
  :math:`1 - \\lambda, \\lambda`, :math:`\\lambda = s - \\lfloor s \\rfloor`; bilinear is
  the same 1-D rule applied to rows, then to columns.
* :func:`pixel_shuffle` / :func:`pixel_unshuffle` move an :math:`r \\times r` block of
  pixels between the channel axis and the spatial axes (a reshape and a permutation).
* :func:`max_unpool2d` scatters each pooled value back to the position its
  ``max_pool2d(..., return_indices=True)`` index records; every other output is zero.
* :func:`conv_transpose2d` is :func:`torch.nn.functional.conv_transpose2d` built as
  *insert* ``stride - 1`` *zeros between input pixels, pad by*
  ``dilation * (k - 1) - padding`` *(plus* ``output_padding`` *at the end), then run an
  ordinary stride-1 convolution with the kernel flipped and its in/out channels swapped*.

Index arithmetic follows ATen's ``UpSample.h``: scales are computed in ``float32`` for
``nearest`` and in the input's "op math" type (``float64`` for double inputs, ``float32``
otherwise) for the linear modes, so the chosen source indices agree bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from dlnotes.foundations.api_export import export

__all__ = ["conv_transpose2d", "interpolate", "max_unpool2d", "pixel_shuffle", "pixel_unshuffle"]

_MODES = ("nearest", "linear", "bilinear")
_LINEAR_MODE_FOR_DIMS = {1: "linear", 2: "bilinear"}


@export("vision.interpolate")
def interpolate(
    x: torch.Tensor,
    size: int | Sequence[int] | None = None,
    scale_factor: float | Sequence[float] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
) -> torch.Tensor:
    """Resize ``x`` by nearest-neighbour or (bi)linear interpolation, like ``F.interpolate``.

    Exactly one of ``size`` and ``scale_factor`` must be given. With ``scale_factor`` the
    output length is ``floor(n_in * scale_factor)`` and, as in PyTorch, the sampling
    ratio is ``1 / scale_factor`` (not ``n_in / n_out``) unless
    ``recompute_scale_factor=True``. Scale factors may be non-integer and below 1
    (downsampling; no anti-aliasing, as in PyTorch's default).

    Shape:
        x: ``(N, C, L)`` for ``"nearest"``/``"linear"`` or ``(N, C, H, W)`` for
        ``"nearest"``/``"bilinear"``; result: ``(N, C, *size)``.

    Args:
        x: Floating-point input tensor.
        size: Output spatial size, an int (used for every axis) or one int per axis.
        scale_factor: Multiplier for the spatial size, a float or one per axis (> 0).
        mode: ``"nearest"``, ``"linear"`` (3-D input) or ``"bilinear"`` (4-D input).
        align_corners: Linear modes only. ``True`` maps the centres of the corner pixels
            onto each other (ratio ``(n_in - 1) / (n_out - 1)``); ``False``/``None`` treats
            pixels as unit squares (half-pixel centres). Must be ``None`` for ``"nearest"``.
        recompute_scale_factor: If ``True``, compute the ratio from the output size even
            when ``scale_factor`` was given. Requires ``scale_factor``.

    Returns:
        The resized tensor, same dtype and device as ``x``; differentiable.

    Raises:
        TypeError: If ``x`` is not a floating-point tensor, or ``size``/``scale_factor`` is
            a tensor rather than numbers.
        ValueError: If both or neither of ``size``/``scale_factor`` are given, the number
            of sizes/factors does not match the spatial dims, a size or factor is not
            positive, ``mode`` is unknown or does not fit ``x.ndim``, ``align_corners`` is
            set for ``"nearest"``, or ``recompute_scale_factor=True`` comes with ``size``.

    Examples:
        >>> x = torch.arange(4.0).view(1, 1, 2, 2)
        >>> interpolate(x, scale_factor=2)[0, 0, 0].tolist()
        [0.0, 0.0, 1.0, 1.0]
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor, got {_describe(x)}")
    if x.ndim not in (3, 4):
        raise ValueError(f"x must have shape (N, C, L) or (N, C, H, W), got {x.ndim} dims {tuple(x.shape)}")
    spatial = x.ndim - 2
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if mode != "nearest" and mode != _LINEAR_MODE_FOR_DIMS[spatial]:
        raise ValueError(
            f"mode {mode!r} needs {'3' if mode == 'linear' else '4'}-D input; "
            f"for {x.ndim}-D input use 'nearest' or {_LINEAR_MODE_FOR_DIMS[spatial]!r}"
        )
    if mode == "nearest" and align_corners is not None:
        raise ValueError("align_corners can only be set with mode 'linear' or 'bilinear', not 'nearest'")
    if (size is None) == (scale_factor is None):
        raise ValueError(
            "exactly one of size and scale_factor must be given, got "
            + ("both" if size is not None else "neither")
        )
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor=True needs scale_factor, not size")

    in_sizes = list(x.shape[2:])
    if size is not None:
        out_sizes = [int(s) for s in _per_axis(size, spatial, "size")]
        if any(s <= 0 for s in out_sizes):
            raise ValueError(f"size must be positive, got {out_sizes}")
        scales: list[float | None] = [None] * spatial
    else:
        factors = [float(f) for f in _per_axis(scale_factor, spatial, "scale_factor")]
        if any(not f > 0 or math.isinf(f) for f in factors):
            raise ValueError(f"scale_factor must be positive and finite, got {factors}")
        # PyTorch: output size = floor(float(n_in) * factor), computed in double.
        out_sizes = [math.floor(n * f) for n, f in zip(in_sizes, factors)]
        if any(s <= 0 for s in out_sizes):
            raise ValueError(f"scale_factor {factors} turns spatial size {in_sizes} into {out_sizes}; must be >= 1")
        scales = [None] * spatial if recompute_scale_factor else list(factors)

    # Linear modes blend in float32 at least (PyTorch's "op math"), rounding once at the end.
    y = x.float() if mode != "nearest" and x.dtype in (torch.float16, torch.bfloat16) else x
    for axis, (n_in, n_out, factor) in enumerate(zip(in_sizes, out_sizes, scales)):
        dim = 2 + axis
        if mode == "nearest":
            y = y.index_select(dim, _nearest_indices(n_in, n_out, factor, x.device, shortcuts=spatial == 2))
        else:
            y = _linear_along(y, dim, n_in, n_out, factor, bool(align_corners))
    return y.to(x.dtype)


@export("vision.pixel_shuffle")
def pixel_shuffle(x: torch.Tensor, upscale_factor: int) -> torch.Tensor:
    """Rearrange ``(*, C r^2, H, W)`` into ``(*, C, H r, W r)``, like ``nn.PixelShuffle``.

    Output pixel ``(c, h r + i, w r + j)`` is input channel ``c r^2 + i r + j`` at
    ``(h, w)``: each group of ``r^2`` channels becomes one ``r x r`` block of pixels.

    Shape:
        x: ``(*, C * r**2, H, W)``; result: ``(*, C, H * r, W * r)``.

    Args:
        x: Input tensor with at least 3 dims.
        upscale_factor: ``r >= 1``.

    Returns:
        A tensor with the same elements, rearranged.

    Raises:
        TypeError: If ``upscale_factor`` is not an int or ``x`` not a tensor.
        ValueError: If ``x.ndim < 3``, ``upscale_factor < 1`` or the channel count is not
            divisible by ``upscale_factor**2``.

    Examples:
        >>> pixel_shuffle(torch.arange(4.0).view(1, 4, 1, 1), 2)[0, 0].tolist()
        [[0.0, 1.0], [2.0, 3.0]]
    """
    r = _check_block_factor(x, upscale_factor, "upscale_factor")
    *batch, channels, height, width = x.shape
    if channels % (r * r):
        raise ValueError(f"channels (dim -3) must be divisible by upscale_factor**2 = {r * r}, got {channels}")
    c = channels // (r * r)
    y = x.reshape(*batch, c, r, r, height, width)  # channel c*r*r + i*r + j -> (c, i, j)
    nb = len(batch)
    # (c, i, j, h, w) -> (c, h, i, w, j): row h*r + i, column w*r + j
    y = y.permute(*range(nb), nb, nb + 3, nb + 1, nb + 4, nb + 2)
    return y.reshape(*batch, c, height * r, width * r)


@export("vision.pixel_unshuffle")
def pixel_unshuffle(x: torch.Tensor, downscale_factor: int) -> torch.Tensor:
    """Rearrange ``(*, C, H r, W r)`` into ``(*, C r^2, H, W)``, like ``nn.PixelUnshuffle``.

    The exact inverse of :func:`pixel_shuffle`: each ``r x r`` block of pixels becomes
    ``r^2`` channels.

    Shape:
        x: ``(*, C, H * r, W * r)``; result: ``(*, C * r**2, H, W)``.

    Args:
        x: Input tensor with at least 3 dims.
        downscale_factor: ``r >= 1``.

    Returns:
        A tensor with the same elements, rearranged.

    Raises:
        TypeError: If ``downscale_factor`` is not an int or ``x`` not a tensor.
        ValueError: If ``x.ndim < 3``, ``downscale_factor < 1`` or height or width is not
            divisible by ``downscale_factor``.

    Examples:
        >>> pixel_unshuffle(torch.arange(4.0).view(1, 1, 2, 2), 2).flatten().tolist()
        [0.0, 1.0, 2.0, 3.0]
    """
    r = _check_block_factor(x, downscale_factor, "downscale_factor")
    *batch, channels, height, width = x.shape
    if height % r or width % r:
        raise ValueError(f"height and width must be divisible by downscale_factor={r}, got {height} x {width}")
    h, w = height // r, width // r
    y = x.reshape(*batch, channels, h, r, w, r)  # row h*r + i, column w*r + j
    nb = len(batch)
    # (c, h, i, w, j) -> (c, i, j, h, w)
    y = y.permute(*range(nb), nb, nb + 2, nb + 4, nb + 1, nb + 3)
    return y.reshape(*batch, channels * r * r, h, w)


@export("vision.max_unpool2d")
def max_unpool2d(
    x: torch.Tensor,
    indices: torch.Tensor,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    output_size: Sequence[int] | None = None,
) -> torch.Tensor:
    """Partial inverse of max pooling, like ``F.max_unpool2d``.

    Each value ``x[n, c, i, j]`` is written to the flat position ``indices[n, c, i, j]``
    of the ``H_out * W_out`` output plane (the position ``max_pool2d`` took it from);
    every other output is zero. The default output size inverts the pooling formula:
    ``H_out = (H - 1) * stride - 2 * padding + kernel_size``.

    Shape:
        x, indices: ``(N, C, H, W)``; result: ``(N, C, H_out, W_out)``.

    Args:
        x: Pooled values.
        indices: Integer tensor from ``max_pool2d(..., return_indices=True)``, same shape
            as ``x``, flat indices into each output plane.
        kernel_size: Pooling window, an int or ``(kH, kW)``.
        stride: Pooling stride; defaults to ``kernel_size``.
        padding: Pooling padding.
        output_size: ``(H_out, W_out)`` (or with leading ``N, C``) to pick among the sizes
            that pool to ``H x W``; must be within ``stride - 1`` of the default.

    Returns:
        The sparse upsampled tensor; differentiable in ``x``.

    Raises:
        TypeError: If ``indices`` is not an integer tensor.
        ValueError: If ``x`` is not 4-D, shapes differ, ``output_size`` is out of range,
            or an index falls outside the output plane.

    Examples:
        >>> values, where = torch.nn.functional.max_pool2d(
        ...     torch.tensor([[[[1.0, 4.0], [3.0, 2.0]]]]), 2, return_indices=True)
        >>> max_unpool2d(values, where, 2)[0, 0].tolist()
        [[0.0, 4.0], [0.0, 0.0]]
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a 4-D tensor (N, C, H, W), got {_describe(x)}")
    if not isinstance(indices, torch.Tensor) or indices.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"indices must be an int64 tensor from max_pool2d, got {_describe(indices)}")
    if indices.shape != x.shape:
        raise ValueError(f"indices must have the shape of x {tuple(x.shape)}, got {tuple(indices.shape)}")
    kernel = _pair(kernel_size, "kernel_size", minimum=1)
    strides = kernel if stride is None else _pair(stride, "stride", minimum=1)
    pads = _pair(padding, "padding", minimum=0)
    n, c, h, w = x.shape
    default = [(size - 1) * s - 2 * p + k for size, s, p, k in zip((h, w), strides, pads, kernel)]
    if output_size is None:
        out_h, out_w = default
    else:
        requested = [int(v) for v in output_size]
        if len(requested) == 4:
            requested = requested[2:]
        if len(requested) != 2:
            raise ValueError(f"output_size must be (H_out, W_out) or (N, C, H_out, W_out), got {tuple(output_size)}")
        for axis, (want, base, s) in enumerate(zip(requested, default, strides)):
            if not base <= want < base + s:
                raise ValueError(
                    f"output_size[{axis}] must be in [{base}, {base + s - 1}] for this pooling, got {want}"
                )
        out_h, out_w = requested
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"output size must be positive, got {(out_h, out_w)}")
    flat_indices = indices.reshape(n, c, h * w).long()
    if flat_indices.numel() and (flat_indices.min() < 0 or flat_indices.max() >= out_h * out_w):
        raise ValueError(
            f"indices must lie in [0, {out_h * out_w - 1}] for output size {(out_h, out_w)}, "
            f"got range [{int(flat_indices.min())}, {int(flat_indices.max())}]"
        )
    out = x.new_zeros(n, c, out_h * out_w)
    out = out.scatter(2, flat_indices, x.reshape(n, c, h * w))  # out[n, c, idx] = value
    return out.view(n, c, out_h, out_w)


@export("vision.conv_transpose2d")
def conv_transpose2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    groups: int = 1,
    dilation: int | Sequence[int] = 1,
) -> torch.Tensor:
    """Transposed convolution as zero insertion + padding + ordinary convolution.

    Same semantics as ``F.conv_transpose2d`` (note its argument order: ``groups`` comes
    before ``dilation``). Per spatial axis, with kernel size ``k``:

    1. insert ``stride - 1`` zeros between neighbouring input pixels (length
       ``(H - 1) * stride + 1``);
    2. pad ``q = dilation * (k - 1) - padding`` on both sides (a negative ``q`` crops)
       and ``output_padding`` more at the end;
    3. correlate with stride 1 and the given ``dilation``, using the kernel flipped in
       both spatial axes with its input/output channels swapped (per group).

    The output length is ``(H - 1) * stride - 2 * padding + dilation * (k - 1) +
    output_padding + 1``.

    Shape:
        x: ``(N, C_in, H, W)``; weight: ``(C_in, C_out / groups, kH, kW)``; bias:
        ``(C_out,)``; result: ``(N, C_out, H_out, W_out)``.

    Args:
        x: Input tensor.
        weight: Kernel in ``ConvTranspose2d`` layout (input channels first).
        bias: Optional per-output-channel bias.
        stride: Upsampling factor, an int or ``(sH, sW)``, ``>= 1``.
        padding: Rows/columns cropped from each side of the full output, ``>= 0``.
        output_padding: Extra rows/columns at the bottom/right, each smaller than the
            stride or the dilation of its axis.
        groups: Channel groups; ``C_in`` and ``C_out`` must be divisible by it.
        dilation: Kernel dilation, ``>= 1``.

    Returns:
        The output tensor; differentiable in ``x``, ``weight`` and ``bias``.

    Raises:
        TypeError: If an argument is not a tensor/int or the dtypes differ.
        ValueError: If shapes do not fit (``x`` not 4-D, ``x.shape[1] != weight.shape[0]``,
            channels not divisible by ``groups``, wrong bias shape), a stride/dilation is
            < 1, padding or output_padding < 0, ``output_padding`` is not smaller than
            either ``stride`` or ``dilation``, or the output would be empty.

    Examples:
        >>> ones = torch.ones(1, 1, 3, 3)
        >>> conv_transpose2d(ones, torch.ones(1, 1, 3, 3), stride=2)[0, 0, 0].tolist()
        [1.0, 1.0, 2.0, 1.0, 2.0, 1.0, 1.0]
    """
    _check_conv_transpose_arguments(x, weight, bias, groups)
    strides = _pair(stride, "stride", minimum=1)
    pads = _pair(padding, "padding", minimum=0)
    out_pads = _pair(output_padding, "output_padding", minimum=0)
    dilations = _pair(dilation, "dilation", minimum=1)
    for axis in range(2):
        if out_pads[axis] >= strides[axis] and out_pads[axis] >= dilations[axis]:
            raise ValueError(
                f"output_padding must be smaller than either stride or dilation, got output_padding="
                f"{out_pads[axis]}, stride={strides[axis]}, dilation={dilations[axis]} (axis {axis})"
            )
    n, c_in, h, w = x.shape
    _, c_out_per_group, kh, kw = weight.shape
    out_sizes = [
        (size - 1) * s - 2 * p + d * (k - 1) + op + 1
        for size, s, p, d, k, op in zip((h, w), strides, pads, dilations, (kh, kw), out_pads)
    ]
    if min(out_sizes) <= 0:
        raise ValueError(f"the output size would be {tuple(out_sizes)}; padding={pads} is too large")

    # 1. zero insertion: input pixel (i, j) goes to (i * sH, j * sW)
    sh, sw = strides
    dilated = _insert_zeros(x, sh, sw)

    # 2. padding q = d (k - 1) - p on each side (negative crops), output_padding at the end
    (ph, pw), (dh, dw), (oph, opw) = pads, dilations, out_pads
    qh, qw = dh * (kh - 1) - ph, dw * (kw - 1) - pw
    padded = F.pad(dilated, (qw, qw + opw, qh, qh + oph))

    # 3. stride-1 correlation with the flipped kernel, in/out channels swapped per group:
    #    (C_in, C_out/g, kH, kW) -> (g, C_in/g, C_out/g, ...) -> (g, C_out/g, C_in/g, ...)
    flipped = weight.flip(-1, -2)
    flipped = flipped.reshape(groups, c_in // groups, c_out_per_group, kh, kw).transpose(1, 2)
    flipped = flipped.reshape(groups * c_out_per_group, c_in // groups, kh, kw)
    return F.conv2d(padded, flipped, bias, stride=1, padding=0, dilation=(dh, dw), groups=groups)


def _insert_zeros(x: torch.Tensor, sh: int, sw: int) -> torch.Tensor:
    """Put ``s - 1`` zeros between neighbouring pixels: ``(N, C, H, W) -> (N, C, (H-1)sH+1, (W-1)sW+1)``."""
    n, c, h, w = x.shape
    # Stack each pixel with s - 1 zeros after it (per axis), flatten, drop the trailing zeros.
    rows = torch.cat([x.unsqueeze(3), x.new_zeros(n, c, h, sh - 1, w)], dim=3).reshape(n, c, h * sh, w)
    rows = rows[:, :, : (h - 1) * sh + 1]
    cols = torch.cat([rows.unsqueeze(4), rows.new_zeros(*rows.shape, sw - 1)], dim=4)
    cols = cols.reshape(n, c, rows.shape[2], w * sw)
    return cols[..., : (w - 1) * sw + 1]


def _check_conv_transpose_arguments(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, groups: int
) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(weight, torch.Tensor):
        raise TypeError(f"x and weight must be tensors, got {_describe(x)} and {_describe(weight)}")
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C_in, H, W), got {tuple(x.shape)}")
    if weight.ndim != 4:
        raise ValueError(f"weight must have shape (C_in, C_out / groups, kH, kW), got {tuple(weight.shape)}")
    if x.dtype != weight.dtype or (bias is not None and bias.dtype != x.dtype):
        raise TypeError(
            f"x, weight and bias must share a dtype, got {x.dtype}, {weight.dtype}"
            + ("" if bias is None else f", {bias.dtype}")
        )
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"groups must be an int, got {type(groups).__name__}")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    if x.shape[1] != weight.shape[0]:
        raise ValueError(
            f"x has {x.shape[1]} channels but weight expects C_in = weight.shape[0] = {weight.shape[0]}"
        )
    if weight.shape[0] % groups:
        raise ValueError(f"C_in = {weight.shape[0]} must be divisible by groups = {groups}")
    c_out = weight.shape[1] * groups
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"bias must have shape (C_out,) = ({c_out},), got {tuple(bias.shape)}")


def _nearest_indices(
    n_in: int, n_out: int, scale_factor: float | None, device: torch.device, shortcuts: bool
) -> torch.Tensor:
    """Source index per output index, ``floor(d * r)`` in float32 arithmetic.

    PyTorch's 2-D CPU kernel (ATen's ``nearest_idx``) takes two short-cuts that can
    disagree with the formula when a scale factor is given: identity when
    ``n_out == n_in`` and ``d // 2`` when ``n_out == 2 n_in``. Its 1-D kernel does not.
    """
    d = torch.arange(n_out, device=device)
    if shortcuts and n_out == n_in:  # identity, whatever the scale factor
        return d
    if shortcuts and n_out == 2 * n_in:  # d >> 1
        return d // 2
    ratio = _ratio(n_in, n_out, scale_factor, torch.float32, device)
    source = torch.floor(d.to(torch.float32) * ratio).long()  # floor(d * r)
    return source.clamp(max=n_in - 1)


def _linear_along(
    y: torch.Tensor, dim: int, n_in: int, n_out: int, scale_factor: float | None, align_corners: bool
) -> torch.Tensor:
    """1-D linear interpolation of ``y`` along ``dim`` from ``n_in`` to ``n_out`` samples."""
    if n_out == n_in and not align_corners:  # ATen short-cut: identity
        return y
    math_dtype = torch.float64 if y.dtype == torch.float64 else torch.float32
    d = torch.arange(n_out, device=y.device, dtype=math_dtype)
    if align_corners:
        ratio = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0  # corner centres coincide
        source = d * torch.tensor(ratio, dtype=math_dtype, device=y.device)
    else:
        ratio = _ratio(n_in, n_out, scale_factor, math_dtype, y.device)
        source = ((d + 0.5) * ratio - 0.5).clamp(min=0)  # half-pixel centres, clamped at 0
    left = torch.floor(source).long().clamp(max=n_in - 1)
    weight_right = (source - left.to(math_dtype)).clamp(0, 1)  # lambda
    right = torch.where(left < n_in - 1, left + 1, left)
    shape = [1] * y.ndim
    shape[dim] = n_out
    weight_right = weight_right.to(y.dtype).view(shape)
    # (1 - lambda) * y[left] + lambda * y[right]
    return y.index_select(dim, left) * (1 - weight_right) + y.index_select(dim, right) * weight_right


def _ratio(n_in: int, n_out: int, scale_factor: float | None, dtype: torch.dtype, device) -> torch.Tensor:
    """ATen's ``compute_scales_value``: ``1 / scale_factor`` if given, else ``n_in / n_out``."""
    if scale_factor is not None and scale_factor > 0:
        return torch.tensor(1.0 / scale_factor, dtype=dtype, device=device)  # double 1/s, then cast
    return torch.tensor(n_in, dtype=dtype, device=device) / n_out


def _per_axis(value, spatial: int, name: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != spatial:
            raise ValueError(f"{name} must have {spatial} entries (one per spatial dim), got {len(value)}")
        return list(value)
    if isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a number or a sequence of numbers, got a tensor")
    return [value] * spatial


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    values = tuple(value) if isinstance(value, (list, tuple)) else (value, value)
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(values) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return values  # type: ignore[return-value]


def _check_block_factor(x: torch.Tensor, factor: int, name: str) -> int:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {_describe(x)}")
    if x.ndim < 3:
        raise ValueError(f"x must have at least 3 dims (*, C, H, W), got shape {tuple(x.shape)}")
    if isinstance(factor, bool) or not isinstance(factor, int):
        raise TypeError(f"{name} must be an int, got {type(factor).__name__}")
    if factor < 1:
        raise ValueError(f"{name} must be >= 1, got {factor}")
    return factor


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of dtype {value.dtype} and shape {tuple(value.shape)}"
    return type(value).__name__
