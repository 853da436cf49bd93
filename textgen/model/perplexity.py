"""The numbers a language model is judged by, computed once for everyone."""

from __future__ import annotations

import math

import numpy as np


def perplexity(loss: float) -> float:
    """Perplexity from a mean cross-entropy in nats (inf if it overflows)."""
    return math.exp(loss) if loss < 700 else math.inf


def log_sum_exp(logits: np.ndarray) -> np.ndarray:
    """log(sum(exp(logits))) over the last axis, kept as an axis of size 1,
    without overflow (-inf entries count as zero probability)."""
    top = logits.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    return top + np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))
