"""Swapping the memory, measured (`textgen adapt`): held-out cross-entropy
on the target book's last tenth (cut at a paragraph break) of

- `adapted`: a model trained on the whole source book for `--minutes`, its
  memory swapped for one counted over the target's first 90% (`adapt`);
- `unadapted`: the same model as trained;
- `trained_on_target`: a model trained on the target's first 90% for the
  same minutes and seed (what adapting saves you from);
- `kneser_ney`: Kneser-Ney over the target's first 90% alone, in its own
  vocabulary (`kneser_ney_nats`) and in the source model's
  (`kneser_ney_in_source_vocabulary_nats`, the fair peer of the adapted
  model: a word the source book lacks is `<unk>` to both).

Words in different vocabularies are not comparable nats for nats (a
smaller vocabulary folds more words into `<unk>`), so each row gives its
test text's unknown rate too. Prints one JSON object (a row per
`--modes` mode), each row also to stderr as it is measured.

    python benchmarks/adapt.py [--level word|char] [--minutes 3]
        [--source moby_dick.txt] [--target pride_and_prejudice.txt]
        [--seed 1] [--modes residual mixture]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from common import SHARED, split_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SHARED / "moby_dick.txt")
    parser.add_argument(
        "--target", type=Path, default=SHARED / "pride_and_prejudice.txt"
    )
    parser.add_argument("--level", choices=["word", "char"], default="word")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--modes", nargs="+", choices=["residual", "mixture"], default=["residual"]
    )
    args = parser.parse_args()
    for path in (args.source, args.target):
        if not path.exists():
            sys.exit(f"corpus not found: {path} (pass --source/--target)")
    rows = []
    for mode in args.modes:
        rows.append(measure(args, mode))
        print("ROW " + json.dumps(rows[-1]), file=sys.stderr)
    print(json.dumps({"level": args.level, "rows": rows}, indent=2))


def _train(text_file: Path, out: Path, args: argparse.Namespace, mode: str):
    """`textgen train`'s defaults for the level (the library's
    `ModelConfig()` is the word level's shape: tied output)."""
    from textgen.model.config import ModelConfig, TrainConfig
    from textgen.model.levels import level_policy
    from textgen.training.sizing import PLANNED
    from textgen.training.train import train

    tied = level_policy(args.level).tied_by_default
    config = TrainConfig(
        max_minutes=args.minutes, seed=args.seed, level=args.level, ngram_mode=mode
    )
    return train(
        [text_file],
        out,
        ModelConfig(tie_embeddings=tied),
        config,
        log=lambda line: print(line, file=sys.stderr),
        planned=list(PLANNED),
    )


def _nats(model, text: str) -> tuple[float, float]:
    """The model's cross-entropy on `text` (carried state), and the share
    of its tokens that are unknown to the model."""
    from textgen.inference.evaluate import evaluate_ids
    from textgen.text.tokens import tokenize
    from textgen.text.vocab import UNK_ID

    ids = model.vocabulary.encode(tokenize(text, model.tokenizer_settings))
    return evaluate_ids(model, ids).cross_entropy, float(np.mean(ids == UNK_ID))


def _kneser_ney(model, learn: str, test: str, order: int) -> float:
    """Kneser-Ney over `learn` in `model`'s vocabulary, on `test`."""
    from textgen.model.ngram import NgramModel
    from textgen.text.tokens import tokenize

    vocabulary, settings = model.vocabulary, model.tokenizer_settings
    learn_ids = vocabulary.encode(tokenize(learn, settings))
    test_ids = vocabulary.encode(tokenize(test, settings))
    memory = NgramModel.count([learn_ids], len(vocabulary), order)
    return float(-np.log(memory.probabilities_of([test_ids])[0]).mean())


def measure(args: argparse.Namespace, mode: str) -> dict:
    from textgen.model.file import read_model
    from textgen.training.adapt import adapt

    learn, test = split_text(args.target.read_text(encoding="utf-8"), 0.1)
    order = 3 if args.level == "word" else 7
    with tempfile.TemporaryDirectory() as folder:
        here = Path(folder)
        target_learn = here / args.target.name
        target_learn.write_text(learn, encoding="utf-8")
        _train(args.source, here / "source.keras", args, mode)
        source = read_model(here / "source.keras")
        started = time.perf_counter()
        adapt(
            here / "source.keras",
            [target_learn],
            here / "adapted.keras",
            log=lambda line: print(line, file=sys.stderr),
        )
        adapt_seconds = time.perf_counter() - started
        adapted = read_model(here / "adapted.keras")
        _train(target_learn, here / "target.keras", args, mode)
        target = read_model(here / "target.keras")
        row = {"mode": mode, "level": args.level, "minutes": args.minutes}
        row["seed"] = args.seed
        for name, model in (
            ("unadapted", source),
            ("adapted", adapted),
            ("trained_on_target", target),
        ):
            nats, unknown = _nats(model, test)
            row[f"{name}_nats"] = round(nats, 4)
            row[f"{name}_unknown_rate"] = round(unknown, 4)
        row["kneser_ney_nats"] = round(_kneser_ney(target, learn, test, order), 4)
        row["kneser_ney_in_source_vocabulary_nats"] = round(
            _kneser_ney(source, learn, test, order), 4
        )
        row["adapt_seconds"] = round(adapt_seconds, 1)
        row["adapted_vs_kneser_ney_same_vocabulary"] = round(
            row["adapted_nats"] / row["kneser_ney_in_source_vocabulary_nats"], 3
        )
        row["source"], row["target"] = args.source.name, args.target.name
    return row


if __name__ == "__main__":
    main()
