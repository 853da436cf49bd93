"""Does a model write, or recite? A compact fingerprint of the training text's
word n-grams (a Bloom filter of their hashes, never the text itself), saved in
the model, and the longest run of generated words copied verbatim from it.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelFileError
from ..text.tokens import (
    END,
    TokenizerSettings,
    WordTokenizer,
    tokenizer_for,
)
from .novelty import ItemSet

COPIED_RUN = WordTokenizer.copied_run  # shortest run of words counted as copied
BITS_PER_NGRAM = 12  # about 0.3% false positives with 8 hash functions
MAX_BITS = 8 * 2**20  # 1 MiB in the model file at most
HASHES = 8
HASHING = "blake2b-words-v2"  # how n-grams are hashed; saved with the bits
_BLOCK = 1 << 18  # n-grams hashed at a time: bounds memory for big corpora
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def word_hashes(words: Sequence[str]) -> np.ndarray:
    """A 64-bit hash of each word (uint64), the same on every machine."""
    return np.fromiter(
        (
            int.from_bytes(
                hashlib.blake2b(w.encode("utf-8"), digest_size=8).digest(), "little"
            )
            for w in words
        ),
        dtype=np.uint64,
        count=len(words),
    )


def ngram_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """One order-sensitive 64-bit hash per run of `n` consecutive words."""
    m = len(hashes) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = np.zeros(m, dtype=np.uint64)
    for j in range(n):  # multiply-xorshift mixing; uint64 arithmetic wraps
        h = (h ^ hashes[j : j + m]) * _MULTIPLIER
        h ^= h >> np.uint64(29)
    return h


def _positions(ngrams: np.ndarray, bits: int) -> np.ndarray:
    # Double hashing: the i-th position is h1 + i * h2 (mod bits).
    h1 = ngrams & np.uint64(0xFFFFFFFF)
    h2 = (ngrams >> np.uint64(32)) | np.uint64(1)
    steps = np.arange(HASHES, dtype=np.uint64)
    return ((h1[:, None] + steps * h2[:, None]) % np.uint64(bits)).astype(np.int64)


@dataclass(frozen=True)
class Fingerprint:
    """A Bloom filter of a text's word n-grams."""

    bits: np.ndarray  # uint8, packed bit array
    size: int  # number of bits
    n: int = COPIED_RUN

    @classmethod
    def of(cls, words: Sequence[str], n: int = COPIED_RUN) -> Fingerprint:
        """Fingerprint every n-gram of `words`."""
        return cls.of_ids(np.arange(len(words)), word_hashes(words), n)

    @classmethod
    def of_ids(
        cls, ids: np.ndarray, hashes: np.ndarray, n: int = COPIED_RUN
    ) -> Fingerprint:
        """Fingerprint the n-grams of a text given as `ids` into `hashes` (the
        `word_hashes` of its distinct words): no per-token strings needed."""
        size = int(min(max(len(ids) - n + 1, 1) * BITS_PER_NGRAM, MAX_BITS))
        empty = cls(np.packbits(np.zeros(size, dtype=bool)), size, n)
        return empty.extended_ids(ids, hashes)

    def extended_ids(self, ids: np.ndarray, hashes: np.ndarray) -> Fingerprint:
        """This fingerprint plus every n-gram of a text given as in `of_ids`
        (same size: the false positive rate grows with many new n-grams)."""
        flags = np.unpackbits(self.bits)[: self.size].astype(bool)
        step = _BLOCK
        for begin in range(0, max(len(ids) - self.n + 1, 0), step):
            block = hashes[ids[begin : begin + step + self.n - 1]]
            flags[_positions(ngram_hashes(block, self.n), self.size).ravel()] = True
        return Fingerprint(np.packbits(flags), self.size, self.n)

    def _found(self, words: Sequence[str]) -> np.ndarray:
        """For each n-gram of `words`: (probably) in the fingerprinted text."""
        positions = _positions(ngram_hashes(word_hashes(words), self.n), self.size)
        # np.packbits is big-endian within each byte.
        hit = self.bits[positions >> 3] & (0x80 >> (positions & 7)).astype(np.uint8)
        return hit.astype(bool).all(axis=1)

    def contains(self, words: Sequence[str]) -> bool:
        """Whether this n-gram (probably) occurs in the fingerprinted text."""
        return bool(self._found(words)[0])

    def longest_copied_run(self, words: Sequence[str]) -> int:
        """Length of the longest stretch of `words` whose every n-gram occurs in
        the fingerprinted text (0 when no n-gram does)."""
        longest = streak = 0
        for found in self._found(words):
            streak = streak + 1 if found else 0
            if streak:
                longest = max(longest, streak + self.n - 1)
        return longest

    def to_config(self) -> dict[str, Any]:
        """Plain JSON form, for the model's training record."""
        packed = base64.b64encode(zlib.compress(self.bits.tobytes(), 9)).decode("ascii")
        return {"n": self.n, "size": self.size, "bits": packed, "hashing": HASHING}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Fingerprint | None:
        """The fingerprint, or None if it was hashed another way (an older model).

        The config comes from a model file, so it is checked and inflated with
        a bound: at most `MAX_BITS` bits, never more bytes than they need.

        Raises:
            ModelFileError: a field is missing, out of range or inconsistent.
        """
        if not isinstance(config, dict) or config.get("hashing") != HASHING:
            return None
        size, n, packed = config.get("size"), config.get("n"), config.get("bits")
        if not (
            type(size) is int
            and 0 < size <= MAX_BITS
            and type(n) is int
            and 1 <= n <= 1000
            and isinstance(packed, str)
            and len(packed) <= 2 * MAX_BITS // 8 + 4096
        ):
            raise ModelFileError("the training-text fingerprint is malformed")
        expected = -(-size // 8)
        try:
            inflater = zlib.decompressobj()
            raw = inflater.decompress(base64.b64decode(packed, validate=True), expected)
            extra = inflater.decompress(inflater.unconsumed_tail, 1)
            complete = inflater.eof and not extra
        except (ValueError, zlib.error):
            raw, complete = b"", False
        if len(raw) != expected or not complete:
            raise ModelFileError(
                "the training-text fingerprint does not hold the bits it claims"
            )
        return cls(np.frombuffer(raw, dtype=np.uint8), size, n)


def remembered(
    text: Any, settings: TokenizerSettings, earlier: dict[str, Any]
) -> tuple[ItemSet | None, Fingerprint]:
    """What a model's record keeps of a text it learned from (`text`, a
    `text/ids.py`'s `CorpusIds` read with `settings`): an item model's items (for
    `generate --novel`) and the fingerprint (for the originality report),
    merged with what the record `earlier` kept (a resumed or adapted model's)."""
    items = None
    if settings.items and END in text.words:
        items = ItemSet.of_ids(text.ids, text.words, text.words.index(END))
        if earlier.get("items"):
            kept = ItemSet.from_config(earlier["items"]).hashes
            items = ItemSet(np.union1d(items.hashes, kept))
    hashes = word_hashes(text.words)
    fingerprint = Fingerprint.from_config(earlier.get("fingerprint") or {})
    if fingerprint is not None:
        return items, fingerprint.extended_ids(text.ids, hashes)
    length = tokenizer_for(settings).copied_run
    return items, Fingerprint.of_ids(text.ids, hashes, length)
