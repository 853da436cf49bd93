"""Pretrained word vectors (GloVe or word2vec text format) for the embedding
layer: the "already learned embeddings" route to a better model on little text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TextgenError
from ..terminal import count
from ..text.vocab import Vocabulary


@dataclass(frozen=True)
class PretrainedVectors:
    """Rows of vectors for a vocabulary, where the file had them."""

    matrix: np.ndarray  # (vocab_size, dimension); zeros where not covered
    covered: np.ndarray  # (vocab_size,) bool: the file had this word

    @property
    def dimension(self) -> int:
        return self.matrix.shape[1]


MAX_LINE_CHARS = 1 << 20  # a 300-number GloVe line is about 3,000 characters
MAX_DIMENSION = 1 << 16  # the largest embedding a model file may have


def read_vectors(path: str | Path, vocabulary: Vocabulary) -> PretrainedVectors:
    """Read the vectors of the vocabulary's words from a text vectors file.

    Lines are `word v1 v2 ...`; a word2vec header line (`count dimension`) is
    skipped. A word missing in its own case is looked up in lower case.

    Raises:
        TextgenError: the file is missing, not UTF-8, or has ragged lines.
    """
    path = Path(path)
    wanted: dict[str, list[int]] = {}
    for index, word in enumerate(vocabulary.words[2:], start=2):
        wanted.setdefault(word, []).append(index)
        wanted.setdefault(word.lower(), []).append(index)
    rows: dict[int, np.ndarray] = {}
    exact: set[int] = set()
    dimension = 0
    for word, numbers in _vectors(path):
        dimension = len(numbers)
        for index in wanted.get(word, ()):
            is_exact = vocabulary.words[index] == word
            if index not in rows or (is_exact and index not in exact):
                rows[index] = _parsed(path, numbers)
                if is_exact:
                    exact.add(index)
    matrix = np.zeros((len(vocabulary), dimension), dtype=np.float32)
    covered = np.zeros(len(vocabulary), dtype=bool)
    for index, vector in rows.items():
        matrix[index], covered[index] = vector, True
    return PretrainedVectors(matrix, covered)


CHECKED_LINES = 1000  # lines `check_vectors_file` reads before any work


def check_vectors_file(path: str | Path) -> None:
    """Refuse, before any work, a vectors file that cannot be one: missing, a
    folder, unreadable, not UTF-8, or with bad lines among its first
    `CHECKED_LINES` (the rest is checked as it is read).

    Raises:
        TextgenError: as `read_vectors`.
    """
    path = Path(path)
    for read, (_, numbers) in enumerate(_vectors(path), start=1):
        _parsed(path, numbers)
        if read >= CHECKED_LINES:
            return


def _parsed(path: Path, numbers: list[str]) -> np.ndarray:
    try:
        vector = np.asarray(numbers, dtype=np.float64)
    except ValueError:
        raise TextgenError(
            f"{path}: a vector holds something that is not a number"
        ) from None
    if not np.isfinite(vector).all():
        raise TextgenError(f"{path}: a vector holds nan or inf, not a number")
    if np.abs(vector).max() > _FLOAT32_MAX:
        raise TextgenError(
            f"{path}: a vector holds {np.abs(vector).max():.3g}, beyond the "
            "largest 32-bit float (3.4e38)"
        )
    return vector.astype(np.float32)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _vectors(path: Path) -> Iterator[tuple[str, list[str]]]:
    """The (word, numbers) lines of a vectors file, all of one length.

    Raises:
        TextgenError: as `read_vectors`; also when it holds no vectors.
    """
    dimension = None
    if path.exists() and not (path.is_file() or path.is_dir()):
        # A pipe would block (and is read twice: checked, then loaded).
        raise TextgenError(
            f"{path} is not a regular file (a pipe, device or socket); give a "
            "vectors file"
        )
    try:
        with path.open(encoding="utf-8") as file:
            lines = iter(lambda: file.readline(MAX_LINE_CHARS + 1), "")
            for number, line in enumerate(lines, start=1):
                if len(line) > MAX_LINE_CHARS:
                    raise TextgenError(
                        f"{path}: line {number:,} is over {MAX_LINE_CHARS:,} "
                        "characters; is this a vectors file?"
                    )
                parts = line.rstrip().split(" ")
                if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue  # word2vec header
                if len(parts) < 2:
                    continue
                if dimension is None:
                    dimension = len(parts) - 1
                    if dimension > MAX_DIMENSION:
                        raise TextgenError(
                            f"{path}: vectors of {dimension:,} numbers, more than "
                            f"{MAX_DIMENSION:,}; is this a vectors file?"
                        )
                if len(parts) - 1 != dimension:
                    raise TextgenError(
                        f"{path}: line {number:,} has "
                        f"{count(len(parts) - 1, 'numbers')} where earlier lines "
                        f"have {dimension:,}; is this a vectors file?"
                    )
                yield parts[0], parts[1:]
    except FileNotFoundError:
        raise TextgenError(f"vectors file not found: {path}") from None
    except IsADirectoryError:
        raise TextgenError(f"{path} is a folder; give a vectors .txt file") from None
    except OSError as err:
        raise TextgenError(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise TextgenError(
            f"{path} is not UTF-8 text; give a GloVe or word2vec .txt"
        ) from None
    if dimension is None:
        raise TextgenError(f"{path} holds no vectors")
