"""Do labels steer? A conditional word model of sentences labelled by the
book they come from, and a classifier that knows the books. Prints one JSON
object.

The labelled set: sentences (5 to 40 words) of *Moby-Dick* and *Pride and
Prejudice* (`../shared/corpora`; the third file there is four chapters of
the first book, so two labels), `--sentences` of each, as JSON Lines
records {"text", "book"}; the last tenth of each book's sentences is held
out. textgen trains on the rest with `--label-field book --documents lines
--max-minutes M` (words).

- **Steering**: `--samples` generated per label (`generate --label`) are
  assigned to a book by a naive-Bayes classifier (add-one unigram counts per
  book, trained on the same training sentences); the confusion matrix and
  the share assigned to the label asked for (chance: one half). The
  classifier's accuracy on the held-out real sentences is its ceiling.
- **Right and wrong label**: the held-out sentences' cross-entropy given
  their own label, and given the other book's (`evaluate`'s by-label
  figures on the records relabelled).

    python benchmarks/labels.py [--minutes 3] [--sentences 4000]
        [--samples 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import SHARED

BOOKS = {"moby": "moby_dick.txt", "pride": "pride_and_prejudice.txt"}


def sentences(book: str, most: int, rng: random.Random) -> list[str]:
    from nltk.tokenize.punkt import PunktSentenceTokenizer  # textgen's splitter

    text = (SHARED / BOOKS[book]).read_text(encoding="utf-8")
    split = PunktSentenceTokenizer().tokenize
    found = [" ".join(s.split()) for p in text.split("\n\n") for s in split(p)]
    found = [s for s in found if 5 <= len(s.split()) <= 40]
    rng.shuffle(found)
    return found[:most]


def words(text: str) -> list[str]:
    from textgen.text.tokens import TokenizerSettings, tokenize

    return tokenize(text, TokenizerSettings())


class NaiveBayes:
    """Add-one unigram counts per label."""

    def __init__(self, labelled: dict[str, list[str]]) -> None:
        self.counts = {
            b: Counter(w for s in ss for w in words(s)) for b, ss in labelled.items()
        }
        vocabulary = set().union(*self.counts.values())
        self.size = len(vocabulary) + 1
        self.totals = {b: sum(c.values()) for b, c in self.counts.items()}

    def label(self, text: str) -> str:
        tokens = words(text)

        def score(book: str) -> float:
            counts, total = self.counts[book], self.totals[book]
            return sum(math.log((counts[w] + 1) / (total + self.size)) for w in tokens)

        return max(self.counts, key=score)


def write_records(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text(
        "".join(json.dumps({"text": t, "book": b}) + "\n" for t, b in rows),
        encoding="utf-8",
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3)
    parser.add_argument("--sentences", type=int, default=4000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    train, held = {}, {}
    for book in BOOKS:
        found = sentences(book, args.sentences, rng)
        cut = len(found) * 9 // 10
        train[book], held[book] = found[:cut], found[cut:]
    classifier = NaiveBayes(train)
    ceiling = {
        b: sum(classifier.label(s) == b for s in ss) / len(ss) for b, ss in held.items()
    }
    results: dict = {
        "sentences_per_book": args.sentences,
        "classifier_on_real": ceiling,
    }
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        rows = [(s, b) for b, ss in train.items() for s in ss]
        rng.shuffle(rows)
        corpus = write_records(folder / "train.jsonl", rows)
        model = folder / "books.keras"
        subprocess.run(
            [sys.executable, "-m", "textgen", "train", str(corpus), "--label-field",
             "book", "--documents", "lines", "--max-minutes", str(args.minutes),
             "-o", str(model), "--no-plot", "--random-seed", str(args.seed)],
            check=True, capture_output=True,
        )  # fmt: skip
        confusion = {}
        for book in BOOKS:
            out = subprocess.run(
                [sys.executable, "-m", "textgen", "generate", "-m", str(model),
                 "--label", book, "--num-samples", str(args.samples),
                 "--random-seed", str(args.seed), "--format", "jsonl"],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            texts = [json.loads(line)["text"] for line in out.splitlines()]
            confusion[book] = dict(Counter(classifier.label(t) for t in texts))
        results["confusion_asked_by_assigned"] = confusion
        results["assigned_to_the_label_asked"] = {
            b: round(confusion[b].get(b, 0) / args.samples, 3) for b in BOOKS
        }
        from textgen.inference.evaluate import evaluate
        from textgen.model.file import read_model

        read = read_model(model)
        other = dict(zip(BOOKS, reversed(list(BOOKS)), strict=True))
        right = evaluate(
            read,
            [
                write_records(
                    folder / "right.jsonl",
                    [(s, b) for b, ss in held.items() for s in ss],
                )
            ],
        )
        wrong = evaluate(
            read,
            [
                write_records(
                    folder / "wrong.jsonl",
                    [(s, other[b]) for b, ss in held.items() for s in ss],
                )
            ],
        )
        results["held_out_nats_per_word"] = {
            b: {
                "right_label": round(right.by_label[b][0], 4),
                "wrong_label": round(wrong.by_label[other[b]][0], 4),
            }
            for b in BOOKS
        }
        config, record = read.model_config, read.record or {}
        results["model"] = {
            "cell": config.cell,
            "layers": config.layers,
            "units": config.units,
            "vocabulary": len(read.vocabulary),
            "epochs": record.get("epochs_run"),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
