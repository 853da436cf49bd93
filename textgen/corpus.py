"""Read corpus files and folders into text documents.

Accepts UTF-8 (with or without BOM) and UTF-16 with BOM, normalises CRLF and CR
line ends, and refuses anything else with one message naming the file and fix.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import CorpusError

# Bytes inspected for NUL when deciding whether a file is binary.
_BINARY_PROBE_BYTES = 8192


@dataclass(frozen=True)
class Document:
    """One corpus file: its name (as given or found) and its decoded text."""

    name: str
    text: str


def decode_text(data: bytes, name: str) -> str:
    """Decode a file's bytes to text with ``\\n`` line ends.

    Args:
        data: the raw file contents.
        name: the file name, used in error messages.

    Raises:
        CorpusError: the bytes are binary or not UTF-8/UTF-16 text.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as err:
            raise CorpusError(
                f"{name}: invalid UTF-16 at byte offset {err.start}; "
                "re-save the file as UTF-8 text"
            ) from None
    else:
        nul = data.find(b"\x00", 0, _BINARY_PROBE_BYTES)
        if nul != -1:
            raise CorpusError(
                f"{name} looks like a binary file (NUL byte at offset {nul}); "
                "give a plain-text .txt file"
            )
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            bad = data[err.start]
            raise CorpusError(
                f"{name} is not UTF-8 text (byte 0x{bad:02x} at offset "
                f"{err.start}); re-save it as UTF-8"
            ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_file(path: Path) -> Document:
    """Read one text file as a `Document`.

    Args:
        path: the file to read.

    Raises:
        CorpusError: the file is missing, unreadable, empty or not text.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"corpus not found: {path}; check the path") from None
    except IsADirectoryError:
        raise CorpusError(f"{path} is a folder, not a file") from None
    except OSError as err:
        raise CorpusError(f"cannot read {path}: {err.strerror}") from None
    text = decode_text(data, str(path))
    if not text.strip():
        raise CorpusError(f"{path} is empty; give a file with some text in it")
    return Document(name=str(path), text=text)


def find_text_files(path: Path) -> list[Path]:
    """List the ``.txt`` files under a folder, recursively, sorted by path.

    Raises:
        CorpusError: the folder holds no ``.txt`` file.
    """
    files = sorted(p for p in path.rglob("*.txt") if p.is_file())
    if not files:
        raise CorpusError(
            f"folder {path} has no .txt files; put plain-text .txt files in it "
            "or name the files directly"
        )
    return files


def read_corpus(paths: Iterable[str | Path]) -> list[Document]:
    """Read files and folders (recursively, ``*.txt``) into documents, in order.

    Args:
        paths: files and folders, as given on the command line.

    Raises:
        CorpusError: a path is missing, or a file is empty, binary or not text.
    """
    documents: list[Document] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            documents.extend(read_file(p) for p in find_text_files(path))
        elif path.exists():
            documents.append(read_file(path))
        else:
            raise CorpusError(f"corpus not found: {path}; check the path")
    if not documents:
        raise CorpusError("no corpus given; name at least one text file or folder")
    return documents
