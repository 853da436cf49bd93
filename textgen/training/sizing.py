"""Sizes that fit a time budget: the network, window and schedule that learn the
most from this corpus in the minutes given (`plan_training`).

The rule, from the measurements in docs/training.md ("Training in a budget"): the
largest network (2 layers of 128 to 512 units) that still reads the training
text the level's `Level.planned_passes` times (8 for words, 30 for
characters) in the budget, which then ends training rather than an epoch count. A
short budget on a big corpus gets a small, fast network that sees the text
many times (a big one would stop after a few dozen updates); a long budget or
a small corpus gets the full-size one. The speed of each size is measured: a
few real training steps (`training/calibration.py`, remembered per machine), at most
`MEASURE_SHARE` of the budget; sizes left unmeasured are predicted from their
arithmetic, scaled by the nearest measured size's (or, with none, from this
machine's matrix-product speed and `STEP_EFFICIENCY`). A network made smaller
gets proportionally less dropout (a residual one that reads the text as often
as planned, at least `RESIDUAL_DROPOUT`).
Character models read 100-character windows at learning rate 0.01 (the
level's `planned_seq_len` and `planned_learning_rate`). With a budget the learning rate
decays linearly to zero at its end. Settings given explicitly are kept.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np

from ..model.config import ModelConfig, TrainConfig
from ..model.levels import level_policy

# The settings `plan_training` may choose (those not given explicitly).
PLANNED = ("units", "dropout", "seq_len", "lr_schedule", "learning_rate", "epochs")
UNITS = (128, 192, 256, 384, 512)  # candidate sizes, 2 layers each
# With a budget the budget ends training (or early stopping), not an epoch
# count: the 30-epoch default stopped a small corpus with a third of it left.
BUDGET_EPOCHS = 1000
SMALL_UNITS = 192  # planned networks this small train without dropout
# ... unless trained on top of the memory and read as often as the level
# plans: a residual network learns only the memory's corrections and then
# overfits sooner (12 minutes, P&P characters, 2 x 192 without dropout: every
# seed stopped early at 5-7.5 minutes, 1.103 nats; with 0.2 they trained all
# 12 minutes, 1.088), so its planned dropout is at least this.
# Not when the budget is too short for those passes: at 3 minutes (10 passes)
# 0.2 cost 1.4% (P&P characters 1.133 nats against 1.117).
RESIDUAL_DROPOUT = 0.2
# Smallest planned size with a tied output layer: at 128 units (no projection
# to the 128-d embeddings) a word model stalled near perplexity 370 in 3
# minutes on Moby-Dick, where 256 units reached 238 and 512 units 324.
TIED_MIN_UNITS = 256
# Share of the probe's speed a training step reaches (measured with
# the sizes above in `train` on a 2-core CPU against `measure_gflops`).
STEP_EFFICIENCY = 0.3
STARTUP_SECONDS = 15  # compiling the step and the first validation
# Of a budget, the most the planner spends timing candidate sizes' steps.
MEASURE_SHARE = 0.05

# A size's measured training speed (tokens/s) and where it came from
# ("measured" now, or "remembered" from an earlier run on this machine); None
# when it cannot be had within what is left of `MEASURE_SHARE`.
Measure = Callable[[ModelConfig, float], tuple[float, str] | None]


@dataclass(frozen=True)
class Plan:
    """What `plan_training` chose, and why (saved in the training record)."""

    model_config: ModelConfig
    config: TrainConfig
    gflops: float  # this machine's measured matrix-product speed
    tokens_per_second: float  # predicted for the chosen network
    passes: float  # predicted reads of the training text in the budget
    # How the chosen size's speed is known: "measured", "remembered" (from an
    # earlier run on this machine), "scaled" (another size's measurement
    # scaled by the arithmetic) or "assumed" (the arithmetic alone).
    source: str = "assumed"
    measured: dict[int, float] = dataclasses.field(default_factory=dict)  # by units
    measuring_seconds: float = 0.0  # of the budget, spent timing steps
    run_tokens_per_second: float | None = None  # what the run then measured

    def describe(self, unit: str) -> str:
        """One line for the log; `unit` is "words" or "characters"."""
        shape = self.model_config
        return (
            f"{self.config.max_minutes:g}-minute budget: {shape.cell.upper()} "
            f"{shape.layers} x {shape.units}, dropout {shape.dropout:g}, windows "
            f"of {self.config.seq_len} {unit}, {self.config.lr_schedule} "
            f"learning rate from {self.config.learning_rate:g} ({self._speed()}"
            f" {self.tokens_per_second:,.0f} {unit}/s, so about "
            f"{self.passes:,.1f} passes over the training text)"
            + (
                f"; the budget is shorter than start-up takes (about "
                f"{STARTUP_SECONDS} s), so training stops after its first steps"
                if self.config.max_minutes * 60 <= STARTUP_SECONDS
                else ""
            )
        )

    def _speed(self) -> str:
        """Where the speed comes from, for the log line."""
        sizes = ", ".join(
            f"{units}: {speed:,.0f}" for units, speed in sorted(self.measured.items())
        )
        if self.source in ("measured", "remembered"):
            took = (
                f" in {self.measuring_seconds:.0f} s" if self.measuring_seconds else ""
            )
            return f"{self.source} on this machine{took} ({sizes}):"
        if self.source == "scaled":
            return (
                f"measured {sizes} and scaled by the arithmetic "
                f"({self.measuring_seconds:.0f} s): about"
            )
        return f"assumed from this machine's {self.gflops:.0f} GFLOP/s: about"

    def to_record(self) -> dict:
        return {
            "units": self.model_config.units,
            "layers": self.model_config.layers,
            "dropout": self.model_config.dropout,
            "seq_len": self.config.seq_len,
            "lr_schedule": self.config.lr_schedule,
            "learning_rate": self.config.learning_rate,
            "epochs": self.config.epochs,
            "gflops": round(self.gflops, 1),
            "tokens_per_second": round(self.tokens_per_second),
            "passes": round(self.passes, 2),
            "speed_source": self.source,
            "measured": {str(units): round(v) for units, v in self.measured.items()},
            "measuring_seconds": round(self.measuring_seconds, 1),
            "run_tokens_per_second": None
            if self.run_tokens_per_second is None
            else round(self.run_tokens_per_second),
        }


def measure_gflops(seconds: float = 0.2) -> float:
    """This machine's float32 matrix-product speed, GFLOP/s, at the shapes a
    recurrent step multiplies (64 x 512 by 512 x 2048), best of a short run."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 512), dtype=np.float32)
    b = rng.standard_normal((512, 2048), dtype=np.float32)
    a @ b  # warm up
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 64 * 512 * 2048 / best / 1e9


def flops_per_token(model_config: ModelConfig) -> float:
    """Arithmetic of one training token, forward and backward (3 x 2 x MACs)."""
    macs = sum(
        int(np.prod(shape))
        for name, shape in model_config.weight_shapes().items()
        if name.endswith("kernel")  # the recurrent layers, projection, logits
    )
    if model_config.tied:  # the output multiplies by the embedding
        macs += model_config.embedding_dim * model_config.vocab_size
    return 6.0 * macs


def plan_window(
    config: TrainConfig, planned: Collection[str], tokens: int
) -> TrainConfig:
    """With a budget, the level's planned window (`Level.planned_seq_len`:
    100 characters), when `seq_len` is not fixed and the corpus holds a
    hundred such windows."""
    seq_len = level_policy(config.level).planned_seq_len
    if (
        "seq_len" in planned
        and config.max_minutes
        and seq_len is not None
        and tokens >= 100 * (seq_len + 1)
    ):
        return dataclasses.replace(config, seq_len=seq_len)
    return config


def plan_training(
    model_config: ModelConfig,
    config: TrainConfig,
    train_tokens: int,
    planned: Collection[str],
    gflops: float | None = None,
    reserved_seconds: float = 0.0,
    measure: Measure | None = None,
) -> Plan | None:
    """Choose the network size and schedule (those named in `planned`) for
    this corpus and budget; `plan_window` chose the window before.

    Args:
        model_config: the network asked for; `vocab_size` must be known.
        config: the training settings asked for; `max_minutes` is the budget.
        train_tokens: tokens in the training part of the corpus.
        planned: names from `PLANNED` the caller did not fix.
        gflops: the machine's speed; None: measure it (0.2 s).
        reserved_seconds: of the budget, what other work (the n-gram
            memory's counting and fitting) takes.
        measure: a size's real training speed (`Measure`), given the seconds
            of the budget it may still spend; None: predict from arithmetic.
            The time it takes comes out of the budget.

    Returns:
        The plan, or None when there is no budget or nothing to choose.
    """
    planned = set(planned) & set(PLANNED)
    if not config.max_minutes or not planned:
        return None
    gflops = gflops or measure_gflops()
    level = level_policy(config.level)
    budget = config.max_minutes * 60
    speeds = _Speeds(gflops, measure, MEASURE_SHARE * budget)

    def seconds() -> float:  # of the budget, left for training
        return max(budget - STARTUP_SECONDS - reserved_seconds - speeds.spent, 0.0)

    chosen = model_config
    if "units" in planned:
        # Each size as it would train (its dropout too: that is the shape
        # measured and remembered).
        sizes = [
            _sized(model_config, units, "dropout" in planned)
            for units in UNITS
            if not model_config.tied or units >= TIED_MIN_UNITS
        ]
        need = level.planned_passes * train_tokens

        def fits(i: int) -> bool:
            return speeds.of(sizes[i]) * seconds() >= need

        # The largest size that reads the text `planned_passes` times: start
        # where the arithmetic points, then step (measuring) while it holds.
        by_arithmetic = [
            i for i in range(len(sizes)) if speeds.assumed(sizes[i]) * seconds() >= need
        ]
        i = by_arithmetic[-1] if by_arithmetic else 0
        if fits(i):
            while i + 1 < len(sizes) and fits(i + 1):
                i += 1
        else:
            while i > 0:
                i -= 1
                if fits(i):
                    break
        chosen = sizes[i]
        if config.residual and "dropout" in planned and fits(i):
            floor = min(RESIDUAL_DROPOUT, model_config.dropout)
            chosen = dataclasses.replace(chosen, dropout=max(chosen.dropout, floor))
    if "lr_schedule" in planned:
        config = dataclasses.replace(config, lr_schedule="linear")
    if "epochs" in planned:
        config = dataclasses.replace(config, epochs=max(config.epochs, BUDGET_EPOCHS))
    if "learning_rate" in planned and level.planned_learning_rate is not None:
        config = dataclasses.replace(config, learning_rate=level.planned_learning_rate)
    tokens_per_second = speeds.of(chosen)
    return Plan(
        model_config=chosen,
        config=config,
        gflops=gflops,
        tokens_per_second=tokens_per_second,
        passes=tokens_per_second * seconds() / max(train_tokens, 1),
        source=speeds.source(chosen),
        measured=dict(speeds.measured),
        measuring_seconds=speeds.spent,
    )


def _sized(model_config: ModelConfig, units: int, plan_dropout: bool) -> ModelConfig:
    """The network asked for at `units`; made smaller, with proportionally
    less dropout if that is planned: a network made small for the budget
    underfits rather than overfits (2 x 128 characters, 3 minutes: 1.573
    nats with dropout 0.125, 1.495 without), so none at `SMALL_UNITS` or
    fewer."""
    shape = dataclasses.replace(model_config, units=units)
    if plan_dropout and units < model_config.units:
        dropout = model_config.dropout * units / model_config.units
        shape = dataclasses.replace(
            shape, dropout=0.0 if units <= SMALL_UNITS else round(dropout, 3)
        )
    return shape


class _Speeds:
    """Each size's training speed for `plan_training`: measured (or
    remembered) while `allowed` seconds last, else the arithmetic scaled by
    the nearest measured size's, else the arithmetic alone."""

    def __init__(self, gflops: float, measure: Measure | None, allowed: float):
        self.gflops, self.measure, self.allowed = gflops, measure, allowed
        self.measured: dict[int, float] = {}
        self.sources: dict[int, str] = {}
        self.tried: set[int] = set()
        self.spent = 0.0

    def assumed(self, shape: ModelConfig) -> float:
        return self.gflops * 1e9 * STEP_EFFICIENCY / flops_per_token(shape)

    def of(self, shape: ModelConfig) -> float:
        units = shape.units
        if self.measure is not None and units not in self.tried:
            self.tried.add(units)
            started = time.perf_counter()
            got = self.measure(shape, max(self.allowed - self.spent, 0.0))
            self.spent += time.perf_counter() - started
            if got is not None:
                self.measured[units], self.sources[units] = got
        if units in self.measured:
            return self.measured[units]
        if not self.measured:
            return self.assumed(shape)
        near = min(self.measured, key=lambda u: (abs(u - units), u))
        near_shape = dataclasses.replace(shape, units=near)
        return self.measured[near] * self.assumed(shape) / self.assumed(near_shape)

    def source(self, shape: ModelConfig) -> str:
        if shape.units in self.sources:
            return self.sources[shape.units]
        return "scaled" if self.measured else "assumed"
