"""The command line under random options and random files: every outcome is
a success or a short error, never a traceback or an "unexpected" error.

Every failure message names its seed: `TEXTGEN_FUZZ_SEED=N pytest
tests/test_cli_fuzz.py` replays the run (CI uses seed 0; elsewhere a random
one). `TEXTGEN_FUZZ_EXAMPLES` sets how many invocations (40)."""

import os
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from textgen.cli import cli

SEED = int(
    os.environ.get("TEXTGEN_FUZZ_SEED")
    or (0 if os.environ.get("CI") else random.randrange(2**32))
)
REPLAY = f"replay with TEXTGEN_FUZZ_SEED={SEED}"
NUMBERS = st.sampled_from(["-1", "0", "1", "3", "0.5", "1e9", "nan", "inf", "x", ""])
OPTIONS = {
    "train": {
        "--units": st.sampled_from(["-2", "0", "1", "4", "many"]),
        "--layers": st.sampled_from(["0", "1", "2"]),
        "--embedding-dim": st.sampled_from(["0", "2", "4"]),
        "--seq-len": st.sampled_from(["0", "1", "4", "8", "100000"]),
        "--epochs": st.sampled_from(["0", "1", "2"]),
        "--batch-size": st.sampled_from(["-1", "0", "1", "100000"]),
        "--learning-rate": NUMBERS,
        "--dropout": st.sampled_from(["-0.1", "0", "0.5", "1", "2"]),
        "--val-fraction": st.sampled_from(["0", "0.1", "0.49", "0.5", "-1"]),
        "--max-vocab": st.sampled_from(["0", "3", "5", "100000"]),
        "--min-count": st.sampled_from(["0", "1", "1000000"]),
        "--cell": st.sampled_from(["lstm", "gru", "rnn", "peephole", "transformer"]),
        "--lr-schedule": st.sampled_from(["linear", "plateau", "constant", "cosine"]),
        "--max-minutes": NUMBERS,
        "--clipnorm": NUMBERS,
    },
    "generate": {
        "-n": NUMBERS,
        "-t": NUMBERS,
        "--top-k": NUMBERS,
        "--top-p": NUMBERS,
        "--num-samples": st.sampled_from(["-1", "0", "1", "3"]),
        "--seed": st.text(max_size=40),
        "--random-seed": NUMBERS,
    },
    "evaluate": {},
    "info": {},
}
FILES = {
    "train": ["good", "empty", "binary", "latin1", "short", "missing", "folder"],
    "generate": ["model", "damaged", "foreign_text", "missing"],
    "evaluate": ["good", "empty", "binary", "missing"],
    "info": ["model", "damaged", "foreign_text", "missing"],
}


@pytest.fixture(scope="module")
def files(tmp_path_factory, pattern_file: Path, trained) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fuzz")
    contents = {
        "empty": b"",
        "binary": b"\x89PNG\r\n\x1a\n\x00\x00",
        "latin1": "na\u00efve caf\u00e9".encode("latin-1"),
        "short": b"three words only",
        "damaged": trained[0].read_bytes()[:3000],
        "foreign_text": b"not a model at all",
    }
    paths = {"good": pattern_file, "model": trained[0]}
    for name, data in contents.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    paths["missing"] = folder / "missing.txt"
    (folder / "folder").mkdir()
    (folder / "folder" / "a.txt").write_bytes(pattern_file.read_bytes())
    paths["folder"] = folder / "folder"
    return paths


@st.composite
def invocations(draw):
    command = draw(st.sampled_from(sorted(OPTIONS)))
    chosen = draw(
        st.lists(st.sampled_from(sorted(OPTIONS[command]) or ["-h"]), max_size=4)
    )
    args = [command]
    for option in dict.fromkeys(chosen):
        args.append(option)
        if option in OPTIONS[command]:
            args.append(draw(OPTIONS[command][option]))
    return args, draw(st.sampled_from(FILES[command]))


@pytest.mark.slow
@seed(SEED)
@settings(
    max_examples=int(os.environ.get("TEXTGEN_FUZZ_EXAMPLES", "40")),
    deadline=None,
    derandomize=False,  # the seed above decides, and is printed
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(invocations())
def test_random_invocations_end_cleanly(files, tmp_path_factory, invocation):
    args, file = invocation
    path = str(files[file])
    if args[0] == "train":
        out = tmp_path_factory.mktemp("out") / "m.keras"
        # Small and short whatever else was drawn, unless drawn otherwise.
        args += ["-o", str(out), "--no-plot", path]
        args[1:1] = ["--units", "4", "--embedding-dim", "4", "--epochs", "1"]
    elif args[0] in ("generate", "info"):
        args[1:1] = ["-m", path] if args[0] == "generate" else []
        args += [] if args[0] == "generate" else [path]
    else:
        args[1:1] = ["-m", str(files["model"])]
        args.append(path)
    result = CliRunner().invoke(cli, args)
    output = result.output + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        REPLAY,
        args,
        result.exception,
    )
    assert "Traceback" not in output and "unexpected" not in output, (
        REPLAY,
        args,
        output,
    )
    assert result.exit_code in (0, 1, 2), (REPLAY, args, output)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    if result.exit_code == 1:
        assert len(result.stderr.strip().splitlines()) == 1, (REPLAY, args, output)
    elif result.exit_code == 2:
        assert len(errors) == 1, (REPLAY, args, result.stderr)
