"""The n-gram memory (`textgen/model/ngram.py`): the same probabilities as the
reference Kneser-Ney of `benchmarks/ngram.py`, distributions that sum to 1,
pruning that keeps them so."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ngram import START, KneserNey

from textgen.model.ngram import NgramModel


def _text(rng: np.random.Generator, vocab: int, length: int) -> np.ndarray:
    """Ids with some structure: a Markov chain favouring a few successors."""
    ids = [int(rng.integers(vocab))]
    for _ in range(length - 1):
        ids.append((ids[-1] * 7 + int(rng.integers(3))) % vocab if rng.random() < 0.8
                   else int(rng.integers(vocab)))  # fmt: skip
    return np.array(ids)


def _reference_rows(reference: KneserNey, contexts: np.ndarray, start: int, vocab: int):
    rows = []
    for context in contexts:
        tokens = tuple(START if t == start else int(t) for t in context)
        rows.append([reference.probability_of(tokens, w) for w in range(vocab)])
    return np.array(rows)


SHAPES = [(1, 5, False), (2, 7, False), (3, 11, False), (5, 6, False),
          (3, 9, True), (7, 4, True)]  # fmt: skip


@pytest.mark.parametrize("discounting", ["modified", "one", "fixed"])
@pytest.mark.parametrize(("order", "vocab", "items"), SHAPES)
def test_the_same_probabilities_as_the_reference(order, vocab, items, discounting):
    rng = np.random.default_rng(order * 100 + vocab)
    if items:
        documents = [_text(rng, vocab, int(rng.integers(1, 12))) for _ in range(60)]
        reference = KneserNey(
            [], vocab, order, items=[list(d) for d in documents],
            discounting=discounting,
        )  # fmt: skip
    else:
        documents = [_text(rng, vocab, 1500)]
        reference = KneserNey(list(documents[0]), vocab, order, discounting=discounting)
    model = NgramModel.count(documents, vocab, order, discounting=discounting)
    assert model.order == order
    np.testing.assert_allclose(model.discounts, reference.discounts, atol=1e-12)
    # Contexts seen in training, padded ones, and random (mostly unseen) ones.
    text = np.concatenate(documents)
    seen = [text[i : i + order - 1] for i in range(5)]
    padded = [np.r_[[vocab] * (order - 1), text][: order - 1]]
    random = [rng.integers(vocab, size=order - 1) for _ in range(10)]
    contexts = np.array(seen + padded + random, dtype=np.int64).reshape(16, order - 1)
    probs, _ = model.distributions(contexts)
    expected = _reference_rows(reference, contexts, vocab, vocab)
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-9)
    for row, context in enumerate(contexts):  # one row alone: the same
        alone_row, bucket = model.distributions(context[None, :])
        np.testing.assert_allclose(alone_row[0], probs[row], rtol=0, atol=1e-12)
        assert bucket[0] == model.distributions(contexts)[1][row]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    # One token at a time gives the same, and the text's cross-entropy.
    targets = rng.integers(vocab, size=len(contexts))
    alone, _ = model.token_probabilities(contexts, targets)
    np.testing.assert_allclose(
        alone, probs[np.arange(len(targets)), targets], atol=1e-12
    )
    p, _ = model.probabilities_of(documents)
    if items:
        want = reference.items_cross_entropy([list(d) for d in documents])
    else:
        want = reference.cross_entropy(list(documents[0]))
    assert -np.log(p).mean() == pytest.approx(want, abs=1e-9)


def test_log_distributions_are_the_log_of_the_distributions_row_by_row():
    """What a residual model adds: the logarithm taken only where grams were
    seen, the same numbers (to float32) and the same for a row alone."""
    rng = np.random.default_rng(5)
    text = _text(rng, 40, 3000)
    for model in (
        NgramModel.count([text], 40, 4),
        NgramModel.count([text], 40, 4, max_bytes=4000),  # pruned
    ):
        seen = [text[i : i + 3] for i in range(0, 60, 3)]
        contexts = np.array(seen + [rng.integers(41, size=3) for _ in range(20)])
        logs, buckets = model.log_distributions(contexts)
        probs, want_buckets = model.distributions(contexts)
        assert logs.dtype == np.float32
        np.testing.assert_allclose(logs, np.log(probs), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(buckets, want_buckets)
        for row in range(len(contexts)):
            alone, _ = model.log_distributions(contexts[row : row + 1])
            np.testing.assert_array_equal(alone[0], logs[row])
    empty, none = model.log_distributions(np.zeros((0, 3), dtype=np.int64))
    assert empty.shape == (0, 40) and none.shape == (0,)


def test_pruning_fits_the_cap_rarest_first_and_still_sums_to_one():
    rng = np.random.default_rng(3)
    documents = [_text(rng, 50, 5000)]
    whole = NgramModel.count(documents, 50, 4)
    small = NgramModel.count(documents, 50, 4, max_bytes=whole.nbytes // 2)
    assert small.nbytes <= whole.nbytes // 2 and small.pruned > 0
    kept_top = small.counts[-1] if small.order == 4 else np.array([99])
    assert kept_top.min() > whole.counts[-1].min()  # singletons went first
    contexts = rng.integers(50, size=(30, 3))
    probs, _ = small.distributions(contexts)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    tiny = NgramModel.count(documents, 50, 4, max_bytes=1)
    assert tiny.order == 1 and tiny.keys == []
    np.testing.assert_allclose(tiny.distributions(contexts[:, :0])[0].sum(1), 1.0)


def test_buckets_follow_how_often_the_context_was_seen():
    documents = [np.array([1, 2, 3] * 30 + [4, 5])]
    model = NgramModel.count(documents, 6, 3)
    _, buckets = model.distributions(np.array([[1, 2], [5, 5], [3, 4]]))
    assert buckets[0] == 4  # "1 2" seen 30 times: 16-63
    assert buckets[1] == 0  # never seen: the unigram level only
    assert buckets[2] == 1  # "3 4" seen once


def test_orders_too_long_for_63_bit_keys_are_lowered():
    model = NgramModel.count([np.arange(100) % 90_000], 90_000, 5)
    assert model.order == 3  # 90,001 ** 4 > 2 ** 63


def test_counting_in_chunks_gives_the_same_tables(monkeypatch):
    import textgen.model.ngram as module

    rng = np.random.default_rng(8)
    documents = [_text(rng, 30, 3000), _text(rng, 30, 5), _text(rng, 30, 700)]
    whole = NgramModel.count(documents, 30, 4)
    labelled = NgramModel.count(documents, 30, 4, labels=[3, 7])
    monkeypatch.setattr(module, "_CHUNK", 64)  # chunks cut through contexts
    chunked = NgramModel.count(documents, 30, 4)
    np.testing.assert_array_equal(whole.unigram, chunked.unigram)
    for a, b in zip(
        whole.keys + whole.counts, chunked.keys + chunked.counts, strict=True
    ):
        np.testing.assert_array_equal(a, b)
    again = NgramModel.count(documents, 30, 4, labels=[3, 7])
    assert again.order == labelled.order == 5
    for a, b in zip(labelled.keys, again.keys, strict=True):
        np.testing.assert_array_equal(a, b)


def test_modified_discounts_differ_by_count_and_old_files_read_as_before():
    """Three discounts per order (on a text long enough to have counts of
    1 to 4), each at most its count; a file from before them (one discount
    per order) reads as the one-discount model it was."""
    rng = np.random.default_rng(11)
    documents = [_text(rng, 40, 5000)]
    modified = NgramModel.count(documents, 40, 4)
    assert modified.discounts.shape == (4, 3)
    top = modified.discounts[-1]
    assert len(set(top.tolist())) == 3
    assert (top > 0).all() and (top <= [1, 2, 3]).all()
    one = NgramModel.count(documents, 40, 4, discounting="one")
    arrays = one.to_arrays(np.full(6, 0.5))
    arrays["discounts"] = one.discounts[:, 0]  # as files before issue 34
    read, _ = NgramModel.from_arrays(arrays, 40)
    contexts = rng.integers(40, size=(20, 3))
    np.testing.assert_allclose(
        read.distributions(contexts)[0], one.distributions(contexts)[0], atol=1e-15
    )
    assert not np.allclose(
        modified.distributions(contexts)[0], one.distributions(contexts)[0]
    )


def test_taking_a_block_away_is_counting_without_it():
    """All the grams less a block's are the grams of every other position
    (each still read with its context): what a memory that must not have
    seen a block of the text is made from."""
    from textgen.model.ngram import Grams

    rng = np.random.default_rng(3)
    documents = [_text(rng, 20, 900), _text(rng, 20, 400)]
    everything = Grams.of([(d, 0, len(d)) for d in documents], 20, 4)
    block = Grams.of([(documents[0], 300, 650)], 20, 4)
    rest = Grams.of(
        [(documents[0], 0, 300), (documents[0], 650, 900), (documents[1], 0, 400)],
        20,
        4,
    )
    left = everything.without(block)
    np.testing.assert_array_equal(left.keys, rest.keys)
    np.testing.assert_array_equal(left.counts, rest.counts)
    assert left.model().unigram.sum() < everything.model().unigram.sum()
    with pytest.raises(ValueError, match="taken away"):
        block.without(everything)


def _labelled_items(count: int) -> list[np.ndarray]:
    """Items `label 4 5 6 last` (ids): the last word is 7 under label 2 and
    8 under label 3, three words after the label: beyond a trigram's reach."""
    return [
        np.array([2, 4, 5, 6, 7] if i % 2 else [3, 4, 5, 6, 8]) for i in range(count)
    ]


def test_a_labelled_memory_writes_like_its_label():
    """A labelled memory's longest grams are read under the label: where
    the label is beyond the context it still decides the next word, and
    without one the memory is the label-blind one."""
    from textgen.model.ngram import Grams, Mixture

    items = _labelled_items(40)
    plain = NgramModel.count(items, 9, 3)
    labelled = NgramModel.count(items, 9, 3, labels=[3, 2])
    assert labelled.order == 4 and labelled.text_order == 3
    assert labelled.labels.tolist() == [2, 3]
    contexts = np.array([[2, 5, 6], [3, 5, 6], [9, 5, 6]])  # 9: the start
    probs, _ = labelled.distributions(contexts)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert probs[0, 7] > 0.9 and probs[1, 8] > 0.9
    blind, _ = plain.distributions(contexts[:, 1:])
    assert abs(blind[0, 7] - blind[0, 8]) < 0.05  # the label-blind memory: either
    np.testing.assert_allclose(probs[2], blind[2], atol=1e-15)
    # Each token is read under the last label before it in its item.
    ids = np.concatenate(items[:2])
    starts = np.repeat([0, 5], 5)
    read = labelled.contexts_at(ids, np.arange(10), starts)
    assert read[:, 0].tolist() == [9, 3, 3, 3, 3, 9, 2, 2, 2, 2]
    assert read[4].tolist() == [3, 5, 6]
    # Generation reads a row's label after its last start only.
    history = np.array([[0, 3, 4, 5, 6], [3, 1, 4, 5, 6], [0, 0, 0, 5, 6]])
    rows = Mixture(labelled, np.full(6, 0.5)).contexts(history, 0, start=1)
    assert rows[:, 0].tolist() == [3, 9, 9]
    # Taken away block by block like the label-blind grams.
    pieces = [(item, 0, 5) for item in items]
    everything = Grams.of(pieces, 9, 3, [2, 3])
    rest = Grams.of(pieces[10:], 9, 3, [2, 3])
    left = everything.without(Grams.of(pieces[:10], 9, 3, [2, 3]))
    np.testing.assert_array_equal(left.tagged_keys, rest.tagged_keys)
    np.testing.assert_array_equal(left.tagged_counts, rest.tagged_counts)
    # It travels in the file; a damaged label list is refused.
    arrays = labelled.to_arrays(np.full(6, 0.5))
    read_back, _ = NgramModel.from_arrays(arrays, 9)
    np.testing.assert_array_equal(read_back.distributions(contexts)[0], probs)
    for bad in ([3, 2], [2, 9], [-1, 2], [], [[2, 3]]):
        with pytest.raises(ValueError, match="labels"):
            NgramModel.from_arrays({**arrays, "labels": np.array(bad)}, 9)
    # Pruned past its labelled order, it is label-blind and still sums to 1.
    small = labelled.pruned_to(plain.nbytes)
    assert small.order <= 3 and not len(small.labels)
    np.testing.assert_allclose(
        small.distributions(contexts[:, 1:])[0].sum(axis=1), 1.0, atol=1e-12
    )


# Tables as a hostile file may hold them (issue 33): any dtype, any values.
# Whatever `from_arrays` accepts must give distributions that sum to 1 with
# no negative value; everything else must be refused with a ValueError.
_INTS = st.sampled_from([np.int64, np.uint64, np.int32, np.uint8])
_FLOATS = st.sampled_from([np.float64, np.float32])
_COUNT = st.one_of(
    st.integers(1, 5), st.integers(-3, 0), st.sampled_from([2**62, 2**63 - 1])
)


@st.composite
def _tables(draw):
    vocab = draw(st.integers(3, 6))
    order = draw(st.integers(1, 3))
    base = vocab + 1
    arrays = {
        "unigram": np.array(
            draw(st.lists(_COUNT, min_size=vocab, max_size=vocab)),
            dtype=np.int64,
        ).astype(draw(_INTS)),
        "discounts": np.array(
            draw(
                st.lists(
                    st.one_of(
                        st.floats(0.01, 1.0), st.sampled_from([0.0, 1.5, np.nan])
                    ),
                    min_size=order,
                    max_size=order,
                )
            )
        ).astype(draw(_FLOATS)),
        "weights": np.array(
            draw(st.lists(st.floats(-0.5, 1.5), min_size=6, max_size=6))
        ).astype(draw(_FLOATS)),
        "pruned": np.array([draw(st.integers(-1, 3))]),
    }
    for k in range(2, order + 1):
        keys = draw(st.lists(st.integers(0, base**k - 1), min_size=1, max_size=12))
        if draw(st.booleans()):
            keys = sorted(set(keys))
        counts = draw(st.lists(_COUNT, min_size=len(keys), max_size=len(keys)))
        kind = draw(_INTS)
        with np.errstate(over="ignore"):
            arrays[f"keys{k}"] = np.array(keys, dtype=np.int64).astype(kind)
            arrays[f"counts{k}"] = np.array(counts, dtype=np.int64).astype(kind)
    if order >= 2 and draw(st.booleans()):  # a labelled memory's label ids
        labels = draw(st.lists(st.integers(-1, vocab), min_size=0, max_size=3))
        arrays["labels"] = np.array(labels, dtype=np.int64).astype(draw(_INTS))
    return vocab, arrays


@settings(max_examples=300, deadline=None)
@given(_tables())
def test_any_table_is_refused_or_sums_to_one(tables):
    vocab, arrays = tables
    try:
        model, weights = NgramModel.from_arrays(arrays, vocab)
    except ValueError:
        return
    assert ((weights >= 0) & (weights <= 1)).all()
    width = model.order - 1
    contexts = np.zeros((1, 0), dtype=np.int64)
    if width:  # every context there is
        grid = np.meshgrid(*[range(vocab + 1)] * width)
        contexts = np.array(grid).reshape(width, -1).T
    with np.errstate(all="raise"):  # no overflow, no division by zero
        probs, _ = model.distributions(contexts)
        one, _ = model.distributions(contexts[:1])
    assert (probs >= 0).all() and (one >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(one.sum(axis=1), 1.0, atol=1e-6)
