"""Decoding part: faster generation without a draft model: Medusa heads, tree attention, typical acceptance.

One module per chapter of ``docs/decoding/``; see the chapter for the derivations."""
