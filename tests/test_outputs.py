"""Nothing is replaced or lost: every file a command writes, when it already
exists, is the corpus, is a folder, or cannot be written, is refused before
any work starts (only an existing file gives way, and only to --force); and
writes are atomic, flushed to disk, and clean up after killed ones."""

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import PATTERN_TEXT

from textgen.cli import cli
from textgen.outputs import atomic_write, remove_leftovers

WORK = "WORK STARTED"


def _train(target, corpus, folder):
    return ["train", corpus, "-o", target, "--no-plot"]


def _checkpoint(target, corpus, folder):
    model = target.with_name(target.name.replace(".last.keras", ".keras"))
    return ["train", corpus, "-o", model, "--checkpoint-every", "1", "--no-plot"]


def _picture(target, corpus, folder):
    return ["train", corpus, "-o", folder / "m.keras", "--plot", target]


def _default_picture(target, corpus, folder):
    return ["train", corpus, "-o", target.with_suffix(".keras")]


def _resumed_elsewhere(target, corpus, folder):
    return ["train", corpus, "--resume", folder / "old.keras", "-o", target]


def _compare_model(target, corpus, folder):
    return ["compare", corpus, "--cells", "gru", "-o", target.parent]


def _compare_picture(target, corpus, folder):
    return ["compare", corpus, "--cells", "gru", "-o", target.parent]


WRITERS = {
    "model": (_train, "m.keras"),
    "checkpoint": (_checkpoint, "m.last.keras"),
    "picture": (_picture, "curves.png"),
    "default picture": (_default_picture, "m.png"),
    "resumed into another model": (_resumed_elsewhere, "other.keras"),
    "compare model": (_compare_model, "gru.keras"),
    "compare picture": (_compare_picture, "curves.png"),
}
STATES = ["exists", "is the corpus", "is a folder", "cannot be written"]


@pytest.fixture
def no_work(monkeypatch):
    """Any command that gets past its checks stops at once, saying so."""

    def started(*args, **kwargs):
        raise RuntimeError(WORK)

    monkeypatch.setattr("textgen.training.reading.read_corpus_ids", started)
    monkeypatch.setattr("textgen.training.compare.compare", started)


def _snapshot(path: Path):
    mode = os.lstat(path).st_mode if os.path.lexists(path) else 0
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or mode == 0):
        return ("special", mode, os.readlink(path) if path.is_symlink() else None)
    if path.is_dir():
        return ("folder", sorted(p.name for p in path.iterdir()))
    return ("file", path.read_bytes()) if path.exists() else ("none", None)


@pytest.mark.parametrize("force", [False, True], ids=["", "--force"])
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_no_file_is_replaced_or_lost(
    writer, state, force, tmp_path, pattern_file, trained, no_work
):
    build, name = WRITERS[writer]
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "old.keras").write_bytes(trained[0].read_bytes())
    corpus = pattern_file
    target = folder / name
    if state == "exists":
        target.write_bytes(b"precious")
    elif state == "is the corpus":
        target.write_text(PATTERN_TEXT)
        corpus = target
    elif state == "is a folder":
        target.mkdir()
        (target / "keep.txt").write_text("keep")
    else:  # its folder is a file
        blocker = folder / "blocker"
        blocker.write_text("a file, not a folder")
        folder, target = blocker, blocker / name
    before = _snapshot(target)
    args = build(target, corpus, folder) + (["--force"] if force else [])
    result = CliRunner().invoke(cli, [str(a) for a in args])
    output = result.output + result.stderr
    assert "Traceback" not in output
    assert _snapshot(target) == before, output
    if force and state == "exists":
        assert WORK in output, output  # --force lets an existing file go
        return
    assert result.exit_code in (1, 2) and WORK not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.stderr


def test_tensorboard_logs_need_a_folder(tmp_path, pattern_file, no_work):
    logs = tmp_path / "logs"
    logs.write_text("a file")
    args = ["train", pattern_file, "-o", tmp_path / "m.keras", "--no-plot"]
    result = CliRunner().invoke(cli, [str(a) for a in [*args, "--tensorboard", logs]])
    assert result.exit_code in (1, 2) and WORK not in result.output
    assert logs.read_text() == "a file"


def test_a_model_and_its_picture_cannot_share_a_path(tmp_path, pattern_file, no_work):
    out = tmp_path / "m.keras"
    args = ["train", pattern_file, "-o", out, "--plot", tmp_path / "m.png", "--force"]
    ok = CliRunner().invoke(cli, [str(a) for a in args])
    assert WORK in ok.output + ok.stderr  # distinct paths are fine
    clash = ["train", pattern_file, "-o", out, "--plot", out, "--force"]
    result = CliRunner().invoke(cli, [str(a) for a in clash])
    assert result.exit_code == 1 and WORK not in result.output


def test_resuming_replaces_only_its_own_model(tmp_path, pattern_file, trained, no_work):
    model = tmp_path / "m.keras"
    model.write_bytes(trained[0].read_bytes())
    (tmp_path / "m.png").write_bytes(b"old picture")
    result = CliRunner().invoke(
        cli, ["train", str(pattern_file), "--resume", str(model)]
    )
    assert WORK in result.output + result.stderr  # in place: no --force needed


def test_writes_are_flushed_and_leftovers_of_killed_writes_removed(
    tmp_path, monkeypatch
):
    target = tmp_path / "m.keras"
    dead = tmp_path / ".m.999999999.tmp.keras"  # no such process
    dead.write_bytes(b"from a killed save")
    mine = tmp_path / f".m.{os.getppid()}.tmp.keras"  # a live process's
    mine.write_bytes(b"another save in progress")
    flushed = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: flushed.append(fd) or real_fsync(fd))
    atomic_write(target, lambda temporary: temporary.write_bytes(b"new"))
    assert target.read_bytes() == b"new"
    assert len(flushed) == 2  # the file before the rename, the folder after
    assert not dead.exists() and mine.exists()
    assert remove_leftovers(target) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "curves.png"
    target.write_bytes(b"old")

    def fail(temporary: Path):
        temporary.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


@pytest.mark.slow
def test_a_picture_that_fails_after_saving_costs_only_the_picture(
    tmp_path, pattern_file, monkeypatch
):
    from textgen.model.config import ModelConfig, TrainConfig
    from textgen.training.train import train

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("textgen.training.plots.plot_learning_curves", full_disk)
    lines: list[str] = []
    out = tmp_path / "m.keras"
    train(
        [pattern_file],
        out,
        ModelConfig(layers=1, units=4, embedding_dim=4),
        TrainConfig(seq_len=8, epochs=1, seed=1),
        log=lines.append,
        plot=tmp_path / "m.png",
    )
    assert out.exists() and not (tmp_path / "m.png").exists()
    assert any("No space left" in line and "model is saved" in line for line in lines)


# Round three of the hostile inputs (issue 33): outputs aimed at what is
# read and at things that are not regular files.
AIMS = [
    "the model read",
    "a corpus file in a folder",
    "a link to the model",
    "a link to a corpus file",
    "a hard link to the model",
    "/dev/null",
    "a FIFO",
    "a link to a regular file",
    "in a missing folder",
]


def _device(tmp_path: Path) -> Path:
    """A character device like /dev/null, made in `tmp_path` where this user
    may (so a failing check cannot replace the system's own); else
    /dev/null itself, which only root could replace."""
    node = tmp_path / "null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (OSError, AttributeError):
        return Path(os.devnull)
    return node


def _aim(aim: str, tmp_path: Path, model: Path, corpus_dir: Path) -> Path:
    """The path an output is aimed at, made as `aim` says."""
    if aim == "the model read":
        return model
    if aim == "a corpus file in a folder":
        return corpus_dir / "a.txt"
    target = tmp_path / "out.jsonl"
    if aim == "a link to the model":
        target.symlink_to(model)
    elif aim == "a link to a corpus file":
        target.symlink_to(corpus_dir / "a.txt")
    elif aim == "a hard link to the model":
        os.link(model, target)
    elif aim == "/dev/null":
        return _device(tmp_path)
    elif aim == "a FIFO":
        os.mkfifo(target)
    elif aim == "a link to a regular file":
        (tmp_path / "real.jsonl").write_text("precious")
        target.symlink_to(tmp_path / "real.jsonl")
    else:
        return tmp_path / "missing" / "out.jsonl"
    return target


@pytest.mark.parametrize("force", [False, True], ids=["", "--force"])
@pytest.mark.parametrize("aim", AIMS)
def test_per_token_losses_never_replace_an_input_or_a_device(
    aim, force, tmp_path, trained, pattern_file
):
    model = tmp_path / "m.keras"
    model.write_bytes(trained[0].read_bytes())
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    (corpus_dir / "a.txt").write_text(PATTERN_TEXT)
    target = _aim(aim, tmp_path, model, corpus_dir)
    watched = [model, corpus_dir / "a.txt", target]
    before = [_snapshot(p) for p in watched]
    args = ["evaluate", "-m", model, "--per-token", target, corpus_dir]
    result = CliRunner().invoke(cli, [str(a) for a in args + (["--force"] * force)])
    assert result.exit_code == 1, result.output
    assert [_snapshot(p) for p in watched] == before
    assert not (tmp_path / "missing").exists()  # no folder made either
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.stderr


TRAIN_AIMS = ["a link to the corpus", "a FIFO", "a link to /dev/null", "missing folder"]


@pytest.mark.parametrize("aim", TRAIN_AIMS)
@pytest.mark.parametrize("writer", ["model", "picture", "compare model"])
def test_train_outputs_are_regular_files_in_existing_folders(
    writer, aim, tmp_path, pattern_file, no_work
):
    build, name = WRITERS[writer]
    folder = tmp_path / "work"
    folder.mkdir()
    target = folder / name
    if aim == "a link to the corpus":
        target.symlink_to(pattern_file)
    elif aim == "a FIFO":
        os.mkfifo(target)
    elif aim == "a link to /dev/null":
        target.symlink_to(_device(tmp_path))
    else:
        folder = tmp_path / "missing" / "deeper"
        target = folder / name
    before = [_snapshot(target), _snapshot(pattern_file)]
    args = [*build(target, pattern_file, folder), "--force"]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    output = result.output + result.stderr
    assert result.exit_code in (1, 2) and WORK not in output, output
    assert [_snapshot(target), _snapshot(pattern_file)] == before
    assert not (tmp_path / "missing").exists()


def test_the_models_folder_is_made_when_missing(
    tmp_path, pattern_file, no_work, monkeypatch
):
    # The one folder a command makes unasked (and folders inside it).
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["train", str(pattern_file), "--no-plot"])
    assert WORK in result.output + result.stderr


def test_atomic_write_refuses_what_is_not_a_regular_file(tmp_path):
    from textgen.errors import OutputError

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    for path in (fifo, link, _device(tmp_path)):
        with pytest.raises(OutputError):
            atomic_write(path, lambda temporary: temporary.write_bytes(b"x"))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink()
    assert not (tmp_path / "elsewhere").exists()


def test_a_pipe_or_device_given_as_a_model_or_vectors_is_one_line(
    tmp_path, pattern_file
):
    # Opening a FIFO for reading waits for a writer: refused, never opened.
    fifo = tmp_path / "pipe.keras"
    os.mkfifo(fifo)
    for args in (
        ["info", fifo],
        ["generate", "-m", fifo],
        ["evaluate", "-m", fifo, pattern_file],
        ["evaluate", "-m", _device(tmp_path), pattern_file],
        ["train", pattern_file, "-o", tmp_path / "m.keras",
         "--pretrained-embeddings", fifo],
    ):  # fmt: skip
        result = CliRunner().invoke(cli, [str(a) for a in args])
        assert result.exit_code in (1, 2), result.output
        assert "not a regular file" in result.output, result.output
