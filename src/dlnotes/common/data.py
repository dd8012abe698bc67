"""A small text corpus generated for the project, and batching helpers.

Nothing is downloaded: :func:`corpus` writes a few hundred kilobytes of simple English
from a fixed grammar and a seeded random generator, so every machine gets the same text.
The grammar has regularities a tiny model can learn in a minute (fixed facts about a
cast of characters, recurring phrases, counting), which also makes its continuations
predictable enough for speculative decoding to pay off.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
from dlnotes.foundations.api_export import export

__all__ = ["corpus", "sentences_text", "train_val_split", "random_batch"]

_PEOPLE = {
    # name: (home town, favourite food, pet, job)
    "alice": ("paris", "bread", "cat", "painter"),
    "bob": ("london", "soup", "dog", "baker"),
    "carol": ("rome", "pasta", "bird", "doctor"),
    "dave": ("berlin", "cheese", "fish", "teacher"),
    "erin": ("madrid", "rice", "horse", "pilot"),
    "frank": ("vienna", "apples", "rabbit", "farmer"),
    "grace": ("lisbon", "fish", "turtle", "writer"),
    "heidi": ("oslo", "honey", "goat", "sailor"),
}
_ADJECTIVES = ["red", "small", "quiet", "old", "bright", "green", "happy", "lazy", "quick", "brown"]
_ANIMALS = ["fox", "dog", "cat", "owl", "bear", "mouse", "horse", "duck"]
_VERBS = ["sees", "follows", "watches", "finds", "helps", "chases"]
_PLACES = ["the river", "the garden", "the market", "the hill", "the forest", "the station"]
_NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def _sentence(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.35:  # a fixed fact about someone: learnable by heart
        name = rng.choice(sorted(_PEOPLE))
        town, food, pet, job = _PEOPLE[name]
        return rng.choice(
            [
                f"{name} lives in {town} and likes {food}.",
                f"{name} is a {job} from {town}.",
                f"{name} has a {pet} and eats {food} every day.",
                f"every morning {name} walks the {pet} in {town}.",
            ]
        )
    if kind < 0.7:  # free combinations from a small vocabulary
        return (
            f"the {rng.choice(_ADJECTIVES)} {rng.choice(_ANIMALS)} {rng.choice(_VERBS)} "
            f"the {rng.choice(_ADJECTIVES)} {rng.choice(_ANIMALS)} near {rng.choice(_PLACES)}."
        )
    if kind < 0.85:  # counting: long, fully predictable runs
        start = rng.randrange(0, 5)
        length = rng.randrange(3, 6)
        return "we count " + " ".join(_NUMBERS[start : start + length]) + "."
    name, other = rng.sample(sorted(_PEOPLE), 2)
    return f"{name} meets {other} at {rng.choice(_PLACES)} and they talk about {_PEOPLE[other][1]}."


@export("common.corpus")
def corpus(num_chars: int = 200_000, seed: int = 0) -> str:
    """Generate the project's training text.

    Args:
        num_chars: Approximate length (the text stops at the first sentence end after it).
        seed: Seed of the generator; the same seed always gives the same text.

    Returns:
        Lower-case English sentences separated by spaces and newlines.

    Raises:
        ValueError: If ``num_chars`` is not positive.

    Examples:
        >>> corpus(80).split(".")[0]
        'we count four five six'
    """
    return sentences_text(_sentence, num_chars, seed)


def sentences_text(sentence: Callable[[random.Random], str], num_chars: int, seed: int = 0) -> str:
    """Lines of one to three generated sentences until about ``num_chars`` characters.

    Args:
        sentence: Draws one sentence from a ``random.Random``.
        num_chars: Approximate length (the text stops at the first line end after it).
        seed: Seed of the generator.

    Returns:
        The lines joined by newlines, ending in a newline.

    Raises:
        ValueError: If ``num_chars`` is not a positive integer.
    """
    if isinstance(num_chars, bool) or not isinstance(num_chars, int) or num_chars <= 0:
        raise ValueError(f"num_chars must be a positive integer, got {num_chars!r}")
    rng = random.Random(seed)
    lines, length = [], 0
    while length < num_chars:
        line = " ".join(sentence(rng) for _ in range(rng.randrange(1, 4)))
        lines.append(line)
        length += len(line) + 1
    return "\n".join(lines) + "\n"


def train_val_split(ids: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a 1-D id tensor into a leading training part and a trailing validation part.

    Raises:
        ValueError: If ``val_fraction`` is outside ``(0, 1)`` or ``ids`` is not 1-D.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
    cut = int(len(ids) * (1 - val_fraction))
    return ids[:cut], ids[cut:]


def random_batch(
    ids: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of a 1-D id tensor and the same windows shifted by one (the targets).

    Shape:
        result: two ``(batch_size, block_size)`` int64 tensors.

    Raises:
        ValueError: If ``ids`` is shorter than ``block_size + 1``.
    """
    if len(ids) < block_size + 1:
        raise ValueError(f"need at least block_size + 1 = {block_size + 1} ids, got {len(ids)}")
    starts = torch.randint(0, len(ids) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size)
    inputs = ids[starts[:, None] + offsets]
    targets = ids[starts[:, None] + offsets + 1]
    return inputs, targets
