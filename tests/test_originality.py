from textgen.model.originality import COPIED_RUN, Fingerprint
from textgen.text.tokens import tokenize

TRAINING = (
    tokenize(
        "the harbour lamps were lit one by one as the tide came in over the mud, "
        "and the lighthouse began to turn above the quiet water of the bay. "
    )
    * 3
)


def test_every_training_ngram_is_found_and_new_ones_are_not():
    fingerprint = Fingerprint.of(TRAINING)
    for i in range(len(TRAINING) - COPIED_RUN + 1):
        assert fingerprint.contains(TRAINING[i : i + COPIED_RUN])
    novel = tokenize("purple engines sang softly beneath frozen violins and clocks")
    misses = sum(
        not fingerprint.contains(novel[i : i + COPIED_RUN])
        for i in range(len(novel) - COPIED_RUN + 1)
    )
    assert misses == len(novel) - COPIED_RUN + 1


def test_longest_copied_run():
    fingerprint = Fingerprint.of(TRAINING)
    copied = TRAINING[3:15]  # 12 words verbatim
    text = tokenize("purple engines sang") + copied + tokenize("beneath frozen violins")
    assert fingerprint.longest_copied_run(text) == 12
    assert (
        fingerprint.longest_copied_run(tokenize("purple engines sang softly beneath"))
        == 0
    )
    assert fingerprint.longest_copied_run(TRAINING[:4]) == 0  # shorter than one n-gram


def test_config_round_trip_is_compact():
    fingerprint = Fingerprint.of(TRAINING)
    config = Fingerprint.from_config(fingerprint.to_config())
    assert config.longest_copied_run(TRAINING[5:20]) == 15
    assert "harbour" not in str(fingerprint.to_config())  # hashes, not the text
