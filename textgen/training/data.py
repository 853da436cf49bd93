"""Token ids -> `tf.data` batches of (window, next-word labels), and the split.

A window is `seq_len` ids; its labels are the same window shifted by one word,
so one window trains `seq_len` predictions. Windows are cut lazily from one id
array: memory grows with the corpus, never with corpus x window x vocabulary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..errors import CorpusError
from ..terminal import count

if TYPE_CHECKING:
    import tensorflow as tf

T = TypeVar("T")


def required_tokens(seq_len: int, val_fraction: float) -> int:
    """Fewest tokens that give one training window and, if asked, one validation one.

    A window of `seq_len` inputs needs `seq_len + 1` tokens (the labels run one
    word further).
    """
    per_window = seq_len + 1
    if val_fraction <= 0:
        return per_window
    n = max(2 * per_window, int(np.ceil(per_window / val_fraction)))
    while int(n * val_fraction) < per_window or n - int(n * val_fraction) < per_window:
        n += 1
    return n


def split_tail(
    tokens: Sequence[T], seq_len: int, val_fraction: float, unit: str = "words"
) -> tuple[Sequence[T], Sequence[T]]:
    """Split tokens into training text and a contiguous validation tail.

    The tail is never cut into random windows: overlapping windows would leak
    training text into validation.

    Args:
        tokens: the whole corpus, in order.
        seq_len: window length; both parts must hold at least one window.
        val_fraction: share of the corpus, from its end, kept for validation.
        unit: what a token is, for the message ("words", "characters").

    Raises:
        CorpusError: the corpus is too short, with the counts and the fix.
    """
    needed = required_tokens(seq_len, val_fraction)
    if len(tokens) < needed:
        validation = (
            f" and one validation window at --val-fraction {val_fraction:g}"
            if val_fraction > 0
            else ""
        )
        raise CorpusError(
            f"the corpus has {count(len(tokens), unit)}, but one training window"
            f"{validation} at --seq-len {seq_len} needs at least {needed:,}; "
            "add text or lower --seq-len"
            + (" or --val-fraction" if val_fraction > 0 else "")
        )
    n_val = int(len(tokens) * val_fraction)
    return tokens[: len(tokens) - n_val], tokens[len(tokens) - n_val :]


def count_windows(n_tokens: int, seq_len: int) -> int:
    """Non-overlapping windows (with their labels) that fit in `n_tokens`."""
    return max((n_tokens - 1) // seq_len, 0)


def window_starts(
    lengths: Sequence[int], seq_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """Where each non-overlapping window starts, document by document.

    Args:
        lengths: token counts of the documents laid end to end in one id array.
        seq_len: words per window.

    Returns:
        `(starts, last)`: int64 arrays with one entry per window; `last` is the
        latest start that keeps a shifted window inside its own document.
    """
    starts, last = [], []
    offset = 0
    for n in lengths:
        k = count_windows(n, seq_len)
        starts.append(offset + seq_len * np.arange(k, dtype=np.int64))
        last.append(np.full(k, offset + n - seq_len - 1, dtype=np.int64))
        offset += n
    if not starts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(starts), np.concatenate(last)


def split_lengths(lengths: Sequence[int], n_first: int) -> tuple[list[int], list[int]]:
    """Document lengths on each side of a cut `n_first` tokens in."""
    first, second, offset = [], [], 0
    for n in lengths:
        before = min(max(n_first - offset, 0), n)
        if before:
            first.append(before)
        if n - before:
            second.append(n - before)
        offset += n
    return first, second


def check_windows(
    train_lengths: Sequence[int],
    val_lengths: Sequence[int],
    seq_len: int,
    unit: str = "words",
) -> None:
    """Fail clearly when no document of a part holds one whole window.

    Raises:
        CorpusError: with the longest document's length and the fix.
    """
    for part, lengths in (("training", train_lengths), ("validation", val_lengths)):
        if not lengths or any(count_windows(n, seq_len) for n in lengths):
            continue
        raise CorpusError(
            f"no {part} file holds one window of --seq-len {seq_len} "
            f"({seq_len + 1:,} {unit}; the longest has {max(lengths):,}) and windows "
            "never cross from one file into the next; join short files into "
            "one or lower --seq-len"
        )


def make_dataset(
    ids: np.ndarray,
    seq_len: int,
    batch_size: int,
    seed: int | None = None,
    lengths: Sequence[int] | None = None,
    epochs: int = 1,
    first_epoch: int = 0,
    prior: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tf.data.Dataset:
    """Batches of `(inputs, labels)`, both int32 of shape (batch, seq_len);
    with a `prior` (see `prior.Prior`), `(inputs, (labels, prior))`, the
    prior float32 (batch, seq_len, vocab_size) of each window's start.

    No window crosses from one document into the next.

    Args:
        ids: the token ids, in corpus order.
        seq_len: words per window.
        batch_size: windows per batch (an epoch's last batch may be smaller).
        seed: for training, shuffle the windows and shift each by a random
            offset below `seq_len`, anew every epoch, so the model sees every
            alignment of the text; None (validation) gives fixed windows in order.
        lengths: token counts of the documents in `ids`; None: one document.
        epochs: with a seed, how many epochs the dataset holds, one after
            another; each epoch's order depends only on `seed` and its number,
            so training resumed at `first_epoch` sees what it would have seen.
        first_epoch: the number of the dataset's first epoch.
    """
    import tensorflow as tf

    base, last = window_starts([len(ids)] if lengths is None else lengths, seq_len)
    assert len(base) > 0, "the caller checks that there is a window"
    all_ids = tf.constant(ids, dtype=tf.int32)
    offsets = tf.range(seq_len + 1, dtype=tf.int64)

    def cut(batch_starts: tf.Tensor) -> tuple[Any, Any]:
        windows = tf.gather(all_ids, batch_starts[:, None] + offsets)
        labels = windows[:, 1:]  # (batch, seq_len), as the inputs
        return windows[:, :-1], _with_prior(labels, batch_starts, prior)

    if seed is None:
        starts = tf.data.Dataset.from_tensor_slices(base).batch(batch_size)
    else:
        base_t, last_t = tf.constant(base), tf.constant(last)
        n = len(base)

        def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
            key = tf.stack([tf.constant(seed, tf.int64), 2 * epoch])
            shift = tf.random.stateless_uniform(
                [n], seed=key, minval=0, maxval=seq_len, dtype=tf.int64
            )
            other = key + tf.constant([0, 1], tf.int64)
            order = tf.argsort(tf.random.stateless_uniform([n], seed=other))
            shuffled = tf.gather(tf.minimum(base_t + shift, last_t), order)
            return tf.data.Dataset.from_tensor_slices(shuffled).batch(batch_size)

        starts = (
            tf.data.Dataset.range(first_epoch, first_epoch + epochs)
            .flat_map(epoch_batches)
            .apply(
                tf.data.experimental.assert_cardinality(epochs * -(-n // batch_size))
            )
        )
    return starts.map(cut, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE
    )


# Carried state (truncated back-propagation through time): the training text is
# laid out as `rows` parallel streams; batch t holds window t of every stream,
# so each row of a batch continues the same row of the batch before, and the
# model carries its recurrent state from one batch to the next.


@dataclasses.dataclass(frozen=True)
class StreamLayout:
    """How one epoch of carried-state training is cut: `steps` batches of
    `rows` windows, the same in every epoch (Keras needs a fixed epoch length).

    `shifted`: each epoch moves every document's windows by a random offset
    below `seq_len`, so the model sees every alignment; off when the corpus is
    too short to lose a window per document to it.
    """

    rows: int
    steps: int
    shifted: bool

    @classmethod
    def of(cls, lengths: Sequence[int], seq_len: int, batch_size: int) -> StreamLayout:
        full = sum(count_windows(n, seq_len) for n in lengths)
        fewest = sum(count_windows(max(n - seq_len + 1, 0), seq_len) for n in lengths)
        rows = max(min(batch_size, full), 1)
        shifted = fewest >= rows
        return cls(rows, (fewest if shifted else full) // rows, shifted)

    @classmethod
    def in_order(
        cls, lengths: Sequence[int], seq_len: int, batch_size: int
    ) -> StreamLayout:
        """For validation: every window in corpus order, unshifted, in rows of
        at least 32 windows each (a row's first window starts cold), so at
        most one window in 32 is left over."""
        full = sum(count_windows(n, seq_len) for n in lengths)
        rows = max(min(batch_size, full // 32), 1)
        return cls(rows, full // rows, False)

    def epoch(
        self, lengths: Sequence[int], seq_len: int, seed: int | None, epoch: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Window starts and reset flags, each (steps, rows), for one epoch.

        `reset[t, r]` is True where window t of row r does not continue the
        window before it in that row (a row's first window, a document's first
        window): the model starts it from zero states. Depends only on the
        seed and the epoch number, so a resumed run sees the same epochs;
        seed None: the documents and windows in corpus order (validation).
        """
        rng = np.random.default_rng(None if seed is None else [seed, epoch])
        order = np.arange(len(lengths))
        if seed is not None:
            order = rng.permutation(order)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        starts, first = [], []
        for d in order:
            shift = int(rng.integers(seq_len)) if self.shifted else 0
            k = count_windows(lengths[d] - shift, seq_len)
            if k == 0:
                continue
            starts.append(offsets[d] + shift + seq_len * np.arange(k, dtype=np.int64))
            first.append(np.arange(k) == 0)
        all_starts, all_first = np.concatenate(starts), np.concatenate(first)
        # A random rotation: the windows left over differ from epoch to epoch.
        turn = 0 if seed is None else int(rng.integers(len(all_starts)))
        all_starts, all_first = np.roll(all_starts, -turn), np.roll(all_first, -turn)
        used = self.rows * self.steps
        grid = all_starts[:used].reshape(self.rows, self.steps)
        reset = all_first[:used].reshape(self.rows, self.steps).copy()
        reset[:, 0] = True
        return grid.T.copy(), reset.T.copy()


def make_stream_dataset(
    ids: np.ndarray,
    seq_len: int,
    layout: StreamLayout,
    seed: int | None,
    lengths: Sequence[int] | None = None,
    epochs: int = 1,
    first_epoch: int = 0,
    prior: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tf.data.Dataset:
    """Carried-state batches: `((inputs, reset), labels)`, inputs and labels
    int32 (rows, seq_len), reset bool (rows,); see `StreamLayout`; with a
    `prior`, labels are `(labels, prior)` as in `make_dataset`. Seed None:
    one pass in corpus order (validation)."""
    import tensorflow as tf

    lengths = [len(ids)] if lengths is None else list(lengths)
    all_ids = tf.constant(ids, dtype=tf.int32)
    offsets = tf.range(seq_len + 1, dtype=tf.int64)

    def lay_out(epoch: Any) -> tuple[np.ndarray, np.ndarray]:
        return layout.epoch(lengths, seq_len, seed, int(epoch))

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        starts, reset = tf.numpy_function(lay_out, [epoch], [tf.int64, tf.bool])
        starts.set_shape([layout.steps, layout.rows])
        reset.set_shape([layout.steps, layout.rows])
        return tf.data.Dataset.from_tensor_slices((starts, reset))

    def cut(starts: tf.Tensor, reset: tf.Tensor) -> Any:
        windows = tf.gather(all_ids, starts[:, None] + offsets)
        return (windows[:, :-1], reset), _with_prior(windows[:, 1:], starts, prior)

    return (
        tf.data.Dataset.range(first_epoch, first_epoch + epochs)
        .flat_map(epoch_batches)
        .apply(tf.data.experimental.assert_cardinality(epochs * layout.steps))
        .map(cut, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def _with_prior(labels: Any, starts: Any, prior: Any) -> Any:
    """The labels, or with a prior (labels, the prior of those windows),
    made in NumPy off the training thread (`tf.data` runs it ahead)."""
    if prior is None:
        return labels
    import tensorflow as tf

    made = tf.numpy_function(prior, [starts], tf.float32, stateful=False)
    made.set_shape([None, labels.shape[1], prior.vocab_size])
    return labels, made
