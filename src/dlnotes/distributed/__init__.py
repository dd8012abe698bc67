"""Distributed part: data-parallel training with DDP, ring all-reduce, and a DDP written by hand.

One module per chapter of ``docs/distributed/``; see the chapter for the derivations."""
