"""`train()`: corpus files in, a trained `.keras` model file out.

Reads and tokenizes the corpus, holds out its tail for validation, builds the
vocabulary from the training part only, fits with Adam and sparse
cross-entropy on logits, keeps the best epoch, and saves it atomically.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .config import ModelConfig, TrainConfig, auto_batch_size
from .corpus import read_corpus
from .embeddings import read_vectors
from .errors import TextgenError, TrainingError
from .originality import Fingerprint
from .tokens import PARAGRAPH, TokenizerSettings, tokenize
from .vocab import UNK_ID, Vocabulary


def perplexity(loss: float) -> float:
    """Perplexity from a mean cross-entropy in nats (inf if it overflows)."""
    return math.exp(loss) if loss < 700 else math.inf


def corpus_tokens(
    paths: Sequence[str | Path], settings: TokenizerSettings
) -> tuple[list[str], list[dict[str, Any]]]:
    """Read and tokenize every corpus file, joined by paragraph breaks.

    Returns the tokens and, per file, its name and token count.
    """
    tokens: list[str] = []
    files = []
    for document in read_corpus(paths):
        words = tokenize(document.text, settings)
        files.append({"name": document.name, "tokens": len(words)})
        if tokens and words:
            tokens.append(PARAGRAPH)
        tokens.extend(words)
    return tokens, files


def _callbacks(config: TrainConfig, has_validation: bool, log: Callable[[str], None]):
    import keras

    patience = config.patience
    monitor = "val_loss" if has_validation else "loss"

    class EpochLog(keras.callbacks.Callback):
        """Prints one line per epoch and keeps the history for the record."""

        def __init__(self) -> None:
            super().__init__()
            self.history: list[dict[str, float]] = []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started = time.perf_counter()
            self.learning_rate = float(self.model.optimizer.learning_rate)

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
            log(f"{line}  lr {self.learning_rate:.2g}  {row['seconds']:.1f} s")

    class BestEpoch(keras.callbacks.Callback):
        """Early stopping that always ends on the best epoch's weights; stops
        at once when the loss becomes NaN, and after the time limit."""

        def __init__(self) -> None:
            super().__init__()
            self.best, self.best_epoch, self.best_weights = math.inf, 0, None
            self.diverged_epoch: int | None = None
            self.epoch = 0

        def on_train_begin(self, logs: Any = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = epoch + 1

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if logs and not math.isfinite(float(logs.get("loss", 0.0))):
                self.diverged_epoch = self.epoch
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            value = float((logs or {}).get(monitor, math.nan))
            if self.diverged_epoch is not None:
                return
            if value < self.best:
                self.best, self.best_epoch = value, epoch + 1
                self.best_weights = self.model.get_weights()
            elif patience and epoch + 1 - self.best_epoch >= patience:
                log(f"no better {monitor} for {patience} epochs: stopping")
                self.model.stop_training = True
            # Stop unless another epoch of the average length still fits.
            minutes = (time.perf_counter() - self.started) / 60
            if (
                config.max_minutes
                and minutes * (epoch + 2) / (epoch + 1) > config.max_minutes
            ):
                log(
                    f"another epoch would pass the {config.max_minutes:g}-minute "
                    "limit: stopping"
                )
                self.model.stop_training = True

        def on_train_end(self, logs: Any = None) -> None:
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    callbacks = [EpochLog(), BestEpoch()]
    if config.lr_patience:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor, factor=0.5, patience=config.lr_patience, min_lr=1e-5
            )
        )
    return callbacks


def train(
    corpus: Sequence[str | Path],
    output: str | Path,
    model_config: ModelConfig = ModelConfig(),
    config: TrainConfig = TrainConfig(),
    log: Callable[[str], None] = print,
    progress_bar: bool = False,
    plot: str | Path | None = None,
    tensorboard: str | Path | None = None,
) -> Any:
    """Train a model on the corpus and save it to `output` (a `.keras` file).

    Args:
        corpus: text files and folders of `.txt` files.
        output: where to write the model; written only if training succeeds.
        model_config: a `ModelConfig`; its `vocab_size` is set from the corpus.
        config: training settings.
        log: where progress lines go.
        progress_bar: also show Keras's per-batch progress bar.
        plot: write the learning curves to this PNG (needs matplotlib).
        tensorboard: write TensorBoard logs to this folder.

    Returns:
        The trained `LanguageModel` (also saved at `output`).

    Raises:
        TextgenError: unreadable or too-short corpus, or a diverged loss.
    """
    import keras

    from .data import count_windows, make_dataset, split_tail
    from .model import build_model, check_writable, count_parameters, save_model

    output = Path(output)
    if output.suffix != ".keras":
        raise TextgenError(f"output {output} must end in .keras")
    if tensorboard is not None and importlib.util.find_spec("tensorboard") is None:
        raise TextgenError(
            "--tensorboard needs TensorBoard; install it with: "
            "pip install 'textgen[tensorboard]'"
        )
    tokenizer = TokenizerSettings(lowercase=config.lowercase)
    tokens, files = corpus_tokens(corpus, tokenizer)
    train_tokens, val_tokens = split_tail(tokens, config.seq_len, config.val_fraction)
    vocabulary = Vocabulary.build(train_tokens, config.max_vocab, config.min_count)
    check_writable(output)
    train_ids = vocabulary.encode(train_tokens)
    val_ids = vocabulary.encode(val_tokens)
    seed = (
        config.seed
        if config.seed is not None
        else int(np.random.SeedSequence().entropy % 2**31)
    )

    vectors = None
    if config.pretrained_embeddings:
        vectors = read_vectors(config.pretrained_embeddings, vocabulary)
        if vectors.dimension != model_config.embedding_dim:
            log(f"embedding size set to {vectors.dimension}, the vectors' size")
            model_config = dataclasses.replace(
                model_config, embedding_dim=vectors.dimension
            )
        log(
            f"pretrained vectors for {vectors.covered.sum():,} of "
            f"{len(vocabulary) - 2:,} words ({vectors.covered[2:].mean():.0%})"
        )

    keras.utils.set_random_seed(seed)
    model_config = dataclasses.replace(model_config, vocab_size=len(vocabulary))
    model = build_model(model_config, vocabulary, tokenizer)
    if vectors is not None:
        start = model.embedding.embeddings.numpy().copy()
        start[vectors.covered] = vectors.matrix[vectors.covered]
        model.embedding.embeddings.assign(start)
    model.embedding.trainable = not config.freeze_embeddings
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=config.learning_rate, clipnorm=config.clipnorm or None
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    log(
        f"{len(tokens):,} words ({len(train_tokens):,} train, {len(val_tokens):,} "
        f"validation), vocabulary {len(vocabulary):,}, "
        f"{count_parameters(model):,} parameters, seed {seed}"
    )
    batch_size = config.batch_size or auto_batch_size(
        count_windows(len(train_ids), config.seq_len)
    )
    train_data = make_dataset(train_ids, config.seq_len, batch_size, seed=seed)
    val_data = (
        make_dataset(val_ids, config.seq_len, batch_size) if len(val_ids) else None
    )
    callbacks = _callbacks(config, val_data is not None, log)
    epoch_log, best = callbacks[:2]
    if tensorboard is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(tensorboard)))
    model.fit(
        train_data,
        validation_data=val_data,
        epochs=config.epochs,
        callbacks=callbacks,
        verbose=1 if progress_bar else 0,
        shuffle=False,  # the dataset shuffles itself, reproducibly
    )
    if best.diverged_epoch is not None:
        raise TrainingError(
            f"the loss became NaN in epoch {best.diverged_epoch}; try a lower "
            f"--learning-rate (now {config.learning_rate:g}) or --clipnorm 1.0"
        )
    best_row = epoch_log.history[best.best_epoch - 1]
    model.record = {
        "corpus": files,
        "tokens": {
            "total": len(tokens),
            "train": len(train_tokens),
            "validation": len(val_tokens),
        },
        "validation_oov_rate": float(np.mean(val_ids == UNK_ID))
        if len(val_ids)
        else None,
        "pretrained_vectors_coverage": (
            float(vectors.covered[2:].mean()) if vectors is not None else None
        ),
        "fingerprint": Fingerprint.of(tokens).to_config(),
        "epochs_run": len(epoch_log.history),
        "best_epoch": best.best_epoch,
        "best_val_perplexity": best_row.get("val_perplexity"),
        "train_perplexity": best_row["perplexity"],
        "history": epoch_log.history,
        "train_config": {
            **dataclasses.asdict(config),
            "seed": seed,
            "batch_size": batch_size,
        },
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "textgen_version": __version__,
        "keras_version": keras.__version__,
    }
    save_model(model, output)
    if plot is not None:
        from .plots import plot_learning_curves

        plot_learning_curves({output.stem: epoch_log.history}, plot, title=output.name)
    return model
