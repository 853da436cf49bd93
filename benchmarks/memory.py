"""Peak memory of `textgen train` as the corpus grows: 1x, 4x and 16x the
whole of Moby-Dick, each in a fresh process, against what the classic recipe's
one-hot labels alone would need. Prints one JSON object.

    python benchmarks/memory.py [--corpus ../shared/corpora/moby_dick.txt]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import SHARED


def child(corpus: Path, copies: int) -> None:
    """Train one epoch on `copies` copies of the corpus; print peak RSS."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from textgen.model.config import ModelConfig, TrainConfig
    from textgen.training.train import train

    start = time.perf_counter()
    sizes = ModelConfig(
        cell="lstm", layers=2, units=150, embedding_dim=25, tie_embeddings=False
    )
    config = TrainConfig(epochs=1, seed=1, min_count=1, batch_size=16)
    with tempfile.TemporaryDirectory() as folder:
        model = train(
            [corpus] * copies,
            Path(folder) / "m.keras",
            sizes,
            config,
            log=lambda s: None,
        )
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "copies": copies,
                "tokens": model.record["tokens"]["total"],
                "vocab_size": len(model.vocabulary),
                "peak_rss_mb": round(peak_kb / 1024),
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
    )


def baseline_rss_mb() -> int:
    """Peak RSS of a process that only imports TensorFlow and Keras."""
    code = (
        "import os, resource; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
        "import tensorflow, keras\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return round(int(out.stdout.split()[-1]) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "moby_dick.txt")
    parser.add_argument(
        "--copies", default="1,4,16", help="corpus multiples to train on"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"corpus not found: {args.corpus} (pass --corpus)")
    if args.child:
        child(args.corpus, args.child)
        return

    from classic_recipe import one_hot_bytes, recipe_words

    words = recipe_words(args.corpus.read_text(encoding="utf-8"))
    recipe_gb = one_hot_bytes(len(words), len(set(words)) + 1) / 1e9
    runs = []
    for copies in (int(c) for c in args.copies.split(",")):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--corpus",
                str(args.corpus),
                "--child",
                str(copies),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = baseline_rss_mb()
    first = runs[0]
    for run in runs:
        run["above_baseline_mb"] = run["peak_rss_mb"] - base
        run["growth_vs_1x"] = round(
            run["above_baseline_mb"] / first["above_baseline_mb"], 2
        )
    print(
        json.dumps(
            {
                "corpus": args.corpus.name,
                "model": "Embedding 25 -> LSTM 150 -> LSTM 150, one epoch",
                "tensorflow_import_rss_mb": base,
                "textgen": runs,
                "recipe_one_hot_labels_gb": round(recipe_gb, 1),
                "recipe_vs_textgen_1x": round(
                    recipe_gb * 1000 / first["peak_rss_mb"], 1
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
