"""A model file is untrusted input: hostile files built here get one clear
line (or escaped output), in bounded memory, never a crash later on."""

import base64
import io
import json
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from textgen.cli import cli
from textgen.errors import ModelFileError
from textgen.model.file import read_config


def _rewritten(source: Path, target: Path, change=None, weights=None) -> Path:
    """A copy of the model file with its config.json (or weights) changed."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "config.json" and change is not None:
                outer = json.loads(data)
                change(outer["config"])
                data = json.dumps(outer).encode()
            if item.filename.endswith(".h5") and weights is not None:
                data = weights(data)
            dst.writestr(item.filename, data, zipfile.ZIP_DEFLATED)
    return target


def _bomb(megabytes: int) -> str:
    """zlib data that inflates to `megabytes` MB of zeros, base64 encoded."""
    packer = zlib.compressobj(9)
    zeros = bytes(2**20)
    packed = b"".join(packer.compress(zeros) for _ in range(megabytes))
    return base64.b64encode(packed + packer.flush()).decode()


def _set(*keys, value):
    def change(config):
        place = config
        for key in keys[:-1]:
            place = place[key]
        place[keys[-1]] = value

    return change


def _drop(*keys):
    def change(config):
        place = config
        for key in keys[:-1]:
            place = place[key]
        del place[keys[-1]]

    return change


def _short_vocabulary(config):
    config["vocabulary"]["words"] = config["vocabulary"]["words"][:-1]
    config["vocabulary"]["counts"] = config["vocabulary"]["counts"][:-1]


HOSTILE = {
    "a zlib bomb as fingerprint": (
        lambda c: c["record"]["fingerprint"].update(bits=_bomb(60)),
        "fingerprint does not hold the bits it claims",
    ),
    "a fingerprint bigger than allowed": (
        lambda c: c["record"]["fingerprint"].update(size=2**40),
        "fingerprint is malformed",
    ),
    "a vocabulary shorter than the output layer": (
        _short_vocabulary,
        "the output layer",
    ),
    "a record missing a key": (_drop("record", "tokens"), "lacks 'tokens'"),
    "a record field of the wrong type": (
        _set("record", "epochs_run", value="many"),
        "record.epochs_run",
    ),
    "impossible saved settings": (
        _set("record", "train_config", "learning_rate", value=-1),
        "train_config",
    ),
    "a shape far bigger than its weights": (
        _set("model_config", "units", value=60000),
        "too few for the",
    ),
    "a shape past every limit": (
        _set("model_config", "layers", value=10**9),
        "model_config: layers must be 1 to 64",
    ),
    "a foreign tokenizer setting": (
        _set("tokenizer", "level", value="byte"),
        "tokenizer.level",
    ),
    "repeated vocabulary words": (
        lambda c: c["vocabulary"]["words"].__setitem__(3, c["vocabulary"]["words"][2]),
        "repeats a word",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_model_files_get_one_line_in_bounded_memory(case, trained, tmp_path):
    change, message = HOSTILE[case]
    path = _rewritten(trained[0], tmp_path / "hostile.keras", change)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=message) as caught:
            read_config(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "\n" not in str(caught.value)
    assert peak < 30 * 2**20, f"{peak / 2**20:.0f} MiB to refuse {case}"
    for args in (["info", path], ["generate", "-m", path, "-v", "-n", "3"]):
        result = CliRunner().invoke(cli, [str(a) for a in args])
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "damaged or was tampered with" in lines[0]


def test_weights_that_are_not_numbers_are_refused(trained, tmp_path):
    import h5py
    import numpy as np

    def poison(data: bytes) -> bytes:
        buffer = io.BytesIO(data)
        with h5py.File(buffer, "r+") as weights:
            names = []
            weights.visititems(
                lambda name, item: (
                    names.append(name) if isinstance(item, h5py.Dataset) else None
                )
            )
            dataset = weights[names[0]]
            dataset[...] = np.full(dataset.shape, np.nan, dataset.dtype)
        return buffer.getvalue()

    path = _rewritten(trained[0], tmp_path / "nan.keras", weights=poison)
    from textgen.model.network import load_model

    with pytest.raises(ModelFileError, match="NaN or infinity"):
        load_model(path)


def test_strings_from_a_model_file_are_escaped_on_the_terminal(trained, tmp_path):
    evil = "\x1b[2J\x1b]0;owned\x07book\u202e.txt"

    def change(config):
        config["record"]["corpus"][0]["name"] = evil
        words = config["vocabulary"]["words"]
        words[words.index("five")] = "\x1b[31m"

    path = _rewritten(trained[0], tmp_path / "escape.keras", change)
    info = CliRunner().invoke(cli, ["info", str(path)])
    assert info.exit_code == 0, info.output
    assert "\x1b" not in info.output and "\x07" not in info.output
    assert "\u202e" not in info.output
    assert "\\x1b[2J\\x1b]0;owned\\x07book\\u202e.txt" in info.output
    generated = CliRunner().invoke(
        cli, ["generate", "-m", str(path), "-s", "three", "-t", "0", "-n", "6"]
    )
    assert generated.exit_code == 0, generated.output
    assert "\x1b" not in generated.output and "\\x1b[31m" in generated.output


def test_damaged_files_and_weights_are_one_line(trained, tmp_path):
    """Bytes of the file overwritten at random (a bad disk, a cut download):
    the zip's checksums catch it, one line. And weights rewritten so that
    h5py itself fails (its RuntimeError, a group where an array should be):
    one line too, and a claimed size is checked before anything is read."""
    import random

    import h5py
    import numpy as np

    from textgen.model.file import read_model

    rng = random.Random(0)
    good = trained[0].read_bytes()
    for trial in range(100):
        raw = bytearray(good)
        for _ in range(rng.randint(1, 20)):
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        path = tmp_path / f"flipped{trial}.keras"
        path.write_bytes(bytes(raw))
        with pytest.raises(ModelFileError) as caught:
            read_model(path)
        assert "\n" not in str(caught.value)

    def group_for_array(data: bytes) -> bytes:
        buffer = io.BytesIO(data)
        with h5py.File(buffer, "r+") as weights:
            del weights["embedding/vars/0"]
            weights.create_group("embedding/vars/0")
        return buffer.getvalue()

    def bigger_array(data: bytes) -> bytes:
        buffer = io.BytesIO(data)
        with h5py.File(buffer, "r+") as weights:
            del weights["embedding/vars/0"]
            weights["embedding/vars/0"] = np.zeros((500, 8), np.float32)
        return buffer.getvalue()

    def truncated_heap(data: bytes) -> bytes:
        return data[: len(data) * 2 // 3]

    for change, message in [
        (group_for_array, "embedding is not an array"),
        (bigger_array, r"embedding is \(500, 8\)"),
        (truncated_heap, "damaged and cannot be loaded"),
    ]:
        path = _rewritten(trained[0], tmp_path / "crafted.keras", weights=change)
        with pytest.raises(ModelFileError, match=message):
            read_model(path)
