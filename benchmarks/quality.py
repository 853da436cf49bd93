"""Held-out perplexity of the default `textgen train` against an interpolated
Kneser-Ney trigram model on the same tokens, split and vocabulary.
Prints one JSON object.

The last 10% of the book (cut at a paragraph break) is the test text.
textgen trains with its defaults on the first 90% (holding out that part's
own last 10% for early stopping) within a time budget; the trigram model
counts exactly textgen's training tokens. Both use textgen's vocabulary and
score every test word in order, unknown words as `<unk>`.

    python benchmarks/quality.py [--minutes 20] [--corpus PATH]
        [--units N --layers N --cell C --dropout F --epochs N --seq-len N
         --learning-rate F --lr-schedule S]   (to explore other settings)
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ngram import KneserNeyTrigram

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"


def split_text(text: str, test_fraction: float) -> tuple[str, str]:
    """Cut at the paragraph break nearest to the last `test_fraction` of text."""
    target = int(len(text) * (1 - test_fraction))
    cut = text.rfind("\n\n", 0, target)
    cut = cut if cut > 0 else target
    return text[:cut], text[cut:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "moby_dick.txt")
    parser.add_argument("--minutes", type=float, default=20, help="training budget")
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dropout", type=float, help="override the default dropout")
    parser.add_argument("--units", type=int, help="override the default units")
    parser.add_argument("--epochs", type=int, help="override the default epochs")
    parser.add_argument("--seq-len", type=int, help="override the default window")
    parser.add_argument("--learning-rate", type=float, help="override the default")
    parser.add_argument("--lr-schedule", help="override the default schedule")
    parser.add_argument("--cell", help="override the default cell")
    parser.add_argument("--layers", type=int, help="override the default layers")
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"corpus not found: {args.corpus} (pass --corpus)")

    from textgen.config import ModelConfig, TrainConfig
    from textgen.evaluate import score_ids
    from textgen.tokens import tokenize
    from textgen.train import train
    from textgen.vocab import PAD, UNK

    learn_text, test_text = split_text(
        args.corpus.read_text(encoding="utf-8"), args.test_fraction
    )
    with tempfile.TemporaryDirectory() as folder:
        learn_file = Path(folder) / args.corpus.name
        learn_file.write_text(learn_text, encoding="utf-8")
        start = time.perf_counter()
        shape = {
            k: getattr(args, k)
            for k in ("dropout", "units", "cell", "layers")
            if getattr(args, k) is not None
        }
        budget = {
            k: getattr(args, k)
            for k in ("epochs", "seq_len", "learning_rate", "lr_schedule")
            if getattr(args, k) is not None
        }
        config = TrainConfig(max_minutes=args.minutes, seed=args.seed, **budget)
        model = train(
            [learn_file],
            Path(folder) / "m.keras",
            dataclasses.replace(ModelConfig(), **shape),
            config,
            log=lambda line: print(line, file=sys.stderr),  # stdout is for the JSON
        )
        minutes = (time.perf_counter() - start) / 60
    vocabulary = model.vocabulary
    test_tokens = tokenize(test_text, model.tokenizer_settings)
    test_ids = vocabulary.encode(test_tokens)
    neural_ce = float(score_ids(model, test_ids).mean())

    # The trigram model counts exactly the tokens textgen trained on (its
    # training split), so neither model has seen <unk> more than the other.
    known = vocabulary.word_to_id
    record = model.record
    train_tokens = tokenize(learn_text, model.tokenizer_settings)[
        : record["tokens"]["train"]
    ]
    trigram_tokens = [w if w in known else UNK for w in train_tokens]
    trigram = KneserNeyTrigram(trigram_tokens, len(vocabulary) - 1)  # not <pad>
    assert PAD not in trigram_tokens
    trigram_ce = trigram.cross_entropy([w if w in known else UNK for w in test_tokens])

    neural, baseline = math.exp(neural_ce), math.exp(trigram_ce)
    print(
        json.dumps(
            {
                "corpus": args.corpus.name,
                "test_tokens": len(test_ids),
                "test_oov_rate": round(float((test_ids == 1).mean()), 4),
                "vocab_size": len(vocabulary),
                "kneser_ney_trigram_perplexity": round(baseline, 1),
                "textgen_perplexity": round(neural, 1),
                "reduction": round(1 - neural / baseline, 3),
                "textgen_training_minutes": round(minutes, 1),
                "textgen_epochs": record["epochs_run"],
                "textgen_best_epoch": record["best_epoch"],
                "textgen_windowed_val_perplexity": round(
                    record["best_val_perplexity"], 1
                ),
                "model": record["train_config"]
                | {"model": model.get_config()["model_config"]},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
