"""The n-gram memory's log-probabilities that residual training adds to
the network's logits (`--ngram-mode residual`, see `ngram.Residual`).

A memory counted over a text is far surer of that text than of new text (a
7-gram seen once predicts its own next character with probability near
1 - discount), so a training position must never see a memory that counted
it: the training text is cut into blocks, and a position in block k sees the
memory of the other blocks' positions (cross-fitted counts, made by taking
block k's grams away from all of them, see `ngram.Grams`). The validation
text sees the memory of the training text, as a new text sees the saved
model's.

The more blocks, the closer each block's memory is to the one the model
file keeps, and the closer training's prior is to the one it is used with
(`benchmarks/quality.py` logs both). Measured on *Pride and Prejudice*
(the last tenth held out): the words' trigram prior scored 4.688 nats on
the training text with 5 blocks, 4.615 with 20 against 4.484 on the
validation text; the characters' 7-gram 1.228 with 5, 1.206 with 20
against 1.202. The memories are all held while training, so their number
is capped by `PRIOR_BYTES`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..model.ngram import NgramModel

BLOCKS = 20  # cross-fitting blocks of the training text, at most
MIN_BLOCKS = 5  # and at least, whatever the memory's size
PRIOR_BYTES = 2**30  # what the blocks' memories may hold together


def blocks_for(memory_bytes: int) -> int:
    """How many cross-fitting blocks a memory of `memory_bytes` gets."""
    return int(np.clip(PRIOR_BYTES // max(memory_bytes, 1), MIN_BLOCKS, BLOCKS))


class Prior:
    """For windows of `ids`, each target's log-probability distribution
    under the memory that did not count it: `prior(window_starts)` gives
    float32 (windows, seq_len, vocab_size), the targets of a window that
    starts at s being ids s + 1 .. s + seq_len (as `data` cuts them)."""

    def __init__(
        self,
        ids: np.ndarray,
        document_starts: np.ndarray,
        memories: Sequence[NgramModel],
        edges: Sequence[int],
        seq_len: int,
    ) -> None:
        """Args:
        ids: the text's ids.
        document_starts: sorted positions where each file (or item) begins;
            a position is read in the last one at or before it.
        memories: memory k scores the positions edges[k] .. edges[k+1] - 1.
        edges: len(memories) + 1 increasing positions, from 0.
        seq_len: the windows' length.
        """
        self.ids = np.asarray(ids, dtype=np.int64)
        self.document_starts = np.asarray(document_starts, dtype=np.int64)
        self.memories, self.edges = list(memories), np.asarray(edges)
        self.seq_len = seq_len
        self.vocab_size = self.memories[0].vocab_size

    def __call__(self, window_starts: np.ndarray) -> np.ndarray:
        steps = np.arange(1, self.seq_len + 1)
        positions = (np.asarray(window_starts)[:, None] + steps).ravel()
        out = np.empty((len(positions), self.vocab_size), dtype=np.float32)
        for memory, inside in self._blocks(positions):
            contexts = memory.contexts_at(
                self.ids, positions[inside], self._starts(positions[inside])
            )
            out[inside], _ = memory.log_distributions(contexts)
        return out.reshape(len(window_starts), self.seq_len, self.vocab_size)

    def cross_entropy(self, positions: np.ndarray) -> float:
        """Mean -log P of the tokens at `positions` as training sees them."""
        total = 0.0
        for memory, inside in self._blocks(positions):
            p, _ = memory.probabilities_at(
                self.ids, positions[inside], self._starts(positions[inside])
            )
            total -= float(np.log(p).sum())
        return total / max(len(positions), 1)

    def _blocks(self, positions: np.ndarray):
        block = np.searchsorted(self.edges, positions, side="right") - 1
        block = np.clip(block, 0, len(self.memories) - 1)
        for k, memory in enumerate(self.memories):
            inside = block == k
            if inside.any():
                yield memory, inside

    def _starts(self, positions: np.ndarray) -> np.ndarray:
        """Where each position's file or item begins (the position itself
        before the first one: read from the start of the text)."""
        at = np.searchsorted(self.document_starts, positions, side="right") - 1
        found = self.document_starts[np.maximum(at, 0)]
        return np.where(at >= 0, found, positions)
