"""`PeepholeLSTMCell`: the LSTM variant whose gates also see the cell state.

Gers & Schmidhuber's peephole connections: the input and forget gates look at
the previous cell state, the output gate at the new one, through per-unit
weights. Keras has no built-in peephole LSTM, so this is a serializable
Keras cell for `keras.layers.RNN`. It runs as a generic RNN loop, never on
the fused cuDNN kernels.
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
