"""The n-gram memory inside a trained model: it travels in the `.keras` file
(read by Keras and by the TensorFlow-free reader alike), its weights are
fitted, every command uses the mixture, a damaged memory is one line, and a
model without one still works as the network alone."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import PATTERN_TEXT

from textgen.cli import cli
from textgen.errors import ModelFileError
from textgen.inference.contract import SamplingSettings
from textgen.inference.generate import Generator
from textgen.model.file import read_model
from textgen.model.ngram import BUCKETS, NgramModel, fit_weights, write_arrays
from textgen.text.tokens import tokenizer_for

ASSET = "assets/ngram.npz"


def _rewritten(source: Path, target: Path, change) -> Path:
    """A copy of a model file with `change(name, data)` applied to each entry
    (returning None drops the entry)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = change(info.filename, old.read(info))
            if data is not None:
                new.writestr(info.filename, data)
    return target


def _with_arrays(source: Path, target: Path, **changes) -> Path:
    """A copy whose n-gram arrays have `changes` (None removes one)."""
    with zipfile.ZipFile(source) as archive:
        arrays = dict(np.load(io.BytesIO(archive.read(ASSET))))
    for name, value in changes.items():
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value
    path = target.with_suffix(".npz")
    write_arrays(str(path), arrays)
    data = path.read_bytes()
    return _rewritten(source, target, lambda n, d: data if n == ASSET else d)


def _without_memory(source: Path, target: Path) -> Path:
    """A copy as a model trained before the memory existed: no asset, no
    record of it, no n-gram settings."""

    def change(name: str, data: bytes) -> bytes | None:
        if name == ASSET:
            return None
        if name == "config.json":
            outer = json.loads(data)
            record = outer["config"]["record"]
            record.pop("ngram")
            for key in ("ngram_order", "ngram_max_mb"):
                record["train_config"].pop(key)
            return json.dumps(outer).encode()
        return data

    return _rewritten(source, target, change)


def test_the_memory_travels_in_the_file(trained):
    import keras

    path, _ = trained
    with zipfile.ZipFile(path) as archive:
        assert ASSET in archive.namelist()
    free = read_model(path)
    loaded = keras.saving.load_model(path)
    assert free.has_ngram and free.mixture.ngram.order == 3
    for a, b in zip(free.mixture.ngram.keys, loaded.mixture.ngram.keys, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(free.mixture.weights, loaded.mixture.weights)
    record = free.record["ngram"]
    assert record["order"] == 3 and record["entries"] == free.mixture.ngram.entries
    assert record["pruned"] == 0 and len(record["weights"]) == BUCKETS
    assert record["weights"] == [round(w, 4) for w in free.mixture.weights.tolist()]


def test_fitted_weights_are_no_worse_than_either_part(trained):
    record = read_model(trained[0], weights=False).record["ngram"]
    assert record["fitted_on_tokens"] > 0
    best_part = min(record["network_cross_entropy"], record["ngram_cross_entropy"])
    # (each part keeps at least 0.1% of the weight: at most 0.001 nats lost)
    assert record["mixed_cross_entropy"] <= best_part + 1e-3
    # Whatever the parts: no bucket is left worse than either part alone.
    rng = np.random.default_rng(0)
    network, counting = rng.random(500), rng.random(500) ** 3
    buckets = rng.integers(0, BUCKETS, 500)
    weights = fit_weights(network, counting, buckets)
    for bucket in range(BUCKETS):
        inside = buckets == bucket
        mixed = (
            weights[bucket] * network[inside] + (1 - weights[bucket]) * counting[inside]
        )
        loss = -np.log(mixed).sum()
        slack = 1e-3 * inside.sum()  # the 0.1% each part keeps
        assert loss <= -np.log(network[inside]).sum() + slack
        assert loss <= -np.log(counting[inside]).sum() + slack


def test_mixed_distributions_sum_to_one_at_every_order(trained):
    mixture = read_model(trained[0]).mixture
    rng = np.random.default_rng(1)
    vocab = mixture.ngram.vocab_size
    for width in range(mixture.ngram.order):
        contexts = rng.integers(0, vocab + 1, size=(40, width))
        probs, _ = mixture.ngram.distributions(contexts)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    history = rng.integers(0, vocab, size=(40, 9))
    logits = rng.normal(size=(40, vocab)).astype(np.float32) * 3
    contexts = mixture.contexts(history, pad=0, start=None)
    mixed = np.exp(mixture.logits(logits, contexts).astype(np.float64))
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-6)


HOSTILE = {
    "unsorted keys": lambda a: {"keys3": a["keys3"][::-1].copy()},
    "a zero count": lambda a: {"counts2": np.zeros_like(a["counts2"])},
    "a discount above 1": lambda a: {"discounts": np.array([0.5, 2.0, 0.5])},
    "weights not numbers": lambda a: {"weights": np.full(BUCKETS, np.nan)},
    "a missing table": lambda a: {"counts3": None},
    "an order too long": lambda a: {f"keys{k}": a["keys3"] for k in range(4, 13)},
    "a unigram of the wrong size": lambda a: {"unigram": a["unigram"][:-1]},
    "text instead of numbers": lambda a: {"pruned": np.array(["x"])},
    "objects": lambda a: {"pruned": np.array([{"a": 1}], dtype=object)},
    # Round three (issue 33): values that pass a check made before the
    # conversion to int64, and a discount of 0.
    "unsigned unsorted keys": lambda a: {
        "keys2": a["keys2"][::-1].astype(np.uint64) + np.uint64(2**63)
    },
    "unsigned counts of 2**64 - 1": lambda a: {
        "counts2": np.full(len(a["counts2"]), 2**64 - 1, dtype=np.uint64)
    },
    "counts whose totals overflow": lambda a: {
        "counts3": np.full(len(a["counts3"]), 2**62, dtype=np.int64)
    },
    "a discount of 0": lambda a: {"discounts": np.array([0.5, 0.0, 0.5])},
    "an unknown array": lambda a: {"junk": np.zeros(10)},
}


@pytest.mark.parametrize("damage", sorted(HOSTILE))
def test_a_damaged_memory_is_one_line(damage, trained, tmp_path):
    with zipfile.ZipFile(trained[0]) as archive:
        arrays = dict(np.load(io.BytesIO(archive.read(ASSET))))
    path = tmp_path / "bad.keras"
    if damage == "objects":  # np.savez would pickle it: write the bytes by hand
        buffer = io.BytesIO()
        np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        raw = io.BytesIO()
        with zipfile.ZipFile(raw, "w") as npz:
            for name, value in arrays.items():
                if name != "pruned":
                    item = io.BytesIO()
                    np.save(item, value)
                    npz.writestr(name + ".npy", item.getvalue())
            npz.writestr("pruned.npy", buffer.getvalue())
        data = raw.getvalue()
        _rewritten(trained[0], path, lambda n, d: data if n == ASSET else d)
    else:
        _with_arrays(trained[0], path, **HOSTILE[damage](arrays))
    with pytest.raises(
        ModelFileError, match="n-gram tables are damaged or were tampered"
    ):
        read_model(path)
    result = CliRunner().invoke(cli, ["generate", "-m", str(path), "-n", "3"])
    assert result.exit_code == 1, result.output
    assert "tampered" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_memory_that_claims_too_much_is_refused_before_reading(trained, tmp_path):
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as npz:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<i8", "fortran_order": False, "shape": (10**12,)}
        )
        npz.writestr("unigram.npy", b"\x93NUMPY" + header.getvalue()[6:])
    data = raw.getvalue()
    path = _rewritten(
        trained[0], tmp_path / "big.keras", lambda n, d: data if n == ASSET else d
    )
    with pytest.raises(ModelFileError, match="tampered"):
        read_model(path)


def test_a_model_without_a_memory_is_the_network_alone(trained, tmp_path):
    old = _without_memory(trained[0], tmp_path / "old.keras")
    model = read_model(old)
    assert model.mixture is None and not model.has_ngram
    info = CliRunner().invoke(cli, ["info", str(old)])
    assert info.exit_code == 0 and "n-gram memory" in info.output
    assert "none (the network alone" in info.output
    pattern = tmp_path / "p.txt"
    pattern.write_text("one two three, four five. six seven eight nine!\n" * 3)
    scored = CliRunner().invoke(cli, ["evaluate", "-m", str(old), str(pattern)])
    assert scored.exit_code == 0 and "no n-gram memory" in scored.output
    # --no-ngram on the full model gives exactly what the old file gives.
    sampling = [SamplingSettings(temperature=1.0)] * 3
    alone = Generator(read_model(trained[0]), ngram=False).sample(
        ["one", "", "five"], sampling, length=12, random_seed=3
    )
    plain = Generator(model).sample(
        ["one", "", "five"], sampling, length=12, random_seed=3
    )
    assert [s.text for s in alone] == [s.text for s in plain]
    with_memory = Generator(read_model(trained[0])).sample(
        ["one", "", "five"], sampling, length=12, random_seed=3
    )
    assert all(s.text for s in with_memory)


def test_evaluate_shows_each_part_and_the_mixture(trained, tmp_path):
    from textgen.inference.evaluate import evaluate

    pattern = tmp_path / "p.txt"
    pattern.write_text("one two three, four five. six seven eight nine!\n\n" * 5)
    model = read_model(trained[0])
    result = evaluate(model, [pattern])
    alone = evaluate(model, [pattern], ngram=False)
    assert result.network_cross_entropy == pytest.approx(alone.cross_entropy, abs=1e-9)
    assert result.ngram_cross_entropy is not None
    shown = CliRunner().invoke(cli, ["evaluate", "-m", str(trained[0]), str(pattern)])
    assert shown.exit_code == 0, shown.output
    assert "network and n-gram memory mixed" in shown.output
    assert f"{np.exp(result.network_cross_entropy):.2f}" in shown.output
    assert f"{np.exp(result.ngram_cross_entropy):.2f}" in shown.output


OPTIONS = [
    ["-t", "0"], ["-t", "1.5", "--top-k", "3"], ["--top-p", "0.5"],
    ["--min-p", "0.2"], ["--repetition-penalty", "1.5"], ["--no-repeat-ngram", "2"],
    ["--beam", "3"], ["--stop", "five"], ["--until", "sentence"],
    ["--num-samples", "3", "-t", "0.5,1"], ["--no-ngram"],
]  # fmt: skip


@pytest.mark.parametrize("options", OPTIONS, ids=" ".join)
def test_every_generate_option_works_with_the_mixture(options, trained):
    result = CliRunner().invoke(
        cli,
        ["generate", "-m", str(trained[0]), "-s", "one two", "-n", "12",
         "--random-seed", "1", *options],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.strip() and "Traceback" not in result.output


def test_item_models_mix_from_the_item_start_and_stay_novel(name_model):
    model = read_model(name_model[0])
    assert model.mixture is not None and model.mixture.ngram.order == 7
    result = CliRunner().invoke(
        cli, ["generate", "-m", str(name_model[0]), "--num-samples", "20", "--novel",
              "--random-seed", "2", "-v"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    names = result.stdout.strip().splitlines()
    assert len(names) == 20 and all(names)
    # An item's start token, and what is before it, read as the text's start.
    from textgen.text.tokens import END

    end = model.vocabulary.word_to_id[END]
    history = np.array([[0, 0, end, 5, 6]])
    contexts = model.mixture.contexts(history, pad=0, start=end)
    start = model.mixture.ngram.start
    assert contexts.tolist() == [[start] * 4 + [5, 6]]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--ngram-order", "11"], "--ngram-order"),
        (["--ngram-max-mb", "0"], "--ngram-max-mb"),
    ],
)
def test_impossible_ngram_options_are_usage_errors(
    options, message, pattern_file, tmp_path
):
    result = CliRunner().invoke(
        cli, ["train", str(pattern_file), "-o", str(tmp_path / "m.keras"), *options]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "m.keras").exists()


def test_counting_is_linear_numpy_on_a_long_text():
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 5000, size=2_000_000)
    model = NgramModel.count([ids], 5000, 3, max_bytes=8 * 2**20)
    assert model.nbytes <= 8 * 2**20 and model.pruned > 0 and model.order >= 2


def test_many_rows_mix_as_each_row_alone(trained):
    """Many rows are mixed in float32 from the factored n-gram distributions;
    one row densely in float64: the same log-probabilities, for contexts seen
    at every order and for unseen ones."""
    model = read_model(trained[0])
    mixture = model.mixture
    ids = model.vocabulary.encode(
        tokenizer_for(model.tokenizer_settings).tokenize(PATTERN_TEXT)
    )
    rng = np.random.default_rng(2)
    cuts = rng.integers(0, len(ids) - 9, size=48)
    history = np.concatenate(
        [np.stack([ids[c : c + 9] for c in cuts]),
         rng.integers(0, len(model.vocabulary), size=(16, 9))]
    )  # fmt: skip
    logits = rng.normal(size=(len(history), len(model.vocabulary))).astype(np.float32)
    contexts = mixture.contexts(history, pad=0, start=None)
    logits *= 4
    together = mixture.logits(logits, contexts)
    alone = [mixture.logits(logits[i : i + 1], contexts[i : i + 1]) for i in range(64)]
    np.testing.assert_allclose(together, np.concatenate(alone), atol=2e-5)


def _npz(members: dict[str, bytes], deflate: bool = True) -> bytes:
    raw = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(raw, "w", method) as npz:
        for name, data in members.items():
            npz.writestr(name, data)
    return raw.getvalue()


def _npy_bytes(value: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, value)
    return buffer.getvalue()


def test_a_zip_bomb_in_the_tables_is_refused_before_it_is_inflated(
    trained, tmp_path, monkeypatch
):
    with zipfile.ZipFile(trained[0]) as archive:
        arrays = dict(np.load(io.BytesIO(archive.read(ASSET))))
    members = {f"{k}.npy": _npy_bytes(v) for k, v in arrays.items()}
    inflated = []
    real_open = zipfile.ZipFile.open

    def watched(self, name, *args, **kwargs):
        inflated.append(getattr(name, "filename", name))
        return real_open(self, name, *args, **kwargs)

    zeros = _npy_bytes(np.zeros(3 * 2**20, dtype=np.int64))  # 24 MiB of zeros
    for name, extra in {
        "an extra member": {"junk.npy": zeros},
        "a table of zeros": {"keys2.npy": zeros},
    }.items():
        data = _npz({**members, **extra})
        path = _rewritten(
            trained[0],
            tmp_path / "bomb.keras",
            lambda n, d, data=data: data if n == ASSET else d,
        )
        inflated.clear()
        monkeypatch.setattr(zipfile.ZipFile, "open", watched)
        with pytest.raises(ModelFileError, match="tampered") as refused:
            read_model(path)
        monkeypatch.undo()
        assert "junk" in str(refused.value) or "zip bomb" in str(refused.value), name
        assert not [n for n in inflated if n.endswith(".npy")], name


def test_the_model_file_itself_holds_only_its_own_entries(trained, tmp_path):
    extra = tmp_path / "extra.keras"
    _rewritten(trained[0], extra, lambda n, d: d)
    with zipfile.ZipFile(extra, "a") as archive:
        archive.writestr("assets/junk.bin", b"x" * 100)
    with pytest.raises(ModelFileError, match=r"junk\.bin"):
        read_model(extra)
    bomb = tmp_path / "bomb.keras"
    weights = "model.weights.h5"
    with zipfile.ZipFile(trained[0]) as old, zipfile.ZipFile(bomb, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename == weights:  # padded with 24 MiB of zeros, deflated
                new.writestr(weights, data + bytes(24 * 2**20), zipfile.ZIP_DEFLATED)
            else:
                new.writestr(info, data)
    with pytest.raises(ModelFileError, match="zip bomb"):
        read_model(bomb)


def test_a_damaged_array_header_is_one_plain_line(trained, tmp_path):
    with zipfile.ZipFile(trained[0]) as archive:
        arrays = dict(np.load(io.BytesIO(archive.read(ASSET))))
    members = {f"{k}.npy": _npy_bytes(v) for k, v in arrays.items()}
    good = members["pruned.npy"]
    header = b"{'descr': f(), 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (118 - len(header)) + b"\n"
    members["pruned.npy"] = good[:8] + len(header).to_bytes(2, "little") + header
    members["pruned.npy"] += good[-8:]
    data = _npz(members)
    path = _rewritten(
        trained[0], tmp_path / "bad.keras", lambda n, d: data if n == ASSET else d
    )
    with pytest.raises(ModelFileError, match="header is damaged") as refused:
        read_model(path)
    assert "ast" not in str(refused.value) and "0x" not in str(refused.value)


def _with_record(source: Path, target: Path, change) -> Path:
    """A copy whose training record has `change(record)` applied."""

    def rewrite(name: str, data: bytes) -> bytes:
        if name != "config.json":
            return data
        outer = json.loads(data)
        change(outer["config"]["record"])
        return json.dumps(outer).encode()

    return _rewritten(source, target, rewrite)


def _info(path: Path) -> str:
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "unexpected" not in result.output and "Traceback" not in result.output
    return next(
        line for line in result.output.splitlines() if line.startswith("n-gram")
    )


def test_info_shows_records_the_checker_accepts(trained, tmp_path):
    path = tmp_path / "m.keras"
    changes = {
        "a fit figure alone": lambda r: r["ngram"].pop("network_cross_entropy"),
        "null fit figures": lambda r: r["ngram"].update(
            mixed_cross_entropy=None, network_cross_entropy=None
        ),
        "huge figures": lambda r: (
            r.update(best_val_perplexity=1e300)
            or r["ngram"].update(megabytes=1e300, mixed_cross_entropy=1e300)
        ),
        "a negative size": lambda r: r["ngram"].update(megabytes=-5),
    }
    truth = read_model(trained[0]).mixture.ngram
    for name, change in changes.items():
        _with_record(trained[0], path, change)
        result = CliRunner().invoke(cli, ["info", str(path)])
        assert result.exit_code == 0, (name, result.output)
        assert "unexpected" not in result.output, name
        assert max(len(w) for w in result.output.split()) < 60, name
        row = _info(path)
        assert f"{truth.nbytes / 1e6:.1f} MB" in row and "-5" not in row, name


def test_info_describes_the_tables_not_the_record(trained, tmp_path):
    truth = read_model(trained[0]).mixture.ngram
    no_record = _with_record(trained[0], tmp_path / "a.keras", lambda r: r.pop("ngram"))
    assert f"order {truth.order}," in _info(no_record)
    other_order = _with_record(
        trained[0], tmp_path / "b.keras", lambda r: r["ngram"].update(order=5)
    )
    assert f"order {truth.order}," in _info(other_order)
    no_tables = _rewritten(
        trained[0], tmp_path / "c.keras", lambda n, d: None if n == ASSET else d
    )
    assert _info(no_tables).split()[2] == "none"


def test_a_memory_cap_too_small_quotes_the_corpus_vocabulary(pattern_file, tmp_path):
    result = CliRunner().invoke(
        cli,
        ["train", str(pattern_file), "-o", str(tmp_path / "m.keras"),
         "--ngram-max-mb", "0.0001"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    words = int(re.search(r"this corpus's ([\d,]+) words", result.output)[1])
    assert 3 <= words < 100  # the corpus's own, not --max-vocab's 20,000
    assert "20,000" not in result.output
    assert not (tmp_path / "m.keras").exists()


@pytest.mark.slow
def test_resuming_a_model_with_damaged_tables_is_one_plain_line(
    trained, pattern_file, tmp_path
):
    with zipfile.ZipFile(trained[0]) as archive:
        arrays = dict(np.load(io.BytesIO(archive.read(ASSET))))
    path = _with_arrays(
        trained[0], tmp_path / "bad.keras", keys2=arrays["keys2"][::-1].copy()
    )
    result = CliRunner().invoke(
        cli, ["train", "--resume", str(path), str(pattern_file), "--epochs", "1"]
    )
    assert result.exit_code == 1, result.output
    (line,) = result.output.strip().splitlines()
    assert "keys are not sorted" in line and "<" not in line, line


def _chain_text(rng, words: list[str], lines: int, step: int) -> str:
    """Lines of 8 words where each word follows the one before by `step`
    places in `words` (or, a time in four, by a random one)."""
    out = []
    for _ in range(lines):
        at = int(rng.integers(len(words)))
        line = []
        for _ in range(8):
            line.append(words[at])
            jump = step if rng.random() < 0.75 else int(rng.integers(len(words)))
            at = (at + jump) % len(words)
        out.append(" ".join(line) + " .")
    return "\n".join(out) + "\n"


def test_the_saved_memory_counts_the_validation_text_too(tiny_config, tmp_path):
    """The validation tail (here a new way of going on that the held-out
    text continues) is in the memory the file keeps: the model's memory is
    Kneser-Ney over all of the training text, and the model does not lose
    to it on held-out text."""
    import dataclasses

    from ngram import KneserNey

    from textgen.inference.evaluate import evaluate
    from textgen.text.ids import corpus_ids
    from textgen.training.train import train

    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(24)]
    corpus = tmp_path / "corpus.txt"
    # The first nine tenths step by 1; the validation tenth and the held-out
    # text step by 5.
    corpus.write_text(
        _chain_text(rng, words, 180, 1) + _chain_text(rng, words, 20, 5),
        encoding="utf-8",
    )
    held_out = tmp_path / "held_out.txt"
    held_out.write_text(_chain_text(rng, words, 40, 5), encoding="utf-8")
    model_config, config = tiny_config
    config = dataclasses.replace(config, epochs=4, ngram_order=3)
    path = tmp_path / "model.keras"
    model = train([corpus], path, model_config, config, log=lambda line: None)

    free = read_model(path)
    settings = free.tokenizer_settings
    ids = corpus_ids([corpus], settings).encode(free.vocabulary)
    assert free.record["ngram"]["counted_tokens"] == len(ids)
    n_train = model.record["tokens"]["train"]
    assert 0 < n_train < len(ids)
    everything = NgramModel.count([ids], len(free.vocabulary), 3)
    for ours, theirs in zip(free.mixture.ngram.keys, everything.keys, strict=True):
        np.testing.assert_array_equal(ours, theirs)

    test_ids = corpus_ids([held_out], settings).encode(free.vocabulary)
    reference = KneserNey(ids.tolist(), len(free.vocabulary), 3)
    kneser_ney = reference.cross_entropy(test_ids.tolist())
    first_nine_tenths = KneserNey(ids[:n_train].tolist(), len(free.vocabulary), 3)
    scores = evaluate(free, [held_out])
    assert scores.ngram_cross_entropy == pytest.approx(kneser_ney, rel=1e-6)
    # The validation tenth matters here: without it, counting does worse.
    assert first_nine_tenths.cross_entropy(test_ids.tolist()) > kneser_ney + 0.1
    # The mixture's weights are fitted on 180 validation tokens, and the
    # network keeps at least 0.1% of every row: within 1% of counting alone
    # (it was 32% worse when the memory did not count the validation tenth).
    assert scores.cross_entropy <= kneser_ney * 1.01


def test_one_row_and_many_rows_get_the_same_numbers():
    """A served batch and a request alone: each row's distribution and mixed
    logits are the same bit for bit whatever rows are beside it (one row is
    looked up with scalars, many with arrays)."""
    from textgen.model.ngram import Grams, Mixture

    rng = np.random.default_rng(3)
    vocab, order = 40, 4
    ids = np.empty(3000, dtype=np.int64)
    ids[0] = 2
    for i in range(1, len(ids)):  # a chain that favours a few successors
        ids[i] = (ids[i - 1] * 7 + rng.integers(1, 4)) % (vocab - 2) + 2
    ids[rng.random(len(ids)) < 0.2] = rng.integers(2, vocab, size=1)
    memory = Grams.of([(ids, 0, len(ids))], vocab, order).model()
    seen = ids[np.arange(50)[:, None] + np.arange(order - 1)]  # contexts in the text
    unseen = rng.integers(0, vocab + 1, size=(30, order - 1))
    starts = np.full((5, order - 1), memory.start)  # the start of a text
    contexts = np.concatenate([seen, unseen, starts])
    mixture = Mixture(memory, rng.random(BUCKETS))
    network = rng.normal(size=(len(contexts), vocab)).astype(np.float32) * 3
    probs, buckets = memory.distributions(contexts)
    mixed = mixture.logits(network, contexts)
    for row in range(len(contexts)):
        alone, bucket = memory.distributions(contexts[row : row + 1])
        np.testing.assert_array_equal(alone[0], probs[row])
        assert bucket[0] == buckets[row]
        one = mixture.logits(network[row : row + 1], contexts[row : row + 1])
        np.testing.assert_array_equal(one[0], mixed[row])
    # And the numbers are Kneser-Ney's: each target's row entry is what
    # `token_probabilities` gives it alone.
    targets = rng.integers(0, vocab, size=len(contexts))
    p, _ = memory.token_probabilities(contexts, targets)
    np.testing.assert_allclose(probs[np.arange(len(contexts)), targets], p, rtol=1e-12)
