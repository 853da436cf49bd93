"""Register textgen's Keras classes whenever Keras gets imported, without
importing Keras (and TensorFlow, ~4 s) ourselves: `import textgen` stays instant.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Any


class _AfterKerasImport(importlib.abc.MetaPathFinder):
    """Finds `keras` through the other finders, then imports `textgen.model.network`
    (which registers the classes) right after Keras's own module has run."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)  # one shot, and no recursion below
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None:
            return spec
        run_keras = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run_keras(module)
            importlib.import_module("textgen.model.network")

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def register_with_keras() -> None:
    """Make `textgen.model.network` load with Keras, now or when Keras is imported."""
    if "keras" in sys.modules:
        importlib.import_module("textgen.model.network")
    elif not any(isinstance(f, _AfterKerasImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasImport())
