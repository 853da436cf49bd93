"""Words from text and text from words, with NLTK's data-free tokenizers.

Paragraph breaks become the `PARAGRAPH` token; text is lower-cased unless the
settings keep case, and detokenized output gets its sentence capitals back.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from nltk.tokenize import NLTKWordTokenizer
from nltk.tokenize.punkt import PunktSentenceTokenizer
from nltk.tokenize.treebank import TreebankWordDetokenizer

PARAGRAPH = "<p>"
SENTENCE_ENDS = frozenset({".", "!", "?", "..."})

# An untrained Punkt model needs no downloaded data; it splits on ". ! ?" well
# enough for word tokenization, which is all it is used for here.
_sentence_splitter = PunktSentenceTokenizer()
_word_tokenizer = NLTKWordTokenizer()
_detokenizer = TreebankWordDetokenizer()
_paragraph_break = re.compile(r"\n[ \t]*\n\s*")


@dataclass(frozen=True)
class TokenizerSettings:
    """How text becomes words; saved in the model so generation matches."""

    lowercase: bool = True  # fold case; output is re-capitalised at sentence starts


def tokenize(text: str, settings: TokenizerSettings = TokenizerSettings()) -> list[str]:
    """Split text into word tokens, with `PARAGRAPH` between paragraphs.

    Args:
        text: any text; single line breaks inside a paragraph are spaces.
        settings: the case policy.
    """
    words: list[str] = []
    for paragraph in _paragraph_break.split(text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        if words:
            words.append(PARAGRAPH)
        for sentence in _sentence_splitter.tokenize(paragraph):
            words.extend(_word_tokenizer.tokenize(sentence))
    if settings.lowercase:
        words = [w if w == PARAGRAPH else w.lower() for w in words]
    return words


def capitalize_sentences(words: list[str]) -> list[str]:
    """Upper-case the first letter of each sentence and the pronoun "i"."""
    result = []
    sentence_start = True
    for word in words:
        if word == "i":
            word = "I"
        if sentence_start and word[:1].isalnum():
            word = word[0].upper() + word[1:]
            sentence_start = False
        elif word[:1].isalnum():
            sentence_start = False
        if word in SENTENCE_ENDS:
            sentence_start = True
        result.append(word)
    return result


def _detokenize_paragraph(words: list[str], capitalize: bool) -> str:
    if capitalize:
        words = capitalize_sentences(words)
    return _detokenizer.detokenize(words)


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

    Args:
        words: tokens as `tokenize` makes them.
        capitalize: restore sentence-initial capitals (for lower-cased models).
    """
    return "\n\n".join(
        _detokenize_paragraph(p, capitalize) for p in _split_paragraphs(words)
    )


class StreamingDetokenizer:
    """Detokenize words one at a time, returning the text that is safe to print.

    The detokenizer may still change the space before the newest word (as in
    "word --" becoming "word--x"), so the text printed is the part the last two
    detokenizations agree on, without trailing space; `finish` prints the rest.
    """

    def __init__(self, capitalize: bool = False) -> None:
        self.capitalize = capitalize
        self._paragraph: list[str] = []
        self._previous = ""  # detokenization of the paragraph so far
        self._printed = ""  # of the current paragraph
        self._started = False  # any text printed at all
        self._break_pending = False

    def push(self, word: str) -> str:
        """Add one word; return the new text to print (may be empty)."""
        if word == PARAGRAPH:
            out = self._flush_paragraph()
            self._break_pending = self._started
            return out
        out = ""
        if self._break_pending:
            out, self._break_pending = "\n\n", False
        self._paragraph.append(word)
        current = _detokenize_paragraph(self._paragraph, self.capitalize)
        # commonprefix compares characters, which is what is wanted here.
        stable = os.path.commonprefix([self._previous, current]).rstrip()  # noqa: RUF071
        self._previous = current
        if len(stable) > len(self._printed) and stable.startswith(self._printed):
            out += stable[len(self._printed) :]
            self._printed = stable
        self._started = self._started or bool(out)
        return out

    def _flush_paragraph(self) -> str:
        rest = self._previous[len(self._printed) :]
        if not self._previous.startswith(self._printed):
            rest = ""  # the rare case where the tail was rewritten: keep what shows
        self._paragraph, self._previous, self._printed = [], "", ""
        self._started = self._started or bool(rest)
        return rest

    def finish(self) -> str:
        """Return the text still held back; call once after the last word."""
        return self._flush_paragraph()
