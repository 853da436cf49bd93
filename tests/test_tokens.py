import pytest

from textgen.text.tokens import (
    PARAGRAPH,
    StreamingDetokenizer,
    TokenizerSettings,
    capitalize_sentences,
    detokenize,
    tokenize,
)

KEEP_CASE = TokenizerSettings(lowercase=False)


def test_words_punctuation_and_paragraph_breaks():
    text = "Call me Ishmael. It's late,\nisn't it?\n\n  \nNew paragraph!"
    assert tokenize(text) == [
        "call", "me", "ishmael", ".", "it", "'s", "late", ",", "is", "n't", "it",
        "?", PARAGRAPH, "new", "paragraph", "!",
    ]  # fmt: skip
    assert tokenize(text, KEEP_CASE)[:3] == ["Call", "me", "Ishmael"]


def test_no_paragraph_token_at_the_ends():
    assert tokenize("\n\nword\n\n\n") == ["word"]


@pytest.mark.parametrize(
    "sentence",
    [
        "The whale was white, and the sea was grey.",
        'She asked, "Where are you going?" He didn\'t answer.',
        "I can't believe it's already 3 o'clock!",
        "Some people (not many) like rain; others don't.",
        "The price was $5, or so they said: cheap.",
    ],
)
def test_tokenize_detokenize_round_trip(sentence: str):
    assert detokenize(tokenize(sentence, KEEP_CASE)) == sentence


def test_detokenize_restores_capitals_and_paragraphs():
    words = tokenize("the boat left. i stayed behind, and i'm glad!\n\nit rained.")
    assert detokenize(words, capitalize=True) == (
        "The boat left. I stayed behind, and I'm glad!\n\nIt rained."
    )


def test_capitalize_skips_leading_punctuation():
    assert capitalize_sentences(["``", "hello", "''", "."]) == [
        "``",
        "Hello",
        "''",
        ".",
    ]


def test_streaming_pieces_join_to_the_detokenized_text():
    text = (
        'the crew, tired and cold, said "no." then they slept -- all of them.\n\n'
        "morning came (slowly). i didn't wake."
    )
    words = tokenize(text)
    stream = StreamingDetokenizer(capitalize=True)
    pieces = [stream.push(w) for w in words] + [stream.finish()]
    assert "".join(pieces) == detokenize(words, capitalize=True)
    assert sum(1 for p in pieces if p) > len(words) // 2  # it really streams


@pytest.mark.slow
def test_streaming_matches_detokenize_on_messy_token_runs():
    """Random runs of words and punctuation: streaming never disagrees with the
    whole-text detokenizer, whatever the order of quotes, brackets and ends."""
    import random

    pieces_of_text = ["the", "cat", "i", ".", ",", "!", "?", "``", "''", "(", ")",
                      "n't", "'s", "--", ":", ";", "...", PARAGRAPH]  # fmt: skip
    rng = random.Random(0)
    # A space the detokenizer takes away before a word it had printed: the
    # streamed text once lost "'sn't"." here.
    runs = [["the", "i", "--", "'s", "n't", "''", "."]]
    for _ in range(1000):
        runs.append([rng.choice(pieces_of_text) for _ in range(rng.randint(1, 30))])
    for words in runs:
        for capitalize in (False, True):
            stream = StreamingDetokenizer(capitalize)
            streamed = "".join([stream.push(w) for w in words] + [stream.finish()])
            assert streamed == detokenize(words, capitalize), words


@pytest.mark.slow
def test_pushing_many_words_at_once_is_pushing_them_one_by_one(monkeypatch):
    """A seed is pushed at once (one detokenization per piece), then the
    generated words one by one: every part returned is what pushing each
    word would have returned in total, and what follows is the same."""
    import random

    import textgen.text.tokens as tokens

    monkeypatch.setattr(tokens, "_PIECE_WORDS", 4)  # many pieces in 30 words
    choices = ["the", "cat", "i", ".", ",", "!", "``", "''", "(", ")", "n't",
               "'s", "--", "gon", "na", PARAGRAPH]  # fmt: skip
    rng = random.Random(1)
    for _ in range(300):
        words = [rng.choice(choices) for _ in range(rng.randint(0, 30))]
        cut = rng.randint(0, len(words))
        for capitalize in (False, True):
            one, many = (
                StreamingDetokenizer(capitalize),
                StreamingDetokenizer(capitalize),
            )
            assert many.push_many(words[:cut]) == "".join(
                one.push(w) for w in words[:cut]
            ), words[:cut]
            assert [many.push(w) for w in words[cut:]] == [
                one.push(w) for w in words[cut:]
            ], words
            assert many.finish() == one.finish()


def test_detokenize_joins_sentences_like_the_whole_paragraph():
    text = 'He said, "stop." (she didn\'t.) "why?" they asked -- twice. end'
    words = tokenize(text, KEEP_CASE)
    from nltk.tokenize.treebank import TreebankWordDetokenizer

    assert detokenize(words) == TreebankWordDetokenizer().detokenize(words)


def test_nltk_loads_only_its_tokenizers_and_stays_whole_for_others():
    """textgen loads NLTK's three tokenizer modules without the package's
    heavy __init__; a later `import nltk` still gives the whole package."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from textgen.text.tokens import detokenize, tokenize\n"
        "assert 'nltk' not in sys.modules\n"
        "words = tokenize('It works. Mr. Smith said so!')\n"
        "assert 'nltk' not in sys.modules and 'nltk.tokenize.punkt' in sys.modules\n"
        "import nltk\n"
        "from nltk.tokenize.punkt import PunktSentenceTokenizer\n"
        "from textgen.text.tokens import _nltk\n"
        "assert isinstance(_nltk()[0], PunktSentenceTokenizer)\n"
        "assert hasattr(nltk, 'FreqDist') and hasattr(nltk, 'TreebankWordTokenizer')\n"
        "print(detokenize(words, True))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "It works. Mr. Smith said so!"


def _counting_detokenizer(monkeypatch) -> list[int]:
    """Record how many tokens each call of NLTK's detokenizer is given."""
    from textgen.text import tokens

    sizes: list[int] = []
    detokenizer = tokens._nltk()[2]
    real = detokenizer.detokenize

    def counted(words, *args, **kwargs):
        sizes.append(len(words))
        return real(words, *args, **kwargs)

    monkeypatch.setattr(detokenizer, "detokenize", counted)
    return sizes


@pytest.mark.slow
def test_a_long_sentence_costs_linear_detokenizing_work(monkeypatch):
    """A seed of 2,500 words with no sentence end used to be re-detokenized
    whole at every word (quadratic); now each word costs a bounded piece."""
    words = ("the sea " * 1250).split()
    sizes = _counting_detokenizer(monkeypatch)
    stream = StreamingDetokenizer(capitalize=True)
    streamed = "".join(stream.push(w) for w in words) + stream.finish()
    assert sum(sizes) <= 300 * len(words)  # quadratic would be ~1,250 x
    assert max(sizes) <= 256
    assert streamed == detokenize(words, capitalize=True)
    # Pieces end between plain words, where NLTK keeps the space anyway: the
    # text is what detokenizing the whole sentence at once gives.
    from textgen.text.tokens import _nltk

    assert streamed == _nltk()[2].detokenize(["The", *words[1:]])
    sizes.clear()
    detokenize(words)
    assert sum(sizes) == len(words)  # each word once


def test_long_sentences_never_cut_inside_what_nltk_joins():
    words = ["we", "can", "not", "go", "gon", "na", "stay", "wan", "na"] * 40
    from textgen.text.tokens import _nltk

    assert detokenize(words) == _nltk()[2].detokenize(words)
    stream = StreamingDetokenizer()
    assert "".join(stream.push(w) for w in words) + stream.finish() == detokenize(words)


def test_a_sentence_with_no_safe_cut_is_still_cut_and_streams_whole(monkeypatch):
    words = [",", "--", ";"] * 400  # nothing NLTK would leave a space between
    sizes = _counting_detokenizer(monkeypatch)
    stream = StreamingDetokenizer()
    streamed = "".join(stream.push(w) for w in words) + stream.finish()
    assert max(sizes) <= 256
    assert streamed == detokenize(words)
