"""`Vocabulary`: the word <-> id mapping, built from word counts.

Id 0 is `<pad>` and id 1 is `<unk>` (every word left out of the vocabulary);
neither is ever generated. Saved inside the model as plain lists.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import TextgenError

PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1


class Vocabulary:
    """Words and their ids; ids follow training-set frequency, most frequent first."""

    def __init__(self, words: Sequence[str], counts: Sequence[int] | None = None):
        """Args:
        words: every word including `<pad>` and `<unk>` at ids 0 and 1.
        counts: training occurrences of each word (same order), if known.
        """
        if list(words[:2]) != [PAD, UNK]:
            raise TextgenError("vocabulary must start with <pad> and <unk>")
        self.words = list(words)
        self.counts = list(counts) if counts is not None else [0] * len(self.words)
        self.word_to_id = {w: i for i, w in enumerate(self.words)}
        if len(self.word_to_id) != len(self.words):
            raise TextgenError("vocabulary has repeated words")

    @classmethod
    def build(
        cls, tokens: Iterable[str], max_size: int | None = None, min_count: int = 1
    ) -> Vocabulary:
        """Keep the most frequent words (ties broken alphabetically).

        Args:
            tokens: the training tokens.
            max_size: most ids in total, `<pad>` and `<unk>` included; None for all.
            min_count: fewest occurrences a word needs to get its own id.
        """
        return cls.from_counts(Counter(tokens), max_size, min_count)

    @classmethod
    def from_counts(
        cls,
        counts: Mapping[str, int],
        max_size: int | None = None,
        min_count: int = 1,
        keep: Callable[[str], bool] | None = None,
    ) -> Vocabulary:
        """`build` from word counts already made; words that `keep` says so
        of (labels) have rows whatever their count or the size."""
        counts = {w: int(c) for w, c in counts.items() if w not in (PAD, UNK) and c}
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = [(w, c) for w, c in ranked if keep is not None and keep(w)]
        always = {w for w, _ in kept}
        ranked = [(w, c) for w, c in ranked if c >= min_count and w not in always]
        if max_size is not None:
            ranked = ranked[: max(max_size - 2 - len(kept), 0)]
        ranked = sorted(kept + ranked, key=lambda item: (-item[1], item[0]))
        unknown = sum(counts.values()) - sum(c for _, c in ranked)
        return cls(
            [PAD, UNK] + [w for w, _ in ranked], [0, unknown] + [c for _, c in ranked]
        )

    def grown(self, other: Vocabulary, most: int) -> Vocabulary:
        """This vocabulary with `other`'s words it lacks after its own (in
        `other`'s order, most frequent first), up to `most` words in all:
        every known word keeps its id."""
        room = max(most - len(self), 0)
        known = self.word_to_id
        new = [w for w in other.words[2:] if w not in known][:room]
        counts = dict(zip(other.words, other.counts, strict=True))
        return Vocabulary(self.words + new, self.counts + [counts[w] for w in new])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, words: Iterable[str]) -> np.ndarray:
        """Map words to ids (int32); unknown words become `UNK_ID`."""
        lookup = self.word_to_id.get
        return np.fromiter((lookup(w, UNK_ID) for w in words), dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Map ids back to words."""
        return [self.words[int(i)] for i in ids]

    def unknown(self, words: Iterable[str]) -> list[str]:
        """The words (in order, without repeats) that have no id of their own."""
        return list(dict.fromkeys(w for w in words if w not in self.word_to_id))

    def get_config(self) -> dict[str, Any]:
        """Plain JSON-able form, stored inside the `.keras` file."""
        return {"words": self.words, "counts": self.counts}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Vocabulary:
        return cls(config["words"], config.get("counts"))


class WordIndex:
    """Numbers each distinct word in order of first appearance, as text streams
    by, so a corpus is held as one int32 per word rather than one string."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._blocks: list[np.ndarray] = []

    def add(self, words: Sequence[str]) -> None:
        """Append `words` to the text."""
        ids = self._ids
        self._blocks.append(
            np.fromiter(
                (ids.setdefault(w, len(ids)) for w in words),
                dtype=np.int32,
                count=len(words),
            )
        )

    @property
    def words(self) -> list[str]:
        """The distinct words; the text's ids index into this list."""
        return list(self._ids)

    def ids(self) -> np.ndarray:
        """The whole text so far, as indices into `words` (int32)."""
        if len(self._blocks) != 1:
            joined = np.concatenate(self._blocks) if self._blocks else None
            self._blocks = [joined if joined is not None else np.zeros(0, np.int32)]
        return self._blocks[0]
