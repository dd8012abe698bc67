"""Distributed part: data-parallel training with DDP, ring all-reduce, and a DDP written by hand.

One module per chapter of ``docs/distributed/``; see the chapter for the derivations.

* :mod:`~dlnotes.distributed.launcher`: :func:`launch` runs a function in ``N`` processes
  that form a process group (like ``torchrun``, but callable from Python).
* :mod:`~dlnotes.distributed.ring`: :func:`ring_all_reduce` over point-to-point messages.
* :mod:`~dlnotes.distributed.simple_ddp`: :class:`SimpleDDP`, DDP written by hand.
* :mod:`~dlnotes.distributed.train`: a small model trained in one process and with DDP.
* :mod:`~dlnotes.distributed.examples`: worker functions for the chapter and tests.
"""

from dlnotes.distributed.launcher import RankError, launch
from dlnotes.distributed.ring import ring_all_reduce
from dlnotes.distributed.simple_ddp import SimpleDDP

__all__ = ["RankError", "SimpleDDP", "launch", "ring_all_reduce"]
