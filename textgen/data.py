"""Token ids -> `tf.data` batches of (window, next-word labels), and the split.

A window is `seq_len` ids; its labels are the same window shifted by one word,
so one window trains `seq_len` predictions. Windows are cut lazily from one id
array: memory grows with the corpus, never with corpus x window x vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from .errors import CorpusError

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
    tokens: Sequence[T], seq_len: int, val_fraction: float
) -> tuple[Sequence[T], Sequence[T]]:
    """Split tokens into training text and a contiguous validation tail.

    The tail is never cut into random windows: overlapping windows would leak
    training text into validation.

    Args:
        tokens: the whole corpus, in order.
        seq_len: window length; both parts must hold at least one window.
        val_fraction: share of the corpus, from its end, kept for validation.

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
            f"the corpus has {len(tokens)} words, but one training window"
            f"{validation} at --seq-len {seq_len} needs at least {needed}; "
            "add text or lower --seq-len"
            + (" or --val-fraction" if val_fraction > 0 else "")
        )
    n_val = int(len(tokens) * val_fraction)
    return tokens[: len(tokens) - n_val], tokens[len(tokens) - n_val :]


def count_windows(n_tokens: int, seq_len: int) -> int:
    """Non-overlapping windows (with their labels) that fit in `n_tokens`."""
    return max((n_tokens - 1) // seq_len, 0)


def make_dataset(
    ids: np.ndarray, seq_len: int, batch_size: int, seed: int | None = None
) -> tf.data.Dataset:
    """Batches of `(inputs, labels)`, both int32 of shape (batch, seq_len).

    Args:
        ids: the token ids, in corpus order.
        seq_len: words per window.
        batch_size: windows per batch (the last batch may be smaller).
        seed: for training, shuffle the windows and shift each by a random
            offset below `seq_len`, anew every epoch, so the model sees every
            alignment of the text; None (validation) gives fixed windows in order.
    """
    import tensorflow as tf

    n_windows = count_windows(len(ids), seq_len)
    assert n_windows > 0, "split_tail guarantees one window"
    all_ids = tf.constant(ids, dtype=tf.int32)
    offsets = tf.range(seq_len + 1, dtype=tf.int64)
    index = tf.data.Dataset.range(n_windows)
    if seed is None:
        starts = index.map(lambda i: i * seq_len)
    else:
        last_start = len(ids) - seq_len - 1
        shifts = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        starts = tf.data.Dataset.zip(index, shifts).map(
            lambda i, r: tf.minimum(i * seq_len + r % seq_len, last_start)
        )
        starts = starts.shuffle(n_windows, seed=seed, reshuffle_each_iteration=True)

    def cut(batch_starts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        windows = tf.gather(all_ids, batch_starts[:, None] + offsets)
        return windows[:, :-1], windows[:, 1:]  # (batch, seq_len) each

    return (
        starts.batch(batch_size)
        .map(cut, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
