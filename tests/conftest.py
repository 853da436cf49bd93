"""Shared fixtures: one tiny model, trained once per test session on a text
with a deterministic word cycle, reused by every generation test."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Session fixtures train too: never into the user's cache of training speeds.
os.environ["TEXTGEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="textgen-speeds-")


@pytest.fixture(autouse=True)
def _own_step_speeds(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """Each test starts with no remembered training speeds (and writes none
    into the user's cache): a plan depends only on what the test does."""
    folder = tmp_path_factory.mktemp("speeds")
    monkeypatch.setenv("TEXTGEN_CACHE_DIR", str(folder))


# Every word has exactly one possible successor, so a model that learned the
# windows and labels right reproduces the cycle exactly at temperature 0.
PATTERN = "one two three, four five. six seven eight nine!\n\n"
PATTERN_TEXT = PATTERN * 60
PATTERN_GREEDY = (
    "Three, four five. Six seven eight nine!\n\nOne two three, four five. Six"
)


@pytest.fixture(scope="session")
def pattern_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "pattern.txt"
    path.write_text(PATTERN_TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_config():
    from textgen.model.config import ModelConfig, TrainConfig

    model = ModelConfig(cell="lstm", layers=2, units=16, embedding_dim=8, dropout=0.0)
    train = TrainConfig(
        seq_len=8, epochs=25, batch_size=8, learning_rate=0.02, patience=0, seed=7
    )
    return model, train


@pytest.fixture(scope="session")
def trained(pattern_file: Path, tiny_config, tmp_path_factory: pytest.TempPathFactory):
    """(path, model): the tiny pattern model, saved to a session temp folder."""
    from textgen.training.train import train

    path = tmp_path_factory.mktemp("models") / "pattern.keras"
    model = train([pattern_file], path, *tiny_config, log=lambda line: None)
    return path, model


def make_names(count: int, seed: int = 4) -> list[str]:
    """Made-up names of two to four syllables, distinct."""
    rng = random.Random(seed)
    names: set[str] = set()
    while len(names) < count:
        syllables = rng.randint(2, 4)
        names.add(
            "".join(
                rng.choice("bdklmnprst") + rng.choice("aeiou") for _ in range(syllables)
            )
        )
    return sorted(names)


@pytest.fixture(scope="session")
def names_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("items") / "names.txt"
    path.write_text("\n".join(make_names(300)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def name_model(names_file: Path, tmp_path_factory: pytest.TempPathFactory):
    """(path, model): a tiny character model of the names, one per line."""
    from textgen.model.config import ModelConfig, TrainConfig
    from textgen.training.train import train

    path = tmp_path_factory.mktemp("item-models") / "names.keras"
    model = train(
        [names_file],
        path,
        ModelConfig(layers=1, units=32, embedding_dim=8, dropout=0.0),
        TrainConfig(
            seq_len=16,
            epochs=12,
            batch_size=16,
            learning_rate=0.02,
            patience=0,
            seed=3,
            level="char",
            documents="lines",
            ngram_mode="mixture",  # the tests use its network alone too
        ),
        log=lambda line: None,
    )
    return path, model


class Server:
    """`textgen serve` in a child process on a free port."""

    def __init__(
        self, *args: str, env: dict | None = None, cwd: Path | None = None
    ) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "textgen", "serve", "--port", "0", *args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        self.log: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                break
            self.log.append(line)
            found = re.search(r"serving on (http://\S+?)/v1", line)
            if found:
                self.url = found.group(1)
                threading.Thread(target=self._drain, daemon=True).start()
                return
        self.process.kill()
        raise AssertionError("the server did not start: " + "".join(self.log))

    def _drain(self) -> None:
        for line in self.process.stderr:
            self.log.append(line)

    def client(self, key: str = "none"):
        import openai

        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0)

    def post(self, body, **kwargs):
        import httpx

        content = body if isinstance(body, bytes | str) else json.dumps(body)
        return httpx.post(
            self.url + "/v1/completions",
            content=content,
            headers={"content-type": "application/json", **kwargs.pop("headers", {})},
            timeout=60,
            **kwargs,
        )

    def health(self) -> dict:
        import httpx

        response = httpx.get(self.url + "/health", timeout=10)
        assert response.status_code == 200
        return response.json()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


STORY = (
    "the keeper lit the lamp at dusk and the boats came home . "
    "the gulls sat on the harbour wall and the tide went out . "
    "a storm came in from the west and the keeper kept the lamp lit . "
)


@pytest.fixture(scope="session")
def residual(tmp_path_factory: pytest.TempPathFactory, tiny_config):
    """(path, model): a tiny word model trained with --ngram-mode residual."""
    from textgen.training.train import train

    folder = tmp_path_factory.mktemp("residual")
    corpus = folder / "story.txt"
    corpus.write_text(STORY * 30, encoding="utf-8")
    path = folder / "story.keras"
    model_config, config = tiny_config
    config = dataclasses.replace(config, epochs=4, ngram_mode="residual")
    lines: list[str] = []
    model = train([corpus], path, model_config, config, log=lines.append)
    return path, model, lines
