"""What a model's token level decides besides tokenizing: the training and
reporting defaults that differ between words and characters, each with the
measurement behind it. The tokenizer (`text/tokens.py`) says what a token
is; this is the policy: one `Level` per level, asked by name
(`level_policy`), so no code compares level names to choose a default.
Adding a level means a tokenizer class and a `Level` here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Level:
    """The defaults of one token level."""

    name: str  # the level's name, as `TokenizerSettings.level` holds it
    folds_case: bool  # lowercase (unless --keep-case) at this level
    tied_by_default: bool  # the output layer shares the embedding matrix
    carries_state_by_default: bool  # training carries the state (TrainConfig)
    ngram_order: int  # the n-gram memory's default order
    # How the network uses the memory by default (`TrainConfig.ngram_mode`):
    # what measured better at this level (docs/benchmarks.md).
    ngram_mode: str
    # What the budget planner (`training/sizing.py`) aims at: reads of the
    # training text, and the window and learning rate it sets when they are
    # not given (None: the defaults).
    planned_passes: int
    planned_seq_len: int | None = None
    planned_learning_rate: float | None = None
    score_in_bits: bool = False  # evaluate reports bits per token, not perplexity


WORDS = Level(
    name="word",
    folds_case=True,
    tied_by_default=True,
    # Carried state was no better for words at the budgets people give a
    # laptop (docs/training.md, "Training in a budget").
    carries_state_by_default=False,
    ngram_order=3,
    ngram_mode="mixture",
    planned_passes=8,
)
CHARACTERS = Level(
    name="char",
    folds_case=False,  # case and all whitespace are kept
    # The output layer is tiny, and tied a 2 x 128 network stayed at the
    # unigram level (3.06 nats) after 170 steps where an untied one reached
    # 2.11 (docs/training.md, "Training in a budget").
    tied_by_default=False,
    # Carried state was better on both books at 3 minutes (about 2% fewer nats).
    carries_state_by_default=True,
    ngram_order=7,
    ngram_mode="residual",
    # Characters learn less per pass and want more of them: on a list of 15 k
    # words (114 k characters, 10 minutes) 2 x 512 at 12 passes reached 2.03
    # nats per character, 2 x 256 at 30 passes 1.83 (benchmarks/items.py).
    planned_passes=30,
    planned_seq_len=100,  # characters per window: a sentence or two of context
    planned_learning_rate=1e-2,  # 5e-3: +3.4% nats at 3 minutes
    score_in_bits=True,
)
_BY_NAME = {level.name: level for level in (WORDS, CHARACTERS)}


def level_policy(name: str) -> Level:
    """The `Level` of a level's name ("word", "char")."""
    return _BY_NAME[name]
