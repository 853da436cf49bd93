"""textgen: train a word-level LSTM/GRU language model on your text, generate from it.

Importing the package is cheap (no TensorFlow); the model class registers
itself with Keras as soon as Keras is imported, so `keras.saving.load_model`
loads textgen's `.keras` files after a plain `import textgen`.
"""

from ._registration import register_with_keras

__version__ = "0.1.0"
__all__ = ["__version__"]

register_with_keras()
