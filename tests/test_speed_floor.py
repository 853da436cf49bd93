"""The NumPy floor that benchmarks/speed.py times beside `generate` computes
what the decoder computes: with the same random numbers it draws the words
that the decoder's logits and the same inverse-CDF draw give."""

import numpy as np
from speed import numpy_floor

from textgen.model.config import ModelConfig
from textgen.model.decoder import Decoder


def test_the_floor_draws_from_the_decoders_distribution():
    config = ModelConfig(
        cell="lstm", layers=2, units=12, embedding_dim=5, vocab_size=40,
        tie_embeddings=False, dropout=0,
    )  # fmt: skip
    rng = np.random.default_rng(4)
    weights = {
        name: (2 * rng.standard_normal(shape)).astype(np.float32)
        for name, shape in config.weight_shapes().items()
    }
    decoder = Decoder(config, weights)
    floor = numpy_floor(decoder, 60, seed=7)

    draws, states = np.random.default_rng(7), decoder.zero_states(1)
    token, expected = 1, []
    for _ in range(60):
        logits, states = decoder.step(np.array([token]), states)
        mass = np.cumsum(np.exp(logits[0] - logits[0].max()))
        token = int(np.searchsorted(mass, draws.random() * mass[-1], "right"))
        expected.append(token)
    assert floor == expected
    assert len(set(floor)) > 5  # a sample, not one word over and over
