"""`TrainingRecord`: what `train` writes into a model file about how it was
trained, what the model file reader checks (a model file is untrusted input)
and what `info` prints. One typed definition: adding a field is one line here
(its type is its check) plus, for a nested value, its check in `_nested`.
TensorFlow-free."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelFileError, TextgenError
from ..text.records import SourceFormat
from .config import TrainConfig

NUMBER = (int, float)
OPTIONAL_NUMBER = (int, float, type(None))


@dataclass(frozen=True)
class TrainingRecord:
    """How a model was trained. Fields without a default every record has;
    the others were added later (older files lack them)."""

    corpus: list  # per file: {"name": path, "tokens": count}
    tokens: dict  # {"total", "train", "validation"} counts
    epochs_run: int
    best_epoch: int
    best_val_perplexity: float | None  # None: no validation text
    train_perplexity: float | None
    history: list  # one row of numbers per epoch ("epoch", "perplexity", ...)
    train_config: dict  # `TrainConfig` as trained, plus batch_size and xla
    date: str
    textgen_version: str
    fingerprint: dict | None = None  # `originality.Fingerprint` of the text
    items: dict | None = None  # an item model's `novelty.ItemSet`
    runs: list = field(default_factory=list)  # one entry per `train` run
    validation_oov_rate: float | None = None
    pretrained_vectors_coverage: float | None = None
    keras_version: str = ""
    plan: dict | None = None  # the budget planner's choice (`sizing.Plan`)
    # The n-gram memory: order, entries, size, pruning, weights, fit.
    ngram: dict | None = None
    # One entry per `textgen adapt` that swapped the memory for another text's.
    adaptations: list = field(default_factory=list)
    # The model `train --init-from` started from: its file name, fingerprint
    # and vocabulary size.
    init_from: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def read(cls, record: Any) -> TrainingRecord:
        """The record of a model file, every field checked.

        Raises:
            ModelFileError: naming the first field that is missing or wrong.
        """
        if not isinstance(record, dict):
            _fail("the training record is not a mapping")
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in record:
                required = f.default is dataclasses.MISSING and (
                    f.default_factory is dataclasses.MISSING
                )
                if required:
                    _fail(f"the training record lacks {f.name!r}")
                continue
            value = record[f.name]
            if not any(matches(value, kind) for kind in kinds(f.type)):
                _fail(f"record.{f.name} has the wrong type")
            values[f.name] = value
        made = cls(**values)
        _nested(made)
        return made


def kinds(annotation: Any) -> list[str]:
    """The JSON kinds a field's annotation allows ("int", "float | None", ...)."""
    return str(annotation).replace(" ", "").split("|")


def matches(value: Any, kind: str) -> bool:
    """Whether a JSON value is of the kind an annotation names (an int is a
    float; a bool is not an int; floats are finite)."""
    if kind == "None":
        return value is None
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, int) or (
            isinstance(value, float) and math.isfinite(value)
        )
    return {"str": str, "list": list, "dict": dict}.get(kind) is type(value)


def typed(cls: type, values: Any, where: str) -> Any:
    """An instance of the frozen dataclass `cls` from `values`, checking that
    each field has the type its annotation names."""
    if not isinstance(values, dict):
        _fail(f"{where} is not a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    known = {}
    for name, value in values.items():
        if name not in fields:
            continue  # a newer or older textgen's setting: not used here
        allowed = kinds(fields[name].type)
        if not any(matches(value, kind) for kind in allowed):
            _fail(f"{where}.{name} is {value!r:.40}, not {' or '.join(allowed)}")
        known[name] = value
    try:
        return cls(**known)
    except (TextgenError, ValueError, TypeError) as err:
        _fail(f"{where}: {err}")


def is_a(value: Any, types: Any) -> bool:
    """isinstance, where a bool is not a number."""
    types = types if isinstance(types, tuple) else (types,)
    return isinstance(value, types) and not (
        isinstance(value, bool) and bool not in types
    )


def _nested(record: TrainingRecord) -> None:
    """The checks of the values inside the record's fields."""
    for item in record.corpus:
        if not (
            isinstance(item, dict)
            and is_a(item.get("name"), str)
            and is_a(item.get("tokens"), int)
            and item["tokens"] >= 0
        ):
            _fail("record.corpus must list files with a name and a token count")
    if not all(
        is_a(record.tokens.get(k), int) and record.tokens[k] >= 0
        for k in ("total", "train", "validation")
    ):
        _fail("record.tokens must count total, train and validation tokens")
    for row in record.history:
        if not (
            isinstance(row, dict)
            and is_a(row.get("epoch"), int)
            and is_a(row.get("perplexity"), NUMBER)
            and all(is_a(v, NUMBER) for v in row.values())
        ):
            _fail("record.history rows must be numbers per epoch")
    if not all(isinstance(run, dict) for run in record.runs):
        _fail("record.runs must be a list of mappings")
    for adapted in record.adaptations:
        if not (
            isinstance(adapted, dict)
            and is_a(adapted.get("from"), str)
            and is_a(adapted.get("date"), str)
            and isinstance(adapted.get("corpus"), list)
            and all(
                isinstance(f, dict)
                and is_a(f.get("name"), str)
                and is_a(f.get("tokens"), int)
                for f in adapted["corpus"]
            )
        ):
            _fail("record.adaptations must list a source model, date and corpus")
    typed(TrainConfig, record.train_config, "record.train_config")
    if record.fingerprint:
        from .originality import Fingerprint

        Fingerprint.from_config(record.fingerprint)  # bounded; raises if bad
    if record.ngram:
        _check_ngram(record.ngram)
    if record.items:
        from .novelty import ItemSet

        try:
            ItemSet.from_config(record.items)
        except ValueError as err:
            _fail(f"record.items: {err}")


def _check_ngram(ngram: dict[str, Any]) -> None:
    """The record's description of the n-gram memory, as `info` reads it."""
    for name in ("order", "entries", "pruned"):
        if not is_a(ngram.get(name), int) or ngram[name] < 0:
            _fail(f"record.ngram.{name} is not a count")
    counted = ngram.get("counted_tokens")  # absent before it was recorded
    if counted is not None and (not is_a(counted, int) or counted < 0):
        _fail("record.ngram.counted_tokens is not a count")
    if not is_a(ngram.get("megabytes"), NUMBER):
        _fail("record.ngram.megabytes is not a number")
    # A mixture's weights, or a residual model's scales (issue 34).
    name, most = ("scales", 16) if "scales" in ngram else ("weights", 1)
    weights = ngram.get(name)
    if not (
        isinstance(weights, list)
        and 0 < len(weights) <= 64
        and all(is_a(w, NUMBER) and 0 <= w <= most for w in weights)
    ):
        _fail(f"record.ngram.{name} are not {name} between 0 and {most}")
    if ngram.get("mode", "mixture") not in ("mixture", "residual"):
        _fail("record.ngram.mode is neither mixture nor residual")
    for name in ("network_cross_entropy", "ngram_cross_entropy", "mixed_cross_entropy"):
        if name in ngram and not is_a(ngram[name], OPTIONAL_NUMBER):
            _fail(f"record.ngram.{name} is not a number")


def _fail(message: str) -> None:
    raise ModelFileError(message)


def trained_source(model: Any, given: SourceFormat = SourceFormat()) -> SourceFormat:
    """How to read files for `model`: as `given` says (a command's
    options), and what it leaves out as the model's training files were
    read (its record's format, field and label field)."""
    config = (getattr(model, "record", None) or {}).get("train_config") or {}
    return SourceFormat(
        given.format or config.get("input_format"),
        given.field or config.get("text_field"),
        given.strict,
        given.label_field or config.get("label_field"),
    )
