import math
from pathlib import Path

import numpy as np
import pytest
from conftest import PATTERN

from textgen.inference.evaluate import evaluate
from textgen.model.scoring import score_ids
from textgen.text.tokens import PARAGRAPH, tokenize
from textgen.text.vocab import UNK_ID


def test_perplexity_matches_a_hand_computation(trained, tmp_path: Path):
    """Score the text with the training model's full-sequence logits and a
    hand-written log-softmax; `evaluate` must agree."""
    model = trained[1]
    text = "one two three, four five. six zebra eight nine!\n\none two"
    path = tmp_path / "t.txt"
    path.write_text(text)
    ids = model.vocabulary.encode(tokenize(text))
    inputs = np.concatenate([[model.vocabulary.word_to_id[PARAGRAPH]], ids[:-1]])
    logits = np.asarray(model(inputs[None, :]))[0].astype(np.float64)
    total = 0.0
    for row, target in zip(logits, ids, strict=True):
        total += -(row[target] - math.log(sum(math.exp(v) for v in row)))
    expected = math.exp(total / len(ids))

    result = evaluate(model, [path], ngram=False)  # the network alone
    assert result.tokens == len(ids) == 15
    assert result.unknown == 1  # zebra
    assert result.oov_rate == pytest.approx(1 / 15)
    assert result.perplexity == pytest.approx(expected, rel=1e-4)
    assert ids[8] == UNK_ID


def test_a_learned_pattern_is_nearly_certain_and_noise_is_not(trained):
    model = trained[1]
    pattern = model.vocabulary.encode(tokenize(PATTERN * 5))
    assert math.exp(score_ids(model, pattern)[5:].mean()) < 1.5
    noise = np.random.default_rng(0).integers(2, len(model.vocabulary), 200)
    assert math.exp(score_ids(model, noise).mean()) > 5


def test_scoring_streams_in_blocks_and_gives_the_same_figure(
    trained, tmp_path: Path, monkeypatch
):
    """Memory holds one block of outputs whatever the text's length: the
    output layer never sees more than a block of positions at once, and the
    figure is the per-token losses' mean."""
    from textgen.model import scoring as module
    from textgen.model.decoder import Decoder

    model = trained[1]
    path = tmp_path / "long.txt"
    path.write_text(PATTERN * 40, encoding="utf-8")
    ids = model.vocabulary.encode(tokenize(PATTERN * 40))
    expected = float(score_ids(model, ids).mean())
    rows: list[int] = []
    real = Decoder.logits

    def logits(self, hidden):
        rows.append(len(hidden))
        return real(self, hidden)

    monkeypatch.setattr(Decoder, "logits", logits)
    monkeypatch.setattr(module, "BLOCK", 64)
    result = evaluate(model, [path])
    assert len(ids) > 8 * 64 and max(rows) <= 64
    assert result.network_cross_entropy == pytest.approx(expected, rel=1e-6)


def test_item_scoring_streams_and_each_item_starts_afresh(name_model, monkeypatch):
    """One very long item among short ones: the output layer sees at most a
    block of positions at a time, finished items leave the batch, and every
    item scores what it scores alone from an end token."""
    from textgen.model import scoring as module
    from textgen.model.counting import item_spans
    from textgen.model.decoder import Decoder
    from textgen.model.scoring import item_losses
    from textgen.text.tokens import END

    model = name_model[1]
    vocab = model.vocabulary
    end = vocab.word_to_id[END]
    texts = ["bada", "ki", "x" * 700, "mopo"]
    ids = np.array(
        [end] + [i for t in texts for i in [*vocab.encode(list(t)), end]], np.int32
    )
    starts, lengths = item_spans(ids, end)
    assert lengths.tolist() == [4, 2, 700, 4]
    alone = sum(
        float(score_ids(model, np.array([*vocab.encode(list(t)), end])).sum())
        for t in texts
    )
    widest: list[int] = []
    real = Decoder.logits

    def logits(self, hidden):
        widest.append(len(hidden))
        return real(self, hidden)

    monkeypatch.setattr(Decoder, "logits", logits)
    monkeypatch.setattr(module, "BLOCK", 32)
    scored = list(item_losses(model, ids, starts, lengths))
    blocks = [losses for losses, _, _ in scored]
    assert sum(len(b) for b in blocks) == sum(len(t) + 1 for t in texts)
    assert max(widest) <= 32
    assert sum(float(b.sum()) for b in blocks) == pytest.approx(alone, rel=1e-6)
    # Each loss says where its token is: every item's tokens and end, once.
    positions = np.sort(np.concatenate([p for _, p, _ in scored]))
    expected = np.concatenate(
        [np.arange(s, s + n + 1) for s, n in zip(starts, lengths, strict=True)]
    )
    assert positions.tolist() == np.sort(expected).tolist()
    assert all((p >= first).all() and (p - first <= lengths.max()).all()
               for _, p, first in scored)  # fmt: skip
