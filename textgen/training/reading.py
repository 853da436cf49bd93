"""The first stage of `train`: the corpus read once, the window settled,
the validation tail split off, the vocabulary chosen (a resumed model keeps
its own) and the whole text as its ids: a `TrainingText`, which every later
stage reads and none changes."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..model.config import TrainConfig
from ..model.counting import CountedText, documents
from ..text.ids import CorpusIds, read_corpus_ids
from ..text.tokens import END, TokenizerSettings, is_label, label_ids, tokenizer_for
from ..text.vocab import UNK_ID, Vocabulary
from .sizing import plan_window


@dataclass(frozen=True)
class TrainingText:
    """The corpus as training reads it."""

    text: CorpusIds  # the tokens, per file, with their counts
    tokenizer: TokenizerSettings
    config: TrainConfig  # with the window the budget chose, if it chose one
    n_train: int  # tokens before the validation tail
    train_lengths: list[int]  # per file (or stretch of one) in each part
    val_lengths: list[int]
    vocabulary: Vocabulary
    all_ids: np.ndarray  # the whole text's ids, validation tail last

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
    def end_id(self) -> int | None:
        """An item model's end token's id (None for a model of files)."""
        return self.vocabulary.word_to_id[END] if self.tokenizer.items else None

    def counted(self, order: int) -> CountedText:
        """All of the text's ids, cut into files (or items) for counting."""
        lengths = [f["tokens"] for f in self.text.files]
        return CountedText.of(
            self.all_ids, lengths, len(self.vocabulary), order, self.end_id,
            label_ids(self.vocabulary.words),
        )  # fmt: skip

    def starts(self, ids: np.ndarray, lengths: list[int]) -> np.ndarray:
        """Where each file (of `lengths` tokens) or item of `ids` begins."""
        return documents(ids, lengths, self.end_id)[0]


def read_training_text(
    files: list[Path],
    tokenizer: TokenizerSettings,
    config: TrainConfig,
    planned: Collection[str],
    *,
    vocabulary: Vocabulary | None = None,
    text: CorpusIds | None = None,
    progress_bar: bool = False,
    grow: Vocabulary | None = None,
) -> TrainingText:
    """Read the corpus (unless the caller has: `text`), choose the window
    (`planned`), split off the validation tail, and choose the vocabulary of
    the training part (unless a resumed model brings its own)."""
    from .data import check_windows, split_lengths, split_tail

    if text is None:
        text = read_corpus_ids(files, tokenizer, progress_bar, config.source)
    unit = tokenizer_for(tokenizer).unit
    config = plan_window(config, planned, len(text.ids))
    train_part, _ = split_tail(text.ids, config.seq_len, config.val_fraction, unit)
    n_train = len(train_part)
    train_lengths, val_lengths = split_lengths(
        [f["tokens"] for f in text.files], n_train
    )
    check_windows(train_lengths, val_lengths, config.seq_len, unit)
    if vocabulary is None:
        counts = text.counts(n_train)
        # Every label has its row, one that only the validation text has too.
        counts |= {w: c for w, c in text.counts().items() if is_label(w) and c}
        vocabulary = Vocabulary.from_counts(
            counts, config.max_vocab, config.word_min_count, keep=is_label
        )
        if grow is not None:  # a base model's words first, then the new ones
            vocabulary = grow.grown(vocabulary, max(config.max_vocab, len(grow)))
    return TrainingText(
        text,
        tokenizer,
        config,
        n_train,
        train_lengths,
        val_lengths,
        vocabulary,
        text.encode(vocabulary),
    )


def log_resumed(
    text: TrainingText, resume: Path, previous: dict[str, Any], log: Callable
) -> None:
    """One line: what a resumed model makes of the corpus."""
    unknown = float(np.mean(text.all_ids == UNK_ID))
    log(
        f"resuming {resume} after epoch {previous.get('epochs_run', 0)}; "
        f"{unknown:.1%} of the corpus words are <unk> to its vocabulary"
    )
