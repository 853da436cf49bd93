"""`textgen adapt` (issue 34): a model's network with the n-gram memory of
another text, counted in the model's vocabulary and refitted on that text;
the source model untouched, refusals in one line."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import PATTERN, STORY

import textgen
from textgen.cli import cli
from textgen.inference.evaluate import evaluate
from textgen.model.counting import CountedText
from textgen.model.file import WEIGHTS_ENTRY, read_model
from textgen.model.ngram import Mixture, NgramModel, Residual

# The pattern's words in the opposite order: the same vocabulary, every
# successor different from the one the network learned.
BACKWARDS = "nine eight seven six five four three two one.\n\n"


@pytest.fixture(scope="module")
def backwards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(text to adapt to, held-out text of the same kind)."""
    folder = tmp_path_factory.mktemp("backwards")
    (folder / "adapt.txt").write_text(BACKWARDS * 40, encoding="utf-8")
    (folder / "test.txt").write_text(BACKWARDS * 8, encoding="utf-8")
    return folder / "adapt.txt", folder / "test.txt"


@pytest.fixture(scope="module")
def adapted(trained, backwards, tmp_path_factory):
    """(path, lines): the pattern model adapted to the backwards text."""
    path = tmp_path_factory.mktemp("adapted") / "backwards.keras"
    lines: list[str] = []
    textgen.adapt(trained[0], [backwards[0]], path, log=lines.append)
    return path, lines


def test_the_adapted_model_predicts_the_new_text(trained, backwards, adapted):
    before = evaluate(read_model(trained[0]), [backwards[1]]).cross_entropy
    after = evaluate(read_model(adapted[0]), [backwards[1]]).cross_entropy
    assert after < 0.5 * before
    # And the text it came from less well than before (its memory is gone).
    pattern = backwards[1].parent / "pattern_test.txt"
    pattern.write_text(PATTERN * 8, encoding="utf-8")
    old = evaluate(read_model(trained[0]), [pattern]).cross_entropy
    assert evaluate(read_model(adapted[0]), [pattern]).cross_entropy > old


def test_the_memory_is_counted_over_the_new_text(trained, backwards, adapted):
    model = read_model(adapted[0])
    source = read_model(trained[0])
    assert isinstance(model.mixture, Mixture)
    ngram = model.mixture.ngram
    from textgen.text.ids import corpus_ids

    text = corpus_ids([backwards[0]], model.tokenizer_settings)
    encoded = text.encode(model.vocabulary).astype(np.int64)
    expected = NgramModel.count(
        [encoded], len(model.vocabulary), source.mixture.ngram.order
    )
    assert ngram.order == source.mixture.ngram.order
    assert ngram.entries == expected.entries
    np.testing.assert_array_equal(ngram.unigram, expected.unigram)
    record = model.record
    assert record["ngram"]["counted_tokens"] == len(encoded)
    assert record["ngram"]["weights"] == [
        round(w, 4) for w in model.mixture.weights.tolist()
    ]
    # The network keeps little of the mixture where it is wrong now.
    assert min(model.mixture.weights) < 0.5
    [entry] = record["adaptations"]
    assert entry["from"] == trained[0].name
    assert entry["corpus"] == [{"name": str(backwards[0]), "tokens": len(encoded)}]
    # Training's record is kept; the new text joins the fingerprint.
    assert record["epochs_run"] == source.record["epochs_run"]
    assert record["fingerprint"] != source.record["fingerprint"]
    assert any("counted" in line for line in adapted[1])


def test_the_network_and_the_source_file_are_untouched(trained, adapted):
    before = trained[0].read_bytes()
    with zipfile.ZipFile(trained[0]) as a, zipfile.ZipFile(adapted[0]) as b:
        assert a.read(WEIGHTS_ENTRY) == b.read(WEIGHTS_ENTRY)
        assert sorted(a.namelist()) == sorted(b.namelist())
    assert trained[0].read_bytes() == before
    info = CliRunner().invoke(cli, ["info", str(adapted[0])])
    assert info.exit_code == 0, info.output
    [row] = [line for line in info.output.splitlines() if line.startswith("adapted")]
    assert f"from {trained[0].name} to" in row and "adapt.txt" in row


def test_a_residual_model_gets_its_scales_refitted(residual, tmp_path):
    corpus = tmp_path / "story.txt"
    # The same words, each sentence's order changed.
    corpus.write_text(" ".join(reversed(STORY.split())) * 20, encoding="utf-8")
    out = tmp_path / "out.keras"
    result = CliRunner().invoke(
        cli, ["adapt", str(residual[0]), str(corpus), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "saved" in result.output
    model = read_model(out)
    assert isinstance(model.mixture, Residual)
    assert model.record["ngram"]["mode"] == "residual"
    assert model.record["ngram"]["scales"] == [
        round(s, 4) for s in model.mixture.scales.tolist()
    ]
    source = read_model(residual[0])
    assert not np.array_equal(model.mixture.ngram.unigram, source.mixture.ngram.unigram)


def test_refusals_are_one_line_and_write_nothing(trained, backwards, tmp_path):
    runner = CliRunner()
    model, corpus = str(trained[0]), str(backwards[0])
    existing = tmp_path / "there.keras"
    existing.write_bytes(b"keep me")
    short = tmp_path / "short.txt"
    short.write_text("one two three", encoding="utf-8")
    cases = {
        "already exists": [model, corpus, "-o", str(existing)],
        "is an input": [model, corpus, "-o", model],
        "corpus not found": [model, str(tmp_path / "nothing.txt"), "-o", "x.keras"],
        "model not found": [str(tmp_path / "none.keras"), corpus, "-o", "y.keras"],
        "at least 20": [model, str(short), "-o", str(tmp_path / "z.keras")],
    }
    for expected, args in cases.items():
        result = runner.invoke(cli, ["adapt", *args])
        assert result.exit_code != 0, (expected, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (expected, result.output)
    assert existing.read_bytes() == b"keep me"
    assert not (tmp_path / "z.keras").exists()
    forced = runner.invoke(
        cli, ["adapt", model, corpus, "-o", str(existing), "--force"]
    )
    assert forced.exit_code == 0, forced.output
    assert read_model(existing).record["adaptations"]


def test_a_model_without_a_memory_is_refused(pattern_file, tiny_config, tmp_path):
    from textgen.training.train import train

    model_config, config = tiny_config
    path = tmp_path / "bare.keras"
    train(
        [pattern_file],
        path,
        model_config,
        dataclasses.replace(config, epochs=1, ngram_order=0),
        log=lambda line: None,
    )
    result = CliRunner().invoke(
        cli, ["adapt", str(path), str(pattern_file), "-o", str(tmp_path / "a.keras")]
    )
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.endswith(
        f"{path} has no n-gram memory to swap (it was trained with "
        "--ngram-order 0); adapt a model trained with one"
    )


def test_counted_text_cuts_files_and_holds_out_halves():
    ids = np.array([2, 3, 4, 2, 3, 4, 5, 2, 3, 4], dtype=np.int64)
    counted = CountedText.of(ids, [4, 6], vocab_size=6, order=2)
    assert counted.starts.tolist() == [0, 4] and counted.ends.tolist() == [4, 10]
    grams = counted.grams(0, 10)
    # Ten tokens, each counted once with its context in its own file.
    assert int(grams.counts.sum()) == 10
    memory, held_out = counted.all_and_held_out(4, 2**20)
    assert [(first, end) for _, first, end in held_out] == [(0, 2), (2, 4)]
    # Each held-out memory is all the text less its half.
    for part, (first, end) in zip(held_out, [(6, 8), (8, 10)], strict=True):
        less = counted.grams(0, 10).without(counted.grams(first, end)).model(2**20)
        assert part[0].entries == less.entries
    assert memory.entries == grams.model(2**20).entries
