"""The Kneser-Ney baseline that benchmarks/quality.py compares textgen with."""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from ngram import START, KneserNeyTrigram

TOKENS = "the cat sat on the mat . the dog sat on the log . a cat ran .".split()
VOCABULARY = sorted(set(TOKENS) | {"<unk>", "zebra"})  # two words never seen


@pytest.mark.parametrize(
    ("u", "v"),
    [(START, START), ("the", "cat"), ("on", "the"), ("zebra", "the"), ("a", "b")],
)
def test_every_context_gives_a_distribution(u: str, v: str):
    model = KneserNeyTrigram(TOKENS, len(VOCABULARY))
    probabilities = [model.probability(u, v, w) for w in VOCABULARY]
    assert math.isclose(sum(probabilities), 1.0, rel_tol=1e-9)
    assert min(probabilities) > 0  # unseen words included


def test_seen_continuations_beat_unseen_ones():
    model = KneserNeyTrigram(TOKENS, len(VOCABULARY))
    assert model.probability("sat", "on", "the") > 0.5
    assert model.probability("sat", "on", "the") > model.probability("sat", "on", "cat")
    assert model.cross_entropy(
        "the cat sat on the mat .".split()
    ) < model.cross_entropy("mat the on . cat sat the".split())
