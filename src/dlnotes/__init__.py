"""dlnotes: executable deep-learning notes.

Each subpackage backs one part of the site (``foundations``, ``vision``, ``attention``,
``ssm``, ``finetune``, ``decoding``, ``distributed``, ``rl``, ``algorithms``); every
chapter imports its code from here, and every snippet is executed by the test suite.
"""

import os as _os

__version__ = "0.1.0"

__all__ = ["__version__"]


def _interpret_triton_without_cuda() -> None:
    """Choose Triton's CPU interpreter before anything imports Triton.

    Triton decorates its own helpers (``tl.max``, ``tl.sum``, ...) when it is first
    imported, natively or for the interpreter depending on ``TRITON_INTERPRET`` at that
    moment, and PyTorch imports Triton on its own (creating an ``AdamW`` optimiser does).
    Setting the variable when ``dlnotes`` is imported, rather than when the first kernel
    module is, keeps a session that trains first and runs a kernel later working.
    """
    import torch

    if not torch.cuda.is_available():
        _os.environ.setdefault("TRITON_INTERPRET", "1")


_interpret_triton_without_cuda()
