"""Corpus files as people hold them: JSON Lines and CSV/TSV records (by
field name), gzip-compressed files, bad records counted and reported."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from textgen.cli import cli
from textgen.errors import CorpusError
from textgen.text.corpus import corpus_files, read_pieces
from textgen.text.ids import corpus_ids
from textgen.text.records import SourceFormat, format_of, records, source_pieces
from textgen.text.tokens import TokenizerSettings

ITEMS = TokenizerSettings(documents="lines")


def _csv(path: Path, rows: list[list[str]], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out, delimiter=delimiter).writerows(rows)
    return path


def test_csv_fields_may_hold_commas_quotes_and_line_breaks(tmp_path):
    path = _csv(
        tmp_path / "titles.csv",
        [
            ["genre", "title"],
            ["horror", "The house, at night"],
            ["comedy", 'A "funny" day\nand its evening'],
            ["horror", "Café  Über"],
        ],
    )
    texts = list(records(path, SourceFormat(field="title")))
    assert texts == [
        "The house, at night",
        'A "funny" day\nand its evening',
        "Café  Über",
    ]
    # Each record one item (its line break a space), as `--documents lines`.
    text = corpus_ids([path], ITEMS, source=SourceFormat(field="title"))
    tokens = text.tokens()
    assert tokens.count("<end>") == 4  # one before each item, one after each
    assert tokens[tokens.index("a") : tokens.index("evening") + 1] == [
        "a", "``", "funny", "''", "day", "and", "its", "evening",
    ]  # fmt: skip


def test_tsv_and_a_format_given_for_any_name(tmp_path):
    path = _csv(tmp_path / "rows.data", [["id", "text"], ["1", "one two"]], "\t")
    assert format_of(path) == "text"
    assert list(records(path, SourceFormat("tsv"))) == ["one two"]


def test_jsonl_with_unicode_and_bad_lines_is_reported_by_line(tmp_path):
    path = tmp_path / "posts.jsonl"
    lines = [
        json.dumps({"body": "Ünïcode ☃ text", "n": 1}),
        "{not json",
        json.dumps({"body": 5}),
        "",
        json.dumps(["a", "list"]),
        json.dumps({"other": "x"}),
        json.dumps({"body": "the last one"}, ensure_ascii=False),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    warned: list[str] = []
    found = list(records(path, SourceFormat(field="body"), warned.append))
    assert found == ["Ünïcode ☃ text", "the last one"]
    (report,) = warned
    assert "skipped 4 bad records" in report
    for line in ("line 2: not valid JSON", "line 3: a number in 'body'",
                 "line 5: a JSON list", "line 6: no field 'body'"):  # fmt: skip
        assert line in report
    with pytest.raises(CorpusError, match=r"line 2: not valid JSON.*--strict"):
        list(records(path, SourceFormat(field="body", strict=True)))


def test_a_missing_field_names_the_ones_there(tmp_path):
    table = _csv(tmp_path / "t.csv", [["genre", "title"], ["a", "b"]])
    with pytest.raises(CorpusError, match=r"no column 'text' .*'genre', 'title'"):
        list(records(table, SourceFormat()))
    lines = tmp_path / "t.jsonl"
    lines.write_text(json.dumps({"body": "x", "tag": "y"}) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"no field 'text' .*'body', 'tag'.*--field"):
        list(records(lines, SourceFormat()))
    empty_field = tmp_path / "e.jsonl"
    empty_field.write_text(json.dumps({"text": ""}) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="no record with text"):
        list(source_pieces(empty_field, SourceFormat(), "lines"))


def test_bad_rows_of_a_table_are_counted(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,text\n1,x\n2\n3,y,z\n4,w\n", encoding="utf-8")
    warned: list[str] = []
    assert list(records(path, SourceFormat(), warned.append)) == ["x", "w"]
    assert "skipped 2 bad records" in warned[0]
    assert "line 3: 1 columns, the header has 2" in warned[0]


def test_records_as_one_text_are_paragraphs(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in ["One two.", "Three."]),
        encoding="utf-8",
    )
    files = corpus_ids([path], TokenizerSettings()).tokens()
    assert files == ["one", "two", ".", "<p>", "three", "."]


def test_gzip_files_read_as_their_text(tmp_path):
    text = "One two three.\n\nFour five, six.\n" * 50
    plain = tmp_path / "a.txt"
    plain.write_text(text, encoding="utf-8")
    packed = tmp_path / "folder" / "b.txt.gz"
    packed.parent.mkdir()
    packed.write_bytes(gzip.compress(text.encode()))
    assert "".join(read_pieces(packed)) == text
    assert corpus_files([packed.parent]) == [packed]  # a folder's .txt.gz files
    settings = TokenizerSettings()
    assert corpus_ids([packed], settings).tokens() == (
        corpus_ids([plain], settings).tokens()
    )
    records_gz = tmp_path / "r.jsonl.gz"
    records_gz.write_bytes(gzip.compress(b'{"text": "hello there"}\n'))
    assert list(records(records_gz, SourceFormat())) == ["hello there"]
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(packed.read_bytes()[:-20])
    with pytest.raises(CorpusError, match="not a whole gzip file"):
        "".join(read_pieces(cut))


def test_train_and_evaluate_read_a_csv_by_its_column(tmp_path):
    rows = [["genre", "title"]] + [
        [g, f"the {w} of the {g} house"]
        for g in ("horror", "comedy")
        for w in ("night", "day", "door", "cat", "lamp", "road")
    ] * 4
    path = _csv(tmp_path / "titles.csv", [*rows, ["short row"]])
    model = tmp_path / "titles.keras"
    result = CliRunner().invoke(
        cli,
        ["train", str(path), "--field", "title", "--documents", "lines", "-o",
         str(model), "--epochs", "1", "--units", "8", "--layers", "1",
         "--embedding-dim", "4", "--no-plot", "--random-seed", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "skipped 1 bad record" in result.output
    # The model remembers the column: evaluate needs no --field.
    scored = CliRunner().invoke(cli, ["evaluate", "-m", str(model), str(path)])
    assert scored.exit_code == 0, scored.output
    assert "items scored   48" in scored.output
    wrong = CliRunner().invoke(
        cli, ["evaluate", "-m", str(model), str(path), "--field", "genre"]
    )
    assert wrong.exit_code == 0  # another column is just other text
    strict = CliRunner().invoke(
        cli, ["evaluate", "-m", str(model), str(path), "--strict"]
    )
    assert strict.exit_code != 0 and "--strict" in strict.output
    # adapt reads it as the model was trained too (or by the column given).
    from textgen.model.file import read_model

    trained_tokens = read_model(model).record["tokens"]["total"]
    counted = {}
    for name, more in (("title", []), ("genre", ["--field", "genre"])):
        out = tmp_path / f"adapted-{name}.keras"
        adapted = CliRunner().invoke(
            cli, ["adapt", str(model), str(path), "-o", str(out), *more]
        )
        assert adapted.exit_code == 0, adapted.output
        counted[name] = read_model(out).record["ngram"]["counted_tokens"]
    assert counted["title"] == trained_tokens
    assert counted["genre"] < trained_tokens / 3  # one word per record, and its end
