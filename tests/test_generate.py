import itertools

import numpy as np
import pytest
from conftest import PATTERN_GREEDY

from textgen.inference.contract import SamplingSettings
from textgen.inference.generate import Generator
from textgen.model.decoder import Decoder
from textgen.text.vocab import PAD, UNK

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
    decoder = Decoder(model.model_config, model.named_weights())
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
    from textgen.model.config import ModelConfig
    from textgen.model.network import build_model
    from textgen.text.vocab import Vocabulary

    vocab = Vocabulary.build([f"w{i}" for i in range(30)])
    config = ModelConfig(
        cell, layers=2, units=units, embedding_dim=5, tie_embeddings=tie, vocab_size=32
    )
    model = build_model(config, vocab)
    for weight in model.weights:  # larger weights make the gates saturate too
        weight.assign(np.random.default_rng(0).normal(0, 0.6, weight.shape))
    ids = np.random.default_rng(1).integers(0, 32, size=(3, 10))
    full = np.asarray(model(ids))  # (3, 10, vocab)
    decoder = Decoder(model.model_config, model.named_weights())
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
    (sample,) = generator.sample(["zebra quagga okapi"], [GREEDY], length=6)
    assert sample.text.startswith("Zebra quagga okapi")
    assert len(sample.words) == 6 and "<unk>" not in sample.text


def test_a_huge_seed_is_cut_to_its_end(generator):
    from textgen.inference.generate import MAX_SEED_CHARS

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


def test_stop_strings_end_the_text_and_are_not_printed(generator):
    pieces: list[str] = []
    (sample,) = generator.sample(
        ["one"], [GREEDY], length=30, on_text=pieces.append, stop=["five", "zzz"]
    )
    assert sample.text == "One two three, four"
    assert "".join(pieces) == sample.text
    # The detokenizer settles a word when the second after it arrives (or
    # its sentence ends): here two tokens more.
    assert sample.stopped_by == "five" and sample.words[-3:] == ["five", ".", "six"]
    # Without streaming the same cut is made.
    (quiet,) = generator.sample(["one"], [GREEDY], length=30, stop=["five"])
    assert quiet.text == sample.text


def test_until_sentence_or_paragraph(generator):
    sentence, paragraph = (
        generator.sample(["one"], [GREEDY], length=30, until=until)[0]
        for until in ("sentence", "paragraph")
    )
    assert sentence.text == "One two three, four five."
    assert paragraph.text == "One two three, four five. Six seven eight nine!"
    assert sentence.stopped_by == paragraph.stopped_by == "until"
    capped = generator.sample(["one"], [GREEDY], length=2, until="paragraph")[0]
    assert capped.text == "One two three" and capped.stopped_by == "length"


def test_rows_with_their_own_seeds_and_settings_in_one_batch(generator):
    hot = SamplingSettings(temperature=5.0)
    samples = generator.sample(
        ["one", "six seven", "one"], [GREEDY, GREEDY, hot], length=3
    )
    assert samples[0].text == "One two three,"
    assert samples[1].text == "Six seven eight nine!"
    assert (
        samples[2].sampling is hot and samples[0].random_seed == samples[2].random_seed
    )
    again = generator.sample(
        ["one"] * 3, [hot] * 3, length=6, random_seed=samples[0].random_seed
    )
    assert len({s.text for s in again}) > 1  # rows draw independently


def test_no_repeat_ngram_breaks_the_learned_cycle(generator):
    no_bigram = SamplingSettings(temperature=0, no_repeat_ngram=2)
    (sample,) = generator.sample(["one two"], [no_bigram], length=14)
    words = ["one", "two", *sample.words]
    bigrams = list(itertools.pairwise(words))
    assert len(set(bigrams)) == len(bigrams)


def test_beam_search_is_deterministic_and_finds_the_likely_text(generator):
    first = generator.beam_search("one", 8, beams=3, num_results=2)
    second = generator.beam_search("one", 8, beams=3, num_results=2)
    assert [s.text for s in first] == [s.text for s in second]
    assert first[0].words == generator.sample(["one"], [GREEDY], length=8)[0].words
    assert len(first) == 2 and first[0].text != first[1].text
    ended = generator.beam_search("one", 30, beams=3, until="sentence")[0]
    assert ended.text == "One two three, four five."
    cut = generator.beam_search("one", 8, beams=3, stop=["four"])[0]
    assert cut.text == "One two three," and cut.stopped_by == "four"


def test_stop_strings_are_found_across_pieces_and_never_in_the_seed(generator):
    # "five. six" is streamed in pieces ("five", ". Six"): the stop string
    # straddles them. The seed holds "three" itself, which is not a stop.
    (sample,) = generator.sample(
        ["two three"], [GREEDY], length=30, stop=["e. S", "three"]
    )
    assert sample.stopped_by == "e. S"
    assert sample.text == "Two three, four fiv"
    pieces: list[str] = []
    (streamed,) = generator.sample(
        ["two three"], [GREEDY], length=30, on_text=pieces.append, stop=["e. S"]
    )
    assert "".join(pieces) == streamed.text == sample.text


@pytest.mark.slow
def test_stop_watching_costs_each_word_its_own_text(generator, monkeypatch):
    """The text so far is not searched again at every word: what each word
    searches is its own text and the few characters before it a stop string
    could start in, so the work grows with the text, not its square."""
    from textgen.inference import generate as module

    searched: list[int] = []
    real_add = module._StopWatch._add

    def add(self, piece, final):
        searched.append(len(self.tail) + len(piece))
        return real_add(self, piece, final)

    monkeypatch.setattr(module._StopWatch, "_add", add)
    (sample,) = generator.sample(["one"], [GREEDY], length=2000, stop=["zebra!"])
    assert sample.stopped_by == "length" and len(sample.text) > 7000
    assert max(searched) < 40
    assert sum(searched) < 3 * len(sample.text)


def test_a_cancelled_request_stops_reading_its_seeds(generator, trained):
    from textgen.errors import Cancelled
    from textgen.model.decoder import Decoder

    asked = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) > 2

    decoder = Decoder(trained[1].model_config, trained[1].named_weights())
    ids = np.zeros((1, 1000), dtype=np.int32) + 3
    with pytest.raises(Cancelled):
        decoder.read(ids, None, cancelled)
    assert len(asked) == 3  # asked every few steps, not once at the end
    from textgen.inference.contract import GenerationRequest

    steps = generator.draws(
        ["one two"] * 3,
        [GREEDY] * 3,
        GenerationRequest(length=5, random_seed=1),
        [None] * 3,
        cancelled=lambda: True,
    )
    with pytest.raises(Cancelled):
        next(steps)
