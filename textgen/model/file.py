"""Read a textgen `.keras` file without Keras or TensorFlow: its
configuration (JSON) and weights (HDF5, through h5py), as a `ModelFile` that
generation and evaluation use directly.

A model file is untrusted input: it is read with bounded memory, and every
field is checked against limits and against the other fields before anything
is built from it. One `ModelFileError` line says what is wrong.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import ModelFileError
from ..outputs import MODELS_DIR
from ..text.tokens import (
    DOCUMENTS,
    LEVELS,
    WORD_TOKENIZERS,
    TokenizerSettings,
    level_class,
)
from ..text.vocab import PAD, UNK, Vocabulary
from .config import ModelConfig
from .ngram import ASSET as NGRAM_ASSET
from .record import TrainingRecord, typed

REGISTERED_NAME = "textgen>LanguageModel"
WEIGHTS_ENTRY = "model.weights.h5"
MAX_CONFIG_BYTES = 256 * 2**20  # config.json: the vocabulary, record, fingerprint


def model_files(folder: Path = MODELS_DIR) -> list[Path]:
    """The models in `folder`, sorted by name: every `*.keras` file but the
    hidden temporary files of a save in progress (`.NAME.PID.tmp.keras`) and
    the `NAME.last.keras` checkpoints. What `newest_model` and `serve` list."""
    return sorted(
        p
        for p in folder.glob("*.keras")
        if not p.name.startswith(".")
        and not p.name.endswith(".last.keras")
        and p.is_file()
    )


def newest_model(folder: Path = MODELS_DIR) -> Path:
    """The most recently written model in `folder` (see `model_files`): what
    commands use when no model is named.

    Raises:
        ModelFileError: there is none.
    """
    candidates = model_files(folder)
    if not candidates:
        raise ModelFileError(
            f"no model given and none in {folder}/; train one with "
            "`textgen train CORPUS` or pass -m PATH"
        )
    return max(candidates, key=lambda p: p.stat().st_mtime)


def read_config(path: str | Path) -> dict[str, Any]:
    """The checked `config.json` of a textgen model file (Keras's layout:
    the model's own arguments are under "config").

    Raises:
        ModelFileError: missing, not a zip, damaged, foreign, or any field
            out of bounds or in disagreement with another.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(
            f"model not found: {path}; train one with `textgen train CORPUS`"
        )
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder; give a .keras model file")
    if not path.is_file():  # opening a pipe would wait for a writer forever
        raise ModelFileError(
            f"{path} is not a regular file (a pipe, device or socket); give a "
            ".keras model file"
        )
    damaged = f"{path} is damaged or not a Keras model; retrain it with `textgen train`"
    try:
        if not zipfile.is_zipfile(path):
            raise ModelFileError(
                f"{path} is not a .keras model file (not a zip archive); "
                "give a file written by `textgen train`"
            )
        with zipfile.ZipFile(path) as archive:
            _check_members(archive, path)
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise ModelFileError(
                    f"{path}: its config.json claims {info.file_size:,} bytes, "
                    f"more than a model's can hold ({MAX_CONFIG_BYTES:,}); "
                    "it is not a textgen model"
                )
            with archive.open(info) as entry:  # stops at the size it claims
                raw = entry.read(MAX_CONFIG_BYTES + 1)
            weights = archive.getinfo(WEIGHTS_ENTRY).file_size
        outer = json.loads(raw)
    except ModelFileError:
        raise
    # zipfile's ways of saying "damaged" (NotImplementedError: a garbled
    # compression method; RuntimeError: an "encrypted" entry).
    except (
        KeyError,
        ValueError,
        zipfile.BadZipFile,
        OSError,
        EOFError,
        NotImplementedError,
        RuntimeError,
    ):
        raise ModelFileError(damaged) from None
    if not isinstance(outer, dict) or outer.get("registered_name") != REGISTERED_NAME:
        raise ModelFileError(
            f"{path} is a Keras model that textgen did not write; "
            "give a model trained with `textgen train`"
        )
    config = outer.get("config")
    try:
        check_config(config, weights)
    except ModelFileError as err:
        raise ModelFileError(
            f"{path} is damaged or was tampered with ({err}); "
            "retrain it with `textgen train`"
        ) from None
    return outer


# What a model file holds (Keras's layout); anything else is refused before
# it is inflated, and these are read by name only.
MEMBERS = frozenset(
    ["metadata.json", "config.json", WEIGHTS_ENTRY, f"assets/{NGRAM_ASSET}"]
)


def _check_members(archive: zipfile.ZipFile, path: Path) -> None:
    """The archive's members, before any is inflated: known names, once
    each, within a budget of bytes and of compression ratio (a zip bomb
    is refused; `ngram.check_members`, as for the tables inside).

    Raises:
        ModelFileError: naming what is wrong.
    """
    from .ngram import MAX_TABLE_BYTES, check_members

    # The weights are bounded by the shape later (`read_model`); this bounds
    # the whole archive before that shape is known.
    budget = MAX_CONFIG_BYTES + MAX_TABLE_BYTES + 2**34
    try:
        check_members(archive.infolist(), MEMBERS, budget, "entries")
    except ValueError as err:
        raise ModelFileError(
            f"{path} is damaged or was tampered with ({err}); "
            "retrain it with `textgen train`"
        ) from None


def _fail(message: str) -> None:
    raise ModelFileError(message)


def check_config(config: Any, weights_bytes: int | None = None) -> ModelConfig:
    """Check a LanguageModel's arguments (model_config, vocabulary, tokenizer,
    record) against limits and each other.

    Args:
        config: the "config" part of the file's `config.json`.
        weights_bytes: the size of the weights file, which must hold at least
            the 4 bytes per parameter the shape promises (so a tiny file
            cannot make the loader build a huge network).

    Returns:
        The network's shape, checked.

    Raises:
        ModelFileError: naming the first field that is wrong.
    """
    if not isinstance(config, dict):
        _fail("no model arguments")
    shape = typed(ModelConfig, config.get("model_config"), "model_config")
    if weights_bytes is not None and weights_bytes < 4 * shape.parameter_count():
        _fail(
            f"its weights file has {weights_bytes:,} bytes, too few for the "
            f"{shape.parameter_count():,} parameters its shape needs"
        )
    if not isinstance(config.get("frozen_embeddings", False), bool):
        _fail("frozen_embeddings is not true or false")
    tokenizer = config.get("tokenizer") or {}
    if not isinstance(tokenizer, dict) or not set(tokenizer) <= {
        "lowercase",
        "level",
        "documents",
        "tokenizer",
    }:
        _fail("tokenizer settings are not textgen's")
    if tokenizer.get("tokenizer", "nltk") not in WORD_TOKENIZERS:
        _fail(
            f"tokenizer.tokenizer is {tokenizer.get('tokenizer')!r:.40}, not one "
            f"of {', '.join(WORD_TOKENIZERS)}"
        )
    if tokenizer.get("documents", "files") not in DOCUMENTS:
        _fail(
            f"tokenizer.documents is {tokenizer.get('documents')!r:.40}, "
            f"not one of {', '.join(DOCUMENTS)}"
        )
    if not isinstance(tokenizer.get("lowercase", True), bool):
        _fail("tokenizer.lowercase is not true or false")
    level = tokenizer.get("level", "word")
    if level not in LEVELS:
        _fail(f"tokenizer.level is {level!r:.40}, not one of {', '.join(LEVELS)}")
    try:
        TokenizerSettings(**tokenizer)
    except (ValueError, TypeError) as err:
        _fail(f"tokenizer settings: {err}")
    _check_vocabulary(config.get("vocabulary"), shape.vocab_size, level)
    record = config.get("record")
    if record is None:
        record = {}
    if not isinstance(record, dict):
        _fail("the training record is not a mapping")
    if record:
        TrainingRecord.read(record)
    return shape


def _check_vocabulary(vocabulary: Any, size: int, level: str) -> None:
    if not isinstance(vocabulary, dict) or not isinstance(
        vocabulary.get("words"), list
    ):
        _fail("vocabulary has no word list")
    words = vocabulary["words"]
    if len(words) != size:
        _fail(f"the vocabulary has {len(words):,} words, the output layer {size:,}")
    if size < 3 or words[:2] != [PAD, UNK]:
        _fail("the vocabulary must be <pad>, <unk> and at least one word")
    if not all(isinstance(w, str) and w for w in words):
        _fail("a vocabulary word is not a non-empty string")
    if len(set(words)) != len(words):
        _fail("the vocabulary repeats a word")
    tokenizer = level_class(level)
    if not all(tokenizer.holds(w) for w in words[2:]):
        unit = tokenizer.unit[:-1]
        _fail(f"the vocabulary holds an entry that is not a single {unit}")
    counts = vocabulary.get("counts")
    if counts is not None and (
        not isinstance(counts, list)
        or len(counts) != size
        or not all(type(c) is int and c >= 0 for c in counts)
    ):
        _fail("the vocabulary's counts do not match its words")


class ReadableModel(Protocol):
    """What generation and evaluation use of a model: a `ModelFile` (read
    without TensorFlow) or a Keras `LanguageModel` both are one."""

    model_config: ModelConfig
    vocabulary: Vocabulary
    tokenizer_settings: TokenizerSettings
    mixture: Any  # `ngram.Mixture`, `ngram.Residual` or None

    @property
    def record(self) -> dict[str, Any]: ...

    def named_weights(self) -> dict[str, np.ndarray]: ...


@dataclass
class ModelFile:
    """A trained model as read from its file: everything generation and
    evaluation need, as plain Python and NumPy (the same attributes as a
    Keras `LanguageModel`, so either can be used)."""

    path: Path
    model_config: ModelConfig
    vocabulary: Vocabulary
    tokenizer_settings: TokenizerSettings
    record: dict[str, Any]
    weights: dict[str, np.ndarray]  # by `ModelConfig.weight_shapes` name (or none)
    has_optimizer: bool  # a checkpoint (optimizer state kept), not a lean model
    mixture: Any = None  # `ngram.Mixture` or `Residual`: if read and kept
    has_ngram: bool = False  # the file holds one (read or not)

    def named_weights(self) -> dict[str, np.ndarray]:
        return self.weights

    def fingerprint(self) -> Any:
        """The training text's fingerprint (`originality.Fingerprint`), or
        None for a model without one (untrained, or hashed another way)."""
        from .originality import Fingerprint

        saved = self.record.get("fingerprint")
        return Fingerprint.from_config(saved) if saved else None


# How Keras 3 lays out a LanguageModel's weights in model.weights.h5: each
# layer's group has a "vars" subgroup whose "name" attribute is the layer's
# name; a recurrent layer's weights are in its "cell/vars", in the order of
# its `CellSpec.weights`.


def read_model(
    path: str | Path, weights: bool = True, tables: bool | None = None
) -> ModelFile:
    """Read and check a model file written by `textgen train`, without Keras.

    Args:
        path: the `.keras` file.
        weights: also read the weights (what `info` does not need).
        tables: also read the n-gram memory (default: with the weights;
            `info` reads it alone, to describe what the others use).

    Raises:
        ModelFileError: missing, damaged, foreign, or inconsistent (one line).
    """
    path = Path(path)
    outer = read_config(path)
    config = outer["config"]
    shape = typed(ModelConfig, config["model_config"], "model_config")  # checked
    expected = shape.weight_shapes() if weights else {}
    damaged = f"{path} is damaged and cannot be loaded"
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(WEIGHTS_ENTRY)
            # Weights, plus at most the optimizer's moments and average.
            limit = 8 * 4 * shape.parameter_count() + 2**24
            if info.file_size > limit:
                raise ModelFileError(
                    f"its weights file is {info.file_size:,} bytes, far more "
                    "than its shape needs"
                )
            data = b""
            if weights:
                with archive.open(info) as entry:
                    data = entry.read(limit + 1)
            if tables is None:
                tables = weights
            mixture = _read_mixture(archive, shape.vocab_size) if tables else None
            has_ngram = f"assets/{NGRAM_ASSET}" in archive.namelist()
        found, has_optimizer = {}, False
        if weights:
            found, has_optimizer = _read_weights(
                data, config.get("name"), expected, shape.cell_spec.weights
            )
    except ModelFileError as err:
        raise ModelFileError(f"{damaged}: {err}") from None
    # h5py reports a damaged HDF5 file as any of these (RuntimeError included).
    except (
        KeyError,
        ValueError,
        TypeError,
        AttributeError,
        OSError,
        RuntimeError,
        NotImplementedError,
        zipfile.BadZipFile,
        EOFError,
    ):
        raise ModelFileError(f"{damaged}; retrain it with `textgen train`") from None
    missing = sorted(set(expected) - set(found))
    if missing:
        raise ModelFileError(f"{damaged}: it lacks the weights {', '.join(missing)}")
    for name, want in expected.items():
        if found[name].shape != want:
            raise ModelFileError(
                f"{damaged}: {name} is {found[name].shape}, its shape says {want}"
            )
        if not np.isfinite(found[name]).all():
            raise ModelFileError(
                f"{path} has weights that are not numbers (NaN or infinity); "
                "retrain it with `textgen train`"
            )
    return ModelFile(
        path=path,
        model_config=shape,
        vocabulary=Vocabulary.from_config(config["vocabulary"]),
        tokenizer_settings=TokenizerSettings(**(config.get("tokenizer") or {})),
        record=config.get("record") or {},
        weights=found,
        has_optimizer=has_optimizer,
        mixture=mixture,
        has_ngram=has_ngram,
    )


def _read_mixture(archive: zipfile.ZipFile, vocab_size: int) -> Any:
    """The n-gram memory and its mixing weights or residual scales kept
    among the file's assets (`ngram.Mixture` or `ngram.Residual`), or None
    for a model without them."""
    from .ngram import MAX_TABLE_BYTES, memory_from_bytes

    try:
        info = archive.getinfo(f"assets/{NGRAM_ASSET}")
    except KeyError:
        return None
    if info.file_size > MAX_TABLE_BYTES:
        raise ModelFileError(f"its n-gram tables claim {info.file_size:,} bytes")
    with archive.open(info) as entry:
        data = entry.read(info.file_size + 1)
    try:
        return memory_from_bytes(data, vocab_size)
    except ValueError as err:
        raise ModelFileError(
            f"its n-gram tables are damaged or were tampered with ({err})"
        ) from None


def _read_weights(
    data: bytes,
    model_name: Any,
    expected: dict[str, tuple[int, ...]],
    cell_weights: tuple[str, ...],
) -> tuple[dict[str, np.ndarray], bool]:
    """The weights in an HDF5 file's bytes, named as in `expected`, and
    whether it also holds optimizer state."""
    import h5py

    weights: dict[str, np.ndarray] = {}

    def take(group: Any, names: tuple[str, ...], prefix: str) -> None:
        for index, name in enumerate(names):
            key = str(index)
            full = f"{prefix}{name}"
            if key in group and full in expected:
                dataset = group[key]
                if not isinstance(dataset, h5py.Dataset):
                    raise ModelFileError(f"{full} is not an array")
                # Checked before reading: a damaged file can claim any size.
                if dataset.shape != expected[full] or dataset.dtype.kind != "f":
                    raise ModelFileError(
                        f"{full} is {dataset.shape} {dataset.dtype}, its shape says "
                        f"{expected[full]} floats"
                    )
                weights[full] = np.asarray(dataset, dtype=np.float32)

    with h5py.File(io.BytesIO(data), "r") as file:
        has_optimizer = "optimizer" in file and len(file["optimizer"].get("vars", {}))
        if "vars" in file and file["vars"].attrs.get("name") == model_name:
            take(file["vars"], ("output_bias",), "")
        if "embedding" in file:
            take(file["embedding"]["vars"], ("embedding",), "")
        for group in file.get("layers", {}).values():
            name = str(group["vars"].attrs.get("name", ""))
            if name == "projection":
                take(group["vars"], ("kernel",), "projection.")
            elif name == "logits":
                take(group["vars"], ("kernel", "bias"), "logits.")
            elif "_" in name and name.rsplit("_", 1)[1].isdigit() and "cell" in group:
                index = name.rsplit("_", 1)[1]
                take(group["cell"]["vars"], cell_weights, f"layer{index}.")
    return weights, bool(has_optimizer)
