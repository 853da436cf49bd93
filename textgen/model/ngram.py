"""The n-gram memory: an interpolated Kneser-Ney model counted over the same
token ids as the network, stored in the model file and mixed with the
network's next-token distribution (see `Mixture`).

Counting is vectorised NumPy: every n-gram is packed into one integer key
(base `vocab_size + 1`, the extra digit being the start-of-text token that
pads each document), the keys are sorted and counted with `np.unique`, and
each lower order holds continuation counts (how many distinct tokens precede
it) computed the same way from the order above. The formulas are those of
`benchmarks/ngram.py` (Chen & Goodman's interpolated modified Kneser-Ney:
three discounts per order, for grams seen once, twice and three or more
times, from the count-of-counts), which the tests compare with. `Grams`
holds the highest order's raw counts, which can be taken away: a memory that
did not count a block of the text is made without counting again.

A labelled text's memory (`--label-field`) is one order longer: its longest
grams begin with the label the gram was read under (the last label token
before it in its file or item), so the memory too writes like the label
asked for, backing off to the label-blind grams below (see `labels`).

TensorFlow-free: generation and evaluation use it through `ModelFile`.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import io
import math
import zipfile
from collections.abc import Sequence

import numpy as np

from .config import MAX_ORDER

# Buckets of the mixing weight: by the count of the longest context of the
# current position that was seen in training. 0: none was (the unigram
# level only); then 1, 2-3, 4-15, 16-63, 64 and more.
BUCKET_EDGES = (1, 2, 4, 16, 64)
BUCKETS = len(BUCKET_EDGES) + 1


# How each order's counts are discounted (Chen & Goodman 1998):
# "modified": three discounts, for grams seen once, twice and three times or
# more, from the count-of-counts n1..n4 (the default: it measures best, see
# docs/benchmarks.md); "one": one discount n1 / (n1 + 2 n2) for every count
# (textgen's memory before issue 34); "fixed": 0.75 for every count.
DISCOUNTING = ("modified", "one", "fixed")


def discounts_of(counts: np.ndarray, discounting: str = "modified") -> np.ndarray:
    """D1, D2, D3+ for an order whose grams have these (positive) counts:
    each in (0, j] for count class j, so no seen gram loses more than it
    has and every context keeps some mass for the orders below."""
    n1, n2, n3, n4 = (int(np.count_nonzero(counts == j)) for j in (1, 2, 3, 4))
    one = n1 / (n1 + 2 * n2) if n1 else 0.75
    if discounting == "fixed":
        return np.full(3, 0.75)
    if discounting == "one":
        return np.full(3, one)
    n = (n1, n2, n3, n4)
    result = []
    for j in (1, 2, 3):
        # Where a class or the one above it is empty (a short text), or the
        # estimate falls outside (0, j), the one discount (always inside).
        fits = n[j - 1] and n[j]
        d = j - (j + 1) * one * n[j] / n[j - 1] if fits else one
        result.append(d if 0 < d < j else one)
    return np.array(result)


def _discounted(counts: np.ndarray, discounts: np.ndarray) -> np.ndarray:
    """Each count's discount: D1, D2 or D3+ by the count (0 for a count 0)."""
    table = np.concatenate([[0.0], discounts])
    return table[np.minimum(counts, 3)]


_CHUNK = 1 << 22  # tokens whose keys are made and counted at once


def _gram_keys(doc: np.ndarray, order: int, base: int, start: int, lo: int, hi: int):
    """The n-gram key of each token `lo..hi` of `doc` (its order - 1
    predecessors, `start` before the document's beginning), in chunks of
    `_CHUNK`."""
    for a in range(lo, hi, _CHUNK):
        b = min(a + _CHUNK, hi)
        low = a - (order - 1)
        piece = doc[max(low, 0) : b].astype(np.int64)
        if low < 0:
            piece = np.concatenate([np.full(-low, start, dtype=np.int64), piece])
        key = np.zeros(b - a, dtype=np.int64)
        for j in range(order):
            key = key * base + piece[j : j + b - a]
        yield key


def _label_digits(doc: np.ndarray, labels: np.ndarray, start: int, lo: int, hi: int):
    """Each token `lo..hi` of `doc`'s label: the id of the last label token
    before it in `doc` (`start` where there is none), in the chunks of
    `_gram_keys`."""
    marks = np.where(np.isin(doc[:hi], labels), np.arange(hi), -1)
    last = np.maximum.accumulate(marks) if hi else marks
    for a in range(lo, hi, _CHUNK):
        b = min(a + _CHUNK, hi)
        before = np.full(b - a, -1, dtype=np.int64)
        positions = np.arange(a, b)
        inside = positions > 0
        before[inside] = last[positions[inside] - 1]
        label = np.full(b - a, start, dtype=np.int64)
        label[before >= 0] = doc[before[before >= 0]]
        yield label


def _less(keys, counts, other_keys, other_counts) -> tuple[np.ndarray, np.ndarray]:
    """A table of counts less `other`'s (grams of a part of the same text)."""
    at = np.searchsorted(keys, other_keys)
    if len(other_keys) and (
        (at >= len(keys)).any()
        or (keys[np.minimum(at, len(keys) - 1)] != other_keys).any()
    ):
        raise ValueError("the grams taken away were not all counted")
    counts = counts.copy()
    counts[at] -= other_counts
    if counts.min(initial=0) < 0:
        raise ValueError("more grams taken away than were counted")
    keep = counts > 0
    return keys[keep], counts[keep]


_NO_IDS = np.zeros(0, dtype=np.int64)


def _no_ids() -> np.ndarray:
    return _NO_IDS


def _merged(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple:
    """One sorted table of (key, count) from per-chunk ones."""
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if len(parts) == 1:
        return parts[0]
    keys, where = np.unique(np.concatenate([k for k, _ in parts]), return_inverse=True)
    counts = np.bincount(where, weights=np.concatenate([c for _, c in parts]))
    return keys, counts.astype(np.int64)


# A stretch of a document to count: (the document's ids, first, end): the
# tokens first..end - 1, each read with its context in the document.
Piece = tuple[np.ndarray, int, int]


@dataclasses.dataclass(frozen=True)
class Grams:
    """The highest order's raw counts, before anything is derived from them:
    what can be added and taken away (a memory that did not count a block of
    the text is all the grams minus the block's, see `without`). A labelled
    text's also holds the same grams with the label each was read under
    (`tagged_keys`: the label's id, or the start for none, as the oldest
    digit of a key one order longer)."""

    order: int
    vocab_size: int
    keys: np.ndarray  # sorted int64 gram keys (base vocab_size + 1)
    counts: np.ndarray  # int64, each at least 1
    # Sorted label ids (none: not labelled).
    labels: np.ndarray = dataclasses.field(default_factory=_no_ids)
    tagged_keys: np.ndarray = dataclasses.field(default_factory=_no_ids)
    tagged_counts: np.ndarray = dataclasses.field(default_factory=_no_ids)

    @classmethod
    def of(
        cls,
        pieces: Sequence[Piece],
        vocab_size: int,
        order: int,
        labels: Sequence[int] | np.ndarray = (),
    ) -> Grams:
        """Count the pieces' grams (`order` lowered to what fits, see
        `largest_order`), and with `labels` (the ids of label tokens) each
        also under its label. Counted a chunk at a time and merged: memory
        follows the distinct n-grams, not the text."""
        labels = np.unique(np.asarray(labels, dtype=np.int64))
        tagged = 1 if len(labels) else 0
        order = max(1, largest_order(vocab_size, order + tagged) - tagged)
        base = vocab_size + 1
        plain, under = [], []  # each chunk's counts, merged at the end
        for doc, lo, hi in pieces:
            doc = np.asarray(doc)
            keys = _gram_keys(doc, order, base, vocab_size, lo, hi)
            if not tagged:
                plain.extend(np.unique(key, return_counts=True) for key in keys)
                continue
            digits = _label_digits(doc, labels, vocab_size, lo, hi)
            for key, label in zip(keys, digits, strict=True):
                plain.append(np.unique(key, return_counts=True))
                under.append(np.unique(label * base**order + key, return_counts=True))
        if not tagged:
            return cls(order, vocab_size, *_merged(plain))
        return cls(order, vocab_size, *_merged(plain), labels, *_merged(under))

    def without(self, other: Grams) -> Grams:
        """These counts less `other`'s (grams of a part of the same text)."""
        keys, counts = _less(self.keys, self.counts, other.keys, other.counts)
        tagged = _less(
            self.tagged_keys, self.tagged_counts, other.tagged_keys, other.tagged_counts
        )
        return Grams(self.order, self.vocab_size, keys, counts, self.labels, *tagged)

    def model(
        self, max_bytes: int | None = None, discounting: str = "modified"
    ) -> NgramModel:
        """The Kneser-Ney model of these counts (see `NgramModel.count`);
        a labelled text's has the grams under their labels as its highest
        order, backing off to the grams alone (their raw counts: a label
        adds no words of its own to continue)."""
        base = self.vocab_size + 1
        grams, numbers = self.keys, self.counts
        keys: list[np.ndarray] = []
        counts: list[np.ndarray] = []
        for k in range(self.order, 1, -1):  # keys of k tokens
            keys.insert(0, grams)
            counts.insert(0, numbers)
            grams, numbers = np.unique(grams % base ** (k - 1), return_counts=True)
        unigram = np.zeros(self.vocab_size, dtype=np.int64)
        np.add.at(unigram, grams, numbers)  # grams are ids now: never the start
        order, labels = self.order, _NO_IDS
        if len(self.labels) and len(self.tagged_keys):
            keys.append(self.tagged_keys)
            counts.append(self.tagged_counts)
            order, labels = self.order + 1, self.labels
        model = NgramModel._with_contexts(
            order, self.vocab_size, unigram, keys, counts, 0, discounting, labels
        )
        if max_bytes is not None:
            model = model.pruned_to(max_bytes, discounting)
        return model


def largest_order(vocab_size: int, wanted: int) -> int:
    """The longest order up to `wanted` whose keys fit in 63 bits."""
    base = vocab_size + 1
    order = 0
    while order < wanted and base ** (order + 1) < 2**63:
        order += 1
    return order


@dataclasses.dataclass(frozen=True)
class Factored:
    """Rows of n-gram distributions as `scale[row] * unigram`, plus the
    `seen` entries: (rows, columns, values) to add, one triple per order
    (within a triple no (row, column) repeats)."""

    scale: np.ndarray  # (rows,) float64
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    buckets: np.ndarray  # (rows,) each row's bucket (see `BUCKET_EDGES`)


@dataclasses.dataclass
class NgramModel:
    """The tables of an interpolated Kneser-Ney model over ids `0..vocab_size-1`.

    Order k (a gram of k tokens) for k >= 2 has sorted `keys[k-2]` with their
    `counts[k-2]` (raw counts at the top order, continuation counts below),
    and its contexts (the first k - 1 tokens): sorted `context_keys[k-2]`
    with the `totals` of their grams' counts and the `masses` their
    discounts leave for the order below (the sum of their grams'
    discounts). Order 1 is the dense `unigram` vector.

    With `labels` (a labelled text's memory) the highest order's grams
    begin with a label token's id (or the start: no label), the label the
    rest was read under; a context's oldest id is then the label (see
    `contexts_at`), and the orders below are the label-blind grams.
    """

    order: int
    vocab_size: int
    # (order, 3) float64: row k - 1 holds order k's D1, D2, D3+.
    discounts: np.ndarray
    unigram: np.ndarray  # (vocab_size,) int64
    keys: list[np.ndarray]
    counts: list[np.ndarray]
    context_keys: list[np.ndarray]
    totals: list[np.ndarray]
    masses: list[np.ndarray]  # float64
    pruned: int = 0  # grams removed to fit the size cap
    # Sorted ids of the label tokens (see above).
    labels: np.ndarray = dataclasses.field(default_factory=_no_ids)
    # (ids, each position's last label position) of the text last read by
    # `contexts_at`, which is read again block after block.
    _marks: tuple = dataclasses.field(default=(None, None), repr=False, compare=False)

    @functools.cached_property
    def _unigram_probabilities(self) -> np.ndarray:
        """The lowest order's distribution (interpolated with the uniform)."""
        total = self.unigram.sum()
        discounted = _discounted(self.unigram, self.discounts[0])
        left = discounted.sum() / total / self.vocab_size
        return (self.unigram - discounted) / total + left

    @functools.cached_property
    def unigram_float32(self) -> np.ndarray:
        """The lowest order's distribution in float32, made once (what
        `Mixture.logits` adds to every row at every step)."""
        return self._unigram_probabilities.astype(np.float32)

    @functools.cached_property
    def log_unigram_float32(self) -> np.ndarray:
        """log of the lowest order's distribution in float32, made once
        (what `log_distributions` starts every row from)."""
        return np.log(self._unigram_probabilities).astype(np.float32)

    @property
    def text_order(self) -> int:
        """The longest gram of text it counts: its order, less the label's
        place in a labelled memory's."""
        return self.order - 1 if len(self.labels) else self.order

    @property
    def start(self) -> int:
        """The id that pads a document's start in contexts."""
        return self.vocab_size

    @property
    def base(self) -> int:
        return self.vocab_size + 1

    @property
    def entries(self) -> int:
        return int(np.count_nonzero(self.unigram)) + sum(len(k) for k in self.keys)

    @property
    def nbytes(self) -> int:
        arrays = [self.unigram, *self.keys, *self.counts]
        arrays += [*self.context_keys, *self.totals, *self.masses]
        return sum(a.nbytes for a in arrays)

    @classmethod
    def count(
        cls,
        documents: Sequence[np.ndarray],
        vocab_size: int,
        order: int,
        max_bytes: int | None = None,
        discounting: str = "modified",
        labels: Sequence[int] = (),
    ) -> NgramModel:
        """Count the documents (id arrays, each read from a fresh start).

        Args:
            documents: token ids, one array per document (or item).
            vocab_size: the ids are below it.
            order: n, the longest gram (1 to `MAX_ORDER`; lowered so that keys
                fit in 63 bits, see `largest_order`).
            max_bytes: prune the rarest grams of the highest orders first
                until the tables fit.
            discounting: one of `DISCOUNTING`.
            labels: the ids of label tokens, for a labelled memory.
        """
        pieces = [(doc, 0, len(doc)) for doc in documents]
        grams = Grams.of(pieces, vocab_size, order, labels)
        return grams.model(max_bytes, discounting)

    @classmethod
    def _with_contexts(
        cls,
        order: int,
        vocab_size: int,
        unigram: np.ndarray,
        keys: list[np.ndarray],
        counts: list[np.ndarray],
        pruned: int = 0,
        discounting: str | np.ndarray = "modified",
        labels: np.ndarray = _NO_IDS,
    ) -> NgramModel:
        """The model of these tables, with `discounts` (order, 3) given or
        estimated from the counts (`discounting`, see `DISCOUNTING`)."""
        base = vocab_size + 1
        counts = [c.astype(np.int64) for c in counts]
        if isinstance(discounting, str):
            discounts = np.array(
                [discounts_of(c, discounting) for c in [unigram[unigram > 0], *counts]]
            )
        else:
            discounts = discounting
        context_keys, totals, masses = [], [], []
        for k, (grams, numbers) in enumerate(zip(keys, counts, strict=True), start=2):
            contexts, first = np.unique(grams // base, return_index=True)
            context_keys.append(contexts)
            if not len(first):
                totals.append(numbers[:0])
                masses.append(np.zeros(0))
                continue
            totals.append(np.add.reduceat(numbers, first))
            masses.append(
                np.add.reduceat(_discounted(numbers, discounts[k - 1]), first)
            )
        return cls(
            order, vocab_size, discounts, unigram, keys, counts,
            context_keys, totals, masses, pruned, labels,
        )  # fmt: skip

    def pruned_to(self, max_bytes: int, discounting: str = "modified") -> NgramModel:
        """A copy without the rarest grams of the highest orders (count 1
        first, then 2, ...; an order emptied is dropped), until the tables
        take at most `max_bytes`. The contexts' totals are recounted, so
        every distribution still sums to 1."""
        keys, counts = list(self.keys), list(self.counts)
        removed = 0
        model = self
        while keys and model.nbytes > max_bytes:
            top = counts[-1]
            keep = top > top.min()
            removed += int(len(top) - keep.sum())
            keys[-1], counts[-1] = keys[-1][keep], top[keep]
            if not keep.any():
                keys.pop()
                counts.pop()
            # Its labelled order gone, a memory is label-blind.
            labels = self.labels if len(keys) + 1 == self.order else _NO_IDS
            model = NgramModel._with_contexts(
                len(keys) + 1, self.vocab_size, self.unigram, keys, counts,
                self.pruned + removed, discounting, labels,
            )  # fmt: skip
        return model

    def distributions(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """P(next id | context) over the vocabulary, for each row.

        Args:
            contexts: (rows, order - 1) ids, oldest first; `start` pads a
                context shorter than that.

        Returns:
            (rows, vocab_size) float64 probabilities, each row summing to 1;
            and (rows,) the bucket of each row (see `BUCKET_EDGES`).
        """
        rows = len(contexts)
        if not rows:
            return np.zeros((0, self.vocab_size)), np.zeros(0, dtype=np.int64)
        factored = self.factored(contexts)
        return self._dense(factored), factored.buckets

    def log_distributions(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log `distributions`, float32: what a residual model adds to its
        network's logits.

        A row is its unigram multiple everywhere but where a gram was seen,
        so it is log(scale) + log unigram (one float32 pass) with the
        logarithm taken only at the seen entries (read from the dense
        probabilities), not at every entry of the vocabulary: 18% faster
        for many rows, the same for one (docs/benchmarks.md)."""
        rows = len(contexts)
        if not rows:
            return np.zeros((0, self.vocab_size), np.float32), np.zeros(0, np.int64)
        factored = self.factored(contexts)
        with np.errstate(divide="ignore"):
            log_scale = np.log(factored.scale).astype(np.float32)
        out = np.add.outer(log_scale, self.log_unigram_float32)
        if factored.seen:
            probs = self._dense(factored)
            row = np.concatenate([row for row, _, _ in factored.seen])
            column = np.concatenate([column for _, column, _ in factored.seen])
            out[row, column] = np.log(probs[row, column])
        return out, factored.buckets

    def _dense(self, factored: Factored) -> np.ndarray:
        """The (rows, vocab_size) float64 probabilities `factored` stands for."""
        probs = np.multiply.outer(factored.scale, self._unigram_probabilities)
        for row, column, value in factored.seen:
            probs[row, column] += value
        return probs

    def factored(self, contexts: np.ndarray) -> Factored:
        """`distributions` of rows of contexts as a multiple of the unigram
        distribution plus a few entries per row (see `Factored`): the whole
        (rows, vocab_size) array need not be written more than once.

        Interpolated Kneser-Ney gives each order k the row's seen grams'
        discounted counts plus a back-off weight times order k - 1, so the
        unigram's multiple is the product of the back-off weights, and the
        grams seen at order k are scaled by those of the orders above it.

        One row (one sample's step) is looked up with scalars, in fewer
        calls, to the same numbers bit for bit: what a row gets never
        depends on the rows beside it.
        """
        rows = len(contexts)
        contexts = np.asarray(contexts, dtype=np.int64).reshape(rows, -1)
        if rows == 1:
            return self._factored_one(contexts[0])
        longest = np.zeros(rows, dtype=np.int64)
        alive = np.ones(rows, dtype=bool)
        base = self.base
        h = np.zeros(rows, dtype=np.int64)
        width = contexts.shape[1]
        seen = []  # per order: rows, columns, values
        backoffs = []  # per order: each row's back-off weight (1: not seen)
        for k in range(2, min(self.order, width + 1) + 1):  # grams of k tokens
            h = h + contexts[:, width - (k - 1)] * base ** (k - 2)
            table = self.context_keys[k - 2]
            at = np.searchsorted(table, h)
            found = alive & (at < len(table))
            found[found] = table[at[found]] == h[found]
            alive = found
            if not alive.any():
                break
            d = self.discounts[k - 1]
            grams, numbers = self.keys[k - 2], self.counts[k - 2]
            rows_in = np.flatnonzero(alive)
            lows = np.searchsorted(grams, h[rows_in] * base)
            spans = np.searchsorted(grams, h[rows_in] * base + base) - lows
            t = self.totals[k - 2][at[rows_in]].astype(np.float64)
            mass = self.masses[k - 2][at[rows_in]]
            # Every row's grams at once: their places in the table, and rows.
            starts = np.cumsum(spans) - spans
            where = np.repeat(lows - starts, spans) + np.arange(spans.sum())
            row = np.repeat(rows_in, spans)
            c = numbers[where]
            value = (c - _discounted(c, d)) / np.repeat(t, spans)
            seen.append((row, grams[where] % base, value))
            backoff = np.ones(rows)
            backoff[rows_in] = mass / t
            backoffs.append(backoff)
            longest[rows_in] = self.totals[k - 2][at[rows_in]]
        # A gram seen at order k is scaled by the back-offs of the orders
        # above it; the unigram by all of them.
        scale = np.ones(rows)
        for i in reversed(range(len(seen))):
            row, column, value = seen[i]
            seen[i] = (row, column, value * scale[row])
            scale *= backoffs[i]
        buckets = np.searchsorted(BUCKET_EDGES, longest, side="right")
        return Factored(scale, seen, buckets)

    def _factored_one(self, context: np.ndarray) -> Factored:
        """`factored` of one context, the same arithmetic in the same order."""
        base, h, longest, width = self.base, 0, 0, len(context)
        seen, backoffs = [], []
        for k in range(2, min(self.order, width + 1) + 1):
            h += int(context[width - (k - 1)]) * base ** (k - 2)
            table = self.context_keys[k - 2]
            at = int(table.searchsorted(h))
            if at == len(table) or table[at] != h:
                break
            grams = self.keys[k - 2]
            low, high = grams.searchsorted([h * base, h * base + base])
            t = np.float64(self.totals[k - 2][at])
            c = self.counts[k - 2][low:high]
            value = (c - _discounted(c, self.discounts[k - 1])) / t
            row = np.zeros(high - low, dtype=np.int64)
            seen.append((row, grams[low:high] % base, value))
            backoffs.append(self.masses[k - 2][at] / t)
            longest = int(self.totals[k - 2][at])
        scale = np.ones(1)
        for i in reversed(range(len(seen))):
            row, column, value = seen[i]
            seen[i] = (row, column, value * scale[0])
            scale *= backoffs[i]
        buckets = np.array([bisect.bisect_right(BUCKET_EDGES, longest)])
        return Factored(scale, seen, buckets)

    def token_probabilities(
        self, contexts: np.ndarray, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """P(target | context) and the bucket for each row: what
        `distributions` gives for the targets alone, in time independent of
        the vocabulary's size."""
        rows = len(targets)
        if not rows:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        contexts = np.asarray(contexts, dtype=np.int64).reshape(rows, -1)
        targets = np.asarray(targets, dtype=np.int64)
        p = self._unigram_probabilities[targets]
        longest = np.zeros(rows, dtype=np.int64)
        alive = np.ones(rows, dtype=bool)
        h = np.zeros(rows, dtype=np.int64)
        base = self.base
        for k in range(2, min(self.order, contexts.shape[1] + 1) + 1):
            h = h + contexts[:, contexts.shape[1] - (k - 1)] * base ** (k - 2)
            table = self.context_keys[k - 2]
            at = np.minimum(np.searchsorted(table, h), max(len(table) - 1, 0))
            alive &= (table[at] == h) if len(table) else False
            if not alive.any():
                break
            grams, numbers = self.keys[k - 2], self.counts[k - 2]
            key = h * base + targets
            where = np.minimum(np.searchsorted(grams, key), len(grams) - 1)
            c = np.where(grams[where] == key, numbers[where], 0)
            t = self.totals[k - 2][at].astype(np.float64)
            seen = c - _discounted(c, self.discounts[k - 1])
            mixed = seen / t + self.masses[k - 2][at] / t * p
            p = np.where(alive, mixed, p)
            longest = np.where(alive, self.totals[k - 2][at], longest)
        return p, np.searchsorted(BUCKET_EDGES, longest, side="right")

    def probabilities_at(
        self, ids: np.ndarray, positions: np.ndarray, starts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """`token_probabilities` of `ids[positions]`, each read in its text
        or item, which begins at the matching `starts` (ids before it are
        the start of the text to the n-gram)."""
        return self.token_probabilities(
            self.contexts_at(ids, positions, starts), ids[positions]
        )

    def contexts_at(
        self, ids: np.ndarray, positions: np.ndarray, starts: np.ndarray
    ) -> np.ndarray:
        """The context (rows, order - 1) of each of `ids[positions]`, read in
        its text or item, which begins at the matching `starts`."""
        width = self.order - 1
        offsets = positions[:, None] - width + np.arange(width)[None, :]
        inside = offsets >= starts[:, None]
        picked = ids[np.clip(offsets, 0, max(len(ids) - 1, 0))] if len(ids) else offsets
        contexts = np.where(inside, picked, self.start)
        if len(self.labels) and width:
            contexts[:, 0] = self._labels_at(ids, positions, starts)
        return contexts

    def _labels_at(
        self, ids: np.ndarray, positions: np.ndarray, starts: np.ndarray
    ) -> np.ndarray:
        """The label each of `ids[positions]` is read under: the last label
        token before it in its text or item (`start` for none)."""
        cached, last = self._marks
        if cached is not ids:
            marks = np.where(np.isin(ids, self.labels), np.arange(len(ids)), -1)
            last = np.maximum.accumulate(marks) if len(ids) else marks
            self._marks = (ids, last)
        positions = np.asarray(positions, dtype=np.int64)
        before = np.full(len(positions), -1, dtype=np.int64)
        inside = (positions > 0) & (positions <= len(ids))
        before[inside] = last[positions[inside] - 1]
        label = ids[np.maximum(before, 0)] if len(ids) else before
        return np.where(before >= starts, label, self.start)

    def probabilities_of(
        self, documents: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each token's probability and bucket, every document read from a
        fresh start: a float64 and an int array over all the tokens."""
        documents = [np.asarray(doc, dtype=np.int64) for doc in documents]
        if not documents:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        ids = np.concatenate(documents)
        lengths = [len(doc) for doc in documents]
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        return self.probabilities_at(ids, np.arange(len(ids)), starts)

    def to_arrays(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """What the model file keeps: the unigram vector, each order's sorted
        keys and counts, the discounts, the pruning count and the mixing
        `weights` (the network's share per bucket). Contexts are recounted
        on reading, so they can never disagree with the grams."""
        arrays = {
            "unigram": self.unigram,
            "discounts": self.discounts.ravel(),  # D1, D2, D3+ of each order
            "pruned": np.array([self.pruned]),
            "weights": weights,
        }
        if len(self.labels):
            arrays["labels"] = self.labels
        for k, keys in enumerate(self.keys, start=2):
            arrays[f"keys{k}"], arrays[f"counts{k}"] = keys, self.counts[k - 2]
        return arrays

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], vocab_size: int
    ) -> tuple[NgramModel, np.ndarray]:
        """The model and mixing weights `to_arrays` wrote, every value
        checked as it will be used: first converted to int64 (ids, counts)
        and float64 (discounts, weights), refusing what does not convert
        exactly; then sorted unique keys of in-range ids, counts of at least
        1 whose sums cannot overflow (`MAX_COUNT_TOTAL`), discounts D_j in (0, j]
        and weights in [0, 1]. So every distribution sums to 1. Discounts
        are D1, D2, D3+ of each order, or one per order (files from before
        issue 34).

        Raises:
            ValueError: one line saying what is wrong.
        """
        unigram = _array(arrays, "unigram", "i", (vocab_size,))
        if unigram.min() < 0 or not unigram.any():
            raise ValueError("its unigram counts are negative or all zero")
        _bounded_sum(unigram, "unigram counts")
        order = 1
        while f"keys{order + 1}" in arrays:
            order += 1
        # A labelled memory's label takes one place more (see `labels`).
        longest = MAX_ORDER + ("labels" in arrays)
        if order > longest or largest_order(vocab_size, order) < order:
            raise ValueError(f"its order {order} is beyond what it can hold")
        discounts = _array(arrays, "discounts", "f", None)
        if discounts.shape == (order,):  # one discount per order (before 34)
            discounts = np.repeat(discounts[:, None], 3, axis=1)
        elif discounts.shape == (3 * order,):  # D1, D2, D3+ of each order
            discounts = discounts.reshape(order, 3)
        else:
            raise ValueError(
                f"its discounts are {discounts.shape}, not ({3 * order},) or ({order},)"
            )
        residual = "scales" in arrays  # a residual model's (see `Residual`)
        if residual and "weights" in arrays:
            raise ValueError("it holds both mixing weights and residual scales")
        weights = _array(arrays, "scales" if residual else "weights", "f", (BUCKETS,))
        pruned = _array(arrays, "pruned", "i", (1,))
        # D1, D2, D3+ in (0, 1], (0, 2], (0, 3]: no gram loses more than it has.
        if (
            not (np.isfinite(discounts).all() and (discounts > 0).all())
            or (discounts > [1, 2, 3]).any()
        ):
            raise ValueError("its discounts are not all above 0 and at most 1, 2, 3")
        most = MAX_SCALE if residual else 1
        if not (np.isfinite(weights).all() and (weights >= 0).all()) or (
            weights.max() > most
        ):
            what = "scales" if residual else "weights"
            raise ValueError(f"its {what} are not all between 0 and {most}")
        if pruned[0] < 0:
            raise ValueError("its count of pruned grams is negative")
        labels = _NO_IDS
        if "labels" in arrays:
            labels = _array(arrays, "labels", "i", None)
            if (
                labels.ndim != 1
                or not len(labels)
                or order < 2
                or (np.diff(labels) <= 0).any()
                or labels[0] < 0
                or labels[-1] >= vocab_size
            ):
                raise ValueError("its labels are not sorted ids of its order-2+ grams")
        base = vocab_size + 1
        keys, counts = [], []
        for k in range(2, order + 1):
            key = _array(arrays, f"keys{k}", "i", None)
            count = _array(arrays, f"counts{k}", "i", key.shape)
            if key.ndim != 1 or not len(key):
                raise ValueError(f"its order-{k} table is empty or not a list")
            if (np.diff(key) <= 0).any() or key[0] < 0 or int(key[-1]) >= base**k:
                raise ValueError(f"its order-{k} keys are not sorted ids")
            if (key % base == vocab_size).any() or count.min() < 1:
                raise ValueError(f"its order-{k} grams or counts are out of range")
            _bounded_sum(count, f"order-{k} counts")
            keys.append(key)
            counts.append(count)
        model = cls._with_contexts(
            order, vocab_size, unigram, keys, counts, int(pruned[0]), discounts, labels
        )
        return model, weights


# The most a table's counts may sum to: below it every total is exact in
# both int64 and float64 (2**53), so no sum overflows or rounds.
MAX_COUNT_TOTAL = 2**53


def _bounded_sum(counts: np.ndarray, name: str) -> None:
    # In float64, which cannot overflow: the int64 sum could wrap around.
    if counts.sum(dtype=np.float64) >= MAX_COUNT_TOTAL:
        raise ValueError(f"its {name} sum to more than any text holds")


def _array(
    arrays: dict[str, np.ndarray], name: str, kind: str, shape: tuple | None
) -> np.ndarray:
    """`arrays[name]` as int64 (`kind` "i") or float64 ("f"), converted
    only when every value converts exactly, and of `shape` (None: any)."""
    if name not in arrays:
        raise ValueError(f"it lacks {name}")
    value = arrays[name]
    kinds = "iu" if kind == "i" else "f"
    if value.dtype.kind not in kinds:
        raise ValueError(f"its {name} are {value.dtype}, not numbers of that kind")
    if shape is not None and value.shape != shape:
        raise ValueError(f"its {name} are {value.shape}, not {shape}")
    if value.dtype.kind == "u" and value.size and value.max() > np.iinfo(np.int64).max:
        raise ValueError(f"its {name} are beyond 64-bit signed integers")
    wanted = np.int64 if kind == "i" else np.float64
    return value.astype(wanted, copy=False)


def fit_weights(
    network: np.ndarray, counting: np.ndarray, buckets: np.ndarray, rounds: int = 30
) -> np.ndarray:
    """The network's weight in the mixture, per bucket: EM on held-out tokens'
    probabilities under each part (a bucket with no tokens takes the weight
    fitted on all of them). Each round cannot raise the mixture's loss."""
    network = np.maximum(network, 1e-300)
    counting = np.maximum(counting, 1e-300)

    def em(share: float, a: np.ndarray, b: np.ndarray) -> float:
        for _ in range(rounds):
            mixed = share * a + (1 - share) * b
            share = float(np.mean(share * a / mixed))
        return share

    def loss(share: float, a: np.ndarray, b: np.ndarray) -> float:
        return float(-np.log(share * a + (1 - share) * b).sum())

    overall = em(0.5, network, counting) if len(network) else 0.5
    weights = np.full(BUCKETS, overall)
    for bucket in range(BUCKETS):
        inside = buckets == bucket
        a, b = network[inside], counting[inside]
        if not len(a):
            continue
        # Fewer tokens would fit noise: the overall weight, unless one part
        # alone is better there (EM creeps towards 0 or 1, never reaching it).
        fitted = em(overall, a, b) if len(a) >= 20 else overall
        candidates = (fitted, 1 - _LEAST_SHARE, _LEAST_SHARE)
        weights[bucket] = min(candidates, key=lambda w: loss(w, a, b))
    # Neither part is ever left out entirely: a word one part rules out
    # stays possible (the n-gram gives every word some probability).
    return np.clip(weights, _LEAST_SHARE, 1 - _LEAST_SHARE)


_LEAST_SHARE = 0.001  # the smallest weight either part has in the mixture


def mixed_probabilities(
    network: np.ndarray, counting: np.ndarray, buckets: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """The mixture of per-token (or per-row distribution) probabilities."""
    share = weights[buckets]
    if network.ndim == 2:
        share = share[:, None]
    return share * network + (1 - share) * counting


ASSET = "ngram.npz"  # its name among the model file's assets


def write_arrays(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Save `arrays` as a compressed .npz (sorted keys compress well)."""
    np.savez_compressed(path, **arrays)


# What a model file's tables are made of: an .npz member of another name is
# refused before it is inflated.
KNOWN_ARRAYS = frozenset(
    f"{name}.npy"
    for name in ["unigram", "discounts", "pruned", "weights", "scales", "labels"]
    + [f"{part}{k}" for part in ("keys", "counts") for k in range(2, MAX_ORDER + 2)]
)


def read_arrays(data: bytes, max_bytes: int) -> dict[str, np.ndarray]:
    """The arrays of an .npz file's bytes, read as untrusted input: before
    anything is inflated, every member must be a known array (`KNOWN_ARRAYS`),
    once, and `check_members` must pass (sizes and compression ratios within
    `max_bytes` and `MAX_RATIO`); then each member is inflated once, its
    header checked against its size, and nothing is unpickled.

    Raises:
        ValueError: one line saying what is wrong.
    """
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            check_members(members, KNOWN_ARRAYS, max_bytes, "tables")
            for info in members:
                with archive.open(info) as member:
                    raw = member.read(info.file_size + 1)
                arrays[info.filename.removesuffix(".npy")] = _npy(raw)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, KeyError) as err:
        raise ValueError(f"its tables cannot be read ({type(err).__name__})") from None
    except NotImplementedError:
        raise ValueError("its tables use an unknown compression") from None
    return arrays


# An archive member inflating to more than this many times its packed size
# is refused (a "zip bomb"); real tables pack at most ~40 to 1 (sorted keys
# ~3, counts ~40), so this leaves room. Members smaller than `RATIO_FLOOR`
# are exempt: whatever they pack to, they cost little.
MAX_RATIO = 256
RATIO_FLOOR = 16 * 2**20


def check_members(
    members: Sequence[zipfile.ZipInfo],
    known: frozenset[str],
    max_bytes: int,
    what: str,
) -> None:
    """Refuse an archive (before inflating anything) holding a member not
    `known`, one twice, members that claim more than `max_bytes` in all, or
    one packed more tightly than `MAX_RATIO` to 1 (past `RATIO_FLOOR`
    bytes). Reading a member stops at the size it claims, so the claims
    bound what reading costs. (The model file's entries and the tables'
    arrays alike.)

    Raises:
        ValueError: one line naming what is wrong.
    """
    names = [info.filename for info in members]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"it holds {unknown[0][:60]!r}, not one of its {what}")
    if len(set(names)) != len(names):
        raise ValueError(f"it holds one of its {what} twice")
    total = 0
    for info in members:
        total += info.file_size
        if total > max_bytes:
            raise ValueError(f"its {what} claim over {max_bytes:,} bytes")
        if info.file_size > max(RATIO_FLOOR, MAX_RATIO * info.compress_size):
            raise ValueError(
                f"its {info.filename[:60]!r} inflates {info.file_size:,} bytes "
                f"from {info.compress_size:,}, more than {MAX_RATIO} to 1 "
                "(a zip bomb)"
            )


def _npy(raw: bytes) -> np.ndarray:
    """One .npy file's array: a plain numeric dtype, and exactly the bytes
    its header says (read in place: the body is not copied)."""
    stream = io.BytesIO(raw)
    readers = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    try:
        version = np.lib.format.read_magic(stream)
        if version in readers:
            shape, fortran, dtype = readers[version](stream)
    except (ValueError, TypeError):
        # NumPy's messages quote the header's parsed form (an `ast` node's
        # repr, say): not for a user's eyes.
        raise ValueError("an array's header is damaged") from None
    if version not in readers:
        raise ValueError(f"an array has an unknown format {version}")
    if dtype.kind not in "iuf" or dtype.hasobject or fortran or len(shape) > 1:
        raise ValueError(f"an array is {dtype} {shape}, not a list of numbers")
    body = memoryview(raw)[stream.tell() :]
    if len(body) != math.prod(shape) * dtype.itemsize:
        raise ValueError("an array's size disagrees with its header")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


# The most bytes of tables a model file may claim (the cap on training is
# `--ngram-max-mb`; this bounds what a damaged or hostile file can make a
# reader allocate).
MAX_TABLE_BYTES = 2**31


@dataclasses.dataclass
class Mixture:
    """The network mixed with the n-gram memory: P = w P_network + (1 - w)
    P_ngram, with the weight w of the bucket of the context (how often its
    longest seen context was seen)."""

    ngram: NgramModel
    weights: np.ndarray  # (BUCKETS,) the network's share

    def contexts(self, history: np.ndarray, pad: int, start: int | None) -> np.ndarray:
        """The n-gram contexts of rows of ids (rows, t): their last order - 1
        ids, `pad` (and `start`, an item model's start token) read as the
        start of the text."""
        width = self.ngram.order - 1
        tail = history[:, max(0, history.shape[1] - width) :].astype(np.int64)
        if tail.shape[1] < width:
            filler = np.full((len(tail), width - tail.shape[1]), pad)
            tail = np.concatenate([filler, tail], axis=1)
        starts = tail == pad
        if start is not None:
            starts |= tail == start
        # Everything before a start is the start too.
        starts = np.maximum.accumulate(starts[:, ::-1], axis=1)[:, ::-1]
        contexts = np.where(starts, self.ngram.start, tail)
        if len(self.ngram.labels) and width:
            contexts[:, 0] = self._labels(history, pad, start)
        return contexts

    def _labels(self, history: np.ndarray, pad: int, start: int | None) -> np.ndarray:
        """Each row's label for a labelled memory: its last label token
        after its last start (the memory's start id where it has none)."""
        places = np.arange(history.shape[1])
        starts = history == pad
        if start is not None:
            starts |= history == start
        last_start = np.where(starts, places, -1).max(axis=1, initial=-1)
        marks = np.where(np.isin(history, self.ngram.labels), places, -1)
        last_label = marks.max(axis=1, initial=-1)
        found = last_label > last_start
        rows = np.arange(len(history))
        label = history[rows, np.maximum(last_label, 0)] if history.shape[1] else 0
        return np.where(found, label, self.ngram.start)

    def logits(self, network: np.ndarray, contexts: np.ndarray) -> np.ndarray:
        """Mixed next-token log-probabilities (float32) from the network's
        logits (rows, vocab_size) and the rows' n-gram contexts.

        In float32 and in place, the n-gram part added in its factored form
        (`NgramModel.factored`): about eight passes over a (rows, vocab) array
        of four bytes, where a dense float64 mixture made about fifteen of
        eight (the cost of sampling many rows at once). Each row's numbers
        are the same whatever rows are beside it (a served batch, a request
        alone)."""
        factored = self.ngram.factored(contexts)
        share = self.weights[factored.buckets]  # (rows,) the network's
        mixed = np.array(network, dtype=np.float32)  # a copy, changed in place
        mixed -= mixed.max(axis=-1, keepdims=True)
        np.exp(mixed, out=mixed)
        mixed *= (share / mixed.sum(axis=-1, dtype=np.float64))[:, None].astype(
            np.float32
        )
        counting = (1 - share) * factored.scale
        unigram = self.ngram.unigram_float32
        mixed += np.multiply.outer(counting.astype(np.float32), unigram)
        for row, column, value in factored.seen:
            mixed[row, column] += ((1 - share[row]) * value).astype(np.float32)
        with np.errstate(divide="ignore"):
            np.log(mixed, out=mixed)
        return mixed

    @classmethod
    def even(cls, ngram: NgramModel) -> Mixture:
        """Half and half in every bucket: before (or without) fitting."""
        return cls(ngram, np.full(BUCKETS, 0.5))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return self.ngram.to_arrays(self.weights)


# The largest scale a residual model's file may give the memory's
# log-probabilities (fitted ones stay near 1).
MAX_SCALE = 16.0


@dataclasses.dataclass
class Residual:
    """The network trained on top of the n-gram memory (Li et al., "N-gram
    Is Back", 2022): the model's logits are the network's plus a scale (per
    bucket, see `BUCKET_EDGES`) times the memory's log-probabilities. The
    network learned only what counting gets wrong; it is not a language
    model alone. Trained with scale 1; the scales are refitted on the
    validation text against the memory the file keeps (`fit_scales`)."""

    ngram: NgramModel
    scales: np.ndarray  # (BUCKETS,)

    contexts = Mixture.contexts

    def logits(self, network: np.ndarray, contexts: np.ndarray) -> np.ndarray:
        """Next-token log-probabilities (float32) from the network's logits
        (rows, vocab_size) and the rows' n-gram contexts; each row's
        numbers the same whatever rows are beside it."""
        log_prior, buckets = self.ngram.log_distributions(contexts)
        return residual_log_probabilities(network, log_prior, self.scales[buckets])

    def block_logits(
        self,
        network: np.ndarray,
        ids: np.ndarray,
        positions: np.ndarray,
        starts: np.ndarray,
    ) -> np.ndarray:
        """`logits` of the tokens at `positions` of `ids`, each read in its
        text or item beginning at the matching `starts` (what `evaluate`
        scores)."""
        return self.logits(network, self.ngram.contexts_at(ids, positions, starts))

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = self.ngram.to_arrays(self.scales)
        arrays["scales"] = arrays.pop("weights")
        return arrays


def residual_log_probabilities(
    network: np.ndarray, log_prior: np.ndarray, scale: np.ndarray | float
) -> np.ndarray:
    """log softmax(network + scale * log prior) per row, in float32 (the
    row's total summed in float64); `scale` (rows,) or a number."""
    scale = np.reshape(np.asarray(scale, dtype=np.float32), (-1, 1))
    combined = np.multiply(log_prior, scale, dtype=np.float32)
    combined += network
    combined -= combined.max(axis=-1, keepdims=True)
    total = np.exp(combined).sum(axis=-1, keepdims=True, dtype=np.float64)
    combined -= np.log(total).astype(np.float32)
    return combined


def fit_scales(
    blocks: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    rounds: int = 8,
) -> np.ndarray:
    """The memory's scale per bucket that gives held-out tokens the lowest
    loss under `residual_log_probabilities`: Newton's method from 1 (the
    loss is convex in each scale). `blocks`: (network logits (n, vocab),
    the memory's log-probabilities (n, vocab), buckets (n,), targets (n,)).
    A bucket with fewer than 20 tokens takes the scale of all of them."""

    def newton(scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gradient, curvature = np.zeros(BUCKETS), np.zeros(BUCKETS)
        for network, log_prior, buckets, targets in blocks:
            z = network.astype(np.float64) + scale[buckets][:, None] * log_prior
            z -= z.max(axis=-1, keepdims=True)
            q = np.exp(z)
            q /= q.sum(axis=-1, keepdims=True)
            mean = (q * log_prior).sum(axis=-1)
            spread = (q * log_prior**2).sum(axis=-1) - mean**2
            chosen = log_prior[np.arange(len(targets)), targets]
            np.add.at(gradient, buckets, mean - chosen)
            np.add.at(curvature, buckets, np.maximum(spread, 0))
        return gradient, curvature

    counts = np.zeros(BUCKETS)
    for _, _, buckets, _ in blocks:
        counts += np.bincount(buckets, minlength=BUCKETS)
    if not counts.sum():
        return np.ones(BUCKETS)
    overall = np.ones(BUCKETS)
    for _ in range(rounds):  # one scale for every bucket first
        gradient, curvature = newton(overall)
        if curvature.sum() <= 0:
            break
        overall = np.clip(overall - gradient.sum() / curvature.sum(), 0, MAX_SCALE)
    scales = overall.copy()
    enough = counts >= 20
    for _ in range(rounds):
        gradient, curvature = newton(scales)
        step = np.divide(
            gradient, curvature, out=np.zeros(BUCKETS), where=curvature > 0
        )
        scales = np.where(enough, np.clip(scales - step, 0, MAX_SCALE), overall)
    return scales


def memory_from_bytes(data: bytes, vocab_size: int) -> Mixture | Residual:
    """Read what `write_arrays(…, memory.to_arrays())` wrote (untrusted
    input): a `Residual` if it holds scales, else a `Mixture`.

    Raises:
        ValueError: one line saying what is wrong.
    """
    arrays = read_arrays(data, MAX_TABLE_BYTES)
    ngram, values = NgramModel.from_arrays(arrays, vocab_size)
    return Residual(ngram, values) if "scales" in arrays else Mixture(ngram, values)


def used_memory(model: object, ngram: bool = True) -> Mixture | Residual | None:
    """The memory a command uses with a model: its own (None without one),
    or None for the network alone (`ngram` False, `--no-ngram`).

    Raises:
        TextgenError: the network alone of a residual model, which is not a
            language model by itself.
    """
    memory = getattr(model, "mixture", None)
    if not ngram and isinstance(memory, Residual):
        from ..errors import TextgenError

        raise TextgenError(
            "--no-ngram: this model's network was trained on top of its n-gram "
            "memory (--ngram-mode residual) and is no language model alone; "
            "leave --no-ngram out"
        )
    return memory if ngram else None
