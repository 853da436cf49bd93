"""Does a model write, or recite? A compact fingerprint of the training text's
word n-grams (a Bloom filter of their hashes, never the text itself), saved in
the model, and the longest run of generated words copied verbatim from it.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

NGRAM = 5  # shortest run of words that counts as copied
BITS_PER_NGRAM = 12  # about 0.3% false positives with 8 hash functions
MAX_BITS = 8 * 2**20  # 1 MiB in the model file at most
HASHES = 8


def _ngram_keys(words: Sequence[str], n: int) -> list[bytes]:
    return [
        " ".join(words[i : i + n]).encode("utf-8") for i in range(len(words) - n + 1)
    ]


def _positions(key: bytes, bits: int) -> np.ndarray:
    # Double hashing: the i-th position is h1 + i * h2 (mod bits).
    h1 = zlib.crc32(key)
    h2 = zlib.adler32(key) | 1
    return (h1 + np.arange(HASHES, dtype=np.int64) * h2) % bits


@dataclass(frozen=True)
class Fingerprint:
    """A Bloom filter of a text's word n-grams."""

    bits: np.ndarray  # uint8, packed bit array
    size: int  # number of bits
    n: int = NGRAM

    @classmethod
    def of(cls, words: Sequence[str], n: int = NGRAM) -> Fingerprint:
        """Fingerprint every n-gram of `words`."""
        keys = _ngram_keys(words, n)
        size = int(min(max(len(keys), 1) * BITS_PER_NGRAM, MAX_BITS))
        flags = np.zeros(size, dtype=bool)
        for key in keys:
            flags[_positions(key, size)] = True
        return cls(np.packbits(flags), size, n)

    def _has(self, key: bytes) -> bool:
        positions = _positions(key, self.size)
        # np.packbits is big-endian within each byte.
        return bool(np.all(self.bits[positions >> 3] & (0x80 >> (positions & 7))))

    def contains(self, words: Sequence[str]) -> bool:
        """Whether this n-gram (probably) occurs in the fingerprinted text."""
        return self._has(" ".join(words).encode("utf-8"))

    def longest_copied_run(self, words: Sequence[str]) -> int:
        """Length of the longest stretch of `words` whose every n-gram occurs in
        the fingerprinted text (0 when no n-gram does)."""
        longest = streak = 0
        for key in _ngram_keys(words, self.n):
            streak = streak + 1 if self._has(key) else 0
            if streak:
                longest = max(longest, streak + self.n - 1)
        return longest

    def to_config(self) -> dict[str, Any]:
        """Plain JSON form, for the model's training record."""
        packed = base64.b64encode(zlib.compress(self.bits.tobytes(), 9)).decode("ascii")
        return {"n": self.n, "size": self.size, "bits": packed}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Fingerprint:
        raw = zlib.decompress(base64.b64decode(config["bits"]))
        return cls(np.frombuffer(raw, dtype=np.uint8), config["size"], config["n"])
