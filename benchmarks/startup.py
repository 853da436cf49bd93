"""Start-up latency of the command line and the size of model files.

`textgen --help` and an option error (no heavy import at all); `textgen
generate -n 20` and `textgen info` on a default-size model trained on
`moby_dick.txt` (the TensorFlow-free inference path), beside bare
`python -c "import tensorflow"` and `python -c "import numpy, h5py"`; and
what the two start-up tricks of docs/architecture.md save: `import textgen`
(which registers the model with Keras without importing it) against
`import keras`, and tokenizing one line (NLTK's three tokenizer modules
loaded alone) against `import nltk`. Each is timed 5 times: median and
range. Then the model files: the lean model
that `train` saves against the `.last.keras` checkpoint of the same run
(which keeps the optimizer state, as every saved model did before), for
the sample corpus and for `moby_dick.txt`. Prints one JSON object.

    python benchmarks/startup.py [--corpus PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT.parent / "shared" / "corpora" / "moby_dick.txt"
REPEATS = 5
TOKENIZE = "from textgen.text.tokens import tokenize; tokenize('Call me Ishmael.')"


def timed(command: list[str], cwd: Path, expect: int = 0) -> dict[str, float]:
    """Median and range of `REPEATS` wall-clock runs, in seconds."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = subprocess.run(command, cwd=cwd, capture_output=True)
        times.append(time.perf_counter() - start)
        if result.returncode != expect:
            raise SystemExit(
                f"{command} exited {result.returncode}: {result.stderr[-300:]!r}"
            )
    return {
        "median": round(statistics.median(times), 3),
        "min": round(min(times), 3),
        "max": round(max(times), 3),
    }


def train(textgen: str, corpus: Path, output: str, cwd: Path, *extra: str) -> None:
    subprocess.run(
        [textgen, "train", str(corpus), "-o", output, "--no-plot",
         "--checkpoint-every", "1", "--random-seed", "1", *extra],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip


def sizes(model: Path) -> dict[str, float]:
    """The lean model and its checkpoint: file and weights sizes, and the
    weights against 4 bytes per parameter."""
    from textgen.model.file import WEIGHTS_ENTRY, read_model

    parameters = read_model(model, weights=False).model_config.parameter_count()
    checkpoint = model.with_name(model.stem + ".last.keras")
    weights = zipfile.ZipFile(model).getinfo(WEIGHTS_ENTRY).file_size
    return {
        "parameters": parameters,
        "lean_model_mb": round(model.stat().st_size / 1e6, 2),
        "checkpoint_mb": round(checkpoint.stat().st_size / 1e6, 2),
        "lean_weights_over_4_bytes_per_parameter": round(weights / (4 * parameters), 3),
        "lean_over_checkpoint": round(
            model.stat().st_size / checkpoint.stat().st_size, 3
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=BOOK)
    options = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    textgen = str(Path(sys.executable).with_name("textgen"))
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        # Default-size models, trained briefly (the size does not depend on it).
        train(textgen, ROOT / "corpora" / "saltmarsh", "models/sample.keras", cwd,
              "--epochs", "1")  # fmt: skip
        figures["sample_corpus_model"] = sizes(cwd / "models" / "sample.keras")
        if options.corpus.exists():
            train(textgen, options.corpus, "models/book.keras", cwd, "--epochs", "1")
            figures["book_model"] = sizes(cwd / "models" / "book.keras")
            model = "models/book.keras"
        else:
            print(f"({options.corpus} is missing: timing the sample model)",
                  file=sys.stderr)  # fmt: skip
            model = "models/sample.keras"
        (cwd / "models" / "sample.last.keras").unlink()
        figures["model_timed"] = model
        figures["seconds"] = {
            "help": timed([textgen, "--help"], cwd),
            "option_error": timed([textgen, "generate", "-t", "-1"], cwd, expect=2),
            "import_tensorflow": timed(
                [sys.executable, "-c", "import tensorflow"], cwd
            ),
            "import_numpy_h5py": timed(
                [sys.executable, "-c", "import numpy, h5py"], cwd
            ),
            "generate_20_words": timed(
                [textgen, "generate", "-m", model, "-n", "20", "--random-seed", "1"],
                cwd,
            ),
            "info": timed([textgen, "info", model], cwd),
            "import_textgen": timed([sys.executable, "-c", "import textgen"], cwd),
            "import_keras": timed([sys.executable, "-c", "import keras"], cwd),
            "tokenize_one_line": timed([sys.executable, "-c", TOKENIZE], cwd),
            "import_nltk": timed([sys.executable, "-c", "import nltk"], cwd),
        }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
