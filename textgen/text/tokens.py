"""Words from text and text from words, with NLTK's data-free tokenizers.

Paragraph breaks become the `PARAGRAPH` token; text is lower-cased unless the
settings keep case, and detokenized output gets its sentence capitals back.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import itertools
import os
import re
import sys
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

PARAGRAPH = "<p>"
END = "<end>"  # ends an item in a model trained on items (see `DOCUMENTS`)
# Ends a line of pre-tokenized text (`--tokenizer whitespace`: a sentence,
# as such corpora have one per line and their published scores count it).
EOS = "<eos>"
# A record's label (`--label-field`): a token of its own before the record's
# text, which the model reads and is never asked to write.
LABEL_PREFIX, LABEL_SUFFIX = "<label:", ">"


def label_token(label: str) -> str:
    """The token that stands for `label`."""
    return f"{LABEL_PREFIX}{label}{LABEL_SUFFIX}"


def is_label(token: str) -> bool:
    return token.startswith(LABEL_PREFIX) and token.endswith(LABEL_SUFFIX)


def label_ids(words: Iterable[str]) -> list[int]:
    """The ids (places in `words`, a vocabulary's) of the label tokens."""
    return [i for i, word in enumerate(words) if is_label(word)]


def label_of(token: str) -> str:
    """The label a label token stands for."""
    return token[len(LABEL_PREFIX) : -len(LABEL_SUFFIX)]


def _unlabelled(tokens: Iterable[str]) -> list[str]:
    """Tokens without labels: what is written."""
    return [t for t in tokens if not is_label(t)]


# How word-level text is split: NLTK's words, or on whitespace alone (text
# that is already tokenized).
WORD_TOKENIZERS = ("nltk", "whitespace")
LEVELS = ("word", "char")  # one `Tokenizer` subclass each, below
# What one document is: a file (one long text), or each line or paragraph of
# a file an item of its own (a name, a title, a sentence) that ends with `END`.
DOCUMENTS = ("files", "lines", "paragraphs")
SENTENCE_ENDS = frozenset({".", "!", "?", "..."})

# An untrained Punkt model needs no downloaded data; it splits on ". ! ?" well
# enough for word tokenization, which is all it is used for here.
_TOKENIZER_MODULES = ("punkt", "destructive", "treebank")


@functools.cache
def _nltk() -> tuple[Any, Any, Any]:
    """NLTK's sentence splitter, word tokenizer and detokenizer, made on first
    use (character models never need them).

    `import nltk` runs the package's `__init__`, which imports most of NLTK
    (~0.6 s, most of a `textgen generate`). When NLTK is not imported yet, the
    three tokenizer modules are loaded on their own under a bare stand-in for
    the package, which is then removed, so a later `import nltk` still gets
    the whole package (and these same modules). Any surprise falls back to
    the plain import.
    """
    if "nltk" not in sys.modules:
        try:
            _import_tokenizers_alone()
        except Exception:  # an NLTK layout this does not know: import it all
            for name in [m for m in sys.modules if m.split(".")[0] == "nltk"]:
                del sys.modules[name]
    from nltk.tokenize.destructive import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktSentenceTokenizer
    from nltk.tokenize.treebank import TreebankWordDetokenizer

    return PunktSentenceTokenizer(), NLTKWordTokenizer(), TreebankWordDetokenizer()


def _import_tokenizers_alone() -> None:
    spec = importlib.util.find_spec("nltk")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("nltk is not installed")
    root = list(spec.submodule_search_locations)
    stand_ins = {"nltk": root, "nltk.tokenize": [os.path.join(root[0], "tokenize")]}
    for name, path in stand_ins.items():
        module = types.ModuleType(name)
        module.__path__ = path
        sys.modules[name] = module
    try:
        for name in _TOKENIZER_MODULES:
            importlib.import_module(f"nltk.tokenize.{name}")
    finally:
        for name, path in stand_ins.items():
            if getattr(sys.modules.get(name), "__path__", None) is path:
                del sys.modules[name]


_paragraph_break = re.compile(r"\n[ \t]*\n\s*")


@dataclass(frozen=True)
class TokenizerSettings:
    """How text becomes words; saved in the model so generation matches."""

    lowercase: bool = True  # fold case; output is re-capitalised at sentence starts
    level: str = "word"  # word: NLTK words and <p>; char: every character as it is
    documents: str = "files"  # files, or items: one per line or paragraph
    # Words: "nltk", or "whitespace" for text already tokenized.
    tokenizer: str = "nltk"

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"unknown level {self.level!r}; use one of {LEVELS}")
        if self.tokenizer not in WORD_TOKENIZERS:
            raise ValueError(
                f"unknown tokenizer {self.tokenizer!r}; use one of {WORD_TOKENIZERS}"
            )
        if self.tokenizer != "nltk" and self.level != "word":
            raise ValueError(
                f"the {self.tokenizer} tokenizer splits words, not characters"
            )
        if self.documents not in DOCUMENTS:
            raise ValueError(
                f"unknown documents {self.documents!r}; use one of {DOCUMENTS}"
            )

    @property
    def items(self) -> bool:
        """Whether each line or paragraph is an item that ends with `END`."""
        return self.documents != "files"


def tokenize(text: str, settings: TokenizerSettings = TokenizerSettings()) -> list[str]:
    """Split text into tokens as the settings' level does (see `tokenizer_for`)."""
    return tokenizer_for(settings).tokenize(text)


def _words(text: str, lowercase: bool) -> list[str]:
    """NLTK word tokens, with `PARAGRAPH` between paragraphs; single line
    breaks inside a paragraph are spaces."""
    words: list[str] = []
    for paragraph in _paragraph_break.split(text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        if words:
            words.append(PARAGRAPH)
        sentence_splitter, word_tokenizer, _ = _nltk()
        for sentence in sentence_splitter.tokenize(paragraph):
            words.extend(word_tokenizer.tokenize(sentence))
    if lowercase:
        words = [w if w == PARAGRAPH else w.lower() for w in words]
    return words


# Most text tokenized in one call. Paragraphs are cut where they end; text
# with no paragraph break for this long (a corpus with no blank lines, one
# sentence per line) is cut at a line end instead. It also keeps each call
# well inside NLTK's 5-second limit on one sentence-splitting regex search,
# which a paragraph of about a megabyte can pass on a slow machine.
HOLD_CHARS = 1 << 16
_sentence_line_end = re.compile(r"[.!?][\"')\]]*[ \t]*\n")


def _line_cut(text: str) -> int:
    """Where to cut text that has no paragraph break: after the last line that
    ends a sentence, else the last line, else the last space (else nowhere)."""
    ends = [m.end() for m in _sentence_line_end.finditer(text, len(text) // 2)]
    if ends:
        return ends[-1]
    for separator in ("\n", " ", "\t"):
        cut = text.rfind(separator)
        if cut > 0:
            return cut + 1
    return len(text)


def _next_cut(held: str, final: bool) -> tuple[int, int, bool] | None:
    """Where to cut the held text: (end of the words, start of the rest,
    whether a paragraph break lies between), or None to wait for more."""
    window = held[:HOLD_CHARS]
    breaks = list(_paragraph_break.finditer(window))
    if breaks and (len(held) > HOLD_CHARS or not final):
        return breaks[-1].start(), breaks[-1].end(), True
    if len(held) > HOLD_CHARS:
        cut = _line_cut(window)
        return cut, cut, False
    return None


def tokenize_pieces(
    pieces: Iterable[str], settings: TokenizerSettings = TokenizerSettings()
) -> Iterator[list[str]]:
    """A corpus file's tokens, block by block, from text that arrives in
    pieces: `tokenize` of the whole (see `Tokenizer.stream_tokens`), or for
    items `END`, then each item's tokens followed by `END`."""
    tokenizer = tokenizer_for(settings)
    if not settings.items:
        yield from tokenizer.stream_tokens(pieces)
        return
    block = [END]
    for item in item_texts(pieces, settings.documents):
        block.extend(tokenizer.tokenize(item))
        block.append(END)
        if len(block) >= 4096:
            yield block
            block = []
    if block != [END]:
        yield block


def item_separator(documents: str) -> re.Pattern:
    """What separates two items: a line break ("lines"), or a blank line
    ("paragraphs")."""
    return re.compile(r"\n" if documents == "lines" else r"\n[ \t]*\n\s*")


def item_texts(pieces: Iterable[str], documents: str) -> Iterator[str]:
    """The items of text arriving in pieces, whitespace-normalised: each
    non-blank line (`documents` "lines"), or each paragraph ("paragraphs",
    lines kept, separated by blank lines); runs of spaces and tabs become one
    space and each line is stripped."""
    held = ""
    separator = item_separator(documents)
    for piece in itertools.chain(pieces, [None]):
        held += "\n\n" if piece is None else piece
        parts = separator.split(held)
        held = parts.pop()
        for part in parts:
            item = normalise_item(part)
            if item:
                yield item


def normalise_item(text: str) -> str:
    """An item's text as it is compared and tokenized: each line stripped,
    inner runs of spaces and tabs one space, blank lines dropped."""
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _word_pieces(pieces: Iterable[str], lowercase: bool) -> Iterator[list[str]]:
    """`_words` for text that arrives in pieces (a file read bit by bit).

    Text is cut at paragraph breaks, so the words come out exactly as
    `tokenize` of the whole text would give them, block by block. A stretch
    of more than `HOLD_CHARS` characters with no paragraph break is cut at
    the end of its last sentence-ending line instead (else its last line or
    space), so memory and time per call stay bounded whatever the layout.
    """
    held, started, pending_break = "", False, False
    for piece in itertools.chain(pieces, [None]):
        final = piece is None
        held += piece or ""
        while (cut := _next_cut(held, final)) is not None:
            end, resume, at_break = cut
            words = _words(held[:end], lowercase)
            held = held[resume:]
            if words:
                yield [PARAGRAPH, *words] if started and pending_break else words
                started, pending_break = True, at_break
            else:
                pending_break = pending_break or at_break
    words = _words(held, lowercase)
    if words:
        yield [PARAGRAPH, *words] if started and pending_break else words


def capitalize_sentences(words: list[str]) -> list[str]:
    """Upper-case the first letter of each sentence and the pronoun "i"."""
    return _Capitals().apply(words)


class _Capitals:
    """Sentence capitals, a word at a time: the state between words is
    whether the next word with a letter or digit starts a sentence."""

    def __init__(self) -> None:
        self.sentence_start = True

    def word(self, word: str) -> str:
        if word == "i":
            word = "I"
        if word[:1].isalnum():
            if self.sentence_start:
                word = word[0].upper() + word[1:]
            self.sentence_start = False
        if word in SENTENCE_ENDS:
            self.sentence_start = True
        return word

    def apply(self, words: list[str]) -> list[str]:
        return [self.word(w) for w in words]


# Tokens that the detokenizer writes otherwise (NLTK's opening and closing
# quotes) or not at all.
_WRITTEN = {"``": '"', "''": '"', PARAGRAPH: ""}

# Tokens that open a sentence when they follow the end of the previous one.
_OPENERS = frozenset({"``", "(", "[", "{", "--"})


def _starts_sentence(word: str) -> bool:
    return word[:1].isalnum() or word in _OPENERS


def _split_sentences(words: list[str]) -> list[list[str]]:
    """Cut a paragraph's words after each ". ! ?" (and any closing quote)."""
    sentences: list[list[str]] = []
    ended = True
    for word in words:
        if not sentences or (ended and _starts_sentence(word)):
            sentences.append([])
            ended = False
        sentences[-1].append(word)
        ended = ended or word in SENTENCE_ENDS
    return sentences


# A sentence is detokenized in pieces of about this many words, so the work
# per word stays bounded whatever the sentence's length (NLTK's detokenizer
# rewrites the whole string it is given; streaming redoes the current piece at
# every word). A piece ends between two plain words, where the detokenizer
# always keeps the space (NLTK joins "can not", "gon na", "got ta", "gim me",
# "lem me", "wan na": never cut there), or, in a run with no such place, after
# `_MOST_PIECE_WORDS` words anyway.
_PIECE_WORDS = 64
_MOST_PIECE_WORDS = 256
_JOINED_FIRST = frozenset({"can", "gon", "got", "gim", "lem", "wan", "more"})
_JOINED_SECOND = frozenset({"not", "na", "ta", "me"})


def _piece_ends(words: list[str], word: str) -> bool:
    """Whether the piece `words` of a sentence ends before `word`."""
    if len(words) >= _MOST_PIECE_WORDS:
        return True
    previous = words[-1] if words else ""
    return (
        len(words) >= _PIECE_WORDS
        and previous.isalnum()
        and word.isalnum()
        and previous.lower() not in _JOINED_FIRST
        and word.lower() not in _JOINED_SECOND
    )


def _sentence_pieces(words: list[str]) -> list[list[str]]:
    pieces: list[list[str]] = [[]]
    for word in words:
        if _piece_ends(pieces[-1], word):
            pieces.append([])
        pieces[-1].append(word)
    return pieces


def _detokenize_piece(words: list[str]) -> str:
    return _nltk()[2].detokenize(words)


def _split_paragraphs(words: list[str]) -> list[list[str]]:
    paragraphs: list[list[str]] = [[]]
    for word in words:
        if word == PARAGRAPH:
            paragraphs.append([])
        else:
            paragraphs[-1].append(word)
    return [p for p in paragraphs if p]


def detokenize(words: list[str], capitalize: bool = False) -> str:
    """Join word tokens back into prose; paragraphs are separated by a blank line.

    Sentences are detokenized one at a time (a long one in pieces, see
    `_PIECE_WORDS`) and joined by a space, which is what NLTK's detokenizer
    does to a whole paragraph, in time that grows linearly with the text
    (and lets output stream).

    Args:
        words: tokens as `tokenize` makes them.
        capitalize: restore sentence-initial capitals (for lower-cased models).
    """
    paragraphs = []
    for paragraph in _split_paragraphs(words):
        sentences = []
        for sentence in _split_sentences(paragraph):
            if capitalize:
                sentence = capitalize_sentences(sentence)
            sentences += [_detokenize_piece(p) for p in _sentence_pieces(sentence)]
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


class StreamingDetokenizer:
    """Detokenize words one at a time, returning the text that is safe to print.

    The detokenizer may still change the space before the newest word (as in
    "word --" becoming "word--x"), so the text printed is the part the last two
    detokenizations of the current piece of the sentence agree on, without
    trailing space; the rest comes when the piece or sentence ends, and from
    `finish`. The pieces join to exactly what `detokenize` makes of the same
    words, and each word costs at most one detokenization of a bounded piece.
    """

    def __init__(self, capitalize: bool = False) -> None:
        self.capitalize = capitalize
        self._capitals = _Capitals()
        self._piece: list[str] = []  # the current piece of the sentence
        self._ended = False  # the sentence has had its ". ! ?"
        self._previous = ""  # detokenization of the piece so far
        self._printed = ""  # the part of it already returned
        self._separator = ""  # goes before the next piece: "", " " or blank line
        self._started = False  # any text returned at all
        self._stale = False  # words added since `_previous` was made

    def push(self, word: str) -> str:
        """Add one word; return the new text to print (may be empty)."""
        out = self._add(word)
        return out + self._show() if self._stale else out

    def push_many(self, words: Iterable[str]) -> str:
        """`push` every word and return all their text, detokenizing each
        piece once rather than once per word (how a long seed is read)."""
        out = [self._add(word) for word in words]
        if self._stale:  # leave the last piece as `push` would have
            self._previous = _detokenize_piece(self._piece[:-1])
            out.append(self._show())
        return "".join(out)

    def _add(self, word: str) -> str:
        """Add one word to the piece, ending the piece or sentence before it
        where it must; return what ending them printed."""
        if word == PARAGRAPH:
            out = self._flush_piece()
            self._ended, self._capitals = False, _Capitals()
            if self._started:
                self._separator = "\n\n"
            return out
        out = ""
        if self._ended and _starts_sentence(word):
            out = self._flush_piece()
            self._ended, self._capitals = False, _Capitals()
            self._separator = self._separator or " "
        elif self._piece and _piece_ends(self._piece, word):
            out = self._flush_piece()
            self._separator = self._separator or " "
        self._ended = self._ended or word in SENTENCE_ENDS
        self._piece.append(self._capitals.word(word) if self.capitalize else word)
        self._stale = True  # `_previous` is not yet the piece's text
        return out

    def _show(self) -> str:
        """Detokenize the piece; return the newly stable part of its text."""
        current = _detokenize_piece(self._piece)
        # commonprefix compares characters, which is what is wanted here.
        stable = os.path.commonprefix([self._previous, current]).rstrip()  # noqa: RUF071
        # The last word is held too: the detokenizer may still take the space
        # before it away ("i --" becomes "i--'s" when "'s" follows).
        stable = stable[: max(stable.rfind(" "), 0)].rstrip()
        self._previous, self._stale = current, False
        if len(stable) > len(self._printed) and stable.startswith(self._printed):
            out = self._take_separator() + stable[len(self._printed) :]
            self._printed = stable
            return out
        return ""

    def _take_separator(self) -> str:
        """What goes before the piece's first text: a space or a blank line."""
        if self._printed:
            return ""
        separator = self._separator if self._started else ""
        self._separator = ""
        self._started = True
        return separator

    def _flush_piece(self) -> str:
        if self._stale:
            self._previous = _detokenize_piece(self._piece)
        rest = ""
        if self._previous.startswith(self._printed):
            rest = self._previous[len(self._printed) :]
        # else: the rare case where the tail was rewritten: keep what shows.
        if rest:
            rest = self._take_separator() + rest
        self._piece, self._previous, self._printed = [], "", ""
        self._stale = False
        return rest

    def finish(self) -> str:
        """Return the text still held back; call once after the last word."""
        return self._flush_piece()

    def held(self) -> int:
        """Characters `finish` would return now: with what was returned, the
        length of the text of the words so far (where the next one starts)."""
        current = _detokenize_piece(self._piece) if self._stale else self._previous
        if not current.startswith(self._printed):
            return 0
        rest = len(current) - len(self._printed)
        if self._printed or not rest:
            return rest
        return rest + (len(self._separator) if self._started else 0)


class _CharacterStream(StreamingDetokenizer):
    """The streaming detokenizer of character models: each character as it comes."""

    def push(self, word: str) -> str:
        return word

    def push_many(self, words: Iterable[str]) -> str:
        return "".join(words)

    def finish(self) -> str:
        return ""

    def held(self) -> int:
        return 0


class _WithoutLabels(StreamingDetokenizer):
    """A streaming detokenizer that writes nothing for a label token."""

    def __init__(self, inner: StreamingDetokenizer) -> None:
        self.inner = inner

    def push(self, word: str) -> str:
        return "" if is_label(word) else self.inner.push(word)

    def push_many(self, words: Iterable[str]) -> str:
        return self.inner.push_many(_unlabelled(words))

    def finish(self) -> str:
        return self.inner.finish()

    def held(self) -> int:
        return self.inner.held()


class Tokenizer:
    """A token level: what one token is, and everything that follows from it.

    How text becomes tokens (whole or streamed) and tokens text (whole or
    streamed), the token that starts a text with no seed and the one that
    ends a paragraph, the unit's name, how many tokens in a row count as
    copied (asked of the class: `level_class(name)`), so no code outside
    this module compares level names. The defaults that differ between
    levels (case, tied output, carried state, the memory, the planner) are
    the level's policy, `model/levels.py`. Adding a level means a subclass
    here and a `Level` there."""

    level: str
    unit: str  # "words", "characters": for messages
    start_token: str  # what an empty seed starts from
    paragraph_end: str  # the token that ends a paragraph
    copied_run: int  # tokens in a row that count as copied from the training text
    space_leads: bool  # logprobs: alternatives carry the token's leading space

    @classmethod
    def holds(cls, token: str) -> bool:
        """Whether a vocabulary entry can be a token of this level (the model
        file reader's check); special tokens (`<end>`, ...) always can."""
        return True

    def __init__(self, settings: TokenizerSettings) -> None:
        self.settings = settings
        if settings.items:  # every item follows an END, and an empty seed too
            self.start_token = END

    def tokenize(self, text: str) -> list[str]:
        raise NotImplementedError

    def stream_tokens(self, pieces: Iterable[str]) -> Iterator[list[str]]:
        """Tokens of text that arrives in pieces, block by block, exactly as
        `tokenize` of the whole would give them."""
        raise NotImplementedError

    def join(self, tokens: list[str]) -> str:
        """Tokens back into text."""
        raise NotImplementedError

    def streamer(self) -> StreamingDetokenizer:
        """A detokenizer that takes one token at a time (see `join`)."""
        raise NotImplementedError

    def written(self, token: str) -> str:
        """How a token usually appears in joined text, case aside ("" for
        one that is not written itself, such as a paragraph end or a label)."""
        return "" if is_label(token) else token

    def as_text(self, token: str) -> str:
        """A token as text where it stands alone (a log-probability's
        alternative): an item's end as the break between items, a paragraph
        end as the one between paragraphs; others as they are written."""
        if token == END:
            return "\n" if self.settings.documents == "lines" else "\n\n"
        return self.written(token) or "\n\n"

    def ends_text(self, token: str, until: str | None) -> str:
        """Whether `token` ends a text under `--until`: "after" it, "before" it
        (a paragraph end, which is not written), or "" (go on). An item
        model's `END` always ends it, unwritten."""
        if token == END:
            return "before"
        if until is None:
            return ""
        if token == self.paragraph_end:
            return "before"
        if until == "sentence" and token in SENTENCE_ENDS:
            return "after"
        return ""


class WordTokenizer(Tokenizer):
    """NLTK words and `PARAGRAPH`; detokenized into prose, with sentence
    capitals restored when the text was lower-cased."""

    level, unit, start_token, paragraph_end, copied_run = (
        "word",
        "words",
        PARAGRAPH,
        PARAGRAPH,
        5,
    )
    # A token's text carries the whitespace before it (so do its alternatives).
    space_leads = True

    def tokenize(self, text: str) -> list[str]:
        return _words(text, self.settings.lowercase)

    def stream_tokens(self, pieces: Iterable[str]) -> Iterator[list[str]]:
        return _word_pieces(pieces, self.settings.lowercase)

    def join(self, tokens: list[str]) -> str:
        return detokenize(_unlabelled(tokens), self.settings.lowercase)

    def streamer(self) -> StreamingDetokenizer:
        return _WithoutLabels(StreamingDetokenizer(self.settings.lowercase))

    def written(self, token: str) -> str:
        return "" if is_label(token) else _WRITTEN.get(token, token)


class _SpacedStream(StreamingDetokenizer):
    """The streaming joiner of pre-tokenized text: tokens with a space
    between them, a line break for each `EOS`."""

    def __init__(self) -> None:
        self._line = False  # the current line has a token

    def push(self, word: str) -> str:
        if word == EOS:
            self._line = False
            return "\n"
        out = " " + word if self._line else word
        self._line = True
        return out

    def push_many(self, words: Iterable[str]) -> str:
        return "".join(self.push(word) for word in words)

    def finish(self) -> str:
        return ""

    def held(self) -> int:
        return 0


class WhitespaceTokenizer(WordTokenizer):
    """Text that is already tokenized (a research corpus such as the Penn
    Treebank's): each whitespace-separated token kept as it is (`<unk>`
    is the unknown word, not a word of its own), each line ended by `EOS`
    (a sentence end, counted as such corpora's published scores count it),
    and output joined with spaces and line breaks, nothing more."""

    start_token = paragraph_end = EOS

    def tokenize(self, text: str) -> list[str]:
        tokens: list[str] = []
        for line in text.split("\n"):
            words = line.split()
            if words:
                tokens += [*words, EOS]
        return tokens

    def stream_tokens(self, pieces: Iterable[str]) -> Iterator[list[str]]:
        held = ""
        for piece in pieces:
            held += piece
            cut = held.rfind("\n") + 1
            if cut:
                block, held = self.tokenize(held[:cut]), held[cut:]
                if block:
                    yield block
        if self.tokenize(held):
            yield self.tokenize(held)

    def join(self, tokens: list[str]) -> str:
        return self.streamer().push_many(tokens)

    def streamer(self) -> StreamingDetokenizer:
        return _WithoutLabels(_SpacedStream())

    def written(self, token: str) -> str:
        return "" if token == EOS or is_label(token) else token

    def as_text(self, token: str) -> str:
        return "\n" if token == EOS else super().as_text(token)


class CharTokenizer(Tokenizer):
    """Every character as it is (case and all whitespace kept), joined back
    as they are; a line is a paragraph."""

    level, unit, start_token, paragraph_end, copied_run = (
        "char",
        "characters",
        "\n",
        "\n",
        20,
    )
    space_leads = False  # a space or line break is a token of its own

    @classmethod
    def holds(cls, token: str) -> bool:
        return len(token) == 1 or token == END or is_label(token)

    def tokenize(self, text: str) -> list[str]:
        return list(text.lower() if self.settings.lowercase else text)

    def stream_tokens(self, pieces: Iterable[str]) -> Iterator[list[str]]:
        for piece in pieces:
            if piece:
                yield self.tokenize(piece)

    def join(self, tokens: list[str]) -> str:
        return "".join(_unlabelled(tokens))

    def streamer(self) -> StreamingDetokenizer:
        return _WithoutLabels(_CharacterStream())

    def ends_text(self, token: str, until: str | None) -> str:
        if until == "sentence" and token == "\n":
            return ""  # a line break inside a sentence does not end it
        return super().ends_text(token, until)


_TOKENIZERS: dict[str, type[Tokenizer]] = {
    tokenizer.level: tokenizer for tokenizer in (WordTokenizer, CharTokenizer)
}
assert tuple(_TOKENIZERS) == LEVELS, "every level has its tokenizer"


def tokenizer_for(settings: TokenizerSettings) -> Tokenizer:
    """The tokenizer a model's saved settings name."""
    if settings.tokenizer == "whitespace":
        return WhitespaceTokenizer(settings)
    return _TOKENIZERS[settings.level](settings)


def level_class(level: str) -> type[Tokenizer]:
    """The tokenizer class of a level name (one of `LEVELS`): its defaults."""
    return _TOKENIZERS[level]
