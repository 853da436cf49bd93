"""Continuous batching (`batching.Engine`): requests' rows stepped together
give what each would alone; rows join and leave the running batch."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from textgen.inference.contract import GenerationRequest, SamplingSettings
from textgen.inference.generate import Generator
from textgen.model.file import read_model
from textgen.serving.engine import Engine, Job


def _submit(engine: Engine, seeds, length, random_seed, **options) -> dict:
    """Submit a request; the dict gets "samples" (or "error") when it ends."""
    result: dict = {"event": threading.Event()}

    def done(samples, error):
        result["samples"], result["error"] = samples, error
        result["event"].set()

    sampling = options.pop("sampling", SamplingSettings(temperature=1.5))
    on_text = options.pop("on_text", None)
    deadline = options.pop("deadline", None)
    request = Job(
        seeds=seeds,
        samplings=[sampling] * len(seeds),
        request=GenerationRequest(length=length, random_seed=random_seed, **options),
        on_done=done,
        on_text=on_text,
        deadline=deadline,
    )
    engine.submit(request)
    result["request"] = request
    return result


def _wait(result: dict) -> list:
    assert result["event"].wait(60), "the engine never finished the request"
    assert result["error"] is None, result["error"]
    return result["samples"]


@pytest.fixture
def engine_for():
    """Makes engines (on a model file's path) and closes them after the test."""
    made: list[Engine] = []

    def make(path: Path, **options) -> Engine:
        made.append(Engine(Generator(read_model(path)), **options))
        return made[-1]

    yield make
    for engine in made:
        engine.close()


def test_engine_gives_what_sample_gives_alone(engine_for, trained, name_model):
    cases = ((trained, ["one two", "four"], False), (name_model, ["ba", ""], True))
    for (path, model), seeds, novel in cases:
        engine = engine_for(path)
        requests = [_submit(engine, seeds, 30, seed, novel=novel) for seed in range(5)]
        for seed, request in enumerate(requests):
            alone = Generator(model).sample(
                seeds,
                [SamplingSettings(temperature=1.5)] * 2,
                length=30,
                random_seed=seed,
                novel=novel,
            )
            together = _wait(request)
            assert [s.text for s in together] == [s.text for s in alone]
            assert [s.rejected for s in together] == [s.rejected for s in alone]


@pytest.mark.slow
def test_a_request_joins_the_running_batch(engine_for, trained):
    engine = engine_for(trained[0])
    long = _submit(engine, ["one"], 3000, 1)
    while engine.steps == 0:  # the long one is running
        time.sleep(0.001)
    short = _submit(engine, ["two"], 20, 2)
    _wait(short)
    assert not long["event"].is_set(), "the short request waited for the long one"
    steps_when_short_ended = engine.steps
    _wait(long)
    # Shared steps: the two together took the long one's steps, not the sum.
    assert engine.steps <= 3000 < steps_when_short_ended + 3000


@pytest.mark.slow
def test_requests_beyond_max_rows_wait_for_room(engine_for, trained):
    engine = engine_for(trained[0], max_rows=2)
    results = [_submit(engine, ["one"], 500, seed) for seed in range(3)]
    most = 0
    while not all(r["event"].is_set() for r in results):
        most = max(most, engine.active_rows)
        time.sleep(0.001)
    assert most == 2
    for result in results:
        assert len(_wait(result)[0].words) == 500


def test_a_failing_step_ends_the_requests_in_it_and_the_engine_goes_on(
    engine_for, trained
):
    engine = engine_for(trained[0])
    real_step, calls = engine.generator.decoder.step, []

    def failing_once(ids, states):  # the first step the engine's worker runs
        if threading.current_thread().name == "textgen-engine":
            calls.append(len(ids))
            if len(calls) == 1:
                raise FloatingPointError("broken")
        return real_step(ids, states)

    engine.generator.decoder.step = failing_once
    failed = _submit(engine, ["one"], 20, 1)
    assert failed["event"].wait(30)
    assert isinstance(failed["error"], FloatingPointError)
    assert len(_wait(_submit(engine, ["one"], 20, 2))[0].words) == 20


def test_a_cancelled_request_leaves_the_batch_and_is_not_answered(engine_for, trained):
    engine = engine_for(trained[0])
    result = _submit(engine, ["one"] * 8, 100_000, 1)
    while engine.active_rows == 0:
        time.sleep(0.001)
    engine.cancel(result["request"])
    deadline = time.monotonic() + 30
    while engine.active_rows and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.active_rows == 0
    assert engine.cancelled == 1
    assert not result["event"].is_set()


def test_closing_the_engine_ends_waiting_requests_with_an_error(engine_for, trained):
    engine = engine_for(trained[0])
    result = _submit(engine, ["one"], 1_000_000, 1)
    engine.close()
    assert result["event"].wait(30)
    assert "shutting down" in str(result["error"])


@pytest.mark.slow
def test_a_job_past_its_deadline_ends_and_frees_its_rows(engine_for, trained):
    from textgen.errors import TimedOut

    engine = engine_for(trained[0])
    late = _submit(engine, ["one"] * 4, 1_000_000, 1, deadline=time.monotonic() + 0.3)
    on_time = _submit(engine, ["two"], 20, 2)
    assert len(_wait(on_time)[0].words) == 20  # the other job is not disturbed
    assert late["event"].wait(60), "the late job never ended"
    assert isinstance(late["error"], TimedOut) and "--timeout" in str(late["error"])
    assert late["samples"] is None and engine.timed_out == 1
    deadline = time.monotonic() + 10
    while engine.active_rows:
        assert time.monotonic() < deadline, "its rows stayed in the batch"
        time.sleep(0.01)
