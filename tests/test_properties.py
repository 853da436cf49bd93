"""Property-based tests over arbitrary Unicode: reading, tokenizing, the
vocabulary and detokenizing never raise, and ids always decode to words."""

import itertools

from hypothesis import example, given, settings
from hypothesis import strategies as st

from textgen.errors import CorpusError
from textgen.text.corpus import decode_chunks
from textgen.text.tokens import PARAGRAPH, StreamingDetokenizer, detokenize, tokenize
from textgen.text.vocab import UNK, UNK_ID, Vocabulary

# Every code point a str can hold, surrogates aside (they cannot be encoded).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
FAST = settings(max_examples=150, deadline=None)


@FAST
@given(
    TEXT,
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"]),
    st.booleans(),
)
@example("\x00", "utf-16", False)  # found by a run: UTF-16 BOM + NUL = UTF-32 BOM
@example("\x00A\x00", "utf-16", False)
@example("\r\n", "utf-8", True)  # found by a run: saved as "\r\r\n", two breaks
def test_any_text_saved_in_a_supported_encoding_reads_back(text, encoding, crlf):
    saved = text.replace("\n", "\r\n") if crlf else text
    data = saved.encode(encoding)
    if data.startswith(b"\xff\xfe\x00\x00"):
        # UTF-16's BOM then a NUL is, byte for byte, UTF-32's BOM: read as
        # UTF-32 it is (every BOM-sniffing reader must pick one). A NUL is
        # binary anyway; the file must still fail or read cleanly.
        try:
            assert "\x00" not in decode_text(data, "f.txt")
        except CorpusError as err:
            assert str(err).startswith("f.txt") and "\n" not in str(err)
        return
    try:
        got = decode_text(data, "f.txt")
    except CorpusError as err:
        # Only a NUL, in any encoding, makes it look binary.
        assert "\x00" in text and "binary" in str(err), err
        return
    # Line breaks as saved: a CR before a LF that the file's CRLFs turned
    # into "\r\r\n" is a break of its own.
    expected = saved.replace("\r\n", "\n").replace("\r", "\n")
    if encoding == "utf-8" and text.startswith("\ufeff"):
        expected = expected[1:]  # a leading U+FEFF is read as the BOM
    assert got == expected


@FAST
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_name_the_problem(data):
    try:
        text = decode_text(data, "f.txt")
    except CorpusError as err:
        message = str(err)
        assert message.startswith("f.txt") and "\n" not in message
        assert "offset" in message
    else:
        assert isinstance(text, str) and "\r" not in text
        assert "\x00" not in text


@FAST
@given(TEXT, st.booleans())
def test_tokenize_vocabulary_and_detokenize_never_fail(text, lowercase):
    from textgen.text.tokens import TokenizerSettings

    words = tokenize(text, TokenizerSettings(lowercase=lowercase))
    assert all(isinstance(w, str) and w and not w.isspace() for w in words)
    assert not words or (words[0] != PARAGRAPH and words[-1] != PARAGRAPH)
    vocabulary = Vocabulary.build(words, max_size=20, min_count=1)
    ids = vocabulary.encode(words)
    assert len(ids) == len(words)
    assert ((ids >= UNK_ID) & (ids < len(vocabulary))).all()
    decoded = vocabulary.decode(ids)
    assert all(
        d == w or (d == UNK and i == UNK_ID)
        for d, w, i in zip(decoded, words, ids, strict=True)
    )
    assert isinstance(detokenize(decoded, capitalize=lowercase), str)
    stream = StreamingDetokenizer(capitalize=lowercase)
    streamed = "".join(stream.push(w) for w in decoded) + stream.finish()
    assert isinstance(streamed, str)


def _split(data, cuts):
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


PROSE = st.lists(
    st.sampled_from(
        ["whale", "ship", "Ahab", "caf\u00e9", "na\u00efve", "\U0001f40b", ",", ".",
         "!", " ", " ", "\n", "\r\n", "\r", "\n\n", "\n \n", "\t"]
    ),
    max_size=80,
).map("".join)  # fmt: skip
CUTS = st.lists(st.integers(min_value=0, max_value=10_000), max_size=6)


@FAST
@given(PROSE, st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]), CUTS)
def test_reading_in_pieces_equals_reading_at_once(text, encoding, cuts):
    from textgen.text.corpus import decode_chunks

    data = text.encode(encoding)
    pieces = list(decode_chunks(_split(data, cuts), "f.txt"))
    assert "".join(pieces) == decode_text(data, "f.txt")


@FAST
@given(PROSE, CUTS, st.booleans())
def test_tokenizing_in_pieces_equals_tokenizing_at_once(text, cuts, lowercase):
    from textgen.text.tokens import TokenizerSettings, tokenize_pieces

    settings = TokenizerSettings(lowercase=lowercase)
    blocks = list(tokenize_pieces(_split(text, cuts), settings))
    assert [w for block in blocks for w in block] == tokenize(text, settings)
    assert all(blocks)


def decode_text(data: bytes, name: str) -> str:
    """A whole file's bytes decoded in one piece."""
    return "".join(decode_chunks([data], name))
