import numpy as np
import pytest

from textgen.errors import CorpusError
from textgen.training.data import (
    StreamLayout,
    check_windows,
    make_dataset,
    make_stream_dataset,
    required_tokens,
    split_lengths,
    split_tail,
)


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


def _epochs(ids, seed, epochs=2, first_epoch=0, lengths=None, seq_len=10):
    data = make_dataset(
        ids,
        seq_len=seq_len,
        batch_size=4,
        seed=seed,
        lengths=lengths,
        epochs=epochs,
        first_epoch=first_epoch,
    )
    windows = np.concatenate([x.numpy() for x, _ in data])
    return np.split(windows, epochs)


def test_training_windows_are_shuffled_shifted_and_reproducible():
    ids = np.arange(200, dtype=np.int32)
    first, second = _epochs(ids, seed=3)
    assert first.shape == second.shape == (19, 10)
    assert not np.array_equal(first, second)  # a new order every epoch
    starts = first[:, 0]
    assert any(s % 10 for s in starts)  # windows are not all on the 10-grid
    assert starts.max() <= 200 - 11
    np.testing.assert_array_equal(first[:, 1:], first[:, :-1] + 1)  # contiguous
    for a, b in zip(_epochs(ids, seed=3), (first, second), strict=True):
        np.testing.assert_array_equal(a, b)
    # An epoch's windows depend on the seed and its number only: a dataset
    # that starts at epoch 2 (a resumed run) repeats the second epoch.
    (again,) = _epochs(ids, seed=3, epochs=1, first_epoch=1)
    np.testing.assert_array_equal(again, second)
    assert not np.array_equal(_epochs(ids, seed=4)[0], first)


def test_no_window_crosses_a_document_boundary():
    lengths = [23, 9, 5, 31]  # the 5-word document holds no window of 5 + 1
    ids = np.arange(sum(lengths), dtype=np.int32)
    edges = np.cumsum([0, *lengths])
    for epoch in _epochs(ids, seed=1, epochs=3, lengths=lengths, seq_len=5):
        assert len(epoch) == 4 + 1 + 0 + 6
        for window in epoch:
            last = window[-1] + 1  # the label after the window
            doc = np.searchsorted(edges, window[0], side="right") - 1
            assert edges[doc] <= window[0] and last < edges[doc + 1]
    fixed = make_dataset(ids, seq_len=5, batch_size=3, lengths=lengths)
    starts = np.concatenate([x.numpy()[:, 0] for x, _ in fixed])
    assert starts.tolist() == [0, 5, 10, 15, 23, 37, 42, 47, 52, 57, 62]


def test_split_lengths_and_documents_too_short_for_a_window():
    assert split_lengths([5, 10, 3], 12) == ([5, 7], [3, 3])
    assert split_lengths([5, 10], 15) == ([5, 10], [])
    check_windows([3, 9], [9], seq_len=8)  # the 9-word file holds one window
    with pytest.raises(CorpusError, match=r"no training file holds one window.*6"):
        check_windows([3, 6, 2], [9], seq_len=8)


def _stream_batches(ids, lengths, seq_len, rows, seed=3, epochs=2, first_epoch=0):
    layout = StreamLayout.of(lengths, seq_len, rows)
    data = make_stream_dataset(
        np.asarray(ids), seq_len, layout, seed, lengths, epochs, first_epoch
    )
    return layout, [(x, reset, y) for (x, reset), y in data.as_numpy_iterator()]


def test_carried_state_rows_continue_each_other_and_reset_at_documents():
    """Each row of a batch continues the same row of the batch before unless
    its reset flag is set; a reset is set at every row's first batch of an
    epoch and wherever a document begins; no window crosses a document."""
    lengths = [400, 37, 250]
    doc = np.repeat(np.arange(3), lengths)
    ids = np.arange(sum(lengths))  # each id is its own position
    seq_len, rows = 8, 4
    layout, batches = _stream_batches(ids, lengths, seq_len, rows)
    assert layout.rows == rows and layout.shifted
    assert len(batches) == 2 * layout.steps
    for epoch in range(2):
        epoch_batches = batches[epoch * layout.steps : (epoch + 1) * layout.steps]
        assert epoch_batches[0][1].all()  # every row starts afresh
        for t, (x, reset, y) in enumerate(epoch_batches):
            assert x.shape == (rows, seq_len) and reset.shape == (rows,)
            np.testing.assert_array_equal(y, x + 1)  # labels: shifted by one
            assert (doc[x[:, 0]] == doc[y[:, -1]]).all()  # inside one document
            if t == 0:
                continue
            previous = epoch_batches[t - 1][0]
            continues = (x[:, 0] == previous[:, -1] + 1) & (
                doc[x[:, 0]] == doc[previous[:, 0]]
            )
            np.testing.assert_array_equal(reset, ~continues)
    first, second = batches[0][0], batches[layout.steps][0]
    assert not np.array_equal(first, second)  # each epoch shifted anew


def test_carried_state_epochs_depend_only_on_seed_and_number():
    ids, lengths = np.arange(1000), [1000]
    layout, all_epochs = _stream_batches(ids, lengths, 10, 8, epochs=3)
    _, last = _stream_batches(ids, lengths, 10, 8, epochs=1, first_epoch=2)
    third = all_epochs[2 * layout.steps :]
    for (a, ra, _), (b, rb, _) in zip(third, last, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ra, rb)


def test_carried_state_layout_of_a_short_corpus():
    """Fewer windows than the batch asks for: fewer rows; too short to shift
    every document and keep a window: no shift."""
    layout = StreamLayout.of([33], seq_len=8, batch_size=16)
    assert (layout.rows, layout.steps, layout.shifted) == (4, 1, False)
    layout = StreamLayout.of([9, 9, 9], seq_len=8, batch_size=2)
    assert (layout.rows, layout.steps, layout.shifted) == (2, 1, False)
    layout = StreamLayout.of([1000], seq_len=8, batch_size=16)
    assert layout.shifted and layout.rows * layout.steps <= 1000 // 8


def test_validation_streams_cover_the_text_in_order():
    lengths = [300, 5, 200]
    ids = np.arange(sum(lengths))
    layout = StreamLayout.in_order(lengths, seq_len=8, batch_size=64)
    assert layout.rows == (37 + 0 + 24) // 32 and not layout.shifted
    data = make_stream_dataset(ids, 8, layout, None, lengths)
    batches = [(x, reset) for (x, reset), _ in data.as_numpy_iterator()]
    assert len(batches) == layout.steps
    starts = np.stack([x[:, 0] for x, _ in batches], axis=1).ravel()
    expected = np.concatenate([8 * np.arange(37), 305 + 8 * np.arange(24)])
    np.testing.assert_array_equal(starts, expected[: layout.rows * layout.steps])
    assert batches[0][1].all()
