"""Residual training (`--ngram-mode residual`, issue 34): the network trained
on top of the n-gram memory. Its priors never count what they score, its
scales are fitted, every command uses the model the same way (one row or
many, generation or scoring), and its network is never used alone."""

from __future__ import annotations

import itertools
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import STORY

from textgen.cli import cli
from textgen.errors import TextgenError
from textgen.inference.evaluate import evaluate
from textgen.inference.generate import Generator
from textgen.inference.logprobs import prompt_choices
from textgen.model.file import read_model
from textgen.model.ngram import (
    BUCKETS,
    Grams,
    NgramModel,
    Residual,
    fit_scales,
    residual_log_probabilities,
)
from textgen.training.prior import Prior


def test_the_file_is_a_residual_model_with_fitted_scales(residual):
    path, _, lines = residual
    free = read_model(path)
    assert isinstance(free.mixture, Residual)
    record = free.record["ngram"]
    assert record["mode"] == "residual" and "weights" not in record
    assert len(record["scales"]) == BUCKETS
    assert record["scales"] == [round(s, 4) for s in free.mixture.scales.tolist()]
    assert free.record["train_config"]["ngram_mode"] == "residual"
    # The priors' cross-entropy as training sees them and on validation.
    logged = next(line for line in lines if line.startswith("residual training"))
    assert "training text" in logged and "validation text" in logged
    info = CliRunner().invoke(cli, ["info", str(path)])
    assert info.exit_code == 0 and "trained on top of it" in info.output


def test_one_row_and_many_give_the_same_distribution(residual):
    """A served batch and one request alone: the same numbers."""
    free = read_model(residual[0])
    generator = Generator(free)
    rng = np.random.default_rng(0)
    rows = 9
    logits = rng.normal(size=(rows, len(free.vocabulary))).astype(np.float32)
    history = rng.integers(2, len(free.vocabulary), size=(rows, 5))
    together = generator.next_logits(logits, history)
    np.testing.assert_allclose(np.exp(together).sum(axis=1), 1, atol=1e-5)
    for row in range(rows):
        alone = generator.next_logits(logits[row : row + 1], history[row : row + 1])
        np.testing.assert_array_equal(alone[0], together[row])


def test_scoring_a_prompt_is_evaluate_per_token(residual, tmp_path):
    """logprobs/echo and `evaluate --per-token` score a residual model alike."""
    free = read_model(residual[0])
    text = tmp_path / "text.txt"
    text.write_text("the gulls came home at dusk and the keeper lit the lamp .\n")
    scored = evaluate(free, [text], per_token=True)
    words = [free.vocabulary.words[i] for i in scored.token_ids]
    choices = prompt_choices(Generator(free), words, top=0)
    got = [c.logprob for c in choices[1:]]
    np.testing.assert_allclose(got, -scored.token_losses[1:], atol=1e-5)
    # The model is scored above the memory alone, and what it adds is shown.
    assert scored.network_cross_entropy is None
    result = CliRunner().invoke(cli, ["evaluate", "-m", str(residual[0]), str(text)])
    assert result.exit_code == 0, result.output
    assert "network trained on the n-gram memory" in result.output
    assert "network adds" in result.output and "network alone" not in result.output


@pytest.mark.parametrize("command", ["generate", "evaluate"])
def test_no_ngram_on_a_residual_model_is_one_line(command, residual, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the keeper lit the lamp .\n")
    extra = ["--seed", "the"] if command == "generate" else [str(text)]
    result = CliRunner().invoke(
        cli, [command, "-m", str(residual[0]), "--no-ngram", *extra]
    )
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "residual" in result.output
    with pytest.raises(TextgenError, match="no language model alone"):
        Generator(read_model(residual[0]), ngram=False)


def test_residual_without_a_memory_is_a_usage_error(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(STORY * 10)
    result = CliRunner().invoke(
        cli,
        ["train", str(corpus), "-o", str(tmp_path / "m.keras"),
         "--ngram-mode", "residual", "--ngram-order", "0"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "--ngram-order 0" in result.output and result.output.count("\n") == 1


def _text(rng, vocab: int, length: int) -> np.ndarray:
    ids = [0]
    for _ in range(length - 1):
        step = 1 if rng.random() < 0.7 else int(rng.integers(vocab))
        ids.append((ids[-1] + step) % vocab)
    return np.array(ids)


def test_a_training_position_never_sees_a_memory_that_counted_it():
    """Each block's prior is the memory of the other blocks: it gives every
    position of its block what that memory gives, and is less sure of the
    training text than the memory of all of it (which counted it)."""
    rng = np.random.default_rng(2)
    ids = _text(rng, 30, 3000)
    edges = [0, 1000, 2000, 3000]
    whole = Grams.of([(ids, 0, len(ids))], 30, 4)
    memories = [
        whole.without(Grams.of([(ids, a, b)], 30, 4)).model()
        for a, b in itertools.pairwise(edges)
    ]
    prior = Prior(ids, np.array([0]), memories, edges, seq_len=6)
    starts = np.array([0, 995, 1500, 2990 - 6])
    rows = prior(starts)
    assert rows.shape == (4, 6, 30)
    np.testing.assert_allclose(np.exp(rows).sum(axis=-1), 1, atol=1e-5)
    for window, start in enumerate(starts):
        for step in range(6):
            position = start + 1 + step
            memory = memories[np.searchsorted(edges, position, side="right") - 1]
            context = memory.contexts_at(ids, np.array([position]), np.array([0]))
            want, _ = memory.distributions(context)
            np.testing.assert_allclose(
                rows[window, step], np.log(want[0]), rtol=1e-5, atol=1e-6
            )
    positions = np.arange(1, 3000)
    everything = whole.model()
    starts = np.zeros(len(positions), dtype=int)
    leaked = -np.log(everything.probabilities_at(ids, positions, starts)[0])
    assert prior.cross_entropy(positions) > leaked.mean() + 0.05


def test_fitted_scales_find_the_scale_the_tokens_were_drawn_with():
    rng = np.random.default_rng(4)
    vocab, rows = 40, 4000
    network = rng.normal(size=(rows, vocab))
    log_prior = np.log(rng.dirichlet(np.full(vocab, 0.3), size=rows))
    truth = 1.7
    probs = np.exp(residual_log_probabilities(network, log_prior, truth))
    targets = np.array([rng.choice(vocab, p=p / p.sum()) for p in probs])
    buckets = rng.integers(0, BUCKETS, rows)
    scales = fit_scales([(network, log_prior, buckets, targets)])
    np.testing.assert_allclose(scales, truth, atol=0.25)
    # Fitted, the held-out loss is no worse than at scale 1.
    chosen = np.arange(rows), targets

    def loss(scale) -> float:
        return -residual_log_probabilities(network, log_prior, scale)[chosen].mean()

    assert loss(scales[buckets]) <= loss(1.0)


def _residual_arrays(path: Path) -> dict:
    import io

    with zipfile.ZipFile(path) as archive:
        return dict(np.load(io.BytesIO(archive.read("assets/ngram.npz"))))


@pytest.mark.parametrize(
    "change",
    [
        {"scales": np.full(BUCKETS, np.nan)},
        {"scales": np.full(BUCKETS, 100.0)},
        {"scales": np.ones(3)},
        {"weights": np.full(BUCKETS, 0.5)},  # beside the scales: which is it?
    ],
)
def test_damaged_scales_are_refused(change, residual):
    arrays = _residual_arrays(residual[0])
    arrays.update(change)
    with pytest.raises(ValueError, match=r"scales|weights"):
        NgramModel.from_arrays(arrays, len(residual[1].vocabulary))


def test_an_item_model_trained_on_its_memory_scores_items_alike(tmp_path):
    """Characters default to residual training; an item model's prompt
    scores (logprobs/echo) are `evaluate --per-token`'s, item by item."""
    from conftest import make_names

    from textgen.model.config import ModelConfig, TrainConfig
    from textgen.training.train import train

    corpus = tmp_path / "names.txt"
    corpus.write_text("\n".join(make_names(300)) + "\n", encoding="utf-8")
    path = tmp_path / "names.keras"
    train(
        [corpus],
        path,
        ModelConfig(layers=1, units=16, embedding_dim=8, dropout=0.0),
        TrainConfig(
            seq_len=12, epochs=2, batch_size=16, seed=3, level="char", documents="lines"
        ),
        log=lambda line: None,
    )
    free = read_model(path)
    assert isinstance(free.mixture, Residual)
    text = tmp_path / "t.txt"
    text.write_text("bako\nlumi\n", encoding="utf-8")
    scored = evaluate(free, [text], per_token=True)
    assert scored.items == 2 and scored.network_cross_entropy is None
    assert scored.cross_entropy < scored.ngram_cross_entropy + 0.5
    words = [free.vocabulary.words[i] for i in scored.token_ids]
    choices = prompt_choices(Generator(free), words, top=0)
    losses = scored.token_losses
    kept = [i for i in range(1, len(words)) if not np.isnan(losses[i])]
    got = np.array([choices[i].logprob for i in kept])
    np.testing.assert_allclose(got, -losses[kept], atol=1e-5)


def test_training_also_pulls_the_network_alone_but_validation_does_not():
    import keras

    from textgen.model.network import NETWORK_ALONE_SHARE, ModelConfig, build_model
    from textgen.text.vocab import Vocabulary

    vocab = Vocabulary(["<pad>", "<unk>", "a", "b", "c"])
    model = build_model(ModelConfig(vocab_size=len(vocab), units=8), vocab)
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer="adam",
    )
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (2, 3))
    logits = rng.normal(size=(2, 3, 5)).astype("float32")
    prior = np.log(rng.dirichlet(np.ones(5), size=(2, 3))).astype("float32")

    def cross_entropy(z) -> float:
        z = z - z.max(-1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
        return -np.take_along_axis(log_p, labels[..., None], -1).mean()

    def loss(training: bool) -> float:
        value = model.compute_loss(y=(labels, prior), y_pred=logits, training=training)
        return float(keras.ops.convert_to_numpy(value))

    assert loss(False) == pytest.approx(cross_entropy(logits + prior), rel=1e-5)
    want = cross_entropy(logits + prior) + NETWORK_ALONE_SHARE * cross_entropy(logits)
    assert NETWORK_ALONE_SHARE > 0
    assert loss(True) == pytest.approx(want, rel=1e-5)
