"""The training items a model was trained on, as a compact exact-match set:
what `generate --novel` checks each sampled item against.

Each item is kept as a 64-bit hash (8 bytes) of its tokens after the
tokenizer's case folding and whitespace normalisation, never as text; the
set is saved in the model's training record in base64 (under 11 bytes per
item). Two different items share a hash with probability about 2^-64 per
pair: for a million items, the chance that any generated item is wrongly
taken for a training item is below one in 10^13.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

HASH = "blake2b-64"
_SEPARATOR = "\x1f"  # between tokens; never inside one


def item_hash(tokens: Sequence[str]) -> int:
    """The 64-bit hash of an item's tokens (without its end token)."""
    digest = hashlib.blake2b(
        _SEPARATOR.join(tokens).encode("utf-8", "surrogatepass"), digest_size=8
    ).digest()
    return int.from_bytes(digest, "little")


@dataclass(frozen=True)
class ItemSet:
    """A sorted array of item hashes, for exact membership tests."""

    hashes: np.ndarray  # uint64, sorted, distinct

    @classmethod
    def of(cls, items: Iterable[Sequence[str]]) -> ItemSet:
        values = np.fromiter((item_hash(item) for item in items), dtype=np.uint64)
        return cls(np.unique(values))

    @classmethod
    def of_ids(cls, ids: np.ndarray, words: Sequence[str], end_id: int) -> ItemSet:
        """The items of a corpus's token ids (`words[id]` is the token), cut at
        each `end_id`; text after the last one is not an item."""
        ends = np.flatnonzero(ids == end_id)
        starts = np.concatenate([[0], ends[:-1] + 1]) if len(ends) else []
        items = (
            [words[i] for i in ids[a:b]]
            for a, b in zip(starts, ends, strict=True)
            if b > a
        )
        return cls.of(items)

    def __len__(self) -> int:
        return len(self.hashes)

    def __contains__(self, tokens: Sequence[str]) -> bool:
        value = np.uint64(item_hash(tokens))
        at = int(np.searchsorted(self.hashes, value))
        return at < len(self.hashes) and self.hashes[at] == value

    def to_config(self) -> dict[str, Any]:
        data = self.hashes.astype("<u8").tobytes()
        return {
            "hash": HASH,
            "count": len(self),
            "items": base64.b64encode(data).decode("ascii"),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ItemSet:
        """From `to_config`'s form (checked: the model file is untrusted).

        Raises:
            ValueError: not a set this version reads.
        """
        if not isinstance(config, dict) or config.get("hash") != HASH:
            raise ValueError("the training items are hashed another way")
        encoded = config.get("items")
        if not isinstance(encoded, str):
            raise ValueError("the training items are not base64 text")
        try:
            data = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise ValueError("the training items are not base64 text") from None
        if len(data) % 8 or len(data) // 8 != config.get("count"):
            raise ValueError("the training items do not match their count")
        hashes = np.frombuffer(data, dtype="<u8").astype(np.uint64)
        if not (hashes[1:] > hashes[:-1]).all():  # uint64: no np.diff
            raise ValueError("the training items are not a sorted set")
        return cls(hashes)
