import numpy as np
import pytest

from textgen.errors import TextgenError
from textgen.inference.contract import SamplingSettings
from textgen.inference.sampling import (
    draw,
    min_p_filter,
    next_ids,
    no_repeat_ngram,
    process,
    repetition_penalty,
    softmax,
    top_k_filter,
    top_p_filter,
)

LOGITS = np.log(np.array([[0.05, 0.1, 0.5, 0.25, 0.1]]))


def test_temperature_zero_is_greedy_and_skips_banned_ids():
    rng = np.random.default_rng(0)
    greedy = SamplingSettings(temperature=0)
    assert next_ids(LOGITS, greedy, rng).tolist() == [2]
    assert next_ids(LOGITS, greedy, rng, banned_ids=[2]).tolist() == [3]


def test_top_k_keeps_the_k_best():
    kept = np.isfinite(top_k_filter(LOGITS, 2))
    assert kept.tolist() == [[False, False, True, True, False]]
    assert np.array_equal(top_k_filter(LOGITS, 0), LOGITS)


def test_top_p_keeps_the_smallest_set_reaching_p():
    # sorted: 0.5, 0.25, 0.1, 0.1, 0.05
    assert np.isfinite(top_p_filter(LOGITS, 0.5)).sum() == 1
    assert np.isfinite(top_p_filter(LOGITS, 0.7)).tolist() == [
        [False, False, True, True, False]
    ]
    assert np.isfinite(top_p_filter(LOGITS, 1.0)).all()


def test_sampling_follows_the_distribution_and_never_picks_filtered_ids():
    rng = np.random.default_rng(1)
    logits = np.repeat(LOGITS, 20000, axis=0)
    picks = next_ids(logits, SamplingSettings(temperature=1.0), rng)
    freq = np.bincount(picks, minlength=5) / len(picks)
    np.testing.assert_allclose(freq, softmax(LOGITS)[0], atol=0.01)
    picks = next_ids(logits, SamplingSettings(top_k=2), rng, banned_ids=[2])
    # With 2 banned, 3 is best and 1 and 4 tie for second: ties at the k-th stay.
    assert set(np.unique(picks).tolist()) == {1, 3, 4}
    picks = next_ids(logits, SamplingSettings(top_k=1), rng, banned_ids=[2])
    assert set(np.unique(picks).tolist()) == {3}


def test_one_row_draws_what_it_draws_in_a_batch():
    # `draw` has a one-row path (scalar binary searches); it must pick what
    # the batched path picks for the same random number, zeros never.
    rng = np.random.default_rng(3)
    for size in (5, 64, 130, 2727):
        weights = np.exp(3 * rng.standard_normal((400, size))).astype(np.float32)
        weights[rng.random((400, size)) < 0.4] = 0
        weights[:, -1] = 0  # a zero last word, so rounding falls back in a block
        weights[0] = 0
        weights[weights.sum(axis=1) == 0, 0] = 1  # a row with one word (or more)
        uniforms = rng.random(400)
        uniforms[:3] = [0.0, np.nextafter(1.0, 0.0), 0.5]
        batched = draw(weights, None, uniforms)
        alone = [
            draw(weights[r : r + 1], None, uniforms[r : r + 1])[0] for r in range(400)
        ]
        assert batched.tolist() == alone
        assert (weights[np.arange(400), batched] > 0).all()
        # Its own random number (a scalar draw) is the one a batch of one takes.
        for r in range(0, 400, 40):
            own = draw(weights[r : r + 1], np.random.default_rng(r))[0]
            given = np.random.default_rng(r).random(1)
            assert own == draw(weights[r : r + 1], None, given)[0]


def test_low_temperature_sharpens():
    rng = np.random.default_rng(2)
    logits = np.repeat(LOGITS, 5000, axis=0)
    cold = next_ids(logits, SamplingSettings(temperature=0.2), rng)
    hot = next_ids(logits, SamplingSettings(temperature=2.0), rng)
    assert (cold == 2).mean() > 0.95 > (hot == 2).mean()


def test_same_seed_same_choices():
    logits = np.random.default_rng(3).normal(size=(8, 50))
    settings = SamplingSettings(temperature=0.9, top_p=0.9)
    a = next_ids(logits, settings, np.random.default_rng(42))
    b = next_ids(logits, settings, np.random.default_rng(42))
    assert a.tolist() == b.tolist()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": -0.1},
        {"top_k": -1},
        {"top_p": 0},
        {"top_p": 1.5},
        {"min_p": 1},
        {"repetition_penalty": 0.5},
        {"repeat_window": 0},
        {"no_repeat_ngram": 1},
    ],
)
def test_impossible_settings_are_refused(kwargs):
    with pytest.raises(TextgenError):
        SamplingSettings(**kwargs)


def test_min_p_keeps_words_near_the_likeliest():
    # probabilities 0.05 0.1 0.5 0.25 0.1: min-p 0.3 keeps p >= 0.15
    assert np.isfinite(min_p_filter(LOGITS, 0.3)).tolist() == [
        [False, False, True, True, False]
    ]
    assert np.isfinite(min_p_filter(LOGITS, 0.21)).sum() == 2
    assert np.array_equal(min_p_filter(LOGITS, 0), LOGITS)


def test_repetition_penalty_lowers_recent_words_either_sign():
    logits = np.array([[2.0, -1.0, 0.5, 3.0]])
    history = np.array([[3, 0, 1, 1]])
    out = repetition_penalty(logits, history, penalty=2.0, window=3)
    # The window holds 0 and 1 (3 is older): 2 -> 1, -1 -> -2, once each.
    assert out.tolist() == [[1.0, -2.0, 0.5, 3.0]]
    assert logits.tolist() == [[2.0, -1.0, 0.5, 3.0]]  # a copy
    assert np.array_equal(repetition_penalty(logits, history, 1.0, 3), logits)


def test_no_repeat_ngram_bans_what_would_repeat():
    logits = np.zeros((2, 6))
    history = np.array([[1, 2, 3, 1, 2], [4, 5, 4, 5, 4]])
    out = no_repeat_ngram(logits, history, 3)
    # Row 0 ends "1 2", which was followed by 3; row 1 ends "5 4", followed by 5.
    assert np.isinf(out).tolist() == [
        [False, False, False, True, False, False],
        [False, False, False, False, False, True],
    ]
    assert not np.isinf(no_repeat_ngram(logits, history[:, :1], 3)).any()


def test_controls_apply_in_the_documented_order():
    # Banned first, then penalties, then the filters see what is left.
    logits = np.log(np.array([[0.4, 0.3, 0.2, 0.1]]))
    settings = SamplingSettings(repetition_penalty=3.0, top_k=1, temperature=0)
    history = np.array([[0]])
    rng = np.random.default_rng(0)
    # Word 0 is penalised (log 0.4 * 3 < log 0.3), so top-1 keeps word 1.
    assert next_ids(logits, settings, rng, history=history).tolist() == [1]
    assert next_ids(logits, settings, rng, banned_ids=[1], history=history) == [2]
    kept = np.isfinite(process(logits, SamplingSettings(top_p=0.6, min_p=0.6)))
    assert kept.tolist() == [[True, True, False, False]]  # top-p keeps 2, min-p both


def test_one_settings_per_row():
    logits = np.repeat(LOGITS, 2, axis=0)
    rows = [SamplingSettings(temperature=0), SamplingSettings(temperature=0, top_k=1)]
    picks = next_ids(logits, rows, np.random.default_rng(0), banned_ids=[2])
    assert picks.tolist() == [3, 3]
