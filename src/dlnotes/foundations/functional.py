"""Functions versus modules: ``conv2d``, ``batch_norm`` and ``dropout`` written twice.

PyTorch ships most layers twice: a *function* in ``torch.nn.functional`` that computes
the output from everything passed to it, and a *module* in ``torch.nn`` that owns the
learnable parameters and buffers, remembers its train/eval mode, and calls the function
in ``forward``. This module rebuilds three of them from scratch so that the split is
visible:

* :func:`conv2d` computes a 2-D cross-correlation by *im2col*: every receptive field is
  copied into a column, and the convolution becomes one matrix product per group,

  .. math::

      y[n, o, i, j] = b_o + \\sum_{c, u, v} w[o, c, u, v]\\,
      x_{\\text{pad}}[n, g(o) C_g + c,\\; i s_h + u d_h,\\; j s_w + v d_w].

* :func:`batch_norm` normalises each channel with the batch statistics in training and
  with the running statistics in evaluation,
  :math:`\\hat x = (x - \\mu) / \\sqrt{\\sigma^2 + \\epsilon}`, :math:`y = \\gamma \\hat x + \\beta`,
  and updates :math:`r \\leftarrow (1 - m) r + m\\,s` with the *unbiased* batch variance.
* :func:`dropout` zeroes each element with probability ``p`` and scales the survivors by
  :math:`1 / (1 - p)` ("inverted dropout"), so the expectation is unchanged and
  evaluation is the identity.

:class:`Conv2d`, :class:`BatchNorm2d` and :class:`Dropout` are the thin ``nn.Module``
wrappers: parameters, buffers, ``train()``/``eval()``, ``state_dict`` and ``repr`` come
from ``nn.Module``; the arithmetic is a single call to the function above. Each has the
same parameter and buffer names as its ``torch.nn`` counterpart, so state dicts load in
both directions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from dlnotes.foundations.api_export import export

__all__ = ["BatchNorm2d", "Conv2d", "Dropout", "batch_norm", "conv2d", "dropout"]

IntOrPair = int | Sequence[int]


@export("foundations.conv2d")
def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair | str = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> torch.Tensor:
    """2-D convolution (cross-correlation) by im2col and a matrix product.

    Same signature and result as :func:`torch.nn.functional.conv2d` with zero padding.
    ``padding="same"`` pads ``dilation * (kernel - 1)`` in total per dimension, the
    smaller half on the top/left, and needs ``stride == 1``; ``"valid"`` means no padding.

    Shape:
        input: ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``;
        weight: ``(C_out, C_in / groups, kH, kW)``; bias: ``(C_out,)``;
        result: ``(N, C_out, H_out, W_out)`` (or ``(C_out, H_out, W_out)``) with
        ``H_out = (H + pad_top + pad_bottom - dilation_h * (kH - 1) - 1) // stride_h + 1``.

    Args:
        input: Floating-point input.
        weight: Filters, same dtype and device as ``input``.
        bias: Optional per-output-channel bias.
        stride: Step between receptive fields, an int or ``(s_h, s_w)``, each >= 1.
        padding: Zero padding on both sides, an int or ``(p_h, p_w)`` (each >= 0), or
            ``"same"`` / ``"valid"``.
        dilation: Spacing between kernel taps, an int or ``(d_h, d_w)``, each >= 1.
        groups: Split input and output channels into this many independent groups.

    Returns:
        The convolved tensor, differentiable with respect to ``input``, ``weight`` and
        ``bias`` through ordinary autograd.

    Raises:
        TypeError: If a tensor argument is not a floating-point tensor, dtypes or devices
            differ, or an int/pair argument has the wrong type.
        ValueError: If ``input`` is not 3-D or 4-D, ``weight`` is not 4-D, channels are not
            divisible by ``groups`` or do not match ``weight``, ``bias`` has the wrong
            shape, a stride/dilation is < 1, a padding is < 0 or an unknown string,
            ``"same"`` is combined with a stride, or the kernel is larger than the
            padded input.

    Examples:
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> conv2d(x, torch.ones(1, 1, 2, 2), stride=2)
        tensor([[[[10., 18.],
                  [42., 50.]]]])
    """
    _check_float_tensor(input, "input")
    _check_float_tensor(weight, "weight")
    if input.dim() not in (3, 4):
        raise ValueError(f"input must be 4-D (N, C_in, H, W) or 3-D (C_in, H, W), got shape {tuple(input.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"weight must be 4-D (C_out, C_in / groups, kH, kW), got shape {tuple(weight.shape)}")
    _check_same_kind(weight, input, "weight")
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    batch, in_channels, height, width = x.shape
    out_channels, group_channels, kernel_h, kernel_w = weight.shape
    _check_groups(groups, in_channels, out_channels, "input.shape[1]", "weight.shape[0]")
    if group_channels * groups != in_channels:
        raise ValueError(
            f"weight.shape[1] * groups must equal input's channels: weight {tuple(weight.shape)} with "
            f"groups={groups} expects {group_channels * groups} channels, input has {in_channels}"
        )
    if bias is not None:
        _check_float_tensor(bias, "bias")
        _check_same_kind(bias, input, "bias")
        if bias.shape != (out_channels,):
            raise ValueError(f"bias must have shape ({out_channels},) = (C_out,), got {tuple(bias.shape)}")
    stride_h, stride_w = _pair(stride, "stride", minimum=1)
    dilation_h, dilation_w = _pair(dilation, "dilation", minimum=1)
    top, bottom, left, right = _resolve_padding(padding, (kernel_h, kernel_w), (stride_h, stride_w), (dilation_h, dilation_w))

    # The receptive field of one output pixel spans dilation * (k - 1) + 1 input pixels.
    span_h, span_w = dilation_h * (kernel_h - 1) + 1, dilation_w * (kernel_w - 1) + 1
    padded_h, padded_w = height + top + bottom, width + left + right
    if padded_h < span_h or padded_w < span_w:
        raise ValueError(
            f"the dilated kernel ({span_h} x {span_w}) is larger than the padded input "
            f"({padded_h} x {padded_w}); reduce the kernel or dilation, or pad more"
        )
    out_h = (padded_h - span_h) // stride_h + 1
    out_w = (padded_w - span_w) // stride_w + 1

    x = F.pad(x, (left, right, top, bottom))  # zeros around the border
    columns = _im2col(x, (kernel_h, kernel_w), (stride_h, stride_w), (dilation_h, dilation_w), (out_h, out_w))
    # columns: (N, C_in * kH * kW, L) -> (N, G, C_g * kH * kW, L), L = H_out * W_out
    columns = columns.reshape(batch, groups, group_channels * kernel_h * kernel_w, out_h * out_w)
    # weight: (C_out, C_g, kH, kW) -> (G, C_out / G, C_g * kH * kW); the flattening order
    # (channel, row, column) is the same one _im2col uses for the rows of a column.
    filters = weight.reshape(groups, out_channels // groups, group_channels * kernel_h * kernel_w)
    out = torch.matmul(filters, columns)  # (N, G, C_out / G, L): one GEMM per group
    out = out.reshape(batch, out_channels, out_h, out_w)
    if bias is not None:
        out = out + bias.reshape(1, out_channels, 1, 1)
    return out.squeeze(0) if unbatched else out


@export("foundations.batch_norm")
def batch_norm(
    input: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Batch normalisation over every dimension except the channel dimension 1.

    Same signature and result as :func:`torch.nn.functional.batch_norm`. In training the
    statistics are the batch mean and the biased variance over the
    ``m = N * prod(spatial)`` values of each channel; if running buffers are given they
    are updated in place (outside autograd) as

    .. math::

        r_\\mu \\leftarrow (1 - \\text{momentum})\\, r_\\mu + \\text{momentum}\\; \\mu_B,
        \\qquad
        r_{\\sigma^2} \\leftarrow (1 - \\text{momentum})\\, r_{\\sigma^2}
        + \\text{momentum}\\; \\frac{m}{m - 1} \\sigma_B^2 .

    In evaluation (``training=False``) the running buffers are used and left untouched.
    (A cumulative average, ``momentum=None`` in :class:`BatchNorm2d`, is the module
    passing ``momentum = 1 / num_batches_tracked``.)

    Shape:
        input: ``(N, C, *)``; running_mean, running_var, weight, bias: ``(C,)``;
        result: same shape as ``input``.

    Args:
        input: Floating-point input with at least 2 dimensions.
        running_mean: Running mean buffer, or ``None`` to not track statistics.
        running_var: Running variance buffer, or ``None`` (given together with
            ``running_mean``).
        weight: Optional scale :math:`\\gamma`.
        bias: Optional shift :math:`\\beta`.
        training: Use (and track) batch statistics if true, running statistics if false.
        momentum: Weight of the new batch in the running averages, in ``[0, 1]``.
        eps: Added to the variance for numerical stability, ``>= 0``.

    Returns:
        The normalised tensor.

    Raises:
        TypeError: If a tensor argument is not a floating-point tensor, dtypes or devices
            differ, or ``momentum`` is not a real number.
        ValueError: If ``input`` has fewer than 2 dimensions, a per-channel tensor does
            not have shape ``(C,)``, only one running buffer is given, running buffers
            are missing with ``training=False``, ``momentum`` is outside ``[0, 1]``,
            ``eps < 0``, or a channel has a single value in training.

    Examples:
        >>> x = torch.tensor([[1.0], [3.0]])
        >>> mean, var = torch.zeros(1), torch.ones(1)
        >>> batch_norm(x, mean, var, training=True, eps=0.0)
        tensor([[-1.],
                [ 1.]])
        >>> mean, var  # 0.9 * 0 + 0.1 * 2, 0.9 * 1 + 0.1 * 2 (unbiased variance of [1, 3])
        (tensor([0.2000]), tensor([1.1000]))
    """
    _check_float_tensor(input, "input")
    if input.dim() < 2:
        raise ValueError(f"input must have at least 2 dimensions (N, C, *), got shape {tuple(input.shape)}")
    channels = input.shape[1]
    for name, tensor in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if tensor is not None:
            _check_float_tensor(tensor, name)
            _check_same_kind(tensor, input, name)
            if tensor.shape != (channels,):
                raise ValueError(
                    f"{name} must have shape (C,) = ({channels},) to match input.shape[1], got {tuple(tensor.shape)}"
                )
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together (both tensors or both None)")
    if not training and running_mean is None:
        raise ValueError("running_mean and running_var are required when training=False (evaluation mode)")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)):
        raise TypeError(
            f"momentum must be a real number, got {type(momentum).__name__} "
            "(for a cumulative average pass 1 / num_batches_tracked, as BatchNorm2d(momentum=None) does)"
        )
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")

    reduce_dims = [0, *range(2, input.dim())]  # everything but the channel dimension
    per_channel = (1, channels) + (1,) * (input.dim() - 2)  # broadcast (C,) against (N, C, *)
    if training:
        count = input.numel() // channels if channels else 0  # m = N * prod(spatial)
        if count <= 1:
            raise ValueError(
                f"expected more than 1 value per channel when training, got input of shape {tuple(input.shape)}"
            )
        mean = input.mean(dim=reduce_dims)  # mu_B
        var = input.var(dim=reduce_dims, correction=0)  # sigma_B^2, biased: used to normalise
        if running_mean is not None:
            with torch.no_grad():  # buffers are state, not part of the graph
                running_mean.mul_(1 - momentum).add_(momentum * mean)
                running_var.mul_(1 - momentum).add_(momentum * var * (count / (count - 1)))  # unbiased
    else:
        mean, var = running_mean, running_var

    out = (input - mean.reshape(per_channel)) * torch.rsqrt(var.reshape(per_channel) + eps)  # x_hat
    if weight is not None:
        out = out * weight.reshape(per_channel)  # gamma * x_hat
    if bias is not None:
        out = out + bias.reshape(per_channel)  # + beta
    return out


@export("foundations.dropout")
def dropout(
    input: torch.Tensor,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Inverted dropout: zero each element with probability ``p``, scale the rest by ``1 / (1 - p)``.

    Like :func:`torch.nn.functional.dropout` (same arguments, plus ``generator``); the
    mask is drawn from ``generator`` (the global generator when ``None``). Since
    :math:`\\mathbb{E}[\\text{mask}] = 1 - p`, the output has the input's expectation,
    so evaluation (``training=False``) is the identity. ``p = 0`` returns the input and
    ``p = 1`` returns zeros.

    Shape:
        input: any shape; result: same shape.

    Args:
        input: Floating-point tensor.
        p: Probability of zeroing an element, in ``[0, 1]``.
        training: Apply dropout if true; return ``input`` unchanged if false.
        inplace: Overwrite ``input`` instead of allocating the result.
        generator: Random generator for the mask, for reproducibility.

    Returns:
        The masked and rescaled tensor (``input`` itself when ``inplace`` is true or
        nothing is dropped).

    Raises:
        TypeError: If ``input`` is not a floating-point tensor or ``p`` is not a real number.
        ValueError: If ``p`` is outside ``[0, 1]``.

    Examples:
        >>> x = torch.ones(8)
        >>> y = dropout(x, 0.5, generator=torch.Generator().manual_seed(0))
        >>> sorted(set(y.tolist()))  # every element is 0 or 1 / (1 - 0.5)
        [0.0, 2.0]
    """
    _check_float_tensor(input, "input")
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"p must be a real number, got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability p must be in [0, 1], got {p}")
    if not training or p == 0:
        return input
    if p == 1:
        return input.zero_() if inplace else input * 0  # every element dropped
    keep = torch.empty_like(input).bernoulli_(1 - p, generator=generator)  # 1 with probability 1 - p
    scale = 1.0 / (1.0 - p)
    if inplace:
        return input.mul_(keep).mul_(scale)
    return input * keep * scale


@export("foundations.Conv2d")
class Conv2d(nn.Module):
    """``nn.Module`` wrapper of :func:`conv2d`: owns ``weight`` and ``bias``.

    The parameters are initialised like :class:`torch.nn.Conv2d`: both uniform in
    :math:`[-1/\\sqrt{\\text{fan}_{in}}, 1/\\sqrt{\\text{fan}_{in}}]` with
    :math:`\\text{fan}_{in} = (C_{in} / \\text{groups}) k_h k_w`, weight first, then bias.

    Shape:
        input: ``(N, in_channels, H, W)`` or ``(in_channels, H, W)``; result as in :func:`conv2d`.

    Args:
        in_channels: Input channels, divisible by ``groups``.
        out_channels: Output channels, divisible by ``groups``.
        kernel_size: An int or ``(kH, kW)``.
        stride: As in :func:`conv2d`.
        padding: As in :func:`conv2d` (``"same"`` only with stride 1).
        dilation: As in :func:`conv2d`.
        groups: As in :func:`conv2d`.
        bias: Whether to learn a per-channel bias.
        device: Device of the parameters.
        dtype: Floating dtype of the parameters.

    Raises:
        ValueError: If channels are not positive or not divisible by ``groups``, a size
            is out of range, or ``padding="same"`` is combined with a stride.
        TypeError: If an int/pair argument has the wrong type.

    Examples:
        >>> layer = Conv2d(3, 8, kernel_size=3, padding=1)
        >>> layer(torch.zeros(2, 3, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: IntOrPair | str = 0,
        dilation: IntOrPair = 1,
        groups: int = 1,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        _check_groups(groups, in_channels, out_channels, "in_channels", "out_channels")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair(kernel_size, "kernel_size", minimum=1)
        self.stride = _pair(stride, "stride", minimum=1)
        self.dilation = _pair(dilation, "dilation", minimum=1)
        _resolve_padding(padding, self.kernel_size, self.stride, self.dilation)  # validate now, not at the first call
        self.padding = padding if isinstance(padding, str) else _pair(padding, "padding", minimum=0)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size, **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, **factory))
        else:
            self.register_parameter("bias", None)  # keeps `self.bias` defined and out of state_dict
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw weight, then bias, uniformly in ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``."""
        fan_in = self.weight.shape[1] * self.weight.shape[2] * self.weight.shape[3]
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


@export("foundations.BatchNorm2d")
class BatchNorm2d(nn.Module):
    """``nn.Module`` wrapper of :func:`batch_norm` for ``(N, C, H, W)`` inputs.

    Owns the affine parameters ``weight`` (ones) and ``bias`` (zeros) and the buffers
    ``running_mean`` (zeros), ``running_var`` (ones) and ``num_batches_tracked`` (a long
    counter), with the same names as :class:`torch.nn.BatchNorm2d`. In training mode
    each call increments the counter and updates the running statistics with
    ``momentum``, or with ``1 / num_batches_tracked`` (a cumulative average) when
    ``momentum is None``; in eval mode the running statistics normalise. Without
    tracked statistics the batch statistics are used in both modes.

    Shape:
        input: ``(N, num_features, H, W)``; result: same shape.

    Args:
        num_features: Number of channels ``C``.
        eps: Added to the variance.
        momentum: Weight of each new batch in the running averages, or ``None`` for a
            cumulative average over all batches seen.
        affine: Whether to learn ``weight`` and ``bias``.
        track_running_stats: Whether to keep running statistics.
        device: Device of parameters and buffers.
        dtype: Floating dtype of parameters and running statistics.

    Raises:
        ValueError: If ``num_features < 1``, and (when called) if the input is not 4-D.

    Examples:
        >>> norm = BatchNorm2d(3)
        >>> sorted(norm.state_dict())
        ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        factory = {"device": device, "dtype": dtype}
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))  # gamma
            self.bias = nn.Parameter(torch.zeros(num_features, **factory))  # beta
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            # Buffers: saved in state_dict and moved by .to(), but never seen by an optimizer.
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, counter 0."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.dim() != 4:
            raise ValueError(f"BatchNorm2d expects 4-D input (N, C, H, W), got shape {tuple(input.shape)}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average: batch t gets weight 1 / t
                factor = 1.0 / float(self.num_batches_tracked)
        # Batch statistics in training, and always when no running statistics exist.
        use_batch_stats = self.training or self.running_mean is None
        # Running buffers are passed (and so updated) only if they exist and are tracked.
        return batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                          use_batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


@export("foundations.Dropout")
class Dropout(nn.Module):
    """``nn.Module`` wrapper of :func:`dropout` that follows ``train()`` / ``eval()``.

    Shape:
        input: any shape; result: same shape.

    Args:
        p: Probability of zeroing an element, in ``[0, 1]``.
        inplace: Overwrite the input.
        generator: Random generator for the masks (the global one when ``None``).

    Raises:
        ValueError: If ``p`` is outside ``[0, 1]``.
        TypeError: If ``p`` is not a real number.

    Examples:
        >>> layer = Dropout(0.5).eval()
        >>> layer(torch.ones(3))
        tensor([1., 1., 1.])
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)):
            raise TypeError(f"p must be a real number, got {type(p).__name__}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability p must be in [0, 1], got {p}")
        self.p, self.inplace, self.generator = p, inplace, generator

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return dropout(input, self.p, self.training, self.inplace, generator=self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


def _im2col(
    x: torch.Tensor,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out_size: tuple[int, int],
) -> torch.Tensor:
    """Receptive fields as columns: ``(N, C, Hp, Wp) -> (N, C * kH * kW, H_out * W_out)``.

    Kernel tap ``(u, v)`` reads the input at rows ``i * s_h + u * d_h``: one strided slice
    of the padded input per tap, so the copy costs ``kH * kW`` slices, not a Python loop
    over output pixels.
    """
    batch, channels = x.shape[:2]
    (kernel_h, kernel_w), (stride_h, stride_w), (dilation_h, dilation_w), (out_h, out_w) = kernel, stride, dilation, out_size
    taps = []
    for u in range(kernel_h):
        for v in range(kernel_w):
            row, col = u * dilation_h, v * dilation_w
            taps.append(x[:, :, row : row + stride_h * (out_h - 1) + 1 : stride_h, col : col + stride_w * (out_w - 1) + 1 : stride_w])
    columns = torch.stack(taps, dim=2)  # (N, C, kH * kW, H_out, W_out)
    return columns.reshape(batch, channels * kernel_h * kernel_w, out_h * out_w)


def _resolve_padding(
    padding: IntOrPair | str,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` zero padding for an int, a pair, ``"same"`` or ``"valid"``."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding != "same":
            raise ValueError(f"padding must be an int, a pair of ints, 'same' or 'valid', got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"padding='same' needs stride 1 (output size = input size), got stride={stride}")
        # Keep the size: pad dilation * (k - 1) in total, the extra pixel (if odd) at the end.
        total_h, total_w = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
        return total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2
    pad_h, pad_w = _pair(padding, "padding", minimum=0)
    return pad_h, pad_h, pad_w, pad_w


def _pair(value: IntOrPair, name: str, minimum: int) -> tuple[int, int]:
    """``value`` as ``(h, w)``: an int is used for both, a sequence must have length 2."""
    if isinstance(value, int) and not isinstance(value, bool):
        pair = (value, value)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{name} must be an int or a pair of ints (h, w), got {value!r}")
        pair = (value[0], value[1])
    else:
        raise TypeError(f"{name} must be an int or a pair of ints (h, w), got {type(value).__name__}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair


def _check_groups(groups: int, in_channels: int, out_channels: int, in_name: str, out_name: str) -> None:
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    if in_channels % groups:
        raise ValueError(f"{in_name} ({in_channels}) must be divisible by groups ({groups})")
    if out_channels % groups:
        raise ValueError(f"{out_name} ({out_channels}) must be divisible by groups ({groups})")


def _check_float_tensor(tensor: object, name: str) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {tensor.dtype}")


def _check_same_kind(tensor: torch.Tensor, input: torch.Tensor, name: str) -> None:
    if tensor.dtype != input.dtype:
        raise TypeError(f"{name} must have the input's dtype {input.dtype}, got {tensor.dtype}")
    if tensor.device != input.device:
        raise TypeError(f"{name} must be on the input's device {input.device}, got {tensor.device}")
