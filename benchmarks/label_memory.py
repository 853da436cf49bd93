"""The n-gram memory of a labelled text, alone: counted label-blind (every
label's records pooled, the label seen only by the first two words' grams)
against counted under each label (textgen's: the longest grams read with
their record's label, backing off to the label-blind ones). No network, no
TensorFlow: the same counts, only the labelled order differs. Prints one
JSON object.

The labelled set is `labels.py`'s (sentences of *Moby-Dick* and *Pride and
Prejudice*, labelled by book, the last tenth of each held out; `--seed`
draws the sentences), read as items `<end> <label:book> words... <end>` in
the vocabulary `train` would make (`--min-count` 2, labels kept). For
each memory (word trigrams, as `train` counts for words):

- held-out cross-entropy (nats per word, the words and the item's end;
  the label token not scored) given each record's own label and given the
  other book's;
- steering: `--samples` sentences per label drawn from the memory alone
  (temperature 1, up to 40 words or a sentence end), each assigned to a
  book by `labels.py`'s naive-Bayes classifier; the share assigned to the
  label asked for (chance: one half).

    python benchmarks/label_memory.py [--sentences 4000] [--samples 300]
        [--seed 1 2 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics

import numpy as np
from labels import BOOKS, NaiveBayes, labelled_set, words


def counted(train: dict[str, list[str]]):
    """The vocabulary, the ids of the labels and the end, and the two
    memories of the training records."""
    from collections import Counter

    from textgen.model.ngram import NgramModel
    from textgen.text.tokens import END, is_label, label_token
    from textgen.text.vocab import Vocabulary

    counts: Counter = Counter()
    for book, texts in train.items():
        counts[label_token(book)] += len(texts)
        counts[END] += len(texts) + 1
        for text in texts:
            counts.update(words(text))
    vocabulary = Vocabulary.from_counts(counts, min_count=2, keep=is_label)
    ids = {book: vocabulary.word_to_id[label_token(book)] for book in train}
    end = vocabulary.word_to_id[END]
    items = [
        item(vocabulary, end, ids[book], text)
        for book, texts in train.items()
        for text in texts
    ]
    size = len(vocabulary)
    memories = {
        "label-blind": NgramModel.count(items, size, 3),
        "under each label": NgramModel.count(items, size, 3, labels=list(ids.values())),
    }
    return vocabulary, ids, end, memories


def item(vocabulary, end: int, label: int, text: str) -> np.ndarray:
    return np.array([end, label, *vocabulary.encode(words(text)), end])


def cross_entropy(memory, vocabulary, end: int, label: int, texts: list[str]) -> float:
    """Nats per token of the texts read under `label` (from the first word)."""
    items = [item(vocabulary, end, label, text) for text in texts]
    lengths = np.array([len(i) for i in items])
    firsts = np.cumsum(lengths) - lengths
    ids = np.concatenate(items)
    spans = zip(firsts, lengths, strict=True)
    positions = np.concatenate([np.arange(a + 2, a + n) for a, n in spans])
    starts = np.repeat(firsts, lengths)[positions]
    p, _ = memory.probabilities_at(ids, positions, starts)
    return float(-np.log(p).mean())


def steering(memory, vocabulary, ids, end, classifier, samples, rng) -> dict:
    """The share of samples per label the classifier assigns to it."""
    from textgen.model.ngram import Mixture

    reading = Mixture(memory, np.zeros(6))  # its contexts, as generation reads them
    banned = [0, 1, end, *ids.values()]
    shares = {}
    for book, label in ids.items():
        right = 0
        for _ in range(samples):
            history = [end, label]
            for _ in range(40):
                contexts = reading.contexts(np.array([history]), 0, end)
                p = memory.distributions(contexts)[0][0]
                p[banned] = 0
                drawn = int(rng.choice(len(p), p=p / p.sum()))
                history.append(drawn)
                if vocabulary.words[drawn] in {".", "!", "?"}:
                    break
            text = " ".join(vocabulary.decode(history[2:]))
            right += classifier.label(text) == book
        shares[book] = right / samples
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=4000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seed", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    runs: dict = {}
    for seed in args.seed:
        train, held = labelled_set(args.sentences, random.Random(seed))
        classifier = NaiveBayes(train)
        vocabulary, ids, end, memories = counted(train)
        for name, memory in memories.items():
            other = {"moby": ids["pride"], "pride": ids["moby"]}
            row = {
                f"{book}_{which}_label": cross_entropy(
                    memory, vocabulary, end, label, held[book]
                )
                for book in BOOKS
                for which, label in (("right", ids[book]), ("wrong", other[book]))
            }
            draws = np.random.default_rng(seed)
            shares = steering(
                memory, vocabulary, ids, end, classifier, args.samples, draws
            )
            row |= {f"{book}_steered": share for book, share in shares.items()}
            row["megabytes"] = memory.nbytes / 2**20
            for key, value in row.items():
                runs.setdefault(name, {}).setdefault(key, []).append(round(value, 4))
    summary = {
        name: {
            key: {
                "median": statistics.median(values),
                "range": [min(values), max(values)],
            }
            for key, values in figures.items()
        }
        for name, figures in runs.items()
    }
    print(json.dumps({"runs": runs, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
