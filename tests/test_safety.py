"""Nothing lost: existing models, Ctrl-C, checkpoints and resumed training."""

import signal
from pathlib import Path

import numpy as np
import pytest

from textgen.errors import OutputError, TrainingError, TrainingInterrupted
from textgen.model.config import ModelConfig, TrainConfig
from textgen.training.train import checkpoint_path, train

SHAPE = ModelConfig(layers=1, units=8, embedding_dim=8)


def _callback(**hooks):
    """A Keras callback running the given hooks, e.g. on_train_batch_end=f."""
    import keras

    return type("Hooks", (keras.callbacks.Callback,), hooks)()


def _train(corpus, path, config, **kwargs):
    return train([corpus], path, SHAPE, config, log=kwargs.pop("log", print), **kwargs)


@pytest.mark.slow
def test_an_existing_model_is_kept_unless_forced(tmp_path: Path, pattern_file: Path):
    out = tmp_path / "m.keras"
    out.write_bytes(b"precious")
    config = TrainConfig(seq_len=8, epochs=1, seed=1)
    with pytest.raises(OutputError, match=r"already exists; pass --force"):
        _train(pattern_file, out, config)
    assert out.read_bytes() == b"precious"
    _train(pattern_file, out, config, force=True)
    assert out.read_bytes() != b"precious"


@pytest.mark.slow
def test_ctrl_c_saves_the_best_model_so_far(tmp_path: Path, pattern_file: Path):
    def interrupt(self, batch, logs=None):
        epoch_done = any(line.startswith("epoch") for line in lines)
        if batch == 1 and self.params and epoch_done:  # in epoch 2
            signal.raise_signal(signal.SIGINT)

    lines: list[str] = []
    out = tmp_path / "m.keras"
    config = TrainConfig(seq_len=8, epochs=5, batch_size=8, seed=1)
    with pytest.raises(TrainingInterrupted, match=r"saved the best model.*m\.keras"):
        _train(
            pattern_file,
            out,
            config,
            log=lines.append,
            callbacks=[_callback(on_train_batch_end=interrupt)],
        )
    assert any("stopping after this batch" in line for line in lines)
    from textgen.model.network import load_model

    record = load_model(out).record
    assert record["epochs_run"] == 2  # the interrupted epoch still validates
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.slow
def test_a_second_ctrl_c_quits_at_once_and_touches_nothing(
    tmp_path: Path, pattern_file: Path
):
    def interrupt(self, batch, logs=None):
        signal.raise_signal(signal.SIGINT)  # asks to stop after this batch
        signal.raise_signal(signal.SIGINT)  # no: at once

    out = tmp_path / "m.keras"
    out.write_bytes(b"previous model")
    config = TrainConfig(seq_len=8, epochs=3, batch_size=8, seed=1)
    with pytest.raises(KeyboardInterrupt):
        _train(
            pattern_file,
            out,
            config,
            force=True,
            log=lambda s: None,
            callbacks=[_callback(on_train_batch_end=interrupt)],
        )
    assert out.read_bytes() == b"previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "frozen, xla, carry",
    [
        (False, False, False),
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ],
    ids=["", "frozen embeddings", "XLA", "carried state"],
)
def test_resumed_training_matches_never_stopping(
    tmp_path: Path,
    pattern_file: Path,
    frozen: bool,
    xla: bool,
    carry: bool,
    monkeypatch,
):
    """Checkpoint after epoch 2, a crash, --resume to epoch 4: the weights are
    those of one uninterrupted 4-epoch run with the same seed (frozen word
    vectors too: the optimizer's slots must line up with what is trained; and
    with the step compiled by XLA, as bigger networks are on a CPU)."""
    from textgen.model.network import load_model
    from textgen.training import network

    monkeypatch.setattr(network, "XLA_MIN_PARAMETERS", 0 if xla else 10**12)

    config = TrainConfig(
        seq_len=8,
        epochs=4,
        batch_size=8,
        patience=0,
        lr_schedule="linear",
        seed=7,
        freeze_embeddings=frozen,
        carry_state=carry,
    )
    whole = tmp_path / "whole.keras"
    _train(pattern_file, whole, config, checkpoint_every=1, log=lambda s: None)

    def crash(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("power cut")

    part = tmp_path / "part.keras"
    with pytest.raises(RuntimeError, match="power cut"):
        _train(
            pattern_file,
            part,
            config,
            checkpoint_every=2,
            log=lambda s: None,
            callbacks=[_callback(on_epoch_end=crash)],
        )
    assert not part.exists() and checkpoint_path(part).exists()
    saved = load_model(checkpoint_path(part))
    assert saved.record["epochs_run"] == 2
    lines: list[str] = []
    resumed = _train(
        pattern_file,
        part,
        config,
        resume=checkpoint_path(part),
        checkpoint_every=2,
        log=lines.append,
    )
    assert any("resuming" in line and "after epoch 2" in line for line in lines)
    assert not any("fresh optimizer" in line for line in lines)
    assert [line.split("/")[0] for line in lines if line.startswith("epoch")] == [
        "epoch   3",
        "epoch   4",
    ]
    expected = load_model(checkpoint_path(whole))  # the state after epoch 4
    got = load_model(checkpoint_path(part))
    for a, b in zip(expected.get_weights(), got.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    record = resumed.record
    assert record["train_config"]["xla"] is xla
    assert record["train_config"]["carry_state"] is carry
    assert [row["epoch"] for row in record["history"]] == [1, 2, 3, 4]
    assert [(r["first_epoch"], r["last_epoch"]) for r in record["runs"]] == [
        (1, 2),
        (3, 4),
    ]


@pytest.mark.slow
def test_resume_keeps_the_vocabulary_and_asks_for_more_epochs(
    tmp_path: Path, pattern_file: Path, trained
):
    path, model = trained
    copy = tmp_path / "copy.keras"
    copy.write_bytes(path.read_bytes())
    epochs = model.record["epochs_run"]
    config = TrainConfig(seq_len=8, epochs=epochs, seed=1)
    with pytest.raises(TrainingError, match=rf"trained {epochs} epochs already"):
        _train(pattern_file, copy, config, resume=copy)
    other = tmp_path / "other.txt"
    other.write_text(pattern_file.read_text() + " zebra quartz " * 40)
    lines: list[str] = []
    config = TrainConfig(seq_len=8, epochs=epochs + 1, seed=1)
    resumed = _train(other, copy, config, resume=copy, log=lines.append)
    assert resumed.vocabulary.words == model.vocabulary.words
    assert any("% of the corpus words are <unk>" in line for line in lines)
    assert resumed.record["epochs_run"] == epochs + 1


@pytest.mark.slow
def test_models_are_lean_and_checkpoints_keep_the_optimizer(
    tmp_path: Path, pattern_file: Path, trained
):
    import zipfile

    from textgen.model.file import WEIGHTS_ENTRY, read_model

    path, model = trained
    parameters = model.model_config.parameter_count()
    weights = zipfile.ZipFile(path).getinfo(WEIGHTS_ENTRY).file_size
    datasets = len(model.model_config.weight_shapes())
    # HDF5 adds a few KiB per array: negligible at real sizes, not at 4 k weights.
    assert weights <= 1.1 * 4 * parameters + 3072 * datasets + 8192
    assert not read_model(path).has_optimizer
    config = TrainConfig(seq_len=8, epochs=1, batch_size=8, seed=1)
    out = tmp_path / "m.keras"
    _train(pattern_file, out, config, checkpoint_every=1, log=lambda s: None)
    assert read_model(checkpoint_path(out)).has_optimizer
    full = zipfile.ZipFile(checkpoint_path(out)).getinfo(WEIGHTS_ENTRY).file_size
    assert full > 1.5 * zipfile.ZipFile(out).getinfo(WEIGHTS_ENTRY).file_size
    lines: list[str] = []
    more = TrainConfig(seq_len=8, epochs=2, batch_size=8, seed=1)
    _train(pattern_file, out, more, resume=out, log=lines.append)
    fresh = [line for line in lines if "fresh optimizer" in line]
    assert len(fresh) == 1 and "lean model" in fresh[0]
