"""How fast this machine trains a network of a given size: a few real
training steps, timed (`time_steps`), and the speeds remembered per machine
(`StepSpeeds`), so the budget planner (`sizing.plan_training`) predicts from
what the machine does rather than from arithmetic.

Speeds are training tokens per second of the step alone (the data pipeline
included, the first steps, which compile, left out), by a key naming
everything that changes the step: the machine (CPU, cores, GPUs, TensorFlow's
version) and the network's shape, window, batch and compilation.
`textgen train` adds to the file what its runs measure; delete it to measure
afresh. The file is `step-speeds.json` in `$TEXTGEN_CACHE_DIR`, else
`$XDG_CACHE_HOME/textgen`, else `~/.cache/textgen`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from ..model.config import ModelConfig, TrainConfig

CACHE_ENV = "TEXTGEN_CACHE_DIR"
_FILE = "step-speeds.json"
_MAX_ENTRIES = 1000  # oldest dropped beyond this: the file stays small
_MAX_BYTES = 4 * 2**20  # a larger file is not ours, or damaged: ignored
# Seconds a first measurement is expected to take before this machine has
# taken one (XLA compiles a 2 x 256 step in ~20 s on a slow 2-core CPU).
FIRST_COST = 30.0


def cache_dir() -> Path:
    """Where the speeds are kept (see the module's doc)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "textgen"
    return Path.home() / ".cache" / "textgen"


def machine() -> str:
    """This machine as far as training speed goes: CPU model, cores, GPUs,
    TensorFlow's version."""
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = len(tf.config.list_physical_devices("GPU"))
    return f"{cpu} x{os.cpu_count()} gpu{gpus} tf{tf.__version__}"


def shape_key(
    shape: ModelConfig, config: TrainConfig, batch_size: int, xla: bool
) -> str:
    """What, besides the machine, sets a training step's speed."""
    return (
        f"{shape.cell} {shape.layers}x{shape.units} e{shape.embedding_dim} "
        f"v{shape.vocab_size} tied{int(shape.tied)} "
        f"d{int(shape.dropout > 0)} w{config.seq_len} b{batch_size} "
        f"carry{int(config.carries_state)} xla{int(xla)}"
        # Residual training makes the memory's prior for every batch.
        + (" residual" if config.residual else "")
    )


def _number(value: Any, most: float) -> float:
    """`value` if it is a finite number up to `most`, else -1 (not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return -1.0
    return float(value) if 0 <= value <= most else -1.0


class StepSpeeds:
    """Measured training speeds (tokens/s) of this machine, by `shape_key`,
    read from and written to the cache file; a file that cannot be read or
    written is ignored (the planner then measures again)."""

    def __init__(self, path: Path | None = None, machine_name: str | None = None):
        self.path = path or cache_dir() / _FILE
        self.machine = machine_name or machine()
        self.entries: dict[str, dict[str, float]] = {}
        try:
            small = self.path.is_file() and self.path.stat().st_size <= _MAX_BYTES
            text = self.path.read_text(encoding="utf-8") if small else ""
            data = json.loads(text) if text else {}
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            data = {}
        data = data if isinstance(data, dict) else {}
        mine = data.get(self.machine)
        if isinstance(mine, dict):
            self.entries = {
                key: value
                for key, value in mine.items()
                if isinstance(value, dict)
                and _number(value.get("tokens_per_second"), 1e12) > 0
                and _number(value.get("seconds", 0), 1e6) >= 0
            }
        self._others = data

    def measuring_cost(self) -> float:
        """Seconds one measurement is expected to take (compiling, mostly):
        the longest this machine has taken, or `FIRST_COST` before any."""
        costs = [
            float(entry.get("seconds", 0))
            for entry in self.entries.values()
            if entry.get("source") == "steps"
        ]
        return max(costs, default=FIRST_COST)

    def get(self, key: str) -> float | None:
        entry = self.entries.get(key)
        return None if entry is None else float(entry["tokens_per_second"])

    def put(
        self, key: str, tokens_per_second: float, source: str, seconds: float = 0.0
    ) -> None:
        """Remember a speed and save the file. `source`: "steps" (timed by
        the planner, which took `seconds`) or "run" (a training run's own)."""
        self.entries.pop(key, None)  # re-inserted last: the newest
        self.entries[key] = {
            "tokens_per_second": round(tokens_per_second, 1),
            "source": source,
            "seconds": round(seconds, 1),
            "when": round(time.time()),
        }
        while len(self.entries) > _MAX_ENTRIES:
            self.entries.pop(next(iter(self.entries)))
        data = dict(self._others)
        data[self.machine] = self.entries
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
            partial.write_text(json.dumps(data, indent=1), encoding="utf-8")
            os.replace(partial, self.path)
        except OSError:
            pass  # a read-only home: measured again next time


def run_speed(step_seconds: list[float], tokens_per_step: int) -> float | None:
    """A training run's speed, tokens/s, from its steps' times: the median
    step after the first two (which compile); None with too few."""
    steady = step_seconds[2:]
    if len(steady) < 3:
        return None
    return tokens_per_step / statistics.median(steady)


def time_steps(
    model: Any, batches: Any, warm_up: int = 2, seconds: float = 1.5
) -> tuple[float, int]:
    """Train `model` (compiled) on the dataset `batches` with `fit`, as a
    run does; after `warm_up` steps (the first compiles), time steps until
    `seconds` have passed or the batches run out. Returns the median step's
    seconds and how many steps were timed (0 when there were too few
    batches)."""
    from .callbacks import StepTimes

    class Enough(StepTimes):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            super().on_train_batch_end(batch, logs)
            timed = self.seconds[warm_up:]
            if len(timed) >= 3 and sum(timed) >= seconds:
                self.model.stop_training = True

    timer = Enough()
    model.fit(batches, epochs=1, verbose=0, callbacks=[timer], shuffle=False)
    timed = timer.seconds[warm_up:]
    return (statistics.median(timed) if timed else 0.0), len(timed)
