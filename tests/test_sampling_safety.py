"""Whatever the settings, sampling never raises and never picks `<pad>` or
`<unk>`: short seeds, rules that rule out every word, tiny temperatures."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textgen.inference.contract import SamplingSettings
from textgen.inference.generate import Generator
from textgen.inference.sampling import next_ids, process, top_p_filter
from textgen.model.config import ModelConfig
from textgen.text.tokens import TokenizerSettings
from textgen.text.vocab import PAD, UNK, Vocabulary

TEMPERATURES = [0.0, 1e-45, 1e-39, 1.0]


@pytest.fixture(scope="module")
def generators():
    """A tiny random model for each vocabulary size from 3 to 10 words."""
    import keras

    from textgen.model.network import build_model

    made = {}
    for size in range(3, 11):
        keras.utils.set_random_seed(size)
        vocab = Vocabulary([PAD, UNK] + [f"w{i}" for i in range(size - 2)])
        config = ModelConfig(layers=1, units=4, embedding_dim=3, vocab_size=size)
        made[size] = Generator(build_model(config, vocab, TokenizerSettings()))
    return made


@pytest.mark.slow
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    size=st.integers(3, 10),
    seed_length=st.integers(0, 6),
    ngram=st.integers(2, 5),
    temperature=st.sampled_from(TEMPERATURES),
    beam=st.booleans(),
    data=st.data(),
)
def test_any_settings_give_words_never_banned_ids(
    generators, size, seed_length, ngram, temperature, beam, data
):
    generator = generators[size]
    words = generator.vocabulary.words[2:]
    seed = " ".join(
        data.draw(
            st.lists(st.sampled_from(words), min_size=seed_length, max_size=seed_length)
        )
    )
    sampling = SamplingSettings(temperature=temperature, no_repeat_ngram=ngram)
    if beam:
        samples = generator.beam_search(seed, 8, 3, sampling, num_results=2)
    else:
        samples = generator.sample([seed] * 2, [sampling] * 2, length=8, random_seed=1)
    for sample in samples:
        assert sample.words, "every run writes at least one word"
        assert PAD not in sample.words and UNK not in sample.words
    if not beam and 0 < temperature < 1e-30:
        greedy = SamplingSettings(temperature=0, no_repeat_ngram=ngram)
        expected = generator.sample([seed] * 2, [greedy] * 2, length=8, random_seed=1)
        assert [s.words for s in samples] == [s.words for s in expected]


def test_a_rule_that_rules_out_every_word_is_relaxed_and_reported():
    logits = np.array([[0.0, 0.0, 1.0, 2.0]], dtype=np.float32)
    history = np.array([[2, 3, 2, 2, 3, 3, 2]])  # 2 3, 2 2, 3 3 and 3 2 all seen
    relaxed: set[str] = set()
    rng = np.random.default_rng(0)
    greedy = SamplingSettings(temperature=0, no_repeat_ngram=2)
    chosen = next_ids(logits, greedy, rng, (0, 1), history, relaxed)
    assert chosen.tolist() == [3] and relaxed == {"no_repeat_ngram"}
    sampled = next_ids(
        logits, SamplingSettings(no_repeat_ngram=2), rng, (0, 1), history, relaxed
    )
    assert sampled[0] in (2, 3)


def test_nan_and_infinite_scores_never_pick_a_banned_id():
    rng = np.random.default_rng(0)
    nan = np.full((3, 5), np.nan, dtype=np.float32)
    nan[1, 0] = np.inf  # a banned id with an infinite score
    nan[2, 3] = np.inf
    for temperature in [*TEMPERATURES, 1e30]:
        chosen = next_ids(nan, SamplingSettings(temperature=temperature), rng, (0, 1))
        assert not set(chosen.tolist()) & {0, 1}
    kept = process(nan, SamplingSettings(), (0, 1))
    assert np.isneginf(kept[:, :2]).all() and np.isfinite(kept[:, 2:]).any(axis=1).all()


@pytest.mark.parametrize("temperature", [1e-45, 1e-39, 1e-31])
def test_tiny_temperatures_are_greedy(temperature):
    rng = np.random.default_rng(0)
    logits = np.array([[1.0, 1.0, 3.0, 3.0, -np.inf]], dtype=np.float32)
    chosen = next_ids(logits, SamplingSettings(temperature=temperature), rng)
    assert chosen.tolist() == [2]


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_settings_refuse_numbers_that_are_not_finite(value):
    from textgen.errors import TextgenError

    with pytest.raises(TextgenError, match="finite"):
        SamplingSettings(temperature=value)


def test_a_seed_shorter_than_the_ngram_generates(generators):
    """The README's example: --no-repeat-ngram 3 with a one-word seed."""
    generator = generators[6]
    sampling = SamplingSettings(temperature=0, no_repeat_ngram=3)
    for seed in ("", "w1", "w1 w2"):
        assert len(generator.sample([seed], [sampling], length=5)[0].words) == 5
        assert generator.beam_search(seed, 5, 2, sampling)[0].words


@pytest.mark.filterwarnings("error")
def test_extreme_settings_neither_warn_nor_pick_a_banned_id():
    """Every combination of the limits a client may send: no RuntimeWarning
    (they would be one log line per request in `serve`), no banned id. A
    top_p below float32's smallest number still keeps the likeliest word."""
    import itertools

    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(3, 200)) * 5).astype(np.float32)
    history = rng.integers(2, 200, size=(3, 60))
    history[:, -40:] = history[:, :40]  # plenty of repeats
    for t, k, p, min_p, penalty, ngram in itertools.product(
        [0, 1e-30, 1, 1e308], [0, 1, 2**31], [1e-300, 0.5, 1], [0, 0.99999],
        [1, 1e308], [0, 2, 40],
    ):  # fmt: skip
        sampling = SamplingSettings(
            temperature=t, top_k=k, top_p=p, min_p=min_p,
            repetition_penalty=penalty, no_repeat_ngram=ngram, repeat_window=2**31,
        )  # fmt: skip
        ids = next_ids(logits, sampling, rng, (0, 1), history)
        assert ((ids >= 2) & (ids < 200)).all(), (sampling, ids)
    assert np.isfinite(top_p_filter(logits, 1e-300)).sum(axis=-1).tolist() == [1] * 3
