"""The n-gram memory in training: counted over the training text before
the network trains (`count_memory`, with residual training's priors), then
counted again over all of the text and fitted to the trained network
(`fit_memory`). What the counting takes comes out of a budget
(`reserved_seconds`)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import TrainingError
from ..model.config import TrainConfig
from ..model.counting import CountedText, memory_record
from ..model.ngram import BUCKETS, Grams, Mixture, NgramModel, Residual, largest_order
from ..terminal import count
from .reading import TrainingText

# Seconds a budget keeps for fitting the mixture after training.
FIT_SECONDS = 5.0


@dataclass(frozen=True)
class TrainingMemory:
    """The memory of the training text, as the network trains with it."""

    ngram: NgramModel
    priors: tuple[Any, Any]  # residual: `prior.Prior`s, train and val; else None
    counting_seconds: float
    prior_seconds: float  # residual: the blocks' memories (`_priors`)


def reserved_seconds(
    memory: TrainingMemory | None, planning_seconds: float, config: TrainConfig
) -> float:
    """Of a budget, what the planner's measuring and the n-gram memory's
    counting and fitting take."""
    if memory is None:
        return planning_seconds
    # Counted four times: the training text, then all of it and twice
    # without half of the validation text (`CountedText.all_and_held_out`).
    counting = memory.counting_seconds * (1 + 3 / (1 - config.val_fraction))
    return planning_seconds + counting + memory.prior_seconds + FIT_SECONDS


def count_memory(
    text: TrainingText, config: TrainConfig, log: Callable[[str], None]
) -> TrainingMemory | None:
    """The n-gram memory of the training ids, used while training and
    fitting (`fit_memory` counts the validation text in afterwards); None
    with `--ngram-order 0`."""
    vocabulary, order = text.vocabulary, config.memory_order
    if not order:
        return None
    started = time.perf_counter()
    cap = int(config.ngram_max_mb * 2**20)
    unigrams = len(vocabulary) * np.dtype(np.int64).itemsize
    if cap < unigrams:  # said with this corpus's own vocabulary
        raise TrainingError(
            f"--ngram-max-mb {config.ngram_max_mb:g} is too small for even the "
            f"unigrams of this corpus's {count(len(vocabulary), text.unit)} "
            f"({unigrams / 2**20:.4g} MB); give more, or --ngram-order 0 for no "
            "n-gram memory"
        )
    counted = text.counted(order)
    trained = counted.grams(0, text.n_train)
    ngram = trained.model(cap)
    counting_seconds = time.perf_counter() - started
    priors, prior_seconds = (None, None), 0.0
    if config.residual:
        priors = _priors(text, ngram, counted, trained, cap, log)
        prior_seconds = time.perf_counter() - started - counting_seconds
    lowered = ""
    if largest_order(len(vocabulary), order) < order:
        lowered = f" (order {order} does not fit 63-bit keys with this vocabulary)"
    pruned = ""
    if ngram.pruned:
        pruned = f", {count(ngram.pruned, 'rare n-grams')} pruned to fit"
    labelled = " and the label" if len(ngram.labels) else ""
    log(
        f"n-gram memory: order {ngram.text_order}{labelled}{lowered}, "
        f"{count(ngram.entries, 'entries')}, {ngram.nbytes / 2**20:.1f} MB{pruned}, "
        f"counted in {counting_seconds:.1f} s"
    )
    return TrainingMemory(ngram, priors, counting_seconds, prior_seconds)


def _priors(
    text: TrainingText,
    ngram: NgramModel,
    counted: CountedText,
    trained: Grams,
    cap: int,
    log: Callable[[str], None],
) -> tuple[Any, Any]:
    """Residual training's priors (see `training/prior.py`): each training position
    scored by the memory of the other blocks of the training text, the
    validation text by the memory of all of it. Logs each one's
    cross-entropy, which should agree within a few percent (no leakage)."""
    from ..model.network import NETWORK_ALONE_SHARE
    from .prior import Prior, blocks_for

    seq_len, n_train = text.config.seq_len, text.n_train
    blocks = min(blocks_for(ngram.nbytes), max(n_train, 1))
    edges = [n_train * k // blocks for k in range(blocks + 1)]
    memories = [
        trained.without(counted.grams(a, b)).model(cap)
        for a, b in itertools.pairwise(edges)
    ]
    train_ids, val_ids = text.train_ids, text.val_ids
    train_prior = Prior(
        train_ids, text.starts(train_ids, text.train_lengths),
        memories, edges, seq_len,
    )  # fmt: skip
    val_prior = Prior(
        val_ids, text.starts(val_ids, text.val_lengths),
        [ngram], [0, len(val_ids)], seq_len,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    sample = rng.choice(n_train, size=min(n_train, 50_000), replace=False)
    seen = train_prior.cross_entropy(np.sort(sample))
    held = val_prior.cross_entropy(np.arange(min(len(val_ids), 50_000)))
    log(
        f"residual training on the n-gram memory: its cross-entropy on the "
        f"training text as training sees it (each of {blocks} blocks counted "
        f"without itself) {seen:.3f} nats, on the validation text {held:.3f}; "
        f"the train loss adds {NETWORK_ALONE_SHARE:g} x the network's own"
    )
    return train_prior, val_prior


def unfitted(ngram: NgramModel, config: TrainConfig) -> Mixture | Residual:
    """The memory as training uses it before fitting: half and half, or
    for residual training scale 1."""
    if config.residual:
        return Residual(ngram, np.ones(BUCKETS))
    return Mixture.even(ngram)


def fit_memory(
    model: Any,
    text: TrainingText,
    memory: TrainingMemory,
    config: TrainConfig,
    log: Callable[[str], None],
    resumed: bool,
) -> dict[str, Any]:
    """Count the memory over all of the text, fit the mixing weights (or a
    residual model's scales) on the validation text (even weights, or scale
    1, without one), set it as the model's, and return the record's
    description of it."""
    from ..model.fitting import fit_mixture, fit_residual

    started = time.perf_counter()
    residual, val_ids, ngram = config.residual, text.val_ids, memory.ngram
    if len(val_ids):
        cap = int(config.ngram_max_mb * 2**20)
        held = len(text.all_ids) - text.n_train
        counted = text.counted(config.memory_order)
        ngram, held_out = counted.all_and_held_out(held, cap)
        fitter = fit_residual if residual else fit_mixture
        fit = fitter(model, val_ids, ngram, held_out)
        log(
            f"n-gram memory counted again over all "
            f"{count(len(text.all_ids), text.unit)}"
            f" (the validation text included): {count(ngram.entries, 'entries')}, "
            f"{ngram.nbytes / 2**20:.1f} MB"
        )
        alone = f"{fit['ngram_cross_entropy']:.3f}"
        parts = f"the memory alone {alone}"
        if not residual:
            parts = f"network {fit['network_cross_entropy']:.3f}, n-gram {alone}"
        name = "scales" if residual else "weights"
        log(
            f"{'trained on' if residual else 'mixed with'} the n-gram memory: "
            f"validation cross-entropy {fit['mixed_cross_entropy']:.3f} nats "
            f"({parts}, each half counted without itself), {name} "
            + " ".join(f"{w:.2f}" for w in fit[name])
        )
    else:
        model.mixture = unfitted(ngram, config)
        name, value = ("scales", 1.0) if residual else ("weights", 0.5)
        fit = {name: [value] * BUCKETS, "fitted_on_tokens": 0}
        log(f"n-gram memory with {name} {value:g}: no validation text to fit on")
    return memory_record(
        ngram,
        residual,
        len(text.all_ids),
        fit,
        requested_order=config.memory_order,
        fitting_seconds=round(time.perf_counter() - started, 3),
        counting_seconds=round(memory.counting_seconds, 3),
        recounted_on_resume=resumed,
    )
