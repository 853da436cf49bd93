"""How long `textgen serve` takes to read a long prompt: what the default of
`--max-prompt-tokens` rests on. Prints one JSON object.

For each level (words, characters), the default-size network (the
level's defaults, as `train --level` has them) is trained for
`--train-minutes` on `../shared/corpora/moby_dick.txt` (reading time
depends on the network's size and vocabulary, not on how well it is
trained), served, and sent prompts of each of `--tokens` tokens cut from
the book, three times each:

- scored as lm-evaluation-harness asks (`echo`, `logprobs: 1`,
  `max_tokens: 1`: every token's log-probability and the likeliest one);
- continued without scores (`max_tokens: 1`: the prompt read, one token
  drawn), its peer.

For each: the median and range of the seconds and the tokens per second,
and the most tokens scored within `--within` seconds (10: the server's head
timeout, the time a client waits before it suspects the server).

    python benchmarks/prompts.py [--tokens 1024 4096 8192 16384]
        [--levels word char] [--train-minutes 1] [--within 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import SHARED
from serve import Server


def trained(folder: Path, level: str, minutes: float) -> Path:
    from textgen.model.config import ModelConfig, TrainConfig
    from textgen.training.train import train

    corpus = SHARED / "moby_dick.txt"
    if not corpus.exists():
        sys.exit(f"{corpus} not found")
    path = folder / f"moby_{level}.keras"
    train(
        [corpus],
        path,
        ModelConfig(),  # the level's defaults
        TrainConfig(max_minutes=minutes, seed=1, level=level),
        log=lambda line: None,
        planned=(),
    )
    return path


def prompt_of(url: str, model: str, tokens: int) -> list[int]:
    """The book's first `tokens` tokens, as ids (read as the server reads)."""
    text = (SHARED / "moby_dick.txt").read_text(encoding="utf-8")
    ids: list[int] = []
    start = 0
    while len(ids) < tokens:
        piece = text[start : start + 200_000]
        start += len(piece)
        found = httpx.post(
            url + "/tokenize", json={"model": model, "prompt": piece}, timeout=600
        ).json()["tokens"]
        ids += found
    return ids[:tokens]


def timed(url: str, body: dict, runs: int = 3) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = httpx.post(url + "/v1/completions", json=body, timeout=3600)
        seconds.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
    return seconds


def summary(tokens: int, seconds: list[float]) -> dict:
    median = statistics.median(seconds)
    return {
        "seconds": round(median, 3),
        "range": [round(min(seconds), 3), round(max(seconds), 3)],
        "tokens_per_second": round(tokens / median),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tokens", type=int, nargs="+", default=[1024, 4096, 8192, 16384]
    )
    parser.add_argument("--levels", nargs="+", default=["word", "char"])
    parser.add_argument("--train-minutes", type=float, default=1)
    parser.add_argument("--within", type=float, default=10)
    args = parser.parse_args()
    most = max(args.tokens)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for level in args.levels:
            model = trained(Path(folder), level, args.train_minutes)
            server = Server(
                model, 256, "--max-prompt-tokens", str(most),
                "--max-request-cost", str(2**40), "--timeout", "3600",
            )  # fmt: skip
            try:
                ids = prompt_of(server.url, model.stem, most)
                rows = []
                for tokens in args.tokens:
                    prompt = ids[:tokens]
                    base = {"model": model.stem, "prompt": prompt, "max_tokens": 1}
                    scored = timed(server.url, {**base, "echo": True, "logprobs": 1})
                    read = timed(server.url, base)
                    rows.append(
                        {
                            "tokens": tokens,
                            "scored (echo, logprobs 1)": summary(tokens, scored),
                            "read and continued": summary(tokens, read),
                        }
                    )
            finally:
                server.stop()
            rate = statistics.median(
                r["scored (echo, logprobs 1)"]["tokens_per_second"] for r in rows
            )
            results[level] = {
                "rows": rows,
                f"tokens_scored_within_{args.within:g}_s": int(rate * args.within),
            }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
