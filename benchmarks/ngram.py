"""Interpolated Kneser-Ney n-gram models: the classical baselines that a neural
language model has to beat (a word trigram; a character 7-gram). Written for
textgen's quality benchmarks.

Follows Chen & Goodman (1998): absolute discounting at every order with the
discount estimated from count-of-counts, lower orders built from continuation
counts (how many distinct tokens precede), and the unigram level interpolated
with the uniform distribution, so every vocabulary token (`<unk>` included)
has a probability.

    python benchmarks/ngram.py [--corpus PATH] [--order-word 3] [--order-char 7]

prints, as JSON, both baselines' held-out cross-entropy on the last 10% of a
corpus, tokenized as textgen tokenizes it at word and at character level.
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
    ) -> None:
        """Args:
        tokens: training text, already mapped to the vocabulary (rare tokens
            replaced by `<unk>` the way the neural model sees them).
        vocabulary_size: number of tokens the model predicts over.
        order: n, the longest n-gram counted.
        items: instead of `tokens`, separate texts (items of a list, each
            ending with its end token), each counted from a fresh start.
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
        # Per order and context: total count and distinct continuations.
        self.totals: list[Counter] = [Counter() for _ in range(order)]
        self.types: list[Counter] = [Counter() for _ in range(order)]
        for k in range(order):
            for gram, count in self.counts[k].items():
                self.totals[k][gram[:-1]] += count
                self.types[k][gram[:-1]] += 1
        self.discounts = [_discount(c) for c in self.counts]

    def probability_of(self, context: tuple[str, ...], w: str) -> float:
        """P(w | context), the context being the last order - 1 tokens (or
        fewer at the start), interpolated with every lower order."""
        unigrams, d = self.counts[0], self.discounts[0]
        total = self.totals[0][()]
        floor = d * self.types[0][()] / total / self.vocabulary_size
        p = max(unigrams[(w,)] - d, 0) / total + floor
        for k in range(1, self.order):
            if k > len(context):
                break
            h = context[len(context) - k :]
            total = self.totals[k][h]
            if not total:
                break  # no longer context was seen either
            d = self.discounts[k]
            p = (
                max(self.counts[k][(*h, w)] - d, 0) / total
                + d * self.types[k][h] / total * p
            )
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

    from textgen.tokens import TokenizerSettings, tokenize

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
