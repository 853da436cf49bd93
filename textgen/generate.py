"""`Generator`: text from a trained model with carried recurrent state.

The seed is read once; after that each new word is one recurrent step from the
carried state, never a re-run of the window. The steps run in NumPy on the
model's own weights (`Decoder`): for one word at a time that is far cheaper
than a TensorFlow call. Several samples run as one batch; one sample streams.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .sampling import SamplingSettings, next_ids
from .tokens import PARAGRAPH, StreamingDetokenizer, detokenize, tokenize
from .vocab import PAD_ID, UNK_ID

if TYPE_CHECKING:
    from .model import LanguageModel

State = list[np.ndarray]  # one layer's state: [h, c] for LSTM, [h] otherwise


# The steps below compute what Keras's cells compute, with each layer's input
# and recurrent kernels stacked into one matrix (one matmul per layer per
# word) and every sigmoid written as 0.5 * tanh(0.5 * x) + 0.5, with the 0.5
# folded into the weights, so one tanh call covers all gates.


def _weights(cell: Any, *names: str) -> list[np.ndarray]:
    return [np.asarray(getattr(cell, name)) for name in names]


def _lstm_weights(cell: Any) -> list[np.ndarray]:
    kernel, recurrent_kernel, bias = _weights(
        cell, "kernel", "recurrent_kernel", "bias"
    )
    units = recurrent_kernel.shape[0]
    scale = np.full(4 * units, 0.5, dtype=np.float32)
    scale[2 * units : 3 * units] = 1.0  # gate order i f c o; c is a tanh
    return [np.concatenate([kernel, recurrent_kernel]) * scale, bias * scale]


def _lstm_step(w: list[np.ndarray], x: np.ndarray, state: State) -> State:
    weights, bias = w
    h, c = state
    u = h.shape[1]
    t = np.tanh(np.concatenate([x, h], axis=1) @ weights + bias)  # (batch, 4u)
    s = 0.5 * t + 0.5  # the sigmoid gates, where they apply
    c = s[:, u : 2 * u] * c + s[:, :u] * t[:, 2 * u : 3 * u]
    return [s[:, 3 * u :] * np.tanh(c), c]


def _gru_weights(cell: Any) -> list[np.ndarray]:
    kernel, recurrent_kernel, bias = _weights(
        cell, "kernel", "recurrent_kernel", "bias"
    )
    # Keras's GRU with reset_after=True (its default, and cuDNN's variant):
    # bias[0] is the input bias, bias[1] the recurrent bias.
    units = recurrent_kernel.shape[0]
    scale = np.full(3 * units, 0.5, dtype=np.float32)
    scale[2 * units :] = 1.0  # gate order z r h; h is a tanh
    return [kernel * scale, bias[0] * scale, recurrent_kernel * scale, bias[1] * scale]


def _gru_step(w: list[np.ndarray], x: np.ndarray, state: State) -> State:
    kernel, input_bias, recurrent_kernel, recurrent_bias = w
    (h,) = state
    u = h.shape[1]
    from_x = x @ kernel + input_bias  # (batch, 3u)
    from_h = h @ recurrent_kernel + recurrent_bias
    zr = 0.5 * np.tanh(from_x[:, : 2 * u] + from_h[:, : 2 * u]) + 0.5
    z, r = zr[:, :u], zr[:, u:]
    candidate = np.tanh(from_x[:, 2 * u :] + r * from_h[:, 2 * u :])
    return [candidate + z * (h - candidate)]


def _rnn_weights(cell: Any) -> list[np.ndarray]:
    kernel, recurrent_kernel, bias = _weights(
        cell, "kernel", "recurrent_kernel", "bias"
    )
    return [np.concatenate([kernel, recurrent_kernel]), bias]


def _rnn_step(w: list[np.ndarray], x: np.ndarray, state: State) -> State:
    weights, bias = w
    return [np.tanh(np.concatenate([x, state[0]], axis=1) @ weights + bias)]


def _peephole_weights(cell: Any) -> list[np.ndarray]:
    names = ("kernel", "recurrent_kernel", "bias", "peephole")
    kernel, recurrent_kernel, bias, peephole = _weights(cell, *names)
    return [np.concatenate([kernel, recurrent_kernel]), bias, peephole]


def _peephole_step(w: list[np.ndarray], x: np.ndarray, state: State) -> State:
    # The gates see the cell state, so they cannot share one tanh call.
    weights, bias, peephole = w
    h, c = state
    u = h.shape[1]
    z = np.concatenate([x, h], axis=1) @ weights + bias  # (batch, 4u): i f c o
    i = _sigmoid(z[:, :u] + peephole[0] * c)
    f = _sigmoid(z[:, u : 2 * u] + peephole[1] * c)
    c = f * c + i * np.tanh(z[:, 2 * u : 3 * u])
    o = _sigmoid(z[:, 3 * u :] + peephole[2] * c)
    return [o * np.tanh(c), c]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * x) + 0.5


_CELLS = {
    "peephole": (_peephole_weights, _peephole_step),
    "lstm": (_lstm_weights, _lstm_step),
    "gru": (_gru_weights, _gru_step),
    "rnn": (_rnn_weights, _rnn_step),
}


class Decoder:
    """One-word-at-a-time inference with the weights of a `LanguageModel`.

    Computes exactly what the Keras layers compute (tested to float
    tolerance), in NumPy, with the state passed in and out.
    """

    def __init__(self, model: LanguageModel) -> None:
        config = model.model_config
        prepare, self._step = _CELLS[config.cell]
        self._state_count = 2 if config.cell in ("lstm", "peephole") else 1
        self.units = config.units
        self.embeddings = np.asarray(model.embedding.embeddings)  # (vocab, dim)
        self.layers = [prepare(layer.cell) for layer in model.recurrent_layers]
        if model.logits is not None:
            self.output_kernel = np.asarray(model.logits.kernel)  # (units, vocab)
            self.output_bias = np.asarray(model.logits.bias)
        else:  # tied to the embeddings, through the projection if there is one
            self.output_kernel = self.embeddings.T
            if model.projection is not None:
                self.output_kernel = (
                    np.asarray(model.projection.kernel) @ self.embeddings.T
                )
            self.output_bias = np.asarray(model.output_bias)
        self.output_kernel = np.ascontiguousarray(self.output_kernel)

    def zero_states(self, batch: int) -> list[State]:
        """All-zero states for `batch` sequences, as Keras starts them."""
        zeros = np.zeros((batch, self.units), dtype=np.float32)
        return [[zeros] * self._state_count for _ in self.layers]

    def step(
        self, ids: np.ndarray, states: list[State]
    ) -> tuple[np.ndarray, list[State]]:
        """Feed one word per sequence; return next-word logits and new states.

        Args:
            ids: (batch,) word ids.
            states: per layer, the state carried from the previous step.
        Returns:
            (batch, vocab_size) logits and the states to carry on.
        """
        hidden, states = self.advance(ids, states)
        return self.logits(hidden), states

    def advance(
        self, ids: np.ndarray, states: list[State]
    ) -> tuple[np.ndarray, list[State]]:
        """The recurrent part of `step`: the top layer's output and new states."""
        x = self.embeddings[ids]  # (batch, dim)
        new_states = []
        for weights, state in zip(self.layers, states, strict=True):
            state = self._step(weights, x, state)
            new_states.append(state)
            x = state[0]  # (batch, units)
        return x, new_states

    def logits(self, hidden: np.ndarray) -> np.ndarray:
        """Next-word logits (rows, vocab_size) from top-layer outputs (rows, units)."""
        logits = hidden @ self.output_kernel
        logits += self.output_bias
        return logits

    def read(
        self, ids: np.ndarray, states: list[State] | None = None
    ) -> tuple[np.ndarray, list[State]]:
        """Feed (batch, steps) ids in turn; return the last logits and states."""
        states = states or self.zero_states(ids.shape[0])
        logits = None
        for t in range(ids.shape[1]):
            logits, states = self.step(ids[:, t], states)
        assert logits is not None, "read needs at least one step"
        return logits, states


MAX_SEED_CHARS = 10_000  # a longer seed is cut to its end


class Generator:
    """Generates text from a `LanguageModel`; reuse one for many calls."""

    def __init__(self, model: LanguageModel) -> None:
        """Args:
        model: a trained model (from `train` or `load_model`).
        """
        self.vocabulary = model.vocabulary
        self.tokenizer_settings = model.tokenizer_settings
        self.capitalize = model.tokenizer_settings.lowercase
        self.decoder = Decoder(model)
        self._banned_ids = (PAD_ID, UNK_ID)
        self.last_words: list[list[str]] = []  # the generated words of the last call

    @staticmethod
    def usable_seed(seed: str) -> str:
        """The seed, or for a very long one its last `MAX_SEED_CHARS` characters
        from a word boundary: more text than that cannot change the state the
        model carries forward, and reading it would only cost time."""
        if len(seed) <= MAX_SEED_CHARS:
            return seed
        tail = seed[-MAX_SEED_CHARS:]
        cut = next((i for i, c in enumerate(tail) if c.isspace()), len(tail))
        return tail[cut:].lstrip() if cut < len(tail) else tail

    def seed_words(self, seed: str) -> list[str]:
        """The (usable part of the) seed as the model's tokens."""
        return tokenize(self.usable_seed(seed), self.tokenizer_settings)

    def unknown_seed_words(self, seed: str) -> list[str]:
        """Seed words the model does not know; they are read as `<unk>`."""
        return self.vocabulary.unknown(self.seed_words(seed))

    def generate(
        self,
        seed: str = "",
        length: int = 50,
        sampling: SamplingSettings = SamplingSettings(),
        num_samples: int = 1,
        random_seed: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> list[str]:
        """Continue `seed` by `length` words, `num_samples` times in one batch.

        Args:
            seed: text to start from; empty starts a new paragraph; of a very
                long one only the end is read (see `usable_seed`).
            length: words (tokens) to generate after the seed.
            sampling: temperature, top-k and top-p.
            num_samples: independent continuations, run as one batch.
            random_seed: fixes the sampled words; None draws a fresh seed.
            on_text: with one sample, called with each piece of text as soon as
                it can be printed (the seed first); the pieces join to the result.

        Returns:
            One detokenized text per sample, each starting with the seed.
        """
        rng = np.random.default_rng(random_seed)
        seed_words = self.seed_words(seed)
        seed_ids = self.vocabulary.encode(seed_words or [PARAGRAPH])
        batch_ids = np.repeat(seed_ids[None, :], num_samples, axis=0)  # (batch, seed)
        logits, states = self.decoder.read(batch_ids)

        stream = StreamingDetokenizer(self.capitalize) if on_text else None
        if stream is not None:
            for word in seed_words:
                on_text(stream.push(word))
        generated = np.zeros((num_samples, length), dtype=np.int64)
        for t in range(length):
            chosen = next_ids(logits, sampling, rng, self._banned_ids)
            generated[:, t] = chosen
            if stream is not None:
                on_text(stream.push(self.vocabulary.words[chosen[0]]))
            if t + 1 < length:
                logits, states = self.decoder.step(chosen, states)
        if stream is not None:
            on_text(stream.finish())
        self.last_words = [self.vocabulary.decode(row) for row in generated]
        return [
            detokenize(seed_words + words, self.capitalize) for words in self.last_words
        ]
