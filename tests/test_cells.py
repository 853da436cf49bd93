import math

import numpy as np
import pytest

from textgen.model.cells import PeepholeLSTMCell


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_peephole_step_matches_a_hand_computation():
    """One unit, one input: every gate written out by hand."""
    cell = PeepholeLSTMCell(1)
    cell.build((None, 1))
    # gate order i f c o
    cell.kernel.assign([[0.5, -0.3, 0.8, 0.2]])
    cell.recurrent_kernel.assign([[0.1, 0.4, -0.6, 0.3]])
    cell.bias.assign([0.05, 1.0, -0.1, 0.2])
    cell.peephole.assign([[0.7], [-0.2], [0.9]])  # input, forget, output
    x, h, c = 1.5, -0.4, 0.6

    i = sigmoid(0.5 * x + 0.1 * h + 0.05 + 0.7 * c)
    f = sigmoid(-0.3 * x + 0.4 * h + 1.0 - 0.2 * c)
    c_new = f * c + i * math.tanh(0.8 * x - 0.6 * h - 0.1)
    o = sigmoid(0.2 * x + 0.3 * h + 0.2 + 0.9 * c_new)  # the new cell state
    h_new = o * math.tanh(c_new)

    out, (h_out, c_out) = cell(
        np.array([[x]], "float32"),
        [np.array([[h]], "float32"), np.array([[c]], "float32")],
    )
    assert math.isclose(float(np.asarray(c_out)[0, 0]), c_new, rel_tol=1e-6)
    assert math.isclose(float(np.asarray(h_out)[0, 0]), h_new, rel_tol=1e-6)
    assert math.isclose(float(np.asarray(out)[0, 0]), h_new, rel_tol=1e-6)


def test_peephole_weights_matter():
    """With zero peepholes the cell is a plain LSTM step; non-zero ones change it."""
    cell = PeepholeLSTMCell(3)
    cell.build((None, 2))
    x = np.ones((1, 2), "float32")
    states = [np.full((1, 3), 0.5, "float32"), np.full((1, 3), 2.0, "float32")]
    before = np.asarray(cell(x, states)[0])
    cell.peephole.assign(np.full((3, 3), 0.8))
    assert not np.allclose(before, np.asarray(cell(x, states)[0]))
    assert cell.get_config()["units"] == 3


def _values_and_gradients(forward, x, h, c, jit: bool, weights):
    """Outputs, final states and the gradients of a mixed loss with respect to
    the inputs, the initial states and `weights`; `forward(x, [h, c])` gives
    `(outputs, h_n, c_n)`."""
    import tensorflow as tf

    @tf.function(jit_compile=jit)
    def run(x, h, c):
        with tf.GradientTape() as tape:
            tape.watch([x, h, c])
            outputs, h_n, c_n = forward(x, [h, c])
            scale = tf.range(outputs.shape[-1], dtype=tf.float32)
            loss = (
                tf.reduce_sum(outputs * scale)
                + tf.reduce_sum(tf.sin(h_n))
                + tf.reduce_sum(c_n * c_n)
            )
        return [outputs, h_n, c_n, *tape.gradient(loss, [x, h, c, *weights])]

    return [v.numpy() for v in run(x, h, c)]


def _layer_values_and_gradients(layer, x, h, c, jit: bool):
    def forward(x, states):
        return layer(x, initial_state=states)

    return _values_and_gradients(forward, x, h, c, jit, layer.trainable_variables)


@pytest.mark.slow
@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("peephole", [False, True])
def test_sequence_op_equals_the_keras_loop(peephole, jit):
    """`lstm_sequence`'s values and hand-written gradients equal those of Keras's
    own step-by-step loop (which TensorFlow differentiates itself), with and
    without XLA, for the LSTM and the peephole LSTM."""
    import keras

    from textgen.model.cells import PeepholeLSTM, SequenceLSTM

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 7, 5)).astype("float32")
    h = rng.normal(size=(3, 4)).astype("float32")
    c = rng.normal(size=(3, 4)).astype("float32")
    options = {"return_sequences": True, "return_state": True}
    if peephole:
        ours = PeepholeLSTM(PeepholeLSTMCell(4), **options)
        reference = keras.layers.RNN(PeepholeLSTMCell(4), **options)
    else:
        ours = SequenceLSTM(4, **options)
        reference = keras.layers.LSTM(4, **options)
    ours.build((None, None, 5))
    reference.build((None, None, 5))
    for mine, theirs in zip(ours.weights, reference.weights, strict=True):
        value = rng.normal(scale=0.5, size=mine.shape).astype("float32")
        mine.assign(value)
        theirs.assign(value)
    got = _layer_values_and_gradients(ours, x, h, c, jit)
    want = _layer_values_and_gradients(reference, x, h, c, jit)
    assert len(got) == len(want) == 6 + len(ours.weights)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert np.abs(got[-1]).sum() > 0  # the last weight's gradient is not vacuous


@pytest.mark.slow
@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("peephole", [False, True])
def test_sequence_op_resets_as_the_generic_loop_does(peephole, jit):
    """With a keep mask (an item model's end tokens), `lstm_sequence`'s values
    and hand-written gradients equal those TensorFlow derives for the
    step-by-step `resetting_loop`, including a reset at the first step."""
    from textgen.model.cells import lstm_sequence, resetting_loop

    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 9, 5)).astype("float32")
    h = rng.normal(size=(3, 4)).astype("float32")
    c = rng.normal(size=(3, 4)).astype("float32")
    keep = np.ones((3, 9), "float32")
    keep[0, 3] = keep[1, 0] = keep[1, 5] = keep[2, 8] = 0
    cell = PeepholeLSTMCell(4)
    if not peephole:
        import keras

        cell = keras.layers.LSTMCell(4)
    cell.build((None, 5))
    for weight in cell.weights:
        weight.assign(rng.normal(scale=0.5, size=weight.shape).astype("float32"))
    weights = cell.trainable_variables
    peep = [cell.peephole] if peephole else []

    def ours(x, states):
        _, outputs, (h_n, c_n) = lstm_sequence(
            x, *states, *weights[:3], *peep, keep=keep
        )
        return outputs, h_n, c_n

    def reference(x, states):
        _, outputs, (h_n, c_n) = resetting_loop(cell, x, states, keep)
        return outputs, h_n, c_n

    got = _values_and_gradients(ours, x, h, c, jit, weights)
    want = _values_and_gradients(reference, x, h, c, jit, weights)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert np.abs(got[4][1]).sum() == 0  # row 1 resets at step 0: no h0 gradient


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "peephole"])
def test_an_item_model_reads_each_item_from_zero_states(cell):
    """An item model's network zeroes its states before every end token, so
    the logits of an item packed after others equal those of the item read
    alone from zero states (how generation and the decoder read it), and a
    model of whole files carries its state across the same token."""
    from textgen.model.config import ModelConfig
    from textgen.model.decoder import Decoder
    from textgen.model.network import build_model
    from textgen.text.tokens import END, TokenizerSettings
    from textgen.text.vocab import Vocabulary

    vocab = Vocabulary(["<pad>", "<unk>", END, "a", "b", "c"])
    config = ModelConfig(
        cell=cell, units=6, embedding_dim=4, layers=2, vocab_size=6, dropout=0.0
    )
    packed = np.array([[2, 3, 4, 2, 5, 3, 4]])  # <end> a b <end> c a b
    item = packed[:, 3:]  # <end> c a b
    for documents, resets in (("lines", True), ("files", False)):
        model = build_model(config, vocab, TokenizerSettings(documents=documents))
        whole = np.asarray(model(packed))
        alone = np.asarray(model(item))
        assert np.allclose(whole[:, 3:], alone, atol=1e-5) == resets
        decoder = Decoder(config, model.named_weights())
        states = decoder.zero_states(1)
        for t in range(item.shape[1]):
            logits, states = decoder.step(item[:, t], states)
            np.testing.assert_allclose(logits, alone[:, t], rtol=1e-4, atol=1e-5)
