"""The batches of a `train` run: the random seed (a resumed model keeps its
own), the batch size and steps per epoch, with carried state the streams'
layout (`settle_batches`), and the `tf.data` datasets cut from the text's
ids from the first epoch still to run (`datasets`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TrainingError
from ..model.config import TrainConfig, auto_batch_size, fresh_seed
from ..terminal import count
from .memory import TrainingMemory
from .reading import TrainingText


@dataclass(frozen=True)
class Batches:
    """How the training text is cut into batches."""

    config: TrainConfig  # with its seed and carried state settled
    seed: int
    batch_size: int
    steps_per_epoch: int
    layout: Any = None  # `data.StreamLayout` with carried state, else None


def settle_batches(
    text: TrainingText, config: TrainConfig, previous: dict[str, Any]
) -> Batches:
    """The random seed (a resumed model's `previous` record keeps its own),
    the batch size and steps per epoch, and with carried state the streams'
    layout."""
    from .data import StreamLayout, window_starts

    seed = config.seed
    if seed is None:
        seed = previous.get("train_config", {}).get("seed")
    if seed is None and config.distribute == "multi-worker":
        raise TrainingError(
            "--distribute multi-worker needs --random-seed N, the same on every "
            "worker, so they agree on the vocabulary and the window order"
        )
    seed = fresh_seed() if seed is None else seed
    config = dataclasses.replace(config, seed=seed, carry_state=config.carries_state)
    n_windows = len(window_starts(text.train_lengths, config.seq_len)[0])
    batch_size = config.batch_size or auto_batch_size(n_windows)
    steps_per_epoch = -(-n_windows // batch_size)
    layout = None
    if config.carry_state:
        layout = StreamLayout.of(text.train_lengths, config.seq_len, batch_size)
        batch_size, steps_per_epoch = layout.rows, layout.steps
    return Batches(config, seed, batch_size, steps_per_epoch, layout)


def first_epoch(
    previous: dict[str, Any], config: TrainConfig, resume: Path | None
) -> int:
    """The epochs a resumed model has run (0 for a new one); refused when
    `config.epochs` leaves none to run."""
    done = int(previous.get("epochs_run", 0))
    if done >= config.epochs:
        raise TrainingError(
            f"{resume} has trained {count(done, 'epochs')} already; ask "
            f"for more with --epochs (it counts them all, e.g. --epochs "
            f"{done + 10})"
        )
    return done


def datasets(
    text: TrainingText,
    memory: TrainingMemory | None,
    batches: Batches,
    config: TrainConfig,
    model: Any,
    first: int = 0,
) -> tuple[Any, Any]:
    """The training and validation datasets (None without validation text),
    from epoch `first`; `model` told how to carry states."""
    from .data import StreamLayout, make_dataset, make_stream_dataset

    seed, layout, batch_size = batches.seed, batches.layout, batches.batch_size
    epochs = dict(epochs=config.epochs - first, first_epoch=first)
    train_ids, val_ids, seq_len = text.train_ids, text.val_ids, config.seq_len
    train_prior, val_prior = memory.priors if memory is not None else (None, None)
    if layout is None:
        model.carry_states(None)
        train_data = make_dataset(
            train_ids, seq_len, batch_size, seed, text.train_lengths, **epochs,
            prior=train_prior,
        )  # fmt: skip
        if not len(val_ids):
            return train_data, None
        val_data = make_dataset(
            val_ids, seq_len, batch_size, None, text.val_lengths, prior=val_prior
        )
        return train_data, val_data
    # Validation reads the held-out text as `evaluate` does: in order,
    # carrying the state.
    val_layout = StreamLayout.in_order(text.val_lengths, seq_len, batch_size)
    model.carry_states(layout.rows, val_layout.rows if len(val_ids) else None)
    train_data = make_stream_dataset(
        train_ids, seq_len, layout, seed, text.train_lengths, **epochs,
        prior=train_prior,
    )  # fmt: skip
    if not len(val_ids):
        return train_data, None
    val_data = make_stream_dataset(
        val_ids, seq_len, val_layout, None, text.val_lengths, prior=val_prior
    )
    return train_data, val_data
