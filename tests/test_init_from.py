"""Fine-tuning from a model you have (`train --init-from`): its network,
its vocabulary grown by the new text's words, the memory counted anew."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from textgen.cli import cli
from textgen.text.vocab import Vocabulary

BASE = "the cat sat on a mat and the dog ran to the house".split()
NEW = "the cat sat on a mat and the zebra ran to the kiosk with a yak".split()


def test_a_vocabulary_grows_after_its_own_words():
    base = Vocabulary.build("a b b c c c".split())
    other = Vocabulary.build("c d d d e e b".split())
    grown = base.grown(other, most=10)
    assert grown.words[: len(base)] == base.words  # every known word keeps its id
    assert grown.words[len(base) :] == ["d", "e"]  # new ones, most frequent first
    assert base.grown(other, most=len(base) + 1).words[-1] == "d"  # within `most`


@pytest.fixture(scope="module")
def based(tmp_path_factory):
    folder = tmp_path_factory.mktemp("init-from")
    rng = random.Random(5)
    (folder / "a.txt").write_text(" ".join(rng.choice(BASE) for _ in range(3000)))
    (folder / "b.txt").write_text(" ".join(rng.choice(NEW) for _ in range(3000)))
    common = ["--epochs", "2", "--no-plot", "--random-seed", "1"]
    base = CliRunner().invoke(
        cli,
        ["train", str(folder / "a.txt"), "-o", str(folder / "a.keras"), "--units",
         "16", "--layers", "1", "--embedding-dim", "8", *common],
    )  # fmt: skip
    assert base.exit_code == 0, base.output
    tuned = CliRunner().invoke(
        cli,
        ["train", str(folder / "b.txt"), "--init-from", str(folder / "a.keras"),
         "-o", str(folder / "b.keras"), *common],
    )  # fmt: skip
    assert tuned.exit_code == 0, tuned.output
    return folder, tuned.output


def test_a_model_started_from_another_grows_its_vocabulary(based):
    from textgen.model.file import read_model

    folder, output = based
    base, tuned = read_model(folder / "a.keras"), read_model(folder / "b.keras")
    assert "started from" in output and "new" in output
    assert tuned.model_config.units == base.model_config.units == 16
    known = len(base.vocabulary)
    assert tuned.vocabulary.words[:known] == base.vocabulary.words
    assert {"zebra", "kiosk", "yak"} <= set(tuned.vocabulary.words[known:])
    origin = tuned.record["init_from"]
    assert origin["name"] == "a.keras" and origin["vocabulary"] == known
    assert origin["fingerprint"] == base.record["fingerprint"]
    # The memory is the new text's: it knows the new words' contexts.
    assert tuned.record["ngram"]["counted_tokens"] == 3000
    info = CliRunner().invoke(cli, ["info", str(folder / "b.keras")])
    assert "started from" in info.output and "a.keras" in info.output
    # It writes the new words.
    out = CliRunner().invoke(
        cli,
        ["generate", "-m", str(folder / "b.keras"), "-n", "40", "--num-samples",
         "5", "--random-seed", "2", "--format", "jsonl"],
    )  # fmt: skip
    written = " ".join(json.loads(line)["text"] for line in out.output.splitlines())
    assert {"zebra", "kiosk", "yak"} & set(written.lower().split())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--units", "32"], "--units: a model started from --init-from keeps"),
        (["--level", "char"], "--level: a model started from --init-from keeps"),
        (["--resume", "{base}"], "not both"),
    ],
)
def test_what_a_based_model_keeps_cannot_be_changed(based, extra, message):
    folder, _ = based
    extra = [e.replace("{base}", str(folder / "a.keras")) for e in extra]
    result = CliRunner().invoke(
        cli,
        ["train", str(folder / "b.txt"), "--init-from", str(folder / "a.keras"),
         "-o", str(folder / "c.keras"), *extra],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (folder / "c.keras").exists()


def test_a_missing_or_foreign_base_is_one_line(tmp_path):
    corpus = tmp_path / "b.txt"
    corpus.write_text("one two three " * 50)
    for base in (tmp_path / "nope.keras", corpus):
        result = CliRunner().invoke(
            cli, ["train", str(corpus), "--init-from", str(base), "-o",
                  str(tmp_path / "c.keras")],
        )  # fmt: skip
        assert result.exit_code != 0
        assert "Traceback" not in result.output and "--init-from" in result.output
