"""`train()`: corpus files in, a trained `.keras` model file out.

Reads and tokenizes the corpus, holds out its tail for validation, builds the
vocabulary from the training part only, fits with Adam and sparse
cross-entropy on logits, keeps the best epoch, and saves it atomically.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import time
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .config import ModelConfig, TrainConfig, auto_batch_size, fresh_seed
from .corpus import corpus_files
from .corpus_ids import read_corpus_ids
from .embeddings import check_vectors_file, read_vectors
from .errors import (
    OutputError,
    TextgenError,
    TrainingError,
    TrainingInterrupted,
)
from .ngram import BUCKET_EDGES, BUCKETS, Mixture, NgramModel, largest_order
from .novelty import ItemSet
from .originality import Fingerprint, word_hashes
from .outputs import Output, check_outputs
from .sizing import plan_training, plan_window
from .terminal import count
from .tokens import END, TokenizerSettings, level_class, tokenizer_for
from .vocab import UNK_ID, Vocabulary


def resumed_config(record: dict[str, Any], **changes: Any) -> TrainConfig:
    """The training settings a saved model was trained with, with `changes`
    (the options given again) applied: what `train --resume` continues with."""
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    saved = {k: v for k, v in record.get("train_config", {}).items() if k in fields}
    if "train_config" in record:  # trained before carried states existed
        saved.setdefault("carry_state", False)
    return TrainConfig(**(saved | changes))


PICTURE_SUFFIXES = (".png", ".svg", ".pdf")


def check_train_outputs(
    corpus: Sequence[str | Path],
    output: str | Path,
    *,
    resume: str | Path | None = None,
    force: bool = False,
    plot: str | Path | None = None,
    tensorboard: str | Path | None = None,
    checkpoint_every: int = 0,
    vectors: str | Path | None = None,
) -> None:
    """Refuse, before any work, a `train` run that would lose a file.

    The model, its checkpoint and picture may replace existing files only with
    `force`, or when they are the model being resumed (and its companions);
    nothing is ever written over the corpus or the vectors file, which must
    be readable.

    Raises:
        OutputError: see `outputs.check_outputs`.
        TextgenError: the vectors file (see `embeddings.check_vectors_file`).
        CorpusError: a corpus path is missing.
    """
    output = Path(output)
    if output.suffix != ".keras":
        raise OutputError(f"output {output} must end in .keras")
    in_place = False
    inputs = [*corpus_files(corpus), *([Path(vectors)] if vectors else [])]
    if resume is not None:
        resume = Path(resume)
        resumed_model = resumed_model_path(resume)
        in_place = output.resolve() in (resume.resolve(), resumed_model.resolve())
        if not in_place:
            inputs.append(resume)
    wanted = [Output(output, "model", replaceable=in_place, option="-o")]
    if checkpoint_every:
        wanted.append(
            Output(checkpoint_path(output), "checkpoint", in_place, option="-o")
        )
    if plot is not None:
        plot = Path(plot)
        if plot.suffix.lower() not in PICTURE_SUFFIXES:
            raise OutputError(
                f"picture {plot} must end in {', '.join(PICTURE_SUFFIXES)}"
            )
        default = plot.resolve() == output.with_suffix(".png").resolve()
        replaceable = in_place and default
        wanted.append(Output(plot, "picture", replaceable, option="--plot"))
    if tensorboard is not None:
        folder = Path(tensorboard)
        wanted.append(
            Output(folder, "TensorBoard logs", folder=True, option="--tensorboard")
        )
    check_outputs(wanted, inputs, force, hint=f"--resume {output} to train it further")
    if vectors:
        check_vectors_file(vectors)


def checkpoint_path(output: str | Path) -> Path:
    """Where `--checkpoint-every` keeps the latest state: NAME.last.keras."""
    output = Path(output)
    return output.with_name(f"{output.stem}.last.keras")


def resumed_model_path(resume: str | Path) -> Path:
    """The model a `--resume` run writes by default: the model itself, or for a
    `.last.keras` checkpoint the model it belongs to."""
    path = Path(resume)
    if path.name.endswith(".last.keras"):
        return path.with_name(path.name.removesuffix(".last.keras") + ".keras")
    return path


def _compile(model: Any, config: TrainConfig, steps_per_epoch: int) -> None:
    """Adam with clipping and (with `config.average`) a moving average of the
    weights over about the last epoch's steps; cross-entropy on logits.

    On a CPU the step is compiled with XLA (Keras leaves it off there): it
    fuses each time step's gate arithmetic into one kernel, 2-3x faster at
    the default size (benchmarks/step.py). Not on a GPU, where cuDNN runs the
    recurrent layers and cannot be compiled, nor under a distribution strategy.
    """
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=config.learning_rate,
            clipnorm=config.clipnorm or None,
            use_ema=config.average,
            ema_momentum=min(max(1 - 1 / steps_per_epoch, 0.9), 0.999),
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=use_xla(model.model_config, config),
    )


# XLA takes seconds to compile a step; below this size a whole training run
# is over in about that time, so it is left off (tests lower it to cover XLA).
XLA_MIN_PARAMETERS = 200_000


def use_xla(model_config: ModelConfig, config: TrainConfig) -> bool:
    """Whether `train` compiles its step with XLA (see `_compile`)."""
    from .cells import on_gpu

    return (
        config.distribute == "none"
        and model_config.parameter_count() >= XLA_MIN_PARAMETERS
        and not on_gpu()
    )


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


def check_trainable_size(config: ModelConfig) -> None:
    """Refuse, before building it, a network this machine cannot train.

    Training holds each weight about six times (the weights, Adam's two
    moments, the average, the gradient, the best epoch's copy), 4 bytes each.

    Raises:
        TrainingError: the network needs more memory than the machine has,
            or one of its matrices is too big for TensorFlow.
    """
    parameters = config.parameter_count()
    largest = config.largest_matrix()
    fix = "lower --units, --embedding-dim, --layers or --max-vocab"
    if largest >= 2**31:
        raise TrainingError(
            f"one matrix of this network would have {largest:,} entries, more "
            f"than TensorFlow handles (2,147,483,647); {fix}"
        )
    need, memory = parameters * 4 * 6, _physical_memory()
    if memory and need > memory:
        raise TrainingError(
            f"a network of {parameters:,} parameters needs about "
            f"{need / 2**30:,.1f} GiB to train, more than this machine's "
            f"{memory / 2**30:,.1f} GiB; {fix}"
        )


# Seconds a budget keeps for fitting the mixture after training.
_FIT_SECONDS = 5.0


def _count_ngrams(
    train_ids: np.ndarray,
    train_lengths: Sequence[int],
    vocabulary: Vocabulary,
    tokenizer: TokenizerSettings,
    config: TrainConfig,
    log: Callable[[str], None],
) -> tuple[NgramModel | None, float]:
    """The n-gram memory of the training ids (each file, or each item, from
    a fresh start), and the seconds counting took."""
    if not config.ngram:
        return None, 0.0
    started = time.perf_counter()
    if tokenizer.items:
        from .evaluate import item_spans

        starts, lengths = item_spans(train_ids, vocabulary.word_to_id[END])
        ends = starts + lengths + 1  # each item with its end token
        documents = [train_ids[a:b] for a, b in zip(starts, ends, strict=True)]
    else:
        documents = np.split(train_ids, np.cumsum(train_lengths)[:-1])
    cap = int(config.ngram_max_mb * 2**20)
    ngram = NgramModel.count(documents, len(vocabulary), config.ngram, cap)
    seconds = time.perf_counter() - started
    lowered = ""
    if largest_order(len(vocabulary), config.ngram) < config.ngram:
        lowered = (
            f" (order {config.ngram} does not fit 63-bit keys with this vocabulary)"
        )
    pruned = ""
    if ngram.pruned:
        pruned = f", {count(ngram.pruned, 'rare n-grams')} pruned to fit"
    log(
        f"n-gram memory: order {ngram.order}{lowered}, "
        f"{count(ngram.entries, 'entries')}, {ngram.nbytes / 2**20:.1f} MB{pruned}, "
        f"counted in {seconds:.1f} s"
    )
    return ngram, seconds


def _fit_ngram(
    model: Any,
    ngram: NgramModel,
    val_ids: np.ndarray,
    config: TrainConfig,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Fit the mixing weights on the validation text (a single even weight
    without one) and return the record's description of the memory."""
    from .evaluate import fit_mixture

    started = time.perf_counter()
    if len(val_ids):
        fit = fit_mixture(model, val_ids, ngram)
        log(
            f"mixed with the n-gram memory: validation cross-entropy "
            f"{fit['mixed_cross_entropy']:.3f} nats (network "
            f"{fit['network_cross_entropy']:.3f}, n-gram "
            f"{fit['ngram_cross_entropy']:.3f}), weights "
            + " ".join(f"{w:.2f}" for w in fit["weights"])
        )
    else:
        model.mixture = Mixture.even(ngram)
        fit = {"weights": [0.5] * BUCKETS, "fitted_on_tokens": 0}
        log("mixed with the n-gram memory half and half: no validation text to fit on")
    return {
        "order": ngram.order,
        "requested_order": config.ngram,
        "entries": ngram.entries,
        "megabytes": round(ngram.nbytes / 2**20, 3),
        "pruned": ngram.pruned,
        "fitting_seconds": round(time.perf_counter() - started, 3),
        "bucket_edges": list(BUCKET_EDGES),
        **fit,
    }


def _physical_memory() -> int:
    """Bytes of memory in the machine (0 when it cannot be told)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0


def train(
    corpus: Sequence[str | Path],
    output: str | Path,
    model_config: ModelConfig = ModelConfig(),
    config: TrainConfig = TrainConfig(),
    log: Callable[[str], None] = print,
    progress_bar: bool = False,
    plot: str | Path | None = None,
    tensorboard: str | Path | None = None,
    *,
    resume: str | Path | None = None,
    force: bool = False,
    checkpoint_every: int = 0,
    callbacks: Sequence[Any] = (),
    planned: Collection[str] = (),
) -> Any:
    """Train a model on the corpus and save it to `output` (a `.keras` file).

    Args:
        corpus: text files and folders of `.txt` files; each file is a document
            and no training window crosses from one into the next.
        output: where to write the model; written only if training succeeds
            (or is interrupted with Ctrl-C after a first epoch).
        model_config: a `ModelConfig`; its `vocab_size` is set from the corpus.
            Ignored when resuming: the saved model keeps its shape.
        config: training settings (see `resumed_config` for resuming).
            `epochs` counts every epoch, those of a resumed model included.
        log: where progress lines go.
        progress_bar: also show Keras's per-batch progress bar.
        plot: write the learning curves to this PNG (needs matplotlib).
        tensorboard: write TensorBoard logs to this folder.
        resume: a model (or its `.last.keras` checkpoint) to continue training:
            its vocabulary (new words become `<unk>`), optimizer state, epoch
            counter and training record are kept.
        force: overwrite an existing `output` (resuming always may).
        checkpoint_every: save the latest state to `NAME.last.keras` beside
            `output` every this many epochs (0: never).
        callbacks: more Keras callbacks for `fit`.
        planned: settings (names from `sizing.PLANNED`) that `train` chooses
            for the corpus and the `max_minutes` budget instead of taking them
            from the configs; the CLI passes those not given as options.
            Ignored when resuming: the saved settings are kept.

    Returns:
        The trained `LanguageModel` (also saved at `output`).

    Raises:
        TextgenError: unreadable or too-short corpus, an existing output, a
            diverged loss, or an interruption (after saving the best model).
    """
    import keras

    from .callbacks import Checkpoint, Interrupt, training_callbacks
    from .data import (
        StreamLayout,
        check_windows,
        make_dataset,
        make_stream_dataset,
        split_lengths,
        split_tail,
        window_starts,
    )
    from .distribute import is_chief, make_strategy, scope
    from .model import build_model, count_parameters, load_model, save_model

    output = Path(output)
    check_train_outputs(
        corpus,
        output,
        resume=resume,
        force=force,
        plot=plot,
        tensorboard=tensorboard,
        checkpoint_every=checkpoint_every,
        vectors=config.pretrained_embeddings if resume is None else None,
    )
    if tensorboard is not None and importlib.util.find_spec("tensorboard") is None:
        raise TextgenError(
            "--tensorboard needs TensorBoard; install it with: "
            "pip install 'textgen[tensorboard]'"
        )
    # Before any other TensorFlow op: multi-worker training requires it.
    strategy = make_strategy(config.distribute)
    if strategy is not None:
        log(f"{strategy.num_replicas_in_sync} replicas ({config.distribute})")
    previous: dict[str, Any] = {}
    plan = None
    if resume is not None:
        with scope(strategy):
            model = load_model(resume, compile=True)
        previous = model.record or {}
        tokenizer, vocabulary = model.tokenizer_settings, model.vocabulary
        if config.documents != tokenizer.documents:
            raise TrainingError(
                f"--documents {config.documents}: {resume} was trained with "
                f"--documents {tokenizer.documents}, which a resumed model keeps"
            )
    else:
        tokenizer = TokenizerSettings(
            lowercase=config.lowercase and level_class(config.level).folds_case,
            level=config.level,
            documents=config.documents,
        )
    text = read_corpus_ids(corpus, tokenizer, progress_bar)
    files = text.files
    if resume is not None:
        planned = ()
    config = plan_window(config, planned, len(text.ids))
    unit = tokenizer_for(tokenizer).unit
    n_train = len(split_tail(text.ids, config.seq_len, config.val_fraction, unit)[0])
    n_val = len(text.ids) - n_train
    train_lengths, val_lengths = split_lengths([f["tokens"] for f in files], n_train)
    check_windows(train_lengths, val_lengths, config.seq_len, unit)
    if resume is None:
        vocabulary = Vocabulary.from_counts(
            text.counts(n_train), config.max_vocab, config.min_count
        )
    all_ids = text.encode(vocabulary)
    train_ids, val_ids = all_ids[:n_train], all_ids[n_train:]
    ngram, counting_seconds = _count_ngrams(
        train_ids, train_lengths, vocabulary, tokenizer, config, log
    )
    reserved = counting_seconds + _FIT_SECONDS if ngram is not None else 0.0
    if resume is not None:
        unknown = float(np.mean(all_ids == UNK_ID))
        log(
            f"resuming {resume} after epoch {previous.get('epochs_run', 0)}; "
            f"{unknown:.1%} of the corpus words are <unk> to its vocabulary"
        )
    seed = config.seed
    if seed is None:  # a resumed model keeps its seed
        seed = previous.get("train_config", {}).get("seed")
    if seed is None and config.distribute == "multi-worker":
        raise TrainingError(
            "--distribute multi-worker needs --random-seed N, the same on every "
            "worker, so they agree on the vocabulary and the window order"
        )
    if seed is None:
        seed = fresh_seed()
    config = dataclasses.replace(config, seed=seed)

    n_windows = len(window_starts(train_lengths, config.seq_len)[0])
    batch_size = config.batch_size or auto_batch_size(n_windows)
    steps_per_epoch = -(-n_windows // batch_size)
    layout = None
    config = dataclasses.replace(config, carry_state=config.carries_state)
    if config.carry_state:
        layout = StreamLayout.of(train_lengths, config.seq_len, batch_size)
        batch_size, steps_per_epoch = layout.rows, layout.steps

    vectors = None
    if resume is None:
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
        plan = plan_training(
            model_config, config, n_train, planned, reserved_seconds=reserved
        )
        if plan is not None:
            model_config, config = plan.model_config, plan.config
            log(plan.describe(unit))
        check_trainable_size(model_config)
        with scope(strategy):
            model = build_model(
                model_config,
                vocabulary,
                tokenizer,
                frozen_embeddings=config.freeze_embeddings,
            )
            if vectors is not None:
                start = model.embedding.embeddings.numpy().copy()
                start[vectors.covered] = vectors.matrix[vectors.covered]
                model.embedding.embeddings.assign(start)
            _compile(model, config, steps_per_epoch)
    else:
        keras.utils.set_random_seed(seed)
        # The saved choice was made for another machine, perhaps.
        model.jit_compile = use_xla(model.model_config, config)
        fresh = ""
        if getattr(model, "optimizer", None) is None:
            fresh = "it is a lean model, saved without the optimizer's state"
        elif model.frozen_embeddings != config.freeze_embeddings:
            fresh = "--freeze-embeddings changed what is trained"
        if fresh:
            log(
                f"starting a fresh optimizer: {fresh} (for an exact continuation, "
                "resume from the .last.keras checkpoint of --checkpoint-every)"
            )
            with scope(strategy):
                model.frozen_embeddings = config.freeze_embeddings
                model.embedding.trainable = not config.freeze_embeddings
                _compile(model, config, steps_per_epoch)
        elif config.lr_schedule == "constant":  # plateau goes on from the saved rate
            model.optimizer.learning_rate = config.learning_rate
    log(
        f"{len(all_ids):,} {unit} ({n_train:,} train, {n_val:,} validation) in "
        f"{len(files)} file{'s' if len(files) > 1 else ''}, "
        f"vocabulary {len(vocabulary):,}, "
        f"{count_parameters(model):,} parameters, seed {seed}"
    )
    first_epoch = int(previous.get("epochs_run", 0))
    if first_epoch >= config.epochs:
        raise TrainingError(
            f"{resume} has trained {count(first_epoch, 'epochs')} already; ask for "
            f"more with --epochs (it counts them all, e.g. --epochs {first_epoch + 10})"
        )
    epochs = dict(epochs=config.epochs - first_epoch, first_epoch=first_epoch)
    if layout is not None:
        # Validation reads the held-out text as `evaluate` does: in order,
        # carrying the state.
        val_layout = StreamLayout.in_order(val_lengths, config.seq_len, batch_size)
        model.carry_states(layout.rows, val_layout.rows if len(val_ids) else None)
        train_data = make_stream_dataset(
            train_ids, config.seq_len, layout, seed, train_lengths, **epochs
        )
        val_data = (
            make_stream_dataset(val_ids, config.seq_len, val_layout, None, val_lengths)
            if len(val_ids)
            else None
        )
    else:
        model.carry_states(None)
        train_data = make_dataset(
            train_ids, config.seq_len, batch_size, seed, train_lengths, **epochs
        )
        val_data = (
            make_dataset(val_ids, config.seq_len, batch_size, None, val_lengths)
            if len(val_ids)
            else None
        )
    callbacks_used = training_callbacks(
        config,
        seed,
        steps_per_epoch,
        val_data is not None,
        previous.get("history", []),
        log,
        reserved_seconds=reserved,
    )
    epoch_log, best = callbacks_used.epoch_log, callbacks_used.best
    fit_callbacks = callbacks_used.in_order()
    items = None
    if tokenizer.items:  # every item of the corpus, for `generate --novel`
        items = ItemSet.of_ids(text.ids, text.words, text.words.index(END))
        if previous.get("items"):
            earlier_items = ItemSet.from_config(previous["items"]).hashes
            items = ItemSet(np.union1d(items.hashes, earlier_items))
    hashes = word_hashes(text.words)
    earlier = Fingerprint.from_config(previous.get("fingerprint") or {})
    if earlier is not None:
        fingerprint = earlier.extended_ids(text.ids, hashes)
    else:
        n = tokenizer_for(tokenizer).ngram
        fingerprint = Fingerprint.of_ids(text.ids, hashes, n)

    if ngram is not None:  # checkpoints carry it too; fitted after training
        model.mixture = Mixture.even(ngram)
    ngram_record: dict[str, Any] | None = None

    def record(best_epoch: int) -> dict[str, Any]:
        rows = {row["epoch"]: row for row in epoch_log.history}
        best_row = rows.get(best_epoch, {})
        runs = previous.get("runs", [])
        return {
            "corpus": files,
            "tokens": {"total": len(all_ids), "train": n_train, "validation": n_val},
            "validation_oov_rate": float(np.mean(val_ids == UNK_ID))
            if len(val_ids)
            else None,
            "pretrained_vectors_coverage": (
                float(vectors.covered[2:].mean())
                if vectors is not None
                else previous.get("pretrained_vectors_coverage")
            ),
            "fingerprint": fingerprint.to_config(),
            # Hashes of the training items (item models only; see `novelty`).
            "items": items.to_config() if items is not None else None,
            # What `planned` chose for the budget, and the speeds it predicted.
            "plan": plan.to_record() if plan is not None else previous.get("plan"),
            "epochs_run": len(epoch_log.history),
            "best_epoch": best_epoch,
            "best_val_perplexity": best_row.get("val_perplexity"),
            "train_perplexity": best_row.get("perplexity"),
            "history": epoch_log.history,
            "train_config": {
                **dataclasses.asdict(config),
                "batch_size": batch_size,
                "xla": bool(model.jit_compile),
            },
            # One entry per `train` run that made this model, resumed ones too.
            "runs": [
                *runs,
                {
                    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "corpus": [f["name"] for f in files],
                    "first_epoch": first_epoch + 1,
                    "last_epoch": len(epoch_log.history),
                },
            ],
            "ngram": ngram_record,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "textgen_version": __version__,
            "keras_version": keras.__version__,
        }

    chief = is_chief(config.distribute)  # other multi-worker workers write nothing
    if not chief:
        log("a worker, not the chief: the chief (worker 0) writes the model")
    if checkpoint_every and chief:
        last = checkpoint_path(output)

        def save_latest() -> None:
            model.record = record(len(epoch_log.history))
            save_model(model, last)

        fit_callbacks.append(Checkpoint(checkpoint_every, save_latest))
    if tensorboard is not None:
        fit_callbacks.append(keras.callbacks.TensorBoard(log_dir=str(tensorboard)))
    fit_callbacks.extend(callbacks)
    with Interrupt(model, log) as interrupt:
        model.fit(
            train_data,
            validation_data=val_data,
            epochs=config.epochs,
            initial_epoch=first_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=fit_callbacks,
            verbose=1 if progress_bar else 0,
            shuffle=False,  # the dataset shuffles itself, reproducibly
        )
        if best.diverged_epoch is not None:
            raise TrainingError(
                f"the loss became NaN in epoch {best.diverged_epoch}; try a lower "
                f"--learning-rate (now {config.learning_rate:g}) or --clipnorm 1.0"
            )
        if ngram is not None:
            ngram_record = _fit_ngram(model, ngram, val_ids, config, log)
            ngram_record["counting_seconds"] = round(counting_seconds, 3)
            ngram_record["recounted_on_resume"] = resume is not None
        model.record = record(best.best_epoch)
        if chief:
            save_model(model, output, optimizer=False)
    if plot is not None and chief:
        _write_picture(epoch_log.history, output, Path(plot), log)
    if interrupt.count:
        raise TrainingInterrupted(
            f"interrupted in epoch {len(epoch_log.history)}: saved the best model "
            f"so far (epoch {best.best_epoch}) to {output}; continue with "
            f"`textgen train --resume {output} ...`"
        )
    return model
