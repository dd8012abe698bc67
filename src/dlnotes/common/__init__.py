"""Shared building blocks: bundled data and training helpers used by several parts."""
