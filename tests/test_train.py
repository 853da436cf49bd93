import math
from pathlib import Path

import numpy as np
import pytest

from textgen.errors import CorpusError, TextgenError, TrainingError
from textgen.model.config import ModelConfig, TrainConfig
from textgen.training.train import train


def test_record_describes_the_run(trained, pattern_file: Path):
    from textgen import __version__

    path, model = trained
    record = model.record
    assert record["corpus"] == [{"name": str(pattern_file), "tokens": 779}]
    assert record["tokens"] == {"total": 779, "train": 702, "validation": 77}
    assert record["epochs_run"] == len(record["history"]) == 25
    assert record["textgen_version"] == __version__
    assert record["train_config"]["seed"] == 7
    best = min(record["history"], key=lambda row: row["val_loss"])
    assert record["best_epoch"] == best["epoch"]
    assert record["best_val_perplexity"] == pytest.approx(math.exp(best["val_loss"]))
    assert record["best_val_perplexity"] < 1.2  # the cycle is fully predictable
    assert path.exists()


@pytest.mark.slow
def test_saved_weights_are_the_best_epoch(tmp_path: Path, pattern_file: Path):
    """A learning rate that overshoots after a few epochs: the file must hold
    the best epoch, whose validation loss the record reports."""
    from textgen.model.network import load_model
    from textgen.text.ids import corpus_tokens
    from textgen.training.data import make_dataset

    config = TrainConfig(
        seq_len=8,
        epochs=6,
        batch_size=8,
        learning_rate=0.5,
        clipnorm=0,
        patience=2,
        seed=1,
    )
    model = train(
        [pattern_file],
        tmp_path / "m.keras",
        ModelConfig(layers=1, units=8, embedding_dim=4),
        config,
        log=lambda s: None,
    )
    record = model.record
    history = record["history"]
    assert record["best_epoch"] == min(history, key=lambda r: r["val_loss"])["epoch"]
    loaded = load_model(tmp_path / "m.keras")
    tokens, _ = corpus_tokens([pattern_file], loaded.tokenizer_settings)
    val_ids = loaded.vocabulary.encode(tokens[702:])
    loaded.compile(
        loss=__import__("keras").losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    val_loss = loaded.evaluate(make_dataset(val_ids, 8, 8), verbose=0)
    assert val_loss == pytest.approx(
        history[record["best_epoch"] - 1]["val_loss"], rel=1e-4
    )


@pytest.mark.slow
def test_same_seed_same_weights(tmp_path: Path, pattern_file: Path):
    config = TrainConfig(seq_len=8, epochs=2, batch_size=16, seed=5)
    small = ModelConfig(cell="gru", layers=1, units=8, embedding_dim=4, dropout=0.1)
    runs = [
        train(
            [pattern_file], tmp_path / f"{i}.keras", small, config, log=lambda s: None
        )
        for i in range(2)
    ]
    for a, b in zip(runs[0].get_weights(), runs[1].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    other = train(
        [pattern_file],
        tmp_path / "o.keras",
        small,
        TrainConfig(seq_len=8, epochs=2, batch_size=16, seed=6),
        log=lambda s: None,
    )
    assert not np.array_equal(other.get_weights()[0], runs[0].get_weights()[0])


@pytest.mark.slow
def test_nan_loss_stops_with_advice_and_writes_nothing(
    tmp_path: Path, pattern_file: Path
):
    config = TrainConfig(
        seq_len=8, epochs=3, batch_size=8, learning_rate=1e38, clipnorm=0, seed=1
    )
    out = tmp_path / "m.keras"
    with pytest.raises(
        TrainingError, match=r"NaN in epoch 1; try a lower --learning-rate"
    ):
        train(
            [pattern_file],
            out,
            ModelConfig(cell="rnn", layers=1, units=8),
            config,
            log=lambda s: None,
        )
    assert list(tmp_path.iterdir()) == []


def test_short_corpus_and_bad_settings(tmp_path: Path):
    short = tmp_path / "short.txt"
    short.write_text("only a few words here")
    with pytest.raises(CorpusError, match=r"has 5 words.*needs at least 330"):
        train([short], tmp_path / "m.keras", log=lambda s: None)
    chars = TrainConfig(level="char", seq_len=100)
    with pytest.raises(CorpusError, match=r"has 21 characters.*needs at least"):
        train([short], tmp_path / "m.keras", config=chars, log=lambda s: None)
    with pytest.raises(TextgenError, match=r"val_fraction"):
        TrainConfig(val_fraction=0.9)
    with pytest.raises(TextgenError, match=r"unknown cell"):
        ModelConfig(cell="transformer")
    with pytest.raises(TextgenError, match=r"must end in .keras"):
        train([short], tmp_path / "m.h5", log=lambda s: None)
    assert not (tmp_path / "m.keras").exists()


def test_auto_batch_size_grows_with_the_corpus():
    from textgen.model.config import auto_batch_size

    assert [auto_batch_size(n) for n in (10, 186, 370, 700, 6000)] == [8, 8, 16, 32, 64]


@pytest.mark.slow
def test_time_limit_stops_mid_epoch_and_keeps_the_validated_model(
    tmp_path: Path, pattern_file: Path
):
    lines: list[str] = []
    config = TrainConfig(seq_len=8, epochs=5, batch_size=8, max_minutes=1e-6, seed=1)
    model = train(
        [pattern_file],
        tmp_path / "m.keras",
        ModelConfig(layers=1, units=4),
        config,
        log=lines.append,
    )
    assert model.record["epochs_run"] == 1
    assert any("(step 1 of " in line and "stopping" in line for line in lines)
    assert model.record["best_val_perplexity"] is not None
    assert model.record["history"][0]["learning_rate"] == pytest.approx(
        TrainConfig().learning_rate
    )


def _rates_seen(tmp_path: Path, pattern_file: Path, config: TrainConfig):
    """The learning rate the optimizer held after each epoch, and the model."""
    import keras

    rates: list[float] = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rates.append(float(self.model.optimizer.learning_rate))

    model = train(
        [pattern_file],
        tmp_path / "m.keras",
        ModelConfig(layers=1, units=4),
        config,
        log=lambda s: None,
        force=True,
        callbacks=[Spy()],
    )
    return rates, model


@pytest.mark.slow
def test_linear_schedule_reaches_zero_on_the_last_step(
    tmp_path: Path, pattern_file: Path
):
    config = TrainConfig(
        seq_len=8, epochs=4, batch_size=8, patience=0, lr_schedule="linear", seed=1
    )
    rates, model = _rates_seen(tmp_path, pattern_file, config)
    assert len(rates) == 4
    assert all(np.diff(rates) < 0)  # falls every epoch
    steps = -(-((model.record["tokens"]["train"] - 1) // 8) // 8)
    # The last step ran with one step of the four epochs' worth left.
    assert rates[-1] == pytest.approx(config.learning_rate / (4 * steps), rel=1e-4)


@pytest.mark.slow
def test_plateau_and_constant_schedules(tmp_path: Path, pattern_file: Path):
    # A learning rate far too high stalls the validation loss: it gets halved.
    config = TrainConfig(
        seq_len=8,
        epochs=6,
        learning_rate=5.0,
        lr_schedule="plateau",
        lr_patience=1,
        patience=0,
        seed=1,
    )
    rates, _ = _rates_seen(tmp_path, pattern_file, config)
    assert rates[-1] < 5.0
    config = TrainConfig(seq_len=8, epochs=3, lr_schedule="constant", seed=1)
    rates, _ = _rates_seen(tmp_path, pattern_file, config)
    assert rates == [pytest.approx(config.learning_rate)] * 3


@pytest.mark.slow
def test_no_validation_trains_on_everything(tmp_path: Path, pattern_file: Path):
    config = TrainConfig(seq_len=8, epochs=1, val_fraction=0, seed=1)
    model = train(
        [pattern_file],
        tmp_path / "m.keras",
        ModelConfig(layers=1, units=4, embedding_dim=4),
        config,
        log=lambda s: None,
    )
    assert model.record["tokens"]["validation"] == 0
    assert model.record["best_val_perplexity"] is None


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (dict(units=65_536), "more than TensorFlow handles"),
        (dict(units=15_000), "more than this machine's 8.0 GiB"),
    ],
)
def test_a_network_too_big_to_train_is_refused_before_it_is_built(
    shape, message, pattern_file, tmp_path, monkeypatch
):
    from textgen.errors import TrainingError
    from textgen.model.config import ModelConfig, TrainConfig
    from textgen.training.train import train

    monkeypatch.setattr("textgen.training.network._physical_memory", lambda: 8 * 2**30)
    with pytest.raises(TrainingError, match=message):
        train(
            [pattern_file],
            tmp_path / "m.keras",
            ModelConfig(**shape),
            TrainConfig(seq_len=8, epochs=1),
            log=lambda line: None,
        )
    assert not (tmp_path / "m.keras").exists()


@pytest.mark.slow
def test_carried_state_learns_what_a_window_cannot_see(tmp_path: Path):
    """In "red red blue red red blue ..." the word after "red" depends on the
    word before it. With 2-word windows trained from zero states, the model
    never learns to use more than the window; carrying the state across
    windows, it predicts the whole text as `evaluate` reads it (one long
    context) almost perfectly."""
    from textgen.inference.evaluate import evaluate

    corpus = tmp_path / "period.txt"
    corpus.write_text(" ".join(["red red blue"] * 500), encoding="utf-8")
    losses = {}
    for carry in (True, False):
        model = train(
            [corpus],
            tmp_path / f"{carry}.keras",
            ModelConfig(layers=1, units=16, embedding_dim=8, dropout=0.0),
            TrainConfig(
                seq_len=2,
                epochs=5,
                batch_size=16,
                learning_rate=0.02,
                seed=1,
                carry_state=carry,
                patience=0,
            ),
            log=lambda line: None,
        )
        assert model.record["train_config"]["carry_state"] is carry
        losses[carry] = evaluate(model, [corpus], ngram=False).cross_entropy
        if carry:  # validated as it is evaluated, carrying the state
            assert model.record["best_val_perplexity"] < 1.1
    assert losses[True] < 0.05
    assert losses[False] > 0.3


def test_carried_state_by_default_for_characters_only():
    assert TrainConfig(level="char").carries_state
    assert not TrainConfig(level="word").carries_state
    assert not TrainConfig(level="char", distribute="mirrored").carries_state
    assert TrainConfig(level="word", carry_state=True).carries_state


def test_carried_state_needs_one_device():
    with pytest.raises(TextgenError, match="--carry-state cannot be used with"):
        TrainConfig(carry_state=True, distribute="mirrored")
