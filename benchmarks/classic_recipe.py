"""The classic course recipe that textgen is measured against, in Keras 3.

The course notebook the project grew from (see docs/benchmarks.md):
lower-cased word tokens (punctuation dropped, as the notebook's filter did);
every stride-1 window of 25 words with the 26th word as its only label,
one-hot encoded (`to_categorical`) for categorical cross-entropy;
Embedding(vocab, 25) -> LSTM(150, return_sequences) -> LSTM(150) ->
Dense(150, relu) -> Dense(vocab, softmax); Adam, batch 128; generation calls
`model.predict` on the last 25 words once per word and takes the arg-max.
Keras 3 has no `Tokenizer` or `predict_classes`: a dict and
`argmax(model.predict(...))` do the same jobs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from textgen.text.tokens import tokenize

WINDOW = 25  # words of context per example
BATCH_SIZE = 128


@dataclass
class RecipeData:
    words: list[str]
    word_to_id: dict[str, int]  # ids from 1, as Keras's Tokenizer numbered them
    inputs: np.ndarray  # (windows, 25) int32
    labels: np.ndarray  # (windows, vocab + 1) float32, one-hot

    @property
    def vocab_size(self) -> int:
        return len(self.word_to_id) + 1


def epoch_timer(seconds: list[float]):
    """A Keras callback that appends each epoch's wall-clock seconds to `seconds`."""
    import time

    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    return EpochTimer()


def recipe_words(text: str) -> list[str]:
    """Lower-cased word tokens without punctuation."""
    return [w for w in tokenize(text) if any(ch.isalnum() for ch in w)]


def one_hot_bytes(n_tokens: int, vocab_size: int) -> int:
    """Memory the one-hot label matrix needs, in bytes (float32)."""
    return max(n_tokens - WINDOW, 0) * vocab_size * 4


def prepare(text: str) -> RecipeData:
    import keras

    words = recipe_words(text)
    counts: dict[str, int] = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    word_to_id = {w: i + 1 for i, w in enumerate(ranked)}
    ids = np.array([word_to_id[w] for w in words], dtype=np.int32)
    # Every stride-1 window of 26 ids: 25 inputs, the 26th the label.
    windows = np.lib.stride_tricks.sliding_window_view(ids, WINDOW + 1).copy()
    labels = keras.utils.to_categorical(windows[:, -1], num_classes=len(word_to_id) + 1)
    return RecipeData(words, word_to_id, windows[:, :-1], labels)


def build(vocab_size: int):
    import keras

    model = keras.Sequential(
        [
            keras.Input((WINDOW,), dtype="int32"),
            keras.layers.Embedding(vocab_size, 25),
            keras.layers.LSTM(150, return_sequences=True),
            keras.layers.LSTM(150),
            keras.layers.Dense(150, activation="relu"),
            keras.layers.Dense(vocab_size, activation="softmax"),
        ]
    )
    model.compile(
        loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"]
    )
    return model


def generate(model, data: RecipeData, seed: str, n_words: int) -> list[str]:
    """Greedy generation, one `model.predict` on the last 25 words per word."""
    import keras

    id_to_word = {i: w for w, i in data.word_to_id.items()}
    ids = [data.word_to_id.get(w, 0) for w in recipe_words(seed)]
    out = []
    for _ in range(n_words):
        x = keras.utils.pad_sequences([ids], maxlen=WINDOW, truncating="pre")
        next_id = int(np.argmax(model.predict(x, verbose=0)[0]))
        ids.append(next_id)
        out.append(id_to_word.get(next_id, ""))
    return out
