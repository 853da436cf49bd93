"""Start-up latency of the command line: `textgen --help` and an option error
(no TensorFlow import), and `textgen generate -n 20` against a bare
`python -c "import tensorflow"`. Best of several runs each. Prints one JSON object.

    python benchmarks/startup.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 5


def best_seconds(command: list[str], cwd: Path, expect: int = 0) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = subprocess.run(command, cwd=cwd, capture_output=True)
        times.append(time.perf_counter() - start)
        if result.returncode != expect:
            raise SystemExit(
                f"{command} exited {result.returncode}: {result.stderr[-300:]!r}"
            )
    return min(times)


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    textgen = str(Path(sys.executable).with_name("textgen"))
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        # A model of the default size, trained briefly on the sample corpus.
        subprocess.run(
            [textgen, "train", str(ROOT / "corpora" / "saltmarsh"), "--epochs", "1",
             "-o", "models/sample.keras"],
            cwd=cwd, check=True, capture_output=True,
        )  # fmt: skip
        figures = {
            "help_s": best_seconds([textgen, "--help"], cwd),
            "option_error_s": best_seconds(
                [textgen, "generate", "-t", "-1"], cwd, expect=2
            ),
            "import_tensorflow_s": best_seconds(
                [sys.executable, "-c", "import tensorflow"], cwd
            ),
            "generate_20_words_s": best_seconds(
                [textgen, "generate", "-n", "20", "--random-seed", "1"], cwd
            ),
        }
    figures = {k: round(v, 3) for k, v in figures.items()}
    figures["generate_minus_import_s"] = round(
        figures["generate_20_words_s"] - figures["import_tensorflow_s"], 3
    )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
