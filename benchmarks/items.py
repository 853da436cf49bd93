"""Item models (`--documents lines`) against a count-based baseline, and how
new their samples are. Prints one JSON object.

Two lists are made on the fly from a book (by default
`../shared/corpora/moby_dick.txt`), each split at random (fixed seed) into
90% training and 10% test items:

1. `words`: every distinct word of the book, lower-cased, one per line,
   trained at character level ("English-like words that are not in the book");
2. `sentences`: the book's sentences, one per line, trained at word level.

For each: test cross-entropy per token, the end token included, every item
scored from a fresh start, for textgen (`--max-minutes` budget, the planner
choosing the rest) and for an interpolated Kneser-Ney model counted on the
same training items (a character 5-gram, a word trigram); then, of
`--samples` samples with and without `--novel`, the share that are training
items, test items (real items the model never saw) and neither, the share
that are well-formed (only letters; ending with sentence punctuation), and
samples per second (median and range of 3 draws of all the samples;
`--samples 0`: none drawn). One row per list, `--modes` mode (the
`--ngram-mode` trained, side by side) and training `--seed`; the items are
split by `--split-seed`, the same for every row.

    python benchmarks/items.py [--corpus PATH] [--minutes 10] [--samples 1000]
        [--lists words sentences] [--seed 1 2 3] [--modes residual mixture]
        [--split-seed 1] [--units N --dropout F] [--carry-state on|off]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import SHARED
from ngram import KneserNey

# What each list is: its level, the baseline's order, how long a sample may
# get, and what a well-formed item looks like.
LISTS = {
    "words": dict(level="char", order=5, length=40),
    "sentences": dict(level="word", order=3, length=150),
}


def distinct_words(text: str) -> list[str]:
    """Every distinct word of the text, lower-cased, letters only."""
    return sorted(set(re.findall(r"[a-z]+", text.lower())))


def sentences(text: str) -> list[str]:
    """The text's sentences (NLTK's Punkt, as textgen splits them), each on
    one line, paragraph by paragraph."""
    from textgen.text.tokens import _nltk

    splitter = _nltk()[0]
    found = []
    for paragraph in re.split(r"\n[ \t]*\n", text):
        paragraph = " ".join(paragraph.split())
        found += [s for s in splitter.tokenize(paragraph) if s]
    return found


def well_formed(name: str, text: str) -> bool:
    if name == "words":
        return text.isalpha() and text.isascii()
    return bool(re.search(r"[.!?][\"')\]]*$", text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "moby_dick.txt")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--lists", nargs="+", choices=list(LISTS), default=list(LISTS))
    parser.add_argument("--seed", type=int, nargs="+", default=[1])
    parser.add_argument("--split-seed", type=int, default=1)
    parser.add_argument(
        "--modes", nargs="+", choices=["residual", "mixture"], default=["mixture"]
    )
    parser.add_argument("--units", type=int, help="override the planned units")
    parser.add_argument("--dropout", type=float, help="override the planned dropout")
    parser.add_argument(
        "--carry-state",
        choices=["on", "off"],
        help="override the level's default (TrainConfig.carry_state)",
    )
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"corpus not found: {args.corpus} (pass --corpus)")
    text = args.corpus.read_text(encoding="utf-8")
    rows = []
    for name in args.lists:
        items = distinct_words(text) if name == "words" else sentences(text)
        for seed in args.seed:
            for mode in args.modes:
                rows.append(measure(args, name, items, seed, mode))
                print("ROW " + json.dumps(rows[-1]), file=sys.stderr)
    print(json.dumps({"corpus": args.corpus.name, "rows": rows}, indent=2))


def measure(
    args: argparse.Namespace, name: str, items: list[str], seed: int, mode: str
) -> dict:
    from textgen.inference.contract import SamplingSettings
    from textgen.inference.evaluate import evaluate
    from textgen.inference.generate import Generator
    from textgen.model.config import ModelConfig, TrainConfig
    from textgen.model.levels import level_policy
    from textgen.text.tokens import END, normalise_item, tokenize
    from textgen.text.vocab import UNK
    from textgen.training.sizing import PLANNED
    from textgen.training.train import train

    spec = LISTS[name]
    carry = None if args.carry_state is None else args.carry_state == "on"
    given = {k: getattr(args, k) for k in ("units", "dropout")}
    shape = {k: v for k, v in given.items() if v is not None}
    shape["tie_embeddings"] = level_policy(spec["level"]).tied_by_default
    items = [normalise_item(item) for item in items]
    items = [item for item in items if item and "\n" not in item]
    random.Random(args.split_seed).shuffle(items)
    n_test = len(items) // 10
    test_items, train_items = items[:n_test], items[n_test:]
    with tempfile.TemporaryDirectory() as folder:
        train_file = Path(folder) / f"{name}.txt"
        test_file = Path(folder) / f"{name}-test.txt"
        train_file.write_text("\n".join(train_items) + "\n", encoding="utf-8")
        test_file.write_text("\n".join(test_items) + "\n", encoding="utf-8")
        started = time.perf_counter()
        model = train(
            [train_file],
            Path(folder) / "m.keras",
            dataclasses.replace(ModelConfig(), **shape),
            TrainConfig(
                max_minutes=args.minutes,
                seed=seed,
                level=spec["level"],
                ngram_mode=mode,
                documents="lines",
                carry_state=carry,
            ),
            log=lambda line: print(line, file=sys.stderr),  # stdout: the JSON
            planned=[p for p in PLANNED if p not in shape],
        )
        minutes = (time.perf_counter() - started) / 60
        scored = evaluate(model, [test_file])

    # The baseline counts the same training items in textgen's vocabulary.
    settings = model.tokenizer_settings
    known = model.vocabulary.word_to_id

    def mapped(item: str) -> list[str]:
        return [t if t in known else UNK for t in tokenize(item, settings)] + [END]

    ngram = KneserNey(
        [],
        len(model.vocabulary) - 1,
        spec["order"],
        items=[mapped(i) for i in train_items],
    )
    baseline = ngram.items_cross_entropy([mapped(i) for i in test_items])

    def key(tokens: list[str]) -> tuple[str, ...]:
        return tuple(tokens)

    train_keys = {key(tokenize(i, settings)) for i in train_items}
    test_keys = {key(tokenize(i, settings)) for i in test_items} - train_keys
    generator = Generator(model)
    samples = {}
    for novel in (False, True) if args.samples else ():
        rates = []
        for _ in range(3):  # the same draws each time; the speed, median of 3
            started = time.perf_counter()
            drawn = generator.sample(
                [""] * args.samples,
                [SamplingSettings()] * args.samples,
                length=spec["length"],
                random_seed=seed,
                novel=novel,
            )
            rates.append(len(drawn) / (time.perf_counter() - started))
        keys = [key(list(s.words)) for s in drawn]

        def share(hits: Iterable[bool], total: int = len(drawn)) -> float:
            return round(sum(hits) / total, 4)

        samples["novel" if novel else "plain"] = {
            "training_items": share(k in train_keys for k in keys),
            "test_items": share(k in test_keys for k in keys),
            "neither": share(k not in train_keys and k not in test_keys for k in keys),
            "well_formed": share(well_formed(name, s.text) for s in drawn),
            "ended_by_end_token": share(s.stopped_by == "end" for s in drawn),
            "rejected_draws": sum(s.rejected for s in drawn),
            "samples_per_second": round(statistics.median(rates), 1),
            "samples_per_second_range": [round(min(rates), 1), round(max(rates), 1)],
            "examples": [s.text for s in drawn[:8]],
        }
    record = model.record
    network = scored.network_cross_entropy  # None for a residual model
    return {
        "list": name,
        "mode": mode,
        "seed": seed,
        "level": spec["level"],
        "train_items": len(train_items),
        "test_items": len(test_items),
        "textgen_nats_per_token": round(scored.cross_entropy, 4),
        "textgen_bits_per_character": round(scored.bits_per_character, 4),
        # The mixture's parts, alone (None: no n-gram memory).
        "network_alone_nats_per_token": network and round(network, 4),
        "ngram_memory_nats_per_token": scored.ngram_cross_entropy
        and round(scored.ngram_cross_entropy, 4),
        f"kneser_ney_{spec['order']}gram_nats_per_token": round(baseline, 4),
        "textgen_vs_baseline": round(scored.cross_entropy / baseline, 3),
        "textgen_training_minutes": round(minutes, 1),
        "textgen_epochs": record["epochs_run"],
        "plan": record.get("plan"),
        "samples": samples,
    }


if __name__ == "__main__":
    main()
