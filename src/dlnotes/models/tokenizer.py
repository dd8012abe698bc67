"""A character-level tokenizer: one id per distinct character of a text."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from dlnotes.foundations.api_export import export

__all__ = ["CharTokenizer"]


@export("models.CharTokenizer")
class CharTokenizer:
    """Maps each character of a fixed alphabet to an integer id and back.

    Ids follow the sorted order of the characters, so the same alphabet always gives
    the same ids.

    Args:
        alphabet: The characters to know, e.g. the text the model will be trained on
            (duplicates are ignored).

    Raises:
        ValueError: If the alphabet is empty.

    Examples:
        >>> tokenizer = CharTokenizer("hello world")
        >>> tokenizer.decode(tokenizer.encode("hello"))
        'hello'
    """

    def __init__(self, alphabet: Iterable[str]) -> None:
        self.chars: list[str] = sorted(set(alphabet))
        if not self.chars:
            raise ValueError("alphabet must contain at least one character")
        self._ids = {char: index for index, char in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        """Number of distinct ids."""
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text``.

        Raises:
            ValueError: If ``text`` holds a character outside the alphabet.
        """
        try:
            return [self._ids[char] for char in text]
        except KeyError as error:
            raise ValueError(f"character {error.args[0]!r} is not in the tokenizer's alphabet") from None

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The text for a sequence of ids (a list or a 1-D tensor).

        Raises:
            ValueError: If an id is outside ``[0, vocab_size)``.
        """
        values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        bad = [value for value in values if not 0 <= value < self.vocab_size]
        if bad:
            raise ValueError(f"ids must lie in [0, {self.vocab_size}), got {bad[:5]}")
        return "".join(self.chars[value] for value in values)

    def to_dict(self) -> dict:
        """A JSON-friendly description (see :meth:`from_dict`)."""
        return {"chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, data: dict) -> CharTokenizer:
        """Rebuild a tokenizer saved with :meth:`to_dict`."""
        return cls(data["chars"])

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"
