import numpy as np
import pytest

from textgen.errors import TextgenError
from textgen.sampling import (
    SamplingSettings,
    next_ids,
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
    "kwargs", [{"temperature": -0.1}, {"top_k": -1}, {"top_p": 0}, {"top_p": 1.5}]
)
def test_impossible_settings_are_refused(kwargs):
    with pytest.raises(TextgenError):
        SamplingSettings(**kwargs)
