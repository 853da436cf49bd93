"""Nothing is replaced or lost: every file a command writes, when it already
exists, is the corpus, is a folder, or cannot be written, is refused before
any work starts (only an existing file gives way, and only to --force); and
writes are atomic, flushed to disk, and clean up after killed ones."""

import os
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

    monkeypatch.setattr("textgen.train.read_corpus_ids", started)
    monkeypatch.setattr("textgen.compare.compare", started)


def _snapshot(path: Path):
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
    from textgen.config import ModelConfig, TrainConfig
    from textgen.train import train

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("textgen.plots.plot_learning_curves", full_disk)
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
