"""Where a `train` run writes, checked before any work: the model, its
`.last.keras` checkpoint, the learning-curve picture and TensorBoard's
folder (`check_train_outputs`), and the names those files take."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import OutputError
from ..outputs import Output, check_outputs
from ..text.corpus import corpus_files
from .embeddings import check_vectors_file

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
