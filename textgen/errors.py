"""Errors textgen reports to users: each carries one line saying what is wrong
and how to fix it. The CLI prints the message and exits 1, with no traceback."""


class TextgenError(Exception):
    """A problem the user can fix; its message is one line naming the fix."""


class CorpusError(TextgenError):
    """A corpus file or folder cannot be read or is unusable for training."""


class ModelFileError(TextgenError):
    """A model file is missing, corrupt, or was not written by textgen."""


class TrainingError(TextgenError):
    """Training could not produce a model (bad settings, diverged loss)."""


class TrainingInterrupted(TrainingError):
    """Ctrl-C stopped training; the best model so far was saved."""


class OutputError(TextgenError):
    """A command would write where it must not: over an input, an existing file
    (without --force), a folder, or somewhere that cannot be written."""


class Cancelled(TextgenError):
    """Work stopped because whoever asked for it went away (a server client)."""


class TimedOut(TextgenError):
    """Work stopped because it ran past its time limit (`serve --timeout`)."""
