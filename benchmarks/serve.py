"""`textgen serve` under load: 1, 8 and 32 concurrent clients, each asking
for completions of 50 words one after another. Prints one JSON object.

For each number of clients: total words/s (completion tokens over the wall
time), p50 and p95 latency of a request, failed requests; and the same with
the server's batch limited to one row (`--max-batch 1`: requests wait in
line, what a server without continuous batching does), side by side.

Then the flood: `--flood` clients (500) each send one request at the same
moment, three times over, to a server started with each `--max-queue` of
`--queues`: how many are answered 200 and how many 429, the slowest answer
of each kind (all within `--timeout`?), whether `/health` answered
throughout and how slowly, and the server's memory before, at its peak and
after each wave (flat: no queue grows in memory).

First, the engine's step alone (`--step-only` runs only this): 32 rows of
one draw stepped in-process with the server's BLAS threads (cores - 1),
split into sampling, bookkeeping, the decoder step and the n-gram mixture,
against the step's arithmetic and this machine's float32 matmul peak
(a 2048-square product on the same threads): the share of the peak.

The model is `--model`, or the default-size network (`ModelConfig()`)
trained for `--train-minutes` on `../shared/corpora/moby_dick.txt`: the
speed depends on the network's size and vocabulary, not on how well it is
trained (50 words are generated whatever the weights: no stop strings).

    python benchmarks/serve.py [--model PATH] [--clients 1 8 32]
        [--requests 100 400 1600] [--no-peer] [--flood 500]
        [--queues 16 64 256] [--no-load] [--step-only] [--step-rows 32]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import SHARED

WORDS = 50


def default_model(folder: Path, minutes: float) -> Path:
    """The default-size network, trained briefly on moby_dick.txt."""
    from textgen.model.config import ModelConfig, TrainConfig
    from textgen.training.train import train

    corpus = SHARED / "moby_dick.txt"
    if not corpus.exists():
        sys.exit(f"{corpus} not found: pass --model")
    path = folder / "moby_dick.keras"
    train(
        [corpus],
        path,
        ModelConfig(),
        TrainConfig(max_minutes=minutes, seed=1),
        log=lambda line: print(line, file=sys.stderr),
        planned=(),
    )
    return path


class Server:
    def __init__(self, model: Path, max_batch: int, *options: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "textgen", "serve", "-m", str(model), "--port",
             "0", "--max-batch", str(max_batch), *options],
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for line in self.process.stderr:
            found = re.search(r"serving on (http://\S+?)/v1", line)
            if found:
                self.url = found.group(1)
                return
        sys.exit("the server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)

    def rss_mb(self) -> float:
        """The server's resident memory now (Linux)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


def flood(server: Server, model: str, clients: int, timeout: float) -> dict:
    """`clients` requests of `WORDS` words sent at once (a barrier releases
    them together), while a watcher asks `/health` every 50 ms and samples the
    server's memory."""
    statuses: list[int] = []
    seconds: dict[int, list[float]] = {}
    lock = threading.Lock()
    gate = threading.Barrier(clients)
    watching = threading.Event()
    health: list[float] = []
    health_failed = [0]
    peak = [server.rss_mb()]

    def client(seed: int) -> None:
        with httpx.Client(timeout=timeout + 30) as http:
            gate.wait()
            started = time.perf_counter()
            try:
                status = http.post(
                    server.url + "/v1/completions",
                    json={"model": model, "prompt": "", "max_tokens": WORDS,
                          "temperature": 1.0, "seed": seed},
                ).status_code  # fmt: skip
            except httpx.HTTPError:
                status = 0
            with lock:
                statuses.append(status)
                seconds.setdefault(status, []).append(time.perf_counter() - started)

    def watch() -> None:
        with httpx.Client(timeout=10) as http:
            while not watching.is_set():
                started = time.perf_counter()
                try:
                    ok = http.get(server.url + "/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                health.append(time.perf_counter() - started)
                health_failed[0] += not ok
                peak[0] = max(peak[0], server.rss_mb())
                time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    watching.set()
    watcher.join()
    return {
        "ok": statuses.count(200),
        "refused_429": statuses.count(429),
        "other": len(statuses) - statuses.count(200) - statuses.count(429),
        "slowest_200_s": round(max(seconds.get(200, [0])), 3),
        "slowest_429_s": round(max(seconds.get(429, [0])), 3),
        "health_answers": len(health),
        "health_failed": health_failed[0],
        "health_slowest_s": round(max(health, default=0), 3),
        "rss_peak_mb": round(peak[0], 1),
        "rss_after_mb": round(server.rss_mb(), 1),
    }


def floods(model: Path, clients: int, queues: list[int], timeout: float) -> list:
    """Three floods per `--max-queue` setting, each on a fresh server."""
    rows = []
    for queue in queues:
        server = Server(
            model, 256, "--max-queue", str(queue), "--timeout", str(timeout)
        )
        try:
            load(server.url, model.stem, 4, 20)  # warm up
            before = server.rss_mb()
            waves = [flood(server, model.stem, clients, timeout) for _ in range(3)]
        finally:
            server.stop()
        rows.append(
            {"max_queue": queue, "clients": clients, "rss_before_mb": round(before, 1),
             "waves": waves}
        )  # fmt: skip
    return rows


def load(url: str, model: str, clients: int, requests: int) -> dict:
    """`clients` threads share `requests` completions; each thread asks for
    one after another."""
    latencies: list[float] = []
    words = [0]
    failed = [0]
    lock = threading.Lock()
    left = [requests]

    def client(number: int) -> None:
        with httpx.Client(timeout=120) as http:
            while True:
                with lock:
                    if not left[0]:
                        return
                    left[0] -= 1
                    seed = left[0]
                started = time.perf_counter()
                try:
                    response = http.post(
                        url + "/v1/completions",
                        json={"model": model, "prompt": "", "max_tokens": WORDS,
                              "temperature": 1.0, "seed": seed},
                    )  # fmt: skip
                    ok = response.status_code == 200
                    got = response.json()["usage"]["completion_tokens"] if ok else 0
                except httpx.HTTPError:
                    ok, got = False, 0
                with lock:
                    latencies.append(time.perf_counter() - started)
                    words[0] += got
                    failed[0] += not ok

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "clients": clients,
        "requests": requests,
        "failed": failed[0],
        "words_per_second": round(words[0] / seconds, 1),
        "latency_p50_s": round(statistics.median(latencies), 4),
        "latency_p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 4),
    }


def step_profile(model_path: Path, rows: int, steps: int = 300) -> dict:
    """The engine's step for `rows` rows, timed part by part (median over
    `steps` steps), beside the matmul peak; run with the server's threads."""
    import numpy as np

    from textgen.inference.contract import GenerationRequest, SamplingSettings
    from textgen.inference.generate import Draw, Generator
    from textgen.model.file import read_model

    model = read_model(model_path)
    generator = Generator(model)
    draw = Draw(
        generator,
        [""] * rows,
        [SamplingSettings(temperature=1.0)] * rows,
        GenerationRequest(length=steps + 20, random_seed=1),
        np.random.default_rng(1),
        [None] * rows,
    )
    parts: dict[str, list[float]] = {
        "sample_ms": [], "take_ms": [], "decoder_ms": [], "mixture_ms": []
    }  # fmt: skip
    for step in range(steps + 10):
        t0 = time.perf_counter()
        chosen = draw.choose()
        t1 = time.perf_counter()
        draw.take(chosen)
        t2 = time.perf_counter()
        logits, states = generator.decoder.step(draw.chosen, draw.states)
        t3 = time.perf_counter()
        draw.advance(logits, states)  # mixes in the n-gram memory
        t4 = time.perf_counter()
        if step >= 10:  # warmed up
            for name, seconds in zip(
                parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True
            ):
                parts[name].append(seconds * 1e3)
    medians = {name: statistics.median(v) for name, v in parts.items()}
    step_ms = sum(medians.values())
    from textgen.training.sizing import flops_per_token

    flop = flops_per_token(model.model_config) / 3 * rows  # 2 x MACs per row
    n = 2048
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    best = min(timed_once(lambda: a @ a) for _ in range(10))
    peak = 2 * n**3 / best
    return {
        "rows": rows,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "step_ms": round(step_ms, 3),
        **{name: round(value, 3) for name, value in medians.items()},
        "gflop_per_step": round(flop / 1e9, 4),
        "achieved_gflops": round(flop / step_ms / 1e6, 1),
        "matmul_peak_gflops": round(peak / 1e9, 1),
        "share_of_peak": round(flop / (step_ms / 1e3) / peak, 3),
        "decoder_share_of_peak": round(flop / (medians["decoder_ms"] / 1e3) / peak, 3),
    }


def timed_once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step_in_child(model: Path, rows: int) -> dict:
    """`step_profile` in a child process with the server's BLAS threads (set
    before NumPy loads)."""
    threads = str(max(1, (os.cpu_count() or 2) - 1))
    env = {**os.environ, **dict.fromkeys(
        ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"), threads
    )}  # fmt: skip
    out = subprocess.run(
        [sys.executable, __file__, "--profile-step", str(model), str(rows)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def main() -> None:
    if sys.argv[1:2] == ["--profile-step"]:  # the child of `step_in_child`
        print(json.dumps(step_profile(Path(sys.argv[2]), int(sys.argv[3]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--train-minutes", type=float, default=2)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, nargs="+", default=[100, 400, 1600])
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--no-load", action="store_true", help="the flood only")
    parser.add_argument("--flood", type=int, default=500)
    parser.add_argument("--queues", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--step-only", action="store_true")
    parser.add_argument("--step-rows", type=int, default=32)
    args = parser.parse_args()
    if len(args.requests) != len(args.clients):
        sys.exit("give one --requests figure per --clients figure")
    with tempfile.TemporaryDirectory() as folder:
        model = args.model or default_model(Path(folder), args.train_minutes)
        from textgen.model.file import read_model

        config = read_model(model, weights=False)
        step = step_in_child(model, args.step_rows)
        if args.step_only:
            print(json.dumps({"step": step}, indent=2))
            return
        runs = {} if args.no_load else {"continuous batching": 256}
        if not (args.no_peer or args.no_load):
            runs["one row at a time (--max-batch 1)"] = 1
        results = {}
        for label, max_batch in runs.items():
            server = Server(model, max_batch)
            try:
                load(server.url, model.stem, 4, 20)  # warm up
                results[label] = [
                    load(server.url, model.stem, c, r)
                    for c, r in zip(args.clients, args.requests, strict=True)
                ]
            finally:
                server.stop()
        flooded = floods(model, args.flood, args.queues, args.timeout)
    every = [row for rows in results.values() for row in rows]
    batched = results.get("continuous batching") or [{"words_per_second": 1}]
    one = batched[0]
    summary = {
        f"{row['clients']}_clients_words_per_second_vs_1": round(
            row["words_per_second"] / one["words_per_second"], 2
        )
        for row in batched[1:]
    } | {
        f"{row['clients']}_clients_p95_vs_1_client": round(
            row["latency_p95_s"] / one["latency_p95_s"], 2
        )
        for row in batched[1:]
    }
    print(
        json.dumps(
            {
                "model": {
                    "file": model.name,
                    "cell": config.model_config.cell,
                    "layers": config.model_config.layers,
                    "units": config.model_config.units,
                    "vocabulary": len(config.vocabulary),
                },
                "words_per_request": WORDS,
                "step": step,
                "runs": results,
                "summary": summary,
                "flood": flooded,
                "failed_requests": sum(row["failed"] for row in every),
                "requests": sum(
                    r["requests"] for rows in results.values() for r in rows
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
