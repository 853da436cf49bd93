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
import sys
import types
from typing import Any

from ._registration import register_with_keras

__version__ = "0.1.0"

# name -> (module, attribute): what `from textgen import X` gives (attribute
# None: the module itself).
_PUBLIC = {
    "load_model": ("modelfile", "read_model"),
    "ModelFile": ("modelfile", "ModelFile"),
    "Generator": ("generate", "Generator"),
    "SamplingSettings": ("sampling", "SamplingSettings"),
    "evaluate": ("evaluate", None),  # the module, callable as its function
    "train": ("train", None),
    "adapt": ("adapt", None),  # the module, callable as its function
    "ModelConfig": ("config", "ModelConfig"),
    "TrainConfig": ("config", "TrainConfig"),
    "TextgenError": ("errors", "TextgenError"),
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'textgen' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = importlib.import_module(f".{module}", __name__)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


class _CallableModule(types.ModuleType):
    """A module that can be called as its function of the same name:
    `textgen.train(...)` and `textgen.evaluate(...)` call the functions while
    `textgen.train` stays the module (`from textgen.train import
    resumed_config`, `import textgen.train as t` work as usual)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rsplit(".", 1)[1])(*args, **kwargs)


def callable_module(name: str) -> None:
    """Make the module `name` (one of this package's) callable as its function
    of the same name; the module calls this on itself."""
    sys.modules[name].__class__ = _CallableModule


register_with_keras()
