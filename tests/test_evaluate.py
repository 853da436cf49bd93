import math
from pathlib import Path

import numpy as np
import pytest
from conftest import PATTERN

from textgen.evaluate import evaluate, score_ids
from textgen.tokens import PARAGRAPH, tokenize
from textgen.vocab import UNK_ID


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

    result = evaluate(model, [path])
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
