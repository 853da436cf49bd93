import codecs
from dataclasses import dataclass
from pathlib import Path

import pytest

from textgen.errors import CorpusError
from textgen.text.corpus import corpus_files, decode_chunks, read_pieces
from textgen.text.tokens import TokenizerSettings, tokenize


@dataclass(frozen=True)
class Document:
    name: str
    text: str


def read_corpus(paths) -> list[Document]:
    """Each corpus file's whole text, read in pieces as `train` reads it."""
    return [Document(str(p), "".join(read_pieces(p))) for p in corpus_files(paths)]


def decode_text(data: bytes, name: str) -> str:
    return "".join(decode_chunks([data], name))


def test_reads_utf8_with_and_without_bom_and_normalises_line_ends(tmp_path: Path):
    plain = tmp_path / "a.txt"
    plain.write_bytes("caf\u00e9 one\r\ntwo\rthree\n".encode())
    bom = tmp_path / "b.txt"
    bom.write_bytes(codecs.BOM_UTF8 + "caf\u00e9 one\r\ntwo\rthree\n".encode())
    docs = read_corpus([plain, bom])
    assert [d.text for d in docs] == ["caf\u00e9 one\ntwo\nthree\n"] * 2
    assert docs[0].name == str(plain)


def test_reads_utf16_with_bom(tmp_path: Path):
    path = tmp_path / "u16.txt"
    path.write_bytes("hello w\u00f6rld\r\n".encode("utf-16"))
    assert read_corpus([path])[0].text == "hello w\u00f6rld\n"


def test_folder_is_read_recursively_in_sorted_order(tmp_path: Path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.txt").write_text("second")
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "notes.md").write_text("ignored")
    docs = read_corpus([tmp_path])
    assert [d.text for d in docs] == ["first", "second"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"abc\x00\x01\x02", "looks like a binary file (NUL byte at offset 3)"),
        (b"ok " + b"\xff\xfe bad", None),
        (b"fine text \xe9t\xe9", "not UTF-8 text (byte 0xe9 at offset 10)"),
    ],
)
def test_binary_and_undecodable_bytes_are_named(data: bytes, message: str | None):
    if message is None:  # 0xff is never valid UTF-8
        message = "not UTF-8 text (byte 0xff at offset 3)"
    with pytest.raises(
        CorpusError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        decode_text(data, "x.txt")


def test_missing_empty_and_folder_without_text(tmp_path: Path):
    with pytest.raises(CorpusError, match=r"corpus not found: .*nope.txt"):
        read_corpus([tmp_path / "nope.txt"])
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n ")
    with pytest.raises(CorpusError, match=r"empty.txt is empty"):
        read_corpus([empty])
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "data.csv").write_text("a,b")
    with pytest.raises(CorpusError, match=r"has no .txt files"):
        read_corpus([folder])
    with pytest.raises(CorpusError, match=r"no corpus given"):
        read_corpus([])


def test_bad_bytes_are_located_in_the_whole_file_when_read_in_pieces(tmp_path: Path):
    from textgen.text.corpus import decode_chunks

    chunks = [b"abc", "d\u00e9".encode()[:-1], "\u00e9".encode()[-1:] + b"xy\xffz"]
    with pytest.raises(CorpusError, match=r"byte 0xff at offset 8"):
        list(decode_chunks(chunks, "x.txt"))
    utf16 = "ab".encode("utf-16")  # BOM + 4 bytes
    with pytest.raises(CorpusError, match=r"invalid UTF-16 at byte offset 6"):
        list(decode_chunks([utf16[:3], utf16[3:] + b"\x00\xd8" + b"a\x00"], "y.txt"))


@pytest.mark.slow
def test_a_corpus_bigger_than_one_piece_streams(tmp_path: Path, monkeypatch):
    import textgen.text.corpus
    from textgen.text.ids import corpus_ids
    from textgen.text.tokens import TokenizerSettings, tokenize

    monkeypatch.setattr(textgen.text.corpus, "CHUNK_BYTES", 64)
    text = "".join(f"Paragraph {i} is here, caf\u00e9.\r\n\r\n" for i in range(1500))
    path = tmp_path / "big.txt"
    path.write_bytes(text.encode("utf-8-sig"))
    seen: list[int] = []
    corpus = corpus_ids([path], TokenizerSettings(), progress=seen.append)
    assert corpus.tokens() == tokenize(text.replace("\r\n", "\n"))
    assert len(seen) > 50 and sum(seen) == len(text.replace("\r\n", "\n"))
    assert corpus.ids.dtype.name == "int32" and len(corpus.words) < 1520


@pytest.mark.slow
def test_a_10_mb_corpus_becomes_four_bytes_per_word(tmp_path: Path):
    """Defined behaviour for a big corpus: read and tokenized as a stream, held
    as one int32 per word (about 2 million words here, some 20 s)."""
    import numpy as np

    from textgen.text.ids import corpus_ids
    from textgen.text.tokens import PARAGRAPH, TokenizerSettings

    rng = np.random.default_rng(0)
    words = np.array(["the", "sea", "whale", "ship", "rope", "storm", "calm", "deck"])
    path = tmp_path / "big.txt"
    with path.open("w", encoding="utf-8") as out:
        while out.tell() < 10 * 2**20:
            out.write(" ".join(rng.choice(words, 120)) + ".\n\n")
    corpus = corpus_ids([path], TokenizerSettings())
    paragraphs = path.read_text(encoding="utf-8").count("\n\n")
    assert len(corpus.ids) == paragraphs * 122 - 1  # 120 words, ".", then <p>
    assert sorted(corpus.words) == sorted([*words, ".", PARAGRAPH])
    assert corpus.ids.dtype == np.int32 and corpus.ids.nbytes == 4 * len(corpus.ids)


def test_a_nul_far_into_a_file_is_still_binary():
    data = b"plain words " * 100_000 + b"\x00tail"
    with pytest.raises(
        CorpusError, match=r"binary file \(NUL byte at offset 1200000\)"
    ):
        list(
            decode_chunks([data[i : i + 4096] for i in range(0, len(data), 4096)], "f")
        )
    utf16 = "\ufeffwords\x00".encode("utf-16-le")
    with pytest.raises(CorpusError, match=r"binary file \(NUL byte at offset 12\)"):
        decode_text(utf16, "f")


@pytest.mark.parametrize("encoding", ["utf-32-le", "utf-32-be"])
def test_utf32_with_a_bom_is_read_as_utf32(encoding):
    text = "caf\u00e9 \U0001f600 line\r\nnext"
    data = ("\ufeff" + text).encode(encoding)
    assert decode_text(data, "f") == "caf\u00e9 \U0001f600 line\nnext"


@pytest.mark.slow
def test_a_corpus_without_blank_lines_streams(tmp_path, monkeypatch):
    """One sentence per line and no paragraph break: memory stays bounded by
    the pieces, not the file (tracemalloc), and the words are all there."""
    import tracemalloc

    import textgen.text.corpus
    import textgen.text.tokens
    from textgen.text.ids import corpus_ids

    monkeypatch.setattr(textgen.text.corpus, "CHUNK_BYTES", 1 << 16)
    monkeypatch.setattr(textgen.text.tokens, "HOLD_CHARS", 1 << 16)
    line = "The quick brown fox jumps over the lazy dog number {}.\n"
    path = tmp_path / "lines.txt"
    path.write_text("".join(line.format(i % 50) for i in range(24_000)))
    size = path.stat().st_size  # about 1.3 MB, 288,000 words
    tracemalloc.start()
    try:
        corpus = corpus_ids([path], TokenizerSettings())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(corpus.ids) == 24_000 * 12
    assert corpus.tokens()[:12] == tokenize(line.format(0))
    # The ids take 1.8 times the file (4 bytes a word, twice while joined),
    # plus a fixed ~2 MB; all of it as words at once would take 15 times.
    assert peak < 4 * size, f"peak {peak / 2**20:.1f} MiB, file {size / 2**20:.1f} MiB"
