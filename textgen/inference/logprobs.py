"""Log-probabilities of tokens: how likely each token was, and what else was.

What `textgen serve` returns for `logprobs` and `echo`. A generated token's
log-probability is taken from the distribution the sampler drew it from
before temperature, penalties and filters (the network mixed with the n-gram
memory when the model has one); a prompt's tokens are scored as `textgen
evaluate` scores a text: read from the start of a text (of an item, for an
item model), each given all the tokens before it.

`TokenTexts` cuts a row's text into the text of each of its tokens, so the
pieces join to the text returned and each one's offset indexes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..model.perplexity import log_sum_exp
from ..model.scoring import primed_inputs, recurrent_outputs
from ..text.vocab import PAD_ID

if TYPE_CHECKING:
    from ..model.decoder import Decoder
    from ..text.tokens import Tokenizer, TokenizerSettings
    from ..text.vocab import Vocabulary


class Reader(Protocol):
    """What scoring a prompt needs of a model being run (a `Generator` is
    one): its vocabulary and settings, its decoder, its memory, and the
    scores it draws a next token from."""

    vocabulary: Vocabulary
    tokenizer_settings: TokenizerSettings
    decoder: Decoder
    mixture: Any

    def next_logits(self, logits: np.ndarray, history: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Choice:
    """One token, its log-probability (natural log; None for a prompt's first
    token, which nothing before it predicts) and the `top` most likely tokens
    at its place, most likely first."""

    token: str  # the model's token, as its vocabulary holds it
    logprob: float | None
    top: tuple[tuple[str, float], ...] = ()


def choices(
    logits: np.ndarray, chosen: np.ndarray, top: int, words: Sequence[str]
) -> list[Choice]:
    """The `Choice` of each row: `chosen` (rows,) ids under `logits` (rows,
    vocab_size; any offset), with its `top` most likely ids."""
    logp = np.asarray(logits, dtype=np.float64)
    logp = logp - log_sum_exp(logp)
    rows = np.arange(len(chosen))
    picked = logp[rows, chosen]
    top = min(top, logp.shape[1])
    if top:
        best = np.argpartition(-logp, top - 1, axis=1)[:, :top]
        order = np.argsort(-logp[rows[:, None], best], axis=1, kind="stable")
        best = np.take_along_axis(best, order, axis=1)
        values = logp[rows[:, None], best]
    return [
        Choice(
            words[chosen[r]],
            float(picked[r]),
            tuple((words[i], float(v)) for i, v in zip(best[r], values[r], strict=True))
            if top
            else (),
        )
        for r in rows
    ]


def prompt_choices(
    generator: Reader,
    words: list[str],
    top: int,
    check: Callable[[], None] | None = None,
    started: bool = False,
) -> list[Choice]:
    """Each of a prompt's tokens (`words`) scored as `textgen evaluate`
    scores a text: the network primed with the start token, the n-gram
    memory (if mixed in) from the start of the text, and for an item model
    each item (after an `END` in `words`) from a fresh start; the first
    token's log-probability is None, as OpenAI's API gives it, unless the
    prompt was `started` with the start token (which the caller then shows
    before it, with None). `check` is called before each block of tokens
    (it may raise to stop)."""
    if not words:
        return []
    vocabulary, decoder = generator.vocabulary, generator.decoder
    ids = vocabulary.encode(words).astype(np.int64)
    inputs = primed_inputs(generator, ids)
    # An item model reads every item from zero states and its start token.
    fresh = inputs[0] if generator.tokenizer_settings.items else None
    width = generator.mixture.ngram.order - 1 if generator.mixture else 1
    padded = np.concatenate([np.full(width, PAD_ID, dtype=np.int64), ids])
    found: list[Choice] = []
    for begin, hidden in recurrent_outputs(decoder, inputs, None, fresh, check):
        at = np.arange(begin, begin + len(hidden))
        history = padded[at[:, None] + np.arange(width)]  # ids before each one
        logits = generator.next_logits(decoder.logits(hidden), history)
        found += choices(logits, ids[at], top, vocabulary.words)
    if not started:
        found[0] = Choice(found[0].token, None)
    return found


class TokenTexts:
    """Cuts one row's text into the texts of its tokens as its tokens and its
    text arrive (the text may lag behind: it is shown once it is final).

    Token i's text runs from where token i - 1's ends to the end of its own
    written form (found in a short window: the detokenizer may capitalize it
    or drop the space before it), so a space before a word is part of its
    text; a token with no written form of its own (a paragraph end, a quote
    the detokenizer rewrote) takes the whitespace there, or runs to where the
    detokenized text of the tokens so far ends. Cutting as text arrives gives
    the same pieces as cutting the final text at once; they join to the
    row's text from `start`.
    """

    _SLACK = 4  # characters a written form may sit after where it is looked for

    def __init__(self, tokenizer: Tokenizer, before: list[str] = ()) -> None:
        """`before`: tokens whose text comes first and is not cut (a prompt
        not echoed)."""
        self.tokenizer, self.stream = tokenizer, tokenizer.streamer()
        self.size = len(self.stream.push_many(before))
        self.start = self.pos = self.size + self.stream.held()
        self.forms: list[str] = []  # each token as it is written
        self.ends: list[int] = []  # the detokenized text's length after each
        self.cut_count = 0

    def add(self, word: str) -> None:
        """The next token."""
        self.forms.append(self.tokenizer.written(word))
        self.size += len(self.stream.push(word))
        self.ends.append(self.size + self.stream.held())

    def cut(self, text: str, final: bool = False) -> list[tuple[int, int]]:
        """(start, end) in `text` (the row's text so far, or with `final` all
        of it) of each token not cut before whose text is complete in it."""
        spans = []
        while self.cut_count < len(self.forms):
            i, pos = self.cut_count, self.pos
            word = self.forms[i]
            window = pos + len(word) + self._SLACK
            if not final and len(text) < max(window, self.ends[i]):
                break
            seen = text[pos:window]
            lowered = seen.lower()
            at = lowered.find(word.lower()) if len(lowered) == len(seen) else -1
            if word and at >= 0:
                end = pos + at + len(word)
            else:
                end = min(max(self.ends[i], pos), len(text))
                while end < len(text) and text[end].isspace():
                    end += 1
                if end == len(text) and not final:
                    break  # the whitespace may go on
            if final and i == len(self.forms) - 1:
                end = len(text)
            spans.append((pos, end))
            self.pos, self.cut_count = end, i + 1
        return spans


def logprobs_json(
    choices_: Sequence[Choice],
    spans: Sequence[tuple[int, int]],
    text: str,
    base: int,
    tokenizer: Tokenizer | None = None,
) -> dict:
    """OpenAI's `logprobs` object for tokens and their `spans` in `text`,
    offsets counted from `base` (where the returned text starts). The
    alternatives are written as the token is: the chosen one as its text,
    the others as their text (`Tokenizer.as_text`: a paragraph or item end
    as its line breaks), a word after the chosen token's leading
    whitespace, so a client can find the token among them; a character is
    its own text (a space or a line break is the whole token). As OpenAI's
    API does, the chosen token is always among them, even when it is not
    one of the `top` likeliest (so up to `top` + 1 entries)."""
    tokens = [text[a:b] for a, b in spans]
    tops: list[dict[str, float] | None] = []
    lead = tokenizer is not None and tokenizer.space_leads
    for choice, token in zip(choices_, tokens, strict=True):
        if choice.logprob is None:
            tops.append(None)
            continue
        space = token[: len(token) - len(token.lstrip())] if lead else ""
        top = {}
        for word, value in choice.top:
            if word == choice.token:
                top[token] = value
                continue
            written = tokenizer.as_text(word) if tokenizer else word
            key = space + written if written.strip() else written
            if key != token:  # (another token written as the chosen one is)
                top.setdefault(key, value)
        top.setdefault(token, choice.logprob)
        tops.append(top)
    return {
        "tokens": tokens,
        "token_logprobs": [c.logprob for c in choices_],
        "top_logprobs": tops,
        "text_offset": [a - base for a, _ in spans],
    }


class RowLogprobs:
    """One completion's `logprobs` as OpenAI gives them, built as its tokens
    and text arrive: `extend` with each piece of the generator's text
    (streaming) says which tokens it completed; `finish` with the final text
    gives the rest. An echoed prompt's tokens (`echo`) come first, cut from
    the prompt as the caller sent it; the returned text is that prompt and
    then what the generator wrote after its seed."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        seed_words: Sequence[str],
        echo: dict | None = None,
    ) -> None:
        """`echo`: the prompt's `logprobs_json` (its text is the returned
        text's start); None: the prompt is not returned."""
        self.texts = TokenTexts(tokenizer, list(seed_words))
        self.head = "".join(echo["tokens"]) if echo else ""
        # Where the generator's text after the seed starts, counted so that
        # offsets index the returned text (the echoed prompt first).
        self.base = self.texts.start - len(self.head)
        self.echo = echo  # given with the first tokens
        self.choices: list[Choice] = []
        self.text = ""  # the generator's text so far, the seed's included
        self.given = 0  # generated tokens given out

    def add(self, choice: Choice) -> None:
        """The next generated token."""
        self.choices.append(choice)
        self.texts.add(choice.token)

    def extend(self, piece: str) -> dict | None:
        """The tokens the next piece of the generator's text completed (None:
        none)."""
        self.text += piece
        return self._given(self.texts.cut(self.text), self.text)

    def finish(self, text: str, generated: Sequence[Choice] = ()) -> dict:
        """The tokens not given yet, in the generator's final `text`;
        `generated`: all the row's generated choices (those not added as
        they came are)."""
        for choice in generated[len(self.choices) :]:
            self.add(choice)
        return self._given(self.texts.cut(text, final=True), text) or logprobs_json(
            [], [], text, self.base
        )

    def _given(self, spans: list[tuple[int, int]], text: str) -> dict | None:
        echo = self.echo
        if not spans:
            if echo is not None and (echo["tokens"] or not self.head):
                self.echo = None
                return echo
            return None  # a prompt of whitespace alone waits for a token
        self.echo = None
        first, self.given = self.given, self.given + len(spans)
        part = logprobs_json(
            self.choices[first : self.given],
            spans,
            text,
            self.base,
            self.texts.tokenizer,
        )
        if echo is None:
            return part
        if self.head and not echo["tokens"]:
            # An echoed prompt of whitespace alone has no token: its text
            # goes with the first generated one, so the tokens join to the text.
            token = part["tokens"][0]
            part["tokens"][0] = self.head + token
            part["text_offset"][0] = 0
            top = part["top_logprobs"][0]
            if top is not None:
                part["top_logprobs"][0] = {
                    (self.head + key if key == token else key): value
                    for key, value in top.items()
                }
        return {key: echo[key] + part[key] for key in part}


def echo_logprobs(
    text: str,
    tokens: Sequence[str],
    choices_: Sequence[Choice],
    tokenizer: Tokenizer,
    start: str | None = None,
) -> dict:
    """An echoed prompt's `logprobs`: each token the slice of `text` (the
    prompt as the caller sent it) it came from (`token_spans`). `start`:
    the prompt began with the start token, sent as this text (it is a
    token of its own, with no log-probability)."""
    spans = []
    if start is not None:
        spans.append((0, len(start)))
    skip = len(start or "")
    spans += [
        (a + skip, b + skip) for a, b in token_spans(text[skip:], tokens, tokenizer)
    ]
    if spans:
        spans[-1] = (spans[-1][0], len(text))
    return logprobs_json(choices_, spans, text, 0, tokenizer)


def token_spans(
    text: str, tokens: Sequence[str], tokenizer: Tokenizer
) -> list[tuple[int, int]]:
    """(start, end) in `text` of each of the `tokens` read from it, tiling
    it: a token's slice is the whitespace before it and its written form
    (found case aside; a paragraph end, which has none, or a space where
    the text has other whitespace, takes the whitespace there); the last
    one runs to the end. A form the tokenizer
    rewrote (NLTK's quotes) that is not where it should be takes one
    character, and the tokens after it find their own again."""
    spans = []
    pos = 0
    for token in tokens:
        end = _end_of(text, pos, tokenizer.written(token))
        spans.append((pos, end))
        pos = end
    if spans:
        spans[-1] = (spans[-1][0], len(text))
    return spans


def _end_of(text: str, pos: int, form: str) -> int:
    """Where a token written `form` ends in `text`, looked for from `pos`."""
    at, size, lowered = pos, len(form), form.lower()
    while at < len(text):
        if form and text[at : at + size].lower() == lowered:
            return at + size
        if not text[at].isspace():
            break
        at += 1
    if not form.strip():  # a break, or a space the tokenizer made of other
        return at  # whitespace (an item's tab): the whitespace there
    return min(at + 1, len(text))
