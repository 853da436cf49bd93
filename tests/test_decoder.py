"""The TensorFlow-free path gives the Keras model's numbers: for every cell,
level and output layer, the weights read from the file by h5py, stepped by
the NumPy `Decoder`, give the logits of the Keras model to float tolerance."""

import itertools
from pathlib import Path

import numpy as np
import pytest

from textgen.model.config import ModelConfig
from textgen.model.decoder import Decoder
from textgen.model.file import read_model
from textgen.text.tokens import TokenizerSettings
from textgen.text.vocab import PAD, UNK, Vocabulary

CASES = list(
    itertools.product(
        ["lstm", "gru", "rnn", "peephole"], ["word", "char"], [True, False]
    )
)


@pytest.mark.slow
@pytest.mark.parametrize(("cell", "level", "tied"), CASES)
def test_the_file_reader_gives_the_keras_logits(cell, level, tied, tmp_path: Path):
    import keras

    from textgen.model.network import build_model, save_model

    keras.utils.set_random_seed(3)
    symbols = list("abcdefg") if level == "char" else ["one", "two", "three", "<p>"]
    vocab = Vocabulary([PAD, UNK, *symbols])
    config = ModelConfig(
        cell=cell,
        layers=2,
        units=6,
        embedding_dim=4,
        tie_embeddings=tied,
        vocab_size=len(vocab),
    )
    model = build_model(config, vocab, TokenizerSettings(level=level))
    for weight in model.weights:  # away from zero biases: every term counts
        weight.assign(np.random.default_rng(1).normal(0, 0.5, weight.shape))
    path = save_model(model, tmp_path / "m.keras")
    read = read_model(path)
    assert read.model_config == config and read.vocabulary.words == vocab.words
    assert read.tokenizer_settings.level == level and not read.has_optimizer
    ids = np.array([[2, 3, 4, 2, 5, 3]])
    expected = np.asarray(model(ids))  # (1, 6, vocab)
    decoder = Decoder(read.model_config, read.named_weights())
    states = decoder.zero_states(1)
    for t in range(ids.shape[1]):
        logits, states = decoder.step(ids[:, t], states)
        np.testing.assert_allclose(logits, expected[:, t], rtol=1e-4, atol=1e-5)
