import numpy as np
import pytest

from textgen.data import make_dataset, required_tokens, split_tail
from textgen.errors import CorpusError


def test_required_tokens():
    assert required_tokens(4, 0) == 5
    assert required_tokens(4, 0.1) == 50  # 5 tokens in the 10% tail
    n = required_tokens(32, 0.1)
    assert int(n * 0.1) >= 33 and int((n - 1) * 0.1) < 33


def test_split_keeps_a_contiguous_tail():
    tokens = list(range(100))
    train, val = split_tail(tokens, seq_len=4, val_fraction=0.2)
    assert list(train) == list(range(80))
    assert list(val) == list(range(80, 100))
    train, val = split_tail(tokens, seq_len=4, val_fraction=0)
    assert len(train) == 100 and len(val) == 0


def test_too_short_corpus_says_how_many_words_it_needs():
    with pytest.raises(
        CorpusError, match=r"has 40 words.*--seq-len 32 needs at least 330"
    ):
        split_tail(list(range(40)), seq_len=32, val_fraction=0.1)
    with pytest.raises(CorpusError, match=r"has 3 words.*needs at least 5"):
        split_tail([1, 2, 3], seq_len=4, val_fraction=0)


def test_labels_are_the_window_shifted_by_one():
    ids = np.arange(23, dtype=np.int32)
    batches = list(make_dataset(ids, seq_len=5, batch_size=2))
    inputs = np.concatenate([x.numpy() for x, _ in batches])
    labels = np.concatenate([y.numpy() for _, y in batches])
    assert inputs.tolist() == [
        [0, 1, 2, 3, 4],
        [5, 6, 7, 8, 9],
        [10, 11, 12, 13, 14],
        [15, 16, 17, 18, 19],
    ]
    np.testing.assert_array_equal(labels, inputs + 1)
    assert labels.dtype == np.int32  # integer labels, nothing one-hot


def test_training_windows_are_shuffled_shifted_and_reproducible():
    ids = np.arange(200, dtype=np.int32)

    def epochs(seed, n=2):
        data = make_dataset(ids, seq_len=10, batch_size=4, seed=seed)
        return [np.concatenate([x.numpy() for x, _ in data]) for _ in range(n)]

    first, second = epochs(3)
    assert first.shape == second.shape == (19, 10)
    assert not np.array_equal(first, second)  # a new order every epoch
    starts = first[:, 0]
    assert any(s % 10 for s in starts)  # windows are not all on the 10-grid
    assert starts.max() <= 200 - 11
    np.testing.assert_array_equal(first[:, 1:], first[:, :-1] + 1)  # contiguous
    for a, b in zip(epochs(3), (first, second), strict=True):
        np.testing.assert_array_equal(a, b)
