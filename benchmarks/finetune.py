"""What a base model buys: a short *Pride and Prejudice* run from scratch
against the same run started from a *Moby-Dick* model (`train --init-from`).
Prints one JSON object.

For each level (`--level`): the base is the default network trained on all
of `../shared/corpora/moby_dick.txt` for `--base-minutes` (or `--base
PATH`). Then, for each `--seed`, two models train on the first 90% of
*Pride and Prejudice* (cut at a paragraph break) for `--minutes`: one from
scratch (the budget planner choosing its size, as `train --max-minutes`
does), one from the base (its shape, its vocabulary grown by the new
words). Both are scored on the last 10% with `evaluate` (the model as used:
the network with its n-gram memory, counted on the P&P training text for
both). The figure is held-out cross-entropy (nats per token): median and
range over the seeds, and the ratio fine-tuned / scratch, with each
model's OOV rate on the test text (the grown vocabulary has fewer unknown
words, which are cheap to predict as `<unk>`: equal nats favour scratch).

    python benchmarks/finetune.py [--level word char] [--base-minutes 20]
        [--minutes 3] [--seed 1 2 3] [--base PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import SHARED, split_text


def trained(corpus: Path, output: Path, level: str, minutes: float, seed: int, **kw):
    from textgen.model.config import ModelConfig, TrainConfig
    from textgen.training.sizing import PLANNED
    from textgen.training.train import train

    started = time.perf_counter()
    train(
        [corpus],
        output,
        ModelConfig(),  # the level's defaults
        TrainConfig(max_minutes=minutes, seed=seed, level=level),
        log=lambda line: None,
        planned=PLANNED,
        **kw,
    )
    return time.perf_counter() - started


def held_out(model: Path, test: Path) -> tuple[float, float]:
    """Cross-entropy (nats per token) and OOV rate on the test text."""
    from textgen.inference.evaluate import evaluate
    from textgen.model.file import read_model

    found = evaluate(read_model(model), [test])
    return found.cross_entropy, found.oov_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--level", nargs="+", default=["word"], choices=["word", "char"]
    )
    parser.add_argument("--base-minutes", type=float, default=20)
    parser.add_argument("--minutes", type=float, default=3)
    parser.add_argument("--seed", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--base", type=Path, nargs="+", help="one per --level")
    args = parser.parse_args()
    book = (SHARED / "pride_and_prejudice.txt").read_text(encoding="utf-8")
    train_text, test_text = split_text(book, 0.1)
    results: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        corpus, test = folder / "pride_train.txt", folder / "pride_test.txt"
        corpus.write_text(train_text, encoding="utf-8")
        test.write_text(test_text, encoding="utf-8")
        for i, level in enumerate(args.level):
            base = args.base[i] if args.base else folder / f"moby_{level}.keras"
            row: dict = {"base": str(base)}
            if not args.base:
                row["base_seconds"] = round(
                    trained(SHARED / "moby_dick.txt", base, level, args.base_minutes, 1)
                )
            from textgen.model.file import read_model

            read = read_model(base, weights=False)
            row["base_shape"] = [read.model_config.layers, read.model_config.units]
            row["base_vocabulary"] = len(read.vocabulary)
            scratch, tuned, oov = [], [], {"scratch": [], "fine_tuned": []}
            for seed in args.seed:
                out = folder / f"scratch_{level}_{seed}.keras"
                trained(corpus, out, level, args.minutes, seed)
                nats, rate = held_out(out, test)
                scratch.append(nats)
                oov["scratch"].append(round(rate, 4))
                out = folder / f"tuned_{level}_{seed}.keras"
                trained(corpus, out, level, args.minutes, seed, init_from=base)
                nats, rate = held_out(out, test)
                tuned.append(nats)
                oov["fine_tuned"].append(round(rate, 4))
                row.setdefault(
                    "vocabulary_grown_to",
                    len(read_model(out, weights=False).vocabulary),
                )
            row["scratch_nats"] = {
                "median": round(statistics.median(scratch), 4),
                "range": [round(min(scratch), 4), round(max(scratch), 4)],
                "runs": [round(x, 4) for x in scratch],
            }
            row["fine_tuned_nats"] = {
                "median": round(statistics.median(tuned), 4),
                "range": [round(min(tuned), 4), round(max(tuned), 4)],
                "runs": [round(x, 4) for x in tuned],
            }
            # Fewer test words are <unk> to the grown vocabulary (and <unk>
            # is easy to predict), so equal nats favour the scratch model.
            row["oov_rate"] = oov
            row["fine_tuned_over_scratch"] = round(
                statistics.median(tuned) / statistics.median(scratch), 3
            )
            results[level] = row
            print(json.dumps({level: row}), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
