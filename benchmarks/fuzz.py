"""Fuzz the whole command line: random invocations of every command with
random option values and random files, and mutated model files (fields
changed or dropped, bytes flipped, cut short, zlib bombs, n-gram tables
tampered by dtype and overflow, npz bombs), run in-process; outputs are
aimed at the model read, corpus files, links, a FIFO and a device.

Counts what must never happen: tracebacks, "unexpected" errors, exit codes
other than 0/1/2, input files changed, existing outputs replaced without
--force; and reports the peak memory. Then, each in its own process, counts
a user may make as large as they like (a million samples into `| head`, a
multi-megabyte item) with their peak memory and exit codes (141 for a closed
pipe); and a real `textgen serve` under idle, slow and numerous connections,
long prompts, clients that leave mid-body or mid-stream and extreme values;
and what one request may cost (echo-heavy and scoring requests, the largest
allowed ones, scoring under --timeout), with the worst time and memory.
Prints one JSON object; exits 1 when any count is not 0. Not part of CI
(minutes); the fast CI versions are tests/test_cli_fuzz.py and
tests/test_connections.py.

    python benchmarks/fuzz.py [--runs 1000] [--models 200] [--seed 0]
                              [--only cli|counts|http|cost]
                              [--serve-model PATH]
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import click
from click.testing import CliRunner
from common import peak_rss_mb

from textgen.cli import cli

TEXT = (
    "the tide came in over the flats and the gulls rose. a boat waited by the "
    "old pier, its rope wet and grey.\n\n"
) * 40
EDGE = ["-1", "0", "1", "2", "3", "0.5", "1e-45", "1e9", "nan", "inf", "x", ""]
# Option values worth trying beyond the edge cases, by option name.
VALUES = {
    "--cell": ["lstm", "gru", "rnn", "peephole", "transformer"],
    "--cells": ["lstm", "gru,rnn", "peephole,lstm", "x", ""],
    "--level": ["word", "char", "byte"],
    "--lr-schedule": ["linear", "plateau", "constant", "cosine"],
    "--distribute": ["none", "mirrored", "multi-worker"],
    "--format": ["text", "jsonl", "xml"],
    "--until": ["sentence", "paragraph", "page"],
    "-t": ["0", "1e-45", "0.2,0.8", "1e30", "-1", "nan", "0,x"],
    "--seed": ["", "the tide", "\x1b[2J", "zebra " * 2000, "-"],
    "--stop": ["", ".", "tide", "\n"],
    "--units": ["1", "4", "8", "0", "-2", "100000000"],
    "--embedding-dim": ["1", "4", "0", "100000000"],
    "--layers": ["1", "2", "0", "1000"],
    "--seq-len": ["1", "4", "8", "100000"],
    "--epochs": ["1", "2", "0"],
    "--max-vocab": ["0", "3", "5", "100000"],
    "-n": ["1", "5", "40", "0", "-1", "1e9"],
    "--beam": ["0", "1", "3", "-1"],
    "--num-samples": ["1", "3", "0"],
}
FLAGS_SKIPPED = {"--interactive", "--help", "--debug", "--tensorboard"}


def options_of(command: click.Command) -> list[click.Option]:
    return [
        p
        for p in command.params
        if isinstance(p, click.Option) and not set(p.opts) & FLAGS_SKIPPED
    ]


def make_files(root: Path, model: Path) -> dict[str, Path]:
    """Inputs (never to change) in root/in, one of each kind."""
    inputs = root / "in"
    inputs.mkdir()
    contents = {
        "corpus.txt": TEXT.encode(),
        "empty.txt": b"",
        "binary.txt": b"\x89PNG\r\n\x1a\n\x00\x00" * 10,
        "latin1.txt": "na\u00efve caf\u00e9 ".encode("latin-1") * 50,
        "utf16.txt": TEXT.encode("utf-16"),
        "utf32.txt": TEXT.encode("utf-32"),
        "short.txt": b"three words only",
        "late_nul.txt": TEXT.encode() * 3 + b"\x00",
        "no_blank_lines.txt": TEXT.replace("\n\n", "\n").encode() * 20,
        "seeds.txt": b"the tide\n\nold pier\n",
        "notes.keras": TEXT.encode(),
        "vectors.txt": b"tide 0.1 0.2\nboat 0.3 0.4\n",
    }
    files = {}
    for name, data in contents.items():
        files[name] = inputs / name
        files[name].write_bytes(data)
    files["model.keras"] = inputs / "model.keras"
    shutil.copy(model, files["model.keras"])
    files["folder"] = inputs / "folder"
    files["folder"].mkdir()
    (files["folder"] / "a.txt").write_bytes(TEXT.encode())
    files["missing"] = inputs / "missing.txt"
    # Outputs aimed at what is read and at what is not a regular file.
    files["link_to_model"] = inputs / "link.keras"
    files["link_to_model"].symlink_to(files["model.keras"])
    files["fifo"] = inputs / "pipe.keras"
    os.mkfifo(files["fifo"])
    files["device"] = inputs / "null.keras"
    try:  # a device of our own, so a failing check cannot replace /dev/null
        os.mknod(files["device"], 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError:
        files["device"] = Path(os.devnull)
    return files


def make_files_again(root: Path, model: Path, files: dict[str, Path]) -> dict:
    """After a failure: the special files made anew, so one failure is
    counted once."""
    for name in ("link_to_model", "fifo", "device"):
        if files[name] != Path(os.devnull):
            files[name].unlink(missing_ok=True)
    files["link_to_model"].symlink_to(files["model.keras"])
    os.mkfifo(files["fifo"])
    with contextlib.suppress(OSError):
        os.mknod(files["device"], 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return files


def special_files_intact(files: dict[str, Path]) -> bool:
    """The FIFO, the device and the link are still what they were."""
    return (
        stat.S_ISFIFO(os.lstat(files["fifo"]).st_mode)
        and stat.S_ISCHR(os.lstat(files["device"]).st_mode)
        and files["link_to_model"].is_symlink()
    )


def mutate(model: Path, target: Path, rng: random.Random) -> str:
    """A damaged or hostile copy of `model`; returns what was done."""
    data = model.read_bytes()
    kind = rng.choice(["field", "drop", "flip", "cut", "bomb", "weights", "tables"])
    if kind == "flip":
        raw = bytearray(data)
        for _ in range(rng.randint(1, 20)):
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        target.write_bytes(bytes(raw))
        return kind
    if kind == "cut":
        target.write_bytes(data[: rng.randrange(len(data))])
        return kind
    with zipfile.ZipFile(model) as src:
        entries = {item.filename: src.read(item) for item in src.infolist()}
    outer = json.loads(entries["config.json"])
    config = outer["config"]
    if kind == "tables":
        how = tamper_tables(entries, rng)
        with zipfile.ZipFile(target, "w") as dst:
            for name, content in entries.items():
                dst.writestr(name, content)
        return f"tables: {how}"
    if kind == "weights":
        raw = bytearray(entries["model.weights.h5"])
        for _ in range(rng.randint(1, 50)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        entries["model.weights.h5"] = bytes(raw)
    elif kind == "bomb":
        packer = zlib.compressobj(9)
        zeros = bytes(2**20)
        packed = b"".join(packer.compress(zeros) for _ in range(200))
        bits = base64.b64encode(packed + packer.flush()).decode()
        config["record"]["fingerprint"]["bits"] = bits
    else:
        parent, key = random_field(config, rng)
        if kind == "drop":
            del parent[key]
        else:
            parent[key] = rng.choice(
                [
                    None,
                    -1,
                    0,
                    10**12,
                    1e308,
                    True,
                    "x" * rng.choice([0, 1, 10**6]),
                    "\x1b[2J\x07",
                    [],
                    {},
                    [None] * 3,
                ]
            )
    entries["config.json"] = json.dumps(outer).encode()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, content in entries.items():
            dst.writestr(name, content)
    return kind


def _npy(value) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(value))
    return buffer.getvalue()


def tamper_tables(entries: dict[str, bytes], rng: random.Random) -> str:
    """Replace the model's n-gram tables (`assets/ngram.npz`) with tampered
    ones: wrong dtypes, overflowing counts, impossible discounts, an extra
    member, a zip bomb (issue 33). Returns what was done."""
    import io

    import numpy as np

    asset = "assets/ngram.npz"
    arrays = dict(np.load(io.BytesIO(entries[asset])))
    members = {f"{k}.npy": _npy(v) for k, v in arrays.items()}
    how = rng.choice(
        ["uint64 unsorted keys", "uint64 counts 2**64-1", "int64 counts 2**62",
         "discount 0", "discount nan", "float32 weights above 1", "int32 keys",
         "an extra member", "a bomb member", "a bomb table"]
    )  # fmt: skip
    keys = [k for k in arrays if k.startswith("keys")] or ["unigram"]
    key = rng.choice(keys)
    counts = key.replace("keys", "counts")
    if how == "uint64 unsorted keys":
        members[f"{key}.npy"] = _npy(arrays[key][::-1].astype(np.uint64))
    elif how == "uint64 counts 2**64-1":
        members[f"{counts}.npy"] = _npy(
            np.full(arrays[counts].shape, 2**64 - 1, dtype=np.uint64)
        )
    elif how == "int64 counts 2**62":
        members[f"{counts}.npy"] = _npy(np.full(arrays[counts].shape, 2**62))
    elif how in ("discount 0", "discount nan"):
        discounts = arrays["discounts"].copy()
        discounts[rng.randrange(len(discounts))] = 0.0 if "0" in how else np.nan
        members["discounts.npy"] = _npy(discounts)
    elif how == "float32 weights above 1":
        members["weights.npy"] = _npy((arrays["weights"] + 1).astype(np.float32))
    elif how == "int32 keys":
        members[f"{key}.npy"] = _npy(arrays[key].astype(np.int32))
    else:
        zeros = _npy(np.zeros(25 * 2**20, dtype=np.int64))  # 200 MB of zeros
        name = "junk.npy" if how != "a bomb table" else f"{key}.npy"
        if how == "an extra member":
            zeros = _npy(np.zeros(1000))
        members[name] = zeros
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as npz:
        for name, data in members.items():
            npz.writestr(name, data)
    entries[asset] = raw.getvalue()
    return how


def random_field(config: dict, rng: random.Random) -> tuple[object, object]:
    """A random (container, key) inside the model's arguments."""
    place, key = config, rng.choice(list(config))
    for _ in range(rng.randint(0, 4)):
        value = place[key]
        if isinstance(value, dict) and value:
            place, key = value, rng.choice(list(value))
        elif isinstance(value, list) and value:
            place, key = value, rng.randrange(len(value))
        else:
            break
    return place, key


def invocation(
    rng: random.Random, files: dict[str, Path], out: Path, models: list[Path]
) -> list[str]:
    command_name = rng.choice(["train", "generate", "evaluate", "info", "compare"])
    command = cli.commands[command_name]
    args = [command_name]
    choices = options_of(command)
    for option in rng.sample(choices, min(len(choices), rng.randint(0, 5))):
        name = max(option.opts, key=len)
        args.append(rng.choice(option.opts))
        if option.is_flag:
            continue
        pool = VALUES.get(name) or VALUES.get(option.opts[0]) or EDGE
        if name == "--per-token":
            pool = [
                str(files["model.keras"]),
                str(files["folder"] / "a.txt"),
                str(files["link_to_model"]),
                str(files["fifo"]),
                str(files["device"]),
                str(files["corpus.txt"]),
                str(out / "losses.jsonl"),
                str(out / "missing" / "losses.jsonl"),
            ]
        elif name in ("--output", "--plot", "--resume", "--pretrained-embeddings"):
            pool = [
                str(files["model.keras"]),
                str(files["link_to_model"]),
                str(files["fifo"]),
                str(files["device"]),
                str(out / "missing" / "m.keras"),
                str(out / "m.keras"),
                str(out / "m.png"),
                str(out / "existing.keras"),
                str(files["corpus.txt"]),
                str(files["notes.keras"]),
                str(files["folder"]),
                str(files["corpus.txt"] / "x.keras"),
                str(files["vectors.txt"]),
                str(rng.choice(models)),
            ]
        if name in ("--model", "--seed-file"):
            pool = [str(p) for p in (*models, *files.values())]
            if name == "--seed-file":  # a pipe waits 30 s for text, by design
                pool.remove(str(files["fifo"]))
        args.append(rng.choice(pool))
    text_inputs = [
        files[k]
        for k in files
        if k.endswith(".txt") or k in ("folder", "missing", "notes.keras")
    ]
    if command_name in ("train", "compare"):
        # Small and short unless drawn otherwise (later options win); outputs
        # go to `out`.
        args[1:1] = ["--units", "4", "--embedding-dim", "4", "--epochs", "1"]
        args[1:1] = ["--max-minutes", "0.1"]  # a drawn --batch-size 1 can be slow
        if "--no-plot" not in args and rng.random() < 0.7:
            args.append("--no-plot")
        if command_name == "compare" and not {"-o", "--output"} & set(args):
            args += ["-o", str(out / "compare")]
        if command_name == "train" and not {"-o", "--output"} & set(args):
            args += ["-o", str(out / "m.keras")]
        args.append(str(rng.choice(text_inputs)))
    elif command_name == "generate":
        if not {"-m", "--model"} & set(args):
            args[1:1] = ["-m", str(rng.choice(models))]
    elif command_name == "evaluate":
        if not {"-m", "--model"} & set(args):
            args[1:1] = ["-m", str(files["model.keras"])]
        args.append(str(rng.choice(text_inputs)))
    else:
        args.append(str(rng.choice(models)))
    return args


def replaced_by_request(args: list[str], path: Path) -> bool:
    """Whether `path` is an `evaluate --per-token` file given with --force
    that the command does not read (the model, its TEXT files): replacing
    it is what was asked, not an input lost."""
    if args[0] != "evaluate" or "--force" not in args or "--per-token" not in args:
        return False
    target = Path(args[args.index("--per-token") + 1])
    if target.resolve() != path.resolve():
        return False
    read = set()
    for i, arg in enumerate(args[1:], start=1):
        if args[i - 1] == "--per-token":
            continue
        if args[i - 1] in ("-m", "--model") or not arg.startswith("-"):
            given = Path(arg)
            files = given.rglob("*.txt") if given.is_dir() else [given]
            read |= {f.resolve() for f in files if f.exists()}
    return path.resolve() not in read


def snapshot(folder: Path) -> dict[str, str]:
    found = {}
    for path in folder.rglob("*"):
        if path.is_file():
            found[str(path)] = hashlib.blake2b(path.read_bytes()).hexdigest()
    return found


def reset_peak() -> None:
    """Start measuring the peak afresh (Linux); elsewhere it keeps growing."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


# --- Unbounded counts and long inputs, each in its own process --------------


def _peak_mb_of(pid: int) -> float:
    """A running process's peak resident memory so far (Linux VmHWM), or 0."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _run_child(
    args: list[str], *, keep_lines: int | None = None, timeout: float = 300
) -> dict:
    """Run `textgen ARGS` as a child process; with `keep_lines`, read that
    many lines of its output and close the pipe (as `| head` does). Returns
    its exit code, stderr, seconds and peak resident memory (VmHWM, read
    every 20 ms: a child's rusage would count this process, forked into it)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "textgen", *args],
        stdout=subprocess.PIPE if keep_lines is not None else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    errors: list[bytes] = []
    reading = threading.Thread(target=lambda: errors.append(child.stderr.read()))
    reading.start()
    if keep_lines is not None:
        for _ in range(keep_lines):
            child.stdout.readline()
        child.stdout.close()
    peak = 0.0
    while child.poll() is None:
        if time.perf_counter() - started > timeout:
            child.kill()
        peak = max(peak, _peak_mb_of(child.pid))
        time.sleep(0.02)
    reading.join()
    return {
        "exit": child.returncode,
        "stderr": b"".join(errors).decode("utf-8", "replace"),
        "seconds": round(time.perf_counter() - started, 2),
        "peak_mb": round(peak, 1),
    }


def count_cases(root: Path, model: Path, items_model: Path) -> dict:
    """Counts a user may make as large as they like, and lines as long: the
    memory must not follow them, a closed pipe ends quietly (exit 141)."""
    long_line = root / "in" / "one_long_item.txt"
    long_line.write_text("tide and boat " * 75_000)  # 1 MB on one line
    big = root / "in" / "big_corpus.txt"
    big.write_text(TEXT * 200)  # 1.7 MB
    m, items = str(model), str(items_model)
    cases = {
        "generate 300 samples": (["generate", "-m", m, "--num-samples", "300",
                                  "-n", "2"], None, 0),
        "generate 30,000 samples": (["generate", "-m", m, "--num-samples",
                                     "30000", "-n", "2"], None, 0),
        "generate 1,000,000 samples | head": (["generate", "-m", m,
            "--num-samples", "1000000", "-n", "2"], 5, 141),
        "generate 20 seeds x 3 temperatures x 20,000 | head": (["generate", "-m",
            m, "--seed-file", str(root / "in" / "seeds20.txt"), "-t",
            "0.5,1,1.5", "--num-samples", "20000", "-n", "2"], 5, 141),
        "generate a 10 KB seed": (["generate", "-m", m, "--seed",
                                   "the sea " * 1250, "-n", "2"], None, 0),
        # Short outputs: all of it may be written before the pipe closes.
        "info | head -1": (["info", m], 1, (0, 141)),
        "evaluate | head -1": (["evaluate", "-m", m, str(big)], 1, (0, 141)),
        "evaluate a 1.7 MB corpus": (["evaluate", "-m", m, str(big)], None, 0),
        "evaluate an item model on one 1 MB item": (["evaluate", "-m", items,
            str(long_line)], None, 0),
    }  # fmt: skip
    (root / "in" / "seeds20.txt").write_text("the tide\n" * 20)
    results = {}
    problems = 0
    for name, (args, keep, expected) in cases.items():
        result = _run_child(args, keep_lines=keep)
        bad = (
            result["exit"]
            not in (expected if isinstance(expected, tuple) else (expected,))
            or "Traceback" in result["stderr"]
            or "unexpected" in result["stderr"]
            or "Warning" in result["stderr"]
        )
        problems += bad
        results[name] = {
            "exit": result["exit"],
            "seconds": result["seconds"],
            "peak_mb": result["peak_mb"],
            **({"stderr": result["stderr"][-300:]} if bad else {}),
        }
    return {"problems": problems, "cases": results}


# --- HTTP: a real `textgen serve` and clients that misbehave ----------------


def _start_server(*args: str) -> tuple[subprocess.Popen, str, list[str]]:
    child = subprocess.Popen(
        [sys.executable, "-m", "textgen", "serve", "--port", "0", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log: list[str] = []
    for line in child.stderr:
        log.append(line)
        found = re.search(r"serving on http://(\S+?):(\d+)/v1", line)
        if found:
            threading.Thread(
                target=lambda: log.extend(child.stderr), daemon=True
            ).start()
            return child, f"http://{found.group(1)}:{found.group(2)}", log
    raise SystemExit("the server did not start: " + "".join(log))


def _stop(child: subprocess.Popen) -> None:
    """Stop a server as Ctrl-C does (killed after 60 s)."""
    child.send_signal(signal.SIGINT)
    try:
        child.wait(60)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    time.sleep(0.2)  # the log reader's last lines


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _health_seconds(url: str) -> float:
    import httpx

    started = time.perf_counter()
    try:
        ok = httpx.get(url + "/health", timeout=10).status_code == 200
    except httpx.HTTPError:
        ok = False
    return round(time.perf_counter() - started, 3) if ok else float("inf")


def _closed(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


EXTREME = {
    "temperature": [0, 1e-300, 1e308, -1, "x"],
    "top_k": [0, 1, 2**31, 2**63, -5, 1e300],
    "top_p": [1e-300, 0.5, 1, 2],
    "min_p": [0, 0.99999, 1, -1],
    "repetition_penalty": [1, 1e308, 0, 1e-300],
    "no_repeat_ngram": [0, 2, 40, 2**40],
    "repeat_window": [1, 2**31, 2**62],
    "max_tokens": [1, 4, 4096, 10**12, 0],
    "n": [1, 16, 256, 257],
    "seed": [0, 2**64, -1],
    "stop": ["", ".", ["a"] * 50, "x" * 10_000],
    "stream": [True, False],
    "echo": [True, False],
    "logprobs": [None, 0, 5, 20],
}


def http_cases(model: Path, rng: random.Random) -> dict:
    """Idle, slow and numerous connections, long prompts, clients that leave
    mid-body or mid-stream, extreme values; then the server must still answer
    /health at once, have logged no traceback and little else, and stop with 0."""
    import httpx

    child, url, log = _start_server(
        "-m", str(model), "--head-timeout", "2", "--max-connections", "300"
    )
    figures: dict = {}
    problems: list[str] = []
    try:
        # 400 idle connections and 100 half-sent heads, past the cap of 300.
        idle = [_connect(url) for _ in range(400)]
        slow = [_connect(url) for _ in range(100)]
        for sock in slow:
            with contextlib.suppress(OSError):
                sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
        figures["health_s_with_500_idle_or_slow"] = _health_seconds(url)
        time.sleep(3)  # past the head timeout
        still = sum(not _closed(sock, 0.05) for sock in idle + slow)
        figures["idle_or_slow_open_after_timeout"] = still
        for sock in idle + slow:
            sock.close()
        if still:
            problems.append(f"{still} idle connections still open")

        # 16 prompts of 10,000 characters with no sentence end, at once.
        prompt = "the sea " * 1250
        body = {"prompt": prompt, "max_tokens": 2, "n": 1}
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(
                pool.map(
                    lambda _: httpx.post(url + "/v1/completions", json=body,
                                         timeout=120).status_code,
                    range(16),
                )
            )  # fmt: skip
        figures["16_long_prompts_s"] = round(time.perf_counter() - started, 2)
        if answers != [200] * 16:
            problems.append(f"long prompts answered {answers}")

        # The same 16 sent and abandoned at once: the work must stop.
        raw = json.dumps({**body, "max_tokens": 4096, "n": 8}).encode()
        for _ in range(16):
            sock = _connect(url)
            sock.sendall(
                b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(raw)}\r\n\r\n".encode()
                + raw
            )
            sock.close()
        # Gone mid-body: a head promising more than comes.
        for _ in range(16):
            sock = _connect(url)
            sock.sendall(
                b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"
            )
            sock.close()
        # Gone mid-stream.
        for _ in range(8):
            with httpx.stream(
                "POST", url + "/v1/completions", timeout=30,
                json={"prompt": "the", "max_tokens": 4096, "stream": True, "n": 8},
            ) as response:  # fmt: skip
                next(response.iter_bytes())
        # Work for a client that has gone stops: no rows left running, and
        # the engine counts them cancelled (those still reading their prompt
        # stop there, uncounted).
        started = time.monotonic()
        while True:
            time.sleep(0.1)
            health = httpx.get(url + "/health", timeout=10).json()["models"]
            busy = sum(
                m["active_rows"] + m["waiting_requests"] for m in health.values()
            )
            if not busy or time.monotonic() > started + 30:
                break
        figures["seconds_until_abandoned_work_stopped"] = round(
            time.monotonic() - started, 2
        )
        figures["cancelled_requests"] = sum(m["cancelled"] for m in health.values())
        if busy:
            problems.append(f"{busy} rows still running 30 s after their clients left")

        # Extreme values: any answer but a 5xx.
        statuses: dict[int, int] = {}
        for _ in range(300):
            request = {
                "prompt": rng.choice(["", "the tide", "zebra " * 100, "a \ud800 b"])
            }
            for key in rng.sample(sorted(EXTREME), rng.randint(1, 6)):
                request[key] = rng.choice(EXTREME[key])
            request["max_tokens"] = (
                min(request.get("max_tokens", 4), 64)
                if (isinstance(request.get("max_tokens"), int))
                else 4
            )
            response = httpx.post(  # escaped: a lone surrogate is sent as one
                url + "/v1/completions",
                content=json.dumps(request),
                headers={"content-type": "application/json"},
                timeout=120,
            )
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                problems.append(f"{response.status_code} for {str(request)[:200]}")
        figures["extreme_value_statuses"] = dict(sorted(statuses.items()))
        figures["health_s_at_end"] = _health_seconds(url)
    finally:
        peak = _peak_mb_of(child.pid)
        _stop(child)
    text = "".join(log)
    figures["server_exit"] = child.returncode
    figures["server_peak_mb"] = round(peak, 1)
    figures["log_bytes"] = len(text.encode())
    figures["log_tracebacks"] = text.count("Traceback")
    figures["log_warnings"] = text.count("Warning")
    if child.returncode != 0:
        problems.append(f"the server exited {child.returncode}")
    if figures["log_tracebacks"] or figures["log_warnings"]:
        problems.append("tracebacks or warnings in the log: " + text[-500:])
    figures["problems"] = len(problems)
    figures["problem_lines"] = [p[:300] for p in problems[:10]]
    return figures


def cost_cases(model: Path) -> dict:
    """What one request may cost (issue 33): the echo request that once took
    546 s and 1.4 GB is refused at once; the largest allowed scoring and
    generation requests answer within the default --timeout; five scoring
    requests at once under --timeout 5 end by then (200 or 504)."""
    import httpx

    from textgen.model.config import (
        SERVE_MAX_PROMPT_TOKENS,
        SERVE_MAX_REQUEST_COST,
        SERVE_TIMEOUT,
    )

    figures: dict = {
        "max_request_cost": SERVE_MAX_REQUEST_COST,
        "max_prompt_tokens": SERVE_MAX_PROMPT_TOKENS,
    }
    problems: list[str] = []
    logs: list[str] = []
    text = "the sea and the tide. " * 2000
    heavy = {"prompt": text[:9_900], "n": 256, "echo": True, "logprobs": 20,
             "max_tokens": 0}  # fmt: skip
    child, url, log = _start_server("-m", str(model))
    # The longest prompt allowed, as token ids (as lm-eval sends it).
    ids = httpx.post(url + "/tokenize", json={"prompt": text}, timeout=600).json()
    prompt = ids["tokens"][:SERVE_MAX_PROMPT_TOKENS]
    top = min(SERVE_MAX_REQUEST_COST // len(prompt) - 1, 20)  # the most allowed
    figures["largest_scoring_tokens_and_logprobs"] = [len(prompt), top]
    allowed = {
        "largest scoring": {"prompt": prompt, "echo": True, "logprobs": top,
                            "max_tokens": 0},
        "largest generation": {"prompt": "", "n": 32,
                               "max_tokens": SERVE_MAX_REQUEST_COST // 32},
        "largest streamed": {"prompt": "", "n": 32, "stream": True,
                             "max_tokens": SERVE_MAX_REQUEST_COST // 32},
    }  # fmt: skip
    try:
        started = time.perf_counter()
        answer = httpx.post(url + "/v1/completions", json=heavy, timeout=600)
        figures["heavy_echo_status"] = answer.status_code
        figures["heavy_echo_ms"] = round((time.perf_counter() - started) * 1e3, 1)
        if answer.status_code != 400:
            problems.append(f"the heavy echo request got {answer.status_code}")
        for name, body in allowed.items():
            started = time.perf_counter()
            answer = httpx.post(url + "/v1/completions", json=body, timeout=600)
            seconds = time.perf_counter() - started
            figures[name] = {
                "status": answer.status_code,
                "seconds": round(seconds, 2),
                "response_mb": round(len(answer.content) / 1e6, 2),
            }
            if answer.status_code != 200 or seconds > SERVE_TIMEOUT:
                problems.append(f"{name}: {answer.status_code} in {seconds:.0f} s")
        figures["server_peak_mb"] = round(_peak_mb_of(child.pid), 1)
    finally:
        _stop(child)
        logs += log
    child, url, log = _start_server("-m", str(model), "--timeout", "5")
    try:
        body = allowed["largest scoring"]

        def timed(_: int) -> tuple[int, float]:
            started = time.perf_counter()
            status = httpx.post(url + "/v1/completions", json=body, timeout=600)
            return status.status_code, time.perf_counter() - started

        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(timed, range(5)))
        figures["five_scorings_under_timeout_5"] = {
            "statuses": sorted(status for status, _ in answers),
            "worst_seconds": round(max(seconds for _, seconds in answers), 2),
        }
        if any(status not in (200, 504) for status, _ in answers):
            problems.append(f"scoring under --timeout 5: {answers}")
        if max(seconds for _, seconds in answers) > 5 + 1:
            problems.append(f"scoring under --timeout 5 took {answers}")
        figures["server_peak_mb_under_timeout"] = round(_peak_mb_of(child.pid), 1)
    finally:
        _stop(child)
        logs += log
    text = "".join(logs)
    figures["log_tracebacks"] = text.count("Traceback")
    if "Traceback" in text or " 500 " in text:
        problems.append("tracebacks or 500s in the log: " + text[-300:])
    figures["problems"] = len(problems)
    figures["problem_lines"] = problems[:10]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--serve-model",
        type=Path,
        help="the model the request-cost cases serve (default: the tiny one "
        "trained here; a default-size model gives the figures that matter)",
    )
    parser.add_argument(
        "--only",
        choices=["cli", "counts", "http", "cost"],
        help="run one part: random command lines and mutated models, "
        "unbounded counts and long inputs, or HTTP clients (default: all)",
    )
    options = parser.parse_args()
    rng = random.Random(options.seed)
    started = time.perf_counter()
    counts = {
        "runs": 0,
        "mutated_models": 0,
        "tracebacks": 0,
        "unexpected_errors": 0,
        "other_exit_codes": 0,
        "inputs_changed": 0,
        "outputs_replaced_without_force": 0,
        "special_files_replaced": 0,
    }
    exits = {0: 0, 1: 0, 2: 0}
    failures: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        from textgen.model.config import ModelConfig, TrainConfig
        from textgen.training.train import train

        (root / "seed.txt").write_text(TEXT)
        model = root / "tiny.keras"
        train(
            [root / "seed.txt"],
            model,
            ModelConfig(layers=1, units=8, embedding_dim=4),
            TrainConfig(seq_len=8, epochs=2, seed=1),
            log=lambda line: None,
        )
        items_model = root / "items.keras"
        (root / "names.txt").write_text(
            "".join(f"{a}{b}\n" for a in ("mar", "tam", "sel") for b in ("in", "a"))
            * 20
        )
        train(
            [root / "names.txt"],
            items_model,
            ModelConfig(layers=1, units=8, embedding_dim=4),
            TrainConfig(seq_len=8, epochs=1, seed=1, level="char", documents="lines"),
            log=lambda line: None,
        )
        files = make_files(root, model)
        extra = {}
        if options.only in (None, "counts"):
            extra["counts"] = count_cases(root, model, items_model)
            print("counts done", file=sys.stderr, flush=True)
        if options.only in (None, "http"):
            extra["http"] = http_cases(model, rng)
            print("http done", file=sys.stderr, flush=True)
        if options.only in (None, "cost"):
            extra["cost"] = cost_cases(options.serve_model or model)
            print("cost done", file=sys.stderr, flush=True)
        if options.only not in (None, "cli"):
            options.runs = options.models = 0
        hostile = root / "in" / "hostile"
        hostile.mkdir()
        models = [files["model.keras"]]
        for i in range(options.models):
            path = hostile / f"m{i}.keras"
            mutate(model, path, rng)
            models.append(path)
        counts["mutated_models"] = options.models
        protected = snapshot(root / "in")
        os.chdir(root)
        worst: tuple[float, list[str]] = (0.0, [])  # the run with the highest peak
        # Every mutated model is used at least once, then random invocations.
        plan = [
            rng.choice(
                [
                    ["info", str(p)],
                    ["generate", "-m", str(p), "-v", "-n", "5"],
                    ["evaluate", "-m", str(p), str(files["corpus.txt"])],
                ]
            )
            for p in models[1:]
        ]
        plan += [None] * options.runs
        for planned in plan:
            out = root / "out"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            shutil.copy(model, out / "existing.keras")
            args = planned or invocation(rng, files, out, models)
            before_out = snapshot(out)
            reset_peak()
            result = CliRunner().invoke(cli, args)
            peak = peak_rss_mb()
            if peak > worst[0]:
                worst = (peak, args[:8])
            if args[0] in ("train", "compare"):
                # Keras keeps every model built in the process; let them go, so
                # one run's memory is not counted in the next.
                import gc

                import keras

                keras.backend.clear_session()
                gc.collect()
            counts["runs"] += 1
            if counts["runs"] % 100 == 0:
                print(
                    f"{counts['runs']} runs, {time.perf_counter() - started:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
            text = result.output + result.stderr
            problem = None
            if "Traceback" in text or not (
                result.exception is None or isinstance(result.exception, SystemExit)
            ):
                counts["tracebacks"] += 1
                problem = repr(result.exception)
            elif "unexpected" in text:
                counts["unexpected_errors"] += 1
                problem = text.strip().splitlines()[-1]
            if result.exit_code not in exits:
                counts["other_exit_codes"] += 1
                problem = f"exit {result.exit_code}"
            else:
                exits[result.exit_code] += 1
            now = snapshot(root / "in")
            changed = sorted(
                p
                for p in protected.keys() | now.keys()
                if protected.get(p) != now.get(p)
            )
            if "--resume" in args and result.exit_code == 0:  # resumed in place
                resumed = args[args.index("--resume") + 1]
                changed = [p for p in changed if Path(p).stem != Path(resumed).stem]
            changed = [p for p in changed if not replaced_by_request(args, Path(p))]
            if changed:
                counts["inputs_changed"] += 1
                problem = f"inputs changed: {changed[:3]}"
            protected = now
            after_out = snapshot(out)
            replaced = [
                p for p, digest in before_out.items() if after_out.get(p) != digest
            ]
            if replaced and "--force" not in args and "--resume" not in args:
                counts["outputs_replaced_without_force"] += 1
                problem = f"replaced {replaced}"
            if not special_files_intact(files):
                counts["special_files_replaced"] += 1
                problem = "a FIFO, device or link was replaced"
                files = make_files_again(root, model, files)
            if problem and len(failures) < 20:
                failures.append({"args": args, "problem": problem[:300]})
        report = {
            "benchmark": "fuzz",
            "seed": options.seed,
            **counts,
            "exit_codes": exits,
            # Peak resident memory of the process during the worst run (Linux
            # VmHWM, reset before each run); TensorFlow alone holds ~600 MB.
            "peak_rss_mb_worst_run": round(worst[0], 1),
            "worst_run": [str(a)[:60] for a in worst[1]],
            "seconds": round(time.perf_counter() - started, 1),
            "failures": failures,
            **extra,
        }
    print(json.dumps(report, indent=1))
    bad = sum(counts[k] for k in counts if k not in ("runs", "mutated_models"))
    bad += sum(part["problems"] for part in extra.values())
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
