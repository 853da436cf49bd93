"""Does the n-gram memory make a model recite? Trains on a book within a
budget (word level, the defaults), then writes 1,000 words at the default
temperature with and without the memory mixed in (the same random seeds) and
reports, for each, the longest run copied from the training text (the
model's own fingerprint, as `generate -v` reports it) and the share of the
generated 8-word sequences that occur in the training text (exactly).
Prints one JSON object.

    python benchmarks/copying.py [--corpus PATH] [--minutes 3] [--words 1000]
        [--draws 5]

With `--draws K` the 1,000 words are drawn K times (random seeds 7, 8, ...)
from the one trained model: each figure is the median of the K draws, with
its range.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import SHARED

SEEDS = ["", "the", "it was", "and then", "i", "she said"]


def copied_share(words: list[str], training: set[tuple[str, ...]], n: int = 8) -> float:
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return sum(g in training for g in grams) / len(grams) if grams else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "moby_dick.txt")
    parser.add_argument("--minutes", type=float, default=3)
    parser.add_argument("--words", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=5, help="of --words each")
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"corpus not found: {args.corpus} (pass --corpus)")
    from textgen.config import ModelConfig, TrainConfig
    from textgen.generate import Generator
    from textgen.sampling import SamplingSettings
    from textgen.sizing import PLANNED
    from textgen.tokens import tokenize
    from textgen.train import train

    with tempfile.TemporaryDirectory() as folder:
        model = train(
            [args.corpus],
            Path(folder) / "m.keras",
            ModelConfig(),
            TrainConfig(max_minutes=args.minutes, seed=1),
            log=lambda line: print(line, file=sys.stderr),
            planned=PLANNED,
        )
    tokens = tokenize(args.corpus.read_text(encoding="utf-8"), model.tokenizer_settings)
    known = model.vocabulary.word_to_id
    words = [w if w in known else "<unk>" for w in tokens]
    training = {tuple(words[i : i + 8]) for i in range(len(words) - 7)}
    from textgen.originality import Fingerprint

    fingerprint = Fingerprint.from_config(model.record["fingerprint"])
    each = -(-args.words // len(SEEDS))
    report = {"corpus": args.corpus.name, "minutes": args.minutes}
    for name, ngram in (("network_alone", False), ("mixed", True)):
        generator = Generator(model, ngram=ngram)
        longest, shares = [], []
        for draw in range(args.draws):
            samples = generator.sample(
                SEEDS,
                [SamplingSettings()] * len(SEEDS),
                length=each,
                random_seed=7 + draw,
            )
            longest.append(
                max(fingerprint.longest_copied_run(s.words) for s in samples)
            )
            total = max(sum(len(s.words) for s in samples), 1)
            shares.append(
                sum(copied_share(s.words, training) * len(s.words) for s in samples)
                / total
            )
        report[name] = {
            "longest_copied_run": statistics.median(longest),
            "longest_copied_run_each_draw": longest,
            "copied_8gram_share": round(statistics.median(shares), 4),
            "copied_8gram_share_range": [round(min(shares), 4), round(max(shares), 4)],
        }
    alone, mixed = report["network_alone"], report["mixed"]
    report["longest_run_mixed_vs_alone"] = round(
        mixed["longest_copied_run"] / max(alone["longest_copied_run"], 1), 2
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
