"""The `textgen` command line: parse options, call the library, print.

TensorFlow is imported only inside the commands that need it, so `--help` and
option errors answer at once. Library errors become one line on stderr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from . import __version__
from .config import (
    CELLS,
    DISTRIBUTE,
    LR_SCHEDULES,
    MODELS_DIR,
    ModelConfig,
    TrainConfig,
)
from .errors import TextgenError, TrainingInterrupted
from .terminal import printable

MODEL_DEFAULTS = ModelConfig()
TRAIN_DEFAULTS = TrainConfig()


def echo(message: Any = "", err: bool = False, nl: bool = True) -> None:
    """`click.echo` with every character that could act on a terminal escaped:
    model files, file names and generated text are untrusted."""
    click.echo(printable(str(message)), err=err, nl=nl)


def _debug_enabled() -> bool:
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx else None
    return bool(root and root.params.get("debug"))


def _import_tensorflow() -> None:
    """Import TensorFlow with its start-up chatter silenced (unless --debug)."""
    if _debug_enabled() or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # TensorFlow's C++ side logs to file descriptor 2 before any setting
    # applies; hide that descriptor for the duration of the import.
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", module=r"keras(\.|$)")


class _Number(click.FloatRange):
    """A float in a range; "nan" and "inf" are refused (ranges let them by)."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class _Group(click.Group):
    """Turns library errors into one-line messages (tracebacks with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except TextgenError as err:
            if _debug_enabled():
                raise
            failure = click.ClickException(printable(str(err), newlines=False))
            if isinstance(err, TrainingInterrupted):
                failure.exit_code = 130  # the shell's code for Ctrl-C
            raise failure from None
        except KeyboardInterrupt:
            echo("\ninterrupted", err=True)
            sys.exit(130)
        except Exception as err:
            if _debug_enabled():
                raise
            first_line = printable(str(err).splitlines()[0]) if str(err) else ""
            raise click.ClickException(
                f"unexpected {type(err).__name__}: {first_line} "
                "(rerun with --debug for the traceback, and please report it)"
            ) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--debug",
    is_flag=True,
    envvar="TEXTGEN_DEBUG",
    help="Show tracebacks and TensorFlow's log messages.",
)
@click.version_option(__version__, prog_name="textgen")
def cli(debug: bool) -> None:
    """Train a word-level LSTM/GRU language model on your text and generate from it.

    \b
      textgen train corpus.txt             # -> models/corpus.keras
      textgen generate --seed "call me"    # newest model in models/
    """


def _newest_model() -> Path:
    from .modelfile import newest_model

    newest = newest_model(MODELS_DIR)
    echo(f"using {newest} (newest in {MODELS_DIR}/)", err=True)
    return newest


def _load(path: str | None) -> Any:
    """The model to use, read without TensorFlow (see `modelfile.read_model`)."""
    from .modelfile import read_model

    return read_model(Path(path) if path else _newest_model())


# The model and training options that `train` and `compare` share.
_TRAINING_OPTIONS = [
    click.option(
        "--layers",
        type=click.IntRange(min=1),
        default=MODEL_DEFAULTS.layers,
        show_default=True,
        help="Stacked recurrent layers.",
    ),
    click.option(
        "--units",
        type=click.IntRange(min=1),
        default=MODEL_DEFAULTS.units,
        show_default=True,
        help="Hidden units per recurrent layer.",
    ),
    click.option(
        "--embedding-dim",
        type=click.IntRange(min=1),
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
        show_default=True,
        help="Let the output layer reuse the embedding matrix (fewer parameters, "
        "half the output-layer work at the default sizes).",
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
        help="Most passes over the training text.",
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
        type=_Number(0, min_open=True),
        default=TRAIN_DEFAULTS.learning_rate,
        show_default=True,
        help="Adam learning rate.",
    ),
    click.option(
        "--clipnorm",
        type=_Number(0),
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
        type=click.IntRange(min=3),
        default=TRAIN_DEFAULTS.max_vocab,
        show_default=True,
        help="Most words in the vocabulary; the rest are <unk>.",
    ),
    click.option(
        "--min-count",
        type=click.IntRange(min=1),
        default=TRAIN_DEFAULTS.min_count,
        show_default=True,
        help="Fewest occurrences for a word to get its own id.",
    ),
    click.option(
        "--level",
        type=click.Choice(["word", "char"]),
        default=TRAIN_DEFAULTS.level,
        show_default=True,
        help="What the model reads and writes: words, or characters (case kept, "
        "no detokenizer; a --seq-len of 100 or more suits them).",
    ),
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
        "--max-minutes",
        type=_Number(min=0),
        default=TRAIN_DEFAULTS.max_minutes,
        show_default=True,
        help="Stop training after this many minutes, mid-epoch if need be, "
        "keeping the best model (0: no limit).",
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
        "the machines in TF_CONFIG (see the README).",
    ),
]


def training_options(command: Any) -> Any:
    """Decorate a command with the shared model and training options."""
    for option in reversed(_TRAINING_OPTIONS):
        command = option(command)
    return command


def _configs(options: dict[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    """Model and training configs from parsed options (consumed from the dict)."""
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
    force: bool,
    **options: Any,
) -> None:
    """Train a model on CORPUS (text files or folders of .txt files).

    Ctrl-C stops after the current batch and saves the best model so far.
    """
    from .outputs import default_model_path
    from .plots import INSTALL_HINT, matplotlib_available, require_matplotlib
    from .train import check_train_outputs, resumed_config, resumed_model_path

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
    if output:
        path = Path(output)
    elif resume:
        path = resumed_model_path(resume)
    else:
        path = default_model_path(corpus[0])
    if plot and not no_plot:
        require_matplotlib()  # asked for: refuse now, not after training
    picture = None
    if not no_plot:
        picture = Path(plot) if plot else path.with_suffix(".png")
        if not matplotlib_available():
            picture = None
            echo(f"(no learning-curve picture: matplotlib is missing; {INSTALL_HINT})")
    # Every file this run will write, checked before the slow TensorFlow import.
    check_train_outputs(
        corpus,
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
        from .train import check_trainable_size

        check_trainable_size(dataclasses.replace(model_config, vocab_size=3))
    _import_tensorflow()
    from .train import train as train_model

    if resume:
        from .modelfile import read_model

        changes = {renamed.get(n, n): None for n in given}
        config = resumed_config(
            read_model(resume).record or {},
            **{name: getattr(config, name) for name in changes},
        )
    model = train_model(
        corpus,
        path,
        model_config,
        config,
        log=click.echo,
        progress_bar=sys.stdout.isatty(),
        plot=picture,
        tensorboard=tensorboard,
        resume=resume,
        force=force,
        checkpoint_every=checkpoint_every,
    )
    from .distribute import is_chief

    if not is_chief(config.distribute):
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
    from .compare import check_compare_outputs
    from .plots import INSTALL_HINT, matplotlib_available

    folder = (
        Path(output_dir)
        if output_dir
        else MODELS_DIR / f"compare-{Path(corpus[0]).resolve().stem}"
    )
    check_compare_outputs(corpus, cells, folder, force, matplotlib_available())
    _import_tensorflow()
    from .compare import compare as compare_cells
    from .compare import format_table

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
    from .plots import plot_gradient_decay, plot_learning_curves

    curves = plot_learning_curves(
        {r.cell: r.history for r in results}, folder / "curves.png", "learning curves"
    )
    gradients = plot_gradient_decay(
        {r.cell: r.gradient_decay for r in results},
        folder / "gradients.png",
        "how far back gradients reach",
    )
    echo(f"pictures: {curves}, {gradients}")


class _Temperatures(click.ParamType):
    """One temperature, or several separated by commas: "0.2,0.5,1.0"."""

    name = "T[,T...]"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            values = tuple(float(part) for part in str(value).split(","))
        except ValueError:
            self.fail(
                f"{value!r} is not a number or a comma-separated list", param, ctx
            )
        if not all(math.isfinite(v) and v >= 0 for v in values):
            self.fail(f"{value!r}: temperatures must be 0 or more", param, ctx)
        return values


@cli.command()
@click.option(
    "-m",
    "--model",
    "model_path",
    type=click.Path(dir_okay=False),
    help="Model file.  [default: newest .keras in models/]",
)
@click.option(
    "-s",
    "--seed",
    default="",
    help="Text to start from; - reads it from stdin.  "
    "[default: none: start a new paragraph]",
)
@click.option(
    "--seed-file",
    type=click.Path(dir_okay=False),
    help="One seed per line; one sample each, generated as one batch.  [default: none]",
)
@click.option(
    "-n",
    "--length",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Most words to generate.",
)
@click.option(
    "-t",
    "--temperature",
    type=_Temperatures(),
    default="0.8",
    show_default=True,
    help="Randomness; 0 is greedy. Several, comma-separated, give one labelled "
    "sample each.",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Sample from the k most likely words only (0: off).",
)
@click.option(
    "--top-p",
    type=_Number(0, 1, min_open=True),
    default=1.0,
    show_default=True,
    help="Sample from the most likely words covering probability p (1: off).",
)
@click.option(
    "--min-p",
    type=_Number(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Drop words less likely than min-p times the likeliest (0: off).",
)
@click.option(
    "--repetition-penalty",
    type=_Number(1),
    default=1.0,
    show_default=True,
    help="Make words of the last --repeat-window words less likely (1: off).",
)
@click.option(
    "--repeat-window",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Recent words the repetition penalty looks at.",
)
@click.option(
    "--no-repeat-ngram",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Never repeat a run of this many words (0: off; 2 or more).",
)
@click.option(
    "--beam",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Beam search with this many beams: the likeliest text, deterministic, "
    "length-normalised (0: sample instead).",
)
@click.option(
    "--stop",
    multiple=True,
    help="End the text where this appears (not printed); repeatable.  [default: none]",
)
@click.option(
    "--until",
    type=click.Choice(["sentence", "paragraph"]),
    help="End at the end of the first complete sentence or paragraph (-n is "
    "the most words).  [default: -n words]",
)
@click.option(
    "--num-samples",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Independent samples per seed and temperature, generated as one batch.",
)
@click.option(
    "--random-seed",
    type=click.IntRange(0, 2**32 - 1),
    default=None,
    help="Make the output repeatable.  [default: random]",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "jsonl"]),
    default="text",
    show_default=True,
    help="jsonl: one JSON object per sample with the seed, every setting, the "
    "random seed used, the text, word count and words/s.",
)
@click.option(
    "-i",
    "--interactive",
    is_flag=True,
    help="A prompt: each line is a seed; :t 0.7, :n 100, :k 40, :p 0.9 change "
    "settings; Ctrl-D leaves.  [default: off]",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="After the text, report on stderr the speed, the model, and the longest "
    "run of words copied verbatim from the training text.  [default: off]",
)
def generate(
    model_path: str | None,
    seed: str,
    seed_file: str | None,
    length: int,
    temperature: tuple[float, ...],
    beam: int,
    stop: tuple[str, ...],
    until: str | None,
    num_samples: int,
    random_seed: int | None,
    output_format: str,
    interactive: bool,
    verbose: bool,
    **controls: Any,
) -> None:
    """Generate text from a trained model, starting with SEED."""
    from .sampling import SamplingSettings

    if seed_file and seed:
        raise click.UsageError("give --seed or --seed-file, not both")
    if beam and len(temperature) > 1:
        raise click.UsageError("--beam is deterministic: give one temperature")
    if interactive and (seed_file or seed == "-" or output_format != "text"):
        raise click.UsageError(
            "--interactive reads seeds from the prompt and prints text"
        )
    try:
        samplings = [SamplingSettings(temperature=t, **controls) for t in temperature]
    except TextgenError as err:
        raise click.UsageError(str(err)) from None
    seeds, lengths = _read_seeds(seed, seed_file)
    path = Path(model_path) if model_path else _newest_model()
    model = _load(str(path))
    from .generate import Generator

    generator = Generator(model)
    if interactive:
        _interactive(generator, samplings[0], length, stop, until, random_seed)
        return
    seeds = [_usable_seed(generator, s, n) for s, n in zip(seeds, lengths, strict=True)]
    job = _Job(generator, path, length, beam, stop, until, random_seed)
    rows = [
        (s, sampling)
        for s in seeds
        for sampling in samplings
        for _ in range(num_samples)
    ]
    stream = output_format == "text" and len(rows) == 1 and not beam
    samples, seconds = job.run(rows, num_samples, stream)
    if output_format == "jsonl":
        rate = sum(len(sample.words) for sample in samples) / max(seconds, 1e-9)
        fingerprint = model.fingerprint()
        for number, sample in enumerate(samples):
            echo(json.dumps(job.record(sample, number, rate, fingerprint)))
    elif not stream:
        for number, sample in enumerate(samples):
            label = job.label(sample, number, seeds, samplings, num_samples)
            echo(f"--- {label} ---\n{sample.text}\n")
    _report_relaxed(generator, controls)
    if verbose:
        _report_generation(model, path, [s.words for s in samples], seconds)


MAX_SEEDS = 1000  # lines of a --seed-file: each is a row of one batch


def _read_seeds(seed: str, seed_file: str | None) -> tuple[list[str], list[int]]:
    """The seeds to generate from, and each one's whole length in characters.

    `--seed -` and `--seed-file` are read as streams (the corpus decoder:
    binary or undecodable input is one clear error), keeping at most twice
    the characters a seed can use, so no input can exhaust memory.
    """
    from .corpus import decode_chunks, lines, read_pieces, stream_chunks, tail
    from .generate import MAX_SEED_CHARS

    keep = 2 * MAX_SEED_CHARS
    if seed == "-":
        stdin = getattr(sys.stdin, "buffer", None)
        if stdin is None:  # a text-only stream (some embedding programs)
            chunks = iter(lambda: sys.stdin.read(1 << 20).encode("utf-8"), b"")
        else:
            chunks = stream_chunks(stdin)
        text, total = tail(decode_chunks(chunks, "the seed on stdin"), keep)
        return [text], [total]
    if seed_file:
        name = f"--seed-file {seed_file}"
        found = lines(
            read_pieces(Path(seed_file), "--seed-file"), keep, MAX_SEEDS, name
        )
        if not found:
            raise click.ClickException(f"{name} has no seeds in it")
        return found, [len(line) for line in found]
    return [seed], [len(seed)]


def _report_relaxed(generator: Any, controls: dict[str, Any]) -> None:
    """Say once which sampling rule was lifted because it left no word."""
    if "no_repeat_ngram" in generator.relaxed:
        echo(
            f"note: --no-repeat-ngram {controls['no_repeat_ngram']} ruled out every "
            "word at some steps (a small vocabulary); it was lifted there",
            err=True,
        )


def _usable_seed(generator: Any, seed: str, length: int | None = None) -> str:
    """The seed the model reads, with notes on stderr about long or unknown seeds
    (`length`: the whole seed's length, when only its end was kept)."""
    from .generate import MAX_SEED_CHARS

    usable = generator.usable_seed(seed)
    length = max(length or 0, len(seed))
    if len(usable) < length:
        echo(
            f"note: the seed has {length:,} characters; only its last "
            f"{MAX_SEED_CHARS:,} are read and printed",
            err=True,
        )
        seed = usable
    unknown = generator.unknown_seed_words(seed)
    if unknown:
        shown = " ".join(unknown[:20]) + (" ..." if len(unknown) > 20 else "")
        echo(
            "warning: seed words not in the model's vocabulary, read as <unk>: "
            + shown,
            err=True,
        )
    return seed


@dataclasses.dataclass
class _Job:
    """One `generate` run: its fixed settings, and how samples are labelled."""

    generator: Any
    model_path: Path
    length: int
    beam: int
    stop: tuple[str, ...]
    until: str | None
    random_seed: int | None

    def run(self, rows: list, num_samples: int, stream: bool) -> tuple[list, float]:
        """Generate one sample per (seed, sampling) row; returns them and the
        seconds taken."""
        import time

        started = time.perf_counter()
        if self.beam:
            samples = []
            for seed, sampling in rows[::num_samples]:
                samples += self.generator.beam_search(
                    seed,
                    self.length,
                    self.beam,
                    sampling,
                    num_samples,
                    self.until,
                    self.stop,
                )
            return samples, time.perf_counter() - started
        samples = self.generator.sample(
            [seed for seed, _ in rows],
            [sampling for _, sampling in rows],
            self.length,
            random_seed=self.random_seed,
            on_text=(lambda text: echo(text, nl=False)) if stream else None,
            stop=self.stop,
            until=self.until,
        )
        if stream:
            echo()
        return samples, time.perf_counter() - started

    def label(
        self,
        sample: Any,
        number: int,
        seeds: list[str],
        samplings: list[Any],
        num_samples: int,
    ) -> str:
        """What varies between the samples of this run: "seed 2, temperature 0.5"."""
        parts = []
        if len(seeds) > 1:
            parts.append(f"seed {number // (len(samplings) * num_samples) + 1}")
        if len(samplings) > 1:
            parts.append(f"temperature {sample.sampling.temperature:g}")
        if num_samples > 1:
            parts.append(f"sample {number % num_samples + 1}")
        return ", ".join(parts) or "sample 1"

    def record(
        self, sample: Any, number: int, rate: float, fingerprint: Any
    ) -> dict[str, Any]:
        """One jsonl line (see `generate.sample_record`)."""
        from .generate import sample_record

        return sample_record(
            sample,
            number,
            rate,
            fingerprint,
            model=str(self.model_path),
            length=self.length,
            beam=self.beam,
            stop=list(self.stop),
            until=self.until,
        )


_COMMANDS = {
    ":t": ("temperature", float),
    ":k": ("top_k", int),
    ":p": ("top_p", float),
    ":minp": ("min_p", float),
    ":rep": ("repetition_penalty", float),
    ":n": ("length", int),
}


def _interactive(
    generator: Any,
    sampling: Any,
    length: int,
    stop: tuple[str, ...],
    until: str | None,
    random_seed: int | None,
) -> None:
    """Read seeds line by line and stream each continuation; `:x value`
    commands change settings; end of input (Ctrl-D) leaves."""
    stdin = sys.stdin
    names = ", ".join(f"{k} {v[0]}" for k, v in _COMMANDS.items())
    echo(f"a seed per line; {names}; Ctrl-D to leave", err=True)
    while True:
        echo("> ", nl=False, err=True)
        try:
            line = _read_line(stdin)
        except UnicodeDecodeError:
            echo("that line is not UTF-8 text; type it again", err=True)
            continue
        if line is None:
            echo(err=True)
            return
        command, _, value = line.strip().partition(" ")
        if command in _COMMANDS:
            name, kind = _COMMANDS[command]
            try:
                if name == "length":
                    length = max(kind(value), 1)
                else:
                    sampling = dataclasses.replace(sampling, **{name: kind(value)})
            except (ValueError, TextgenError) as err:
                echo(f"{command}: {err}", err=True)
                continue
            shown = length if name == "length" else getattr(sampling, name)
            echo(f"{name} = {shown}", err=True)
            continue
        if command.startswith(":"):
            echo(f"unknown command {command}; try {names}", err=True)
            continue
        generator.sample(
            [_usable_seed(generator, line)],
            [sampling],
            length,
            random_seed=random_seed,
            on_text=lambda text: echo(text, nl=False),
            stop=stop,
            until=until,
        )
        echo()


def _read_line(stdin: Any) -> str | None:
    """One line typed at the prompt (None at the end of input); of a line
    longer than a seed can use, only its end is kept."""
    from .generate import MAX_SEED_CHARS

    line, keep = "", 2 * MAX_SEED_CHARS
    while True:
        part = stdin.readline(keep)
        if not part:
            return line or None
        line = (line + part)[-keep:]
        if part.endswith("\n"):
            return line.rstrip("\n")


def _report_generation(model: Any, path: Path, samples: list, seconds: float) -> None:
    """The --verbose summary of a generate run, on stderr."""
    unit = "characters" if model.tokenizer_settings.level == "char" else "words"
    words = sum(len(sample) for sample in samples)
    echo(f"model: {path}", err=True)
    echo(f"speed: {words / seconds:,.0f} {unit}/s ({words} {unit})", err=True)
    fingerprint = model.fingerprint()
    if fingerprint is None:
        echo(
            "copied: unknown (the model has no training-text fingerprint of this "
            "textgen version)",
            err=True,
        )
        return
    runs = [fingerprint.longest_copied_run(sample) for sample in samples]
    echo(
        "longest run copied verbatim from the training text: "
        + ", ".join(f"{run} {unit}" if run else "none" for run in runs),
        err=True,
    )


@cli.command()
@click.option(
    "-m",
    "--model",
    "model_path",
    type=click.Path(dir_okay=False),
    help="Model file.  [default: newest .keras in models/]",
)
@click.argument("text", nargs=-1, required=True)
def evaluate(model_path: str | None, text: tuple[str, ...]) -> None:
    """Score a model on TEXT (files or folders): perplexity and OOV rate."""
    model = _load(model_path)
    from .evaluate import evaluate as evaluate_model

    result = evaluate_model(model, text)
    echo(f"tokens scored  {result.tokens:,}")
    echo(f"OOV rate       {result.oov_rate:.2%} ({result.unknown:,} read as <unk>)")
    if model.tokenizer_settings.level == "char":
        echo(
            f"bits per char  {result.cross_entropy / math.log(2):.4f} "
            f"(perplexity {result.perplexity:.2f} per character)"
        )
        return
    echo(
        f"perplexity     {result.perplexity:.2f} "
        f"(cross-entropy {result.cross_entropy:.4f} nats per word)"
    )


@cli.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
def info(path: str | None) -> None:
    """Show what a model is and how it was trained.  [default: newest in models/]"""
    model = _load(path)
    config = model.model_config
    record = model.record
    unit = "characters" if model.tokenizer_settings.level == "char" else "words"
    rows = [
        (
            "model",
            f"{config.cell.upper()}, {config.layers} x {config.units} units, "
            f"embedding {config.embedding_dim}, dropout {config.dropout:g}"
            + (", output tied to the embeddings" if config.tie_embeddings else ""),
        ),
        ("parameters", f"{config.parameter_count():,}"),
        (
            "vocabulary",
            f"{len(model.vocabulary):,} {unit} "
            + (
                "(lower-cased)" if model.tokenizer_settings.lowercase else "(case kept)"
            ),
        ),
    ]
    if record:
        tokens = record["tokens"]
        rows += [
            (
                "corpus",
                ", ".join(
                    f"{f['name']} ({f['tokens']:,} {unit})" for f in record["corpus"]
                ),
            ),
            (
                "tokens",
                f"{tokens['train']:,} train, {tokens['validation']:,} validation",
            ),
            ("epochs", f"{record['epochs_run']} run, best {record['best_epoch']}"),
            (
                "validation perplexity",
                f"{record['best_val_perplexity']:.2f}"
                if record["best_val_perplexity"]
                else "none (no validation)",
            ),
            ("train perplexity", f"{record['train_perplexity']:.2f}"),
            (
                "settings",
                ", ".join(f"{k}={v}" for k, v in record["train_config"].items()),
            ),
            ("trained", f"{record['date']} with textgen {record['textgen_version']}"),
        ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        echo(f"{name:<{width}}  {value}")


def main() -> None:
    """Entry point of the `textgen` console script."""
    # What cannot be encoded for this terminal (an undecodable file name under
    # a strict locale) is written as an escape rather than raising.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    cli(prog_name="textgen")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
