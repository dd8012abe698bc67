"""The fine-tuning task: new facts over the pretraining alphabet, and the recall metric."""

import re

import pytest

from dlnotes.common.data import _PEOPLE, corpus
from dlnotes.finetune.task import NEW_PEOPLE, fact_prompts, fact_recall, new_facts_text
from dlnotes.models.tokenizer import CharTokenizer


def test_text_is_deterministic_new_and_encodable():
    text = new_facts_text(3_000, seed=1)
    assert text == new_facts_text(3_000, seed=1) and text != new_facts_text(3_000, seed=2)
    assert 3_000 <= len(text) < 3_300
    assert set(text) <= set(corpus()), "the pretraining tokenizer must encode the task"
    CharTokenizer(corpus()).encode(text)
    assert not set(NEW_PEOPLE) & set(_PEOPLE), "the cast must be new"
    words = set(re.findall(r"[a-z]+", corpus()))
    assert not set(NEW_PEOPLE) & words, "no new name may occur in the pretraining text"
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="num_chars"):
            new_facts_text(bad)


def test_every_sentence_states_a_true_fact():
    sentences = [s.strip() for s in new_facts_text(2_000, seed=3).split(".") if s.strip()]
    assert len(sentences) > 40
    for sentence in sentences:
        name = next(word for word in sentence.split() if word in NEW_PEOPLE)
        town, food, pet, job = NEW_PEOPLE[name]
        assert sentence in {
            f"{name} lives in {town} and likes {food}",
            f"{name} is a {job} from {town}",
            f"{name} has a {pet} and eats {food} every day",
            f"in {town} the {job} {name} feeds the {pet}",
        }, sentence


class Oracle:
    """Completes prompts from the facts table (right) or with a fixed word (wrong)."""

    def __init__(self, tokenizer, right: bool):
        self.tokenizer, self.right = tokenizer, right

    def generate(self, ids, max_new_tokens):
        prompt = self.tokenizer.decode(ids)
        answer = dict(fact_prompts())[prompt] if self.right else "paris"
        completion = (answer + " " + "x" * 20)[:max_new_tokens]
        return list(ids) + self.tokenizer.encode(completion)


def test_recall_counts_exact_completions():
    tokenizer = CharTokenizer(corpus())
    assert len(fact_prompts()) == 3 * len(NEW_PEOPLE)
    assert fact_recall(Oracle(tokenizer, right=True), tokenizer) == 1.0
    assert fact_recall(Oracle(tokenizer, right=False), tokenizer) == 0.0
