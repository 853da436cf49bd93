import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import PATTERN_GREEDY

from textgen.cli import cli


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, exit_code: int = 1) -> str:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_help_and_option_errors_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from textgen.cli import cli\n"
        "assert CliRunner().invoke(cli, ['--help']).exit_code == 0\n"
        "assert CliRunner().invoke(cli, ['generate', '-t', '-1']).exit_code == 2\n"
        "assert CliRunner().invoke(cli, ['train', '--help']).exit_code == 0\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]


def test_python_dash_m_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "textgen", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "textgen" in out.stdout


def test_every_option_shows_its_default():
    for command in ("train", "generate"):
        text = run(command, "--help").output
        blocks = text.split("\n  -")[1:]  # one per option
        options = [
            p for p in cli.commands[command].params if p.param_type_name == "option"
        ]
        assert len(blocks) == len(options) + 1  # and --help
        for block in blocks:
            assert "[default:" in block or block.startswith("h, --help"), block


@pytest.mark.slow
def test_train_generate_info_end_to_end(
    tmp_path: Path, pattern_file: Path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    result = run(
        "train", pattern_file, "--units", 16, "--embedding-dim", 8, "--seq-len", 8,
        "--epochs", 25, "--batch-size", 8, "--learning-rate", 0.02, "--dropout", 0,
        "--patience", 0, "--random-seed", 7,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "epoch  25/25  train loss" in result.output
    assert "val loss" in result.output and "ppl" in result.output
    assert "saved models/pattern.keras" in result.output
    assert Path("models/pattern.keras").exists()
    assert "learning curves: models/pattern.png" in result.output
    assert Path("models/pattern.png").read_bytes().startswith(b"\x89PNG")

    result = run("generate", "--seed", "three", "-n", 18, "-t", 0)
    assert result.exit_code == 0, result.output
    assert result.stdout == PATTERN_GREEDY + "\n"
    assert "using models/pattern.keras" in result.stderr

    info = run("info")
    assert info.exit_code == 0, info.output
    for expected in (
        "LSTM, 2 x 16 units",
        "validation perplexity",
        "pattern.txt (779 words)",
        "parameters",
    ):
        assert expected in info.stdout


def test_generate_options(trained):
    path = trained[0]
    # fmt: off
    args = ["generate", "-m", path, "-s", "one", "-n", 10, "--num-samples", 2,
            "--random-seed", 3, "-t", 2]
    # fmt: on
    two = run(*args)
    assert two.exit_code == 0, two.output
    assert two.stdout.count("--- sample") == 2
    again = run(*args)
    assert again.stdout == two.stdout
    filtered = run(
        "generate", "-m", path, "-s", "one", "-n", 11, "--top-k", 1, "--random-seed", 1
    )
    assert filtered.stdout.startswith("One two three, four five. Six seven eight nine!")
    nucleus = run(
        "generate",
        "-m",
        path,
        "-s",
        "one",
        "-n",
        11,
        "--top-p",
        0.5,
        "--random-seed",
        1,
    )
    assert nucleus.stdout == filtered.stdout
    unknown = run("generate", "-m", path, "-s", "zebra one", "-n", 3, "-t", 0)
    assert unknown.exit_code == 0
    assert "read as <unk>: zebra" in unknown.stderr
    assert unknown.stdout.startswith("Zebra one")


@pytest.fixture
def bad_inputs(tmp_path: Path):
    import keras

    files = {
        "empty": ("empty.txt", b""),
        "binary": ("data.txt", b"PK\x03\x04\x00\x00binary"),
        "latin1": ("latin.txt", "caf\u00e9 au lait".encode("latin-1")),
        "short": ("short.txt", b"just a few words"),
        "notzip": ("notes.keras", b"hello"),
    }
    paths = {}
    for key, (name, data) in files.items():
        paths[key] = tmp_path / name
        paths[key].write_bytes(data)
    (tmp_path / "nothing_here").mkdir()
    paths["emptydir"] = tmp_path / "nothing_here"
    paths["foreign"] = tmp_path / "foreign.keras"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(paths["foreign"])
    paths["missing"] = tmp_path / "missing.txt"
    return paths


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "{missing}"], "corpus not found"),
        (["train", "{empty}"], "is empty"),
        (["train", "{binary}"], "looks like a binary file"),
        (
            ["train", "{latin1}"],
            "is not UTF-8 text (byte 0xe9 at offset 3); re-save it as UTF-8",
        ),
        (["train", "{short}"], "has 4 words, but one training window"),
        (["train", "{emptydir}"], "has no .txt files"),
        (["generate", "-m", "{missing}"], "model not found"),
        (["generate", "-m", "{notzip}"], "not a .keras model file"),
        (["generate", "-m", "{foreign}"], "textgen did not write"),
        (["info", "{foreign}"], "textgen did not write"),
    ],
)
def test_bad_input_gets_one_line(args, message, bad_inputs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_line_error(run(*[a.format(**bad_inputs) for a in args]))
    assert line.startswith("Error: ")
    assert message in line
    assert not Path("models").exists()  # nothing written


def test_no_model_anywhere_says_to_train(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_line_error(run("generate", "--seed", "hello"))
    assert "textgen train" in line


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "-t", "-0.5"],
        ["generate", "--top-p", "0"],
        ["generate", "--top-p", "1.5"],
        ["generate", "--top-k", "-1"],
        ["generate", "-n", "0"],
        ["train", "x.txt", "--val-fraction", "0.7"],
        ["train", "x.txt", "--units", "0"],
        ["train", "x.txt", "--cell", "transformer"],
        ["train", "x.txt", "--dropout", "1"],
        ["train", "x.txt", "--learning-rate", "0"],
        ["train", "x.txt", "--learning-rate", "nan"],
        ["train", "x.txt", "--max-minutes", "inf"],
        ["train", "x.txt", "--max-minutes", "1e300"],  # over a week
        ["train", "x.txt", "--clipnorm", "1e300"],
        ["generate", "-t", "nan"],
        ["generate", "--random-seed", "-1"],
        ["train", "x.txt", "--random-seed", "-5"],
        ["train", "x.txt", "--lr-schedule", "cosine"],
        ["train", "x.txt", "--distribute", "everywhere"],
    ],
)
def test_impossible_options_are_usage_errors(args):
    result = run(*args)
    line = one_line_error(result, exit_code=2)
    assert "Invalid value" in line and f" {args[0]} --help')" in line


def test_existing_model_survives_a_failed_train(
    tmp_path: Path, monkeypatch, bad_inputs
):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "keep.keras"
    out.write_bytes(b"previous model")
    one_line_error(run("train", bad_inputs["short"], "-o", out, "--force"))
    assert out.read_bytes() == b"previous model"


def test_train_never_overwrites_a_model_unasked(tmp_path: Path, pattern_file: Path):
    out = tmp_path / "keep.keras"
    out.write_bytes(b"previous model")
    line = one_line_error(run("train", pattern_file, "-o", out))
    assert "already exists; pass --force" in line and f"--resume {out}" in line
    assert out.read_bytes() == b"previous model"
    (tmp_path / "gru.keras").write_bytes(b"previous model")
    line = one_line_error(
        run("compare", pattern_file, "--cells", "gru", "-o", tmp_path)
    )
    assert "gru.keras already exists; pass --force" in line


def test_a_resumed_model_keeps_its_shape(trained, tmp_path: Path, pattern_file: Path):
    result = run("train", pattern_file, "--resume", trained[0], "--units", "8")
    assert result.exit_code == 2
    assert "--units: a resumed model keeps its shape" in result.stderr


def test_unwritable_output_is_refused_before_training(
    tmp_path: Path, pattern_file: Path
):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    line = one_line_error(run("train", pattern_file, "-o", blocker / "m.keras"))
    assert "cannot write the model in" in line and "is a file" in line
    assert "with -o" in line
    assert "epoch" not in line


def test_debug_shows_the_traceback(bad_inputs):
    result = run("--debug", "train", bad_inputs["empty"])
    assert result.exit_code == 1
    assert isinstance(result.exception, Exception)
    assert "is empty" in str(result.exception)


@pytest.mark.slow
def test_tensorflow_chatter_is_silenced(trained, tmp_path):
    env = {**os.environ, "TEXTGEN_DEBUG": ""}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    out = subprocess.run(
        [sys.executable, "-m", "textgen", "info", str(trained[0])],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=True,
    )  # fmt: skip
    assert out.stderr == ""
    assert "parameters" in out.stdout


def test_evaluate_prints_tokens_oov_and_perplexity(trained, pattern_file: Path):
    result = run("evaluate", "-m", trained[0], pattern_file)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "tokens scored  779"
    assert lines[1].startswith("OOV rate       0.00% (0 read as <unk>)")
    perplexity = float(lines[2].split()[1])
    assert 1.0 <= perplexity < 1.5
    missing = one_line_error(run("evaluate", "-m", trained[0], "nope.txt"))
    assert "corpus not found" in missing


QUICK = ["--units", "4", "--embedding-dim", "4", "--seq-len", "8", "--epochs", "2"]


@pytest.mark.slow
def test_plot_without_matplotlib(tmp_path: Path, pattern_file: Path, monkeypatch):
    import textgen.training.plots

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(textgen.training.plots, "matplotlib_available", lambda: False)
    line = one_line_error(run("train", pattern_file, "--plot", "curves.png", *QUICK))
    assert "pip install 'textgen[plot]'" in line
    assert not Path("models").exists() and not Path("curves.png").exists()
    result = run("train", pattern_file, *QUICK)  # not asked for: a note, no picture
    assert result.exit_code == 0, result.output
    assert "matplotlib is missing" in result.output
    assert (
        Path("models/pattern.keras").exists()
        and not Path("models/pattern.png").exists()
    )


def test_tensorboard_missing_is_one_line(
    tmp_path: Path, pattern_file: Path, monkeypatch
):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorboard" else real_find_spec(name, *a),
    )
    monkeypatch.chdir(tmp_path)
    line = one_line_error(run("train", pattern_file, "--tensorboard", "tb", *QUICK))
    assert "pip install 'textgen[tensorboard]'" in line
    assert not Path("models/pattern.keras").exists()


@pytest.mark.slow
def test_plot_path_no_plot_and_tensorboard(
    tmp_path: Path, pattern_file: Path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    Path("pics").mkdir()  # a picture's folder must exist (only models/ is made)
    result = run(
        "train", pattern_file, "--plot", "pics/c.png", "--tensorboard", "tb", *QUICK
    )
    assert result.exit_code == 0, result.output
    assert Path("pics/c.png").exists()
    assert list(Path("tb").rglob("events.out.tfevents.*"))
    result = run("train", pattern_file, "-o", "m2.keras", "--no-plot", *QUICK)
    assert result.exit_code == 0, result.output
    assert not Path("m2.png").exists()


@pytest.mark.slow
def test_compare_trains_each_cell_and_prints_a_table(
    tmp_path: Path, pattern_file: Path
):
    result = run(
        "compare", pattern_file, "--cells", "rnn,gru", "-o", tmp_path / "cmp",
        "--epochs", "1", "--units", "4", "--embedding-dim", "4", "--seq-len", "8",
        "--random-seed", "3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = result.stdout.split("\n\n")[-1].splitlines()
    assert table[0].split()[:5] == ["cell", "parameters", "s/epoch", "best", "val"]
    assert [line.split()[0] for line in table[1:3]] == ["rnn", "gru"]
    for name in ("rnn.keras", "gru.keras", "curves.png", "gradients.png"):
        assert (tmp_path / "cmp" / name).exists(), name
    bad = run("compare", pattern_file, "--cells", "rnn,transformer")
    assert bad.exit_code == 2 and "transformer" in bad.stderr


def test_generate_verbose_reports_speed_model_and_copying(trained):
    result = run(
        "generate", "-m", trained[0], "-s", "one", "-n", 12, "-t", 0, "--verbose"
    )
    assert result.exit_code == 0, result.output
    assert f"model: {trained[0]}" in result.stderr
    assert "words/s (12 words)" in result.stderr
    # The greedy pattern is the training text itself: all 12 words are copied.
    assert "copied verbatim from the training text: 12 words" in result.stderr


def test_ctrl_c_in_train_exits_130_with_one_line(
    tmp_path: Path, pattern_file: Path, monkeypatch
):
    import textgen.training.train
    from textgen.errors import TrainingInterrupted

    def interrupted(*args, **kwargs):
        raise TrainingInterrupted("interrupted in epoch 2: saved the best model")

    monkeypatch.setattr(textgen.training.train, "train", interrupted)
    line = one_line_error(
        run("train", pattern_file, "-o", tmp_path / "m.keras"), exit_code=130
    )
    assert line == "Error: interrupted in epoch 2: saved the best model"


@pytest.mark.parametrize(
    "command",
    [
        ["generate", "-m", "{model}", "-n", "5", "-v", "--format", "jsonl"],
        ["generate", "-m", "{model}", "-s", "one two", "--beam", "2", "-n", "4"],
        ["evaluate", "-m", "{model}", "{corpus}"],
        ["info", "{model}"],
    ],
    ids=["generate", "beam", "evaluate", "info"],
)
def test_using_a_model_never_imports_tensorflow(command, trained, pattern_file):
    args = [a.format(model=trained[0], corpus=pattern_file) for a in command]
    code = (
        "import sys\n"
        "from textgen.cli import cli\n"
        "try:\n"
        f"    cli({args!r}, prog_name='textgen')\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split()[-2:] == ["False", "False"], out.stdout + out.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["bogus"],
        ["--bogus"],
        ["train"],
        ["generate", "--seed", "a", "--seed-file", "b"],
        ["generate", "--beam", "2", "-t", "0,1"],
    ],
)
def test_every_usage_error_is_one_line(args):
    assert "--help')" in one_line_error(run(*args), exit_code=2)


def test_counts_read_as_words(tmp_path: Path):
    one = tmp_path / "one.txt"
    one.write_text("word", encoding="utf-8")
    line = one_line_error(run("train", one, "-o", tmp_path / "m.keras"))
    assert "the corpus has 1 word, but" in line
    many = tmp_path / "many.txt"
    many.write_text("word " * 1500, encoding="utf-8")
    line = one_line_error(
        run("train", many, "-o", tmp_path / "m.keras", "--seq-len", 5000)
    )
    assert "the corpus has 1,500 words" in line and "at least 50,010;" in line


def test_compare_checks_its_inputs_before_any_work(tmp_path: Path, pattern_file):
    folder = tmp_path / "cmp"
    folder.mkdir()
    (folder / "lstm.keras").write_text("the 0.1 0.2\n", encoding="utf-8")
    args = ["compare", pattern_file, "--cells", "rnn,lstm", "-o", folder, "--force"]
    line = one_line_error(run(*args, "--pretrained-embeddings", folder / "lstm.keras"))
    assert "is an input of this command" in line
    assert not (folder / "rnn.keras").exists()  # refused before rnn trained
    line = one_line_error(run(*args, "--pretrained-embeddings", tmp_path / "no.txt"))
    assert "vectors file not found" in line
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("the 0.1 0.2\nsea 0.3\n", encoding="utf-8")
    for command in (args, ["train", pattern_file, "-o", tmp_path / "t.keras"]):
        line = one_line_error(run(*command, "--pretrained-embeddings", ragged))
        assert "line 2 has 1 number where earlier lines have 2" in line
    assert not list(folder.glob("rnn*")) and not (tmp_path / "t.keras").exists()


def test_a_named_pipe_with_no_writer_is_one_line(tmp_path: Path, monkeypatch, trained):
    from textgen.text import corpus

    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this system")
    pipe = tmp_path / "pipe.txt"
    os.mkfifo(pipe)
    monkeypatch.setattr(corpus, "FIFO_WAIT_SECONDS", 0.3)
    line = one_line_error(run("evaluate", "-m", trained[0], pipe))
    assert "is a named pipe and no text arrived on it in 0.3 s" in line
    # With a writer, a pipe is read like a file.
    writer = subprocess.Popen(
        ["sh", "-c", f"printf 'one two three, four five.' > '{pipe}'"]
    )
    result = run("evaluate", "-m", trained[0], pipe)
    writer.wait(10)
    assert result.exit_code == 0, result.output
    assert "tokens scored  7" in result.stdout  # one two three , four five .


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_every_float_option_refuses_what_is_not_a_finite_number(value):
    # Issue 33: `serve --timeout nan` switched the limit off.
    checked = 0
    for name, command in cli.commands.items():
        for param in command.params:
            if not isinstance(param.type, click.types.FloatParamType):
                continue
            result = run(name, param.opts[0], value, "x")
            assert result.exit_code == 2, (name, param.opts, result.output)
            said = result.output
            assert "finite" in said or "not in the range" in said, (name, said)
            checked += 1
    assert checked >= 10  # every command's float options were found
