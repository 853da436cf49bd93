"""Recurrent layers beyond Keras's own: the peephole LSTM cell, and LSTM layers
whose whole sequence is one differentiable op (`lstm_sequence`) on a CPU.

Gers & Schmidhuber's peephole connections: the input and forget gates look at
the previous cell state, the output gate at the new one, through per-unit
weights. Keras has no built-in peephole LSTM, so `PeepholeLSTMCell` is a
serializable cell; `PeepholeLSTM` runs it. `SequenceLSTM` is Keras's LSTM with
the same weights and file layout, run by `lstm_sequence` on a CPU and by
cuDNN on a GPU.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="textgen")
class PeepholeLSTMCell(keras.layers.Layer):
    """One step of a peephole LSTM; state is [h, c], gate order i f c o.

    i = sigmoid(x W_i + h U_i + p_i * c + b_i)
    f = sigmoid(x W_f + h U_f + p_f * c + b_f)
    c' = f * c + i * tanh(x W_c + h U_c + b_c)
    o = sigmoid(x W_o + h U_o + p_o * c' + b_o)
    h' = o * tanh(c')
    """

    def __init__(self, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        units = self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], 4 * units),
            initializer="glorot_uniform",
            name="kernel",
        )
        self.recurrent_kernel = self.add_weight(
            shape=(units, 4 * units), initializer="orthogonal", name="recurrent_kernel"
        )
        # Forget-gate bias 1, as Keras's LSTM does (unit_forget_bias).
        bias = [0.0] * units + [1.0] * units + [0.0] * (2 * units)
        self.bias = self.add_weight(
            shape=(4 * units,),
            initializer=keras.initializers.Constant(bias),
            name="bias",
        )
        self.peephole = self.add_weight(  # rows: input, forget, output gates
            shape=(3, units), initializer="zeros", name="peephole"
        )
        self.built = True

    def call(self, inputs: Any, states: Any, training: bool = False) -> Any:
        h, c = states[0], states[1]
        z = (
            ops.matmul(inputs, self.kernel)
            + ops.matmul(h, self.recurrent_kernel)
            + self.bias
        )
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        i = ops.sigmoid(z_i + self.peephole[0] * c)
        f = ops.sigmoid(z_f + self.peephole[1] * c)
        c = f * c + i * ops.tanh(z_c)
        o = ops.sigmoid(z_o + self.peephole[2] * c)
        h = o * ops.tanh(c)
        return h, [h, c]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


def lstm_sequence(
    x: Any,
    h: Any,
    c: Any,
    kernel: Any,
    recurrent_kernel: Any,
    bias: Any,
    peephole: Any = None,
    keep: Any = None,
) -> tuple[Any, Any, list[Any]]:
    """Every step of an LSTM (optionally with peepholes) with a hand-written
    gradient that does the work in as few, as large matrix products as it can.

    Keras's generic loop multiplies each step's input by the kernel and
    accumulates each step's weight gradients one small product at a time.
    Here the input products of all steps are one (batch * steps) x features
    product, and so are the kernel, recurrent-kernel and input gradients after
    the backward loop; only `h @ recurrent_kernel` (and its transpose going
    back) stays inside the loop. Under XLA (`jit_compile`, which `train` turns
    on for a CPU) the elementwise gate maths of each step fuse into one kernel.
    Gate order i f c o, as Keras stores it.

    Args:
        x: inputs (batch, steps, features); h, c: states (batch, units).
        kernel, recurrent_kernel, bias: the LSTM cell's weights.
        peephole: (3, units) rows for the input, forget and output gates.
        keep: None, or (batch, steps) floats, 0 where the states are zeroed
            before that step (an item model's end token: see `ItemResets`).

    Returns:
        `(last_output, outputs, [h, c])`, as Keras's RNN `inner_loop` does.
    """
    import tensorflow as tf

    resets = keep is not None
    tensors = [x, h, c, kernel, recurrent_kernel, bias]
    if resets:
        tensors.append(tf.transpose(tf.cast(keep, x.dtype))[:, :, None])
    if peephole is not None:
        tensors.append(peephole)
    tensors = [tf.convert_to_tensor(t) for t in tensors]

    @tf.custom_gradient
    def run(x, h0, c0, kernel, recurrent_kernel, bias, *extra):
        keep_all = extra[0] if resets else None  # (steps, batch, 1)
        peep = (extra[1:] if resets else extra) or (None,)
        lstm = _LSTMPass(x, h0, c0, kernel, recurrent_kernel, bias, keep_all, peep[0])
        return lstm.forward(), lstm.backward

    outputs, h, c = run(*tensors)
    return h, outputs, [h, c]


class _LSTMPass:
    """One call of `lstm_sequence`: the forward loop, then (if asked) the
    backward loop and the gradients, from what the forward loop kept.

    Inside the loops every per-step tensor is transposed, (features, batch):
    the one product per step is then `recurrent_kernel^T @ h^T`, (4u x u) by
    (u x batch), which XLA's CPU kernels run about 1.7x faster at small
    batches than `h @ recurrent_kernel` (batch x u by u x 4u): the same
    arithmetic with the long side first (benchmarks/step.py).

    The forward step takes all four gates with one tanh over the whole (4u,
    batch) block (sigmoid(x) = (1 + tanh(x / 2)) / 2): XLA's CPU code for a
    sigmoid or tanh of each gate's slice measured 2.8-4.3x slower than one
    tanh of the block (2 x 128 characters: 220 -> 78 us a step). The
    backward step keeps its per-gate form: precomputing its factors for all
    steps at once measured faster alone but slowed the whole model's step.
    """

    def __init__(self, x, h0, c0, kernel, recurrent_kernel, bias, keep_all, peep):
        import tensorflow as tf

        self.tf = tf
        self.x, self.kernel, self.recurrent_kernel = x, kernel, recurrent_kernel
        self.recurrent_t = tf.transpose(recurrent_kernel)  # (4u, u)
        self.h0, self.c0 = tf.transpose(h0), tf.transpose(c0)  # (u, batch)
        # (steps, 1, batch), (3, u, 1): either may be None
        self.keep_all = None if keep_all is None else tf.transpose(keep_all, [0, 2, 1])
        self.peep = None if peep is None else peep[:, :, None]
        self.batch, self.steps, self.features = tf.unstack(tf.shape(x))
        self.units = tf.shape(h0)[1]
        x_t = tf.transpose(x, [1, 0, 2])  # (steps, batch, features)
        self.x_flat = tf.reshape(x_t, [self.steps * self.batch, self.features])
        z_x = tf.matmul(self.x_flat, kernel) + bias
        z_x = tf.reshape(z_x, [self.steps, self.batch, 4 * self.units])
        self.z_x = tf.transpose(z_x, [0, 2, 1])  # (steps, 4u, batch)

        # Per gate row: y = tanh(z * scale) * scale + shift is sigmoid(z) on
        # the i, f, o rows (scale 1/2, shift 1/2) and tanh(z) on the g rows.
        def per_row(i, f, g, o):  # (4u, 1)
            return tf.repeat(tf.constant([i, f, g, o], x.dtype), self.units)[:, None]

        self.scale, self.shift = per_row(0.5, 0.5, 1, 0.5), per_row(0.5, 0.5, 0, 0.5)
        if peep is not None:  # (4u, 1): the i and f rows look at c
            none = tf.zeros_like(self.peep[0])
            self.peep_if = tf.concat([self.peep[0], self.peep[1], none, none], 0)

    def _array(self) -> Any:
        return self.tf.TensorArray(self.x.dtype, size=self.steps)

    def _flat(self, per_step: Any) -> Any:
        """(steps, n, batch) -> (steps * batch, n), rows in `x_flat`'s order."""
        tf = self.tf
        n = tf.shape(per_step)[1]
        return tf.reshape(tf.transpose(per_step, [0, 2, 1]), [-1, n])

    def forward(self) -> tuple[Any, Any, Any]:
        """`(outputs (batch, steps, units), h, c)`; keeps every step's states
        and gates (transposed) for the backward pass."""
        tf = self.tf
        _, h, c, hs, cs, gates = tf.while_loop(
            lambda t, *_: t < self.steps,
            self._step,
            [tf.constant(0), self.h0, self.c0, *(self._array() for _ in range(3))],
        )
        # (steps, units or 4 units, batch)
        self.h_all, self.c_all, self.gate_all = hs.stack(), cs.stack(), gates.stack()
        return tf.transpose(self.h_all, [2, 0, 1]), tf.transpose(h), tf.transpose(c)

    def _step(self, t, h, c, hs, cs, gates):
        tf, peep = self.tf, self.peep
        if self.keep_all is not None:
            h, c = h * self.keep_all[t], c * self.keep_all[t]
        z = self.z_x[t] + tf.matmul(self.recurrent_t, h)  # (4u, batch)
        if peep is not None:
            z = z + tf.tile(c, [4, 1]) * self.peep_if
        y = tf.tanh(z * self.scale) * self.scale + self.shift  # i, f, g, o
        i, f, g, o = tf.split(y, 4, 0)
        c = f * c + i * g
        if peep is not None:  # the output gate looks at the new c
            z_o = tf.split(z, 4, 0)[3] + peep[2] * c
            o = 0.5 * tf.tanh(0.5 * z_o) + 0.5
            y = tf.concat([i, f, g, o], 0)
        h = o * tf.tanh(c)
        return t + 1, h, c, hs.write(t, h), cs.write(t, c), gates.write(t, y)

    def backward(self, d_outputs, d_h, d_c) -> list[Any]:
        """The gradients of x, h0, c0, the weights (and None for the keep
        mask), from those of the outputs and the final states."""
        tf = self.tf
        self.d_h_all = tf.transpose(d_outputs, [1, 2, 0])  # (steps, u, batch)
        self.c_prev = tf.concat([self.c0[None], self.c_all[:-1]], 0)
        h_prev = tf.concat([self.h0[None], self.h_all[:-1]], 0)
        if self.keep_all is not None:  # the states each step started from
            self.c_prev, h_prev = self.c_prev * self.keep_all, h_prev * self.keep_all
        _, d_h0, d_c0, d_z = tf.while_loop(
            lambda t, *_: t >= 0,
            self._back_step,
            [self.steps - 1, tf.transpose(d_h), tf.transpose(d_c), self._array()],
        )
        d_z = d_z.stack()  # (steps, 4u, batch)
        d_z_flat = self._flat(d_z)  # (steps * batch, 4u)
        d_x = tf.matmul(d_z_flat, self.kernel, transpose_b=True)
        d_x = tf.reshape(d_x, [self.steps, self.batch, self.features])
        grads = [
            tf.transpose(d_x, [1, 0, 2]),
            tf.transpose(d_h0),
            tf.transpose(d_c0),
            tf.matmul(self.x_flat, d_z_flat, transpose_a=True),
            tf.matmul(self._flat(h_prev), d_z_flat, transpose_a=True),
            tf.reduce_sum(d_z_flat, 0),
        ]
        if self.keep_all is not None:
            grads.append(None)
        if self.peep is not None:
            grads.append(self._peephole_gradient(d_z))
        return grads

    def _back_step(self, t, d_h, d_c, d_z):
        tf, peep = self.tf, self.peep
        d_h = d_h + self.d_h_all[t]
        i, f, g, o = tf.split(self.gate_all[t], 4, 0)
        tanh_c = tf.tanh(self.c_all[t])
        d_zo = d_h * tanh_c * o * (1 - o)
        d_c = d_c + d_h * o * (1 - tanh_c * tanh_c)
        if peep is not None:
            d_c = d_c + d_zo * peep[2]
        d_zi = d_c * g * i * (1 - i)
        d_zf = d_c * self.c_prev[t] * f * (1 - f)
        d_zg = d_c * i * (1 - g * g)
        d_c = d_c * f
        if peep is not None:
            d_c = d_c + d_zi * peep[0] + d_zf * peep[1]
        d_zt = tf.concat([d_zi, d_zf, d_zg, d_zo], 0)  # (4u, batch)
        d_h = tf.matmul(self.recurrent_kernel, d_zt)  # (u, batch)
        if self.keep_all is not None:
            d_h, d_c = d_h * self.keep_all[t], d_c * self.keep_all[t]
        return t - 1, d_h, d_c, d_z.write(t, d_zt)

    def _peephole_gradient(self, d_z) -> Any:
        tf = self.tf
        d_zi, d_zf, _, d_zo = tf.split(d_z, 4, 1)  # each (steps, u, batch)
        return tf.stack(
            [
                tf.reduce_sum(d_zi * self.c_prev, [0, 2]),
                tf.reduce_sum(d_zf * self.c_prev, [0, 2]),
                tf.reduce_sum(d_zo * self.c_all, [0, 2]),
            ]
        )


def _sequence_op_applies(layer: keras.layers.RNN, mask: Any) -> bool:
    """Whether `lstm_sequence` can run this layer: TensorFlow, no mask, forwards,
    no dropout inside the cell (textgen's dropout sits between layers)."""
    return (
        keras.backend.backend() == "tensorflow"
        and mask is None
        and not layer.go_backwards
        and not getattr(layer.cell, "dropout", 0)
        and not getattr(layer.cell, "recurrent_dropout", 0)
    )


def on_gpu() -> bool:
    """Whether TensorFlow sees a GPU (then Keras's cuDNN path runs the LSTM)."""
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def resetting_loop(
    cell: Any, x: Any, states: list[Any], keep: Any, training: bool = False
) -> tuple[Any, Any, list[Any]]:
    """Any Keras cell over a sequence, its states zeroed before each step
    where `keep` (batch, steps) is 0; Keras's RNN `inner_loop` contract.

    The loop for what `lstm_sequence` and cuDNN do not run: GRU and simple RNN
    cells, and an LSTM on a GPU (cuDNN cannot reset mid-sequence).
    """
    import tensorflow as tf

    # A known length bounds the loop, which XLA needs to differentiate it.
    steps = x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]
    x_t = tf.transpose(x, [1, 0, 2])
    keep_t = tf.transpose(tf.cast(keep, x.dtype))[:, :, None]  # (steps, batch, 1)

    def step(t, outputs, *states):
        states = [s * keep_t[t] for s in states]
        output, states = cell(x_t[t], states, training=training)
        return [t + 1, outputs.write(t, output), *states]

    _, outputs, *states = tf.while_loop(
        lambda t, *_: t < steps,
        step,
        [tf.constant(0), tf.TensorArray(x.dtype, size=steps), *states],
        maximum_iterations=steps,
    )
    outputs = tf.transpose(outputs.stack(), [1, 0, 2])
    return outputs[:, -1], outputs, list(states)


class ItemResets:
    """A recurrent layer that can zero its states mid-sequence: `layer(x,
    initial_state=..., keep=k)` with `k` (batch, steps) 0 before each step
    that starts afresh. An item model passes 0 at every end token, so training
    starts each item from zero states, as generation and evaluation do.
    Without `keep` the layer is exactly its Keras base class."""

    def call(self, sequences, initial_state=None, mask=None, training=False, keep=None):
        # Keras's RNN.call prepares the states and calls `inner_loop`, which
        # reads the keep mask from here (a plain dict: untracked by Keras).
        self.__dict__["_keep"] = keep
        try:
            return super().call(
                sequences, initial_state=initial_state, mask=mask, training=training
            )
        finally:
            self.__dict__["_keep"] = None

    def resets(self, mask: Any) -> Any:
        """The keep mask of the call under way, or None."""
        keep = self.__dict__.get("_keep")
        assert keep is None or mask is None, "a keep mask and a mask together"
        return keep

    def inner_loop(self, sequences, initial_state, mask, training=False):
        """With a keep mask, `resetting_loop` (neither cuDNN nor Keras's own
        loop can reset mid-sequence); else the base class's loop."""
        keep = self.resets(mask)
        if keep is None:
            return super().inner_loop(sequences, initial_state, mask, training)
        states = (
            initial_state
            if isinstance(initial_state, list | tuple)
            else [initial_state]
        )
        return resetting_loop(self.cell, sequences, list(states), keep, training)


@keras.saving.register_keras_serializable(package="textgen")
class SequenceLSTM(ItemResets, keras.layers.LSTM):
    """Keras's LSTM (same weights, same file), run by `lstm_sequence` on a CPU.

    On a GPU it is Keras's LSTM exactly, so cuDNN runs it (but for an item
    model's training, which resets at end tokens: Keras's loop then).
    """

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if _sequence_op_applies(self, mask) and not on_gpu():
            cell = self.cell
            return lstm_sequence(
                sequences,
                initial_state[0],
                initial_state[1],
                cell.kernel,
                cell.recurrent_kernel,
                cell.bias,
                keep=self.resets(mask),
            )
        return super().inner_loop(sequences, initial_state, mask, training)


@keras.saving.register_keras_serializable(package="textgen")
class PeepholeLSTM(ItemResets, keras.layers.RNN):
    """`keras.layers.RNN(PeepholeLSTMCell(...))`, run by `lstm_sequence`."""

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if _sequence_op_applies(self, mask):
            cell = self.cell
            return lstm_sequence(
                sequences,
                initial_state[0],
                initial_state[1],
                cell.kernel,
                cell.recurrent_kernel,
                cell.bias,
                cell.peephole,
                keep=self.resets(mask),
            )
        return super().inner_loop(sequences, initial_state, mask, training)


@keras.saving.register_keras_serializable(package="textgen")
class GRU(ItemResets, keras.layers.GRU):
    """Keras's GRU (cuDNN on a GPU), able to reset mid-sequence."""


@keras.saving.register_keras_serializable(package="textgen")
class SimpleRNN(ItemResets, keras.layers.SimpleRNN):
    """Keras's SimpleRNN, able to reset mid-sequence."""
