"""The public API in `textgen/__init__`: lazy, light, and the names it
promises stay what they are when the modules of the same names are imported."""

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_the_public_api_loads_generates_and_evaluates_without_tensorflow(
    trained, pattern_file: Path
):
    path, _ = trained
    code = (
        "import sys, textgen\n"
        f"model = textgen.load_model({str(path)!r})\n"
        "text = textgen.Generator(model).generate('the', length=6, random_seed=3)\n"
        f"scored = textgen.evaluate(model, [{str(pattern_file)!r}])\n"
        "print(type(model).__name__, len(text), scored.perplexity > 1)\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["ModelFile", "1", "True", "False", "False"]


def test_the_public_names_are_the_functions_and_classes_of_their_stages():
    import textgen
    from textgen.inference.evaluate import evaluate
    from textgen.inference.generate import Generator
    from textgen.model.file import read_model
    from textgen.training.adapt import adapt
    from textgen.training.train import train

    assert textgen.train is train and textgen.evaluate is evaluate
    assert textgen.adapt is adapt and textgen.Generator is Generator
    assert textgen.load_model is read_model
    assert sorted(dir(textgen)) == sorted(textgen.__all__)
    for name in textgen.__all__:
        assert getattr(textgen, name) is not None
    try:
        textgen.no_such_thing  # noqa: B018
    except AttributeError as error:
        assert "no_such_thing" in str(error)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
