import numpy as np
import pytest

from textgen.model.config import ModelConfig
from textgen.text.vocab import Vocabulary
from textgen.training.gradients import gradient_decay


def _model(cell: str):
    from textgen.model.network import build_model

    vocab = Vocabulary.build([f"w{i}" for i in range(20)])
    config = ModelConfig(
        cell, layers=1, units=8, embedding_dim=4, vocab_size=len(vocab)
    )
    return build_model(config, vocab)


@pytest.mark.slow
def test_decay_is_relative_to_the_last_word():
    ids = np.random.default_rng(0).integers(2, 22, 300)
    decay = gradient_decay(_model("gru"), ids, distance=12, windows=8)
    assert decay.shape == (13,)
    assert decay[0] == 1.0
    assert np.all(np.isfinite(decay)) and np.all(decay[1:] > 0)


def test_no_recurrence_means_no_gradient_from_earlier_words():
    model = _model("rnn")
    model.recurrent_layers[0].cell.recurrent_kernel.assign(np.zeros((8, 8)))
    ids = np.random.default_rng(1).integers(2, 22, 100)
    decay = gradient_decay(model, ids, distance=5, windows=4)
    assert decay[0] == 1.0
    np.testing.assert_array_equal(decay[1:], 0.0)


def test_short_texts_shorten_the_distance():
    ids = np.arange(2, 12)
    assert len(gradient_decay(_model("lstm"), ids, distance=60, windows=2)) == 9
