"""Perplexity and OOV rate of a model on a text.

Every word is scored once, in order, with the recurrent state carried from
the start of the text (primed with the start token generation uses: a
paragraph break, or a new line for character models), so
the figure is the model's true per-word cross-entropy on that text.
`<unk>` is scored as the class the model's vocabulary defines.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..model.counting import item_spans
from ..model.decoder import Decoder
from ..model.ngram import (
    Mixture,
    NgramModel,
    Residual,
    fit_scales,
    fit_weights,
    mixed_probabilities,
    residual_log_probabilities,
    used_memory,
)
from ..text.corpus import corpus_files, read_pieces
from ..text.tokens import END, item_texts, tokenizer_for
from ..text.vocab import UNK_ID
from .perplexity import log_sum_exp, perplexity

if TYPE_CHECKING:
    from ..model.file import ReadableModel

_BLOCK = 512  # positions per output-layer matrix product


@dataclass(frozen=True)
class Evaluation:
    """How well a model predicts a text."""

    tokens: int  # words scored
    unknown: int  # of them, words outside the vocabulary (scored as <unk>)
    cross_entropy: float  # mean negative log-probability, nats per word
    items: int = 0  # an item model: the items scored, each from a fresh start
    characters: int = 0  # of those items, their characters, each end counting one
    # With the n-gram memory: each part alone (`cross_entropy` is the mixture's).
    network_cross_entropy: float | None = None
    ngram_cross_entropy: float | None = None
    # With `per_token`: the text's ids and each one's loss (nats; the
    # mixture's with the n-gram memory), NaN where nothing was scored.
    token_ids: np.ndarray | None = field(default=None, compare=False, repr=False)
    token_losses: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def bits_per_character(self) -> float | None:
        """An item model's total cross-entropy over the items' characters (end
        tokens scored and counted as one character each), in bits."""
        return self.bits_per_character_of(self.cross_entropy)

    def bits_per_character_of(self, cross_entropy: float) -> float | None:
        """`bits_per_character` of a cross-entropy over these items (one
        part's alone, say)."""
        if not self.characters:
            return None
        return cross_entropy * self.tokens / self.characters / math.log(2)

    @property
    def perplexity(self) -> float:
        return perplexity(self.cross_entropy)

    @property
    def oov_rate(self) -> float:
        return self.unknown / self.tokens if self.tokens else 0.0


def score_ids(model: ReadableModel, ids: np.ndarray) -> np.ndarray:
    """Negative log-probability (nats) of each id given all the ids before it,
    by the network alone.

    Args:
        model: the model to score with.
        ids: (n,) word ids of one text, in order.
    """
    blocks = [losses for losses, _, _ in _text_losses(model, ids)]
    return np.concatenate(blocks) if blocks else np.zeros(0)


# A block of scores: the network's losses (nats) of some tokens, where those
# tokens are in the ids, and where the text (or item) each is in starts.
Block = tuple[np.ndarray, np.ndarray, np.ndarray]


def _text_losses(
    model: ReadableModel, ids: np.ndarray, residual: Any = None
) -> Iterator[Block]:
    """`score_ids`, a block of `_BLOCK` positions at a time: memory holds one
    block's outputs and logits, whatever the text's length. With `residual`,
    the losses are the model's (the network on top of the memory)."""
    decoder = Decoder(model.model_config, model.named_weights())
    start_token = tokenizer_for(model.tokenizer_settings).start_token
    start = model.vocabulary.word_to_id.get(start_token, UNK_ID)
    # The recurrence one word at a time; the output layer, which dominates
    # the cost with a large vocabulary, for a block of positions at once.
    hidden = np.empty((_BLOCK, decoder.units), dtype=np.float32)
    states = decoder.zero_states(1)
    for begin in range(0, len(ids), _BLOCK):
        targets = ids[begin : begin + _BLOCK]
        previous = ids[begin - 1] if begin else start
        inputs = np.concatenate([[previous], targets[:-1]]).astype(np.int64)
        for t, word_id in enumerate(inputs):
            top, states = decoder.advance(np.array([word_id]), states)
            hidden[t] = top[0]
        positions = np.arange(begin, begin + len(targets))
        starts = np.zeros_like(positions)
        yield (
            _losses(
                decoder,
                hidden[: len(targets)],
                targets,
                residual,
                ids,
                positions,
                starts,
            ),
            positions,
            starts,
        )


def _losses(
    decoder: Decoder,
    hidden: np.ndarray,
    targets: np.ndarray,
    residual: Any = None,
    ids: np.ndarray | None = None,
    positions: np.ndarray | None = None,
    starts: np.ndarray | None = None,
) -> np.ndarray:
    """Negative log-probabilities of `targets` (k,) given top-layer outputs
    (k, units); with `residual`, of the model on top of its memory, whose
    contexts are those of `ids[positions]` in texts beginning at `starts`."""
    logits = decoder.logits(hidden)
    rows = np.arange(len(targets))
    if residual is not None:
        scored = residual.block_logits(logits, ids, positions, starts)
        return -scored[rows, targets].astype(np.float64)
    logits = logits.astype(np.float64)
    return log_sum_exp(logits)[:, 0] - logits[rows, targets]


def item_losses(
    model: ReadableModel,
    ids: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    residual: Any = None,
) -> Iterator[Block]:
    """Negative log-probabilities (nats) of each item's tokens and of the end
    token after it, every item read from a fresh start (zero states, then the
    end token), as `generate` starts one; in blocks (see `Block`: the end
    token after an item is where it is in the ids), in no particular order.

    Items run as batches of similar length, a few steps at a time, and an
    item leaves its batch when it ends: memory holds one block of outputs,
    whatever an item's length.

    Args:
        model: an item model (its vocabulary holds `END`).
        ids: the item model's ids (see `item_spans`).
        starts, lengths: the items (see `item_spans`).
    """
    decoder = Decoder(model.model_config, model.named_weights())
    end = model.vocabulary.word_to_id[END]
    order = np.argsort(lengths, kind="stable")
    last = len(ids) - 1
    for begin in range(0, len(order), _ITEM_BATCH):
        rows = order[begin : begin + _ITEM_BATCH]
        first, length = starts[rows], lengths[rows]
        states = decoder.zero_states(len(rows))
        t = 0
        while len(first):
            width = max(1, _BLOCK // len(first))  # steps per block
            hidden = np.empty((len(first), width, decoder.units), dtype=np.float32)
            steps = min(width, int(length.max()) + 1 - t)
            for step in range(steps):
                inputs = ids[np.minimum(first + t + step - 1, last)]
                if t + step == 0:
                    inputs = np.full(len(first), end)
                inputs = np.where(t + step - 1 < length, inputs, end)
                hidden[:, step], states = decoder.advance(inputs, states)
            # Each row's positions within its item and end token.
            at = t + np.arange(steps)
            row, column = np.nonzero(at[None, :] <= length[:, None])
            position = at[column]
            inside = position < length[row]
            targets = np.where(
                inside, ids[np.minimum(first[row] + position, last)], end
            )
            at_ids, begins = first[row] + position, first[row]
            yield (
                _losses(
                    decoder, hidden[row, column], targets, residual, ids, at_ids, begins
                ),
                at_ids,
                begins,
            )
            t += steps
            going = length >= t  # rows with positions left
            if not going.all():
                first, length = first[going], length[going]
                states = [[part[going] for part in layer] for layer in states]


_ITEM_BATCH = 256  # items per batch in `item_losses`


def evaluate(
    model: ReadableModel,
    paths: Sequence[str | Path],
    ngram: bool = True,
    per_token: bool = False,
) -> Evaluation:
    """Score a model on text files (read and tokenized as for training); an
    item model item by item (see `item_losses`). With its n-gram memory (and
    `ngram`), the mixture is scored, and each part alone beside it; with
    `per_token`, each token's loss is kept too (`Evaluation.token_losses`).

    Raises:
        CorpusError: a file is missing, empty or not text.
    """
    from ..text.ids import corpus_ids

    ids = corpus_ids(paths, model.tokenizer_settings).encode(model.vocabulary)
    if not model.tokenizer_settings.items:
        return evaluate_ids(model, ids, ngram, per_token)
    mixture = used_memory(model, ngram)
    totals, items = _scored(model, ids, mixture, per_token=per_token)
    unknown = int(np.sum(ids == UNK_ID))
    characters = sum(
        len(text) + 1
        for path in corpus_files(paths)
        for text in item_texts(read_pieces(path), model.tokenizer_settings.documents)
    )
    # Every token of an item is scored: those outside items are ends.
    return totals.evaluation(totals.tokens, unknown, items, characters, ids)


def evaluate_ids(
    model: ReadableModel, ids: np.ndarray, ngram: bool = True, per_token: bool = False
) -> Evaluation:
    """`evaluate` of one text already in ids (a model trained on files)."""
    mixture = used_memory(model, ngram)
    totals, _ = _scored(model, ids, mixture, per_token=per_token)
    return totals.evaluation(len(ids), int(np.sum(ids == UNK_ID)), ids=ids)


def _scored(
    model: ReadableModel,
    ids: np.ndarray,
    mixture: Mixture | None,
    keep: int = 0,
    per_token: bool = False,
) -> tuple[Totals, int]:
    """Every token of `ids` scored as `evaluate` scores it (an item model
    item by item), summed in `Totals` (keeping `keep` tokens' probabilities,
    and with `per_token` every token's loss); and the number of items (0 for
    a text)."""
    # A residual model's network is scored on top of its memory (also what
    # stands in for one while its scales are fitted).
    residual = mixture if hasattr(mixture, "block_logits") else None
    if model.tokenizer_settings.items:
        starts, lengths = item_spans(ids, model.vocabulary.word_to_id[END])
        blocks = item_losses(model, ids, starts, lengths, residual)
        items = len(starts)
    else:
        blocks, items = _text_losses(model, ids, residual), 0
    totals = Totals(keep, len(ids) if per_token else None)
    for block in blocks:
        totals.add(block, ids, mixture)
    return totals, items


class Totals:
    """Sums of the losses of scored blocks: the network's, and with a mixture
    the n-gram's and the mixture's; and, up to `keep` tokens, each token's
    probabilities under both parts and its bucket (to fit the weights); and
    with `positions` (the text's length), each token's loss at its place."""

    def __init__(self, keep: int = 0, positions: int | None = None) -> None:
        self.tokens, self.keep = 0, keep
        self.network = self.counting = self.mixed = 0.0
        self.residual = False  # scored as a residual model: no network alone
        self.kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.kept_tokens = 0
        self.losses = None if positions is None else np.full(positions, np.nan)

    def add(self, block: Block, ids: np.ndarray, mixture: Mixture | None) -> None:
        losses, positions, starts = block
        self.tokens += len(losses)
        self.network += float(losses.sum())
        if mixture is None:
            if self.losses is not None:
                self.losses[positions] = losses
            return
        counting, buckets = mixture.ngram.probabilities_at(ids, positions, starts)
        network = np.exp(-losses)
        if hasattr(mixture, "block_logits"):  # residual: the model's losses
            self.residual, mixed = True, network
        else:
            mixed = mixed_probabilities(network, counting, buckets, mixture.weights)
        self.counting -= float(np.log(counting).sum())
        self.mixed -= float(np.log(mixed).sum())
        if self.losses is not None:
            self.losses[positions] = -np.log(mixed)
        room = self.keep - self.kept_tokens
        if room > 0:
            kept = (network, counting, buckets, positions, starts)
            self.kept.append(tuple(part[:room] for part in kept))
            self.kept_tokens += len(self.kept[-1][0])

    def evaluation(
        self,
        tokens: int,
        unknown: int,
        items: int = 0,
        characters: int = 0,
        ids: np.ndarray | None = None,
    ) -> Evaluation:
        per = 1 / self.tokens if self.tokens else 0.0
        mixed = self.mixed if self.counting else self.network
        return Evaluation(
            tokens=tokens,
            unknown=unknown,
            cross_entropy=mixed * per,
            items=items,
            characters=characters,
            network_cross_entropy=None if self.residual else self.network * per,
            ngram_cross_entropy=self.counting * per if self.counting else None,
            token_ids=None if self.losses is None else ids,
            token_losses=self.losses,
        )

    def kept_arrays(self) -> tuple[np.ndarray, ...]:
        """The kept tokens' network and n-gram probabilities, buckets,
        positions and the starts of their texts (or items)."""
        if not self.kept:
            empty = np.zeros(0, dtype=np.int64)
            return np.zeros(0), np.zeros(0), empty, empty, empty
        return tuple(np.concatenate(part) for part in zip(*self.kept, strict=True))


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
    totals, _ = _scored(model, ids[:FIT_TOKENS], Mixture.even(ngram), keep=FIT_TOKENS)
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
    _scored(model, ids[:rows], kept)
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
