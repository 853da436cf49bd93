"""How the n-gram memory discounts its counts, measured: held-out
cross-entropy of textgen's memory (`textgen/model/ngram.py`, the same numbers as
`benchmarks/ngram.py`'s reference) with each way of discounting, side by
side in one run. Prints one JSON object.

- `modified`: Chen & Goodman's modified Kneser-Ney, three discounts per
  order (grams seen once, twice, three times or more) from n1..n4;
- `one`: one discount per order, n1 / (n1 + 2 n2) (the memory before
  issue 34);
- `fixed`: 0.75 at every order.

Rows: each book's words (trigram) and characters (7-gram), the last tenth
held out from a paragraph break and the rest counted; and, from the first
book, the two item lists of `benchmarks/items.py` (distinct words as
characters, 5-gram; sentences as words, trigram; 10% of the items held out
at random), scored item by item from a fresh start, the end token included.

    python benchmarks/discounting.py [--corpora moby_dick.txt pride_and_prejudice.txt]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

from common import SHARED, split_text

WAYS = ("modified", "one", "fixed")


def _ids(tokens: list[str], index: dict[str, int]) -> list[int]:
    unknown = index["<unk>"]
    return [index.get(t, unknown) for t in tokens]


def _scores(train_docs: list[list[str]], test_docs: list[list[str]], level, order):
    """Each way's held-out cross-entropy (nats per token) over documents."""
    import numpy as np

    from textgen.model.ngram import NgramModel

    counts = Counter(t for doc in train_docs for t in doc)
    floor = 2 if level == "word" else 1
    kept = sorted(t for t, c in counts.items() if c >= floor)
    index = {t: i for i, t in enumerate(["<unk>", *kept])}
    train_ids = [np.array(_ids(d, index)) for d in train_docs]
    test_ids = [np.array(_ids(d, index)) for d in test_docs]
    row = {
        "level": level,
        "order": order,
        "train_tokens": sum(map(len, train_docs)),
        "test_tokens": sum(map(len, test_docs)),
    }
    for way in WAYS:
        started = time.perf_counter()
        model = NgramModel.count(train_ids, len(index), order, discounting=way)
        seconds = time.perf_counter() - started
        p, _ = model.probabilities_of(test_ids)
        row[way] = round(float(-np.log(p).mean()), 4)
        row[f"{way}_seconds"] = round(seconds, 2)
    row["modified_vs_one"] = round(row["modified"] / row["one"], 4)
    row["modified_vs_fixed"] = round(row["modified"] / row["fixed"], 4)
    return row


def book_rows(path: Path) -> list[dict]:
    from textgen.text.tokens import TokenizerSettings, tokenize

    learn, test = split_text(path.read_text(encoding="utf-8"), 0.1)
    rows = []
    for level, order in (("word", 3), ("char", 7)):
        settings = TokenizerSettings(lowercase=level == "word", level=level)
        rows.append(
            {
                "corpus": path.name,
                **_scores(
                    [tokenize(learn, settings)],
                    [tokenize(test, settings)],
                    level,
                    order,
                ),
            }
        )
    return rows


def item_rows(path: Path, seed: int = 1) -> list[dict]:
    from items import distinct_words, sentences

    from textgen.text.tokens import END, TokenizerSettings, normalise_item, tokenize

    text = path.read_text(encoding="utf-8")
    rows = []
    for name, found, level, order in (
        ("words", distinct_words(text), "char", 5),
        ("sentences", sentences(text), "word", 3),
    ):
        items = [normalise_item(i) for i in found]
        items = [i for i in items if i and "\n" not in i]
        random.Random(seed).shuffle(items)
        n_test = len(items) // 10
        settings = TokenizerSettings(
            lowercase=level == "word", level=level, documents="lines"
        )
        docs = [[*tokenize(i, settings), END] for i in items]
        row = _scores(docs[n_test:], docs[:n_test], level, order)
        rows.append({"corpus": f"{path.name} {name}", **row})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpora",
        nargs="+",
        default=["moby_dick.txt", "pride_and_prejudice.txt"],
        help="files, or names in ../shared/corpora",
    )
    args = parser.parse_args()
    paths = [p if p.exists() else SHARED / p.name for p in map(Path, args.corpora)]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        sys.exit(f"corpus not found: {missing[0]} (pass --corpora)")
    rows = [row for path in paths for row in book_rows(path)]
    rows += item_rows(paths[0])
    print(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
