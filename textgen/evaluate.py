"""Perplexity and OOV rate of a model on a text.

Every word is scored once, in order, with the recurrent state carried from
the start of the text (primed with the start token generation uses: a
paragraph break, or a new line for character models), so
the figure is the model's true per-word cross-entropy on that text.
`<unk>` is scored as the class the model's vocabulary defines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .decoder import Decoder
from .metrics import log_sum_exp, perplexity
from .tokens import tokenizer_for
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


def evaluate(model: LanguageModel, paths: Sequence[str | Path]) -> Evaluation:
    """Score a model on text files (read and tokenized as for training).

    Raises:
        CorpusError: a file is missing, empty or not text.
    """
    from .corpus_ids import corpus_ids

    ids = corpus_ids(paths, model.tokenizer_settings).encode(model.vocabulary)
    losses = score_ids(model, ids)
    return Evaluation(
        tokens=len(ids),
        unknown=int(np.sum(ids == UNK_ID)),
        cross_entropy=float(losses.mean()),
    )
