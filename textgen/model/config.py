"""Hyperparameters: `ModelConfig` (the network) and `TrainConfig` (the fit).

Plain frozen dataclasses with no TensorFlow import, so the command line can
show their defaults instantly; `model/network.py` and `training/train.py`
re-export them.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
from dataclasses import dataclass

from ..errors import TextgenError
from ..text.records import FORMATS, SourceFormat
from ..text.tokens import DOCUMENTS, LEVELS, WORD_TOKENIZERS, TokenizerSettings
from .levels import level_policy


@dataclass(frozen=True)
class CellSpec:
    """What a recurrent cell is, for everything that is not its arithmetic:
    the model builder (`model/network.py`), the decoder, the model file reader and
    `ModelConfig.weight_shapes` all read it here. A new cell is its spec, its
    NumPy step (`model/decoder.py`) and its Keras layer (`model/network.py`)."""

    name: str  # as --cell names it
    gates: int  # blocks of `units` columns in the kernels
    states: int  # recurrent states per layer: [h], or [h, c]
    # Per-layer weights, in the order Keras stores the cell's variables.
    weights: tuple[str, ...] = ("kernel", "recurrent_kernel", "bias")
    bias_rows: int = 1  # Keras's GRU (reset_after) keeps input and recurrent biases

    def weight_shapes(self, width: int, units: int) -> dict[str, tuple[int, ...]]:
        """One layer's weights by name, for inputs of `width` features."""
        columns = self.gates * units
        shapes = {
            "kernel": (width, columns),
            "recurrent_kernel": (units, columns),
            "bias": (columns,) if self.bias_rows == 1 else (self.bias_rows, columns),
        }
        if "peephole" in self.weights:  # input, forget and output gates
            shapes["peephole"] = (3, units)
        assert tuple(shapes) == self.weights, "every weight has its shape"
        return shapes


CELL_SPECS = {
    spec.name: spec
    for spec in (
        CellSpec("lstm", gates=4, states=2),  # gate order i f c o
        CellSpec("gru", gates=3, states=1, bias_rows=2),  # z r h
        CellSpec("rnn", gates=1, states=1),  # Keras's SimpleRNN
        CellSpec(
            "peephole",
            gates=4,
            states=2,
            weights=("kernel", "recurrent_kernel", "bias", "peephole"),
        ),
    )
}
CELLS = tuple(CELL_SPECS)
# The largest network textgen builds, trains or loads: far beyond what a
# machine can train, small enough to rule out overflow and absurd files.
# The n-gram memory's highest order (`--ngram-order`; a file's, when read).
MAX_ORDER = 10
LIMITS = {"layers": 64, "units": 2**16, "embedding_dim": 2**16, "vocab_size": 2**24}
LR_SCHEDULES = ("linear", "plateau", "constant")
# `textgen serve`: requests one model holds waiting for room in its batch
# (beyond them a request gets 429), and seconds a request may take. 64, from
# benchmarks/serve.py's flood (docs/benchmarks.md): half of 500 simultaneous
# requests accepted, the slowest answered in under about 20 s; 16 refused two
# thirds to save a third of that, 256 made the last wait 24-39 s.
SERVE_MAX_QUEUE = 64
SERVE_TIMEOUT = 300.0
# Most tokens one prompt may have (--max-prompt-tokens): see docs/serving.md
# for what reading that many costs.
SERVE_MAX_PROMPT_TOKENS = 8192
# The most one request may ask for: its rows x their tokens (prompt tokens
# plus max_tokens) x (1 + logprobs). It bounds a
# request's steps and its response (that many tokens and log-probabilities at
# most); the largest allowed answers well within SERVE_TIMEOUT on a 2-core CPU
# (docs/serving.md).
SERVE_MAX_REQUEST_COST = 2**17
DISTRIBUTE = ("none", "mirrored", "multi-worker")


def fresh_seed() -> int:
    """A random seed for a run given none; runs report it, so it can be repeated."""
    return secrets.randbelow(2**31)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the network; saved in the model file."""

    cell: str = "lstm"  # lstm | gru | rnn (SimpleRNN) | peephole (peephole LSTM)
    layers: int = 2  # stacked recurrent layers
    units: int = 512  # hidden units per recurrent layer
    embedding_dim: int = 128  # size of the learned word vectors
    dropout: float = 0.5  # on each layer's input and before the output; not recurrent
    # The output layer reuses the embedding matrix. None: the level's default
    # (`Level.tied_by_default`: words tied, characters not), which `train`
    # sets (`for_level`); read before that, None is tied (`tied`).
    tie_embeddings: bool | None = None
    vocab_size: int = 0  # output classes, <pad> and <unk> included; 0: not yet known

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise TextgenError(f"unknown cell {self.cell!r}; use one of {CELLS}")
        for field in ("layers", "units", "embedding_dim"):
            if not 1 <= getattr(self, field) <= LIMITS[field]:
                raise TextgenError(f"{field} must be 1 to {LIMITS[field]:,}")
        if self.vocab_size > LIMITS["vocab_size"]:
            raise TextgenError(f"vocab_size must be at most {LIMITS['vocab_size']:,}")
        if self.vocab_size < 0:
            raise TextgenError("vocab_size must not be negative")
        if not 0 <= self.dropout < 1:
            raise TextgenError("dropout must be in [0, 1)")

    @property
    def tied(self) -> bool:
        """Whether the output layer reuses the embedding matrix (None, not
        yet set for a level: tied, the word level's default)."""
        return self.tie_embeddings is not False

    def for_level(self, level: str) -> ModelConfig:
        """This shape with `tie_embeddings` set: as given, or the level's
        default."""
        if self.tie_embeddings is not None:
            return self
        tied = level_policy(level).tied_by_default
        return dataclasses.replace(self, tie_embeddings=tied)

    @property
    def cell_spec(self) -> CellSpec:
        return CELL_SPECS[self.cell]

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of every weight of the network, by a stable name (the
        model file reader checks a file's weights against these)."""
        vocab, dim, units = self.vocab_size, self.embedding_dim, self.units
        shapes: dict[str, tuple[int, ...]] = {"embedding": (vocab, dim)}
        width = dim
        for i in range(self.layers):
            for name, shape in self.cell_spec.weight_shapes(width, units).items():
                shapes[f"layer{i}.{name}"] = shape
            width = units
        if not self.tied:
            shapes["logits.kernel"] = (units, vocab)
            shapes["logits.bias"] = (vocab,)
        else:
            if units != dim:
                shapes["projection.kernel"] = (units, dim)
            shapes["output_bias"] = (vocab,)
        return shapes

    def parameter_count(self) -> int:
        """Number of weights in the network."""
        return sum(math.prod(shape) for shape in self.weight_shapes().values())

    def largest_matrix(self) -> int:
        """Entries in the network's biggest single weight."""
        return max(math.prod(shape) for shape in self.weight_shapes().values())


NGRAM_MODES = ("mixture", "residual")


@dataclass(frozen=True)
class TrainConfig:
    """How to train; saved in the model's training record."""

    seq_len: int = 32  # words per training window (each trains seq_len predictions)
    epochs: int = 30  # most passes over the training text
    batch_size: int = 0  # windows per gradient step; 0: auto (see `auto_batch_size`)
    learning_rate: float = 5e-3  # Adam step size
    clipnorm: float = 1.0  # clip each gradient's norm to this; 0 turns it off
    val_fraction: float = 0.1  # tail of the corpus held out for validation; 0: none
    max_vocab: int = 20000  # most words in the vocabulary, <pad> and <unk> included
    # Fewer occurrences make a word <unk>, so <unk> gets trained. None: 2, or
    # 1 for pre-tokenized text (`word_min_count`).
    min_count: int | None = None
    lowercase: bool = True  # fold case (output is re-capitalised)
    patience: int = 5  # stop after this many epochs without a better val loss; 0: never
    lr_schedule: str = "plateau"  # plateau | linear: to zero by the end | constant
    lr_patience: int = 2  # plateau: halve the rate after this many such epochs
    average: bool = True  # validate and keep a moving average of the weights
    max_minutes: float = 0  # stop training after this many minutes; 0: no limit
    seed: int | None = None  # fixes initial weights, window order and dropout
    pretrained_embeddings: str | None = None  # GloVe/word2vec text file to start from
    freeze_embeddings: bool = False  # keep the (pretrained) word vectors fixed
    distribute: str = "none"  # none | mirrored (local devices) | multi-worker
    level: str = "word"  # word or char: what one token is (char keeps case)
    documents: str = "files"  # files | lines | paragraphs: what one item is
    # How corpus files are read (`text/records.py`): their format (None: by
    # each file's name), the field holding a record's text (None: "text"),
    # and whether a bad record stops the run (else it is skipped, counted).
    input_format: str | None = None
    text_field: str | None = None
    strict: bool = False
    # The field holding each record's label: a conditional model (each
    # record's label token read before its text; `generate --label`).
    label_field: str | None = None
    # How words are split: "nltk", or "whitespace" for text already
    # tokenized (kept as it is: `<unk>` the unknown word, a line a sentence).
    tokenizer: str = "nltk"
    # Consecutive training windows continue each other and the recurrent states
    # carry from one batch to the next (truncated back-propagation through
    # time); None: on for characters, off for words (see `carries_state`).
    carry_state: bool | None = None
    # The n-gram memory mixed with the network (`model/ngram.py`): its order (None:
    # 3 for words, 7 for characters; 0: none) and the most MB its tables take.
    ngram_order: int | None = None
    ngram_max_mb: float = 64.0
    # How the network uses the memory (`NGRAM_MODES`): "mixture", mixed with
    # it by fitted weights; "residual", trained on top of it (its logits
    # added to the memory's log-probabilities, see `ngram.Residual`). None:
    # residual for characters, mixture for words (what measured better at
    # each level, docs/benchmarks.md; see `residual`).
    ngram_mode: str | None = None

    @property
    def source(self) -> SourceFormat:
        """How the corpus files are read."""
        return SourceFormat(
            self.input_format, self.text_field, self.strict, self.label_field
        )

    @property
    def memory_order(self) -> int:
        """The n-gram memory's order (`ngram_order`, or the level's default)."""
        if self.ngram_order is None:
            return level_policy(self.level).ngram_order
        return self.ngram_order

    @property
    def residual(self) -> bool:
        """Whether the network is trained on top of the memory (`ngram_mode`,
        or the level's default; never without a memory)."""
        mode = self.ngram_mode or level_policy(self.level).ngram_mode
        return mode == "residual" and self.memory_order > 0

    @property
    def word_min_count(self) -> int:
        """The fewest occurrences a word needs for an id (`min_count`); not
        given: 2, or 1 for `--tokenizer whitespace` (such a corpus has chosen
        its words, its rare ones already `<unk>`)."""
        if self.min_count is None:
            return 1 if self.tokenizer == "whitespace" else 2
        return self.min_count

    @property
    def carries_state(self) -> bool:
        """Whether training carries the state across windows (`carry_state`).

        Not given: the level's default (`Level.carries_state_by_default`),
        never under --distribute.
        """
        if self.carry_state is None:
            return (
                level_policy(self.level).carries_state_by_default
                and self.distribute == "none"
            )
        return self.carry_state

    def __post_init__(self) -> None:
        checks = {
            "seq_len": self.seq_len >= 1,
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 0,
            "learning_rate": self.learning_rate > 0,
            "clipnorm": self.clipnorm >= 0,
            "val_fraction": 0 <= self.val_fraction < 0.5,
            "max_vocab": 3 <= self.max_vocab <= LIMITS["vocab_size"],
            "min_count": self.min_count is None or self.min_count >= 1,
            "patience": self.patience >= 0,
            "lr_patience": self.lr_patience >= 0,
            "max_minutes": self.max_minutes >= 0,
            "lr_schedule": self.lr_schedule in LR_SCHEDULES,
            "distribute": self.distribute in DISTRIBUTE,
            "level": self.level in LEVELS,
            "documents": self.documents in DOCUMENTS,
            "input_format": self.input_format is None or self.input_format in FORMATS,
            "tokenizer": self.tokenizer in WORD_TOKENIZERS,
            "ngram_order": self.ngram_order is None
            or 0 <= self.ngram_order <= MAX_ORDER,
            "ngram_max_mb": 0 < self.ngram_max_mb <= 2048,
            "ngram_mode": self.ngram_mode is None or self.ngram_mode in NGRAM_MODES,
        }
        for name, ok in checks.items():
            if not ok:
                value = getattr(self, name)
                raise TextgenError(f"impossible value {value!r} for {name}")
        try:  # (the level's own rule: `text/tokens.py`)
            TokenizerSettings(level=self.level, tokenizer=self.tokenizer)
        except ValueError as err:
            raise TextgenError(
                f"--tokenizer {self.tokenizer} cannot be used with --level "
                f"{self.level}: {err}"
            ) from None
        if self.ngram_mode == "residual" and self.memory_order == 0:
            raise TextgenError(
                "--ngram-mode residual trains the network on top of the n-gram "
                "memory, which --ngram-order 0 leaves out; give an order, or "
                "--ngram-mode mixture"
            )
        if self.carry_state and self.distribute != "none":
            raise TextgenError(
                f"--carry-state cannot be used with --distribute {self.distribute}: "
                "the carried states live on one device; add --no-carry-state"
            )
        if self.distribute == "multi-worker" and self.max_minutes:
            raise TextgenError(
                "--max-minutes cannot be used with --distribute multi-worker: "
                "each worker would stop at a different step; use --epochs"
            )


def auto_batch_size(n_windows: int) -> int:
    """Batch size for `batch_size=0`: the largest power of two from 8 to 64 that
    still gives an epoch at least 20 steps.

    Bigger batches cost little more per step on a CPU (the recurrent loop's
    per-time-step overhead dominates), so they train more words per second;
    small corpora need the smaller batches to get enough updates per epoch.
    """
    size = 8
    while size < 64 and n_windows // (size * 2) >= 20:
        size *= 2
    return size
