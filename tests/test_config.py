"""The configuration objects: each cell's spec gives the weights Keras
builds, the level's defaults come from its tokenizer class, and a generation
request checks itself."""

import dataclasses
import math

import numpy as np
import pytest

from textgen.errors import TextgenError
from textgen.inference.contract import GenerationRequest
from textgen.model.config import CELL_SPECS, CELLS, ModelConfig, TrainConfig
from textgen.model.levels import CHARACTERS, WORDS, level_policy
from textgen.text.tokens import LEVELS, CharTokenizer, WordTokenizer, level_class


@pytest.mark.parametrize("cell", CELLS)
def test_each_cell_spec_names_the_weights_keras_builds(cell):
    """The spec's names and shapes are those of the Keras layers `build_model`
    makes, for two layers of different widths, and count their parameters."""
    from textgen.model.network import build_model
    from textgen.text.vocab import Vocabulary

    config = ModelConfig(
        cell=cell, layers=2, units=6, embedding_dim=4, vocab_size=5, dropout=0.0
    )
    model = build_model(config, Vocabulary(["<pad>", "<unk>", "a", "b", "c"]))
    built = {name: value.shape for name, value in model.named_weights().items()}
    assert built == config.weight_shapes()
    assert config.parameter_count() == sum(map(math.prod, built.values()))
    per_layer = [n for n in built if n.startswith("layer0.")]
    assert [n.split(".", 1)[1] for n in per_layer] == list(CELL_SPECS[cell].weights)


def test_the_state_count_is_what_the_layers_carry():
    from textgen.model.decoder import Decoder

    for cell in CELLS:
        config = ModelConfig(
            cell=cell, layers=1, units=3, embedding_dim=2, vocab_size=4
        )
        weights = {
            name: np.zeros(shape, np.float32)
            for name, shape in config.weight_shapes().items()
        }
        states = Decoder(config, weights).zero_states(1)
        assert len(states[0]) == CELL_SPECS[cell].states


def test_level_defaults_come_from_the_tokenizer_class():
    assert LEVELS == ("word", "char")
    assert level_class("word") is WordTokenizer and level_class("char") is CharTokenizer
    words, chars = TrainConfig(level="word"), TrainConfig(level="char")
    assert (words.memory_order, chars.memory_order) == (3, 7)
    assert (words.carries_state, chars.carries_state) == (False, True)
    # Never under a distribution strategy, whatever the level says.
    assert not TrainConfig(level="char", distribute="mirrored").carries_state
    assert WORDS.tied_by_default and not CHARACTERS.tied_by_default
    assert level_policy("word") is WORDS and level_policy("char") is CHARACTERS
    assert CharTokenizer.holds("x") and CharTokenizer.holds("<end>")
    assert not CharTokenizer.holds("xy") and WordTokenizer.holds("xy")


def test_a_generation_request_checks_itself_and_changes_by_copy():
    request = GenerationRequest(stop=["a", "b"])
    assert request.stop == ("a", "b") and request.length == 50
    longer = dataclasses.replace(request, length=7)
    assert longer.length == 7 and request.length == 50 and longer.stop == ("a", "b")
    for bad in ({"until": "word"}, {"length": -1}, {"max_tries": -2}):
        with pytest.raises(TextgenError):
            GenerationRequest(**bad)


def test_the_min_count_default_has_one_home():
    """Not given, `--min-count` is 2, or 1 for pre-tokenized text, for the
    library as for the command line (which passes None)."""
    assert TrainConfig().word_min_count == 2
    assert TrainConfig(tokenizer="whitespace").word_min_count == 1
    assert TrainConfig(tokenizer="whitespace", min_count=3).word_min_count == 3
    assert TrainConfig(min_count=1).word_min_count == 1
