"""Training and generation speed: textgen against the classic recipe, side by
side in one process on the same corpus and layer sizes. Prints one JSON object.

    python benchmarks/speed.py [--corpus ../shared/corpora/moby_dick_four_chapters.txt]
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

import classic_recipe
from common import SHARED, timed

SEED_TEXT = "call me ishmael . some years ago"


def recipe_figures(text: str, epochs: int, words: int) -> tuple[dict, object]:

    data = classic_recipe.prepare(text)
    model = classic_recipe.build(data.vocab_size)
    epoch_seconds: list[float] = []
    model.fit(
        data.inputs,
        data.labels,
        batch_size=classic_recipe.BATCH_SIZE,
        epochs=epochs,
        verbose=0,
        callbacks=[classic_recipe.epoch_timer(epoch_seconds)],
    )
    classic_recipe.generate(model, data, SEED_TEXT, 2)  # warm up predict
    seconds, _ = timed(classic_recipe.generate, model, data, SEED_TEXT, words)
    steady = min(epoch_seconds[1:])  # the first epoch also traces the graph
    return {
        "vocab_size": data.vocab_size,
        "windows": len(data.inputs),
        "epoch_seconds": round(steady, 2),
        "train_predictions_per_s": round(len(data.inputs) / steady),
        "one_hot_label_bytes": int(data.labels.nbytes),
        "generate_words_per_s": round(words / seconds, 1),
    }, data


def textgen_figures(corpus: Path, epochs: int, words: int) -> dict:
    from textgen.inference.contract import SamplingSettings
    from textgen.inference.generate import Generator
    from textgen.model.config import ModelConfig, TrainConfig
    from textgen.training.data import count_windows
    from textgen.training.train import train

    # The recipe's layer sizes and its whole vocabulary: an untied output layer
    # over every word (min_count 1), so both models do the same work per word.
    same_sizes = ModelConfig(
        cell="lstm",
        layers=2,
        units=150,
        embedding_dim=25,
        dropout=0,
        tie_embeddings=False,
    )
    config = TrainConfig(
        epochs=epochs, val_fraction=0, patience=0, seed=1, min_count=1, batch_size=16
    )
    with tempfile.TemporaryDirectory() as folder:
        model = train(
            [corpus], Path(folder) / "m.keras", same_sizes, config, log=lambda s: None
        )
    record = model.record
    steady = min(row["seconds"] for row in record["history"][1:])
    predictions = (
        count_windows(record["tokens"]["train"], config.seq_len) * config.seq_len
    )

    generator = Generator(model)
    sampling = SamplingSettings()  # the CLI's defaults
    generator.generate(SEED_TEXT, 20, sampling, random_seed=0)  # warm up
    single, _ = timed(generator.generate, SEED_TEXT, words, sampling, 1, 0)
    streamed, _ = timed(
        generator.generate, SEED_TEXT, words, sampling, 1, 0, lambda t: None
    )
    batch, _ = timed(generator.generate, SEED_TEXT, words, sampling, 16, 0)
    # The same without the n-gram memory mixed in (`--no-ngram`), interleaved.
    alone = Generator(model, ngram=False)
    alone.generate(SEED_TEXT, 20, sampling, random_seed=0)
    # And the least a word can cost in NumPy (`numpy_floor`), interleaved too.
    network, mixed, floor = [], [], []
    numpy_floor(alone.decoder, 20)
    for _ in range(3):
        network.append(timed(alone.generate, SEED_TEXT, words, sampling, 1, 0)[0])
        mixed.append(timed(generator.generate, SEED_TEXT, words, sampling, 1, 0)[0])
        floor.append(timed(numpy_floor, alone.decoder, words)[0])

    # Cost per generated word after a short and a long seed: the difference
    # between generating 3n and n words, divided by 2n (best of 3 each).
    corpus_words = corpus.read_text(encoding="utf-8").split()
    per_word = {}
    for seed_len in (10, 1000):
        seed = " ".join(corpus_words[:seed_len])
        short = min(
            timed(generator.generate, seed, words, sampling, 1, 0)[0] for _ in range(3)
        )
        long = min(
            timed(generator.generate, seed, 3 * words, sampling, 1, 0)[0]
            for _ in range(3)
        )
        per_word[f"seed_{seed_len}_words_us_per_word"] = round(
            (long - short) / (2 * words) * 1e6, 1
        )
    return {
        "vocab_size": len(model.vocabulary),
        "train_tokens": record["tokens"]["train"],
        "seq_len": config.seq_len,
        "batch_size": config.batch_size,
        "epoch_seconds": round(steady, 2),
        "train_predictions_per_s": round(predictions / steady),
        "generate_words_per_s": round(words / single, 1),
        "generate_words_per_s_streaming": round(words / streamed, 1),
        "ngram_order": model.mixture.ngram.order if model.mixture else 0,
        "generate_words_per_s_network_alone": round(words / min(network), 1),
        "generate_mixed_vs_network_alone": round(min(network) / min(mixed), 2),
        "numpy_floor_words_per_s": round(words / min(floor), 1),
        "network_alone_vs_numpy_floor": round(min(floor) / min(network), 2),
        "generate_16_samples_words_per_s": round(16 * words / batch, 1),
        **per_word,
    }


def numpy_floor(decoder, words: int, seed: int = 0) -> list[int]:
    """What generating one sample costs at the least: `words` words drawn
    (temperature 1) by the decoder's LSTM arithmetic, its weights as
    `Decoder` prepares them, in the fewest NumPy calls a word can take
    (1-D vectors, the input and state written into one buffer, one
    full-vocabulary cumulative sum for the draw), with nothing else: no
    banned words, no checks, no text. The yardstick for how much of a
    word's time is textgen's own bookkeeping and how much NumPy's cost of a
    call on this machine."""
    import numpy as np

    assert all(len(layer) == 2 for layer in decoder.layers), "an LSTM decoder"
    assert decoder.projection is None, "an untied output layer"
    units, rng = decoder.units, np.random.default_rng(seed)
    states = [[np.zeros(units, np.float32)] * 2 for _ in decoder.layers]
    token, chosen = 1, []
    for _ in range(words):
        x = decoder.embeddings[token]
        for i, (weights, bias) in enumerate(decoder.layers):
            h, c = states[i]
            buffer = np.empty(len(weights), np.float32)
            buffer[: len(x)], buffer[len(x) :] = x, h
            t = np.tanh(buffer @ weights + bias)
            s = 0.5 * t + 0.5
            c = s[units : 2 * units] * c + s[:units] * t[2 * units : 3 * units]
            x = s[3 * units :] * np.tanh(c)
            states[i] = [x, c]
        logits = x @ decoder.output_kernel + decoder.output_bias
        mass = np.cumsum(np.exp(logits - logits.max()))
        token = int(np.searchsorted(mass, rng.random() * mass[-1], "right"))
        chosen.append(token)
    return chosen


def memory_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Bytes/s this machine moves to and from memory: the best of `repeats`
    copies of a `megabytes` array (each byte read once and written once),
    far larger than any cache."""
    import numpy as np

    source = np.ones(megabytes * 2**20 // 4, dtype=np.float32)
    target = np.empty_like(source)
    best = min(timed(np.copyto, target, source)[0] for _ in range(repeats))
    return 2 * source.nbytes / best


def default_size_mixture(words: int, book: Path) -> dict:
    """One sample's words/s at the default network size (2 x 512, tied, the
    vocabulary of `book`), with the n-gram memory mixed in, with the network
    on top of it (residual) and without: interleaved, best of 7 each. The
    weights are untrained (the speed does not depend on them); the memory
    is counted on the book. Beside it, the
    yardstick: what reading every weight the decoder uses once costs at
    this machine's memory bandwidth, measured before each round; the ratio
    is the median of the rounds'."""
    import numpy as np

    from textgen.inference.contract import SamplingSettings
    from textgen.inference.generate import Generator
    from textgen.model.config import ModelConfig
    from textgen.model.network import build_model
    from textgen.model.ngram import BUCKETS, Mixture, NgramModel, Residual
    from textgen.text.ids import corpus_ids
    from textgen.text.tokens import TokenizerSettings
    from textgen.text.vocab import Vocabulary

    text = corpus_ids([book], TokenizerSettings())
    vocabulary = Vocabulary.from_counts(text.counts(), 20_000, 2)
    ids = text.encode(vocabulary)
    config = ModelConfig(vocab_size=len(vocabulary))
    model = build_model(config, vocabulary)
    memory = NgramModel.count([ids], len(vocabulary), 3, 2**30)
    model.mixture = Mixture.even(memory)
    sampling = SamplingSettings()
    mixed, alone = Generator(model), Generator(model, ngram=False)
    model.mixture = Residual(memory, np.ones(BUCKETS))
    residual = Generator(model)
    for generator in (mixed, alone, residual):
        generator.generate(SEED_TEXT, 20, sampling, random_seed=0)  # warm up
    decoder = alone.decoder
    # What one step reads: each layer's weights, the projection, the output
    # kernel (a contiguous copy of the tied embeddings' transpose) and bias;
    # of the embedding table, one row.
    weight_bytes = sum(
        array.nbytes
        for array in [decoder.output_kernel, decoder.output_bias]
        + [w for layer in decoder.layers for w in layer]
        + ([] if decoder.projection is None else [decoder.projection])
    )
    # Interleaved rounds, each with its own bandwidth measurement, so a
    # round's ratio compares figures taken in the same state of the machine.
    with_memory, network, bandwidths, ratios, on_top = [], [], [], [], []
    for _ in range(7):
        bandwidths.append(memory_bandwidth(repeats=2))
        network.append(timed(alone.generate, SEED_TEXT, words, sampling, 1, 0)[0])
        with_memory.append(timed(mixed.generate, SEED_TEXT, words, sampling, 1, 0)[0])
        on_top.append(timed(residual.generate, SEED_TEXT, words, sampling, 1, 0)[0])
        ratios.append(network[-1] / words / (weight_bytes / bandwidths[-1]))
    bandwidth = statistics.median(bandwidths)
    read_once = weight_bytes / bandwidth
    per_word = min(network) / words
    return {
        "book": book.name,
        "vocab_size": len(vocabulary),
        "units": config.units,
        "weight_mb": round(weight_bytes / 2**20, 1),
        "memory_gb_per_s": round(bandwidth / 1e9, 1),
        "weights_read_once_us": round(read_once * 1e6),
        "network_alone_us_per_word": round(per_word * 1e6),
        "per_word_vs_weights_read_once": round(statistics.median(ratios), 2),
        "per_word_vs_weights_read_once_range": [
            round(min(ratios), 2),
            round(max(ratios), 2),
        ],
        "network_alone_words_per_s": round(words / min(network), 1),
        "mixed_words_per_s": round(words / min(with_memory), 1),
        "mixed_vs_network_alone": round(min(network) / min(with_memory), 2),
        "residual_words_per_s": round(words / min(on_top), 1),
        "residual_vs_network_alone": round(min(network) / min(on_top), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=SHARED / "moby_dick_four_chapters.txt"
    )
    parser.add_argument(
        "--epochs", type=int, default=4, help="the fastest after the first is timed"
    )
    parser.add_argument("--words", type=int, default=400, help="words per generation")
    parser.add_argument("--recipe-words", type=int, default=30)
    parser.add_argument(
        "--default-size-only",
        action="store_true",
        help="only the n-gram memory's cost at the default network size",
    )
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"corpus not found: {args.corpus} (pass --corpus)")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    book = SHARED / "moby_dick.txt"
    default_size = default_size_mixture(
        args.words, book if book.exists() else args.corpus
    )
    if args.default_size_only:
        print(json.dumps({"default_size": default_size}, indent=2))
        return
    text = args.corpus.read_text(encoding="utf-8")
    recipe, _ = recipe_figures(text, args.epochs, args.recipe_words)
    ours = textgen_figures(args.corpus, args.epochs, args.words)
    print(
        json.dumps(
            {
                "corpus": args.corpus.name,
                "layers": "Embedding 25, LSTM 150 x 2 (the recipe adds Dense 150 relu)",
                "tensorflow": tf.__version__,
                "cpu_count": os.cpu_count(),
                "recipe": recipe,
                "textgen": ours,
                "default_size": default_size,
                "ratios": {
                    "train_predictions_per_s": round(
                        ours["train_predictions_per_s"]
                        / recipe["train_predictions_per_s"],
                        1,
                    ),
                    "generate_words_per_s": round(
                        ours["generate_words_per_s"] / recipe["generate_words_per_s"], 1
                    ),
                    "generate_network_alone_words_per_s": round(
                        ours["generate_words_per_s_network_alone"]
                        / recipe["generate_words_per_s"],
                        1,
                    ),
                    "numpy_floor_words_per_s": round(
                        ours["numpy_floor_words_per_s"]
                        / recipe["generate_words_per_s"],
                        1,
                    ),
                    "generate_16_vs_1_sample": round(
                        ours["generate_16_samples_words_per_s"]
                        / ours["generate_words_per_s"],
                        1,
                    ),
                    "generate_16_vs_1_streaming_sample": round(
                        ours["generate_16_samples_words_per_s"]
                        / ours["generate_words_per_s_streaming"],
                        1,
                    ),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
