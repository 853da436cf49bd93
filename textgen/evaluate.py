"""Perplexity and OOV rate of a model on a text.

Every word is scored once, in order, with the recurrent state carried from
the start of the text (primed with the start token generation uses: a
paragraph break, or a new line for character models), so
the figure is the model's true per-word cross-entropy on that text.
`<unk>` is scored as the class the model's vocabulary defines.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .decoder import Decoder
from .metrics import log_sum_exp, perplexity
from .tokens import END, item_texts, tokenizer_for
from .vocab import UNK_ID

if TYPE_CHECKING:
    from .model import LanguageModel

_BLOCK = 512  # positions per output-layer matrix product


@dataclass(frozen=True)
class Evaluation:
    """How well a model predicts a text."""

    tokens: int  # words scored
    unknown: int  # of them, words outside the vocabulary (scored as <unk>)
    cross_entropy: float  # mean negative log-probability, nats per word
    items: int = 0  # an item model: the items scored, each from a fresh start
    characters: int = 0  # of those items, their characters, each end counting one

    @property
    def bits_per_character(self) -> float | None:
        """An item model's total cross-entropy over the items' characters (end
        tokens scored and counted as one character each), in bits."""
        if not self.characters:
            return None
        return self.cross_entropy * self.tokens / self.characters / math.log(2)

    @property
    def perplexity(self) -> float:
        return perplexity(self.cross_entropy)

    @property
    def oov_rate(self) -> float:
        return self.unknown / self.tokens if self.tokens else 0.0


def score_ids(model: LanguageModel, ids: np.ndarray) -> np.ndarray:
    """Negative log-probability (nats) of each id given all the ids before it.

    Args:
        model: the model to score with.
        ids: (n,) word ids of one text, in order.
    """
    decoder = Decoder(model.model_config, model.named_weights())
    start_token = tokenizer_for(model.tokenizer_settings).start_token
    start = model.vocabulary.word_to_id.get(start_token, UNK_ID)
    inputs = np.concatenate([[start], ids[:-1]]).astype(np.int64)
    # The recurrence one word at a time; the output layer, which dominates
    # the cost with a large vocabulary, in blocks of positions at once.
    hidden = np.empty((len(ids), decoder.units), dtype=np.float32)
    states = decoder.zero_states(1)
    for t, word_id in enumerate(inputs):
        top, states = decoder.advance(np.array([word_id]), states)
        hidden[t] = top[0]
    losses = np.empty(len(ids))
    for begin in range(0, len(ids), _BLOCK):
        rows = decoder.logits(hidden[begin : begin + _BLOCK]).astype(np.float64)
        log_total = log_sum_exp(rows)[:, 0]
        targets = ids[begin : begin + _BLOCK]
        losses[begin : begin + _BLOCK] = log_total - rows[np.arange(len(rows)), targets]
    return losses


def score_items(model: LanguageModel, items: Sequence[np.ndarray]) -> np.ndarray:
    """Negative log-probability (nats) of each token of each item, and of
    the end token after it, every item read from a fresh start (zero states,
    then the end token), as `generate` starts one. Items run as batches of
    similar length.

    Args:
        model: an item model (its vocabulary holds `END`).
        items: each item's token ids, without end tokens.

    Returns:
        The losses, item after item (each item's tokens, then its end).
    """
    decoder = Decoder(model.model_config, model.named_weights())
    end = model.vocabulary.word_to_id[END]
    order = sorted(range(len(items)), key=lambda i: len(items[i]))
    losses: list[np.ndarray] = [np.zeros(0)] * len(items)
    for begin in range(0, len(order), _ITEM_BATCH):
        rows = order[begin : begin + _ITEM_BATCH]
        steps = max(len(items[i]) for i in rows) + 1
        inputs = np.full((len(rows), steps), end, dtype=np.int64)
        targets = np.full((len(rows), steps), end, dtype=np.int64)
        for r, i in enumerate(rows):
            inputs[r, 1 : len(items[i]) + 1] = items[i]
            targets[r, : len(items[i])] = items[i]
        states = decoder.zero_states(len(rows))
        hidden = np.empty((len(rows), steps, decoder.units), dtype=np.float32)
        for t in range(steps):
            hidden[:, t], states = decoder.advance(inputs[:, t], states)
        for r, i in enumerate(rows):
            n = len(items[i]) + 1
            logits = decoder.logits(hidden[r, :n]).astype(np.float64)
            picked = logits[np.arange(n), targets[r, :n]]
            losses[i] = log_sum_exp(logits)[:, 0] - picked
    return np.concatenate(losses) if losses else np.zeros(0)


_ITEM_BATCH = 256  # items per batch in `score_items`


def evaluate(model: LanguageModel, paths: Sequence[str | Path]) -> Evaluation:
    """Score a model on text files (read and tokenized as for training); an
    item model item by item (see `score_items`).

    Raises:
        CorpusError: a file is missing, empty or not text.
    """
    from .corpus_ids import corpus_ids

    ids = corpus_ids(paths, model.tokenizer_settings).encode(model.vocabulary)
    if model.tokenizer_settings.items:
        return _evaluate_items(model, paths, ids)
    losses = score_ids(model, ids)
    return Evaluation(
        tokens=len(ids),
        unknown=int(np.sum(ids == UNK_ID)),
        cross_entropy=float(losses.mean()),
    )


def _evaluate_items(
    model: LanguageModel, paths: Sequence[str | Path], ids: np.ndarray
) -> Evaluation:
    from .corpus import corpus_files, read_pieces

    end = model.vocabulary.word_to_id[END]
    cuts = np.flatnonzero(ids == end)
    items = [ids[a + 1 : b] for a, b in itertools.pairwise(cuts)]
    items = [item for item in items if len(item)]
    characters = sum(
        len(text) + 1
        for path in corpus_files(paths)
        for text in item_texts(read_pieces(path), model.tokenizer_settings.documents)
    )
    losses = score_items(model, items)
    scored = np.concatenate([*items, np.zeros(0, np.int32)])
    return Evaluation(
        tokens=len(losses),
        unknown=int(np.sum(scored == UNK_ID)),
        cross_entropy=float(losses.mean()) if len(losses) else 0.0,
        items=len(items),
        characters=characters,
    )
