"""Token log-probabilities (`textgen.logprobs`): the numbers, and the cutting
of a text into its tokens' texts, streamed or at once."""

from __future__ import annotations

import random

import numpy as np
import pytest

from textgen.inference.logprobs import (
    Choice,
    RowLogprobs,
    TokenTexts,
    choices,
    echo_logprobs,
)
from textgen.text.tokens import PARAGRAPH, TokenizerSettings, tokenizer_for

WORDS = tokenizer_for(TokenizerSettings())
CHARS = tokenizer_for(TokenizerSettings(level="char"))
MESSY = ["the", "cat", "i", "sat", ".", ",", "!", "?", "``", "''", "(", ")",
         "n't", "'s", "--", ":", ";", "...", PARAGRAPH]  # fmt: skip


def test_choices_are_log_softmax_with_the_top_alternatives_first():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 7)).astype(np.float32) * 3
    logits[2, 4] = -np.inf  # a word that cannot come
    chosen = np.array([1, 6, 0])
    words = [f"w{i}" for i in range(7)]
    found = choices(logits, chosen, 3, words)
    expected = logits.astype(np.float64)
    expected -= np.log(np.exp(expected).sum(axis=1, keepdims=True))
    for row, choice in enumerate(found):
        assert choice.token == words[chosen[row]]
        assert choice.logprob == pytest.approx(expected[row, chosen[row]], abs=1e-9)
        best = np.argsort(-expected[row])[:3]
        assert [w for w, _ in choice.top] == [words[i] for i in best]
        values = [v for _, v in choice.top]
        assert values == sorted(values, reverse=True)
    assert choices(logits, chosen, 0, words)[0].top == ()
    assert len(choices(logits, chosen, 20, words)[0].top) == 7  # at most the vocabulary


def _cut_as_it_streams(tokenizer, words: list[str], rng: random.Random):
    """Cut while the text arrives in the detokenizer's own pieces, in random
    order with the tokens (each token before its text, as generation runs)."""
    texts, stream, text, spans = TokenTexts(tokenizer), tokenizer.streamer(), "", []
    for word in words:
        texts.add(word)
        text += stream.push(word)
        if rng.random() < 0.5:
            spans += texts.cut(text)
    text += stream.finish()
    return spans + texts.cut(text, final=True), text


@pytest.mark.parametrize("capitalize", [False, True])
def test_token_texts_join_to_the_text_and_stream_as_they_cut_at_once(capitalize):
    tokenizer = tokenizer_for(TokenizerSettings(lowercase=capitalize))
    rng = random.Random(1)
    for _ in range(200):
        words = [rng.choice(MESSY) for _ in range(rng.randint(1, 25))]
        spans, text = _cut_as_it_streams(tokenizer, words, rng)
        assert text == tokenizer.join(words)
        at_once = TokenTexts(tokenizer)
        for word in words:
            at_once.add(word)
        assert at_once.cut(text, final=True) == spans, words
        assert len(spans) == len(words)
        assert "".join(text[a:b] for a, b in spans) == text
        assert all(a <= b for a, b in spans)


def test_a_word_is_its_own_text_with_the_space_before_it():
    words = WORDS.tokenize('He said "no" -- twice.\n\nThen he left, didn\'t he?')
    texts = TokenTexts(WORDS)
    for word in words:
        texts.add(word)
    text = WORDS.join(words)
    pieces = [text[a:b] for a, b in texts.cut(text, final=True)]
    assert text.startswith('He said "no"--twice.')  # NLTK's way with dashes
    assert pieces == ["He", " said", ' "', "no", '"', "--", "twice", ".", "\n\n",
                      "Then", " he", " left", ",", " did", "n't", " he",
                      "?"]  # fmt: skip


def test_characters_are_cut_one_each():
    text = "ab c\n\nd"
    texts = TokenTexts(CHARS)
    for ch in text:
        texts.add(ch)
    assert [text[a:b] for a, b in texts.cut(text, final=True)] == list(text)


def test_a_row_without_its_prompt_counts_offsets_from_the_continuation():
    seed = WORDS.tokenize("the old man")
    generated = WORDS.tokenize("said no.")
    row = RowLogprobs(WORDS, seed)
    picked = [Choice(w, -1.0, ((w, -1.0), ("x", -2.0))) for w in generated]
    text = WORDS.join(seed + generated)
    found = row.finish(text, picked)
    continuation = text[row.base :]
    assert continuation == " said no."
    assert "".join(found["tokens"]) == continuation
    for offset, token in zip(found["text_offset"], found["tokens"], strict=True):
        assert continuation[offset:].startswith(token)
    # The chosen token is found among the alternatives as it is written.
    tops = found["top_logprobs"]
    assert all(t in top for t, top in zip(found["tokens"], tops, strict=True))


def test_an_echoed_prompt_is_cut_from_the_text_as_sent_by_its_own_words():
    text = "The  Zyzzyva\tsat"
    seed = WORDS.tokenize(text)
    prompt = [Choice("the", None), Choice("<unk>", -9.0), Choice("sat", -2.0)]
    found = echo_logprobs(text, seed, prompt, WORDS)
    assert found["tokens"] == ["The", "  Zyzzyva", "\tsat"]
    assert found["token_logprobs"] == [None, -9.0, -2.0]
    assert found["top_logprobs"][0] is None
    assert found["text_offset"] == [0, 3, 12]
    # Generated tokens follow it, their offsets counted in the returned text.
    row = RowLogprobs(WORDS, seed, found)
    more = WORDS.tokenize("sat down")[1:]
    joined = WORDS.join(seed + more)
    out = row.finish(joined, [Choice(w, -1.0) for w in more])
    assert "".join(out["tokens"]) == text + " down"
    assert out["text_offset"][-1] == len(text)


def _one_token_at_a_time(generator, words: list[str]) -> list[float]:
    """Each token's log-probability, by the plainest reading there is: one
    token at a time from zero states, the start token first, the states
    zeroed at every start token of an item model, the memory's context the
    ids before the token."""
    from textgen.text.vocab import PAD_ID

    ids = [int(i) for i in generator.vocabulary.encode(words)]
    start = generator.vocabulary.word_to_id[generator.tokenizer.start_token]
    width = generator.mixture.ngram.order - 1 if generator.mixture else 1
    decoder, states, previous = generator.decoder, None, start
    found = []
    for t, token in enumerate(ids):
        if states is None or (generator.tokenizer_settings.items and previous == start):
            states = decoder.zero_states(1)
        top, states = decoder.advance(np.array([previous]), states)
        history = np.array([([PAD_ID] * width + ids[:t])[-width:]])
        logits = generator.next_logits(decoder.logits(top), history)[0]
        logits = logits.astype(np.float64)
        found.append(logits[token] - np.log(np.exp(logits - logits.max()).sum())
                     - logits.max())  # fmt: skip
        previous = token
    return found


@pytest.mark.parametrize("which", ["words", "items"])
def test_a_scored_prompt_is_the_plain_token_by_token_reading(
    which, trained, name_model, monkeypatch
):
    """`prompt_choices` (what echo returns, in blocks, through the scorer
    `evaluate` shares) gives each token what a one-token-at-a-time loop
    written here gives it, across block edges and item starts."""
    from textgen.inference.generate import Generator
    from textgen.inference.logprobs import prompt_choices
    from textgen.model import scoring

    monkeypatch.setattr(scoring, "BLOCK", 5)  # several blocks in one prompt
    if which == "words":
        generator = Generator(trained[1])
        words = generator.seed_words("one two two three, four five. six seven one two")
    else:
        generator = Generator(name_model[1])
        _, words = generator.echo_words("bako\nlu\ntami", None)
    assert len(words) > 10
    got = [c.logprob for c in prompt_choices(generator, words, top=0)]
    expected = _one_token_at_a_time(generator, words)
    assert got[0] is None
    assert got[1:] == pytest.approx(expected[1:], abs=1e-5)
