"""Counting a text's n-gram memory: where its files (or items) begin and
end, the grams of any stretch of it, and memories that did not count a
stretch. What `train` saves and fits on, what residual training's priors
are made of, and what `adapt` counts over a new text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .ngram import BUCKET_EDGES, Grams, NgramModel

# (memory, first, end): the tokens first..end - 1 of a validation text are
# scored by a memory that did not count them.
HeldOut = tuple[NgramModel, int, int]


def item_spans(ids: np.ndarray, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each non-empty item of an item model's ids starts, and its
    length (its tokens, between two `end` ids)."""
    cuts = np.flatnonzero(ids == end)
    starts, lengths = cuts[:-1] + 1, np.diff(cuts) - 1
    keep = lengths > 0
    return starts[keep], lengths[keep]


def documents(
    ids: np.ndarray, lengths: Sequence[int], end: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Where each file (of `lengths` tokens) of `ids` begins and ends; for an
    item model (`end`: its end token's id) each item instead, its end token
    included."""
    if end is not None:
        starts, sizes = item_spans(ids, end)
        return starts, starts + sizes + 1
    ends = np.cumsum(lengths, dtype=np.int64)
    return ends - np.asarray(lengths, dtype=np.int64), ends


@dataclass(frozen=True)
class CountedText:
    """A text's ids cut into files or items, each read from a fresh start,
    to count n-grams of `order` over any stretch of it."""

    ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    vocab_size: int
    order: int
    labels: np.ndarray  # a labelled text's label ids (see `Grams`): none, empty

    @classmethod
    def of(
        cls,
        ids: np.ndarray,
        lengths: Sequence[int],
        vocab_size: int,
        order: int,
        end: int | None = None,
        labels: Sequence[int] = (),
    ) -> CountedText:
        """`ids` of files of `lengths` tokens (or items ended by `end`), and
        for a labelled text its label tokens' ids."""
        found = np.asarray(sorted(labels), dtype=np.int64)
        return cls(ids, *documents(ids, lengths, end), vocab_size, order, found)

    def grams(self, first: int, end: int) -> Grams:
        """The counts of the tokens first..end - 1, each read in its file (or
        item, its end token included) from a fresh start."""
        pieces = [
            (self.ids[a:b], max(first, a) - a, min(end, b) - a)
            for a, b in zip(self.starts.tolist(), self.ends.tolist(), strict=True)
            if a < end and b > first
        ]
        return Grams.of(pieces, self.vocab_size, self.order, self.labels)

    def all_and_held_out(
        self, held: int, max_bytes: int
    ) -> tuple[NgramModel, list[HeldOut]]:
        """The memory of all of the text, and for fitting on its last `held`
        tokens, memories that did not count what they score: all of it less
        each half of those tokens, as (memory, first, end) in the held-out
        tokens' own positions."""
        n = len(self.ids)
        everything = self.grams(0, n)
        first = n - held
        middle = (first + n) // 2
        held_out = []
        for a, b in ((first, middle), (middle, n)):
            if b > a:
                memory = everything.without(self.grams(a, b)).model(max_bytes)
                held_out.append((memory, a - first, b - first))
        return everything.model(max_bytes), held_out


def memory_record(
    ngram: NgramModel,
    residual: bool,
    counted_tokens: int,
    fit: dict[str, Any],
    **more: Any,
) -> dict[str, Any]:
    """What a model's record says of the memory it keeps (`record.ngram`,
    which `info` reads): its size, how it is used, what it counted, how
    its weights or scales fitted (`fit`), and `more` (timings, ...)."""
    return {
        "order": ngram.text_order,
        "labelled": bool(len(ngram.labels)),
        "entries": ngram.entries,
        "megabytes": round(ngram.nbytes / 2**20, 3),
        "pruned": ngram.pruned,
        "mode": "residual" if residual else "mixture",
        "counted_tokens": counted_tokens,
        "bucket_edges": list(BUCKET_EDGES),
        **fit,
        **more,
    }
