"""Text that is already tokenized (`--tokenizer whitespace`): tokens kept as
they are, `<unk>` the unknown word, a line a sentence."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from textgen.cli import cli
from textgen.text.tokens import EOS, TokenizerSettings, tokenizer_for
from textgen.text.vocab import UNK_ID, Vocabulary

PTB = (
    " a <unk> said the N company 's shares rose \n"
    " mr. <unk> is chairman of the $ N billion company \n"
    "\n"
    " the market fell N N points \n"
)
SPACED = TokenizerSettings(lowercase=False, tokenizer="whitespace")


def test_tokens_are_kept_as_they_are_and_lines_end_sentences():
    tokenizer = tokenizer_for(SPACED)
    tokens = tokenizer.tokenize(PTB)
    assert tokens[:10] == ["a", "<unk>", "said", "the", "N", "company", "'s",
                           "shares", "rose", EOS]  # fmt: skip
    assert tokens.count(EOS) == 3  # the blank line is no sentence
    assert "<" not in tokens and "unk" not in tokens
    assert (
        tokenizer.join(tokens)
        == "\n".join(
            " ".join(line.split()) for line in PTB.splitlines() if line.strip()
        )
        + "\n"
    )
    # Streamed in pieces cut anywhere: the same tokens.
    pieces = [PTB[i : i + 7] for i in range(0, len(PTB), 7)]
    streamed = [t for block in tokenizer.stream_tokens(pieces) for t in block]
    assert streamed == tokens
    # <unk> is the unknown word, never a word of its own.
    vocabulary = Vocabulary.build(tokens, min_count=1)
    assert vocabulary.words.count("<unk>") == 1
    ids = vocabulary.encode(tokens)
    assert int((ids == UNK_ID).sum()) == 2


def test_the_whitespace_tokenizer_splits_words_only():
    with pytest.raises(ValueError, match="splits words"):
        TokenizerSettings(level="char", tokenizer="whitespace")
    with pytest.raises(ValueError, match="unknown tokenizer"):
        TokenizerSettings(tokenizer="spaces")
    result = CliRunner().invoke(
        cli, ["train", "x.txt", "--tokenizer", "whitespace", "--level", "char"]
    )
    assert result.exit_code != 0


def test_a_model_of_pre_tokenized_text(tmp_path):
    corpus = tmp_path / "ptb.train.txt"
    corpus.write_text(PTB * 40, encoding="utf-8")
    model = tmp_path / "ptb.keras"
    result = CliRunner().invoke(
        cli,
        ["train", str(corpus), "--tokenizer", "whitespace", "-o", str(model),
         "--epochs", "2", "--units", "8", "--layers", "1", "--embedding-dim", "4",
         "--no-plot", "--random-seed", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    info = CliRunner().invoke(cli, ["info", str(model)])
    assert "split on whitespace" in info.output and "case kept" in info.output
    from textgen.model.file import read_model

    read = read_model(model)
    words = set(read.vocabulary.words)
    # Every token of the text has its row (--min-count 1), the case kept;
    # <unk> is read as the unknown word.
    assert {"N", "'s", "$", "mr.", EOS} <= words
    assert len(words) == len(set(tokenizer_for(SPACED).tokenize(PTB))) + 1  # + <pad>
    generated = CliRunner().invoke(
        cli, ["generate", "-m", str(model), "-n", "30", "--random-seed", "3"]
    )
    assert generated.exit_code == 0, generated.output
    text = generated.output.strip()
    assert all(w in words for w in text.split())  # joined with spaces alone
    held = tmp_path / "ptb.valid.txt"
    held.write_text(PTB, encoding="utf-8")
    scored = CliRunner().invoke(cli, ["evaluate", "-m", str(model), str(held)])
    assert "tokens scored  28" in scored.output  # 25 words and 3 line ends
    assert "(2 read as <unk>)" in scored.output
