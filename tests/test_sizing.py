"""Budget planning: sizes follow the corpus and the budget, explicit settings
win, and the choice is recorded and kept on resume."""

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from textgen.cli import cli
from textgen.model.config import ModelConfig, TrainConfig
from textgen.model.levels import CHARACTERS
from textgen.training.calibration import StepSpeeds, run_speed
from textgen.training.sizing import (
    BUDGET_EPOCHS,
    PLANNED,
    RESIDUAL_DROPOUT,
    SMALL_UNITS,
    STEP_EFFICIENCY,
    TIED_MIN_UNITS,
    UNITS,
    flops_per_token,
    plan_training,
    plan_window,
)

WORDS = ModelConfig(vocab_size=10_000)


def test_short_budgets_and_big_corpora_get_smaller_networks():
    def units(minutes: float, tokens: int) -> int:
        config = TrainConfig(max_minutes=minutes)
        return plan_training(
            WORDS, config, tokens, PLANNED, gflops=50
        ).model_config.units

    assert units(20, 10_000) == UNITS[-1]  # a small corpus: the full size
    assert units(3, 5_000_000) == TIED_MIN_UNITS  # tied: never without projection
    untied = dataclasses.replace(WORDS, tie_embeddings=False)
    config = TrainConfig(max_minutes=3)
    small = plan_training(untied, config, 5_000_000, PLANNED, gflops=50)
    assert small.model_config.units == UNITS[0]
    sizes = [units(m, 200_000) for m in (3, 12, 20, 60)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert [units(20, n) for n in (10_000, 200_000, 5_000_000)] == sorted(
        [units(20, n) for n in (10_000, 200_000, 5_000_000)], reverse=True
    )


def test_a_residual_network_read_many_times_keeps_some_dropout():
    chars = ModelConfig(vocab_size=80, tie_embeddings=False)  # as train makes it
    budget = {"units", "dropout"}

    def plan(mode: str, tokens: int, planned=budget):
        config = TrainConfig(max_minutes=12, level="char", ngram_mode=mode)
        return plan_training(chars, config, tokens, planned, gflops=50)

    # A text the budget reads as often as planned: the residual network,
    # which only learns corrections, would overfit without dropout.
    read_often = plan("residual", 10**5)
    assert read_often.passes >= CHARACTERS.planned_passes
    assert read_often.model_config.units <= SMALL_UNITS
    assert plan("mixture", 10**5).model_config.dropout == 0
    assert read_often.model_config.dropout == RESIDUAL_DROPOUT
    assert plan("residual", 10**5, {"units"}).model_config.dropout == chars.dropout
    # A budget too short for that: the network underfits, no dropout.
    starved = plan("residual", 10**6)
    assert starved.passes < CHARACTERS.planned_passes
    assert starved.model_config.dropout == 0


def test_the_plan_predicts_passes_from_the_arithmetic():
    config = TrainConfig(max_minutes=10)
    plan = plan_training(WORDS, config, 100_000, PLANNED, gflops=40)
    assert plan.config.lr_schedule == "linear"  # decays to zero at the budget
    assert plan.tokens_per_second == 40e9 * 0.3 / flops_per_token(plan.model_config)
    bigger = flops_per_token(ModelConfig(vocab_size=10_000, units=512))
    assert bigger > flops_per_token(ModelConfig(vocab_size=10_000, units=128))
    assert "2 x" in plan.describe("words") and "passes" in plan.describe("words")


def test_explicit_settings_and_no_budget_are_left_alone():
    fixed = TrainConfig(max_minutes=3, lr_schedule="plateau")
    untied = dataclasses.replace(WORDS, tie_embeddings=False)
    plan = plan_training(untied, fixed, 5_000_000, {"units", "dropout"}, gflops=50)
    assert plan.config.lr_schedule == "plateau"
    assert plan.model_config.units == UNITS[0]
    assert plan.model_config.dropout == 0  # a small network underfits
    middle = plan_training(WORDS, fixed, 20_000, {"units", "dropout"}, gflops=50)
    assert TIED_MIN_UNITS <= middle.model_config.units < WORDS.units
    assert 0 < middle.model_config.dropout < WORDS.dropout  # scaled with the size
    kept = plan_training(WORDS, fixed, 5_000_000, {"units"} | {"x"}, gflops=50)
    assert kept.model_config.dropout == WORDS.dropout  # --dropout given
    same = plan_training(WORDS, fixed, 5_000_000, {"lr_schedule"}, gflops=50)
    assert same.model_config.units == WORDS.units
    assert plan_training(WORDS, TrainConfig(), 5_000_000, PLANNED) is None
    assert plan.config.learning_rate == fixed.learning_rate  # words: as given
    chars = ModelConfig(vocab_size=80)
    fast = plan_training(
        chars, TrainConfig(max_minutes=3, level="char"), 10**6, PLANNED
    )
    assert fast.config.learning_rate == CHARACTERS.planned_learning_rate
    slow = TrainConfig(max_minutes=3, level="char", learning_rate=1e-3)
    kept_rate = plan_training(chars, slow, 10**6, {"units"}, gflops=50)
    assert kept_rate.config.learning_rate == 1e-3  # --learning-rate given
    char = TrainConfig(max_minutes=3, level="char")
    # Character models want more passes: the same corpus and speed give a
    # smaller network than at word level would.
    word_size = plan_training(chars, TrainConfig(max_minutes=10), 114_000, PLANNED, 160)
    char_size = plan_training(
        chars, TrainConfig(max_minutes=10, level="char"), 114_000, PLANNED, 160
    )
    assert char_size.model_config.units < word_size.model_config.units
    assert char_size.passes >= CHARACTERS.planned_passes > word_size.passes
    # With a budget the budget ends training, unless --epochs is given.
    assert char_size.config.epochs == BUDGET_EPOCHS
    assert char_size.to_record()["epochs"] == BUDGET_EPOCHS
    given = plan_training(chars, char, 114_000, set(PLANNED) - {"epochs"}, 160)
    assert given.config.epochs == char.epochs
    assert plan_window(char, PLANNED, 1_000_000).seq_len == 100
    assert plan_window(char, ["units"], 1_000_000).seq_len == char.seq_len
    assert plan_window(char, PLANNED, 500).seq_len == char.seq_len  # too short
    assert plan_window(TrainConfig(max_minutes=3), PLANNED, 10**6).seq_len == 32


def test_measured_speeds_choose_the_size_not_the_arithmetic():
    # The arithmetic says 2 x 512 reads this corpus 8 times in 20 minutes;
    # measured, everything above 256 units is 4x slower than it predicts
    # (a cliff), so the plan steps down to 256, measuring on the way.
    gflops, config, tokens = 50, TrainConfig(max_minutes=20), 60_000
    asked: list[int] = []

    def assumed(units: int) -> float:
        shape = dataclasses.replace(WORDS, units=units)
        return gflops * 1e9 * STEP_EFFICIENCY / flops_per_token(shape)

    def cliff(shape: ModelConfig, allowed: float):
        asked.append(shape.units)
        assert 0 < allowed <= 0.05 * 20 * 60  # the planner's share of the budget
        slow = 4 if shape.units > 256 else 1
        return assumed(shape.units) / slow, "measured"

    by_arithmetic = plan_training(WORDS, config, tokens, PLANNED, gflops)
    assert by_arithmetic.model_config.units == 512
    assert by_arithmetic.source == "assumed" and "assumed" in by_arithmetic.describe(
        "words"
    )
    plan = plan_training(WORDS, config, tokens, PLANNED, gflops, measure=cliff)
    assert plan.model_config.units == 256
    assert asked == [512, 384, 256]  # from the arithmetic's choice, downwards
    assert plan.source == "measured"
    assert plan.tokens_per_second == assumed(256)
    assert "measured on this machine" in plan.describe("words")
    assert plan.to_record()["measured"] == {
        str(u): round(assumed(u) / (4 if u > 256 else 1)) for u in (256, 384, 512)
    }
    # Faster than assumed: it steps up; out of time to measure: scaled by
    # the arithmetic from the nearest size measured.
    asked.clear()
    quick = plan_training(
        WORDS,
        config,
        150_000,
        PLANNED,
        gflops,
        measure=lambda shape, allowed: (
            (asked.append(shape.units), (3 * assumed(shape.units), "remembered"))[1]
            if shape.units == 256
            else None
        ),
    )
    assert asked == [256]
    assert quick.model_config.units > 256 and quick.source == "scaled"
    assert quick.tokens_per_second == pytest.approx(
        3 * assumed(quick.model_config.units)
    )


def test_speeds_are_remembered_per_machine(tmp_path: Path):
    path = tmp_path / "speeds" / "step-speeds.json"
    here = StepSpeeds(path, "cpu A")
    assert here.get("k") is None and here.measuring_cost() == 30
    here.put("k", 1234.5, "steps", seconds=12.0)
    here.put("j", 99.0, "run")
    again = StepSpeeds(path, "cpu A")
    assert again.get("k") == 1234.5 and again.get("j") == 99.0
    assert again.measuring_cost() == 12.0  # what this machine took to measure
    other = StepSpeeds(path, "cpu B")
    assert other.get("k") is None  # another machine measures its own
    other.put("k", 1.0, "steps")
    assert StepSpeeds(path, "cpu A").get("k") == 1234.5  # both kept
    path.write_text("{not json")
    assert StepSpeeds(path, "cpu A").get("k") is None  # damaged: measured again
    for damaged in ('"fast"', "NaN", "-1", "true", "1e300"):
        path.write_text(f'{{"cpu A": {{"k": {{"tokens_per_second": {damaged}}}}}}}')
        assert StepSpeeds(path, "cpu A").get("k") is None, damaged
    path.write_text('{"cpu A": {"k": {"tokens_per_second": 5, "seconds": "x"}}}')
    assert StepSpeeds(path, "cpu A").get("k") is None  # every field checked
    path.write_text("[" * 100_000 + "]" * 100_000)  # deeper than json can go
    assert StepSpeeds(path, "cpu A").measuring_cost() == 30
    assert run_speed([9.0, 5.0, 1.0, 1.0, 3.0], 100) == 100  # first two compile
    assert run_speed([9.0, 5.0, 1.0], 100) is None  # too few to tell


@pytest.mark.slow
def test_cli_records_the_plan_and_resume_keeps_it(tmp_path: Path, pattern_file: Path):
    from textgen.model.file import read_model

    out = tmp_path / "m.keras"
    common = ["--epochs", "1", "--layers", "1", "--embedding-dim", "8", "--no-plot"]
    runner = CliRunner()
    budget = ["--max-minutes", "20"]
    result = runner.invoke(
        cli,
        [
            "train",
            str(pattern_file),
            "-o",
            str(out),
            "--seq-len",
            "8",
            *common,
            *budget,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "20-minute budget" in result.output
    assert "measured on this machine" in result.output  # a minute to measure in
    record = read_model(out, weights=False).record
    plan = record["plan"]
    assert plan["speed_source"] == "measured"
    assert str(plan["units"]) in plan["measured"] and plan["run_tokens_per_second"]
    # The run's own speed replaced the planner's timing of its size.
    remembered = list(StepSpeeds().entries.values())  # this test's own (conftest)
    assert [e["source"] for e in remembered] == ["run"]
    assert remembered[0]["tokens_per_second"] == pytest.approx(
        plan["run_tokens_per_second"], abs=1
    )
    shape = read_model(out, weights=False).model_config
    assert plan["units"] == shape.units and shape.tie_embeddings  # words: tied
    assert record["train_config"]["lr_schedule"] == plan["lr_schedule"] == "linear"
    assert record["train_config"]["seq_len"] == 8  # given: kept
    resumed = runner.invoke(
        cli, ["train", str(pattern_file), "--resume", str(out), "--epochs", "2"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert "budget:" not in resumed.output
    again = read_model(out, weights=False).record
    assert again["plan"] == plan
    assert again["train_config"]["lr_schedule"] == "linear"
    assert again["train_config"]["seq_len"] == 8
    fixed = tmp_path / "f.keras"
    given = ["--units", "16", "--lr-schedule", "plateau"]  # and no budget
    result = runner.invoke(
        cli,
        [
            "train",
            str(pattern_file),
            "-o",
            str(fixed),
            "--seq-len",
            "8",
            *common,
            *given,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "budget" not in result.output
    assert read_model(fixed, weights=False).record["plan"] is None


@pytest.mark.slow
def test_character_models_are_untied_unless_asked(tmp_path: Path, pattern_file: Path):
    from textgen.model.file import read_model

    small = ["--epochs", "1", "--layers", "1", "--units", "8", "--no-plot"]
    small += ["--embedding-dim", "8", "--seq-len", "20", "--level", "char"]
    runner = CliRunner()
    tied = {}
    for name, extra in (("default", []), ("asked", ["--tie-embeddings"])):
        out = tmp_path / f"{name}.keras"
        args = ["train", str(pattern_file), "-o", str(out), *small, *extra]
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert " characters (" in result.output  # counted in its own unit
        tied[name] = read_model(out, weights=False).model_config.tie_embeddings
    # The library takes the level's default the same way (the one home of it).
    from textgen.training.train import train

    out = tmp_path / "library.keras"
    shape = ModelConfig(layers=1, units=8, embedding_dim=8)
    assert shape.tie_embeddings is None and shape.tied  # unset: read as tied
    config = TrainConfig(level="char", epochs=1, seq_len=20)
    train([pattern_file], out, shape, config, log=lambda line: None)
    tied["library"] = read_model(out, weights=False).model_config.tie_embeddings
    assert tied == {"default": False, "asked": True, "library": False}
    assert shape.for_level("word").tie_embeddings is True


def test_a_budget_shorter_than_start_up_says_so():
    plan = plan_training(WORDS, TrainConfig(max_minutes=0.001), 10_000, PLANNED, 50)
    line = plan.describe("words")
    assert "0.0 passes" in line and "shorter than start-up" in line
    long = plan_training(WORDS, TrainConfig(max_minutes=10), 10_000, PLANNED, 50)
    assert "start-up" not in long.describe("words")
    huge = plan_training(WORDS, TrainConfig(max_minutes=5000), 10, PLANNED, 1e6)
    assert len(huge.describe("words")) < 400  # counts with separators, no 300 digits
