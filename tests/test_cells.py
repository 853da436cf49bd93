import math

import numpy as np

from textgen.cells import PeepholeLSTMCell


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
