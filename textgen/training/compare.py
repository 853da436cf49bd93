"""`compare()`: train several cell types on the same split, vocabulary, seed
and budget, and put their numbers side by side: parameters, time per epoch,
best validation perplexity, and how far back their gradients reach.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model.config import ModelConfig, TrainConfig, fresh_seed

DISTANCES = (1, 5, 10, 20, 40)  # words back reported in the table


@dataclass
class CellResult:
    """One cell type's outcome in a comparison."""

    cell: str
    path: Path  # the saved model
    parameters: int
    seconds_per_epoch: float
    best_val_perplexity: float | None
    best_epoch: int
    # The network mixed with its n-gram memory, on the validation text it
    # was fitted on (None: no memory, or no validation text).
    mixed_val_perplexity: float | None
    history: list[dict]
    gradient_decay: np.ndarray  # relative gradient norm by distance back


def check_compare_outputs(
    corpus: Sequence[str | Path],
    cells: Sequence[str],
    folder: Path,
    force: bool,
    pictures: bool,
    vectors: str | Path | None = None,
) -> None:
    """Refuse, before any work, a comparison that would lose a file or could
    not finish: one model per cell in `folder`, the two pictures when
    `pictures`, none of them an input (the corpus, the `vectors` file), and
    the vectors file readable.

    Raises:
        OutputError: see `outputs.check_outputs`.
        TextgenError: the vectors file (see `embeddings.check_vectors_file`).
    """
    from ..outputs import Output, check_outputs
    from ..text.corpus import corpus_files
    from .embeddings import check_vectors_file

    wanted = [Output(folder, "comparison folder", folder=True, option="-o")]
    wanted += [
        Output(folder / f"{cell}.keras", f"{cell} model", option="-o") for cell in cells
    ]
    if pictures:
        wanted += [
            Output(folder / "curves.png", "learning-curve picture", option="-o"),
            Output(folder / "gradients.png", "gradient picture", option="-o"),
        ]
    inputs = [*corpus_files(corpus), *([Path(vectors)] if vectors else [])]
    check_outputs(wanted, inputs, force)
    if vectors:
        check_vectors_file(vectors)


def compare(
    corpus: Sequence[str | Path],
    cells: Sequence[str],
    output_dir: str | Path,
    model_config: ModelConfig = ModelConfig(),
    config: TrainConfig = TrainConfig(),
    log: Callable[[str], None] = print,
    force: bool = False,
) -> list[CellResult]:
    """Train one model per cell on the same data and budget; save each.

    Args:
        corpus: text files and folders.
        cells: cell types, e.g. ("rnn", "lstm", "gru").
        output_dir: where `<cell>.keras` files go.
        model_config: the shared network shape (its `cell` is replaced).
        config: the shared training settings; a random seed is drawn once
            and used for every cell if none is given.
        force: overwrite models already in `output_dir`.
    """
    from ..model.network import count_parameters
    from ..outputs import inside_models
    from ..text.ids import corpus_ids
    from .gradients import gradient_decay
    from .train import tokenizer_settings, train

    if config.seed is None:
        seed = fresh_seed()
        config = dataclasses.replace(config, seed=seed)
    output_dir = Path(output_dir)
    # Its one folder, checked to have a parent (`check_compare_outputs`).
    output_dir.mkdir(parents=inside_models(output_dir), exist_ok=True)
    results = []
    # Read once for all.
    text = corpus_ids(corpus, tokenizer_settings(config), source=config.source)
    ids = None  # the training split's ids: the same for every cell
    for cell in cells:
        log(f"--- {cell} ---")
        path = output_dir / f"{cell}.keras"
        shape = dataclasses.replace(model_config, cell=cell)
        model = train(corpus, path, shape, config, log=log, force=force, text=text)
        record = model.record
        history = record["history"]
        if ids is None:
            ids = text.encode(model.vocabulary)[: record["tokens"]["train"]]
        results.append(
            CellResult(
                cell=cell,
                path=path,
                parameters=count_parameters(model),
                seconds_per_epoch=float(np.median([row["seconds"] for row in history])),
                best_val_perplexity=record["best_val_perplexity"],
                best_epoch=record["best_epoch"],
                mixed_val_perplexity=_mixed_perplexity(record),
                history=history,
                gradient_decay=gradient_decay(model, ids, seed=config.seed),
            )
        )
    return results


def _mixed_perplexity(record: dict) -> float | None:
    mixed = (record.get("ngram") or {}).get("mixed_cross_entropy")
    return float(np.exp(mixed)) if mixed is not None else None


def format_table(results: Sequence[CellResult]) -> str:
    """The comparison as a plain-text table."""
    gradient_columns = [f"grad@{d}" for d in DISTANCES]
    header = ["cell", "parameters", "s/epoch", "best val ppl", "mixed ppl"]
    header.append("best epoch")
    rows = [header + gradient_columns]
    for r in results:
        perplexity = f"{r.best_val_perplexity:.1f}" if r.best_val_perplexity else "-"
        decay = [
            f"{r.gradient_decay[d]:.1e}" if d < len(r.gradient_decay) else "-"
            for d in DISTANCES
        ]
        seconds = f"{r.seconds_per_epoch:.1f}"
        rows.append(
            [
                r.cell,
                f"{r.parameters:,}",
                seconds,
                perplexity,
                f"{r.mixed_val_perplexity:.1f}" if r.mixed_val_perplexity else "-",
                str(r.best_epoch),
                *decay,
            ]
        )
    widths = [
        max(len(row[i]) for row in rows) for i in range(len(header) + len(DISTANCES))
    ]
    lines = [
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(lines)
