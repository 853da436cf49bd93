"""The generation contract (`textgen/inference/contract.py`): each setting's
default, bounds and message live once, and the command line reads them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from textgen.cli import cli
from textgen.inference.contract import (
    COUNT_CAP,
    GenerationRequest,
    SamplingSettings,
    SettingError,
    knobs,
    resolve_novel,
    settings_card,
)

BAD = [
    (SamplingSettings, "temperature", -1, "must be 0 (greedy) or more, not -1"),
    (SamplingSettings, "temperature", float("nan"), "must be a finite number"),
    (SamplingSettings, "top_k", 2.5, "must be an integer, not 2.5"),
    (SamplingSettings, "top_k", True, "must be an integer, not a boolean"),
    (SamplingSettings, "top_p", 0, "must be more than 0 and at most 1, not 0"),
    (SamplingSettings, "min_p", 1, "must be at least 0 and below 1, not 1"),
    (SamplingSettings, "repeat_window", 0, "must be 1 or more, not 0"),
    (SamplingSettings, "no_repeat_ngram", 1, "must be 0 (off) or 2 or more, not 1"),
    (GenerationRequest, "length", -3, "must be 0 or more, not -3"),
    (GenerationRequest, "max_tries", 1001, "must be from 0 to 1,000, not 1,001"),
    (GenerationRequest, "random_seed", 2**32, "must be from 0 to 4,294,967,295"),
    (GenerationRequest, "logprobs", "5", "must be an integer, not a string"),
]


@pytest.mark.parametrize(("cls", "field", "value", "problem"), BAD)
def test_a_value_out_of_bounds_names_its_field_in_one_line(cls, field, value, problem):
    with pytest.raises(SettingError) as refused:
        cls(**{field: value})
    assert refused.value.field == field
    assert problem in refused.value.problem
    assert refused.value.named("--x").startswith("--x must be")
    assert "\n" not in str(refused.value)


def test_numbers_of_any_kind_are_read_as_the_fields_kind():
    settings = SamplingSettings(top_k=np.int64(5), temperature=np.float32(0.5))
    assert (settings.top_k, type(settings.top_k)) == (5, int)
    assert type(settings.temperature) is float
    assert SamplingSettings(top_k=3.0).top_k == 3  # an integral float
    assert SamplingSettings(top_k=10**40).top_k == COUNT_CAP  # no upper bound
    assert GenerationRequest(random_seed=np.uint32(7)).random_seed == 7


def test_novel_is_resolved_once_for_every_door():
    assert resolve_novel(None, items=True, max_tries_given=False) is True
    assert resolve_novel(None, items=False, max_tries_given=False) is False
    with pytest.raises(SettingError, match="needs a model trained with"):
        resolve_novel(True, items=False, max_tries_given=False)
    with pytest.raises(SettingError) as refused:
        resolve_novel(False, items=True, max_tries_given=True)
    assert refused.value.field == "max_tries"


def test_the_command_line_takes_its_defaults_and_help_from_the_contract():
    options = {p.name: p for p in cli.commands["generate"].params}
    for cls in (SamplingSettings, GenerationRequest):
        for name, (bounds, default) in knobs(cls).items():
            if name not in options or name in ("length", "temperature"):
                continue  # -n is at least 1; -t takes a list (below)
            option = options[name]
            assert option.default == default, name
            # Their own words where a flag is named (--repeat-window, --novel).
            if name not in ("repetition_penalty", "max_tries", "random_seed"):
                assert option.help == bounds.help, name
    # One default temperature: the library's is the command line's.
    assert options["temperature"].default == str(SamplingSettings().temperature)
    assert SamplingSettings().temperature == 0.8


def test_the_settings_card_lists_every_knob_with_its_default():
    card = settings_card(SamplingSettings, GenerationRequest)
    knob_fields = {
        f.name
        for cls in (SamplingSettings, GenerationRequest)
        for f in dataclasses.fields(cls)
        if "knob" in f.metadata
    }
    assert set(card) == knob_fields
    assert card["top_p"] == {
        "default": 1.0,
        "type": "float",
        "help": knobs(SamplingSettings)["top_p"][0].help,
        "low": 0,
        "high": 1,
        "low_open": True,
    }


def test_a_bad_option_value_is_clicks_one_line_with_the_contracts_words():
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["generate", "--top-p", "1.5"])
    assert result.exit_code == 2
    assert (
        "Invalid value for '--top-p': must be more than 0 and at most 1, not 1.5"
        in result.output
    )
