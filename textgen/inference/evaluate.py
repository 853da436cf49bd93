"""Perplexity and OOV rate of a model on text files (`textgen evaluate`).

The files are read and tokenized as for training; the scoring itself is
the model's (`model/scoring.py`): every token once, in order, the state
carried from the start of the text (of each item, for an item model).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..model.ngram import used_memory
from ..model.record import trained_source
from ..model.scoring import Evaluation, score_text
from ..text.corpus import corpus_files
from ..text.records import SourceFormat, source_pieces
from ..text.tokens import END, is_label, item_texts, label_of
from ..text.vocab import UNK_ID

if TYPE_CHECKING:
    from ..model.file import ReadableModel

__all__ = ["Evaluation", "evaluate", "evaluate_ids"]


def evaluate(
    model: ReadableModel,
    paths: Sequence[str | Path],
    ngram: bool = True,
    per_token: bool = False,
    source: SourceFormat | None = None,
) -> Evaluation:
    """Score a model on text files (read and tokenized as for training); an
    item model item by item (see `item_losses`). With its n-gram memory (and
    `ngram`), the mixture is scored, and each part alone beside it; with
    `per_token`, each token's loss is kept too (`Evaluation.token_losses`).
    `source`: how the files are read (None: as the model's training files
    were, by its recorded format and field).

    Raises:
        CorpusError: a file is missing, empty or not text.
    """
    from ..text.ids import corpus_ids

    source = source or trained_source(model)
    settings = model.tokenizer_settings
    ids = corpus_ids(paths, settings, source=source).encode(model.vocabulary)
    labels = _label_ids(model)
    if labels:
        found = _evaluate(model, paths, ids, ngram, True, source)
        by_label = losses_by_label(ids, found.token_losses, labels, model)
        if not per_token:
            found = dataclasses.replace(found, token_ids=None, token_losses=None)
        return dataclasses.replace(found, by_label=by_label)
    return _evaluate(model, paths, ids, ngram, per_token, source)


def _evaluate(
    model: ReadableModel,
    paths: Sequence[str | Path],
    ids: np.ndarray,
    ngram: bool,
    per_token: bool,
    source: SourceFormat,
) -> Evaluation:
    settings = model.tokenizer_settings
    if not model.tokenizer_settings.items:
        return evaluate_ids(model, ids, ngram, per_token)
    mixture = used_memory(model, ngram)
    totals, items = score_text(model, ids, mixture, per_token=per_token)
    unknown = int(np.sum(ids == UNK_ID))
    characters = sum(
        len(text) + 1
        for path in corpus_files(paths, source.suffixes)
        for text in item_texts(
            source_pieces(path, source, settings.documents, _quiet), settings.documents
        )
    )
    # Every token of an item is scored: those outside items are ends.
    return totals.evaluation(totals.tokens, unknown, items, characters, ids)


def _label_ids(model: ReadableModel) -> dict[int, str]:
    """A labelled model's label tokens' ids, and the labels."""
    words = model.vocabulary.words
    return {i: label_of(w) for i, w in enumerate(words) if is_label(w)}


def losses_by_label(
    ids: np.ndarray, losses: np.ndarray, labels: dict[int, str], model: ReadableModel
) -> dict[str, tuple[float, int]]:
    """Each label's cross-entropy (nats per token) and tokens: the tokens
    after a label token, up to the end of its item (or the next label)."""
    end = model.vocabulary.word_to_id.get(END)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    current = None
    for token, loss in zip(ids.tolist(), losses.tolist(), strict=True):
        if token in labels:
            current = labels[token]
            continue
        if current is not None and not math.isnan(loss):
            sums[current] = sums.get(current, 0.0) + loss
            counts[current] = counts.get(current, 0) + 1
        if token == end:
            current = None
    return {
        label: (sums[label] / counts[label], counts[label]) for label in sorted(sums)
    }


def _quiet(line: str) -> None:
    """Bad records were reported the first time the files were read."""


def evaluate_ids(
    model: ReadableModel, ids: np.ndarray, ngram: bool = True, per_token: bool = False
) -> Evaluation:
    """`evaluate` of one text already in ids (a model trained on files)."""
    mixture = used_memory(model, ngram)
    totals, _ = score_text(model, ids, mixture, per_token=per_token)
    return totals.evaluation(len(ids), int(np.sum(ids == UNK_ID)), ids=ids)
