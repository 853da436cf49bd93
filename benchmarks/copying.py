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

`--flatten F ...` (with `--modes residual`) measures the lever against
copying and its cost: every model trains on the book's first 90% (copying
is then counted against that text), and the residual model is also drawn
from with its memory's scales multiplied by each F (< 1 flattens what the
counts say); each variant reports its held-out cross-entropy on the last
10% (`held_out_nats`), the price of the flattening.

    python benchmarks/copying.py --modes residual --draws 10 --flatten 0.8 0.6
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

from common import SHARED, split_text

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
    parser.add_argument(
        "--flatten",
        type=float,
        nargs="+",
        default=[],
        help="also draw from the residual model with its scales times each F",
    )
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"corpus not found: {args.corpus} (pass --corpus)")
    if args.flatten and "residual" not in args.modes:
        sys.exit("--flatten scales a residual model's memory: add --modes residual")
    from textgen.inference.evaluate import evaluate_ids
    from textgen.inference.generate import Generator
    from textgen.model.ngram import Residual
    from textgen.model.originality import Fingerprint
    from textgen.text.tokens import tokenize

    text, test = args.corpus.read_text(encoding="utf-8"), ""
    if args.flatten:
        text, test = split_text(text, 0.1)
    runs = {}  # name: (model, uses its memory, the memory's scales' factor)
    if "mixture" in args.modes:
        model = _train(args, text, ngram_mode="mixture")
        runs["network_alone"], runs["mixed"] = (model, False, 1), (model, True, 1)
    if "residual" in args.modes:
        runs["plain_network"] = (_train(args, text, ngram_order=0), False, 1)
        model = _train(args, text, ngram_mode="residual")
        runs["residual"] = (model, True, 1)
        fitted = model.mixture
        for factor in args.flatten:
            runs[f"residual_scales_x{factor:g}"] = (model, True, factor)
    report = {"corpus": args.corpus.name, "minutes": args.minutes}
    for name, (model, ngram, factor) in runs.items():
        if factor != 1:
            model.mixture = Residual(fitted.ngram, fitted.scales * factor)
        tokens = tokenize(text, model.tokenizer_settings)
        known = model.vocabulary.word_to_id
        words = [w if w in known else "<unk>" for w in tokens]
        training = {tuple(words[i : i + 8]) for i in range(len(words) - 7)}
        fingerprint = Fingerprint.from_config(model.record["fingerprint"])
        report[name] = _draws(
            Generator(model, ngram=ngram), fingerprint, training, args
        )
        if test:
            ids = model.vocabulary.encode(tokenize(test, model.tokenizer_settings))
            scored = evaluate_ids(model, ids, ngram=ngram)
            report[name]["held_out_nats"] = round(scored.cross_entropy, 4)
        if factor != 1:
            model.mixture = fitted
    for name, alone in (("mixed", "network_alone"), ("residual", "plain_network")):
        if name in report:
            report[f"longest_run_{name}_vs_{alone}"] = round(
                report[name]["longest_copied_run"]
                / max(report[alone]["longest_copied_run"], 1),
                2,
            )
    print(json.dumps(report, indent=2))


def _train(args: argparse.Namespace, text: str, **settings):
    from textgen.model.config import ModelConfig, TrainConfig
    from textgen.training.sizing import PLANNED
    from textgen.training.train import train

    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(folder) / args.corpus.name
        corpus.write_text(text, encoding="utf-8")
        return train(
            [corpus],
            Path(folder) / "m.keras",
            ModelConfig(),
            TrainConfig(max_minutes=args.minutes, seed=1, **settings),
            log=lambda line: print(line, file=sys.stderr),
            planned=PLANNED,
        )


def _draws(generator, fingerprint, training: set, args: argparse.Namespace) -> dict:
    """The longest copied run and the copied 8-gram share of each draw."""
    from textgen.inference.contract import SamplingSettings

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
