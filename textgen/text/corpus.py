"""Read corpus files and folders into text documents.

Accepts UTF-8 (with or without BOM) and UTF-16 with BOM, normalises CRLF and CR
line ends, and refuses anything else with one message naming the file and fix.
"""

from __future__ import annotations

import codecs
import gzip
import itertools
import os
import select
import stat
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import CorpusError

# Bytes read before choosing the encoding (enough for any byte-order mark).
_BINARY_PROBE_BYTES = 8192


CHUNK_BYTES = 1 << 22  # read files 4 MiB at a time


def decode_chunks(chunks: Iterable[bytes], name: str) -> Iterator[str]:
    """Decode a file's bytes, given in pieces, to text with ``\n`` line ends.

    Only one piece is held at a time, so a file of any size streams through.
    UTF-16 and UTF-32 need their byte-order mark; anything else must be UTF-8
    (a BOM is dropped). A NUL character anywhere means a binary file.

    Args:
        chunks: the raw file contents, in order.
        name: the file name, used in error messages.

    Raises:
        CorpusError: binary or not UTF-8/UTF-16 text, naming the byte offset
            (in the whole file) of the first bad byte.
    """
    chunks = iter(chunks)
    head = b""  # enough of the start to see the byte-order mark
    for chunk in chunks:
        head += chunk
        if len(head) >= _BINARY_PROBE_BYTES:
            break
    encoding, skipped = "utf-8", 0
    for bom, codec in (  # UTF-32 first: its little-endian BOM starts UTF-16's
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF8, "utf-8"),
    ):
        if head.startswith(bom):
            encoding, skipped = codec, len(bom)
            break
    decoder = codecs.getincrementaldecoder(encoding)()
    fed = skipped  # bytes of the file given to the decoder so far
    pending_cr = ""
    for chunk in itertools.chain([head[skipped:]], chunks):
        start = fed - len(decoder.getstate()[0])  # where `text` begins in the file
        text = _decode(decoder, chunk, fed, name, final=False)
        fed += len(chunk)
        _refuse_nul(text, start, encoding, name)
        text, pending_cr = _newlines(pending_cr + text)
        if text:
            yield text
    start = fed - len(decoder.getstate()[0])
    text = _decode(decoder, b"", fed, name, True)
    _refuse_nul(text, start, encoding, name)
    text, pending_cr = _newlines(pending_cr + text)
    if text + pending_cr:
        yield (text + pending_cr).replace("\r", "\n")


def _refuse_nul(text: str, start: int, encoding: str, name: str) -> None:
    """A NUL anywhere in the text means a binary file, not text."""
    nul = text.find("\x00")
    if nul != -1:
        at = start + len(text[:nul].encode(encoding))
        raise CorpusError(
            f"{name} looks like a binary file (NUL byte at offset {at}); "
            "give a plain-text .txt file"
        )


def _decode(
    decoder: codecs.IncrementalDecoder, data: bytes, offset: int, name: str, final: bool
) -> str:
    buffered = len(decoder.getstate()[0])
    try:
        return decoder.decode(data, final)
    except UnicodeDecodeError as err:
        at = offset - buffered + err.start
        if "16" in err.encoding or "32" in err.encoding:
            label = "UTF-32" if "32" in err.encoding else "UTF-16"
            raise CorpusError(
                f"{name}: invalid {label} at byte offset {at}; "
                "re-save the file as UTF-8 text"
            ) from None
        bad = err.object[err.start]
        raise CorpusError(
            f"{name} is not UTF-8 text (byte 0x{bad:02x} at offset {at}); "
            "re-save it as UTF-8"
        ) from None


def _newlines(text: str) -> tuple[str, str]:
    """CRLF and CR to LF; a final CR waits for the next piece (it may be CRLF)."""
    held = "\r" if text.endswith("\r") else ""
    body = text[:-1] if held else text
    return body.replace("\r\n", "\n").replace("\r", "\n"), held


def read_pieces(path: Path, what: str = "corpus") -> Iterator[str]:
    """A file's text in pieces of about `CHUNK_BYTES`, read as it is consumed.

    Args:
        path: the file.
        what: what the file is, for messages ("corpus", "--seed-file").

    Raises:
        CorpusError: the file is missing, unreadable, empty or not text.
    """
    try:
        with _open_binary(path, what) as file:
            empty = True
            chunks = iter(lambda: file.read(CHUNK_BYTES), b"")
            if file.peek(2)[:2] == GZIP_MAGIC:  # a .gz file: its text, streamed
                chunks = _gunzipped(file, path)
            for piece in decode_chunks(chunks, str(path)):
                empty = empty and not piece.strip()
                yield piece
    except FileNotFoundError:
        raise CorpusError(f"{what} not found: {path}; check the path") from None
    except IsADirectoryError:
        raise CorpusError(f"{path} is a folder, not a file") from None
    except OSError as err:
        raise CorpusError(f"cannot read {path}: {err.strerror}") from None
    if empty:
        raise CorpusError(f"{path} is empty; give a file with some text in it")


GZIP_MAGIC = b"\x1f\x8b"


def _gunzipped(file: BinaryIO, path: Path) -> Iterator[bytes]:
    """A gzip stream's contents in `CHUNK_BYTES` pieces (never whole).

    Raises:
        CorpusError: the stream is damaged or cut short.
    """
    try:
        with gzip.GzipFile(fileobj=file, mode="rb") as unzipped:
            yield from iter(lambda: unzipped.read(CHUNK_BYTES), b"")
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise CorpusError(
            f"{path} is not a whole gzip file ({err}); compress it again, or "
            "give it uncompressed"
        ) from None


# Most seconds to wait for the first text on a named pipe (a FIFO, or a
# shell's `<(command)`): with no program writing to it, reading would hang.
FIFO_WAIT_SECONDS = 30.0


def _open_binary(path: Path, what: str) -> BinaryIO:
    """`path` opened for reading bytes; a named pipe only once text arrives.

    Raises:
        CorpusError: nothing arrived on a named pipe in `FIFO_WAIT_SECONDS`.
        OSError: as `open`.
    """
    if not stat.S_ISFIFO(path.stat().st_mode) or not hasattr(os, "O_NONBLOCK"):
        return path.open("rb")
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        ready, _, _ = select.select([descriptor], [], [], FIFO_WAIT_SECONDS)
        if not ready:
            raise CorpusError(
                f"{what} {path} is a named pipe and no text arrived on it in "
                f"{FIFO_WAIT_SECONDS:g} s; start the program that writes to it, "
                "or give a file"
            )
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def stream_chunks(binary: BinaryIO) -> Iterator[bytes]:
    """A binary stream (a file, stdin) in `CHUNK_BYTES` pieces."""
    return iter(lambda: binary.read(CHUNK_BYTES), b"")


def tail(pieces: Iterable[str], keep: int) -> tuple[str, int]:
    """The last `keep` characters of streamed text, and its whole length:
    memory holds one piece and the tail, however long the stream."""
    kept, total = "", 0
    for piece in pieces:
        total += len(piece)
        kept = (kept + piece)[-keep:]
    return kept, total


def lines(
    pieces: Iterable[str], keep: int, most: int, name: str
) -> list[tuple[str, int]]:
    """The non-empty lines of streamed text, each cut to its last `keep`
    characters (a longer line is never held whole), with its whole length.

    Raises:
        CorpusError: more than `most` lines.
    """
    found: list[tuple[str, int]] = []
    line, length = "", 0
    for piece in itertools.chain(pieces, ["\n"]):
        parts = piece.split("\n")
        for part in parts[:-1]:
            line, length = (line + part)[-keep:], length + len(part)
            if line.strip():
                if len(found) == most:
                    raise CorpusError(
                        f"{name} has more than {most:,} lines; give at most "
                        f"{most:,} at a time"
                    )
                found.append((line, length))
            line, length = "", 0
        line, length = (line + parts[-1])[-keep:], length + len(parts[-1])
    return found


def find_text_files(path: Path, suffixes: tuple[str, ...] = (".txt",)) -> list[Path]:
    """List the files under a folder whose names end in one of `suffixes`
    (or that and ``.gz``), recursively, sorted by path.

    Raises:
        CorpusError: the folder holds no such file.
    """
    endings = suffixes + tuple(s + ".gz" for s in suffixes)
    files = sorted(
        p for p in path.rglob("*") if p.name.lower().endswith(endings) and p.is_file()
    )
    if not files:
        named = " or ".join(suffixes)
        raise CorpusError(
            f"folder {path} has no {named} files (nor .gz ones); put such files "
            "in it, name the files directly, or say their --format"
        )
    return files


def corpus_files(
    paths: Iterable[str | Path], suffixes: tuple[str, ...] = (".txt",)
) -> list[Path]:
    """The files a corpus names: files as given, folders' files ending in
    one of `suffixes` (``*.txt`` and ``*.txt.gz`` unless said; recursively,
    sorted), in order.

    Raises:
        CorpusError: a path is missing, a folder has no text file, or none given.
    """
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files.extend(find_text_files(path, suffixes))
        elif path.exists():
            files.append(path)
        else:
            raise CorpusError(f"corpus not found: {path}; check the path")
    if not files:
        raise CorpusError("no corpus given; name at least one text file or folder")
    return files
