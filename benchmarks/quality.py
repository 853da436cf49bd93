"""Held-out cross-entropy of `textgen train` with its defaults (the budget
planner included) against an interpolated Kneser-Ney n-gram model on the same
tokens, split and vocabulary: a word trigram at word level, a character
7-gram at character level. Prints one JSON object with a table of rows.

The last 10% of each book (cut at a paragraph break) is the test text.
textgen trains on the first 90% (holding out that part's own last 10% for
early stopping) within each budget; the n-gram model counts exactly textgen's
training text (the 90%, its validation tenth included). Both use textgen's
vocabulary and score every test token in order, carrying the context (the
recurrent state) through the whole text. Each row is one model, trained
with one `--ngram-mode` (`--modes`, side by side in one run, each seed of
`--seed`): `mixed_*` is the model as `generate` and `evaluate` use it (the
network mixed with, or trained on, its n-gram memory), `textgen_*` the
network alone (for a residual model, which has none, the model), and the
memory alone (which equals the Kneser-Ney baseline when their orders agree).

    python benchmarks/quality.py [--level word|char] [--minutes 3 12 20]
        [--corpus PATH ...] [--seed 1 2 3] [--modes residual mixture]
        [--units N --layers N --cell C --dropout F --epochs N --seq-len N
         --learning-rate F --lr-schedule S --[no-]carry-state]
        (to explore other settings)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
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
    parser.add_argument(
        "--corpus",
        type=Path,
        nargs="+",
        default=[SHARED / "moby_dick.txt", SHARED / "pride_and_prejudice.txt"],
    )
    parser.add_argument(
        "--minutes", type=float, nargs="+", default=[3, 12, 20], help="budgets"
    )
    parser.add_argument("--level", choices=["word", "char"], default="word")
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, nargs="+", default=[1])
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=["residual", "mixture"],
        default=["residual", "mixture"],
        help="--ngram-mode of each model trained, side by side",
    )
    parser.add_argument("--dropout", type=float, help="override the default dropout")
    parser.add_argument("--units", type=int, help="override the default units")
    parser.add_argument("--epochs", type=int, help="override the default epochs")
    parser.add_argument("--seq-len", type=int, help="override the default window")
    parser.add_argument("--learning-rate", type=float, help="override the default")
    parser.add_argument("--lr-schedule", help="override the default schedule")
    parser.add_argument("--cell", help="override the default cell")
    parser.add_argument("--layers", type=int, help="override the default layers")
    parser.add_argument("--batch-size", type=int, help="override the automatic batch")
    parser.add_argument(
        "--no-tie", action="store_true", help="an untied output layer at word level"
    )
    parser.add_argument(
        "--no-average", action="store_true", help="keep the last weights"
    )
    parser.add_argument(
        "--carry-state",
        action=argparse.BooleanOptionalAction,
        help="override the default: carry the state across training windows",
    )
    args = parser.parse_args()
    for corpus in args.corpus:
        if not corpus.exists():
            sys.exit(f"corpus not found: {corpus} (pass --corpus)")
    rows = []
    for corpus in args.corpus:
        for minutes in args.minutes:
            for seed in args.seed:
                for mode in args.modes:
                    rows.append(measure(args, corpus, minutes, seed, mode))
                    # Each row as it is measured (stderr): a long run that
                    # fails later keeps what it measured.
                    print("ROW " + json.dumps(rows[-1]), file=sys.stderr)
    print(json.dumps({"level": args.level, "rows": rows}, indent=2))


def measure(
    args: argparse.Namespace, corpus: Path, minutes: float, seed: int, mode: str
) -> dict:
    """Train within `minutes` on the corpus's first 90%, score its last 10%."""
    from textgen.inference.evaluate import evaluate_ids
    from textgen.model.config import ModelConfig, TrainConfig
    from textgen.model.levels import level_policy
    from textgen.model.ngram import NgramModel
    from textgen.text.tokens import tokenize
    from textgen.text.vocab import PAD
    from textgen.training.sizing import PLANNED
    from textgen.training.train import train

    learn_text, test_text = split_text(
        corpus.read_text(encoding="utf-8"), args.test_fraction
    )
    shape = {
        k: getattr(args, k)
        for k in ("dropout", "units", "cell", "layers")
        if getattr(args, k) is not None
    }
    tied = level_policy(args.level).tied_by_default
    shape["tie_embeddings"] = tied and not args.no_tie
    fixed = {
        k: getattr(args, k)
        for k in (
            "epochs",
            "seq_len",
            "learning_rate",
            "lr_schedule",
            "batch_size",
            "carry_state",
        )
        if getattr(args, k) is not None
    } | ({"average": False} if args.no_average else {})
    with tempfile.TemporaryDirectory() as folder:
        learn_file = Path(folder) / corpus.name
        learn_file.write_text(learn_text, encoding="utf-8")
        start = time.perf_counter()
        config = TrainConfig(
            max_minutes=minutes, seed=seed, level=args.level, ngram_mode=mode, **fixed
        )
        model = train(
            [learn_file],
            Path(folder) / "m.keras",
            dataclasses.replace(ModelConfig(), **shape),
            config,
            log=lambda line: print(line, file=sys.stderr),  # stdout is for the JSON
            planned=[name for name in PLANNED if name not in shape | fixed],
        )
        minutes_used = (time.perf_counter() - start) / 60
    vocabulary = model.vocabulary
    test_tokens = tokenize(test_text, model.tokenizer_settings)
    test_ids = vocabulary.encode(test_tokens)
    scored = evaluate_ids(model, test_ids)  # the mixture, and each part
    neural_ce = scored.network_cross_entropy or scored.cross_entropy

    # The n-gram model counts all of the text textgen was given (its
    # validation tenth included, as textgen's saved memory does), in its
    # vocabulary, so neither model has seen <unk> more than the other.
    # textgen's NgramModel computes what benchmarks/ngram.py's `KneserNey`
    # does (the tests compare them), in a fraction of the time.
    record = model.record
    order = 3 if args.level == "word" else 7
    learn_ids = vocabulary.encode(tokenize(learn_text, model.tokenizer_settings))
    assert not (learn_ids == vocabulary.word_to_id[PAD]).any()
    ngram = NgramModel.count([learn_ids], len(vocabulary), order)
    ngram_ce = float(-np.log(ngram.probabilities_of([test_ids])[0]).mean())
    return {
        "corpus": corpus.name,
        "mode": mode,
        "seed": seed,
        "budget_minutes": minutes,
        "test_tokens": len(test_ids),
        "test_oov_rate": round(float((test_ids == 1).mean()), 4),
        "vocab_size": len(vocabulary),
        f"kneser_ney_{order}gram_nats": round(ngram_ce, 4),
        "textgen_nats": round(neural_ce, 4),
        "kneser_ney_perplexity": round(math.exp(ngram_ce), 2),
        "textgen_perplexity": round(math.exp(neural_ce), 2),
        "reduction_in_perplexity": round(1 - math.exp(neural_ce - ngram_ce), 3),
        "textgen_vs_kneser_ney_nats": round(neural_ce / ngram_ce, 3),
        # The network mixed with its own n-gram memory (as `generate` and
        # `evaluate` use it), and that memory alone.
        "mixed_nats": round(scored.cross_entropy, 4),
        "mixed_perplexity": round(math.exp(scored.cross_entropy), 2),
        "ngram_memory_nats": (
            round(scored.ngram_cross_entropy, 4)
            if scored.ngram_cross_entropy is not None
            else None
        ),
        "mixed_vs_kneser_ney_nats": round(scored.cross_entropy / ngram_ce, 3),
        "mixed_reduction_in_perplexity": round(
            1 - math.exp(scored.cross_entropy - ngram_ce), 3
        ),
        "ngram_record": record.get("ngram"),
        "textgen_training_minutes": round(minutes_used, 1),
        "textgen_epochs": record["epochs_run"],
        "textgen_best_epoch": record["best_epoch"],
        "plan": record.get("plan"),
        "model": record["train_config"] | {"model": model.get_config()["model_config"]},
    }


if __name__ == "__main__":
    main()
