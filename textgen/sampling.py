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
    logits = np.array(logits, dtype=np.float64)
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
    logits = top_p_filter(
        top_k_filter(ban(logits, banned_ids), settings.top_k), settings.top_p
    )
    if settings.temperature == 0:
        return np.argmax(logits, axis=-1)
    probs = softmax(logits / settings.temperature)
    # Inverse-CDF draw: one uniform number per row, vectorised over the batch.
    # The first index whose cumulative mass passes the draw can never be a
    # zero-probability (filtered) word.
    cumulative = np.cumsum(probs, axis=-1)
    draws = rng.random((probs.shape[0], 1)) * cumulative[:, -1:]
    return np.argmax(cumulative > draws, axis=-1)
