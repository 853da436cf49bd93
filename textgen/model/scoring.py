"""A model's losses over a text: the decoder run from the start of the
text (or of each item), the output layer a block of positions at a time,
the n-gram memory mixed in or added under it. What `evaluate` reports,
what the memory's weights and scales are fitted on (`fitting.py`), and what
the server's `logprobs` read (`recurrent_outputs`, the one loop every
scorer runs).

Every token is scored once, in order, with the recurrent state carried from
the start of the text (primed with the start token generation uses: a
paragraph break, or a new line for character models), so the figure is the
model's true per-token cross-entropy on that text. `<unk>` is scored as the
class the model's vocabulary defines.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..text.tokens import END, tokenizer_for
from ..text.vocab import UNK_ID
from .counting import item_spans
from .decoder import Decoder
from .ngram import Mixture, mixed_probabilities
from .perplexity import log_sum_exp, perplexity

if TYPE_CHECKING:
    from .file import ReadableModel

BLOCK = 512  # positions per output-layer matrix product


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
    # A labelled model: each label's (cross-entropy, tokens) over the text of
    # its records, given the label (the label tokens themselves not counted).
    by_label: dict[str, tuple[float, int]] | None = None

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
    blocks = [losses for losses, _, _ in text_losses(model, ids)]
    return np.concatenate(blocks) if blocks else np.zeros(0)


# A block of scores: the network's losses (nats) of some tokens, where those
# tokens are in the ids, and where the text (or item) each is in starts.
Block = tuple[np.ndarray, np.ndarray, np.ndarray]


def primed_inputs(model: ReadableModel, ids: np.ndarray) -> np.ndarray:
    """What the network reads before each of `ids`: the start token
    generation uses, then each id but the last."""
    start_token = tokenizer_for(model.tokenizer_settings).start_token
    start = model.vocabulary.word_to_id.get(start_token, UNK_ID)
    return np.concatenate([[start], ids[:-1]]).astype(np.int64)


def recurrent_outputs(
    decoder: Decoder,
    inputs: np.ndarray,
    block: int | None = None,
    fresh: int | None = None,
    check: Callable[[], None] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """The top layer's output after each of `inputs` (one text, from zero
    states), `block` positions at a time: (first position, (k, units)
    outputs). The recurrence runs one token at a time; the output layer,
    which dominates the cost with a large vocabulary, is the caller's, a
    block at once, so memory holds one block whatever the text's length.
    With `fresh`, the states are zeroed before each input equal to it (an
    item model reads every item from zero states and its start token);
    `check` is called before each block (it may raise to stop); `block`:
    `BLOCK` unless given."""
    block = block or BLOCK
    hidden = np.empty((block, decoder.units), dtype=np.float32)
    states = decoder.zero_states(1)
    for begin in range(0, len(inputs), block):
        if check is not None:
            check()
        part = inputs[begin : begin + block]
        for t, token in enumerate(part):
            if token == fresh:
                states = decoder.zero_states(1)
            top, states = decoder.advance(np.array([token]), states)
            hidden[t] = top[0]
        yield begin, hidden[: len(part)]


def text_losses(
    model: ReadableModel, ids: np.ndarray, residual: Any = None
) -> Iterator[Block]:
    """`score_ids`, a block of `BLOCK` positions at a time. With `residual`,
    the losses are the model's (the network on top of the memory)."""
    decoder = Decoder(model.model_config, model.named_weights())
    for begin, hidden in recurrent_outputs(decoder, primed_inputs(model, ids)):
        positions = np.arange(begin, begin + len(hidden))
        starts = np.zeros_like(positions)
        losses = _losses(
            decoder, hidden, ids[positions], residual, ids, positions, starts
        )
        yield losses, positions, starts


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
            width = max(1, BLOCK // len(first))  # steps per block
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


def score_text(
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
        blocks, items = text_losses(model, ids, residual), 0
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
