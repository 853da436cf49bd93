"""The n-gram memory's fit to a network: the mixing weights (`fit_mixture`)
or, for a network trained on top of the memory, the scales of its prior
(`fit_residual`), fitted on held-out text scored as `evaluate` scores it
(`scoring.py`). `train` fits them once training is done; `adapt` refits
them for another text's memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .ngram import (
    Mixture,
    NgramModel,
    Residual,
    fit_scales,
    fit_weights,
    mixed_probabilities,
    residual_log_probabilities,
)
from .scoring import score_text

if TYPE_CHECKING:
    from .file import ReadableModel


def fit_mixture(
    model: ReadableModel,
    ids: np.ndarray,
    ngram: NgramModel,
    held_out: Sequence[tuple[NgramModel, int, int]] = (),
) -> dict:
    """Fit the mixing weights on held-out `ids` (validation; at most
    `FIT_TOKENS` of them) with the model as it will be saved, and set
    `model.mixture` to `ngram` with them. Returns what the record keeps: the
    weights and each part's (and the mixture's) cross-entropy on those
    tokens.

    `held_out`: (memory, first, end): the tokens first..end - 1 are scored
    with that memory instead of `ngram` (one that did not count them, when
    `ngram` did: a memory is far surer of the text it counted)."""
    totals, _ = score_text(
        model, ids[:FIT_TOKENS], Mixture.even(ngram), keep=FIT_TOKENS
    )
    network, counting, buckets, positions, starts = totals.kept_arrays()
    for memory, inside in _by_memory(held_out, positions):
        counting[inside], buckets[inside] = memory.probabilities_at(
            ids, positions[inside], starts[inside]
        )
    weights = fit_weights(network, counting, buckets)
    model.mixture = Mixture(ngram, weights)
    n = max(len(network), 1)
    mixed = mixed_probabilities(network, counting, buckets, weights)
    return {
        "weights": [round(float(w), 4) for w in weights],
        "fitted_on_tokens": len(network),
        "network_cross_entropy": float(-np.log(np.maximum(network, 1e-300)).sum() / n),
        "ngram_cross_entropy": float(-np.log(counting).sum() / n),
        "mixed_cross_entropy": float(-np.log(mixed).sum() / n),
    }


FIT_TOKENS = 20_000  # held-out tokens the mixing weights are fitted on
# Residual scales are fitted on at most this many (token, vocabulary) cells.
FIT_CELLS = 20_000_000


def fit_residual(
    model: ReadableModel,
    ids: np.ndarray,
    ngram: NgramModel,
    held_out: Sequence[tuple[NgramModel, int, int]],
) -> dict:
    """Fit a residual model's scales (`ngram.fit_scales`) on held-out `ids`
    (validation), each token's memory one that did not count it (`held_out`,
    as in `fit_mixture`), and set `model.mixture` to `ngram` with them.
    Returns what the record keeps: the scales, and the cross-entropy of the
    memory alone and of the model on those tokens."""
    rows = max(1, min(FIT_TOKENS, FIT_CELLS // ngram.vocab_size))
    kept = _HeldOutPriors(held_out)
    score_text(model, ids[:rows], kept)
    scales = fit_scales(kept.blocks)
    model.mixture = Residual(ngram, scales)
    n = max(sum(len(block[3]) for block in kept.blocks), 1)
    model_loss = memory_loss = 0.0
    for network, log_prior, buckets, targets in kept.blocks:
        scored = residual_log_probabilities(network, log_prior, scales[buckets])
        chosen = np.arange(len(targets)), targets
        model_loss -= float(scored[chosen].sum())
        memory_loss -= float(log_prior[chosen].sum())
    return {
        "scales": [round(float(w), 4) for w in scales],
        "fitted_on_tokens": n,
        "ngram_cross_entropy": memory_loss / n,
        "mixed_cross_entropy": model_loss / n,
    }


def _by_memory(held_out: Sequence[tuple[NgramModel, int, int]], positions):
    """Each held-out (memory, first, end) with the mask of `positions` it
    scores (first..end - 1); none where it scores none of them."""
    for memory, first, end in held_out:
        inside = (positions >= first) & (positions < end)
        if inside.any():
            yield memory, inside


class _HeldOutPriors:
    """Stands in for a `Residual` while the validation text is scored for
    `fit_residual`: each block's network logits, its tokens' log-probability
    rows under the held-out memory of their half, buckets and targets are
    kept; the block is scored with scale 1, as training scored it."""

    def __init__(self, held_out: Sequence[tuple[NgramModel, int, int]]) -> None:
        self.held_out = held_out
        self.ngram = held_out[0][0]
        self.blocks: list[tuple[np.ndarray, ...]] = []

    def block_logits(
        self,
        network: np.ndarray,
        ids: np.ndarray,
        positions: np.ndarray,
        starts: np.ndarray,
    ) -> np.ndarray:
        log_prior = np.zeros(network.shape, dtype=np.float32)
        buckets = np.zeros(len(positions), dtype=np.int64)
        for memory, inside in _by_memory(self.held_out, positions):
            contexts = memory.contexts_at(ids, positions[inside], starts[inside])
            log_prior[inside], buckets[inside] = memory.log_distributions(contexts)
        targets = ids[np.minimum(positions, len(ids) - 1)]
        self.blocks.append((network, log_prior, buckets, targets))
        return residual_log_probabilities(network, log_prior, 1.0)
