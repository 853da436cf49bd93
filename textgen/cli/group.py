"""The `textgen` group and what its commands share: error handling, escaped
output, the options every command that reads a model takes, the entry point.
TensorFlow is imported only inside the commands that train, so `--help`,
option errors and every use of a model answer at once.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..errors import TextgenError, TrainingInterrupted
from ..outputs import MODELS_DIR
from ..terminal import printable
from ..text.records import FORMATS


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


class _UsageError(click.ClickException):
    """A usage error as one line, with where to read more (click writes the
    usage line, a hint and the error: four lines for one mistake)."""

    exit_code = 2

    def __init__(self, error: click.UsageError) -> None:
        where = error.ctx.command_path if error.ctx else "textgen"
        super().__init__(f"{error.format_message().rstrip('.')} (see '{where} --help')")


class _Group(click.Group):
    """Turns library errors into one-line messages (tracebacks with --debug)."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as err:
            raise _UsageError(err) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as err:
            raise _UsageError(err) from None
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
        except BrokenPipeError:  # `textgen ... | head`: the reader has gone
            _quiet_stdout()
            sys.exit(SIGPIPE_EXIT)
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
    from ..model.file import newest_model

    newest = newest_model(MODELS_DIR)
    echo(f"using {newest} (newest in {MODELS_DIR}/)", err=True)
    return newest


# `-m PATH`: the model that generate and evaluate use.
model_option = click.option(
    "-m",
    "--model",
    "model_path",
    type=click.Path(dir_okay=False),
    help="Model file.  [default: newest .keras in models/]",
)

no_ngram_option = click.option(
    "--no-ngram",
    is_flag=True,
    help="The network alone, without the model's n-gram memory mixed in.  "
    "[default: off]",
)


def _model_path(path: str | None) -> Path:
    """The model a command uses: the one given, or the newest in models/."""
    return Path(path) if path else _newest_model()


def _load(path: str | None, weights: bool = True, tables: bool | None = None) -> Any:
    """The model to use, read without TensorFlow (`model.file.read_model`)."""
    from ..model.file import read_model

    return read_model(_model_path(path), weights, tables)


# What a shell reports for a program its closed pipe ended (128 + SIGPIPE),
# as `yes | head -1` does; nothing is printed.
SIGPIPE_EXIT = 141


def _quiet_stdout() -> None:
    """Point standard output at /dev/null, so that the flush at exit does not
    complain about the pipe that closed."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main() -> None:
    """Entry point of the `textgen` console script."""
    # What cannot be encoded for this terminal (an undecodable file name under
    # a strict locale) is written as an escape rather than raising.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    try:
        cli(prog_name="textgen")
    except BrokenPipeError:  # while printing help or usage, before any command
        _quiet_stdout()
        sys.exit(SIGPIPE_EXIT)


def knob_option(cls: type, field: str, *flags: str, **extra: Any) -> Any:
    """An option for a generation setting whose default and help come from
    its knob (`inference/contract.py`); its bounds are checked there, once,
    and a value out of them is reported by `setting_error`."""
    from ..inference.contract import knobs

    bounds, default = knobs(cls)[field]
    extra.setdefault("help", bounds.help)
    if default is not None:
        extra.setdefault("show_default", True)
    kind = _Number() if bounds.kind is float else int  # a number; bounds: the knob's
    return click.option(*flags, field, type=kind, default=default, **extra)


def setting_error(error: Any) -> click.UsageError:
    """A `SettingError` as click words a bad value, naming the option:
    "Invalid value for '--top-k': must be 0 (off) or more, not -1"."""
    context = click.get_current_context()
    flags = {
        param.name: max(param.opts, key=len)
        for param in context.command.params
        if isinstance(param, click.Option)
    }
    flag = flags.get(error.field, error.field)
    return click.BadParameter(error.problem, param_hint=f"'{flag}'")


# How corpus files are read (`text/records.py`): train, compare, evaluate, adapt.
SOURCE_OPTIONS = [
    click.option(
        "--format",
        "input_format",
        type=click.Choice(FORMATS),
        help="How the corpus files are read: plain text, or records (JSON "
        "Lines, CSV, TSV) whose --field is the text; a .gz file is read "
        "through.  [default: by each file's name: .jsonl, .csv, .tsv, else "
        "text]",
    ),
    click.option(
        "--field",
        "text_field",
        metavar="NAME",
        help="The JSON key or CSV/TSV column that holds each record's text.  "
        "[default: text]",
    ),
    click.option(
        "--label-field",
        metavar="NAME",
        help="The JSON key or column holding each record's label: the model "
        "reads it before the record's text, and `generate --label` asks for "
        "text like that label's.  [default: none]",
    ),
    click.option(
        "--strict",
        is_flag=True,
        help="Stop at the first bad record (invalid JSON, no such field, a "
        "wrong column count).  [default: skip, count and report them]",
    ),
]


def with_options(options: list[Any]) -> Any:
    """A decorator adding `options` (click options) to a command, in order."""

    def decorate(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


source_options = with_options(SOURCE_OPTIONS)
