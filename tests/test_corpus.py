import codecs
from pathlib import Path

import pytest

from textgen.corpus import decode_text, read_corpus
from textgen.errors import CorpusError


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
    from textgen.corpus import decode_chunks

    chunks = [b"abc", "d\u00e9".encode()[:-1], "\u00e9".encode()[-1:] + b"xy\xffz"]
    with pytest.raises(CorpusError, match=r"byte 0xff at offset 8"):
        list(decode_chunks(chunks, "x.txt"))
    utf16 = "ab".encode("utf-16")  # BOM + 4 bytes
    with pytest.raises(CorpusError, match=r"invalid UTF-16 at byte offset 6"):
        list(decode_chunks([utf16[:3], utf16[3:] + b"\x00\xd8" + b"a\x00"], "y.txt"))


def test_a_corpus_bigger_than_one_piece_streams(tmp_path: Path, monkeypatch):
    import textgen.corpus
    from textgen.tokens import TokenizerSettings, tokenize
    from textgen.train import corpus_ids

    monkeypatch.setattr(textgen.corpus, "CHUNK_BYTES", 64)
    text = "".join(f"Paragraph {i} is here, caf\u00e9.\r\n\r\n" for i in range(1500))
    path = tmp_path / "big.txt"
    path.write_bytes(text.encode("utf-8-sig"))
    seen: list[int] = []
    corpus = corpus_ids([path], TokenizerSettings(), progress=seen.append)
    assert corpus.tokens() == tokenize(text.replace("\r\n", "\n"))
    assert len(seen) > 50 and sum(seen) == len(text.replace("\r\n", "\n"))
    assert corpus.ids.dtype.name == "int32" and len(corpus.words) < 1520


def test_a_10_mb_corpus_becomes_four_bytes_per_word(tmp_path: Path):
    """Defined behaviour for a big corpus: read and tokenized as a stream, held
    as one int32 per word (about 2 million words here, some 20 s)."""
    import numpy as np

    from textgen.tokens import PARAGRAPH, TokenizerSettings
    from textgen.train import corpus_ids

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
