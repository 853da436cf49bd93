"""`textgen train` and `textgen compare`: the commands that need TensorFlow."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from ..model.config import (
    CELLS,
    DISTRIBUTE,
    LIMITS,
    LR_SCHEDULES,
    MAX_ORDER,
    NGRAM_MODES,
    ModelConfig,
    TrainConfig,
)
from ..outputs import MODELS_DIR
from ..text.records import SUFFIXES
from ..text.tokens import DOCUMENTS, LEVELS, WORD_TOKENIZERS
from .group import (
    SOURCE_OPTIONS,
    _import_tensorflow,
    _Number,
    cli,
    echo,
    with_options,
)

MODEL_DEFAULTS = ModelConfig()
TRAIN_DEFAULTS = TrainConfig()
# No budget unless one is given: the planner is not yet measured to beat the
# fixed defaults at every budget (see the docs/training.md, "Training in a budget").
DEFAULT_MINUTES = 0
MAX_MINUTES = 7 * 24 * 60  # a week: a longer budget is a typo


# The model and training options that `train` and `compare` share.
_TRAINING_OPTIONS = [
    click.option(
        "--layers",
        type=click.IntRange(1, LIMITS["layers"]),
        default=MODEL_DEFAULTS.layers,
        show_default=True,
        help="Stacked recurrent layers.",
    ),
    click.option(
        "--units",
        type=click.IntRange(1, LIMITS["units"]),
        default=MODEL_DEFAULTS.units,
        show_default=True,
        help="Hidden units per recurrent layer.",
    ),
    click.option(
        "--embedding-dim",
        type=click.IntRange(1, LIMITS["embedding_dim"]),
        default=MODEL_DEFAULTS.embedding_dim,
        show_default=True,
        help="Size of the word vectors.",
    ),
    click.option(
        "--dropout",
        type=_Number(0, 1, max_open=True),
        default=MODEL_DEFAULTS.dropout,
        show_default=True,
        help="Dropout between layers and before the output.",
    ),
    click.option(
        "--tie-embeddings/--no-tie-embeddings",
        default=MODEL_DEFAULTS.tie_embeddings,
        help="Let the output layer reuse the embedding matrix (fewer parameters, "
        "half the output-layer work at the default sizes).  [default: tied at "
        "word level, untied at character level]",
    ),
    click.option(
        "--seq-len",
        type=click.IntRange(min=1),
        default=TRAIN_DEFAULTS.seq_len,
        show_default=True,
        help="Words per training window.",
    ),
    click.option(
        "--epochs",
        type=click.IntRange(min=1),
        default=TRAIN_DEFAULTS.epochs,
        show_default=True,
        help="Most passes over the training text (with --max-minutes: no cap "
        "unless given).",
    ),
    click.option(
        "--batch-size",
        type=click.IntRange(min=0),
        default=TRAIN_DEFAULTS.batch_size,
        show_default=True,
        help="Windows per gradient step (0: auto, 8 to 64 by corpus size).",
    ),
    click.option(
        "--learning-rate",
        type=_Number(0, 10, min_open=True),
        default=TRAIN_DEFAULTS.learning_rate,
        show_default=True,
        help="Adam learning rate.",
    ),
    click.option(
        "--clipnorm",
        type=_Number(0, 1e6),
        default=TRAIN_DEFAULTS.clipnorm,
        show_default=True,
        help="Clip gradient norm to this (0: off).",
    ),
    click.option(
        "--val-fraction",
        type=_Number(0, 0.5, max_open=True),
        default=TRAIN_DEFAULTS.val_fraction,
        show_default=True,
        help="Tail of the corpus held out for validation (0: none).",
    ),
    click.option(
        "--max-vocab",
        type=click.IntRange(3, LIMITS["vocab_size"]),
        default=TRAIN_DEFAULTS.max_vocab,
        show_default=True,
        help="Most words in the vocabulary; the rest are <unk>.",
    ),
    click.option(
        "--min-count",
        type=click.IntRange(min=1),
        default=TRAIN_DEFAULTS.min_count,
        help="Fewest occurrences for a word to get its own id.  [default: 2; "
        "1 with --tokenizer whitespace]",
    ),
    click.option(
        "--level",
        type=click.Choice(LEVELS),
        default=TRAIN_DEFAULTS.level,
        show_default=True,
        help="What the model reads and writes: words, or characters (case kept, "
        "no detokenizer; a --seq-len of 100 or more suits them).",
    ),
    click.option(
        "--tokenizer",
        type=click.Choice(WORD_TOKENIZERS),
        default=TRAIN_DEFAULTS.tokenizer,
        show_default=True,
        help="How words are split: NLTK's words and punctuation, or 'whitespace' "
        "for text already tokenized (tokens kept as they are, <unk> the unknown "
        "word, each line a sentence; --min-count 1 unless given).",
    ),
    click.option(
        "--documents",
        type=click.Choice(DOCUMENTS),
        default=TRAIN_DEFAULTS.documents,
        show_default=True,
        help="What one text is: each file, or each line or paragraph an item of "
        "its own (names, titles, one sentence per line) that the model learns "
        "to end; `generate` then writes one item per sample.",
    ),
    *SOURCE_OPTIONS,
    click.option(
        "--keep-case",
        is_flag=True,
        help="Keep upper and lower case distinct.  [default: fold to lower case]",
    ),
    click.option(
        "--patience",
        type=click.IntRange(min=0),
        default=TRAIN_DEFAULTS.patience,
        show_default=True,
        help="Stop after this many epochs without a better validation loss (0: never).",
    ),
    click.option(
        "--lr-schedule",
        type=click.Choice(LR_SCHEDULES),
        default=TRAIN_DEFAULTS.lr_schedule,
        show_default=True,
        help="plateau: halve the learning rate when the validation loss stalls; "
        "linear: lower it to zero by the last epoch or the --max-minutes limit, "
        "whichever comes first; constant.",
    ),
    click.option(
        "--lr-patience",
        type=click.IntRange(min=0),
        default=TRAIN_DEFAULTS.lr_patience,
        show_default=True,
        help="With --lr-schedule plateau: halve the learning rate after this many "
        "epochs without a better validation loss (0: never).",
    ),
    click.option(
        "--average/--no-average",
        default=TRAIN_DEFAULTS.average,
        show_default=True,
        help="Validate and keep a moving average of the weights over about the "
        "last epoch rather than the last step's weights.",
    ),
    click.option(
        "--carry-state/--no-carry-state",
        default=None,
        help="Lay the text out as parallel streams, each batch continuing the "
        "one before, and carry the recurrent state across windows (truncated "
        "back-propagation through time), as `generate` and `evaluate` do.  "
        "[default: on for characters (off with --distribute), off for words]",
    ),
    click.option(
        "--max-minutes",
        type=_Number(0, MAX_MINUTES),
        default=DEFAULT_MINUTES,
        show_default=True,
        help="Training budget: stop after this many minutes, mid-epoch if need "
        "be, keeping the best model. With a budget `train` chooses the --units, "
        "--dropout, --seq-len, --learning-rate and --lr-schedule not given to fit "
        "it, and without --epochs trains until it is spent (0: no limit).",
    ),
    click.option(
        "--ngram-order",
        type=click.IntRange(0, MAX_ORDER),
        default=None,
        help="Order of the n-gram memory (Kneser-Ney counts of the training "
        "text, kept in the model file and mixed with the network; 0: none).  "
        "[default: 3 for words, 7 for characters]",
    ),
    click.option(
        "--ngram-max-mb",
        type=_Number(0, 2048, min_open=True),
        default=TRAIN_DEFAULTS.ngram_max_mb,
        show_default=True,
        help="Most megabytes the n-gram tables take; the rarest n-grams of the "
        "highest orders are pruned first to fit.",
    ),
    click.option(
        "--ngram-mode",
        type=click.Choice(NGRAM_MODES),
        default=None,
        help="How the network uses the n-gram memory: mixed with it by weights "
        "fitted on the validation text, or trained on top of it (residual: the "
        "network learns only what counting gets wrong).  [default: residual for "
        "characters, mixture for words]",
    ),
    click.option(
        "--pretrained-embeddings",
        type=click.Path(dir_okay=False),
        help="Start the word vectors from a GloVe or word2vec text file (the "
        "embedding size follows the file).  [default: random]",
    ),
    click.option(
        "--freeze-embeddings",
        is_flag=True,
        help="Keep the word vectors fixed while training.  [default: trained]",
    ),
    click.option(
        "--random-seed",
        type=click.IntRange(0, 2**31 - 1),
        default=None,
        help="Make training repeatable on this machine.  [default: random]",
    ),
    click.option(
        "--distribute",
        type=click.Choice(DISTRIBUTE),
        default=TRAIN_DEFAULTS.distribute,
        show_default=True,
        help="mirrored: split each batch over all local GPUs; multi-worker: over "
        "the machines in TF_CONFIG (see docs/training.md).",
    ),
]


# The shared model and training options, on a command.
training_options = with_options(_TRAINING_OPTIONS)


def _suffixes(options: dict[str, Any]) -> tuple[str, ...]:
    """The file names a folder of the corpus is read for (`--format`)."""
    return SUFFIXES[options.get("input_format") or "text"]


def _configs(options: dict[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    """Model and training configs from parsed options (consumed from the dict).

    `--tie-embeddings` and `--min-count` not given are None: the level's or
    the tokenizer's default, set by the configs (`ModelConfig.for_level`,
    `TrainConfig.word_min_count`).
    """
    model_fields = {field.name for field in dataclasses.fields(ModelConfig)}
    model_config = ModelConfig(
        **{name: options.pop(name) for name in list(options) if name in model_fields}
    )
    options["lowercase"] = not options.pop("keep_case")
    options["seed"] = options.pop("random_seed")
    return model_config, TrainConfig(**options)


@cli.command()
@click.argument("corpus", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Model file to write.  [default: models/<first corpus name>.keras]",
)
@click.option(
    "--cell",
    type=click.Choice(CELLS),
    default=MODEL_DEFAULTS.cell,
    show_default=True,
    help="Recurrent cell: LSTM, GRU, plain RNN, or LSTM with peephole connections.",
)
@training_options
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    help="Learning-curve picture to write (needs matplotlib).  "
    "[default: the model path with .png, if matplotlib is installed]",
)
@click.option(
    "--no-plot", is_flag=True, help="Write no learning-curve picture.  [default: off]"
)
@click.option(
    "--tensorboard",
    type=click.Path(file_okay=False),
    help="Also log to this folder for TensorBoard.  [default: no logs]",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Keep the latest state in NAME.last.keras every N epochs (0: never).",
)
@click.option(
    "--resume",
    type=click.Path(dir_okay=False),
    help="Train this model (or its .last.keras checkpoint) further: same "
    "vocabulary, settings, optimizer state and epoch count; --epochs counts "
    "every epoch.  [default: output is the model itself]",
)
@click.option(
    "--init-from",
    type=click.Path(dir_okay=False),
    help="Start a new model from this one (fine-tuning): its network, level "
    "and tokenizer, its vocabulary grown by CORPUS's new words; the n-gram "
    "memory is counted on CORPUS.  [default: a fresh network]",
)
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite an existing model file.  [default: refuse to]",
)
def train(
    corpus: tuple[str, ...],
    output: str | None,
    plot: str | None,
    no_plot: bool,
    tensorboard: str | None,
    checkpoint_every: int,
    resume: str | None,
    init_from: str | None,
    force: bool,
    **options: Any,
) -> None:
    """Train a model on CORPUS (text files or folders of .txt files).

    Ctrl-C stops after the current batch and saves the best model so far.
    """
    from ..text.corpus import corpus_files
    from ..training.train import check_train_outputs, resumed_config

    ctx = click.get_current_context()
    given = [
        name
        for name in options
        if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT
    ]
    model_fields = {field.name for field in dataclasses.fields(ModelConfig)}
    shape = [f"--{n.replace('_', '-')}" for n in given if n in model_fields]
    if resume and shape:
        raise click.UsageError(f"{', '.join(shape)}: a resumed model keeps its shape")
    if resume and init_from:
        raise click.UsageError(
            "give --resume (train a model further) or --init-from (start a new "
            "model from it), not both"
        )
    if init_from:
        fixed = shape + [
            f"--{n}" for n in ("level", "tokenizer", "keep_case") if n in given
        ]
        if fixed:
            raise click.UsageError(
                f"{', '.join(f.replace('_', '-') for f in fixed)}: a model started "
                f"from --init-from keeps {init_from}'s shape, level and tokenizer"
            )
        options.update(_based_options(init_from))
    path, picture = _output_paths(corpus, output, resume, plot, no_plot)
    files = corpus_files(corpus, _suffixes(options))  # expanded once, here
    # Every file this run will write, checked before the slow TensorFlow import.
    check_train_outputs(
        files,
        path,
        resume=resume,
        force=force,
        plot=picture,
        tensorboard=tensorboard,
        checkpoint_every=checkpoint_every,
        vectors=options.get("pretrained_embeddings"),
    )
    renamed = {"keep_case": "lowercase", "random_seed": "seed"}
    model_config, config = _configs(options)
    if not resume:  # a shape too big even for the smallest vocabulary: say so now
        from ..training.train import check_trainable_size

        check_trainable_size(dataclasses.replace(model_config, vocab_size=3))
    _import_tensorflow()
    from ..training.train import train as train_model

    if resume:
        from ..model.file import read_model

        changes = {renamed.get(n, n): None for n in given}
        config = resumed_config(
            read_model(resume, weights=False).record or {},
            **{name: getattr(config, name) for name in changes},
        )
    from ..training.sizing import PLANNED

    model = train_model(
        files,
        path,
        model_config,
        config,
        planned=[name for name in PLANNED if name not in given],
        log=click.echo,
        progress_bar=sys.stdout.isatty(),
        plot=picture,
        tensorboard=tensorboard,
        resume=resume,
        init_from=init_from,
        force=force,
        checkpoint_every=checkpoint_every,
    )
    _report_saved(model, path, picture, config.distribute)


def _based_options(init_from: str) -> dict[str, Any]:
    """The options a model started from `init_from` takes from it."""
    from ..errors import TextgenError
    from ..model.file import read_model

    try:
        base = read_model(init_from, weights=False)
    except TextgenError as err:
        raise click.BadParameter(str(err), param_hint="'--init-from'") from None
    settings = base.tokenizer_settings
    return {
        "level": settings.level,
        "tokenizer": settings.tokenizer,
        "keep_case": not settings.lowercase,
    }


def _output_paths(
    corpus: tuple[str, ...],
    output: str | None,
    resume: str | None,
    plot: str | None,
    no_plot: bool,
) -> tuple[Path, Path | None]:
    """Where the model goes (-o, the resumed model, or models/CORPUS.keras)
    and its picture (None: no picture, or no matplotlib to draw it)."""
    from ..outputs import default_model_path
    from ..training.plots import INSTALL_HINT, matplotlib_available, require_matplotlib
    from ..training.train import resumed_model_path

    if output:
        path = Path(output)
    elif resume:
        path = resumed_model_path(resume)
    else:
        path = default_model_path(corpus[0])
    if plot and not no_plot:
        require_matplotlib()  # asked for: refuse now, not after training
    if no_plot:
        return path, None
    if not matplotlib_available():
        echo(f"(no learning-curve picture: matplotlib is missing; {INSTALL_HINT})")
        return path, None
    return path, Path(plot) if plot else path.with_suffix(".png")


def _report_saved(
    model: Any, path: Path, picture: Path | None, distribute: str
) -> None:
    """The lines that end a training: where the model and picture are."""
    from ..training.distribute import is_chief

    if not is_chief(distribute):
        echo("done; the chief worker saved the model")
        return
    record = model.record
    perplexity = record["best_val_perplexity"]
    summary = (
        f"validation perplexity {perplexity:.1f}" if perplexity else "no validation"
    )
    echo(f"saved {path} (best epoch {record['best_epoch']}, {summary})")
    if picture is not None and picture.exists():
        echo(f"learning curves: {picture}")
    echo(f'generate with: textgen generate -m {path} --seed "..."')


def _cell_list(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    cells = [c.strip() for c in value.split(",") if c.strip()]
    unknown = [c for c in cells if c not in CELLS]
    if unknown or not cells:
        raise click.BadParameter(
            f"{', '.join(unknown) or 'none'}: choose from {', '.join(CELLS)}"
        )
    return list(dict.fromkeys(cells))


@cli.command()
@click.argument("corpus", nargs=-1, required=True)
@click.option(
    "--cells",
    default="rnn,lstm,gru",
    show_default=True,
    callback=_cell_list,
    help=f"Comma-separated cells to compare, from: {', '.join(CELLS)}.",
)
@click.option(
    "-o",
    "--output",
    "output_dir",
    type=click.Path(file_okay=False),
    help="Folder for the models and pictures.  [default: models/compare-<corpus>]",
)
@training_options
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite models already in the folder.  [default: refuse to]",
)
def compare(
    corpus: tuple[str, ...],
    cells: list[str],
    output_dir: str | None,
    force: bool,
    **options: Any,
) -> None:
    """Train each cell on the same data and budget; compare them in a table."""
    from ..training.compare import check_compare_outputs
    from ..training.plots import INSTALL_HINT, matplotlib_available

    folder = (
        Path(output_dir)
        if output_dir
        else MODELS_DIR / f"compare-{Path(corpus[0]).resolve().stem}"
    )
    from ..text.corpus import corpus_files

    corpus = tuple(corpus_files(corpus, _suffixes(options)))  # expanded once
    check_compare_outputs(
        corpus,
        cells,
        folder,
        force,
        matplotlib_available(),
        options.get("pretrained_embeddings"),
    )
    _import_tensorflow()
    from ..training.compare import compare as compare_cells
    from ..training.compare import format_table

    model_config, config = _configs(options)
    results = compare_cells(
        corpus, cells, folder, model_config, config, log=click.echo, force=force
    )
    echo("")
    echo(format_table(results))
    echo(
        "grad@d: gradient of the last word's loss with respect to the word d "
        "places earlier, relative to the last word's own"
    )
    echo(f"models: {', '.join(str(r.path) for r in results)}")
    if not matplotlib_available():
        echo(f"(no pictures: matplotlib is missing; {INSTALL_HINT})")
        return
    from ..training.plots import plot_gradient_decay, plot_learning_curves

    curves = plot_learning_curves(
        {r.cell: r.history for r in results}, folder / "curves.png", "learning curves"
    )
    gradients = plot_gradient_decay(
        {r.cell: r.gradient_decay for r in results},
        folder / "gradients.png",
        "how far back gradients reach",
    )
    echo(f"pictures: {curves}, {gradients}")
