import numpy as np
import pytest

from textgen.errors import TextgenError
from textgen.text.vocab import PAD, UNK, UNK_ID, Vocabulary


def test_build_orders_by_frequency_then_alphabet():
    vocab = Vocabulary.build("b a c a b a".split())
    assert vocab.words == [PAD, UNK, "a", "b", "c"]
    assert vocab.counts == [0, 0, 3, 2, 1]


def test_max_size_and_min_count_send_the_rest_to_unk():
    tokens = "a a a b b c d".split()
    assert Vocabulary.build(tokens, max_size=4).words == [PAD, UNK, "a", "b"]
    vocab = Vocabulary.build(tokens, min_count=2)
    assert vocab.words == [PAD, UNK, "a", "b"]
    assert vocab.counts[UNK_ID] == 2  # c and d
    assert vocab.encode(["a", "d", "zzz"]).tolist() == [2, UNK_ID, UNK_ID]


def test_encode_decode_and_unknown():
    vocab = Vocabulary.build("the cat sat".split())
    ids = vocab.encode(["the", "dog", "sat"])
    assert ids.dtype == np.int32
    assert vocab.decode(ids) == ["the", UNK, "sat"]
    assert vocab.unknown(["dog", "the", "dog", "emu"]) == ["dog", "emu"]


def test_config_round_trip():
    vocab = Vocabulary.build("x y y z z z".split())
    again = Vocabulary.from_config(vocab.get_config())
    assert again.words == vocab.words
    assert again.counts == vocab.counts
    assert len(again) == 5


def test_rejects_malformed_word_lists():
    with pytest.raises(TextgenError):
        Vocabulary(["a", "b"])
    with pytest.raises(TextgenError):
        Vocabulary([PAD, UNK, "a", "a"])
