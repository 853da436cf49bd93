"""The Keras callbacks that run a training: the per-epoch report, the best
epoch kept, the time budget and linear schedule, reproducible dropout, the
weight average, checkpoints; and Ctrl-C handling. Imports Keras: only
`train` uses it.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from ..model.config import TrainConfig
from ..model.perplexity import perplexity
from ..terminal import count

Log = Callable[[str], None]


def _value(variable: Any) -> float:
    """A scalar variable's value (also a distributed one) as a float."""
    return float(keras.ops.convert_to_numpy(variable))


class EpochLog(keras.callbacks.Callback):
    """Prints one line per epoch and keeps the history for the record."""

    def __init__(self, history: list[dict[str, Any]], log: Log) -> None:
        super().__init__()
        self.history = list(history)  # a resumed model's epochs come first
        self.log = log

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.started = time.perf_counter()
        self.learning_rate = _value(self.model.optimizer.learning_rate)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        logs = logs or {}
        row = {
            "epoch": epoch + 1,
            "seconds": time.perf_counter() - self.started,
            "learning_rate": self.learning_rate,
        }
        line = f"epoch {epoch + 1:>3}/{self.params['epochs']}"
        for prefix, label in (("", "train"), ("val_", "val")):
            if f"{prefix}loss" in logs:
                loss = float(logs[f"{prefix}loss"])
                row[f"{prefix}loss"] = loss
                row[f"{prefix}perplexity"] = perplexity(loss)
                line += f"  {label} loss {loss:.3f} ppl {perplexity(loss):8.1f}"
        self.history.append(row)
        self.log(f"{line}  lr {self.learning_rate:.2g}  {row['seconds']:.1f} s")


class BestEpoch(keras.callbacks.Callback):
    """Early stopping that always ends on the best epoch's weights; stops
    at once when the loss becomes NaN."""

    def __init__(self, monitor: str, patience: int, log: Log) -> None:
        super().__init__()
        self.monitor, self.patience, self.log = monitor, patience, log
        self.best, self.best_epoch, self.best_weights = math.inf, 0, None
        self.diverged_epoch: int | None = None
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if logs and not math.isfinite(float(logs.get("loss", 0.0))):
            self.diverged_epoch = self.epoch
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        value = float((logs or {}).get(self.monitor, math.nan))
        if self.diverged_epoch is not None:
            return
        if value < self.best:
            self.best, self.best_epoch = value, epoch + 1
            self.best_weights = self.model.get_weights()
        elif self.patience and epoch + 1 - self.best_epoch >= self.patience:
            waited = count(self.patience, "epochs")
            self.log(f"no better {self.monitor} for {waited}: stopping")
            self.model.stop_training = True

    def on_train_end(self, logs: Any = None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class Budget(keras.callbacks.Callback):
    """Ends training at the time limit, mid-epoch if need be but leaving time
    to validate, and with the linear schedule lowers the learning rate to
    zero by the end of the budget: the last epoch's last step, or the time
    limit when that comes first."""

    def __init__(
        self,
        config: TrainConfig,
        steps_per_epoch: int,
        log: Log,
        reserved_seconds: float = 0.0,
    ) -> None:
        super().__init__()
        self.config, self.steps_per_epoch, self.log = config, steps_per_epoch, log
        self.reserved = reserved_seconds  # of the budget, for work after fitting

    def on_train_begin(self, logs: Any = None) -> None:
        self.started = time.perf_counter()
        self.validation_seconds = 0.0  # the longest validation pass so far
        self.limit = self.config.max_minutes * 60
        if self.limit:
            self.limit = max(self.limit - self.reserved, 1.0)
        self.total_steps = self.config.epochs * self.steps_per_epoch

    def on_test_begin(self, logs: Any = None) -> None:
        self.test_started = time.perf_counter()

    def on_test_end(self, logs: Any = None) -> None:
        seconds = time.perf_counter() - self.test_started
        self.validation_seconds = max(self.validation_seconds, seconds)

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        if self.config.lr_schedule != "linear":
            return
        # The optimizer's step counter survives --resume.
        progress = _value(self.model.optimizer.iterations) / self.total_steps
        if self.limit:
            elapsed = time.perf_counter() - self.started
            usable = max(self.limit - self.validation_seconds, 1e-9)
            progress = max(progress, elapsed / usable)
        rate = self.config.learning_rate * max(1.0 - progress, 0.0)
        self.model.optimizer.learning_rate = rate

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        elapsed = time.perf_counter() - self.started
        if (
            self.limit
            and not self.model.stop_training
            and elapsed + self.validation_seconds >= self.limit
        ):
            self.log(
                f"time limit of {self.config.max_minutes:g} minutes reached "
                f"(step {batch + 1} of {self.steps_per_epoch}): stopping"
            )
            self.model.stop_training = True


class StepTimes(keras.callbacks.Callback):
    """Each training step's seconds, for the run's measured speed
    (`calibration.run_speed`)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.seconds.append(time.perf_counter() - self.started)


class DropoutSeeds(keras.callbacks.Callback):
    """Sets every dropout random stream from (seed, epoch) when an epoch
    begins, so a resumed run draws the masks the uninterrupted one would."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        states = [v for v in self.model.variables if v.name == "seed_generator_state"]
        for i, state in enumerate(states):
            key = np.random.SeedSequence([self.seed, epoch, i]).generate_state(1)[0]
            value = np.array([key % 2**31, 0])
            state.assign(value.astype(keras.backend.standardize_dtype(state.dtype)))


class AveragedWeights(keras.callbacks.Callback):
    """Validates (and so keeps, as the best) the optimizer's moving average
    of the weights instead of the last step's, then hands training back
    its own weights: averaging damps the last steps' noise."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[np.ndarray] | None = None

    def on_test_begin(self, logs: Any = None) -> None:
        variables = self.model.trainable_variables
        self.raw = [keras.ops.convert_to_numpy(v) for v in variables]
        self.model.optimizer.finalize_variable_values(variables)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if self.raw is not None:
            for variable, value in zip(
                self.model.trainable_variables, self.raw, strict=True
            ):
                variable.assign(value)
            self.raw = None


class Checkpoint(keras.callbacks.Callback):
    """Saves the latest state (weights and optimizer) every `every` epochs."""

    def __init__(self, every: int, save: Callable[[], None]) -> None:
        super().__init__()
        self.every, self.save = every, save

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if (epoch + 1) % self.every == 0 and not self.model.stop_training:
            self.save()


@dataclass
class TrainingCallbacks:
    """The callbacks one `train` run uses, by name."""

    epoch_log: EpochLog
    best: BestEpoch
    averaged: AveragedWeights | None
    budget: Budget
    dropout_seeds: DropoutSeeds
    plateau: Any  # keras.callbacks.ReduceLROnPlateau, or None
    step_times: StepTimes

    def in_order(self) -> list[Any]:
        """For `fit`: BestEpoch before AveragedWeights (which swaps the raw
        weights back at epoch end, after the best ones were kept), and both
        before checkpoints, which want the raw weights."""
        ordered = [self.epoch_log, self.best, self.averaged, self.budget]
        ordered += [self.dropout_seeds, self.plateau, self.step_times]
        return [callback for callback in ordered if callback is not None]


def training_callbacks(
    config: TrainConfig,
    seed: int,
    steps_per_epoch: int,
    has_validation: bool,
    history: list[dict[str, Any]],
    log: Log,
    reserved_seconds: float = 0.0,
) -> TrainingCallbacks:
    """The callbacks for a run with these settings (`reserved_seconds` of
    the budget kept for other work)."""
    monitor = "val_loss" if has_validation else "loss"
    plateau = None
    if config.lr_schedule == "plateau" and config.lr_patience:
        plateau = keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=0.5, patience=config.lr_patience, min_lr=1e-5
        )
    return TrainingCallbacks(
        epoch_log=EpochLog(history, log),
        best=BestEpoch(monitor, config.patience, log),
        averaged=AveragedWeights() if config.average else None,
        budget=Budget(config, steps_per_epoch, log, reserved_seconds),
        dropout_seeds=DropoutSeeds(seed),
        plateau=plateau,
        step_times=StepTimes(),
    )


class Interrupt:
    """Ctrl-C while training: the first asks Keras to stop after the current
    batch; the second raises KeyboardInterrupt at once."""

    def __init__(self, model: Any, log: Log) -> None:
        self.model, self.log, self.count = model, log, 0

    def __enter__(self) -> Interrupt:
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self.handle)
        return self

    def handle(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt
        self.model.stop_training = True
        self.log(
            "interrupted: stopping after this batch to save the best model so "
            "far (Ctrl-C again to quit at once without saving)"
        )

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
