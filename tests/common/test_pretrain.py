"""The bundled corpus and the cached pretraining helper."""

import pytest
import torch

from dlnotes.common.data import corpus, random_batch, train_val_split
from dlnotes.common.pretrain import TrainingConfig, pretrained_gpt
from dlnotes.models.gpt import GPTConfig


def test_corpus_is_deterministic_and_small():
    text = corpus()
    assert text == corpus() and text != corpus(seed=1)
    assert 150_000 < len(text) < 400_000
    assert set(text) <= set("abcdefghijklmnopqrstuvwxyz .\n")
    with pytest.raises(ValueError, match="num_chars"):
        corpus(0)


def test_batches_are_shifted_windows():
    ids = torch.arange(100)
    inputs, targets = random_batch(ids, 4, 10, torch.Generator().manual_seed(0))
    assert inputs.shape == targets.shape == (4, 10)
    assert torch.equal(targets, inputs + 1)
    train, val = train_val_split(ids, 0.2)
    assert len(train) == 80 and torch.equal(val, torch.arange(80, 100))
    with pytest.raises(ValueError, match="block_size"):
        random_batch(ids, 2, 100)
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(ids, 1.5)


def test_pretraining_learns_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("DLNOTES_CACHE", str(tmp_path))
    text = corpus(20_000)
    config = GPTConfig(vocab_size=len(set(text)), n_layer=1, n_head=2, d_model=32, max_len=64)
    training = TrainingConfig(steps=40, batch_size=8, block_size=32, warmup_steps=5)
    first = pretrained_gpt(config, training, text=text)
    uniform = torch.log(torch.tensor(float(config.vocab_size))).item()
    assert first.val_loss < uniform - 0.5, (first.val_loss, uniform)  # it learned something
    assert first.path is not None and first.path.parent == tmp_path and first.path.is_file()
    second = pretrained_gpt(config, training, text=text)  # loaded, not retrained
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    assert second.val_loss == first.val_loss
    other = pretrained_gpt(config, TrainingConfig(steps=41, batch_size=8, block_size=32, warmup_steps=5), text=text)
    assert other.path != first.path, "a different training configuration must get its own cache entry"
    with pytest.raises(ValueError, match="vocab_size"):
        pretrained_gpt(GPTConfig(vocab_size=5), training, text=text, use_cache=False)
