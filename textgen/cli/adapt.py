"""`textgen adapt`: a model's network with the n-gram memory of another
text (no TensorFlow; see `textgen/training/adapt.py`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .group import cli, echo, source_options


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("corpus", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Model file to write.  [default: models/<model>-<corpus name>.keras]",
)
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite an existing model file.  [default: refuse to]",
)
@source_options
def adapt(
    model: str,
    corpus: tuple[str, ...],
    output: str | None,
    force: bool,
    input_format: str | None,
    text_field: str | None,
    label_field: str | None,
    strict: bool,
) -> None:
    """Give MODEL the n-gram memory of CORPUS (text files, records or
    folders, read as MODEL's training files were unless the options say
    otherwise): the network is kept, the memory is counted over CORPUS in
    the model's vocabulary and its weights (or scales) refitted on CORPUS's
    last tenth.  Takes seconds; the model is not trained further.
    """
    from ..outputs import MODELS_DIR
    from ..text.records import SourceFormat
    from ..training.adapt import adapt as adapt_model

    path = Path(output) if output else _default_path(model, corpus[0], MODELS_DIR)
    adapted = adapt_model(
        model, corpus, path, force=force, log=echo, progress_bar=sys.stdout.isatty(),
        source=SourceFormat(input_format, text_field, strict, label_field),
    )  # fmt: skip
    cross_entropy = adapted.record["ngram"]["mixed_cross_entropy"]
    echo(f"saved {path} (fitted cross-entropy {cross_entropy:.3f} nats)")
    echo(f'generate with: textgen generate -m {path} --seed "..."')


def _default_path(model: str, corpus: str, folder: Path) -> Path:
    return folder / f"{Path(model).stem}-{Path(corpus).resolve().stem}.keras"
