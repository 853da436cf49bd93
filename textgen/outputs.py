"""Where a command may write, decided in one place before any work starts, and
how it writes: a temporary file in the same folder, flushed to disk, renamed.

Every file a command writes (model, checkpoint, picture, per-token losses,
log folder) is checked by `check_outputs`: never an input (the model read,
any corpus file, a link to either), never a folder, link, device, pipe or
socket, never an existing file unless `--force` (or it is the model being
resumed), always in a folder that exists and can be written. `atomic_write`
then makes each write all-or-nothing, even across a power cut.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import OutputError

MODELS_DIR = Path("models")  # where `train` writes and `generate` looks by default

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
    """Whether two paths name one file (the same path, a symlink or a hard
    link to it)."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def inside_models(folder: Path) -> bool:
    """Whether `folder` is the models folder or one inside it: the only
    folders a command makes, with their parents, without being asked."""
    models = MODELS_DIR.resolve()
    folder = folder.resolve()
    return folder == models or models in folder.parents


def _not_regular(path: Path) -> str:
    """Why an existing `path` cannot be written over ("" when it can: it is
    missing or a regular file)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return ""  # not there (or its folder is not): `_check_folder` says why
    if stat.S_ISLNK(mode):
        return "is a symbolic link; give the path it points to, or another path"
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        return ""
    kind = (
        "a pipe (FIFO)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
    )
    return f"is {kind}, not a regular file; give a file path"


def check_outputs(
    outputs: Sequence[Output],
    inputs: Iterable[Path] = (),
    force: bool = False,
    hint: str = "",
) -> None:
    """Refuse, with one line naming the fix, any output that would lose a file.

    One rule for every command that writes: an output is a regular file (or a
    folder, for folder outputs) that is not, does not resolve to and is not a
    hard link to any input; symbolic links, devices, pipes and sockets are
    refused, even with `force`, which replaces regular files only; and its
    folder exists (only the models folder, folders inside it and folder
    outputs themselves are made).

    Args:
        outputs: every path the command will write.
        inputs: files the command reads (corpus files, the model being read,
            vectors): never written, even with `force`.
        force: existing regular files may be replaced.
        hint: extra advice for an existing output, e.g. "--resume PATH".

    Raises:
        OutputError: see above; also two outputs on one path, or a folder
            that cannot be written.
    """
    inputs = [Path(given) for given in inputs]
    made = {o.path.resolve() for o in outputs if o.folder}
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
            if key == given.resolve() or _same(path, given):
                raise OutputError(
                    f"{path} is an input of this command; writing the "
                    f"{output.what} there would destroy it; choose another path"
                )
        reason = _not_regular(path)
        if reason:
            raise OutputError(f"{path} {reason} for the {output.what}")
        if output.folder:
            if path.exists() and not path.is_dir():
                raise OutputError(
                    f"{path} is a file, not a folder for the {output.what}; "
                    f"{_elsewhere(output)}"
                )
            _check_folder(path if path.exists() else path.parent, output, made)
            continue
        if path.is_dir():
            raise OutputError(
                f"{path} is a folder; give a file name for the {output.what}"
                + (f" with {output.option}" if output.option else "")
            )
        if path.exists() and not (force or output.replaceable):
            raise OutputError(
                f"{path} already exists; pass --force to overwrite it"
                + (f", {hint}" if hint else "")
                + f", or {_elsewhere(output)}"
            )
        _check_folder(path.parent, output, made)


def _check_folder(folder: Path, output: Output, made: set[Path]) -> None:
    """Fail now, not after hours of work, if `folder` cannot be written: it
    must exist (unless the command makes it: `made`, or the models folder)
    and take a file (also catches read-only file systems)."""
    if not folder.exists():
        if not (inside_models(folder) or folder.resolve() in made):
            raise OutputError(
                f"cannot write the {output.what}: the folder {folder}/ does not "
                f"exist; create it first, or {_elsewhere(output)}"
            )
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
            return
        reason = (
            f"{existing} is a file, not a folder"
            if not existing.is_dir()
            else f"{existing} cannot be written"
        )
    elif not folder.is_dir():
        reason = f"{folder} is a file, not a folder"
    else:
        try:  # the real test: also catches read-only file systems
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".textgen-check-"):
                pass
            return
        except OSError as err:
            reason = err.strerror or type(err).__name__
    raise OutputError(
        f"cannot write the {output.what} in {folder}/ ({reason}); {_elsewhere(output)}"
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
        OutputError: `path` is a folder, a link, a device, a pipe or a socket.
        OSError: writing failed; `path` is untouched and the temporary removed.
    """
    path = Path(path)
    reason = _not_regular(path)
    if reason or path.is_dir():
        raise OutputError(f"{path} {reason or 'is a folder'}; nothing was written")
    # Only the models folder (and folders in it) is made with its parents; a
    # folder output's own folder was checked to have one (`check_outputs`).
    path.parent.mkdir(parents=inside_models(path.parent), exist_ok=True)
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
