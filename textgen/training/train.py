"""`train()`: corpus files in, a trained `.keras` model file out.

Reads and tokenizes the corpus, holds out its tail for validation, builds the
vocabulary from the training part only, fits with Adam and sparse
cross-entropy on logits, keeps the best epoch, and saves it atomically.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import os
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import (
    OutputError,
    TextgenError,
    TrainingError,
    TrainingInterrupted,
)
from ..model.config import ModelConfig, TrainConfig, auto_batch_size, fresh_seed
from ..model.counting import CountedText, documents, memory_record
from ..model.levels import level_policy
from ..model.ngram import (
    BUCKETS,
    Grams,
    Mixture,
    NgramModel,
    Residual,
    largest_order,
)
from ..model.novelty import ItemSet
from ..model.originality import Fingerprint, remembered
from ..model.record import TrainingRecord
from ..outputs import Output, check_outputs
from ..terminal import count
from ..text.corpus import corpus_files
from ..text.ids import CorpusIds, read_corpus_ids
from ..text.tokens import END, TokenizerSettings, tokenizer_for
from ..text.vocab import UNK_ID, Vocabulary
from .embeddings import check_vectors_file, read_vectors
from .sizing import Measure, plan_training, plan_window


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
    from ..model.cells import on_gpu

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


def _physical_memory() -> int:
    """Bytes of memory in the machine (0 when it cannot be told)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0


# Training is a pipeline of stages, each a function of the `_Run` it fills in:
# check the outputs, start (the strategy, the resumed model or the tokenizer
# settings), read the corpus once, choose the vocabulary, count the n-gram
# memory, settle the seed and the batches, build or resume the network, make
# the datasets, fit, fit the mixture, save. `train` runs them in order.


@dataclass
class _Run:
    """One `train` call, carried from stage to stage."""

    files: list[Path]  # the corpus, expanded once
    output: Path
    model_config: ModelConfig
    config: TrainConfig
    log: Callable[[str], None]
    resume: Path | None
    planned: Collection[str]
    # Set by the stages, in this order.
    strategy: Any = None
    model: Any = None  # the Keras LanguageModel, resumed or built
    previous: dict[str, Any] = field(default_factory=dict)  # a resumed record
    tokenizer: TokenizerSettings = field(default_factory=TokenizerSettings)
    text: CorpusIds | None = None
    n_train: int = 0  # tokens before the validation tail
    train_lengths: list[int] = field(default_factory=list)  # per document
    val_lengths: list[int] = field(default_factory=list)
    vocabulary: Vocabulary | None = None
    all_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    ngram: NgramModel | None = None
    priors: tuple[Any, Any] = (None, None)  # residual: `prior.Prior`s, train and val
    counting_seconds: float = 0.0
    prior_seconds: float = 0.0  # residual: the blocks' memories (`_priors`)
    planning_seconds: float = 0.0  # timing candidate sizes' steps
    seed: int = 0
    batch_size: int = 0
    steps_per_epoch: int = 0
    layout: Any = None  # `data.StreamLayout` with carried state, else None
    vectors: Any = None  # pretrained word vectors, if any
    plan: Any = None  # `sizing.Plan` of a budget, if any
    ngram_record: dict[str, Any] | None = None

    @property
    def unit(self) -> str:
        return tokenizer_for(self.tokenizer).unit

    @property
    def train_ids(self) -> np.ndarray:
        return self.all_ids[: self.n_train]

    @property
    def val_ids(self) -> np.ndarray:
        return self.all_ids[self.n_train :]

    @property
    def reserved_seconds(self) -> float:
        """Of a budget, what the planner's measuring and the n-gram memory's
        counting and fitting take."""
        if self.ngram is None:
            return self.planning_seconds
        # Counted four times: the training text, then all of it and twice
        # without half of the validation text (`CountedText.all_and_held_out`).
        counting = self.counting_seconds * (1 + 3 / (1 - self.config.val_fraction))
        return self.planning_seconds + counting + self.prior_seconds + _FIT_SECONDS


# Seconds a budget keeps for fitting the mixture after training.
_FIT_SECONDS = 5.0


def _start(run: _Run) -> None:
    """The distribution strategy, and the resumed model or the new model's
    tokenizer settings."""
    from ..model.network import load_model
    from .distribute import make_strategy, scope

    config = run.config
    # Before any other TensorFlow op: multi-worker training requires it.
    run.strategy = make_strategy(config.distribute)
    if run.strategy is not None:
        replicas = run.strategy.num_replicas_in_sync
        run.log(f"{replicas} replicas ({config.distribute})")
    if run.resume is None:
        run.tokenizer = tokenizer_settings(config)
        return
    with scope(run.strategy):
        run.model = load_model(run.resume, compile=True)
    run.previous = run.model.record or {}
    run.tokenizer, run.vocabulary = run.model.tokenizer_settings, run.model.vocabulary
    run.planned = ()  # a resumed model keeps its settings
    if config.documents != run.tokenizer.documents:
        raise TrainingError(
            f"--documents {config.documents}: {run.resume} was trained with "
            f"--documents {run.tokenizer.documents}, which a resumed model keeps"
        )


def tokenizer_settings(config: TrainConfig) -> TokenizerSettings:
    """How a new model trained with `config` tokenizes its text."""
    return TokenizerSettings(
        lowercase=config.lowercase and level_policy(config.level).folds_case,
        level=config.level,
        documents=config.documents,
    )


def _read_corpus(run: _Run, progress_bar: bool, text: CorpusIds | None) -> None:
    """Read the corpus (unless the caller has: `text`); choose the window;
    split off the validation tail."""
    from .data import check_windows, split_lengths, split_tail

    if text is None:
        text = read_corpus_ids(run.files, run.tokenizer, progress_bar)
    run.text = text
    run.config = config = plan_window(run.config, run.planned, len(text.ids))
    train_part, _ = split_tail(text.ids, config.seq_len, config.val_fraction, run.unit)
    run.n_train = len(train_part)
    lengths = [f["tokens"] for f in text.files]
    run.train_lengths, run.val_lengths = split_lengths(lengths, run.n_train)
    check_windows(run.train_lengths, run.val_lengths, config.seq_len, run.unit)


def _choose_vocabulary(run: _Run) -> None:
    """The vocabulary of the training part (a resumed model keeps its own),
    and the corpus as its ids."""
    assert run.text is not None
    config = run.config
    if run.vocabulary is None:
        counts = run.text.counts(run.n_train)
        run.vocabulary = Vocabulary.from_counts(
            counts, config.max_vocab, config.min_count
        )
    run.all_ids = run.text.encode(run.vocabulary)
    if run.resume is not None:
        unknown = float(np.mean(run.all_ids == UNK_ID))
        run.log(
            f"resuming {run.resume} after epoch {run.previous.get('epochs_run', 0)}; "
            f"{unknown:.1%} of the corpus words are <unk> to its vocabulary"
        )


def _end_id(run: _Run) -> int | None:
    """An item model's end token's id (None for a model of files)."""
    assert run.vocabulary is not None
    return run.vocabulary.word_to_id[END] if run.tokenizer.items else None


def _counted(run: _Run) -> CountedText:
    """All of the text's ids, cut into files (or items) for counting."""
    assert run.text is not None and run.vocabulary is not None
    lengths = [f["tokens"] for f in run.text.files]
    return CountedText.of(
        run.all_ids, lengths, len(run.vocabulary), run.config.memory_order, _end_id(run)
    )


def _starts(run: _Run, ids: np.ndarray, lengths: list[int]) -> np.ndarray:
    """Where each file (of `lengths` tokens) or item of `ids` begins."""
    return documents(ids, lengths, _end_id(run))[0]


def _count_ngrams(run: _Run) -> None:
    """The n-gram memory of the training ids, used while training and
    fitting (`_fit_ngram` counts the validation text in afterwards); its
    time, twice, comes out of the budget."""
    config, vocabulary = run.config, run.vocabulary
    if not config.memory_order:
        return
    assert vocabulary is not None
    started = time.perf_counter()
    cap = int(config.ngram_max_mb * 2**20)
    unigrams = len(vocabulary) * np.dtype(np.int64).itemsize
    if cap < unigrams:  # said with this corpus's own vocabulary
        raise TrainingError(
            f"--ngram-max-mb {config.ngram_max_mb:g} is too small for even the "
            f"unigrams of this corpus's {count(len(vocabulary), run.unit)} "
            f"({unigrams / 2**20:.4g} MB); give more, or --ngram-order 0 for no "
            "n-gram memory"
        )
    counted = _counted(run)
    trained = counted.grams(0, run.n_train)
    run.ngram = ngram = trained.model(cap)
    run.counting_seconds = time.perf_counter() - started
    if config.residual:
        run.priors = _priors(run, counted, trained, cap)
        run.prior_seconds = time.perf_counter() - started - run.counting_seconds
    lowered = ""
    order = config.memory_order
    if largest_order(len(vocabulary), order) < order:
        lowered = f" (order {order} does not fit 63-bit keys with this vocabulary)"
    pruned = ""
    if ngram.pruned:
        pruned = f", {count(ngram.pruned, 'rare n-grams')} pruned to fit"
    run.log(
        f"n-gram memory: order {ngram.order}{lowered}, "
        f"{count(ngram.entries, 'entries')}, {ngram.nbytes / 2**20:.1f} MB{pruned}, "
        f"counted in {run.counting_seconds:.1f} s"
    )


def _priors(
    run: _Run, counted: CountedText, trained: Grams, cap: int
) -> tuple[Any, Any]:
    """Residual training's priors (see `training/prior.py`): each training position
    scored by the memory of the other blocks of the training text, the
    validation text by the memory of all of it. Logs each one's
    cross-entropy, which should agree within a few percent (no leakage)."""
    from ..model.network import NETWORK_ALONE_SHARE
    from .prior import Prior, blocks_for

    assert run.ngram is not None
    seq_len, n_train = run.config.seq_len, run.n_train
    blocks = min(blocks_for(run.ngram.nbytes), max(n_train, 1))
    edges = [n_train * k // blocks for k in range(blocks + 1)]
    memories = [
        trained.without(counted.grams(a, b)).model(cap)
        for a, b in itertools.pairwise(edges)
    ]
    train_ids, val_ids = run.train_ids, run.val_ids
    train_prior = Prior(
        train_ids, _starts(run, train_ids, run.train_lengths),
        memories, edges, seq_len,
    )  # fmt: skip
    val_prior = Prior(
        val_ids, _starts(run, val_ids, run.val_lengths),
        [run.ngram], [0, len(val_ids)], seq_len,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    sample = rng.choice(n_train, size=min(n_train, 50_000), replace=False)
    seen = train_prior.cross_entropy(np.sort(sample))
    held = val_prior.cross_entropy(np.arange(min(len(val_ids), 50_000)))
    run.log(
        f"residual training on the n-gram memory: its cross-entropy on the "
        f"training text as training sees it (each of {blocks} blocks counted "
        f"without itself) {seen:.3f} nats, on the validation text {held:.3f}; "
        f"the train loss adds {NETWORK_ALONE_SHARE:g} x the network's own"
    )
    return train_prior, val_prior


def _settle_seed_and_batches(run: _Run) -> None:
    """The random seed (a resumed model keeps its own), the batch size and
    steps per epoch, and with carried state the streams' layout."""
    from .data import StreamLayout, window_starts

    config = run.config
    seed = config.seed
    if seed is None:
        seed = run.previous.get("train_config", {}).get("seed")
    if seed is None and config.distribute == "multi-worker":
        raise TrainingError(
            "--distribute multi-worker needs --random-seed N, the same on every "
            "worker, so they agree on the vocabulary and the window order"
        )
    run.seed = fresh_seed() if seed is None else seed
    run.config = config = dataclasses.replace(
        config, seed=run.seed, carry_state=config.carries_state
    )
    n_windows = len(window_starts(run.train_lengths, config.seq_len)[0])
    run.batch_size = config.batch_size or auto_batch_size(n_windows)
    run.steps_per_epoch = -(-n_windows // run.batch_size)
    if config.carry_state:
        run.layout = StreamLayout.of(run.train_lengths, config.seq_len, run.batch_size)
        run.batch_size, run.steps_per_epoch = run.layout.rows, run.layout.steps


def _build_network(run: _Run) -> None:
    """A new network: pretrained vectors, the budget's plan, the size check."""
    import keras

    from ..model.network import build_model
    from .distribute import scope

    config, vocabulary, model_config = run.config, run.vocabulary, run.model_config
    assert vocabulary is not None
    if config.pretrained_embeddings:
        run.vectors = vectors = read_vectors(config.pretrained_embeddings, vocabulary)
        if vectors.dimension != model_config.embedding_dim:
            run.log(f"embedding size set to {vectors.dimension}, the vectors' size")
            model_config = dataclasses.replace(
                model_config, embedding_dim=vectors.dimension
            )
        run.log(
            f"pretrained vectors for {vectors.covered.sum():,} of "
            f"{len(vocabulary) - 2:,} words ({vectors.covered[2:].mean():.0%})"
        )
    keras.utils.set_random_seed(run.seed)
    model_config = dataclasses.replace(model_config, vocab_size=len(vocabulary))
    run.plan = plan_training(
        model_config,
        config,
        run.n_train,
        run.planned,
        reserved_seconds=run.reserved_seconds,
        measure=_step_speeds(run),
    )
    if run.plan is not None:
        model_config, run.config = run.plan.model_config, run.plan.config
        run.planning_seconds = run.plan.measuring_seconds
        run.log(run.plan.describe(run.unit))
        keras.utils.set_random_seed(run.seed)  # as if nothing had been measured
    run.model_config = model_config
    check_trainable_size(model_config)
    with scope(run.strategy):
        run.model = model = build_model(
            model_config,
            vocabulary,
            run.tokenizer,
            frozen_embeddings=run.config.freeze_embeddings,
        )
        if run.vectors is not None:
            covered = run.vectors.covered
            start = model.embedding.embeddings.numpy().copy()
            start[covered] = run.vectors.matrix[covered]
            model.embedding.embeddings.assign(start)
        _compile(model, run.config, run.steps_per_epoch)


def _step_speeds(run: _Run) -> Measure:
    """The planner's `sizing.Measure` for this run: a size's training speed
    remembered for this machine (`calibration.StepSpeeds`), else timed over
    a few real steps on this corpus's batches, if the time left allows."""
    from ..model.network import build_model
    from .calibration import StepSpeeds, time_steps

    speeds = StepSpeeds()

    def measure(shape: ModelConfig, allowed: float) -> tuple[float, str] | None:
        key = _speed_key(run, shape)
        known = speeds.get(key)
        if known is not None:
            return known, "remembered"
        if allowed < speeds.measuring_cost() or run.config.distribute != "none":
            return None  # no time, or steps a lone model cannot show
        started = time.perf_counter()
        model = build_model(shape, run.vocabulary, run.tokenizer)
        _compile(model, run.config, run.steps_per_epoch)
        batches, _ = _datasets(run, model)
        # The first steps compile (seconds); time the rest briefly.
        step, steps = time_steps(
            model, batches.take(200), seconds=min(3.0, allowed / 4)
        )
        if not steps:
            return None  # too few batches to time
        tokens_per_second = run.batch_size * run.config.seq_len / step
        spent = time.perf_counter() - started
        speeds.put(key, tokens_per_second, "steps", spent)
        return tokens_per_second, "measured"

    return measure


def _resume_network(run: _Run) -> None:
    """The resumed network, with a fresh optimizer where it has none (or
    what it trains changed)."""
    import keras

    from .distribute import scope

    model, config = run.model, run.config
    keras.utils.set_random_seed(run.seed)
    # The saved choice was made for another machine, perhaps.
    model.jit_compile = use_xla(model.model_config, config)
    fresh = ""
    if getattr(model, "optimizer", None) is None:
        fresh = "it is a lean model, saved without the optimizer's state"
    elif model.frozen_embeddings != config.freeze_embeddings:
        fresh = "--freeze-embeddings changed what is trained"
    if fresh:
        run.log(
            f"starting a fresh optimizer: {fresh} (for an exact continuation, "
            "resume from the .last.keras checkpoint of --checkpoint-every)"
        )
        with scope(run.strategy):
            model.frozen_embeddings = config.freeze_embeddings
            model.embedding.trainable = not config.freeze_embeddings
            _compile(model, config, run.steps_per_epoch)
    elif config.lr_schedule == "constant":  # plateau goes on from the saved rate
        model.optimizer.learning_rate = config.learning_rate


def _datasets(run: _Run, model: Any = None) -> tuple[Any, Any]:
    """The training and validation datasets (None without validation text),
    from the first epoch still to run; the model (`run.model`, or another to
    time its steps) told how to carry states."""
    from .data import StreamLayout, make_dataset, make_stream_dataset

    config, model, seed = run.config, model or run.model, run.seed
    first_epoch = int(run.previous.get("epochs_run", 0))
    if first_epoch >= config.epochs:
        raise TrainingError(
            f"{run.resume} has trained {count(first_epoch, 'epochs')} already; ask "
            f"for more with --epochs (it counts them all, e.g. --epochs "
            f"{first_epoch + 10})"
        )
    epochs = dict(epochs=config.epochs - first_epoch, first_epoch=first_epoch)
    train_ids, val_ids, seq_len = run.train_ids, run.val_ids, config.seq_len
    train_prior, val_prior = run.priors
    if run.layout is None:
        model.carry_states(None)
        train_data = make_dataset(
            train_ids, seq_len, run.batch_size, seed, run.train_lengths, **epochs,
            prior=train_prior,
        )  # fmt: skip
        if not len(val_ids):
            return train_data, None
        val_data = make_dataset(
            val_ids, seq_len, run.batch_size, None, run.val_lengths, prior=val_prior
        )
        return train_data, val_data
    # Validation reads the held-out text as `evaluate` does: in order,
    # carrying the state.
    val_layout = StreamLayout.in_order(run.val_lengths, seq_len, run.batch_size)
    model.carry_states(run.layout.rows, val_layout.rows if len(val_ids) else None)
    train_data = make_stream_dataset(
        train_ids, seq_len, run.layout, seed, run.train_lengths, **epochs,
        prior=train_prior,
    )  # fmt: skip
    if not len(val_ids):
        return train_data, None
    val_data = make_stream_dataset(
        val_ids, seq_len, val_layout, None, run.val_lengths, prior=val_prior
    )
    return train_data, val_data


def _memories(run: _Run) -> tuple[ItemSet | None, Fingerprint]:
    """What the record keeps of the training text (`originality.remembered`),
    the resumed model's merged in."""
    assert run.text is not None
    return remembered(run.text, run.tokenizer, run.previous)


def _record(
    run: _Run,
    history: list[dict[str, Any]],
    best_epoch: int,
    memories: tuple[ItemSet | None, Fingerprint],
) -> dict[str, Any]:
    """The training record saved in the model (`record.TrainingRecord`)."""
    import keras

    assert run.text is not None
    items, fingerprint = memories
    previous, val_ids, files = run.previous, run.val_ids, run.text.files
    best_row = {row["epoch"]: row for row in history}.get(best_epoch, {})
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    first_epoch = int(previous.get("epochs_run", 0))
    coverage = previous.get("pretrained_vectors_coverage")
    if run.vectors is not None:
        coverage = float(run.vectors.covered[2:].mean())
    return TrainingRecord(
        corpus=files,
        tokens={
            "total": len(run.all_ids),
            "train": run.n_train,
            "validation": len(val_ids),
        },
        validation_oov_rate=float(np.mean(val_ids == UNK_ID)) if len(val_ids) else None,
        pretrained_vectors_coverage=coverage,
        fingerprint=fingerprint.to_config(),
        # Hashes of the training items (item models only; see `novelty`).
        items=items.to_config() if items is not None else None,
        # What `planned` chose for the budget, and the speeds it predicted.
        plan=run.plan.to_record() if run.plan is not None else previous.get("plan"),
        epochs_run=len(history),
        best_epoch=best_epoch,
        best_val_perplexity=best_row.get("val_perplexity"),
        train_perplexity=best_row.get("perplexity"),
        history=history,
        train_config={
            **dataclasses.asdict(run.config),
            "batch_size": run.batch_size,
            "xla": bool(run.model.jit_compile),
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
        ngram=run.ngram_record,
        date=now,
        textgen_version=__version__,
        keras_version=keras.__version__,
    ).to_dict()


def _fit(
    run: _Run,
    data: tuple[Any, Any],
    outputs: dict[str, Any],
    progress_bar: bool,
    callbacks: Sequence[Any],
) -> Any:
    """Fit, fit the mixture, save the best epoch's model (the chief does)."""
    from ..model.network import save_model
    from .callbacks import Interrupt, training_callbacks
    from .distribute import is_chief

    model, config = run.model, run.config
    train_data, val_data = data
    used = training_callbacks(
        config,
        run.seed,
        run.steps_per_epoch,
        val_data is not None,
        run.previous.get("history", []),
        run.log,
        reserved_seconds=run.reserved_seconds,
    )
    epoch_log, best = used.epoch_log, used.best
    memories = _memories(run)
    if run.ngram is not None:  # checkpoints carry it too; fitted after training
        model.mixture = _unfitted(run, run.ngram)
    chief = is_chief(config.distribute)  # other multi-worker workers write nothing
    if not chief:
        run.log("a worker, not the chief: the chief (worker 0) writes the model")

    def latest() -> dict[str, Any]:
        return _record(run, epoch_log.history, len(epoch_log.history), memories)

    fit_callbacks = [
        *used.in_order(),
        *_output_callbacks(run, outputs, latest if chief else None),
        *callbacks,
    ]
    with Interrupt(model, run.log) as interrupt:
        model.fit(
            train_data,
            validation_data=val_data,
            epochs=config.epochs,
            initial_epoch=int(run.previous.get("epochs_run", 0)),
            steps_per_epoch=run.steps_per_epoch,
            callbacks=fit_callbacks,
            verbose=1 if progress_bar else 0,
            shuffle=False,  # the dataset shuffles itself, reproducibly
        )
        if best.diverged_epoch is not None:
            raise TrainingError(
                f"the loss became NaN in epoch {best.diverged_epoch}; try a lower "
                f"--learning-rate (now {config.learning_rate:g}) or --clipnorm 1.0"
            )
        _remember_speed(run, used.step_times.seconds)
        _fit_ngram(run)
        model.record = _record(run, epoch_log.history, best.best_epoch, memories)
        if chief:
            save_model(model, run.output, optimizer=False)
    if outputs["plot"] is not None and chief:
        _write_picture(epoch_log.history, run.output, Path(outputs["plot"]), run.log)
    if interrupt.count:
        raise TrainingInterrupted(
            f"interrupted in epoch {len(epoch_log.history)}: saved the best model "
            f"so far (epoch {best.best_epoch}) to {run.output}; continue with "
            f"`textgen train --resume {run.output} ...`"
        )
    return model


def _remember_speed(run: _Run, step_seconds: list[float]) -> None:
    """The run's own training speed: into the budget plan's record (beside
    what was predicted) and, for a new model on one device, the planner's
    memory of this machine."""
    from .calibration import StepSpeeds, run_speed

    speed = run_speed(step_seconds, run.batch_size * run.config.seq_len)
    if speed is None:
        return
    if run.plan is not None:
        run.plan = dataclasses.replace(run.plan, run_tokens_per_second=speed)
    if run.resume is None and run.config.distribute == "none":
        StepSpeeds().put(_speed_key(run, run.model_config), speed, "run")


def _speed_key(run: _Run, shape: ModelConfig) -> str:
    """What the planner's memory of speeds files `shape` under in this run."""
    from .calibration import shape_key

    return shape_key(shape, run.config, run.batch_size, use_xla(shape, run.config))


def _output_callbacks(
    run: _Run, outputs: dict[str, Any], record: Callable[[], dict] | None
) -> list[Any]:
    """The callbacks that write during training: the `--checkpoint-every`
    checkpoint (when `record`, which gives its training record: the chief
    only) and TensorBoard's logs."""
    import keras

    from ..model.network import save_model
    from .callbacks import Checkpoint

    made: list[Any] = []
    if outputs["checkpoint_every"] and record is not None:

        def save_latest() -> None:
            run.model.record = record()
            save_model(run.model, checkpoint_path(run.output))

        made.append(Checkpoint(outputs["checkpoint_every"], save_latest))
    if outputs["tensorboard"] is not None:
        made.append(keras.callbacks.TensorBoard(log_dir=str(outputs["tensorboard"])))
    return made


def _unfitted(run: _Run, ngram: NgramModel) -> Mixture | Residual:
    """The memory as training uses it before fitting: half and half, or
    for residual training scale 1."""
    if run.config.residual:
        return Residual(ngram, np.ones(BUCKETS))
    return Mixture.even(ngram)


def _fit_ngram(run: _Run) -> None:
    """Count the memory over all of the text, fit the mixing weights (or a
    residual model's scales) on the validation text (even weights, or scale
    1, without one), and keep the record's description of it."""
    from ..model.fitting import fit_mixture, fit_residual

    ngram, model, val_ids, log = run.ngram, run.model, run.val_ids, run.log
    if ngram is None:
        return
    started = time.perf_counter()
    residual = run.config.residual
    if len(val_ids):
        cap = int(run.config.ngram_max_mb * 2**20)
        held = len(run.all_ids) - run.n_train
        ngram, held_out = _counted(run).all_and_held_out(held, cap)
        fitter = fit_residual if residual else fit_mixture
        fit = fitter(model, val_ids, ngram, held_out)
        log(
            f"n-gram memory counted again over all {count(len(run.all_ids), run.unit)}"
            f" (the validation text included): {count(ngram.entries, 'entries')}, "
            f"{ngram.nbytes / 2**20:.1f} MB"
        )
        memory = f"{fit['ngram_cross_entropy']:.3f}"
        parts = f"the memory alone {memory}"
        if not residual:
            parts = f"network {fit['network_cross_entropy']:.3f}, n-gram {memory}"
        name = "scales" if residual else "weights"
        log(
            f"{'trained on' if residual else 'mixed with'} the n-gram memory: "
            f"validation cross-entropy {fit['mixed_cross_entropy']:.3f} nats "
            f"({parts}, each half counted without itself), {name} "
            + " ".join(f"{w:.2f}" for w in fit[name])
        )
    else:
        model.mixture = _unfitted(run, ngram)
        name, value = ("scales", 1.0) if residual else ("weights", 0.5)
        fit = {name: [value] * BUCKETS, "fitted_on_tokens": 0}
        log(f"n-gram memory with {name} {value:g}: no validation text to fit on")
    run.ngram_record = memory_record(
        ngram,
        residual,
        len(run.all_ids),
        fit,
        requested_order=run.config.memory_order,
        fitting_seconds=round(time.perf_counter() - started, 3),
        counting_seconds=round(run.counting_seconds, 3),
        recounted_on_resume=run.resume is not None,
    )


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
    text: CorpusIds | None = None,
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
        text: the corpus already read with `tokenizer_settings(config)` (as
            `compare` does once for all its models); None: read it here.

    Returns:
        The trained `LanguageModel` (also saved at `output`).

    Raises:
        TextgenError: unreadable or too-short corpus, an existing output, a
            diverged loss, or an interruption (after saving the best model).
    """
    files = corpus_files(corpus)  # the one expansion of the paths
    output = Path(output)
    outputs = dict(
        plot=plot, tensorboard=tensorboard, checkpoint_every=checkpoint_every
    )
    check_train_outputs(
        files,
        output,
        resume=resume,
        force=force,
        **outputs,
        vectors=config.pretrained_embeddings if resume is None else None,
    )
    if tensorboard is not None and importlib.util.find_spec("tensorboard") is None:
        raise TextgenError(
            "--tensorboard needs TensorBoard; install it with: "
            "pip install 'textgen[tensorboard]'"
        )
    run = _Run(
        files,
        output,
        model_config,
        config,
        log,
        None if resume is None else Path(resume),
        planned,
    )
    _start(run)
    _read_corpus(run, progress_bar, text)
    _choose_vocabulary(run)
    _count_ngrams(run)
    _settle_seed_and_batches(run)
    if run.resume is None:
        _build_network(run)
    else:
        _resume_network(run)
    _log_summary(run)
    return _fit(run, _datasets(run), outputs, progress_bar, callbacks)


def _log_summary(run: _Run) -> None:
    """One line: the corpus, its split, the vocabulary, the network's size."""
    from ..model.network import count_parameters

    assert run.text is not None and run.vocabulary is not None
    files = len(run.text.files)
    run.log(
        f"{len(run.all_ids):,} {run.unit} ({run.n_train:,} train, "
        f"{len(run.val_ids):,} validation) in {files} file{'s' if files > 1 else ''}, "
        f"vocabulary {len(run.vocabulary):,}, "
        f"{count_parameters(run.model):,} parameters, seed {run.seed}"
    )
