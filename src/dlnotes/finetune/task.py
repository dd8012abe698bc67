"""A fine-tuning task for the small GPT: facts about a new cast, and a new sentence pattern.

The pretraining corpus (:func:`dlnotes.common.data.corpus`) states fixed facts about
eight people ("alice lives in paris and likes bread."). This module writes text about
six *other* people the pretrained model has never seen, in the corpus' sentence
patterns plus one pattern it has never seen ("in cairo the nurse ivan feeds the
lizard."). Adapting the model means memorising new facts and a new style, which is
what the fine-tuning chapters compare methods on. Only characters of the pretraining
alphabet are used, so the same tokenizer serves both.
"""

from __future__ import annotations

import random

from dlnotes.common.data import sentences_text

__all__ = ["NEW_PEOPLE", "new_facts_text", "fact_prompts", "fact_recall"]

#: name: (home town, favourite food, pet, job); none of them appears in the corpus.
NEW_PEOPLE: dict[str, tuple[str, str, str, str]] = {
    "ivan": ("cairo", "tea", "lizard", "nurse"),
    "kate": ("tokyo", "plums", "parrot", "chef"),
    "liam": ("dublin", "eggs", "hamster", "singer"),
    "mona": ("athens", "nuts", "snake", "builder"),
    "nora": ("prague", "cake", "pony", "lawyer"),
    "omar": ("warsaw", "beans", "frog", "miner"),
}


def _sentence(rng: random.Random) -> str:
    name = rng.choice(sorted(NEW_PEOPLE))
    town, food, pet, job = NEW_PEOPLE[name]
    return rng.choice(
        [
            f"{name} lives in {town} and likes {food}.",
            f"{name} is a {job} from {town}.",
            f"{name} has a {pet} and eats {food} every day.",
            f"in {town} the {job} {name} feeds the {pet}.",  # the new sentence pattern
        ]
    )


def new_facts_text(num_chars: int = 20_000, seed: int = 0) -> str:
    """Text about :data:`NEW_PEOPLE`, one to three sentences per line.

    Args:
        num_chars: Approximate length (the text stops at the first line end after it).
        seed: Seed of the sentence choices; use different seeds for training and
            validation text (the facts are the same, the sentences differ).

    Returns:
        Lower-case sentences over the pretraining corpus' alphabet.

    Raises:
        ValueError: If ``num_chars`` is not positive.

    Examples:
        >>> new_facts_text(30, seed=1).splitlines()[0]
        'nora lives in prague and likes cake.'
    """
    return sentences_text(_sentence, num_chars, seed)


def fact_prompts() -> list[tuple[str, str]]:
    """``(prompt, answer)`` pairs that test the new facts, e.g. ``("ivan lives in ", "cairo")``.

    Each answer is followed by a space or a period in the text, so a greedy completion
    counts as correct when it starts with the answer and then ends the word.

    Returns:
        Three pairs per person (home town, job, pet), 18 in all.

    Examples:
        >>> fact_prompts()[0]
        ('ivan lives in ', 'cairo')
    """
    pairs = []
    for name, (town, _food, pet, job) in sorted(NEW_PEOPLE.items()):
        pairs += [(f"{name} lives in ", town), (f"{name} is a ", job), (f"{name} has a ", pet)]
    return pairs


def fact_recall(model: object, tokenizer: object) -> float:
    """Fraction of :func:`fact_prompts` that ``model`` completes correctly by greedy decoding.

    Args:
        model: Anything with ``generate(prompt_ids, max_new_tokens)`` returning the
            prompt followed by new ids (a GPT, or a prefix/prompt-tuned wrapper).
        tokenizer: The tokenizer with ``encode``/``decode``.

    Returns:
        A number in ``[0, 1]``.
    """
    pairs = fact_prompts()
    correct = 0
    for prompt, answer in pairs:
        ids = tokenizer.encode(prompt)
        completion = tokenizer.decode(model.generate(ids, len(answer) + 1)[len(ids) :])
        correct += completion in (answer + " ", answer + ".")
    return correct / len(pairs)
