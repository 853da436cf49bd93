from pathlib import Path

import numpy as np
import pytest

from textgen.errors import TextgenError
from textgen.model.config import ModelConfig, TrainConfig
from textgen.text.vocab import Vocabulary
from textgen.training.embeddings import read_vectors


def write_vectors(path: Path, header: bool = True) -> Path:
    lines = ["4 3"] if header else []
    lines += [
        "one 0.1 0.2 0.3",
        "Two 1 1 1",  # found for "two" through its lower case
        "two 0.5 0.5 0.5",  # the exact case wins
        "elephant 9 9 9",  # not in the vocabulary
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_reads_the_vocabulary_words_and_reports_coverage(tmp_path: Path):
    vocab = Vocabulary.build("one two two three".split())
    vectors = read_vectors(write_vectors(tmp_path / "v.txt"), vocab)
    assert vectors.dimension == 3
    # ids: two 2, one 3, three 4 (by count, then alphabet)
    assert vectors.covered.tolist() == [False, False, True, True, False]
    np.testing.assert_allclose(vectors.matrix[vocab.word_to_id["two"]], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(vectors.matrix[vocab.word_to_id["one"]], [0.1, 0.2, 0.3])
    glove = read_vectors(write_vectors(tmp_path / "g.txt", header=False), vocab)
    assert glove.covered.sum() == 2


def test_bad_vectors_files(tmp_path: Path):
    vocab = Vocabulary.build("a b".split())
    with pytest.raises(TextgenError, match="not found"):
        read_vectors(tmp_path / "none.txt", vocab)
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("a 1 2 3\nb 1 2\n")
    with pytest.raises(TextgenError, match="line 2 has 2 numbers"):
        read_vectors(ragged, vocab)
    words = tmp_path / "words.txt"
    words.write_text("a one two\n")
    with pytest.raises(TextgenError, match="not a number"):
        read_vectors(words, vocab)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(TextgenError, match="holds no vectors"):
        read_vectors(empty, vocab)


@pytest.mark.slow
def test_training_starts_from_and_can_freeze_the_vectors(
    tmp_path: Path, pattern_file: Path
):
    from textgen.training.train import train

    vectors = write_vectors(tmp_path / "v.txt")
    config = TrainConfig(
        seq_len=8,
        epochs=2,
        seed=1,
        pretrained_embeddings=str(vectors),
        freeze_embeddings=True,
    )
    lines: list[str] = []
    model = train(
        [pattern_file],
        tmp_path / "m.keras",
        ModelConfig(layers=1, units=4),
        config,
        log=lines.append,
    )
    assert model.model_config.embedding_dim == 3  # follows the file
    assert any("pretrained vectors for 2 of 13 words (15%)" in line for line in lines)
    assert model.record["pretrained_vectors_coverage"] == pytest.approx(2 / 13)
    table = np.asarray(model.embedding.embeddings)
    np.testing.assert_allclose(
        table[model.vocabulary.word_to_id["two"]], [0.5, 0.5, 0.5]
    )
    assert not model.embedding.trainable


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tide " + "0.1 " * 70_000 + "\n", "vectors of 70,000 numbers"),
        ("tide " + "1" * (1 << 21) + "\n", "is over 1,048,576 characters"),
        ("tide nan 0.2\n", "not a number"),
    ],
)
def test_hostile_vectors_files_are_refused(content, message, tmp_path):
    from textgen.errors import TextgenError

    path = tmp_path / "vectors.txt"
    path.write_text(content)
    with pytest.raises(TextgenError, match=message):
        read_vectors(path, Vocabulary.build(["tide", "boat"]))
    with pytest.raises(TextgenError, match="is a folder"):
        read_vectors(tmp_path, Vocabulary.build(["tide", "boat"]))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("one 1e39 0 0", "beyond the largest 32-bit float"),
        ("one x 0 0", "not a number"),
        ("one nan 0 0", "nan or inf"),
    ],
)
def test_a_bad_number_says_what_is_wrong(tmp_path: Path, line: str, message: str):
    from textgen.training.embeddings import check_vectors_file

    path = tmp_path / "v.txt"
    path.write_text(f"two 1 2 3\n{line}\n", encoding="utf-8")
    vocab = Vocabulary.build("one two".split())
    for read in (lambda: read_vectors(path, vocab), lambda: check_vectors_file(path)):
        with pytest.raises(TextgenError, match=message):
            read()
