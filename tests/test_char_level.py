"""Character-level models: the same train, save, generate, evaluate and info,
with characters for words."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from textgen.cli import cli

TEXT = "Ab cd! Ef gh.\n" * 80  # a cycle of 14 characters, case and newline kept


@pytest.fixture(scope="module")
def char_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("char")
    corpus = folder / "cycle.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    path = folder / "cycle.keras"
    result = CliRunner().invoke(
        cli,
        [
            *("train", str(corpus), "-o", str(path), "--level", "char", "--no-plot"),
            *("--units", "32", "--embedding-dim", "8", "--layers", "1"),
            *("--dropout", "0", "--seq-len", "16", "--epochs", "30"),
            *("--learning-rate", "0.02", "--patience", "0", "--random-seed", "3"),
            *("--batch-size", "8"),
        ],
    )
    assert result.exit_code == 0, result.output
    return corpus, path


def test_a_character_model_learns_characters_and_says_so(char_model):
    from textgen.model.network import load_model

    _, path = char_model
    model = load_model(path)
    assert model.tokenizer_settings.level == "char"
    assert not model.tokenizer_settings.lowercase  # case kept
    assert set(model.vocabulary.words[2:]) == set(TEXT)
    assert model.record["tokens"]["total"] == len(TEXT)
    assert model.record["fingerprint"]["n"] == 20


def test_generate_needs_no_flag_and_evaluate_reports_bits_per_character(char_model):
    corpus, path = char_model
    result = CliRunner().invoke(
        cli, ["generate", "-m", str(path), "-s", "Ab", "-n", 25, "-t", "0"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "Ab cd! Ef gh.\nAb cd! Ef gh.\n"
    until = CliRunner().invoke(
        cli, ["generate", "-m", str(path), "-s", "Ef", "-t", "0", "--until", "sentence"]
    )
    assert until.stdout == "Ef gh.\n"
    scored = CliRunner().invoke(cli, ["evaluate", "-m", str(path), str(corpus)])
    assert scored.exit_code == 0, scored.output
    bits = float(scored.stdout.split("bits per char")[1].split()[0])
    assert 0 <= bits < 0.5  # a learned cycle is nearly certain
    info = CliRunner().invoke(cli, ["info", str(path)])
    assert "characters (case kept)" in info.stdout


def test_word_models_are_unchanged_by_the_level_option(tmp_path: Path):
    from textgen.text.tokens import TokenizerSettings, tokenize

    text = "One two.\n\nThree"
    assert tokenize(text, TokenizerSettings(level="char")) == list("one two.\n\nthree")
    assert tokenize(text, TokenizerSettings(lowercase=False, level="char")) == list(
        text
    )
    assert tokenize(text) == ["one", "two", ".", "<p>", "three"]


@pytest.mark.slow
def test_compare_works_on_characters_too(char_model, tmp_path: Path):
    corpus, _ = char_model
    result = CliRunner().invoke(
        cli,
        [
            *("compare", str(corpus), "--cells", "rnn,gru", "-o", str(tmp_path)),
            *("--level", "char", "--units", "8", "--embedding-dim", "4"),
            *("--layers", "1", "--seq-len", "16", "--epochs", "1"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "rnn" in result.stdout and "gru" in result.stdout
    from textgen.model.network import load_model

    assert load_model(tmp_path / "gru.keras").tokenizer_settings.level == "char"


def test_evaluate_starts_where_generation_starts(char_model):
    """Both read a text from the level's start token (a new line for
    characters): the first character's score is the generator's first
    distribution from an empty seed."""
    from textgen.inference.generate import Generator
    from textgen.model.file import read_model
    from textgen.model.perplexity import log_sum_exp
    from textgen.model.scoring import score_ids

    model = read_model(char_model[1])
    generator = Generator(model)
    assert generator.tokenizer.start_token == "\n"
    logits, _, _ = generator._read_seeds([[]])
    ids = model.vocabulary.encode(list("abc"))
    first = float((log_sum_exp(logits) - logits)[0, ids[0]])
    assert score_ids(model, ids)[0] == pytest.approx(first, rel=1e-5)
