"""`Decoder`: a model's recurrent network stepped one token at a time in
NumPy, from its weights: what generation and evaluation run, with no
TensorFlow. Every cell (LSTM, GRU, RNN, peephole LSTM) gives the logits the
Keras layers give, to float tolerance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ..errors import Cancelled
from .config import CELL_SPECS, ModelConfig

Weights = Mapping[str, np.ndarray]  # by `ModelConfig.weight_shapes` name
State = list[np.ndarray]  # one layer's state: [h, c] for LSTM, [h] otherwise


# The steps below compute what Keras's cells compute, with each layer's input
# and recurrent kernels stacked into one matrix (one matmul per layer per
# word) and every sigmoid written as 0.5 * tanh(0.5 * x) + 0.5, with the 0.5
# folded into the weights, so one tanh call covers all gates.


def _weights(layer: Weights, *names: str) -> list[np.ndarray]:
    return [np.asarray(layer[name], dtype=np.float32) for name in names]


def _lstm_weights(layer: Weights) -> list[np.ndarray]:
    kernel, recurrent_kernel, bias = _weights(
        layer, "kernel", "recurrent_kernel", "bias"
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


def _gru_weights(layer: Weights) -> list[np.ndarray]:
    kernel, recurrent_kernel, bias = _weights(
        layer, "kernel", "recurrent_kernel", "bias"
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


def _rnn_weights(layer: Weights) -> list[np.ndarray]:
    kernel, recurrent_kernel, bias = _weights(
        layer, "kernel", "recurrent_kernel", "bias"
    )
    return [np.concatenate([kernel, recurrent_kernel]), bias]


def _rnn_step(w: list[np.ndarray], x: np.ndarray, state: State) -> State:
    weights, bias = w
    return [np.tanh(np.concatenate([x, state[0]], axis=1) @ weights + bias)]


def _peephole_weights(layer: Weights) -> list[np.ndarray]:
    names = CELL_SPECS["peephole"].weights
    kernel, recurrent_kernel, bias, peephole = _weights(layer, *names)
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


# Each cell's (weights prepared once, one step): with its `CellSpec`, all a
# cell is to the decoder.
_CELLS = {
    "peephole": (_peephole_weights, _peephole_step),
    "lstm": (_lstm_weights, _lstm_step),
    "gru": (_gru_weights, _gru_step),
    "rnn": (_rnn_weights, _rnn_step),
}


class Decoder:
    """One-token-at-a-time inference from a model's weights, in NumPy.

    Computes exactly what the Keras layers compute (tested to float
    tolerance), with the state passed in and out. Needs no TensorFlow: the
    weights come from the model file (`model/file.py`'s `read_model`) or from a
    Keras model (`LanguageModel.named_weights`), named as in
    `ModelConfig.weight_shapes`.
    """

    def __init__(self, config: ModelConfig, weights: Weights) -> None:
        """Args:
        config: the network's shape.
        weights: every weight of `config.weight_shapes()`, by name.
        """
        prepare, self._step = _CELLS[config.cell]
        self._state_count = config.cell_spec.states
        self.units = config.units
        self.embeddings = np.asarray(weights["embedding"], np.float32)  # (vocab, dim)
        self.layers = [
            prepare(
                {
                    name.split(".", 1)[1]: value
                    for name, value in weights.items()
                    if name.startswith(f"layer{i}.")
                }
            )
            for i in range(config.layers)
        ]
        # Tied output through a projection: (hidden @ projection) @ E^T, as
        # Keras computes it; with units > embedding_dim that is far less
        # arithmetic, and far fewer bytes read per step, than one
        # (units, vocab) matrix.
        self.projection: np.ndarray | None = None
        if not config.tied:
            self.output_kernel = np.asarray(weights["logits.kernel"], np.float32)
            self.output_bias = np.asarray(weights["logits.bias"], np.float32)
        else:  # tied to the embeddings, through the projection if there is one
            self.output_kernel = self.embeddings.T
            if "projection.kernel" in weights:
                self.projection = np.asarray(weights["projection.kernel"], np.float32)
            self.output_bias = np.asarray(weights["output_bias"], np.float32)
        self.output_kernel = np.ascontiguousarray(self.output_kernel)  # (in, vocab)

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
        if self.projection is not None:
            hidden = hidden @ self.projection
        logits = hidden @ self.output_kernel
        logits += self.output_bias
        return logits

    def read(
        self,
        ids: np.ndarray,
        states: list[State] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> tuple[np.ndarray, list[State]]:
        """Feed (batch, steps) ids in turn; return the last logits and states.

        Only the last step computes logits. `cancelled`, when given, is asked
        every `_CHECK_EVERY` steps; `Cancelled` is raised once it says yes.
        """
        states = states or self.zero_states(ids.shape[0])
        steps = ids.shape[1]
        assert steps > 0, "read needs at least one step"
        for t in range(steps - 1):
            if cancelled is not None and t % _CHECK_EVERY == 0 and cancelled():
                raise Cancelled("cancelled while reading the seed")
            _, states = self.advance(ids[:, t], states)
        return self.step(ids[:, -1], states)


_CHECK_EVERY = 64  # steps of `Decoder.read` between two looks at `cancelled`
