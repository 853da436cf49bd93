"""Items: a corpus of one thing per line (or paragraph), each ending with the
end token; one item per sample; --novel never hands back a training item;
evaluation item by item."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_names

from textgen.cli import cli
from textgen.model.novelty import ItemSet, item_hash
from textgen.text.tokens import (
    END,
    TokenizerSettings,
    item_texts,
    tokenize,
    tokenize_pieces,
)


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_lines_and_paragraphs_become_items_whatever_the_pieces():
    text = "  Joanna  Smith \n\nbob\r\n\tAl  \nThe end.\n\n\nNext one\nhere.\n"
    text = text.replace("\r\n", "\n")  # as `read_pieces` gives it
    whole = list(item_texts([text], "lines"))
    assert whole == ["Joanna Smith", "bob", "Al", "The end.", "Next one", "here."]
    for cut in range(len(text)):
        assert list(item_texts([text[:cut], text[cut:]], "lines")) == whole
    assert list(item_texts([text], "paragraphs")) == [
        "Joanna Smith",
        "bob\nAl\nThe end.",
        "Next one\nhere.",
    ]
    settings = TokenizerSettings(level="char", lowercase=False, documents="lines")
    tokens = [t for block in tokenize_pieces([text], settings) for t in block]
    assert tokens[:14] == [END, *"Joanna Smith", END]
    assert tokens.count(END) == len(whole) + 1  # one before the first item too
    words = TokenizerSettings(level="word", documents="lines")
    tokens = [
        t for block in tokenize_pieces(["The Cat sat.\nA dog!\n"], words) for t in block
    ]
    assert tokens == [END, "the", "cat", "sat", ".", END, "a", "dog", "!", END]


def test_item_set_holds_exactly_its_items_in_a_few_bytes_each():
    items = [["j", "o"], ["a", "l"], ["j", "o", "e"]]
    known = ItemSet.of(items)
    assert ["j", "o"] in known and ["j", "o", "e"] in known
    assert ["j"] not in known and ["o", "j"] not in known and [] not in known
    assert ["jo"] not in known  # the tokens, not their concatenation
    config = json.loads(json.dumps(known.to_config()))
    again = ItemSet.from_config(config)
    np.testing.assert_array_equal(again.hashes, known.hashes)
    big = ItemSet.of([str(i)] for i in range(10_000))
    assert len(json.dumps(big.to_config())) / len(big) <= 16
    assert item_hash(["a", "b"]) != item_hash(["ab"])


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(hash="md5"), "hashed another way"),
        (dict(items="not base64!"), "not base64"),
        (dict(count=7), "do not match their count"),
        (dict(items=None), "not base64"),
    ],
)
def test_a_damaged_item_set_is_refused(change, message):
    config = ItemSet.of([["a"], ["b"]]).to_config() | change
    with pytest.raises(ValueError, match=message):
        ItemSet.from_config(config)


def test_an_unsorted_item_set_is_refused():
    import base64

    data = np.array([5, 3], dtype="<u8").tobytes()
    config = {
        "hash": "blake2b-64",
        "count": 2,
        "items": base64.b64encode(data).decode(),
    }
    with pytest.raises(ValueError, match="not a sorted set"):
        ItemSet.from_config(config)


def test_the_model_records_its_items_and_info_says_so(name_model, names_file):
    path, model = name_model
    assert model.tokenizer_settings.documents == "lines"
    assert END in model.vocabulary.word_to_id
    record = model.record
    assert record["items"]["count"] == 300
    assert record["train_config"]["documents"] == "lines"
    assert ["b", "a", "b", "a"] not in ItemSet.from_config(record["items"]) or (
        "baba" in names_file.read_text()
    )
    assert list(make_names(300)[0]) in ItemSet.from_config(record["items"])
    result = _run("info", path)
    assert result.exit_code == 0, result.output
    assert (
        "lines (each line an item); 300 training items held for --novel"
        in result.output
    )


def test_each_sample_is_one_item(name_model):
    from textgen.inference.generate import Generator

    generator = Generator(name_model[1])
    samples = generator.sample([""] * 40, [_sampling()] * 40, length=30, random_seed=1)
    ended = [s for s in samples if s.stopped_by == "end"]
    assert len(ended) >= 30  # a trained model ends its items
    for sample in samples:
        assert "\n" not in sample.text and END not in sample.text
    # The seed is the start of an item.
    for sample in generator.sample(
        ["ba"] * 5, [_sampling()] * 5, length=30, random_seed=2
    ):
        assert sample.text.startswith("ba")


def _sampling(**settings):
    from textgen.inference.contract import SamplingSettings

    return SamplingSettings(**settings)


def test_novel_draws_again_until_the_item_is_new(name_model):
    """Make every item the model draws without --novel a "training item",
    then draw again with the same seed: none of them comes back."""
    from textgen.inference.generate import Generator

    generator = Generator(name_model[1])
    seeds, samplings = [""] * 30, [_sampling(temperature=0.5)] * 30
    plain = generator.sample(seeds, samplings, length=30, random_seed=5)
    generator.items = ItemSet.of(list(s.words) for s in plain)
    novel = generator.sample(seeds, samplings, length=30, random_seed=5, novel=True)
    assert sum(s.rejected for s in novel) >= 30  # every first draw was rejected
    for sample in novel:
        assert sample.training_item is False
        assert list(sample.words) not in generator.items
    # Without --novel, the same draws come back as before.
    again = generator.sample(seeds, samplings, length=30, random_seed=5)
    assert [s.text for s in again] == [s.text for s in plain]


def test_novel_end_to_end_never_returns_a_training_item(name_model, names_file):
    training = set(names_file.read_text().split())
    result = _run(
        "generate", "-m", name_model[0], "--num-samples", 200, "-t", 0.3,
        "--random-seed", 1, "--format", "jsonl",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    assert len(records) == 200
    assert not [r["text"] for r in records if r["text"] in training]
    assert all(r["training_item"] is False for r in records)
    plain = _run(
        "generate", "-m", name_model[0], "--num-samples", 200, "-t", 0.3,
        "--random-seed", 1, "--no-novel",
    )  # fmt: skip
    lines = plain.output.splitlines()
    assert len(lines) == 200 and not any(line.startswith("---") for line in lines)
    copies = sum(line in training for line in lines)
    assert copies > 0  # at this temperature the model does repeat its list
    rejected = sum(r["rejected_draws"] for r in records)
    assert rejected >= copies


def test_novel_needs_an_item_model(trained):
    result = _run("generate", "-m", trained[0], "--novel")
    assert result.exit_code == 2
    assert "'--novel': needs a model trained with --documents lines" in result.output


def test_evaluate_scores_each_item_from_a_fresh_start(name_model, tmp_path):
    from textgen.inference.evaluate import evaluate
    from textgen.model.scoring import score_ids

    path, model = name_model
    test = tmp_path / "test.txt"
    test.write_text("bade\nkolu\n\n  mipa  \n", encoding="utf-8")
    result = evaluate(model, [test], ngram=False)  # the network alone
    assert (result.items, result.tokens) == (3, 15)  # 4 letters and an end each
    assert result.characters == 15
    # Each item alone, from the start a sample starts from, scores the same.
    end = model.vocabulary.word_to_id[END]
    total = sum(
        score_ids(model, np.array([*model.vocabulary.encode(list(name)), end])).sum()
        for name in ("bade", "kolu", "mipa")
    )
    assert result.cross_entropy * result.tokens == pytest.approx(total, rel=1e-5)
    assert result.bits_per_character == pytest.approx(total / 15 / math.log(2))
    mixed = evaluate(model, [test])
    assert mixed.network_cross_entropy == pytest.approx(result.cross_entropy)
    shown = _run("evaluate", "-m", path, test)
    assert "items scored   3" in shown.output
    assert f"{mixed.bits_per_character:.4f} bits per character" in shown.output
    assert f"{result.bits_per_character:.4f} bits per character" in shown.output


@pytest.mark.slow
def test_word_items_through_the_command_line(tmp_path):
    sentences = [
        f"the {a} {b} the {c}." for a in ("cat", "dog", "cow") for b in ("saw", "had")
        for c in ("hat", "mat", "rat", "bat")
    ]  # fmt: skip
    corpus = tmp_path / "sentences.txt"
    corpus.write_text("\n".join(sentences * 4) + "\n", encoding="utf-8")
    out = tmp_path / "s.keras"
    result = _run(
        "train", corpus, "-o", out, "--documents", "lines", "--units", 16,
        "--embedding-dim", 8, "--epochs", 30, "--seq-len", 8, "--random-seed", 1,
        "--learning-rate", 0.02, "--dropout", 0, "--no-plot",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = _run("generate", "-m", out, "--num-samples", 5, "--random-seed", 2)
    lines = shown.output.splitlines()
    assert len(lines) == 5 and all(line.endswith(".") for line in lines), lines
    # A resumed model keeps the setting, and refuses another.
    refused = _run(
        "train", corpus, "--resume", out, "--epochs", 31, "--documents", "files"
    )
    assert refused.exit_code != 0
    assert (
        "trained with --documents lines, which a resumed model keeps" in refused.output
    )
    resumed = _run("train", corpus, "--resume", out, "--epochs", 31, "--no-plot")
    assert resumed.exit_code == 0, resumed.output
    from textgen.model.file import read_model

    again = read_model(out, weights=False)
    assert again.tokenizer_settings.documents == "lines"
    assert again.record["items"]["count"] == len(set(sentences))


def test_a_tampered_item_set_is_a_damaged_model(name_model, tmp_path):
    import zipfile

    from textgen.errors import ModelFileError
    from textgen.model.file import read_model

    path = tmp_path / "bad.keras"
    with zipfile.ZipFile(name_model[0]) as source, zipfile.ZipFile(path, "w") as out:
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename == "config.json":
                config = json.loads(data)
                config["config"]["record"]["items"]["count"] = 3
                data = json.dumps(config).encode()
            out.writestr(entry, data)
    with pytest.raises(ModelFileError, match=r"record\.items: the training items"):
        read_model(path)


@pytest.mark.parametrize(
    "options",
    [
        ["--beam", 3],
        ["-t", "0.5,1.0", "--num-samples", 2],
        ["--stop", "a"],
        ["--format", "jsonl", "--seed", "ka"],
    ],
    ids=["beam", "temperature list", "stop", "jsonl"],
)
def test_other_generate_options_work_on_item_models(name_model, options):
    result = _run("generate", "-m", name_model[0], "--random-seed", 4, *options)
    assert result.exit_code == 0, result.output
    text = result.output
    assert END not in text and text.strip()
    if "--stop" in options:
        assert "a" not in text.strip()
    if "-t" in options:
        assert text.count("--- temperature") == 4
    if "--format" in options:
        assert json.loads(text)["text"].startswith("ka")


def test_interactive_on_an_item_model(name_model):
    result = CliRunner().invoke(
        cli,
        ["generate", "-m", str(name_model[0]), "-i", "--random-seed", 1],
        input="ko\nba\n",
    )
    assert result.exit_code == 0, result.output
    answers = [line[2:] for line in result.output.splitlines() if line.startswith("> ")]
    assert [a[:2] for a in answers[:2]] == ["ko", "ba"]  # each an item from its seed
    assert all(len(a) > 2 and a.isalpha() for a in answers[:2]), answers


def test_a_files_model_has_no_items(trained):
    from textgen.text.tokens import TokenizerSettings as Settings

    path, model = trained
    assert model.tokenizer_settings.documents == "files"
    assert model.record["items"] is None
    assert END not in model.vocabulary.word_to_id
    text = "The cat sat.\nA dog ran.\n\nThe end.\n"
    blocks = list(tokenize_pieces([text], Settings()))
    flat = [t for block in blocks for t in block]
    assert flat == tokenize(text, Settings()) and END not in flat
    assert flat.count("<p>") == 1  # lines are not items: one paragraph break
    assert "files (each file one text)" in _run("info", path).output


def test_an_item_is_never_empty(name_model):
    """With no seed, the end token cannot come first: every sample is an item
    with at least one character, even when the end is the likeliest token."""
    from textgen.inference.contract import SamplingSettings
    from textgen.inference.generate import Generator

    generator = Generator(name_model[1])
    end = generator.vocabulary.word_to_id[END]
    real_read = generator._read_seeds

    def end_first(*args, **kwargs):
        logits, states, history = real_read(*args, **kwargs)
        logits = logits.copy()
        logits[:, end] = 1e4  # the model "wants" an empty item
        return logits, states, history

    generator._read_seeds = end_first
    samples = generator.sample(
        [""] * 50, [SamplingSettings(temperature=1.0)] * 50, length=20, random_seed=5
    )
    assert all(sample.text and sample.words for sample in samples)
    (greedy,) = generator.sample([""], [SamplingSettings(temperature=0)], length=20)
    assert greedy.text
