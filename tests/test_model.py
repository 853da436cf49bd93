import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from textgen.errors import ModelFileError
from textgen.model.config import ModelConfig
from textgen.text.tokens import TokenizerSettings
from textgen.text.vocab import Vocabulary

# A training record with every field textgen reads, and one of its own.
RECORD = {
    "corpus": [{"name": "a.txt", "tokens": 7}],
    "tokens": {"total": 7, "train": 6, "validation": 1},
    "epochs_run": 1,
    "best_epoch": 1,
    "best_val_perplexity": 5.0,
    "train_perplexity": 6.0,
    "history": [{"epoch": 1, "loss": 1.8, "perplexity": 6.0}],
    "train_config": {"seq_len": 4},
    "date": "2026-01-01T00:00:00+00:00",
    "textgen_version": "0.1.0",
    "note": [1, 2],
}


def _model(cell: str = "lstm"):
    from textgen.model.network import build_model

    vocab = Vocabulary.build("a b c d e f g".split())
    config = ModelConfig(
        cell=cell, layers=2, units=6, embedding_dim=4, vocab_size=len(vocab)
    )
    return build_model(config, vocab, TokenizerSettings(lowercase=False), RECORD)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "peephole"])
def test_save_load_gives_identical_logits_and_metadata(cell: str, tmp_path: Path):
    from textgen.model.network import LanguageModel, load_model, save_model

    model = _model(cell)
    ids = np.array([[2, 3, 4, 5, 6]])
    path = save_model(model, tmp_path / "m.keras")
    loaded = load_model(path)
    assert isinstance(loaded, LanguageModel)
    np.testing.assert_array_equal(np.asarray(loaded(ids)), np.asarray(model(ids)))
    assert loaded.vocabulary.words == model.vocabulary.words
    assert loaded.model_config == model.model_config
    assert loaded.tokenizer_settings == TokenizerSettings(lowercase=False)
    assert loaded.record == RECORD
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]  # no side files


def test_tied_embeddings_share_the_matrix(tmp_path: Path):
    from textgen.model.network import (
        build_model,
        count_parameters,
        load_model,
        save_model,
    )

    vocab = Vocabulary.build("a b c d e f g".split())
    sizes = {"layers": 1, "units": 6, "embedding_dim": 4, "vocab_size": len(vocab)}
    tied = build_model(ModelConfig(tie_embeddings=True, **sizes), vocab)
    untied = build_model(ModelConfig(tie_embeddings=False, **sizes), vocab)
    # Untied: a 6 x 9 kernel; tied: a 6 x 4 projection, the 9-word bias stays.
    assert count_parameters(untied) - count_parameters(tied) == 6 * 9 - 6 * 4
    ids = np.array([[2, 3, 4]])
    loaded = load_model(save_model(tied, tmp_path / "t.keras"))
    np.testing.assert_array_equal(np.asarray(loaded(ids)), np.asarray(tied(ids)))
    tied.embedding.embeddings.assign(np.ones((9, 4)))  # the output moves with it
    assert np.allclose(np.asarray(tied(ids))[0, 0], np.asarray(tied(ids))[0, 0, 0])


def test_recurrent_layers_stay_cudnn_eligible():
    for cell in ("lstm", "gru"):
        for layer in _model(cell).recurrent_layers:
            assert layer.activation.__name__ == "tanh"
            assert layer.recurrent_activation.__name__ == "sigmoid"
            assert layer.recurrent_dropout == 0
            assert layer.unroll is False
            assert layer.use_bias is True
            assert layer.use_cudnn in ("auto", True)
            if cell == "gru":
                assert layer.reset_after is True


def test_carried_state_equals_the_full_sequence():
    model = _model("gru")
    ids = np.array([[2, 3, 4, 5, 6, 7, 8]])
    full, _ = model.forward(ids, None)
    logits, states = model.forward(ids[:, :3], None)
    steps = []
    for t in range(3, 7):
        logits, states = model.forward(ids[:, t : t + 1], states)
        steps.append(np.asarray(logits[:, 0]))
    np.testing.assert_allclose(
        np.stack(steps, axis=1), np.asarray(full)[:, 3:], atol=1e-5
    )


@pytest.mark.slow
def test_plain_keras_loads_it_after_import_textgen(tmp_path: Path):
    from textgen.model.network import save_model

    path = save_model(_model(), tmp_path / "m.keras")
    code = (
        "import sys, textgen\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "import keras\n"
        f"m = keras.saving.load_model({str(path)!r})\n"
        "print(type(m).__name__, m.vocabulary.words[2], m.record['note'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["LanguageModel", "a", "[1,", "2]"]


def test_failed_save_keeps_the_previous_file(tmp_path: Path, monkeypatch):
    from textgen.model.network import LanguageModel, load_model, save_model

    path = save_model(_model(), tmp_path / "m.keras")
    before = path.read_bytes()

    def broken_save(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"half a file")
        raise OSError("No space left on device")

    monkeypatch.setattr(LanguageModel, "save", broken_save)
    with pytest.raises(ModelFileError, match=r"No space left on device.*unchanged"):
        save_model(_model(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]
    monkeypatch.undo()
    assert load_model(path).vocabulary.words[2] == "a"


def test_bad_model_files_get_one_clear_error(tmp_path: Path):
    import keras

    from textgen.model.network import load_model, save_model

    with pytest.raises(ModelFileError, match=r"model not found"):
        load_model(tmp_path / "none.keras")
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    with pytest.raises(ModelFileError, match=r"not a .keras model file"):
        load_model(text)
    foreign = tmp_path / "foreign.keras"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(foreign)
    with pytest.raises(ModelFileError, match=r"textgen did not write"):
        load_model(foreign)
    good = save_model(_model(), tmp_path / "good.keras").read_bytes()
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelFileError):
        load_model(truncated)
    # A valid archive whose weights are damaged.
    damaged = tmp_path / "damaged.keras"
    with (
        zipfile.ZipFile(tmp_path / "good.keras") as src,
        zipfile.ZipFile(damaged, "w") as dst,
    ):
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, data[:100] if item.filename.endswith(".h5") else data)
    with pytest.raises(ModelFileError, match=r"damaged"):
        load_model(damaged)
    config = json.loads(zipfile.ZipFile(tmp_path / "good.keras").read("config.json"))
    assert config["registered_name"] == "textgen>LanguageModel"


@pytest.mark.slow
def test_a_model_file_cut_short_anywhere_is_refused(tmp_path: Path):
    """A copy or download cut off at any byte gets one clear error, never a
    crash or a half-loaded model."""
    from textgen.model.network import load_model, save_model

    good = save_model(_model(), tmp_path / "good.keras").read_bytes()
    cut = tmp_path / "cut.keras"
    ends = sorted(
        {
            *range(0, len(good), max(len(good) // 1500, 1)),
            *range(len(good) - 64, len(good)),
        }
    )
    for end in ends:
        cut.write_bytes(good[:end])
        with pytest.raises(ModelFileError, match=r"not a .keras model file|damaged"):
            load_model(cut)
