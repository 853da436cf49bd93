"""Training step speed: textgen's model and optimizer against the same
network in PyTorch (`nn.LSTM`, when `torch` is installed), side by side in
one run. Prints one JSON object.

`--shape word` (the default) is the default word-level network (2 x LSTM
512, embedding 128, output tied to the embedding through a 512 -> 128
projection), a 9,500-word vocabulary and 32-token windows; `char128` and
`char256` are what the budget planner gives characters (2 x 128 or 256,
untied output, an 80-character vocabulary, 100-character windows), dropout
0.5 (0 for the character sizes, as planned), random ids. Both sides train
with Adam, gradient-norm clipping at 1.0 and sparse cross-entropy on
logits. textgen's side runs exactly what `textgen train` runs (`model.fit`
with the default settings, the weight average included); "keras_loop" is
the same model the way textgen ran it before: Keras's generic recurrent
loop, no XLA.

    python benchmarks/step.py [--shape word|char128|char256] [--batches 16 64]
                              [--steps 30] [--repeats 3] [--residual]

`--residual`: residual training's step (the batches carry the n-gram
memory's log-probabilities, made per batch in NumPy) beside the same step
without them, both from `data.make_dataset`.

Each measurement runs in a process of its own (this script with `--peer`),
so one library can neither crash nor slow the other: a CUDA build of torch
imported after TensorFlow dies in triton's import (exit 139), and two
thread pools in one process contend. The JSON says which torch build ran.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@dataclass(frozen=True)
class Shape:
    units: int
    vocab: int
    seq_len: int
    tied: bool
    dropout: float
    embedding: int = 128


SHAPES = {
    "word": Shape(512, 9500, 32, True, 0.5),
    "char128": Shape(128, 80, 100, False, 0.0),
    "char256": Shape(256, 80, 100, False, 0.0),
}
SHAPE = SHAPES["word"]  # set by --shape


def random_batches(batch: int, steps: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    size = (steps, batch, SHAPE.seq_len + 1)
    ids = rng.integers(2, SHAPE.vocab, size=size, dtype=np.int32)
    return ids[:, :, :-1], ids[:, :, 1:]


def textgen_seconds_per_step(
    batch: int, steps: int, new: bool, prior: bool | None = None
) -> list[float]:
    """Per-step seconds of `model.fit`, after the first (tracing) steps.

    `prior` (True or False): the batches come from `data.make_dataset` over
    a text of random ids, with (True) or without the n-gram memory's
    log-probabilities that residual training adds (`prior.Prior`, five
    cross-fitted memories of order 3 for words, 7 for characters, counted
    over that text), as `textgen train --ngram-mode residual` makes them."""
    import keras
    import tensorflow as tf

    from textgen.model import cells
    from textgen.model.config import ModelConfig, TrainConfig
    from textgen.model.network import build_model
    from textgen.text.tokens import TokenizerSettings
    from textgen.text.vocab import Vocabulary
    from textgen.training.network import compile_model as _compile

    original = cells.SequenceLSTM.inner_loop
    if not new:  # textgen 0.x before this benchmark: Keras's loop, no XLA
        cells.SequenceLSTM.inner_loop = keras.layers.LSTM.inner_loop
    try:
        keras.utils.set_random_seed(0)
        words = [f"w{i}" for i in range(SHAPE.vocab - 2)]
        vocabulary = Vocabulary(["<pad>", "<unk>", *words])
        config = ModelConfig(
            units=SHAPE.units,
            embedding_dim=SHAPE.embedding,
            dropout=SHAPE.dropout,
            tie_embeddings=SHAPE.tied,
            vocab_size=len(vocabulary),
        )
        model = build_model(config, vocabulary, TokenizerSettings())
        _compile(model, TrainConfig(), steps_per_epoch=100)
        if not new:
            model.jit_compile = False
        if prior is None:
            inputs, labels = random_batches(batch, steps + 5)
            data = tf.data.Dataset.from_tensor_slices((inputs, labels))
        else:
            data = _dataset(batch, steps + 5, prior, len(vocabulary))
        times: list[float] = []

        class Timer(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                self.start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                times.append(time.perf_counter() - self.start)

        model.fit(data, epochs=1, verbose=0, callbacks=[Timer()])
        keras.backend.clear_session()
    finally:
        cells.SequenceLSTM.inner_loop = original
    return times[5:]


def torch_seconds_per_step(batch: int, steps: int) -> list[float]:
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            units, vocab, width = SHAPE.units, SHAPE.vocab, SHAPE.embedding
            self.embedding = nn.Embedding(vocab, width)
            self.lstm0 = nn.LSTM(width, units, batch_first=True)
            self.lstm1 = nn.LSTM(units, units, batch_first=True)
            if SHAPE.tied:
                self.projection = nn.Linear(units, width, bias=False)
                self.bias = nn.Parameter(torch.zeros(vocab))
            else:
                self.output = nn.Linear(units, vocab)
            self.dropout = nn.Dropout(SHAPE.dropout)

        def forward(self, ids):
            x = self.dropout(self.embedding(ids))
            x = self.dropout(self.lstm0(x)[0])
            x = self.dropout(self.lstm1(x)[0])
            if not SHAPE.tied:
                return self.output(x)
            return self.projection(x) @ self.embedding.weight.T + self.bias

    model = Model()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    loss_fn = nn.CrossEntropyLoss()
    inputs, labels = random_batches(batch, steps + 5)
    times = []
    inputs, labels = torch.from_numpy(inputs).long(), torch.from_numpy(labels).long()
    for x, y in zip(inputs, labels, strict=True):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = loss_fn(model(x).reshape(-1, SHAPE.vocab), y.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times[5:]


def tokens_per_s(batch: int, times: list[float]) -> int:
    return round(batch * SHAPE.seq_len / statistics.median(times))


def _dataset(batch: int, steps: int, prior: bool, vocab_size: int):
    """`steps` batches of windows of a text of random ids (a chain that
    favours a few successors, so the memory has something to count)."""
    import numpy as np

    from textgen.model.ngram import Grams
    from textgen.training.data import make_dataset
    from textgen.training.prior import BLOCKS, Prior

    rng = np.random.default_rng(1)
    n = batch * steps * SHAPE.seq_len + SHAPE.seq_len + 1
    ids = np.empty(n, dtype=np.int64)
    ids[0] = 2
    jumps = rng.integers(1, 4, size=n)
    fresh = rng.random(n) < 0.2
    others = rng.integers(2, vocab_size, size=n)
    for i in range(1, n):
        step = (ids[i - 1] * 7 + jumps[i]) % (vocab_size - 2) + 2
        ids[i] = others[i] if fresh[i] else step
    made = None
    if prior:
        order = 3 if SHAPE.tied else 7
        whole = Grams.of([(ids, 0, n)], vocab_size, order)
        edges = [n * k // BLOCKS for k in range(BLOCKS + 1)]
        memories = [
            whole.without(Grams.of([(ids, a, b)], vocab_size, order)).model()
            for a, b in itertools.pairwise(edges)
        ]
        made = Prior(ids, np.array([0]), memories, edges, SHAPE.seq_len)
    return make_dataset(ids, SHAPE.seq_len, batch, seed=1, epochs=1, prior=made).take(
        steps
    )


PEERS = ("textgen", "keras_loop", "pytorch", "without_prior", "residual")


def _peer(name: str, batch: int, steps: int) -> dict:
    """One peer's timed steps, in this process (a child of `main`'s)."""
    if name == "pytorch":
        import torch

        cuda = torch.version.cuda
        return {
            "seconds": torch_seconds_per_step(batch, steps),
            "version": torch.__version__,
            "build": f"CUDA {cuda}" if cuda else "CPU",
            "threads": torch.get_num_threads(),
        }
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    prior = {"without_prior": False, "residual": True}.get(name)
    fused = name != "keras_loop"
    seconds = textgen_seconds_per_step(batch, steps, fused, prior=prior)
    return {
        "seconds": seconds,
        "version": tf.__version__,
        "threads": tf.config.threading.get_intra_op_parallelism_threads()
        or os.cpu_count(),
    }


def _measured(name: str, batch: int, args: argparse.Namespace) -> dict:
    """`_peer` in a fresh process: its figures, or a one-line exit."""
    command = [
        sys.executable, __file__, "--peer", name, "--shape", args.shape,
        "--batches", str(batch), "--steps", str(args.steps),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(f"{name} failed (exit {done.returncode}): {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="word")
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per run")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each, interleaved"
    )
    parser.add_argument(
        "--residual",
        action="store_true",
        help="time residual training's step (the memory's prior made per batch) "
        "beside the same step without it, instead of the peers",
    )
    parser.add_argument("--peer", choices=PEERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global SHAPE
    SHAPE = SHAPES[args.shape]
    if args.peer:  # a child: one measurement, one JSON line
        print(json.dumps(_peer(args.peer, args.batches[0], args.steps)))
        return
    import importlib.util

    peers = (
        ["without_prior", "residual"] if args.residual else ["textgen", "keras_loop"]
    )
    torch = not args.residual and importlib.util.find_spec("torch") is not None
    if torch:
        peers.append("pytorch")
    results: dict = {}
    about: dict[str, dict] = {}
    for batch in args.batches:
        runs: dict[str, list[int]] = {name: [] for name in peers}
        for _ in range(args.repeats):  # interleaved: machine drift hits all alike
            for name in peers:
                measured = _measured(name, batch, args)
                about[name] = {k: v for k, v in measured.items() if k != "seconds"}
                runs[name].append(tokens_per_s(batch, measured["seconds"]))
        row = {
            name: {"median": statistics.median(r), "range": [min(r), max(r)]}
            for name, r in runs.items()
        }
        if torch:
            row["textgen_vs_pytorch"] = round(
                statistics.median(
                    a / b for a, b in zip(runs["textgen"], runs["pytorch"], strict=True)
                ),
                2,
            )
        pair = ("residual", "without_prior") if args.residual else None
        pair = pair or ("textgen", "keras_loop")
        row[f"{pair[0]}_vs_{pair[1]}"] = round(
            statistics.median(
                a / b for a, b in zip(runs[pair[0]], runs[pair[1]], strict=True)
            ),
            2,
        )
        results[f"batch_{batch}_tokens_per_s"] = row
    print(
        json.dumps(
            {
                "shape": args.shape,
                "network": f"2 x LSTM {SHAPE.units}, embedding {SHAPE.embedding}, "
                f"{'tied' if SHAPE.tied else 'untied'} output, vocab {SHAPE.vocab}, "
                f"dropout {SHAPE.dropout:g}",
                "seq_len": SHAPE.seq_len,
                "tensorflow": about[peers[0]]["version"],
                "tensorflow_intra_op_threads": about[peers[0]]["threads"],
                "torch": about.get("pytorch"),
                **results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
