import numpy as np
import pytest
from conftest import PATTERN_GREEDY

from textgen.generate import Decoder, Generator
from textgen.sampling import SamplingSettings
from textgen.vocab import PAD, UNK

GREEDY = SamplingSettings(temperature=0)


@pytest.fixture(scope="module")
def generator(trained):
    return Generator(trained[1])


def test_greedy_generation_reproduces_the_learned_pattern(generator):
    assert generator.generate("three", 18, GREEDY) == [PATTERN_GREEDY]


def test_carried_state_matches_the_full_window(trained):
    """Next-word logits after stepping one word at a time from the seed equal
    those of running the whole sequence through the training model."""
    model = trained[1]
    ids = model.vocabulary.encode("one two three , four five . six seven".split())
    full = np.asarray(model(ids[None, :]))  # (1, 9, vocab)
    decoder = Decoder(model)
    logits, states = decoder.read(ids[None, :3])
    stepped = [logits]
    for word_id in ids[3:]:
        logits, states = decoder.step(np.array([word_id]), states)
        stepped.append(logits)
    np.testing.assert_allclose(np.concatenate(stepped), full[0, 2:], atol=1e-5)


@pytest.mark.parametrize(
    ("cell", "tie", "units"),
    [
        ("lstm", False, 12),
        ("gru", False, 12),
        ("rnn", False, 12),
        ("peephole", False, 12),
        ("lstm", True, 12),  # tied through a projection (12 -> 5)
        ("gru", True, 5),  # tied directly
    ],
)
def test_decoder_computes_what_keras_computes(cell: str, tie: bool, units: int):
    """The NumPy decoder against Keras, for every cell, batch > 1, two layers,
    with random (untrained, so not degenerate) weights."""
    from textgen.config import ModelConfig
    from textgen.model import build_model
    from textgen.vocab import Vocabulary

    vocab = Vocabulary.build([f"w{i}" for i in range(30)])
    config = ModelConfig(
        cell, layers=2, units=units, embedding_dim=5, tie_embeddings=tie, vocab_size=32
    )
    model = build_model(config, vocab)
    for weight in model.weights:  # larger weights make the gates saturate too
        weight.assign(np.random.default_rng(0).normal(0, 0.6, weight.shape))
    ids = np.random.default_rng(1).integers(0, 32, size=(3, 10))
    full = np.asarray(model(ids))  # (3, 10, vocab)
    decoder = Decoder(model)
    states = decoder.zero_states(3)
    for t in range(10):
        logits, states = decoder.step(ids[:, t], states)
        np.testing.assert_allclose(logits, full[:, t], atol=1e-4, rtol=1e-4)


def test_streamed_pieces_make_the_same_text(generator):
    pieces: list[str] = []
    texts = generator.generate("one two", 20, GREEDY, on_text=pieces.append)
    assert "".join(pieces) == texts[0]
    assert texts[0].startswith("One two three, four five.")


def test_batch_of_samples_and_reproducible_seed(generator):
    hot = SamplingSettings(temperature=1.5)
    a = generator.generate("one", 12, hot, num_samples=4, random_seed=11)
    b = generator.generate("one", 12, hot, num_samples=4, random_seed=11)
    c = generator.generate("one", 12, hot, num_samples=4, random_seed=12)
    assert a == b != c
    assert len(a) == 4 and len(set(a)) > 1
    single = generator.generate("one", 12, hot, random_seed=11)
    assert single[0] == generator.generate("one", 12, hot, random_seed=11)[0]


def test_unknown_seed_words_and_empty_seed(generator):
    assert generator.unknown_seed_words("one zebra two Quagga") == ["zebra", "quagga"]
    text = generator.generate("zebra", 5, GREEDY)[0]
    assert text.startswith("Zebra") and "<unk>" not in text  # the word as typed
    assert generator.generate("", 9, GREEDY)[0] == "One two three, four five. Six seven"


def test_a_seed_of_only_unknown_words_still_generates(generator):
    text = generator.generate("zebra quagga okapi", 6, GREEDY, random_seed=1)[0]
    assert text.startswith("Zebra quagga okapi")
    assert len(generator.last_words[0]) == 6 and "<unk>" not in text


def test_a_huge_seed_is_cut_to_its_end(generator):
    from textgen.generate import MAX_SEED_CHARS

    seed = "one two three, four five. six seven eight nine! " * 250_000  # ~12 MB
    used = generator.usable_seed(seed)
    assert len(used) <= MAX_SEED_CHARS and seed.endswith(used)
    assert used.split()[0] in seed.split()[:9]  # starts on a whole word
    text = generator.generate(seed, 4, GREEDY)[0]
    assert len(text) < MAX_SEED_CHARS + 100
    assert generator.usable_seed("short seed") == "short seed"


def test_pad_and_unk_are_never_generated(generator):
    # A hot, flat distribution would reach them quickly if they were allowed.
    texts = generator.generate(
        "", 200, SamplingSettings(temperature=50), num_samples=4, random_seed=0
    )
    for text in texts:
        assert PAD not in text and UNK not in text
