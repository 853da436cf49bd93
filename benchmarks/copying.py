"""Does the n-gram memory make a model recite? Trains on a book within a
budget (word level, the defaults) once per `--modes` mode, then writes
1,000 words at the default temperature from each (the same random seeds)
and reports, for each, the longest run copied from the training text (the
model's own fingerprint, as `generate -v` reports it) and the share of the
generated 8-word sequences that occur in the training text (exactly).
Prints one JSON object.

- `mixed`: the network mixed with its memory (`--ngram-mode mixture`),
  beside `network_alone`, the same model's network without it;
- `residual`: the network trained on top of its memory, beside
  `plain_network`, a network trained with no memory (`--ngram-order 0`) for
  the same minutes and seed (a residual network is no model alone).

    python benchmarks/copying.py [--corpus PATH] [--minutes 3] [--words 1000]
        [--draws 5] [--modes mixture residual]

With `--draws K` the 1,000 words are drawn K times (random seeds 7, 8, ...)
from each trained model: each figure is the median of the K draws, with
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
    parser.add_argument(
        "--modes", nargs="+", choices=["mixture", "residual"], default=["mixture"]
    )
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"corpus not found: {args.corpus} (pass --corpus)")
    from textgen.generate import Generator
    from textgen.originality import Fingerprint
    from textgen.tokens import tokenize

    runs = {}  # name: (model, uses its memory)
    if "mixture" in args.modes:
        model = _train(args, ngram_mode="mixture")
        runs["network_alone"], runs["mixed"] = (model, False), (model, True)
    if "residual" in args.modes:
        runs["plain_network"] = (_train(args, ngram_order=0), False)
        runs["residual"] = (_train(args, ngram_mode="residual"), True)
    report = {"corpus": args.corpus.name, "minutes": args.minutes}
    for name, (model, ngram) in runs.items():
        tokens = tokenize(
            args.corpus.read_text(encoding="utf-8"), model.tokenizer_settings
        )
        known = model.vocabulary.word_to_id
        words = [w if w in known else "<unk>" for w in tokens]
        training = {tuple(words[i : i + 8]) for i in range(len(words) - 7)}
        fingerprint = Fingerprint.from_config(model.record["fingerprint"])
        report[name] = _draws(
            Generator(model, ngram=ngram), fingerprint, training, args
        )
    for name, alone in (("mixed", "network_alone"), ("residual", "plain_network")):
        if name in report:
            report[f"longest_run_{name}_vs_{alone}"] = round(
                report[name]["longest_copied_run"]
                / max(report[alone]["longest_copied_run"], 1),
                2,
            )
    print(json.dumps(report, indent=2))


def _train(args: argparse.Namespace, **settings):
    from textgen.config import ModelConfig, TrainConfig
    from textgen.sizing import PLANNED
    from textgen.train import train

    with tempfile.TemporaryDirectory() as folder:
        return train(
            [args.corpus],
            Path(folder) / "m.keras",
            ModelConfig(),
            TrainConfig(max_minutes=args.minutes, seed=1, **settings),
            log=lambda line: print(line, file=sys.stderr),
            planned=PLANNED,
        )


def _draws(generator, fingerprint, training: set, args: argparse.Namespace) -> dict:
    """The longest copied run and the copied 8-gram share of each draw."""
    from textgen.sampling import SamplingSettings

    each = -(-args.words // len(SEEDS))
    longest, shares = [], []
    for draw in range(args.draws):
        samples = generator.sample(
            SEEDS, [SamplingSettings()] * len(SEEDS), length=each, random_seed=7 + draw
        )
        longest.append(max(fingerprint.longest_copied_run(s.words) for s in samples))
        total = max(sum(len(s.words) for s in samples), 1)
        shares.append(
            sum(copied_share(s.words, training) * len(s.words) for s in samples) / total
        )
    return {
        "longest_copied_run": statistics.median(longest),
        "longest_copied_run_each_draw": longest,
        "copied_8gram_share": round(statistics.median(shares), 4),
        "copied_8gram_share_range": [round(min(shares), 4), round(max(shares), 4)],
    }


if __name__ == "__main__":
    main()
