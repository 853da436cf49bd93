"""Corpus files that hold records: JSON Lines, CSV and TSV, plain or gzip.

A record file (`.jsonl`, `.csv`, `.tsv`, each optionally `.gz`, or any file
with `--format`) is read as a stream of records, the text of each taken
from one field (`--field`: a JSON key or a column header; "text" unless
said). The records become the text the rest of the pipeline reads
(`source_pieces`): each record an item of its own when the model reads
items (`--documents lines` or `paragraphs`), else one long text, a
paragraph per record. The standard library's `json` and `csv` readers do
the parsing (a record is never hand-split), one line or row at a time, so
memory stays flat whatever the file's size.

A bad record (not JSON, not an object, no such field, a value that is not
text, a row with the wrong number of columns) is skipped and counted;
each file's count is reported with the first few by line number
(`BadRecords`), and `strict` makes the first one an error. Nothing is
dropped without a word.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CorpusError
from .corpus import read_pieces
from .tokens import END, Tokenizer, label_token, normalise_item

FORMATS = ("text", "jsonl", "csv", "tsv")
# What each format's files are called (each may end in .gz too).
SUFFIXES = {
    "text": (".txt",),
    "jsonl": (".jsonl", ".ndjson"),
    "csv": (".csv",),
    "tsv": (".tsv",),
}
DEFAULT_FIELD = "text"
SHOWN_BAD = 5  # bad records named in a file's report
# The most characters one CSV field may hold (csv's own default: 128 KiB).
FIELD_CHARS = 2**31 - 1


@dataclass(frozen=True)
class SourceFormat:
    """How corpus files are read: their `format` (one of `FORMATS`; None:
    by each file's name), the `field` holding a record's text (None:
    "text"), and whether a bad record is an error (`strict`)."""

    format: str | None = None
    field: str | None = None
    strict: bool = False
    label_field: str | None = None  # the field holding each record's label

    def __post_init__(self) -> None:
        if self.format is not None and self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; use one of {FORMATS}")

    def of(self, path: Path) -> str:
        """The format `path` is read in."""
        return self.format or format_of(path)

    @property
    def text_field(self) -> str:
        return self.field or DEFAULT_FIELD

    @property
    def suffixes(self) -> tuple[str, ...]:
        """The names of the files read from a folder (each also `.gz`)."""
        return SUFFIXES[self.format or "text"]


def format_of(path: Path) -> str:
    """A file's format by its name (`.gz` aside): text unless it says."""
    name = path.name.lower()
    name = name[:-3] if name.endswith(".gz") else name
    for kind, suffixes in SUFFIXES.items():
        if name.endswith(suffixes):
            return kind
    return "text"


@dataclass
class BadRecords:
    """A file's skipped records: how many, and the first few, by line."""

    path: Path
    count: int = 0
    shown: list[str] = field(default_factory=list)

    def add(self, line: int, reason: str, strict: bool) -> None:
        where = f"{self.path}, line {line:,}: {reason}"
        if strict:
            raise CorpusError(f"{where} (--strict stops at the first bad record)")
        self.count += 1
        if len(self.shown) < SHOWN_BAD:
            self.shown.append(f"line {line:,}: {reason}")

    def report(self) -> str:
        more = (
            f"; and {self.count - len(self.shown):,} more"
            if self.count > len(self.shown)
            else ""
        )
        return (
            f"{self.path}: skipped {self.count:,} bad record"
            f"{'s' if self.count != 1 else ''} ({'; '.join(self.shown)}{more}); "
            "fix them, or --strict to stop at the first"
        )


def records(
    path: Path, source: SourceFormat, warn: Callable[[str], None] | None = None
) -> Iterator[str]:
    """The text of each good record of a record file, in order (see
    `labelled_records`)."""
    for text, _ in labelled_records(path, source, warn):
        yield text


def labelled_records(
    path: Path, source: SourceFormat, warn: Callable[[str], None] | None = None
) -> Iterator[tuple[str, str | None]]:
    """The text and label (None without `source.label_field`) of each good
    record of a record file, in order; bad ones are counted and reported
    through `warn` when the file ends (to stderr without one).

    Raises:
        CorpusError: the file cannot be read, the field is not in it (the
            available ones listed), no record has text, or (`strict`) a
            record is bad.
    """
    kind = source.of(path)
    bad = BadRecords(path)
    read = _json_records if kind == "jsonl" else _table_records
    found = 0
    for text, label in read(path, source, bad, "\t" if kind == "tsv" else ","):
        found += bool(text.strip())
        yield text, label
    if bad.count:
        (warn or _to_stderr)(bad.report())
    if not found:
        raise CorpusError(
            f"{path} has no record with text in field {source.text_field!r}"
            + (f" ({bad.count:,} bad)" if bad.count else "")
        )


def _to_stderr(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def _lines(path: Path) -> Iterator[str]:
    """A file's lines, each with its line end, as read piece by piece."""
    held = ""
    for piece in read_pieces(path):
        held += piece
        *whole, held = held.split("\n")
        for line in whole:
            yield line + "\n"
    if held:
        yield held


def _json_records(
    path: Path, source: SourceFormat, bad: BadRecords, _: str
) -> Iterator[tuple[str, str | None]]:
    name, checked, labelled = source.text_field, False, source.label_field
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as err:
            reason = str(err).split(":")[0] if str(err) else type(err).__name__
            bad.add(number, f"not valid JSON ({reason})", source.strict)
            continue
        if not isinstance(record, dict):
            bad.add(number, f"a JSON {_kind(record)}, not an object", source.strict)
            continue
        for wanted, option in ((name, "--field"), (labelled, "--label-field")):
            if not checked and wanted is not None and wanted not in record:
                keys = ", ".join(repr(k) for k in list(record)[:20]) or "none"
                raise CorpusError(
                    f"{path}: the first record has no field {wanted!r} (its "
                    f"fields: {keys}); name the field with {option}"
                )
        checked = True
        value = record.get(name)
        if not isinstance(value, str):
            reason = "no field" if name not in record else f"a {_kind(value)} in"
            bad.add(number, f"{reason} {name!r}", source.strict)
            continue
        label = None
        if labelled is not None:
            label = _label(record.get(labelled))
            if label is None:
                shown = (
                    "no" if labelled not in record else f"a {_kind(record[labelled])}"
                )
                bad.add(number, f"{shown} label in {labelled!r}", source.strict)
                continue
        yield value, label


def _table_records(
    path: Path, source: SourceFormat, bad: BadRecords, delimiter: str
) -> Iterator[tuple[str, str | None]]:
    csv.field_size_limit(FIELD_CHARS)  # a corpus field may be a whole book
    rows = csv.reader(_lines(path), delimiter=delimiter)
    try:
        header = next(rows, None)
        if header is None:
            raise CorpusError(f"{path} is empty; give a file with a header row")
        name = source.text_field
        if name not in header:
            columns = ", ".join(repr(c) for c in header[:20])
            raise CorpusError(
                f"{path} has no column {name!r} (its columns: {columns}); name "
                "the text's column with --field"
            )
        column = header.index(name)
        labelled = source.label_field
        if labelled is not None and labelled not in header:
            columns = ", ".join(repr(c) for c in header[:20])
            raise CorpusError(
                f"{path} has no column {labelled!r} (its columns: {columns}); name "
                "the labels' column with --label-field"
            )
        at = None if labelled is None else header.index(labelled)
        for row in rows:
            if not row:
                continue
            if len(row) != len(header):
                bad.add(
                    rows.line_num,
                    f"{len(row)} columns, the header has {len(header)}",
                    source.strict,
                )
                continue
            label = None if at is None else _label(row[at])
            if at is not None and label is None:
                bad.add(rows.line_num, f"an empty label in {labelled!r}", source.strict)
                continue
            yield row[column], label
    except csv.Error as err:
        raise CorpusError(f"{path}, line {rows.line_num:,}: {err}") from None


def _label(value: object) -> str | None:
    """A record's label: text or a whole number, one line, not empty."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    label = " ".join(str(value).split())
    return label or None


def _kind(value: object) -> str:
    return {
        dict: "object",
        list: "list",
        str: "string",
        bool: "true/false",
        type(None): "null",
    }.get(type(value), "number")


_blank_lines = re.compile(r"\n[ \t]*\n\s*")


def record_pieces(texts: Iterable[str], documents: str) -> Iterator[str]:
    """Records' texts as the text the tokenizer reads: each record an item
    of its own (`documents` "lines": its line breaks spaces, one record a
    line; "paragraphs": its blank lines single breaks, one a paragraph), or
    with "files" one text, a paragraph per record."""
    for text in texts:
        if not text.strip():
            continue
        if documents == "lines":
            yield " ".join(text.split()) + "\n"
        elif documents == "paragraphs":
            yield _blank_lines.sub("\n", text.strip()) + "\n\n"
        else:
            yield text.strip() + "\n\n"


def labelled_blocks(
    path: Path,
    source: SourceFormat,
    tokenizer: Tokenizer,
    warn: Callable[[str], None] | None = None,
) -> Iterator[list[str]]:
    """A labelled record file's tokens, block by block: each record's label
    token before its text. Items (`--documents lines|paragraphs`): `END`,
    then label, text, `END` for each record; one text: each record's label
    and text, a paragraph end between records."""
    documents = tokenizer.settings.documents
    items = tokenizer.settings.items
    block: list[str] = [END] if items else []
    first = True
    for text, label in labelled_records(path, source, warn):
        for piece in record_pieces([text], documents):
            words = tokenizer.tokenize(normalise_item(piece) if items else piece)
            if not words:
                continue
            if not items and not first:
                block.append(tokenizer.paragraph_end)
            block += [label_token(label), *words]
            if items:
                block.append(END)
            first = False
        if len(block) >= 4096:
            yield block
            block = []
    if block and block != [END]:
        yield block


def source_pieces(
    path: Path,
    source: SourceFormat,
    documents: str,
    warn: Callable[[str], None] | None = None,
) -> Iterator[str]:
    """A corpus file's text in pieces, whatever its format (see the module)."""
    if source.of(path) == "text":
        return read_pieces(path)
    return record_pieces(records(path, source, warn), documents)
