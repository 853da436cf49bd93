"""Interpolated Kneser-Ney trigram model: the classical baseline that a neural
language model has to beat. Written for textgen's quality benchmark.

Follows Chen & Goodman (1998): absolute discounting at every order with the
discount estimated from count-of-counts, lower orders built from continuation
counts (how many distinct words precede), and the unigram level interpolated
with the uniform distribution, so every vocabulary word (`<unk>` included)
has a probability.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

START = "<s>"


def _discount(counts: Counter) -> float:
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    return n1 / (n1 + 2 * n2) if n1 else 0.75


class KneserNeyTrigram:
    """P(w | u, v) from training tokens over a fixed vocabulary."""

    def __init__(self, tokens: Sequence[str], vocabulary_size: int) -> None:
        """Args:
        tokens: training text, already mapped to the vocabulary (rare words
            replaced by `<unk>` the way the neural model sees them).
        vocabulary_size: number of words the model predicts over.
        """
        padded = [START, START, *tokens]
        self.vocabulary_size = vocabulary_size
        self.trigrams = Counter(zip(padded, padded[1:], padded[2:], strict=False))
        self.context_total: Counter = Counter()  # c(u, v, .)
        self.context_types: Counter = Counter()  # N1+(u, v, .)
        # Middle order from continuation counts: N1+(. v w).
        self.middle = Counter()
        for (u, v, w), count in self.trigrams.items():
            self.context_total[u, v] += count
            self.context_types[u, v] += 1
            self.middle[v, w] += 1
        self.middle_total: Counter = Counter()  # N1+(. v .)
        self.middle_types: Counter = Counter()  # N1+(v .) among continuation bigrams
        for (v, _w), count in self.middle.items():
            self.middle_total[v] += count
            self.middle_types[v] += 1
        # Lowest order: N1+(. w) over bigram types.
        self.unigram: Counter = Counter(w for (_v, w) in self.middle)
        self.unigram_total = sum(self.unigram.values())
        self.d3 = _discount(self.trigrams)
        self.d2 = _discount(self.middle)
        self.d1 = _discount(self.unigram)

    def unigram_probability(self, w: str) -> float:
        seen = len(self.unigram)
        floor = self.d1 * seen / self.unigram_total / self.vocabulary_size
        return max(self.unigram[w] - self.d1, 0) / self.unigram_total + floor

    def bigram_probability(self, v: str, w: str) -> float:
        total = self.middle_total[v]
        lower = self.unigram_probability(w)
        if not total:
            return lower
        backoff = self.d2 * self.middle_types[v] / total
        return max(self.middle[v, w] - self.d2, 0) / total + backoff * lower

    def probability(self, u: str, v: str, w: str) -> float:
        """P(w | u, v), interpolated with the lower orders."""
        total = self.context_total[u, v]
        lower = self.bigram_probability(v, w)
        if not total:
            return lower
        backoff = self.d3 * self.context_types[u, v] / total
        return max(self.trigrams[u, v, w] - self.d3, 0) / total + backoff * lower

    def cross_entropy(self, tokens: Sequence[str]) -> float:
        """Mean negative log-probability in nats per token of a text."""
        context = [START, START]
        total = 0.0
        for w in tokens:
            total -= math.log(self.probability(context[-2], context[-1], w))
            context.append(w)
        return total / len(tokens)
