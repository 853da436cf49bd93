"""`textgen adapt`: keep a model's network and give it the n-gram memory of
another text. The new memory is counted over all of the new text in the
model's vocabulary (a word it lacks is `<unk>`), and the mixing weights (or
a residual model's scales) are refitted on the text's last tenth, each half
scored by a memory that did not count it, as `train` fits them. No
TensorFlow: the network is read and run from the file, and the new file is
the old one with its record and its memory replaced.

A residual network learned what its memory gets wrong, so a memory of the
new text steers it toward that text (Li et al. 2022 swap the n-gram model
for domain adaptation); a mixture's network keeps its share, refitted.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import CorpusError, TextgenError
from ..model.counting import CountedText, memory_record
from ..model.file import WEIGHTS_ENTRY, ModelFile, read_config, read_model
from ..model.ngram import ASSET, Residual, write_arrays
from ..model.originality import remembered
from ..model.record import trained_source
from ..outputs import Output, atomic_write, check_outputs
from ..terminal import count
from ..text.corpus import corpus_files
from ..text.ids import read_corpus_ids
from ..text.records import SourceFormat
from ..text.tokens import END, level_class
from ..text.vocab import UNK_ID

FIT_FRACTION = 0.1  # the new text's tail the weights or scales are fitted on
MIN_TOKENS = 20  # fewer is no text to count or fit on


def adapt(
    model_path: str | Path,
    corpus: Sequence[str | Path],
    output: str | Path,
    *,
    force: bool = False,
    log: Callable[[str], None] = print,
    progress_bar: bool = False,
    source: SourceFormat = SourceFormat(),
) -> ModelFile:
    """Write to `output` the model at `model_path` with the n-gram memory of
    `corpus` (files and folders, read as `train` reads them: records by
    `source`, and what it leaves out as the model's training files were
    read), its weights or scales fitted on the corpus's last tenth. Returns
    the new model as read back from `output`.

    Raises:
        TextgenError: one line: the model has no memory, the corpus is too
            short, the output would replace a file without `force`, ...
    """
    started = time.perf_counter()
    model_path, output = Path(model_path), Path(output)
    model = read_model(model_path)
    source = trained_source(model, source)
    files = corpus_files(corpus, source.suffixes)
    what = Output(output, "adapted model", option="-o")
    check_outputs([what], [model_path, *files], force)
    memory = model.mixture
    if memory is None:
        raise TextgenError(
            f"{model_path} has no n-gram memory to swap (it was trained with "
            "--ngram-order 0); adapt a model trained with one"
        )
    settings, vocabulary = model.tokenizer_settings, model.vocabulary
    unit = level_class(settings.level).unit
    text = read_corpus_ids(files, settings, progress_bar, source)
    ids = text.encode(vocabulary).astype(np.int64)
    if len(ids) < MIN_TOKENS:
        raise CorpusError(
            f"the corpus has {count(len(ids), unit)}; adapting needs at least "
            f"{MIN_TOKENS} to count and fit on; give more text"
        )
    unknown = float(np.mean(ids == UNK_ID))
    end = vocabulary.word_to_id[END] if settings.items else None
    counted = CountedText.of(
        ids, [f["tokens"] for f in text.files], len(vocabulary),
        memory.ngram.text_order, end, memory.ngram.labels,
    )  # fmt: skip
    held = max(1, int(len(ids) * FIT_FRACTION))
    cap = int(_max_megabytes(model) * 2**20)
    ngram, held_out = counted.all_and_held_out(held, cap)
    counting_seconds = time.perf_counter() - started
    from ..model.fitting import fit_mixture, fit_residual

    residual = isinstance(memory, Residual)
    fitter = fit_residual if residual else fit_mixture
    fit = fitter(model, ids[len(ids) - held :], ngram, held_out)
    old = model.record.get("ngram") or {}
    record = dict(model.record)
    record["ngram"] = memory_record(
        ngram,
        residual,
        len(ids),
        fit,
        requested_order=old.get("requested_order", ngram.text_order),
        counting_seconds=round(counting_seconds, 3),
        fitting_seconds=round(time.perf_counter() - started - counting_seconds, 3),
    )
    record["adaptations"] = [
        *record.get("adaptations", []),
        {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "textgen_version": __version__,
            "from": model_path.name,
            "corpus": text.files,
            "unknown_rate": round(unknown, 4),
        },
    ]
    # The new text joins what the record remembers, so neither the
    # originality report nor `--novel` lets it be recited.
    items, fingerprint = remembered(text, settings, record)
    record["fingerprint"] = fingerprint.to_config()
    if items is not None:
        record["items"] = items.to_config()
    _write(model_path, output, record, model.mixture)
    name = "scales" if residual else "weights"
    log(
        f"counted {count(len(ids), unit)} ({unknown:.1%} unknown to the model): "
        f"{count(ngram.entries, 'entries')}, {ngram.nbytes / 2**20:.1f} MB; "
        f"fitted on the last {count(held, unit)}: cross-entropy "
        f"{fit['mixed_cross_entropy']:.3f} nats (the memory alone "
        f"{fit['ngram_cross_entropy']:.3f}), {name} "
        + " ".join(f"{w:.2f}" for w in fit[name])
    )
    return read_model(output)


def _max_megabytes(model: ModelFile) -> float:
    """The memory's size limit the model was trained with."""
    from ..model.config import TrainConfig

    given = (model.record.get("train_config") or {}).get("ngram_max_mb")
    if isinstance(given, (int, float)) and 0 < given <= 2048:
        return float(given)
    return TrainConfig.ngram_max_mb


def _write(source: Path, output: Path, record: dict[str, Any], memory: Any) -> None:
    """`source`'s file with its record and n-gram memory replaced, written
    all at once to `output`."""
    outer = read_config(source)
    outer["config"]["record"] = record
    tables = io.BytesIO()
    write_arrays(tables, memory.to_arrays())

    def write(path: Path) -> None:
        with zipfile.ZipFile(source) as old, zipfile.ZipFile(path, "w") as new:
            for info in old.infolist():
                if info.filename == "config.json":
                    new.writestr(info, json.dumps(outer))
                elif info.filename == f"assets/{ASSET}":
                    new.writestr(info, tables.getvalue())
                elif info.filename in ("metadata.json", WEIGHTS_ENTRY):
                    new.writestr(info, old.read(info))

    atomic_write(output, write)
