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
    blocks = list(_text_losses(model, ids))
    return np.concatenate(blocks) if blocks else np.zeros(0)


def _text_losses(model: LanguageModel, ids: np.ndarray) -> Iterator[np.ndarray]:
    """`score_ids`, a block of `_BLOCK` positions at a time: memory holds one
    block's outputs and logits, whatever the text's length."""
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
        yield _losses(decoder, hidden[: len(targets)], targets)


def _losses(decoder: Decoder, hidden: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Negative log-probabilities of `targets` (k,) given top-layer outputs
    (k, units)."""
    logits = decoder.logits(hidden).astype(np.float64)
    return log_sum_exp(logits)[:, 0] - logits[np.arange(len(targets)), targets]


def item_spans(ids: np.ndarray, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each non-empty item of an item model's ids starts, and its
    length (its tokens, between two `end` ids)."""
    cuts = np.flatnonzero(ids == end)
    starts, lengths = cuts[:-1] + 1, np.diff(cuts) - 1
    keep = lengths > 0
    return starts[keep], lengths[keep]


def item_losses(
    model: LanguageModel, ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> Iterator[np.ndarray]:
    """Negative log-probabilities (nats) of each item's tokens and of the end
    token after it, every item read from a fresh start (zero states, then the
    end token), as `generate` starts one; in blocks, in no particular order.

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
            yield _losses(decoder, hidden[row, column], targets)
            t += steps
            going = length >= t  # rows with positions left
            if not going.all():
                first, length = first[going], length[going]
                states = [[part[going] for part in layer] for layer in states]


_ITEM_BATCH = 256  # items per batch in `item_losses`


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
    total = sum(float(block.sum()) for block in _text_losses(model, ids))
    return Evaluation(
        tokens=len(ids),
        unknown=int(np.sum(ids == UNK_ID)),
        cross_entropy=total / len(ids) if len(ids) else 0.0,
    )


def _evaluate_items(
    model: LanguageModel, paths: Sequence[str | Path], ids: np.ndarray
) -> Evaluation:
    from .corpus import corpus_files, read_pieces

    starts, lengths = item_spans(ids, model.vocabulary.word_to_id[END])
    characters = sum(
        len(text) + 1
        for path in corpus_files(paths)
        for text in item_texts(read_pieces(path), model.tokenizer_settings.documents)
    )
    total, scored = 0.0, 0
    for block in item_losses(model, ids, starts, lengths):
        total, scored = total + float(block.sum()), scored + len(block)
    # Every token of an item is scored: those outside items are ends.
    unknown = int(np.sum(ids == UNK_ID))
    return Evaluation(
        tokens=scored,
        unknown=unknown,
        cross_entropy=total / scored if scored else 0.0,
        items=len(starts),
        characters=characters,
    )
