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

    Returns:
        `(last_output, outputs, [h, c])`, as Keras's RNN `inner_loop` does.
    """
    import tensorflow as tf

    tensors = [x, h, c, kernel, recurrent_kernel, bias]
    if peephole is not None:
        tensors.append(peephole)
    tensors = [tf.convert_to_tensor(t) for t in tensors]

    @tf.custom_gradient
    def run(x, h0, c0, kernel, recurrent_kernel, bias, *peep):
        p_i = p_f = p_o = None
        if peep:
            p_i, p_f, p_o = peep[0][0], peep[0][1], peep[0][2]
        batch, steps, features = tf.unstack(tf.shape(x))
        units = tf.shape(h0)[1]
        x_t = tf.transpose(x, [1, 0, 2])  # (steps, batch, features)
        x_flat = tf.reshape(x_t, [steps * batch, features])
        z_x = tf.reshape(tf.matmul(x_flat, kernel) + bias, [steps, batch, 4 * units])

        def forward(t, h, c, hs, cs, gates):
            z_i, z_f, z_g, z_o = tf.split(
                z_x[t] + tf.matmul(h, recurrent_kernel), 4, -1
            )
            if peep:
                z_i, z_f = z_i + p_i * c, z_f + p_f * c
            i, f, g = tf.sigmoid(z_i), tf.sigmoid(z_f), tf.tanh(z_g)
            c = f * c + i * g
            o = tf.sigmoid(z_o + p_o * c if peep else z_o)
            h = o * tf.tanh(c)
            gates = gates.write(t, tf.concat([i, f, g, o], -1))
            return t + 1, h, c, hs.write(t, h), cs.write(t, c), gates

        def array() -> Any:
            return tf.TensorArray(x.dtype, size=steps)

        _, h, c, hs, cs, gates = tf.while_loop(
            lambda t, *_: t < steps,
            forward,
            [tf.constant(0), h0, c0, array(), array(), array()],
        )
        h_all, c_all, gate_all = (
            hs.stack(),
            cs.stack(),
            gates.stack(),
        )  # (steps, batch, .)
        outputs = tf.transpose(h_all, [1, 0, 2])  # (batch, steps, units)

        def gradient(d_outputs, d_h, d_c):
            d_h_all = tf.transpose(d_outputs, [1, 0, 2])
            c_prev = tf.concat([c0[None], c_all[:-1]], 0)

            def backward(t, d_h, d_c, d_z):
                d_h = d_h + d_h_all[t]
                i, f, g, o = tf.split(gate_all[t], 4, -1)
                tanh_c = tf.tanh(c_all[t])
                d_zo = d_h * tanh_c * o * (1 - o)
                d_c = d_c + d_h * o * (1 - tanh_c * tanh_c)
                if peep:
                    d_c = d_c + d_zo * p_o
                d_zi = d_c * g * i * (1 - i)
                d_zf = d_c * c_prev[t] * f * (1 - f)
                d_zg = d_c * i * (1 - g * g)
                d_c = d_c * f
                if peep:
                    d_c = d_c + d_zi * p_i + d_zf * p_f
                d_zt = tf.concat([d_zi, d_zf, d_zg, d_zo], -1)
                d_h = tf.matmul(d_zt, recurrent_kernel, transpose_b=True)
                return t - 1, d_h, d_c, d_z.write(t, d_zt)

            _, d_h0, d_c0, d_z = tf.while_loop(
                lambda t, *_: t >= 0,
                backward,
                [steps - 1, d_h, d_c, array()],
            )
            d_z = tf.reshape(d_z.stack(), [steps * batch, 4 * units])
            h_prev = tf.reshape(
                tf.concat([h0[None], h_all[:-1]], 0), [steps * batch, units]
            )
            d_x = tf.matmul(d_z, kernel, transpose_b=True)
            grads = [
                tf.transpose(tf.reshape(d_x, [steps, batch, features]), [1, 0, 2]),
                d_h0,
                d_c0,
                tf.matmul(x_flat, d_z, transpose_a=True),
                tf.matmul(h_prev, d_z, transpose_a=True),
                tf.reduce_sum(d_z, 0),
            ]
            if peep:
                d_zi, d_zf, _, d_zo = tf.split(d_z, 4, -1)
                c_flat = tf.reshape(c_all, [steps * batch, units])
                c_prev_flat = tf.reshape(c_prev, [steps * batch, units])
                grads.append(
                    tf.stack(
                        [
                            tf.reduce_sum(d_zi * c_prev_flat, 0),
                            tf.reduce_sum(d_zf * c_prev_flat, 0),
                            tf.reduce_sum(d_zo * c_flat, 0),
                        ]
                    )
                )
            return grads

        return (outputs, h, c), gradient

    outputs, h, c = run(*tensors)
    return h, outputs, [h, c]


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


@keras.saving.register_keras_serializable(package="textgen")
class SequenceLSTM(keras.layers.LSTM):
    """Keras's LSTM (same weights, same file), run by `lstm_sequence` on a CPU.

    On a GPU it is Keras's LSTM exactly, so cuDNN runs it.
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
            )
        return super().inner_loop(sequences, initial_state, mask, training)


@keras.saving.register_keras_serializable(package="textgen")
class PeepholeLSTM(keras.layers.RNN):
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
            )
        return super().inner_loop(sequences, initial_state, mask, training)
