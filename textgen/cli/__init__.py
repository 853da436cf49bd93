"""The `textgen` command line: parse options, call the library, print.

`group` holds the group and what the commands share; one module per group of
commands registers them on it when imported: `train` (train, compare),
`generate` (generate and its interactive prompt), `inspect` (evaluate,
info), `adapt`, `serve`.
"""

from . import adapt, generate, inspect, serve, train  # noqa: F401 (registers)
from .group import cli, main

__all__ = ["cli", "main"]
