"""Labels that steer generation (`--label-field`): each record's label is a
token the model reads before the record's text."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from textgen.cli import cli
from textgen.errors import CorpusError
from textgen.text.ids import corpus_ids
from textgen.text.records import SourceFormat
from textgen.text.tokens import TokenizerSettings

POOLS = {
    "horror": "dark blood night grave ghost scream fear shadow".split(),
    "comedy": "funny laugh joke clown silly grin party cake".split(),
}


def _titles(path: Path, count: int, seed: int, swap: bool = False) -> Path:
    """Titles whose words come from their genre's pool (`swap`: each row
    labelled with the other genre)."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["genre", "title"])
        for _ in range(count):
            genre = rng.choice(sorted(POOLS))
            words = [rng.choice(POOLS[genre]) for _ in range(rng.randint(2, 5))]
            shown = ({"horror": "comedy", "comedy": "horror"}[genre]) if swap else genre
            writer.writerow([shown, "the " + " ".join(words)])
        writer.writerow(["drama", "the rare one"])  # one record: a row still
    return path


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labels")
    corpus = _titles(folder / "titles.csv", 500, 1)
    model = folder / "titles.keras"
    result = CliRunner().invoke(
        cli,
        ["train", str(corpus), "--field", "title", "--label-field", "genre",
         "--documents", "lines", "-o", str(model), "--epochs", "3", "--units",
         "16", "--layers", "1", "--embedding-dim", "8", "--no-plot",
         "--random-seed", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return folder, corpus, model


def test_each_record_reads_its_label_token_first(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [{"text": "one two", "tag": "a"}, {"text": "three", "tag": 7},
            {"text": "four", "tag": None}, {"text": "five"}]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    warned: list[str] = []
    from textgen.text.records import labelled_records

    found = list(labelled_records(path, SourceFormat(label_field="tag"), warned.append))
    assert found == [("one two", "a"), ("three", "7")]
    assert "line 3: a null label in 'tag'" in warned[0]
    assert "line 4: no label in 'tag'" in warned[0]
    items = corpus_ids(
        [path],
        TokenizerSettings(documents="lines"),
        source=SourceFormat(label_field="tag"),
    ).tokens()
    assert items == ["<end>", "<label:a>", "one", "two", "<end>", "<label:7>",
                     "three", "<end>"]  # fmt: skip
    text = corpus_ids(
        [path], TokenizerSettings(), source=SourceFormat(label_field="tag")
    ).tokens()
    assert text == ["<label:a>", "one", "two", "<p>", "<label:7>", "three"]
    plain = tmp_path / "plain.txt"
    plain.write_text("one two\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="plain text: --label-field reads records"):
        corpus_ids([plain], TokenizerSettings(), source=SourceFormat(label_field="x"))


def test_a_label_steers_what_is_written(labelled):
    _, _, model = labelled
    for genre, pool in POOLS.items():
        result = CliRunner().invoke(
            cli,
            ["generate", "-m", str(model), "--label", genre, "--num-samples", "20",
             "--random-seed", "2", "--format", "jsonl"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        words = [
            w
            for line in result.output.splitlines()
            for w in json.loads(line)["text"].lower().split()
            if w != "the"
        ]
        assert json.loads(result.output.splitlines()[0])["label"] == genre
        mine = sum(w in pool for w in words)
        assert words and mine / len(words) > 0.75, (genre, words)  # chance: 0.5
        assert not any("<label" in w for w in words)


def test_labels_are_listed_checked_and_scored(labelled, tmp_path):
    _, corpus, model = labelled
    info = CliRunner().invoke(cli, ["info", str(model)])
    assert "labels" in info.output and "drama (1)" in info.output  # kept, seen once
    assert "order 3 under each label" in info.output  # the memory reads them too
    unknown = CliRunner().invoke(cli, ["generate", "-m", str(model), "--label", "war"])
    assert unknown.exit_code != 0
    assert "not one of this model's labels (comedy, drama, horror)" in unknown.output
    scored = CliRunner().invoke(cli, ["evaluate", "-m", str(model), str(corpus)])
    assert scored.exit_code == 0, scored.output
    assert "by label" in scored.output and "horror" in scored.output
    # Held-out text given the right label is likelier than given the wrong one.
    from textgen.inference.evaluate import evaluate
    from textgen.model.file import read_model

    read = read_model(model)
    tokens = {"<label:comedy>", "<label:drama>", "<label:horror>"}
    ids = sorted(read.vocabulary.word_to_id[token] for token in tokens)
    assert read.mixture.ngram.labels.tolist() == ids
    right = evaluate(read, [_titles(tmp_path / "right.csv", 100, 9)])
    wrong = evaluate(read, [_titles(tmp_path / "wrong.csv", 100, 9, swap=True)])
    for genre in POOLS:
        assert right.by_label[genre][0] < wrong.by_label[genre][0] - 0.3


def test_the_server_takes_a_label(labelled):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from textgen.model.file import read_model
    from textgen.serving.app import create_app

    _, _, model = labelled
    with TestClient(create_app({"titles": read_model(model)})) as client:
        card = client.get("/v1/models/titles").json()
        assert card["textgen"]["labels"] == ["comedy", "drama", "horror"]
        answer = client.post(
            "/v1/completions",
            json={"prompt": "", "label": "comedy", "n": 10, "max_tokens": 8, "seed": 1},
        ).json()
        words = " ".join(c["text"] for c in answer["choices"]).lower().split()
        words = [w for w in words if w != "the"]
        assert sum(w in POOLS["comedy"] for w in words) / len(words) > 0.75
        refused = client.post("/v1/completions", json={"prompt": "", "label": "war"})
        assert refused.status_code == 400
        assert "not one of this model's labels" in refused.json()["error"]["message"]
        bad = client.post("/v1/completions", json={"prompt": "", "label": 3})
        assert bad.status_code == 400 and "label must be text" in bad.text
