"""How far back a trained model's gradients reach: the vanishing-gradient story
measured on the user's own text.

For windows of real text, the gradient of the loss at the window's last word
with respect to each earlier word's embedding; its mean norm at each distance
back, relative to the last word's own. A plain RNN's curve falls off fast,
an LSTM's or GRU's much more slowly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..model.network import LanguageModel


def gradient_decay(
    model: LanguageModel,
    ids: np.ndarray,
    distance: int = 60,
    windows: int = 32,
    seed: int = 0,
) -> np.ndarray:
    """Relative gradient norm at each distance 0..`distance` words back.

    Args:
        model: a trained model.
        ids: token ids of some text (at least `distance + 2` of them).
        distance: how many words back to measure (shortened for short texts).
        windows: how many random windows to average over.
        seed: picks the windows.

    Returns:
        (distance + 1,) array; entry d is the mean norm of d(loss at the last
        word) / d(embedding d words earlier), divided by entry 0.
    """
    import keras
    import tensorflow as tf

    distance = min(distance, len(ids) - 2)
    length = distance + 1
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(ids) - length, size=windows)
    inputs = np.stack([ids[s : s + length] for s in starts])  # (windows, length)
    targets = ids[starts + length]  # the word after each window
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    embedded = tf.convert_to_tensor(model.embedding(inputs))
    with tf.GradientTape() as tape:
        tape.watch(embedded)
        logits, _ = model.forward_embedded(embedded, None, training=False)
        loss = loss_fn(targets, logits[:, -1])
    gradient = tape.gradient(loss, embedded).numpy()  # (windows, length, dim)
    norms = np.linalg.norm(gradient, axis=-1).mean(axis=0)[::-1]  # index = distance
    return norms / norms[0]
