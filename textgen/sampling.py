"""Choose next words from logits: temperature, top-k and top-p (nucleus).

Pure NumPy functions of a (batch, vocab_size) logits array, applied in a fixed
order: banned ids removed -> top-k -> top-p -> temperature (0 is greedy) -> draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import TextgenError


@dataclass(frozen=True)
class SamplingSettings:
    """How each next word is picked from the model's logits."""

    temperature: float = 1.0  # 0: always the most likely word; >1: more surprising
    top_k: int = 0  # keep only the k most likely words; 0 keeps all
    top_p: float = 1.0  # keep the fewest words whose probability sums to p

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise TextgenError("temperature must be 0 (greedy) or more")
        if self.top_k < 0:
            raise TextgenError("top-k must be 0 (off) or more")
        if not 0 < self.top_p <= 1:
            raise TextgenError("top-p must be in (0, 1]")


def ban(logits: np.ndarray, banned_ids: Sequence[int]) -> np.ndarray:
    """Make the given ids impossible to choose."""
    logits = np.array(logits, dtype=np.float32)  # a copy
    logits[..., list(banned_ids)] = -np.inf
    return logits


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """Keep the k largest logits per row (ties at the k-th stay); 0 keeps all."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth_largest = np.partition(logits, -k, axis=-1)[..., -k, None]
    return np.where(logits >= kth_largest, logits, -np.inf)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits along the last axis (-inf gives 0)."""
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=-1, keepdims=True)


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """Keep, per row, the most likely words until their probability reaches p."""
    if p >= 1:
        return logits
    order = np.argsort(-logits, axis=-1)
    sorted_probs = np.take_along_axis(softmax(logits), order, axis=-1)
    mass_before = np.cumsum(sorted_probs, axis=-1) - sorted_probs
    keep_sorted = mass_before < p  # the first word always stays
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    return np.where(keep, logits, -np.inf)


# Words per block in `draw`: one cumulative sum over block totals, then one
# within the chosen block, instead of a cumulative sum over the whole vocabulary.
_BLOCK = 64


def draw(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row, with probability proportional to `weights` (>= 0).

    An inverse-CDF draw done in two levels (blocks, then words), which costs a
    fraction of a full-vocabulary cumulative sum. Zero weights are never drawn.
    """
    batch, size = weights.shape
    padded = np.zeros((batch, size + -size % _BLOCK), dtype=np.float32)
    padded[:, :size] = weights
    blocks = padded.reshape(batch, -1, _BLOCK)  # (batch, n_blocks, _BLOCK)
    ones = np.ones(_BLOCK, dtype=np.float32)
    block_mass = np.cumsum((blocks @ ones).astype(np.float64), axis=-1)
    target = rng.random(batch) * block_mass[:, -1]  # (batch,)
    rows = np.arange(batch)
    # The first block, then the first word, whose cumulative mass passes target.
    k = np.minimum((block_mass <= target[:, None]).sum(axis=-1), blocks.shape[1] - 1)
    before = np.where(k > 0, block_mass[rows, k - 1], 0.0)
    inner = blocks[rows, k]  # (batch, _BLOCK)
    word_mass = np.cumsum(inner, axis=-1, dtype=np.float64)
    j = np.minimum((word_mass <= (target - before)[:, None]).sum(axis=-1), _BLOCK - 1)
    # Rounding can carry the target past the block's last word; then take the
    # last word in the block that has weight.
    last = _BLOCK - 1 - np.argmax(inner[:, ::-1] > 0, axis=-1)
    j = np.where(inner[rows, j] > 0, j, last)
    return k * _BLOCK + j


def next_ids(
    logits: np.ndarray,
    settings: SamplingSettings,
    rng: np.random.Generator,
    banned_ids: Sequence[int] = (),
) -> np.ndarray:
    """Pick one id per row of `logits` (batch, vocab_size).

    Args:
        logits: unnormalised scores from the model.
        settings: temperature, top-k and top-p.
        rng: the only source of randomness, so a seed fixes the output.
        banned_ids: ids never to pick (`<pad>`, `<unk>`).
    """
    logits = ban(logits, banned_ids)
    logits = top_p_filter(top_k_filter(logits, settings.top_k), settings.top_p)
    if settings.temperature == 0:
        return np.argmax(logits, axis=-1)
    # In place on the private copy `ban` made: exp((logits - max) / T).
    logits -= logits.max(axis=-1, keepdims=True)
    logits *= 1.0 / settings.temperature
    return draw(np.exp(logits, out=logits), rng)
