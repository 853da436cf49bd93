"""`textgen serve`: the OpenAI-compatible HTTP API, driven by the real `openai`
client and raw HTTP against a server on a free loopback port (the batching
engine under it: tests/test_batching.py)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from click.testing import CliRunner
from conftest import Server

from textgen.cli import cli
from textgen.model.novelty import ItemSet


@pytest.fixture(scope="module")
def server(trained, name_model):
    running = Server("-m", str(trained[0]), "-m", str(name_model[0]))
    yield running
    assert running.stop() == 0, "".join(running.log)


def _cli_text(path: Path, seed: str, length: int, temperature: float, random_seed: int):
    result = CliRunner().invoke(
        cli,
        [
            "generate", "-m", str(path), "--seed", seed, "-n", str(length),
            "-t", str(temperature), "--random-seed", str(random_seed),
            "--format", "jsonl",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.output.splitlines()[-1])["text"]


@pytest.mark.slow
def test_a_completion_is_what_textgen_generate_gives(server, trained, name_model):
    client = server.client()
    for path, prompt in ((trained[0], "one two"), (name_model[0], "ba")):
        expected = _cli_text(path, prompt, 12, 1.5, 42)
        answer = client.completions.create(
            model=path.stem, prompt=prompt, max_tokens=12, temperature=1.5, seed=42
        )
        assert answer.object == "text_completion"
        (choice,) = answer.choices
        assert prompt + choice.text == expected or (
            # the tokenizer's case folding: the text is the model's own
            expected.lower().startswith(prompt.lower())
            and expected.endswith(choice.text)
        )
        echoed = client.completions.create(
            model=path.stem,
            prompt=prompt,
            max_tokens=12,
            temperature=1.5,
            seed=42,
            echo=True,
        )
        # Echo returns the prompt as it was sent, then the same continuation.
        assert echoed.choices[0].text == prompt + choice.text
        assert choice.finish_reason in ("stop", "length")
        assert answer.usage.completion_tokens >= 1
        assert answer.usage.prompt_tokens == 2  # two words; two characters


def test_a_streamed_completion_joins_to_the_same_text(server, trained):
    client = server.client()
    settings = dict(
        model="pattern", prompt="four", max_tokens=40, temperature=2.0, seed=7
    )
    whole = client.completions.create(**settings).choices[0]
    chunks = list(client.completions.create(stream=True, **settings))
    assert len(chunks) > 2  # pieces, not one block
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.text
    assert chunks[-1].choices[0].finish_reason == whole.finish_reason == "length"
    # On the wire: server-sent events ending with [DONE].
    lines = _events(server.url, {**settings, "stream": True})
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"


def _logprobs_match_text(logprobs, text: str) -> None:
    """The tokens are the text cut at each token, and the offsets index it."""
    assert "".join(logprobs.tokens) == text
    for offset, token in zip(logprobs.text_offset, logprobs.tokens, strict=True):
        assert text[offset : offset + len(token)] == token


def test_logprobs_are_the_distribution_before_temperature(server):
    client = server.client()
    settings = dict(model="pattern", prompt="one two", max_tokens=12, logprobs=3)
    greedy = client.completions.create(temperature=0, **settings)
    choice, lp = greedy.choices[0], greedy.choices[0].logprobs
    _logprobs_match_text(lp, choice.text)
    assert len(lp.tokens) == greedy.usage.completion_tokens == 12
    for token, value, top in zip(
        lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True
    ):
        assert len(top) == 3 and value <= 0
        # Greedy: the chosen token is the likeliest, and found as written.
        assert max(top, key=top.get) == token
        assert top[token] == pytest.approx(value)
    # A hot draw: other words, but the first one's alternatives are the same
    # numbers (temperature changes the draw, not the distribution reported).
    hot = client.completions.create(temperature=3.0, seed=3, **settings).choices[0]
    _logprobs_match_text(hot.logprobs, hot.text)
    # (the drawn token is added when it is not among the three likeliest)
    assert sorted(hot.logprobs.top_logprobs[0].values())[-3:] == pytest.approx(
        sorted(lp.top_logprobs[0].values())
    )
    # Streamed: the same tokens and numbers, each sent once, in order.
    chunks = list(client.completions.create(temperature=0, stream=True, **settings))
    parts = [c.choices[0].logprobs for c in chunks if c.choices]
    parts = [p for p in parts if p]
    assert len(parts) > 1
    for field in ("tokens", "token_logprobs", "text_offset"):
        joined = [x for p in parts for x in getattr(p, field)]
        assert joined == getattr(lp, field)


def test_echo_scores_a_prompt_as_textgen_evaluate_does(
    server, trained, name_model, tmp_path
):
    """max_tokens 0 with echo: the prompt's log-probabilities are textgen
    evaluate's per-token losses (the first one's null, as OpenAI gives it)."""
    cases = (
        (trained[0], "six seven eight nine!\n\none two two three, four five."),
        (name_model[0], "bakolu"),  # one item: its end token is not scored here
        # Items: a line break ends one (scored as its end), the next starts
        # afresh (issue 33).
        (name_model[0], "bako\nlu  \n\n tami"),
    )
    for case, (path, text) in enumerate(cases):
        corpus = tmp_path / f"{path.stem}{case}.txt"
        corpus.write_text(text + "\n", encoding="utf-8")
        per_token = tmp_path / f"{path.stem}{case}.jsonl"
        result = CliRunner().invoke(
            cli,
            ["evaluate", "-m", str(path), "--per-token", str(per_token), str(corpus)],
        )
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in per_token.read_text().splitlines()]
        if lines[0]["token"] == "<end>":  # what an item model's text starts with
            lines.pop(0)
        if lines[-1]["token"] == "<end>":  # the prompt's last item goes on
            lines.pop()
        expected = [line["nats"] for line in lines]
        for stream in (False, True):
            body = dict(
                model=path.stem, prompt=text, max_tokens=0, echo=True, logprobs=0
            )
            if stream:
                events = _events(server.url, {**body, "stream": True})
                parts = [json.loads(e[6:])["choices"] for e in events[:-1]]
                logprobs = [c[0]["logprobs"] for c in parts if c]
                got = [x for p in logprobs if p for x in p["token_logprobs"]]
            else:
                answer = server.post(body).json()["choices"][0]
                got = answer["logprobs"]["token_logprobs"]
                assert "".join(answer["logprobs"]["tokens"]) == answer["text"]
            assert len(got) == len(expected)
            assert got[0] is None
            assert got[1:] == pytest.approx([-x for x in expected[1:]], abs=1e-5)


def test_logprobs_of_a_novel_item(server):
    answer = server.client().completions.create(
        model="names", prompt="", max_tokens=20, n=4, temperature=1.5, seed=2,
        logprobs=2, extra_body={"novel": True},
    )  # fmt: skip
    for choice in answer.choices:
        _logprobs_match_text(choice.logprobs, choice.text)
        assert all(value <= 0 for value in choice.logprobs.token_logprobs)


def test_n_stop_and_usage(server):
    client = server.client()
    answer = client.completions.create(
        model="pattern", prompt="one", max_tokens=30, temperature=3.0, n=3, seed=5
    )
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert len({c.text for c in answer.choices}) > 1
    assert answer.usage.completion_tokens == 90
    assert answer.usage.prompt_tokens == 1
    # Two prompts, two each: prompt-major order, as --seed-file with --num-samples.
    both = client.completions.create(
        model="pattern", prompt=["one", "six"], max_tokens=5, n=2, temperature=0
    )
    texts = [c.text for c in both.choices]
    assert texts[0] == texts[1] != texts[2] == texts[3]
    # stop: the text ends where the stop string would begin, and says so.
    plain = client.completions.create(
        model="pattern", prompt="one", max_tokens=20, temperature=0
    ).choices[0]
    assert "five" in plain.text
    stopped = client.completions.create(
        model="pattern", prompt="one", max_tokens=20, temperature=0, stop=["five"]
    ).choices[0]
    assert stopped.finish_reason == "stop"
    assert stopped.text == plain.text[: plain.text.index("five")].rstrip()


def test_item_models_end_items_and_never_hand_back_a_training_one(server, name_model):
    _, model = name_model
    items = ItemSet.from_config(model.record["items"])
    answer = server.client().completions.create(
        model="names",
        prompt="",
        max_tokens=30,
        temperature=1.0,
        n=40,
        seed=3,
        extra_body={"novel": True, "max_tries": 50},
    )
    assert len(answer.choices) == 40
    for choice in answer.choices:
        assert choice.finish_reason == "stop"  # the end-of-item token
        assert "\n" not in choice.text
        assert list(choice.text.lower()) not in items


def test_models_and_health(server):
    listed = server.client().models.list()
    names = sorted(m.id for m in listed.data)
    assert names == ["names", "pattern"]
    card = httpx.get(server.url + "/v1/models/names").json()
    assert card["textgen"]["documents"] == "lines"
    assert card["textgen"]["training_items"] == 300
    health = server.health()
    assert health["status"] == "ok"
    assert set(health["models"]) == {"names", "pattern"}


def test_textgen_controls_are_applied(server):
    client = server.client()
    greedy = client.completions.create(
        model="pattern", prompt="one", max_tokens=12, temperature=0
    )
    assert greedy.choices[0].text.split()[:2] == ["two", "three,"]
    repeated = client.completions.create(
        model="pattern",
        prompt="one",
        max_tokens=30,
        temperature=0,
        extra_body={"no_repeat_ngram": 2, "until": "sentence"},
    )
    words = repeated.choices[0].text.split()
    pairs = list(itertools.pairwise(words))
    assert len(pairs) == len(set(pairs))
    assert repeated.choices[0].stopped_by in ("until", "length")


BAD = [
    # (body, status, words of the message)
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "must be a JSON object"),
    ({"model": "pattern", "prompt": 3}, 400, "prompt must be a string"),
    ({"model": "pattern", "prompt": [1, 10**9]}, 400, "token id 1000000000 is not"),
    ({"model": "pattern", "prompt": [1.5]}, 400, "list of token ids"),
    ({"model": "pattern", "prompt": ["a", [1]]}, 400, "not a mixture"),
    ({"model": "pattern", "prompt": [True]}, 400, "list of token ids"),
    ({"model": "pattern", "prompt": []}, 400, "must not be an empty list"),
    ({"model": "pattern", "max_tokens": "9"}, 400, "max_tokens must be an integer"),
    ({"model": "pattern", "max_tokens": 0}, 400, "(0 only with echo"),
    ({"model": "pattern", "max_tokens": -1}, 400, "max_tokens must be from 0"),
    ({"model": "pattern", "max_tokens": True}, 400, "must be an integer"),
    ({"model": "pattern", "temperature": -1}, 400, "temperature must be 0"),
    ({"model": "pattern", "top_p": 0}, 400, "top_p must be more than 0 and at most 1"),
    ({"model": "pattern", "no_repeat_ngram": 1}, 400, "no_repeat_ngram must be"),
    ({"model": "pattern", "n": 0}, 400, "n must be from 1"),
    ({"model": "pattern", "prompt": ["a"] * 100, "n": 3}, 400, "over 256"),
    ({"model": "pattern", "stream": "yes"}, 400, "stream must be true or false"),
    ({"model": "pattern", "until": "chapter"}, 400, "until must be"),
    ({"model": "pattern", "novel": True}, 400, "novel needs a model trained"),
    ({"model": "pattern", "logprobs": 21}, 400, "logprobs must be from 0 to 20"),
    ({"model": "pattern", "logprobs": True}, 400, "logprobs must be an integer"),
    ({"model": "pattern", "best_of": 3}, 400, "best_of is not supported"),
    ({"model": "pattern", "seed": -1}, 400, "seed must be from 0"),
    ({"model": "pattern", "stop": [1]}, 400, "stop must be a string"),
    ({"model": 7}, 400, "model must be a string"),
    ({"prompt": "x"}, 400, "model is required: this server has 2 (names, pattern)"),
    ({"model": "pattern", "max_tries": 3}, 400, "max_tries is for novel"),
    ({"model": "pattern", "max_tokens": 1e300}, 400, "to 4,096, not 1e+300"),
    ({"model": "pattern", "top_k": 2.5}, 400, "top_k must be an integer"),
    ({"model": "nobody"}, 404, "not loaded here"),
    ({"model": "pattern", "prompt": "a " * 9000}, 413, "9,000 tokens; the most is"),
    ({"model": "pattern", "prompt": "a," * 5000}, 413, "10,000 tokens; the most is"),
    (b"{" + b" " * (1 << 20) + b"}", 413, "body is over"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD)
def test_bad_requests_get_a_4xx_with_one_line(server, body, status, message):
    response = server.post(body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error["message"]
    assert "\n" not in error["message"]
    assert "Traceback" not in response.text


def test_the_openai_client_sees_the_errors(server):
    client = server.client()
    with pytest.raises(openai.NotFoundError, match="not loaded here"):
        client.completions.create(model="nobody", prompt="x")
    with pytest.raises(openai.BadRequestError, match="temperature must be 0"):
        client.completions.create(model="pattern", prompt="x", temperature=-2)


def test_wrong_paths_and_methods_answer_in_json(server):
    missing = httpx.get(server.url + "/v1/nothing")
    assert missing.status_code == 404
    assert "no such endpoint" in missing.json()["error"]["message"]
    wrong = httpx.get(server.url + "/v1/completions")
    assert wrong.status_code == 405


def test_a_client_that_goes_away_mid_stream_frees_its_rows(server):
    before = server.health()["models"]["pattern"]
    with httpx.stream(
        "POST",
        server.url + "/v1/completions",
        json={"model": "pattern", "max_tokens": 4096, "n": 32, "stream": True},
        timeout=30,
    ) as response:
        next(response.iter_lines())  # generation is under way
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = server.health()["models"]["pattern"]
        if now["active_rows"] == 0 and now["cancelled"] > before["cancelled"]:
            break
        time.sleep(0.05)
    assert now["active_rows"] == 0
    assert now["cancelled"] == before["cancelled"] + 1


@pytest.mark.slow
def test_random_bodies_never_hurt_the_server(server):
    rng = random.Random(11)
    values = [
        None, True, False, 0, 1, -1, 2, 3.5, 1e300, -0.0, "", "x", "one two",
        [], ["one"], [1], [[]], {}, {"a": 1}, "\x00\ud800"[0], 2**70,
    ]  # fmt: skip
    keys = [
        "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "n",
        "stop", "seed", "stream", "echo", "min_p", "repetition_penalty",
        "no_repeat_ngram", "until", "novel", "max_tries", "stream_options",
        "logprobs", "best_of", "suffix", "repeat_window", "zzz",
    ]  # fmt: skip
    statuses = []
    for i in range(300):
        kind = i % 4
        if kind == 0:  # random bytes
            body: bytes | dict = bytes(
                rng.randrange(256) for _ in range(rng.randrange(60))
            )
        elif kind == 1:  # any JSON value
            body = json.dumps(rng.choice(values)).encode()
        else:  # an object with known keys and values of any type
            body = {k: rng.choice(values) for k in rng.sample(keys, rng.randrange(6))}
            if kind == 3:
                body["model"] = rng.choice(["pattern", "names"])
        response = server.post(body)
        statuses.append(response.status_code)
        assert response.status_code < 500, (body, response.text)
        if response.status_code != 200:
            assert response.json()["error"]["message"]
    assert 200 in statuses and 400 in statuses
    assert server.health()["status"] == "ok"


@pytest.mark.slow
def test_an_api_key_is_required_when_set(trained):
    running = Server("-m", str(trained[0]), env={"TEXTGEN_API_KEY": "s3cret"})
    try:
        assert "API key required" in "".join(running.log)
        body = {"model": "pattern", "prompt": "one", "max_tokens": 3}
        assert running.post(body).status_code == 401
        wrong = running.post(body, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "Authorization: Bearer" in wrong.json()["error"]["message"]
        assert httpx.get(running.url + "/v1/models").status_code == 401
        with pytest.raises(openai.AuthenticationError):
            running.client("nope").completions.create(model="pattern", prompt="one")
        answer = running.client("s3cret").completions.create(
            model="pattern", prompt="one", max_tokens=3
        )
        assert answer.choices[0].text
        assert running.health()["status"] == "ok"  # health needs no key
    finally:
        assert running.stop() == 0


@pytest.mark.slow
def test_ctrl_c_lets_the_request_in_flight_finish(trained):
    running = Server("-m", str(trained[0]), "--max-request-cost", str(2**21))
    result = {}

    def ask():
        result["response"] = running.post(
            {"model": "pattern", "max_tokens": 4096, "n": 64, "temperature": 1.0}
        )

    asking = threading.Thread(target=ask)
    asking.start()
    deadline = time.monotonic() + 30
    while running.health()["models"]["pattern"]["active_rows"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert running.stop() == 0
    asking.join(60)
    assert result["response"].status_code == 200
    assert len(result["response"].json()["choices"]) == 64
    assert "stopped" in "".join(running.log)


def test_serve_refuses_what_it_cannot_do(trained, tmp_path, monkeypatch):
    path = str(trained[0])
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    result = CliRunner().invoke(cli, ["serve", "-m", str(empty)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "empty.keras" in result.output
    result = CliRunner().invoke(cli, ["serve", "-m", path, "-m", path])
    assert result.exit_code == 2 and "two models are named 'pattern'" in result.output
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "-m", path, "--port", str(port)])
    assert (
        result.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in result.output
    )
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    result = CliRunner().invoke(cli, ["serve", "-m", path])
    assert result.exit_code == 1 and "pip install 'textgen[serve]'" in result.output


@pytest.mark.slow
def test_a_non_ascii_key_matches_its_utf8_bytes(trained):
    running = Server("-m", str(trained[0]), env={"TEXTGEN_API_KEY": "clé du port"})
    try:
        body = {"model": "pattern", "prompt": "one", "max_tokens": 3}
        key = "Bearer clé du port".encode()
        assert running.post(body, headers={"authorization": key}).status_code == 200
        latin = "Bearer clé du port".encode("latin-1")
        assert running.post(body, headers={"authorization": latin}).status_code == 401
    finally:
        assert running.stop() == 0


def test_a_key_that_is_not_text_is_refused_at_start(trained):
    import os

    result = subprocess.run(
        [sys.executable, "-m", "textgen", "serve", "-m", str(trained[0])],
        env={**os.environ, "TEXTGEN_API_KEY": "k\udcff"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "--api-key" in result.stderr and "UTF-8" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_default_listing_skips_what_is_not_a_finished_model(trained, tmp_path):
    import shutil

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(trained[0], models / "good.keras")
    (models / ".good.123.tmp.keras").write_bytes(b"PK\x03\x04 half a save")
    shutil.copy(trained[0], models / "good.last.keras")
    (models / "damaged.keras").write_bytes(b"PK\x03\x04 not a model")
    running = Server(cwd=tmp_path)
    try:
        served = httpx.get(running.url + "/v1/models").json()["data"]
        assert [model["id"] for model in served] == ["good"]
        log = "".join(running.log)
        assert "damaged.keras" in log and "Traceback" not in log
        assert ".tmp" not in log and "last" not in log
    finally:
        assert running.stop() == 0


@pytest.mark.slow
def test_a_full_queue_answers_429_and_a_long_request_504(trained):
    """With one batch row and one waiting request allowed, a third request is
    refused at once (429, Retry-After); a request past --timeout ends with
    504, or with an error event when streamed, and frees its rows."""
    running = Server(
        "-m", str(trained[0]), "--max-batch", "1", "--max-queue", "1",
        "--timeout", "1.5", "--max-request-cost", str(2**21),
    )  # fmt: skip
    long = {"model": "pattern", "max_tokens": 4096, "n": 256, "temperature": 1.0}
    answers: dict = {}

    def ask(name: str) -> None:
        answers[name] = running.post(long)

    try:
        first = threading.Thread(target=ask, args=("first",))
        first.start()
        _until(lambda: running.health()["models"]["pattern"]["active_rows"])
        second = threading.Thread(target=ask, args=("second",))
        second.start()
        _until(lambda: running.health()["models"]["pattern"]["waiting_requests"])
        started = time.monotonic()
        refused = running.post({"model": "pattern", "max_tokens": 3})
        assert time.monotonic() - started < 2  # at once, not after the queue
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert "busy" in refused.json()["error"]["message"]
        first.join(60)
        second.join(60)
        for name in ("first", "second"):
            assert answers[name].status_code == 504, answers[name].text
            assert "--timeout" in answers[name].json()["error"]["message"]
            assert answers[name].headers["x-should-retry"] == "false"
        # The openai client, retrying 5xx twice by default, asks once.
        client = openai.OpenAI(base_url=running.url + "/v1", api_key="x")
        with pytest.raises(openai.InternalServerError, match="--timeout"):
            client.completions.create(prompt="one", **long)
        assert running.health()["models"]["pattern"]["timed_out"] == 3
        events = _events(running.url, {**long, "stream": True})
        assert (
            "--timeout"
            in json.loads(events[-1].removeprefix("data: "))["error"]["message"]
        )
        health = running.health()["models"]["pattern"]
        assert health["timed_out"] == 4 and health["active_rows"] == 0
    finally:
        assert running.stop() == 0


def _events(url: str, body: dict) -> list[str]:
    """The server-sent events of a streamed completion, as lines."""
    with httpx.stream(
        "POST", url + "/v1/completions", json=body, timeout=60
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line for line in response.iter_lines() if line]


def _until(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "waited too long"
        time.sleep(0.01)


@pytest.mark.slow
def test_metrics_count_requests_tokens_and_latency(trained):
    """/metrics in Prometheus's text format: requests by model and status,
    tokens generated, the latency histogram, the queue and batch gauges; open
    without a key, behind it with --api-key, open again with --metrics-open."""
    running = Server("-m", str(trained[0]))
    try:
        assert running.post({"model": "pattern", "max_tokens": 5}).status_code == 200
        assert running.post({"model": "pattern", "max_tokens": 0}).status_code == 400
        page = httpx.get(running.url + "/metrics", timeout=10)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/plain")
        text = page.text
        assert 'textgen_requests_total{model="pattern",status="200"} 1.0' in text
        assert 'textgen_requests_total{model="pattern",status="400"} 1.0' in text
        assert 'textgen_tokens_generated_total{model="pattern"} 5.0' in text
        assert 'textgen_request_duration_seconds_count{model="pattern"} 2.0' in text
        assert 'textgen_queue_depth{model="pattern"} 0.0' in text
        assert 'textgen_batch_rows{model="pattern"} 0.0' in text
    finally:
        assert running.stop() == 0
    for flags, status in (((), 401), (("--metrics-open",), 200)):
        running = Server("-m", str(trained[0]), "--api-key", "k", *flags)
        try:
            page = httpx.get(running.url + "/metrics", timeout=10)
            assert page.status_code == status
            keyed = httpx.get(
                running.url + "/metrics",
                headers={"authorization": "Bearer k"},
                timeout=10,
            )
            assert keyed.status_code == 200
        finally:
            assert running.stop() == 0


@pytest.mark.slow
def test_every_request_has_a_bounded_cost(trained, name_model):
    """Issue 33: a request over --max-request-cost is refused before any work
    (400 naming the limit); --timeout holds while prompts are read and
    scored, and such a request counts in /health; an echoed lone surrogate is
    sent back escaped; /metrics/ is a 404, not a redirect."""
    running = Server(
        "-m", str(trained[0]), "-m", str(name_model[0]), "--timeout", "0.001"
    )  # fmt: skip
    try:
        heavy = {
            "model": "pattern",
            "prompt": "one two " * 1237,
            "n": 256,
            "echo": True,
            "logprobs": 20,
            "max_tokens": 0,
        }
        refused = running.post(heavy)
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert "--max-request-cost" in error["message"]
        assert error["code"] == "request_too_large"
        for stream in (False, True):
            body = {**heavy, "n": 1, "logprobs": 1, "stream": stream}
            if stream:
                last = json.loads(_events(running.url, body)[-1][6:])
                assert "--timeout" in last["error"]["message"]
            else:
                answer = running.post(body)
                assert answer.status_code == 504, answer.text
                assert "--timeout" in answer.json()["error"]["message"]
        health = running.health()["models"]["pattern"]
        assert health["timed_out"] == 2 and health["active_rows"] == 0
        assert httpx.get(running.url + "/metrics/", timeout=10).status_code == 404
        assert "Traceback" not in "".join(running.log)
    finally:
        assert running.stop() == 0


def test_an_echoed_lone_surrogate_comes_back_escaped(server):
    body = {"model": "pattern", "prompt": "one \ud800 two", "max_tokens": 0}
    for extra in ({"echo": True}, {"echo": True, "logprobs": 2}):
        answer = server.post({**body, **extra})
        assert answer.status_code == 200, answer.text
        assert "\\ud800" in answer.text  # escaped: valid JSON
        assert answer.json()["choices"][0]["text"]


def test_nothing_that_is_not_a_number_is_sent():
    from textgen.serving.protocol import ApiError
    from textgen.serving.protocol import dumps as _dumps

    assert _dumps({"t": "a\ud800"}) == '{"t":"a\\ud800"}'
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ApiError) as refused:
            _dumps({"logprob": bad})
        assert refused.value.status == 500 and "not a number" in refused.value.message


def test_a_character_token_is_its_own_text_among_the_alternatives(server):
    answer = server.post(
        {"model": "names", "prompt": "ba\nko\n", "max_tokens": 0, "echo": True,
         "logprobs": 5}
    )  # fmt: skip
    logprobs = answer.json()["choices"][0]["logprobs"]
    for token, top in zip(logprobs["tokens"], logprobs["top_logprobs"], strict=True):
        if top is not None:
            assert all(len(key) == 1 for key in top), (token, top)


@pytest.mark.parametrize("model", ["pattern", "names"])
def test_every_alternative_is_one_tokens_text_and_the_drawn_one_is_there(
    server, model, trained, name_model
):
    """At both levels, hot draws (the drawn token often not among the two
    likeliest): each `top_logprobs` key is the text of one token as it would
    be written there, and the drawn token's own text is always a key, with
    its log-probability."""
    answer = server.client().completions.create(
        model=model, prompt="one two\nthree", max_tokens=40, temperature=3.0,
        seed=4, logprobs=2, echo=True,
    )  # fmt: skip
    lp = answer.choices[0].logprobs
    served = trained[1] if model == "pattern" else name_model[1]
    from textgen.text.tokens import tokenizer_for

    tokenizer = tokenizer_for(served.tokenizer_settings)
    # Each token as text: a paragraph or item end as its line breaks.
    vocabulary = {tokenizer.as_text(w).lower() for w in served.vocabulary.words}
    extra = 0
    for token, value, top in zip(
        lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True
    ):
        if top is None:
            continue
        assert top[token] == pytest.approx(value)
        assert 2 <= len(top) <= 3
        extra += len(top) == 3
        for key in top:  # a word after its leading space; a character itself
            written = key[len(key) - len(key.lstrip()) :] if model == "pattern" else key
            assert (written or key).lower() in vocabulary or key == token, (token, top)
    assert extra  # some drawn tokens were not among the two likeliest


def test_a_request_dropped_while_its_prompts_are_read_is_counted(trained):
    """/health's cancelled and timed-out counts include requests that end
    while their prompts are read or scored, before they reach the batch."""
    import asyncio

    from textgen.errors import Cancelled, TimedOut
    from textgen.model.file import read_model
    from textgen.serving.protocol import parse_completion as _parse
    from textgen.serving.runner import Run as _Run
    from textgen.serving.served import serve_models as _serve

    served = _serve({"pattern": read_model(trained[0])}, None, True)
    body = {"prompt": "one two three", "max_tokens": 0, "echo": True, "logprobs": 1}
    engine = served["pattern"].engine

    async def dropped(deadline: float | None) -> None:
        completion = _parse(body, served)
        if deadline is not None:
            completion = dataclasses.replace(completion, deadline=deadline)
        run = _Run(completion, streaming=False)
        run.read()
        run.job.cancelled = deadline is None  # the client went away
        with pytest.raises(Cancelled if deadline is None else TimedOut):
            run._submit()

    try:
        asyncio.run(dropped(None))
        asyncio.run(dropped(time.monotonic() - 1))
        assert (engine.cancelled, engine.timed_out) == (1, 1)
    finally:
        engine.close(timeout=10)


def test_the_settings_endpoint_is_the_libraries_contract(server):
    """GET /v1/settings: every field a request may give beyond OpenAI's
    basics, with the library's defaults and bounds (the playground builds its
    controls from it) under the request's names."""
    from textgen.inference.contract import GenerationRequest, SamplingSettings

    fields = httpx.get(server.url + "/v1/settings", timeout=10).json()["fields"]
    assert fields["temperature"]["default"] == SamplingSettings().temperature == 0.8
    assert fields["top_p"]["low"] == 0 and fields["top_p"]["low_open"] is True
    assert fields["max_tokens"]["default"] == GenerationRequest().length
    assert fields["max_tokens"]["high"] == 4096  # this server's bound
    assert fields["seed"]["high"] == 2**32 - 1 and "random_seed" not in fields
    assert fields["n"] == {"default": 1, "type": "int", "low": 1, "high": 256,
                           "help": "Completions per prompt."}  # fmt: skip
    # A value the card says is out of bounds is refused with the card's words.
    response = server.post({"model": "pattern", "top_p": 1.5})
    assert response.status_code == 400
    assert (
        "top_p must be more than 0 and at most 1" in response.json()["error"]["message"]
    )


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("pattern", {}),
        ("pattern", {"stop": ["five"]}),  # the stop watch holds text back
        ("pattern", {"echo": True, "prompt": "One  two,\tthree"}),
        ("names", {}),
        ("names", {"n": 3}),
    ],
)
def test_streamed_logprobs_travel_with_their_text(server, model, extra):
    """With logprobs, every streamed event's tokens join to exactly that
    event's text (the detokenizer and stop strings hold text back; it comes
    with its tokens), and the stream adds up to the whole answer."""
    body = {"model": model, "prompt": "one two", "max_tokens": 25,
            "temperature": 1.5, "seed": 9, "logprobs": 2, **extra}  # fmt: skip
    whole = server.post(body).json()["choices"]
    events = _events(server.url, {**body, "stream": True})
    texts: dict[int, str] = {}
    tokens: dict[int, list] = {}
    for line in events[:-1]:
        for choice in json.loads(line.removeprefix("data: "))["choices"]:
            lp = choice["logprobs"]
            got = lp["tokens"] if lp else []
            assert "".join(got) == choice["text"], choice
            texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
            tokens.setdefault(choice["index"], []).extend(got)
    for answer in whole:
        assert texts[answer["index"]] == answer["text"]
        assert tokens[answer["index"]] == answer["logprobs"]["tokens"]
