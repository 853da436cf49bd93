"""Where a command may write, decided in one place before any work starts, and
how it writes: a temporary file in the same folder, flushed to disk, renamed.

Every file a command writes (model, checkpoint, picture, log folder) is
checked by `check_outputs`: never an input, never a folder, never an existing
file unless `--force` (or it is the model being resumed), always in a folder
that can be written. `atomic_write` then makes each write all-or-nothing,
even across a power cut.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import MODELS_DIR
from .errors import OutputError

_TEMPORARY = ".tmp"  # part of every temporary file name: .NAME.PID.tmp.SUFFIX


@dataclass(frozen=True)
class Output:
    """A path a command is about to write."""

    path: Path
    what: str  # "model", "checkpoint", "picture", ... for messages
    replaceable: bool = False  # may replace an existing file without --force
    folder: bool = False  # a folder the command writes into (e.g. TensorBoard logs)
    option: str = ""  # the option that sets it ("-o"), named in messages


def default_model_path(corpus: str | Path) -> Path:
    """Where `train` writes by default: models/<first corpus's name>.keras."""
    return MODELS_DIR / f"{Path(corpus).resolve().stem}.keras"


def _elsewhere(output: Output) -> str:
    return "choose another path" + (f" with {output.option}" if output.option else "")


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(
    outputs: Sequence[Output],
    inputs: Iterable[Path] = (),
    force: bool = False,
    hint: str = "",
) -> None:
    """Refuse, with one line naming the fix, any output that would lose a file.

    Args:
        outputs: every path the command will write.
        inputs: files the command reads (a corpus, vectors): never written,
            even with `force`.
        force: existing files may be replaced.
        hint: extra advice for an existing output, e.g. "--resume PATH".

    Raises:
        OutputError: an output is an input, a folder (or a file where a folder
            is wanted), the same as another output, an existing file without
            `force`, or in a folder that cannot be written.
    """
    inputs = list(inputs)
    seen: dict[Path, Output] = {}
    for output in outputs:
        path = output.path
        key = path.resolve()
        if key in seen:
            raise OutputError(
                f"the {output.what} and the {seen[key].what} would both be "
                f"written to {path}; give them different paths"
            )
        seen[key] = output
        for given in inputs:
            if key == Path(given).resolve() or _same(path, Path(given)):
                raise OutputError(
                    f"{path} is an input of this command; writing the "
                    f"{output.what} there would destroy it; choose another path"
                )
        if output.folder:
            if path.exists() and not path.is_dir():
                raise OutputError(
                    f"{path} is a file, not a folder for the {output.what}; "
                    f"{_elsewhere(output)}"
                )
            _check_folder(path, output)
            continue
        if path.is_dir():
            raise OutputError(
                f"{path} is a folder; give a file name for the {output.what}"
                + (f" with {output.option}" if output.option else "")
            )
        if (path.exists() or path.is_symlink()) and not (force or output.replaceable):
            raise OutputError(
                f"{path} already exists; pass --force to overwrite it"
                + (f", {hint}" if hint else "")
                + f", or {_elsewhere(output)}"
            )
        _check_folder(path.parent, output)


def _check_folder(folder: Path, output: Output) -> None:
    """Fail now, not after hours of work, if `folder` cannot be written (a
    missing folder is fine when it can be made; it is made when writing)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    reason = ""
    if not existing.is_dir():
        reason = f"{existing} is a file, not a folder"
    elif existing == folder:
        try:  # the real test: also catches read-only file systems
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".textgen-check-"):
                pass
        except OSError as err:
            reason = err.strerror or type(err).__name__
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = f"{existing} cannot be written"
    if reason:
        raise OutputError(
            f"cannot write the {output.what} in {folder}/ ({reason}); "
            f"{_elsewhere(output)}"
        )


def _temporary_name(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.stem}.{pid}{_TEMPORARY}{path.suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or cannot tell: leave its file
    return True


def remove_leftovers(path: Path) -> list[Path]:
    """Delete the temporary files that killed saves to `path` left behind
    (those whose process is gone); returns what was removed."""
    removed = []
    prefix, suffix = f".{path.stem}.", f"{_TEMPORARY}{path.suffix}"
    with contextlib.suppress(OSError):
        for candidate in path.parent.iterdir():
            name = candidate.name
            if not (name.startswith(prefix) and name.endswith(suffix)):
                continue
            pid = name[len(prefix) : -len(suffix)]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    candidate.unlink()
                    removed.append(candidate)
    return removed


def _fsync(path: Path, folder: bool = False) -> None:
    try:
        fd = os.open(
            path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if folder else 0)
        )
    except OSError:
        return  # e.g. folders cannot be opened on Windows; nothing to flush
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not support it
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Write `path` all at once: `write` fills a temporary file beside it, which
    is flushed to disk and renamed over `path`, and the folder is flushed, so
    a crash, a kill or a power cut leaves either the old file or the new one.

    Args:
        path: the file to (re)place.
        write: called with the temporary path (same folder, same suffix).

    Raises:
        OSError: writing failed; `path` is untouched and the temporary removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    temporary = _temporary_name(path, os.getpid())
    try:
        write(temporary)
        _fsync(temporary)
        os.replace(temporary, path)
        _fsync(path.parent, folder=True)
    finally:
        temporary.unlink(missing_ok=True)
    return path
