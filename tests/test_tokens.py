import pytest

from textgen.tokens import (
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


def test_streaming_matches_detokenize_on_messy_token_runs():
    """Random runs of words and punctuation: streaming never disagrees with the
    whole-text detokenizer, whatever the order of quotes, brackets and ends."""
    import random

    pieces_of_text = ["the", "cat", "i", ".", ",", "!", "?", "``", "''", "(", ")",
                      "n't", "'s", "--", ":", ";", "...", PARAGRAPH]  # fmt: skip
    rng = random.Random(0)
    for _ in range(300):
        words = [rng.choice(pieces_of_text) for _ in range(rng.randint(1, 30))]
        for capitalize in (False, True):
            stream = StreamingDetokenizer(capitalize)
            streamed = "".join([stream.push(w) for w in words] + [stream.finish()])
            assert streamed == detokenize(words, capitalize), words


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
        "from textgen.tokens import detokenize, tokenize\n"
        "assert 'nltk' not in sys.modules\n"
        "words = tokenize('It works. Mr. Smith said so!')\n"
        "assert 'nltk' not in sys.modules and 'nltk.tokenize.punkt' in sys.modules\n"
        "import nltk\n"
        "from nltk.tokenize.punkt import PunktSentenceTokenizer\n"
        "from textgen.tokens import _nltk\n"
        "assert isinstance(_nltk()[0], PunktSentenceTokenizer)\n"
        "assert hasattr(nltk, 'FreqDist') and hasattr(nltk, 'TreebankWordTokenizer')\n"
        "print(detokenize(words, True))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "It works. Mr. Smith said so!"
