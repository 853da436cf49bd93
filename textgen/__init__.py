"""textgen: train a word-level LSTM/GRU language model on your text, generate from it.

The public API, imported lazily so `import textgen` stays light (no
TensorFlow; only `train` brings it in):

    import textgen
    textgen.train(["corpora/saltmarsh"], "models/saltmarsh.keras")
    model = textgen.load_model("models/saltmarsh.keras")  # no TensorFlow
    print(textgen.Generator(model).generate("the lighthouse", length=40)[0])
    print(textgen.evaluate(model, ["held_out.txt"]).perplexity)

The model class registers itself with Keras as soon as Keras is imported, so
`keras.saving.load_model` also loads textgen's `.keras` files after a plain
`import textgen`.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._registration import register_with_keras

__version__ = "0.1.0"

# name -> (module, attribute): what `from textgen import X` gives.
_PUBLIC = {
    "load_model": ("model.file", "read_model"),
    "ModelFile": ("model.file", "ModelFile"),
    "Generator": ("inference.generate", "Generator"),
    "SamplingSettings": ("inference.contract", "SamplingSettings"),
    "evaluate": ("inference.evaluate", "evaluate"),
    "train": ("training.train", "train"),
    "adapt": ("training.adapt", "adapt"),
    "ModelConfig": ("model.config", "ModelConfig"),
    "TrainConfig": ("model.config", "TrainConfig"),
    "TextgenError": ("errors", "TextgenError"),
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'textgen' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = getattr(importlib.import_module(f".{module}", __name__), attribute)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


register_with_keras()
