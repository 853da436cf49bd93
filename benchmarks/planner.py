"""How well the budget planner knows this machine's speed: for every size it
can choose, on both levels, the tokens/s it predicts (from a few timed
training steps, `textgen/training/calibration.py`; and, for comparison, from the
arithmetic alone, as it did before) against the speed the training run then
has (the median of its steps). Prints one JSON object.

Each size trains for a short budget with its size fixed (the rest planned),
with a fresh memory of speeds and the planner allowed to measure however
short the budget (`MEASURE_SHARE` raised), so its prediction is the
measured one.

    python benchmarks/planner.py [--corpus BOOK] [--minutes 1.2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import SHARED


def one_size(corpus: Path, level: str, units: int, minutes: float) -> dict:
    from textgen.model.config import ModelConfig, TrainConfig
    from textgen.training import sizing
    from textgen.training.train import train

    tied = level == "word"
    shape = ModelConfig(units=units, tie_embeddings=tied)
    config = TrainConfig(level=level, max_minutes=minutes, seed=1)
    planned = set(sizing.PLANNED) - {"units", "dropout"}
    with tempfile.TemporaryDirectory() as folder:
        os.environ["TEXTGEN_CACHE_DIR"] = folder  # nothing remembered
        model = train(
            [corpus],
            Path(folder) / "m.keras",
            shape,
            config,
            planned=planned,
            log=lambda line: None,
        )
    plan = model.record["plan"]
    shape = dataclasses.replace(model.model_config)
    assumed = (
        plan["gflops"] * 1e9 * sizing.STEP_EFFICIENCY / sizing.flops_per_token(shape)
    )
    run = plan["run_tokens_per_second"]  # None: too few steps to tell

    def error(predicted: float) -> float | None:
        return None if run is None else round(predicted / run - 1, 3)

    return {
        "level": level,
        "units": units,
        "vocab_size": shape.vocab_size,
        "seq_len": plan["seq_len"],
        "predicted_measured": plan["tokens_per_second"],
        "speed_source": plan["speed_source"],
        "measuring_seconds": plan["measuring_seconds"],
        "run": run,
        "measured_error": error(plan["tokens_per_second"]),
        "predicted_by_arithmetic": round(assumed),
        "arithmetic_error": error(assumed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=SHARED / "moby_dick_four_chapters.txt"
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=1.2,
        help="budget per size up to 256 units (more units: proportionally more)",
    )
    parser.add_argument(
        "--only", nargs="+", default=[], help="sizes to run, e.g. char:512 word:256"
    )
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"corpus not found: {args.corpus} (pass --corpus)")
    import tensorflow as tf

    from textgen.training import sizing

    tf.get_logger().setLevel("ERROR")
    sizing.MEASURE_SHARE = 1.0  # measure whatever the budget
    rows = []
    for level in ("word", "char"):
        for units in sizing.UNITS:
            if level == "word" and units < sizing.TIED_MIN_UNITS:
                continue  # words are tied: the planner never picks these
            if args.only and f"{level}:{units}" not in args.only:
                continue
            minutes = args.minutes * max(units / 256, 1)  # a few dozen steps
            rows.append(one_size(args.corpus, level, units, minutes))
            print(json.dumps(rows[-1]), file=sys.stderr)
    timed = [row for row in rows if row["run"] is not None]
    worst = max((abs(row["measured_error"]) for row in timed), default=None)
    worst_before = max((abs(row["arithmetic_error"]) for row in timed), default=None)
    print(
        json.dumps(
            {
                "corpus": args.corpus.name,
                "minutes_per_256_units": args.minutes,
                "cpu_count": os.cpu_count(),
                "sizes": rows,
                "worst_error_measured": worst,
                "worst_error_arithmetic": worst_before,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
