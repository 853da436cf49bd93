"""`train()`: corpus files in, a trained `.keras` model file out.

A pipeline of stages, each a function that takes the values the ones before
it made and returns its own (frozen dataclasses), in this order:

1. `_start`: the distribution strategy, and the resumed model or the new
   model's tokenizer settings (a `Start`);
2. `reading.read_training_text`: the corpus read once, the window, the
   validation tail, the vocabulary, the ids (`TrainingText`);
3. `memory.count_memory`: the n-gram memory of the training text, and
   residual training's priors (`TrainingMemory`);
4. `batches.settle_batches`: the seed, batch size and steps (`Batches`);
5. `network.build_network` or `network.resume_network`: the network, sized
   for a budget by the planner (`Network`);
6. `batches.datasets`, then `loop.fit`: fit, fit the memory to the network,
   write the record, save the best epoch.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TextgenError, TrainingError
from ..model.config import ModelConfig, TrainConfig
from ..model.levels import level_policy
from ..text.corpus import corpus_files
from ..text.ids import CorpusIds
from ..text.tokens import TokenizerSettings
from ..text.vocab import Vocabulary
from .batches import Batches, datasets, first_epoch, settle_batches
from .loop import Fit, fit, speed_key
from .memory import TrainingMemory, count_memory, reserved_seconds
from .network import (
    Network,
    build_network,
    check_trainable_size,
    compile_model,
    grown_network,
    resume_network,
    use_xla,
)
from .paths import check_train_outputs, checkpoint_path, resumed_model_path
from .reading import TrainingText, log_resumed, read_training_text
from .sizing import Measure

__all__ = [
    "check_train_outputs",
    "check_trainable_size",
    "checkpoint_path",
    "resumed_config",
    "resumed_model_path",
    "tokenizer_settings",
    "train",
    "use_xla",
]


def resumed_config(record: dict[str, Any], **changes: Any) -> TrainConfig:
    """The training settings a saved model was trained with, with `changes`
    (the options given again) applied: what `train --resume` continues with."""
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    saved = {k: v for k, v in record.get("train_config", {}).items() if k in fields}
    if "train_config" in record:  # trained before carried states existed
        saved.setdefault("carry_state", False)
    return TrainConfig(**(saved | changes))


def tokenizer_settings(config: TrainConfig) -> TokenizerSettings:
    """How a new model trained with `config` tokenizes its text."""
    as_given = config.tokenizer == "whitespace"  # pre-tokenized: kept as it is
    return TokenizerSettings(
        lowercase=config.lowercase
        and level_policy(config.level).folds_case
        and not as_given,
        level=config.level,
        documents=config.documents,
        tokenizer=config.tokenizer,
    )


@dataclass(frozen=True)
class Start:
    """Where a run starts from: the strategy, and a resumed model's parts."""

    strategy: Any
    tokenizer: TokenizerSettings
    model: Any = None  # a resumed Keras `LanguageModel`, else None
    previous: dict[str, Any] = field(default_factory=dict)  # its record
    vocabulary: Vocabulary | None = None  # its vocabulary
    base: Any = None  # the `LanguageModel` of --init-from, else None
    base_name: str = ""


def _start(
    config: TrainConfig,
    resume: Path | None,
    log: Callable[[str], None],
    init_from: Path | None = None,
) -> Start:
    """The distribution strategy, and the resumed model, the model started
    from, or the new model's tokenizer settings."""
    from ..model.network import load_model
    from .distribute import make_strategy, scope

    if resume is not None and init_from is not None:
        raise TrainingError(
            "give --resume (go on training a model) or --init-from (start a new "
            "one from it), not both"
        )
    # Before any other TensorFlow op: multi-worker training requires it.
    strategy = make_strategy(config.distribute)
    if strategy is not None:
        log(f"{strategy.num_replicas_in_sync} replicas ({config.distribute})")
    if init_from is not None:
        return _based(strategy, config, init_from)
    if resume is None:
        return Start(strategy, tokenizer_settings(config))
    with scope(strategy):
        model = load_model(resume, compile=True)
    tokenizer = model.tokenizer_settings
    if config.documents != tokenizer.documents:
        raise TrainingError(
            f"--documents {config.documents}: {resume} was trained with "
            f"--documents {tokenizer.documents}, which a resumed model keeps"
        )
    return Start(strategy, tokenizer, model, model.record or {}, model.vocabulary)


def _based(strategy: Any, config: TrainConfig, init_from: Path) -> Start:
    """The start of a model fine-tuned from another (`--init-from`): its
    network, level and tokenizer, the documents as this run reads them."""
    from ..model.network import load_model
    from .distribute import scope

    with scope(strategy):
        base = load_model(init_from, compile=False)
    settings = base.tokenizer_settings
    if config.level != settings.level or config.tokenizer != settings.tokenizer:
        raise TrainingError(
            f"--level {config.level} --tokenizer {config.tokenizer}: {init_from} "
            f"reads {settings.level}s split by {settings.tokenizer}, which a model "
            "started from it keeps"
        )
    tokenizer = dataclasses.replace(settings, documents=config.documents)
    record = base.record or {}
    origin = {
        "name": init_from.name,
        "fingerprint": record.get("fingerprint"),
        "vocabulary": len(base.vocabulary),
        "corpus": [f.get("name") for f in record.get("corpus", [])][:20],
    }
    return Start(
        strategy, tokenizer, previous={"init_from": origin}, base=base,
        base_name=str(init_from),
    )  # fmt: skip


def _step_speeds(
    text: TrainingText, memory: TrainingMemory | None, batches: Batches
) -> Measure:
    """The planner's `sizing.Measure` for this run: a size's training speed
    remembered for this machine (`calibration.StepSpeeds`), else timed over
    a few real steps on this corpus's batches, if the time left allows."""
    from ..model.network import build_model
    from .calibration import StepSpeeds, time_steps

    speeds, config = StepSpeeds(), batches.config

    def measure(shape: ModelConfig, allowed: float) -> tuple[float, str] | None:
        key = speed_key(shape, config, batches.batch_size)
        known = speeds.get(key)
        if known is not None:
            return known, "remembered"
        if allowed < speeds.measuring_cost() or config.distribute != "none":
            return None  # no time, or steps a lone model cannot show
        started = time.perf_counter()
        model = build_model(shape, text.vocabulary, text.tokenizer)
        compile_model(model, config, batches.steps_per_epoch)
        train_data, _ = datasets(text, memory, batches, config, model)
        # The first steps compile (seconds); time the rest briefly.
        step, steps = time_steps(
            model, train_data.take(200), seconds=min(3.0, allowed / 4)
        )
        if not steps:
            return None  # too few batches to time
        tokens_per_second = batches.batch_size * config.seq_len / step
        spent = time.perf_counter() - started
        speeds.put(key, tokens_per_second, "steps", spent)
        return tokens_per_second, "measured"

    return measure


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
    init_from: str | Path | None = None,
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
        init_from: a model to start from (fine-tuning; `_based`): its
            network, its vocabulary grown by the corpus's new words.
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
    files = corpus_files(corpus, config.source.suffixes)  # the one expansion
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
    resume = None if resume is None else Path(resume)
    init_from = None if init_from is None else Path(init_from)
    start = _start(config, resume, log, init_from)
    previous = start.previous
    if resume is not None or init_from is not None:
        planned = ()  # a resumed or based model keeps its shape
    read = read_training_text(
        files,
        start.tokenizer,
        config,
        planned,
        vocabulary=start.vocabulary,
        text=text,
        progress_bar=progress_bar,
        grow=start.base.vocabulary if start.base is not None else None,
    )
    if resume is not None:
        log_resumed(read, resume, previous, log)
    memory = count_memory(read, read.config, log)
    batches = settle_batches(read, read.config, previous)
    network = _network(start, read, memory, batches, model_config, planned, log)
    _log_summary(read, network, batches, log)
    first = first_epoch(previous, network.config, resume)
    data = datasets(read, memory, batches, network.config, network.model, first)
    run = Fit(read, memory, batches, network, previous, resume, output, outputs, log)
    return fit(run, data, progress_bar, callbacks)


def _network(
    start: Start,
    text: TrainingText,
    memory: TrainingMemory | None,
    batches: Batches,
    model_config: ModelConfig,
    planned: Collection[str],
    log: Callable[[str], None],
) -> Network:
    """The network to fit: the resumed one, or a new one (planned for a
    budget, timing candidate sizes on this corpus's batches)."""
    placed = dict(
        seed=batches.seed,
        strategy=start.strategy,
        steps_per_epoch=batches.steps_per_epoch,
        log=log,
    )
    if start.model is not None:
        return resume_network(start.model, batches.config, **placed)
    if start.base is not None:
        return grown_network(
            start.base, start.base_name, text, batches.config, **placed
        )
    return build_network(
        text,
        model_config.for_level(batches.config.level),  # the level's defaults
        batches.config,
        planned,
        reserved_seconds=reserved_seconds(memory, 0.0, batches.config),
        measure=_step_speeds(text, memory, batches),
        **placed,
    )


def _log_summary(
    text: TrainingText, network: Network, batches: Batches, log: Callable[[str], None]
) -> None:
    """One line: the corpus, its split, the vocabulary, the network's size."""
    from ..model.network import count_parameters

    files = len(text.text.files)
    log(
        f"{len(text.all_ids):,} {text.unit} ({text.n_train:,} train, "
        f"{len(text.val_ids):,} validation) in {files} file{'s' if files > 1 else ''}, "
        f"vocabulary {len(text.vocabulary):,}, "
        f"{count_parameters(network.model):,} parameters, seed {batches.seed}"
    )
