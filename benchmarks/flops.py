"""How close training gets to the machine's limit, and what XLA, mixed
precision and batch size do to it. Prints one JSON object.

Measures the matmul peak (fp32 and bf16) of this machine, then trains the
recipe-sized model (Embedding 25 -> LSTM 150 x 2 -> Dense vocab) in one
process under each setting on the same data and reports next-word
predictions/s, achieved FLOP/s, the share of the peak, and the validation
perplexity after the same number of epochs; then splits one training step's
time into input pipeline, forward pass, and backward pass plus update.

    python benchmarks/flops.py [--corpus ../shared/corpora/moby_dick_four_chapters.txt]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from classic_recipe import epoch_timer
from common import SHARED

UNITS, EMBEDDING, SEQ_LEN = 150, 25, 32


def matmul_peak(dtype: str, n: int = 2048, repeats: int = 10) -> float:
    """Best FLOP/s of an n x n matmul in TensorFlow."""
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype="float32")
    a = tf.cast(a, dtype)
    matmul = tf.function(lambda x: tf.matmul(x, x))
    matmul(a).numpy()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def flops_per_prediction(vocab_size: int) -> float:
    """Training FLOPs per next-word prediction: forward multiply-adds x 2,
    and the backward pass costs about twice the forward."""
    macs = (
        4 * UNITS * (EMBEDDING + UNITS)  # LSTM 1: input and recurrent kernels
        + 4 * UNITS * (UNITS + UNITS)  # LSTM 2
        + UNITS * vocab_size  # output layer
    )
    return 3 * 2 * macs


def run_setting(data, vocabulary, batch: int, precision: str, xla: bool, epochs: int):
    import keras
    import numpy as np

    from textgen.model.config import ModelConfig
    from textgen.model.network import build_model
    from textgen.training.data import count_windows, make_dataset

    train_ids, val_ids = data
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(1)
    config = ModelConfig(
        units=UNITS, embedding_dim=EMBEDDING, dropout=0.0, tie_embeddings=False
    )
    model = build_model(
        dataclasses.replace(config, vocab_size=len(vocabulary)), vocabulary
    )
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=xla,
    )
    times: list[float] = []
    train_data = make_dataset(train_ids, SEQ_LEN, batch, seed=1)
    history = model.fit(
        train_data,
        epochs=epochs,
        verbose=0,
        callbacks=[epoch_timer(times)],
        shuffle=False,
    )
    val_loss = model.evaluate(make_dataset(val_ids, SEQ_LEN, batch), verbose=0)
    steady = min(times[1:])
    predictions = count_windows(len(train_ids), SEQ_LEN) * SEQ_LEN
    keras.mixed_precision.set_global_policy("float32")
    return model, {
        "batch_size": batch,
        "precision": precision,
        "xla": xla,
        "epoch_seconds": round(steady, 3),
        "first_epoch_seconds": round(times[0], 2),
        "predictions_per_s": round(predictions / steady),
        "train_loss": round(float(history.history["loss"][-1]), 3),
        "val_perplexity": round(float(np.exp(val_loss)), 1),
    }


def step_breakdown(
    model, train_ids, batch: int, epoch_seconds: float, min_steps: int = 120
) -> dict:
    """Milliseconds per step of: the input pipeline alone, the forward pass
    with loss (Keras's evaluate, over at least `min_steps` steps so per-call
    overheads are spread thin), and the whole training step (from the timed
    fit epoch); backward pass plus update is the difference."""
    from textgen.training.data import make_dataset

    once = make_dataset(train_ids, SEQ_LEN, batch, seed=1)
    data = once.repeat(-(-min_steps // int(once.cardinality())))
    steps = int(data.cardinality())

    def per_step(fn) -> float:
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) / steps * 1e3

    pipeline = per_step(lambda: [None for _ in data])
    model.evaluate(once, verbose=0)  # trace once
    forward = per_step(lambda: model.evaluate(data, verbose=0))
    train = epoch_seconds / int(once.cardinality()) * 1e3
    return {
        "batch_size": batch,
        "pipeline_ms": round(pipeline, 2),
        "forward_ms": round(forward, 2),
        "train_step_ms": round(train, 2),
        "backward_and_update_ms": round(train - forward, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=SHARED / "moby_dick_four_chapters.txt"
    )
    parser.add_argument(
        "--epochs", type=int, default=8, help="the fastest after the first is timed"
    )
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"corpus not found: {args.corpus} (pass --corpus)")
    import tensorflow as tf

    from textgen.text.ids import corpus_tokens
    from textgen.text.tokens import TokenizerSettings
    from textgen.text.vocab import Vocabulary
    from textgen.training.data import split_tail

    tokens, _ = corpus_tokens([args.corpus], TokenizerSettings())
    train_tokens, val_tokens = split_tail(tokens, SEQ_LEN, 0.1)
    vocabulary = Vocabulary.build(train_tokens)
    data = (vocabulary.encode(train_tokens), vocabulary.encode(val_tokens))
    peak_fp32, peak_bf16 = matmul_peak("float32"), matmul_peak("bfloat16")
    per_prediction = flops_per_prediction(len(vocabulary))
    settings = [
        (16, "float32", False),
        (16, "float32", True),
        (16, "mixed_bfloat16", False),
        (64, "float32", False),
        (64, "float32", True),
        (64, "mixed_bfloat16", False),
    ]
    results = []
    breakdown = []
    for batch, precision, xla in settings:
        model, row = run_setting(data, vocabulary, batch, precision, xla, args.epochs)
        if precision == "float32" and not xla:
            seconds = row["epoch_seconds"]
            breakdown.append(step_breakdown(model, data[0], batch, seconds))
        flops = row["predictions_per_s"] * per_prediction
        row["achieved_gflops"] = round(flops / 1e9, 1)
        peak = peak_bf16 if "bfloat16" in precision else peak_fp32
        row["share_of_matmul_peak"] = round(flops / peak, 3)
        results.append(row)
    print(
        json.dumps(
            {
                "corpus": args.corpus.name,
                "tensorflow": tf.__version__,
                "vocab_size": len(vocabulary),
                "matmul_peak_gflops": {
                    "float32": round(peak_fp32 / 1e9),
                    "bfloat16": round(peak_bf16 / 1e9),
                },
                "train_flops_per_prediction": per_prediction,
                "output_layer_share_of_flops": round(
                    UNITS * len(vocabulary) * 6 / per_prediction, 2
                ),
                "settings": results,
                "step_breakdown": breakdown,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
