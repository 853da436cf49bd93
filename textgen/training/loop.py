"""The last stage of `train`: fit the network (the callbacks, checkpoints
and TensorBoard), fit the n-gram memory to it, write the training record
and save the best epoch's model; the learning curves after."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import TextgenError, TrainingError, TrainingInterrupted
from ..model.config import ModelConfig
from ..model.novelty import ItemSet
from ..model.originality import Fingerprint, remembered
from ..model.record import TrainingRecord
from ..text.vocab import UNK_ID
from .batches import Batches
from .memory import TrainingMemory, fit_memory, reserved_seconds, unfitted
from .network import Network, use_xla
from .paths import checkpoint_path
from .reading import TrainingText


@dataclass(frozen=True)
class Fit:
    """Everything the fit reads: the stages' results and the run's outputs."""

    text: TrainingText
    memory: TrainingMemory | None
    batches: Batches
    network: Network
    previous: dict[str, Any]  # a resumed model's record ({} for a new one)
    resume: Path | None
    output: Path
    outputs: dict[str, Any]  # plot, tensorboard, checkpoint_every
    log: Callable[[str], None]

    @property
    def config(self) -> Any:
        return self.network.config


def fit(
    run: Fit, data: tuple[Any, Any], progress_bar: bool, callbacks: Sequence[Any]
) -> Any:
    """Fit, fit the memory, save the best epoch's model (the chief does)."""
    from ..model.network import save_model
    from .callbacks import Interrupt, training_callbacks
    from .distribute import is_chief

    model, config = run.network.model, run.config
    train_data, val_data = data
    planning = run.network.planning_seconds
    used = training_callbacks(
        config,
        run.batches.seed,
        run.batches.steps_per_epoch,
        val_data is not None,
        run.previous.get("history", []),
        run.log,
        reserved_seconds=reserved_seconds(run.memory, planning, config),
    )
    epoch_log, best = used.epoch_log, used.best
    memories = remembered(run.text.text, run.text.tokenizer, run.previous)
    if run.memory is not None:  # checkpoints carry it too; fitted after training
        model.mixture = unfitted(run.memory.ngram, config)
    chief = is_chief(config.distribute)  # other multi-worker workers write nothing
    if not chief:
        run.log("a worker, not the chief: the chief (worker 0) writes the model")

    def latest() -> dict[str, Any]:
        history = epoch_log.history
        return _record(run, run.network.plan, None, history, len(history), memories)

    fit_callbacks = [
        *used.in_order(),
        *_output_callbacks(run, latest if chief else None),
        *callbacks,
    ]
    with Interrupt(model, run.log) as interrupt:
        model.fit(
            train_data,
            validation_data=val_data,
            epochs=config.epochs,
            initial_epoch=int(run.previous.get("epochs_run", 0)),
            steps_per_epoch=run.batches.steps_per_epoch,
            callbacks=fit_callbacks,
            verbose=1 if progress_bar else 0,
            shuffle=False,  # the dataset shuffles itself, reproducibly
        )
        if best.diverged_epoch is not None:
            raise TrainingError(
                f"the loss became NaN in epoch {best.diverged_epoch}; try a lower "
                f"--learning-rate (now {config.learning_rate:g}) or --clipnorm 1.0"
            )
        plan = _remember_speed(run, used.step_times.seconds)
        ngram_record = None
        if run.memory is not None:
            resumed = run.resume is not None
            ngram_record = fit_memory(
                model, run.text, run.memory, config, run.log, resumed
            )
        model.record = _record(
            run, plan, ngram_record, epoch_log.history, best.best_epoch, memories
        )
        if chief:
            save_model(model, run.output, optimizer=False)
    plot = run.outputs["plot"]
    if plot is not None and chief:
        _write_picture(epoch_log.history, run.output, Path(plot), run.log)
    if interrupt.count:
        raise TrainingInterrupted(
            f"interrupted in epoch {len(epoch_log.history)}: saved the best model "
            f"so far (epoch {best.best_epoch}) to {run.output}; continue with "
            f"`textgen train --resume {run.output} ...`"
        )
    return model


def _record(
    run: Fit,
    plan: Any,
    ngram_record: dict[str, Any] | None,
    history: list[dict[str, Any]],
    best_epoch: int,
    memories: tuple[ItemSet | None, Fingerprint],
) -> dict[str, Any]:
    """The training record saved in the model (`record.TrainingRecord`)."""
    import keras

    text, network, previous = run.text, run.network, run.previous
    items, fingerprint = memories
    val_ids, files = text.val_ids, text.text.files
    best_row = {row["epoch"]: row for row in history}.get(best_epoch, {})
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    first_epoch = int(previous.get("epochs_run", 0))
    coverage = previous.get("pretrained_vectors_coverage")
    if network.vectors is not None:
        coverage = float(network.vectors.covered[2:].mean())
    return TrainingRecord(
        corpus=files,
        tokens={
            "total": len(text.all_ids),
            "train": text.n_train,
            "validation": len(val_ids),
        },
        validation_oov_rate=float(np.mean(val_ids == UNK_ID)) if len(val_ids) else None,
        pretrained_vectors_coverage=coverage,
        fingerprint=fingerprint.to_config(),
        # Hashes of the training items (item models only; see `novelty`).
        items=items.to_config() if items is not None else None,
        # What `planned` chose for the budget, and the speeds it predicted.
        plan=plan.to_record() if plan is not None else previous.get("plan"),
        init_from=previous.get("init_from"),
        epochs_run=len(history),
        best_epoch=best_epoch,
        best_val_perplexity=best_row.get("val_perplexity"),
        train_perplexity=best_row.get("perplexity"),
        history=history,
        train_config={
            **dataclasses.asdict(run.config),
            "batch_size": run.batches.batch_size,
            "xla": bool(network.model.jit_compile),
        },
        # One entry per `train` run that made this model, resumed ones too.
        runs=[
            *previous.get("runs", []),
            {
                "date": now,
                "corpus": [f["name"] for f in files],
                "first_epoch": first_epoch + 1,
                "last_epoch": len(history),
            },
        ],
        ngram=ngram_record,
        date=now,
        textgen_version=__version__,
        keras_version=keras.__version__,
    ).to_dict()


def _remember_speed(run: Fit, step_seconds: list[float]) -> Any:
    """The run's own training speed: into the budget plan (beside what was
    predicted; the plan is returned) and, for a new model on one device, the
    planner's memory of this machine."""
    from .calibration import StepSpeeds, run_speed

    plan, config = run.network.plan, run.config
    speed = run_speed(step_seconds, run.batches.batch_size * config.seq_len)
    if speed is None:
        return plan
    if plan is not None:
        plan = dataclasses.replace(plan, run_tokens_per_second=speed)
    if run.resume is None and config.distribute == "none":
        key = speed_key(run.network.model_config, config, run.batches.batch_size)
        StepSpeeds().put(key, speed, "run")
    return plan


def speed_key(shape: ModelConfig, config: Any, batch_size: int) -> str:
    """What the planner's memory of speeds files `shape` under in this run."""
    from .calibration import shape_key

    return shape_key(shape, config, batch_size, use_xla(shape, config))


def _output_callbacks(run: Fit, record: Callable[[], dict] | None) -> list[Any]:
    """The callbacks that write during training: the `--checkpoint-every`
    checkpoint (when `record`, which gives its training record: the chief
    only) and TensorBoard's logs."""
    import keras

    from ..model.network import save_model
    from .callbacks import Checkpoint

    made: list[Any] = []
    model, outputs = run.network.model, run.outputs
    if outputs["checkpoint_every"] and record is not None:

        def save_latest() -> None:
            model.record = record()
            save_model(model, checkpoint_path(run.output))

        made.append(Checkpoint(outputs["checkpoint_every"], save_latest))
    if outputs["tensorboard"] is not None:
        made.append(keras.callbacks.TensorBoard(log_dir=str(outputs["tensorboard"])))
    return made


def _write_picture(
    history: list[dict[str, Any]], output: Path, plot: Path, log: Callable[[str], None]
) -> None:
    """The learning curves; a failure here (a full disk) costs the picture, not
    the model, which is already saved."""
    from .plots import plot_learning_curves

    try:
        plot_learning_curves({output.stem: history}, plot, title=output.name)
    except (OSError, TextgenError) as err:
        reason = getattr(err, "strerror", None) or err
        log(f"could not write the picture {plot} ({reason}); the model is saved")
