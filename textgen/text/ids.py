"""Corpus files to token ids, as a stream: what `train`, `evaluate` and
`compare` read. Memory holds one piece of text at a time plus four bytes per
token; the distinct tokens are numbered in order of first appearance, and
the vocabulary is chosen from their counts afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorpusError
from .corpus import corpus_files
from .records import SourceFormat, labelled_blocks, source_pieces
from .tokens import TokenizerSettings, tokenize_pieces, tokenizer_for
from .vocab import Vocabulary, WordIndex


@dataclass(frozen=True)
class CorpusIds:
    """A corpus read and tokenized into one int32 per word: `ids` index
    `words`, the distinct words in order of first appearance."""

    words: list[str]
    ids: np.ndarray
    files: list[dict[str, Any]]  # per file (a document): name and token count

    def counts(self, stop: int | None = None) -> dict[str, int]:
        """How often each word occurs in the first `stop` tokens."""
        counts = np.bincount(self.ids[:stop], minlength=len(self.words))
        return dict(zip(self.words, counts.tolist(), strict=True))

    def encode(self, vocabulary: Vocabulary) -> np.ndarray:
        """The text as the vocabulary's ids (int32; unknown words are <unk>)."""
        if not self.words:
            return np.zeros(0, dtype=np.int32)
        return vocabulary.encode(self.words)[self.ids]

    def tokens(self) -> list[str]:
        """The text as a list of words (for small corpora)."""
        return [self.words[i] for i in self.ids]


def corpus_ids(
    paths: Sequence[str | Path],
    settings: TokenizerSettings,
    progress: Callable[[int], None] | None = None,
    source: SourceFormat = SourceFormat(),
) -> CorpusIds:
    """Read and tokenize every corpus file, one after another, streaming:
    memory holds one piece of text at a time plus four bytes per word.

    Args:
        paths: files and folders.
        settings: how to tokenize.
        progress: called with the number of characters read, piece by piece.
        source: how the files are read (plain text, or records: see
            `records.py`).

    Raises:
        CorpusError: a path is missing, or a file is empty, binary or not text.
    """
    index = WordIndex()
    files = []
    for path in corpus_files(paths, source.suffixes):
        if source.label_field is not None:
            if source.of(path) == "text":
                raise CorpusError(
                    f"{path} is plain text: --label-field reads records (JSON "
                    "Lines, CSV, TSV); give such files, or --format"
                )
            blocks = labelled_blocks(path, source, tokenizer_for(settings))
        else:
            pieces = source_pieces(path, source, settings.documents)
            if progress is not None:
                pieces = _reported(pieces, progress)
            blocks = tokenize_pieces(pieces, settings)
        count = 0
        for block in blocks:
            index.add(block)
            count += len(block)
        files.append({"name": str(path), "tokens": count})
    return CorpusIds(index.words, index.ids(), files)


def _reported(pieces: Iterable[str], progress: Callable[[int], None]):
    for piece in pieces:
        progress(len(piece))
        yield piece


def corpus_tokens(
    paths: Sequence[str | Path], settings: TokenizerSettings
) -> tuple[list[str], list[dict[str, Any]]]:
    """The corpus as one list of words, and per file its name and token count."""
    corpus = corpus_ids(paths, settings)
    return corpus.tokens(), corpus.files


def read_corpus_ids(
    corpus: Sequence[str | Path],
    settings: TokenizerSettings,
    bar: bool,
    source: SourceFormat = SourceFormat(),
) -> CorpusIds:
    """`corpus_ids`, with a progress bar on stderr for corpora over 16 MiB
    (when `bar`)."""
    files = corpus_files(corpus, source.suffixes)
    total = sum(path.stat().st_size for path in files)
    if not bar or total < 2**24 or any(p.name.endswith(".gz") for p in files):
        return corpus_ids(corpus, settings, source=source)
    import click

    with click.progressbar(
        length=total, label="reading", file=sys.stderr, show_pos=False
    ) as progress:
        return corpus_ids(corpus, settings, progress.update, source)
