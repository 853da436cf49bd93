"""Prompts read once: the caller's text or token ids as the model's tokens.

A client of `textgen serve` may send a prompt as text or as token ids (what
`POST /tokenize` gave it), and asks `echo` to return the prompt as it sent
it. `TokenIds` is a served model's ids as clients see them: the vocabulary's
rows, the start token (`START`, the id after the vocabulary's last, which
reads as nothing: a prompt that begins with it begins where any prompt does,
but its first token is scored), and ids handed out for words the vocabulary
lacks, so that a word round-trips through its id (it is scored as `<unk>`,
as the same word in text is). `read_text` and `read_ids` make a `Prompt`:
what the model reads, and the text echo returns, with `token_spans` saying
which slice of that text each token came from.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..inference.contract import kind_of
from ..text.tokens import END
from ..text.vocab import UNK_ID

if TYPE_CHECKING:
    from ..inference.generate import Generator
    from ..text.tokens import Tokenizer
    from ..text.vocab import Vocabulary

# What clients call the start token (`GET /tokenizer_info`'s bos and eos
# token, as GPT-2's tokenizer names its document boundary).
START = "<|endoftext|>"
# Most words outside the vocabulary a served model hands ids out for, and
# most characters in all (a word of over 100 characters gets none); past
# them an unknown word gets `<unk>`'s id (scored the same; its text is lost).
# So the table stays under ~20 MB whatever clients send.
MAX_UNKNOWN_IDS = 1 << 17
MAX_UNKNOWN_CHARS = 4 << 20
MAX_UNKNOWN_WORD = 100


class PromptError(ValueError):
    """A prompt that cannot be read (a 400): `str` is one line."""


class TokenIds:
    """A served model's token ids: the vocabulary's, `START`, and the words
    it lacks (thread-safe: prompts are read in worker threads)."""

    def __init__(self, vocabulary: Vocabulary, most: int = MAX_UNKNOWN_IDS) -> None:
        self.vocabulary = vocabulary
        self.start = len(vocabulary)  # START's id
        self.most = most
        self._unknown: dict[str, int] = {}
        self._words: list[str] = []  # by id - start - 1
        self._chars = 0  # their characters
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """One more than the largest id handed out."""
        return self.start + 1 + len(self._words)

    def ids(self, tokens: Sequence[str], started: bool = False) -> list[int]:
        """Each token's id (`started`: `START`'s first)."""
        known = self.vocabulary.word_to_id
        found = [self.start] if started else []
        for token in tokens:
            at = known.get(token)
            found.append(self._unknown_id(token) if at is None else at)
        return found

    def _unknown_id(self, word: str) -> int:
        with self._lock:
            at = self._unknown.get(word)
            if at is None:
                if (
                    len(self._words) >= self.most
                    or len(word) > MAX_UNKNOWN_WORD
                    or self._chars + len(word) > MAX_UNKNOWN_CHARS
                ):
                    return UNK_ID
                self._chars += len(word)
                at = self.start + 1 + len(self._words)
                self._unknown[word] = at
                self._words.append(word)
            return at

    def tokens(self, ids: Sequence[int]) -> tuple[bool, list[str]]:
        """Whether the ids begin with `START`, and the tokens after it.

        Raises:
            PromptError: an id is not a whole number this model gave out, or
                `START` is not first.
        """
        words, vocab = self.vocabulary.words, len(self.vocabulary)
        started = bool(ids) and _is_int(ids[0]) and ids[0] == self.start
        tokens = []
        for at in ids[1:] if started else ids:
            if not _is_int(at) or not 0 <= at < self.size:
                raise PromptError(
                    f"token id {at!r} is not one of this model's (0 to "
                    f"{self.size - 1:,}: get them from POST /tokenize)"
                )
            if at == self.start:
                raise PromptError(
                    f"token id {at} (the start token, {START}) may only come first"
                )
            tokens.append(words[at] if at < vocab else self._words[at - vocab - 1])
        return started, tokens


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Prompt:
    """One prompt as read: `tokens` (what the model reads after the start;
    words it lacks kept as they are), `text` (what `echo` returns: the
    caller's string as sent, or the ids' detokenized text), and `started`
    (it began with `START`, which is then echoed as a token of its own
    with no log-probability, and the first token after it is scored)."""

    text: str
    tokens: tuple[str, ...]
    started: bool = False
    as_text: bool = True  # sent as text (not as ids)

    @property
    def start_text(self) -> str:
        """`START`'s text at the start of `text`, if it began with it."""
        return START if self.started else ""

    def joined(self, generator: Generator) -> str:
        """Its tokens as the model writes them (where its continuation
        starts in the generated text): for ids, their text already made."""
        if not self.as_text and END not in self.tokens:
            return self.text[len(self.start_text) :]
        return generator.join(list(self.tokens))

    @property
    def count(self) -> int:
        """Tokens sent (`START` included): the prompt's `usage`."""
        return len(self.tokens) + self.started

    def scored(self, generator: Generator) -> tuple[list[str], list[str]]:
        """Its tokens as echoed and as scored when it is scored alone (see
        `Generator.echo_words`: an item model's items each read from a fresh
        start); ids are scored as sent, an `END` echoed as the break it is."""
        if self.as_text:
            text = self.text[len(self.start_text) :]
            return generator.echo_words(text, list(self.tokens))
        tokenizer = generator.tokenizer
        shown = [tokenizer.paragraph_end if t == END else t for t in self.tokens]
        return shown, list(self.tokens)


def read_text(tokenizer: Tokenizer, text: str) -> Prompt:
    """A text prompt (one that begins with `START` begins at the start,
    as any does)."""
    started = text.startswith(START)
    rest = text[len(START) :] if started else text
    return Prompt(text, tuple(tokenizer.tokenize(rest)), started)


def read_ids(tokenizer: Tokenizer, ids: TokenIds, given: Sequence[int]) -> Prompt:
    """A prompt of token ids (raises `PromptError`); an item model's `END`
    ids end its items (written as the line or paragraph break), and a first
    `START` is written as its name, which reads back as the start."""
    started, tokens = ids.tokens(given)
    text = START * started + detokenize(tokenizer, tokens)
    return Prompt(text, tuple(tokens), started, as_text=False)


def detokenize(tokenizer: Tokenizer, tokens: Sequence[str]) -> str:
    """The text of tokens (`POST /detokenize`), an item's `END` as the break
    between items."""
    return tokenizer.join([tokenizer.paragraph_end if t == END else t for t in tokens])


# A chat's messages as one prompt (`POST /v1/chat/completions`, and
# `GET /tokenizer_info`'s `chat_template` for clients that apply it
# themselves): each message's text a paragraph of its own, roles unwritten
# (a model trained on prose has never seen "user:"), the reply a new
# paragraph after the last.
CHAT_TEMPLATE = "{% for message in messages %}{{ message['content'] }}\n\n{% endfor %}"


def tokenizer_info(
    name: str, ids: TokenIds, tokenizer: Tokenizer, max_prompt_tokens: int
) -> dict[str, Any]:
    """`GET /tokenizer_info` of model `name`, in vLLM's shape (what
    lm-evaluation-harness's `remote` tokenizer reads)."""
    settings = tokenizer.settings
    return {
        "model": name,
        "bos_token": START,
        "eos_token": START,
        "pad_token": None,
        "unk_token": "<unk>",
        "chat_template": CHAT_TEMPLATE,
        "level": settings.level,
        "lowercase": settings.lowercase,
        "vocab_size": ids.start,
        "max_model_len": max_prompt_tokens,
    }


def tokenize(
    tokenizer: Tokenizer, ids: TokenIds, body: dict, max_prompt_tokens: int
) -> dict[str, Any]:
    """`POST /tokenize` {"prompt", "add_special_tokens"} -> {"tokens"}: the
    ids the prompt reads as (words the vocabulary lacks get ids of their
    own, which read back as the word)."""
    text = body.get("prompt")
    if not isinstance(text, str):
        raise PromptError(f"prompt must be a string, not {kind_of(text)}")
    special = body.get("add_special_tokens", False)
    if not isinstance(special, bool):
        raise PromptError(
            f"add_special_tokens must be true or false, not {kind_of(special)}"
        )
    prompt = read_text(tokenizer, text)
    found = ids.ids(prompt.tokens, prompt.started or special)
    return {"tokens": found, "count": len(found), "max_model_len": max_prompt_tokens}


def detokenize_ids(tokenizer: Tokenizer, ids: TokenIds, body: dict) -> dict[str, Any]:
    """`POST /detokenize` {"tokens"} -> {"prompt"}: the text of token ids
    (a first start token as its name, so the text reads back as the ids)."""
    given = body.get("tokens")
    if not isinstance(given, list):
        raise PromptError(f"tokens must be a list of token ids, not {kind_of(given)}")
    return {"prompt": read_ids(tokenizer, ids, given).text}
