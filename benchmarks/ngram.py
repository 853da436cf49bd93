"""Interpolated Kneser-Ney n-gram models: the classical baselines that a neural
language model has to beat (a word trigram; a character 7-gram). Written for
textgen's quality benchmarks.

Follows Chen & Goodman (1998): absolute discounting at every order, lower
orders built from continuation counts (how many distinct tokens precede),
and the unigram level interpolated with the uniform distribution, so every
vocabulary token (`<unk>` included) has a probability. The discounts are
*modified* Kneser-Ney's by default (three per order, for grams seen once,
twice and three times or more, from the count-of-counts n1..n4);
`discounting="one"` gives one per order (n1 / (n1 + 2 n2)), `"fixed"` 0.75.

    python benchmarks/ngram.py [--corpus PATH] [--order-word 3] [--order-char 7]

prints, as JSON, both baselines' held-out cross-entropy on the last 10% of a
corpus, tokenized as textgen tokenizes it at word and at character level.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

START = "<s>"


def _discounts(counts: Counter, discounting: str) -> tuple[float, float, float]:
    """D1, D2, D3+ of an order with these counts."""
    n = [sum(1 for c in counts.values() if c == j) for j in range(5)]
    one = n[1] / (n[1] + 2 * n[2]) if n[1] else 0.75
    if discounting == "fixed":
        return (0.75, 0.75, 0.75)
    if discounting == "one":
        return (one, one, one)
    result = []
    for j in (1, 2, 3):
        d = j - (j + 1) * one * n[j + 1] / n[j] if n[j] and n[j + 1] else one
        result.append(d if 0 < d < j else one)
    return tuple(result)


class KneserNey:
    """P(w | the previous order - 1 tokens) from training tokens over a fixed
    vocabulary; keys are tuples of tokens."""

    def __init__(
        self,
        tokens: Sequence[str],
        vocabulary_size: int,
        order: int = 3,
        *,
        items: Sequence[Sequence[str]] | None = None,
        discounting: str = "modified",
    ) -> None:
        """Args:
        tokens: training text, already mapped to the vocabulary (rare tokens
            replaced by `<unk>` the way the neural model sees them).
        vocabulary_size: number of tokens the model predicts over.
        order: n, the longest n-gram counted.
        items: instead of `tokens`, separate texts (items of a list, each
            ending with its end token), each counted from a fresh start.
        discounting: "modified", "one" or "fixed" (see the module's text).
        """
        self.order, self.vocabulary_size = order, vocabulary_size
        top: Counter = Counter()
        for text in [tokens] if items is None else items:
            padded = [START] * (order - 1) + list(text)
            top.update(zip(*(padded[i:] for i in range(order)), strict=False))
        # counts[k]: n-grams of length k + 1; the top order holds raw counts,
        # each lower one continuation counts N1+(. h w) from the order above.
        self.counts: list[Counter] = [Counter() for _ in range(order)]
        self.counts[order - 1] = top
        for k in range(order - 1, 0, -1):
            lower = self.counts[k - 1]
            for gram in self.counts[k]:
                lower[gram[1:]] += 1
        self.discounts = [_discounts(c, discounting) for c in self.counts]
        # Per order and context: total count, and the mass the discounts of
        # its grams leave for the order below.
        self.totals: list[Counter] = [Counter() for _ in range(order)]
        self.masses: list[Counter] = [Counter() for _ in range(order)]
        for k in range(order):
            for gram, count in self.counts[k].items():
                self.totals[k][gram[:-1]] += count
                self.masses[k][gram[:-1]] += self._discount(k, count)

    def _discount(self, k: int, count: int) -> float:
        return self.discounts[k][min(count, 3) - 1] if count else 0.0

    def probability_of(self, context: tuple[str, ...], w: str) -> float:
        """P(w | context), the context being the last order - 1 tokens (or
        fewer at the start), interpolated with every lower order."""
        unigrams = self.counts[0]
        total = self.totals[0][()]
        floor = self.masses[0][()] / total / self.vocabulary_size
        count = unigrams[(w,)]
        p = (count - self._discount(0, count)) / total + floor
        for k in range(1, self.order):
            if k > len(context):
                break
            h = context[len(context) - k :]
            total = self.totals[k][h]
            if not total:
                break  # no longer context was seen either
            count = self.counts[k][(*h, w)]
            p = (count - self._discount(k, count)) / total + self.masses[k][
                h
            ] / total * p
        return p

    def cross_entropy(self, tokens: Sequence[str]) -> float:
        """Mean negative log-probability in nats per token of a text read in
        order from the start (the context carried across the whole text)."""
        return self._total(tokens) / len(tokens)

    def items_cross_entropy(self, items: Sequence[Sequence[str]]) -> float:
        """`cross_entropy` over items, each read from a fresh start."""
        return sum(self._total(item) for item in items) / sum(map(len, items))

    def _total(self, tokens: Sequence[str]) -> float:
        context = [START] * (self.order - 1)
        total = 0.0
        for w in tokens:
            total -= math.log(self.probability_of(tuple(context), w))
            context.append(w)
            del context[0]
        return total


class KneserNeyTrigram(KneserNey):
    """The word trigram baseline: `KneserNey` of order 3."""

    def __init__(self, tokens: Sequence[str], vocabulary_size: int) -> None:
        super().__init__(tokens, vocabulary_size, order=3)

    def probability(self, u: str, v: str, w: str) -> float:
        """P(w | u, v), interpolated with the lower orders."""
        return self.probability_of((u, v), w)


def held_out_cross_entropy(
    text: str, level: str, order: int, test_fraction: float = 0.1
) -> dict:
    """Train a Kneser-Ney model of `order` on the first part of `text`,
    tokenized as textgen does at `level`, and score the last `test_fraction`
    (cut at a paragraph break). Tokens seen fewer than twice in training
    (words) or never (characters) are `<unk>`, as in textgen's vocabulary."""
    import time

    from common import split_text

    from textgen.text.tokens import TokenizerSettings, tokenize

    learn, test = split_text(text, test_fraction)
    settings = TokenizerSettings(lowercase=level == "word", level=level)
    learn_tokens, test_tokens = tokenize(learn, settings), tokenize(test, settings)
    counts = Counter(learn_tokens)
    keep = {t for t, c in counts.items() if c >= (2 if level == "word" else 1)}
    mapped = [t if t in keep else "<unk>" for t in learn_tokens]
    start = time.perf_counter()
    model = KneserNey(mapped, len(keep) + 1, order)
    seconds = time.perf_counter() - start
    ce = model.cross_entropy([t if t in keep else "<unk>" for t in test_tokens])
    return {
        "level": level,
        "order": order,
        "train_tokens": len(learn_tokens),
        "test_tokens": len(test_tokens),
        "cross_entropy_nats": round(ce, 4),
        "perplexity": round(math.exp(ce), 2),
        "counting_seconds": round(seconds, 1),
    }


def main() -> None:
    import argparse
    import json
    import sys
    from pathlib import Path

    from common import SHARED as shared

    parser = argparse.ArgumentParser(description="Kneser-Ney baselines")
    parser.add_argument("--corpus", type=Path, default=shared / "moby_dick.txt")
    parser.add_argument("--order-word", type=int, default=3)
    parser.add_argument("--order-char", type=int, default=7)
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"corpus not found: {args.corpus} (pass --corpus)")
    text = args.corpus.read_text(encoding="utf-8")
    print(
        json.dumps(
            {
                "corpus": args.corpus.name,
                "word": held_out_cross_entropy(text, "word", args.order_word),
                "char": held_out_cross_entropy(text, "char", args.order_char),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
