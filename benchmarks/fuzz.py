"""Fuzz the whole command line: random invocations of every command with
random option values and random files, and mutated model files (fields
changed or dropped, bytes flipped, cut short, zlib bombs), run in-process.

Counts what must never happen: tracebacks, "unexpected" errors, exit codes
other than 0/1/2, input files changed, existing outputs replaced without
--force; and reports the peak memory. Prints one JSON object; exits 1 when
any count is not 0. Not part of CI (minutes); the fast CI version is
tests/test_cli_fuzz.py.

    python benchmarks/fuzz.py [--runs 1000] [--models 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import click
from click.testing import CliRunner

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
    return files


def mutate(model: Path, target: Path, rng: random.Random) -> str:
    """A damaged or hostile copy of `model`; returns what was done."""
    data = model.read_bytes()
    kind = rng.choice(["field", "drop", "flip", "cut", "bomb", "weights"])
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
        if name in ("--output", "--plot", "--resume", "--pretrained-embeddings"):
            pool = [
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


def snapshot(folder: Path) -> dict[str, str]:
    found = {}
    for path in folder.rglob("*"):
        if path.is_file():
            found[str(path)] = hashlib.blake2b(path.read_bytes()).hexdigest()
    return found


def peak_rss_mb() -> float:
    """The process's peak resident memory since the last `reset_peak` (Linux:
    VmHWM), or since it started."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def reset_peak() -> None:
    """Start measuring the peak afresh (Linux); elsewhere it keeps growing."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
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
    }
    exits = {0: 0, 1: 0, 2: 0}
    failures: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        from textgen.config import ModelConfig, TrainConfig
        from textgen.train import train

        (root / "seed.txt").write_text(TEXT)
        model = root / "tiny.keras"
        train(
            [root / "seed.txt"],
            model,
            ModelConfig(layers=1, units=8, embedding_dim=4),
            TrainConfig(seq_len=8, epochs=2, seed=1),
            log=lambda line: None,
        )
        files = make_files(root, model)
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
        }
    print(json.dumps(report, indent=1))
    bad = sum(counts[k] for k in counts if k not in ("runs", "mutated_models"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
