"""The one place that imports Triton.

Triton decides at ``@triton.jit`` time whether kernels run natively or through its
interpreter, which reads the ``TRITON_INTERPRET`` environment variable. On a machine
without CUDA the interpreter is the only way to run a kernel; importing the ``dlnotes``
package (which happens before this module runs) sets ``TRITON_INTERPRET=1`` there, and
every kernel module imports triton through this one::

    from dlnotes._triton import triton, tl, INTERPRET, default_device

Nothing here queries the GPU driver at import time: that raises on machines without
one. Under the interpreter each program instance runs in NumPy on CPU tensors, so keep
grids small there; natively the same kernels run on CUDA tensors.
"""

from __future__ import annotations

import os

import torch

__all__ = ["INTERPRET", "default_device", "triton", "tl"]

# dlnotes/__init__.py has already set TRITON_INTERPRET=1 when CUDA is absent.
#: True when Triton kernels run through the CPU interpreter instead of on a GPU.
INTERPRET: bool = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

if INTERPRET and type(tl.max).__name__ != "InterpretedFunction":
    raise RuntimeError(
        "Triton was imported before TRITON_INTERPRET=1 was set, so its helpers (tl.max, "
        "tl.sum, ...) were built for a GPU and cannot run in the CPU interpreter. Import "
        "dlnotes before anything that imports triton (torch.optim optimisers do), or set "
        "TRITON_INTERPRET=1 in the environment before starting Python."
    )


def default_device() -> torch.device:
    """Return the device Triton kernels should receive their tensors on.

    Under the interpreter kernels read CPU tensors; natively they need CUDA tensors.

    Returns:
        ``torch.device("cpu")`` when :data:`INTERPRET` is true, else ``torch.device("cuda")``.

    Examples:
        >>> from dlnotes._triton import default_device
        >>> x = torch.ones(4, device=default_device())
    """
    return torch.device("cpu") if INTERPRET else torch.device("cuda")
