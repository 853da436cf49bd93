"""The Kneser-Ney baseline that benchmarks/quality.py compares textgen with."""

import math

import pytest
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


@pytest.mark.parametrize("order", [1, 2, 5, 7])
def test_any_order_gives_a_distribution_over_characters(order: int):
    from ngram import KneserNey

    text = list("the cat sat on the mat; the cat ran at the rat. ")
    alphabet = sorted(set(text) | {"<unk>", "z"})
    model = KneserNey(text, len(alphabet), order)
    for context in [(), tuple("the ca"), tuple("zzzzzz"), tuple(" the")]:
        total = sum(model.probability_of(context[-(order - 1) :], w) for w in alphabet)
        assert math.isclose(total, 1.0, rel_tol=1e-9)


def test_longer_contexts_help_on_repeated_text():
    from ngram import KneserNey

    text = list("abcdefg hij " * 30)
    scores = [
        KneserNey(text, 12, order).cross_entropy(list("abcdefg hij " * 3))
        for order in (1, 3, 7)
    ]
    assert scores[0] > scores[1] > scores[2]


def test_items_are_counted_and_scored_each_from_a_fresh_start():
    from ngram import KneserNey

    items = [[*"ab", "<end>"], [*"ba", "<end>"]] * 20
    model = KneserNey([], 5, 3, items=items)
    # Every item starts after the start padding, never after another's end.
    assert model.probability_of((START, START), "a") > 0.4
    assert model.counts[1][("<end>", "b")] == 0  # no item follows another's end
    packed = KneserNey([t for item in items for t in item], 5, 3)
    assert packed.counts[1][("<end>", "b")] > 0
    for context in [(START, START), ("a", "b"), ("<end>", "a")]:
        total = sum(model.probability_of(context, w) for w in "ab" + "xy")
        total += model.probability_of(context, "<end>")
        assert math.isclose(total, 1.0, rel_tol=1e-9)
    fresh = model.items_cross_entropy([[*"ab", "<end>"]])
    assert fresh < model.cross_entropy([*"xab", "<end>"])
