"""`textgen serve`: the models behind an OpenAI-compatible HTTP API."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Any

import click

from ..errors import TextgenError
from ..model.config import (
    SERVE_MAX_PROMPT_TOKENS,
    SERVE_MAX_QUEUE,
    SERVE_MAX_REQUEST_COST,
    SERVE_TIMEOUT,
)
from ..outputs import MODELS_DIR
from .group import _Number, cli, echo, no_ngram_option


@cli.command()
@click.option(
    "-m",
    "--model",
    "model_paths",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A model file to serve, by its name without .keras; repeatable.  "
    "[default: every .keras in models/]",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 lets other machines in (set --api-key).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port to listen on (0: any free one).",
)
@click.option(
    "--api-key",
    envvar="TEXTGEN_API_KEY",
    help="Require 'Authorization: Bearer KEY' on /v1/ requests.  "
    "[default: $TEXTGEN_API_KEY, else none]",
)
@click.option(
    "--max-batch",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Most rows each model generates together; more requests wait.",
)
@click.option(
    "--max-queue",
    type=click.IntRange(min=1),
    default=SERVE_MAX_QUEUE,
    show_default=True,
    help="Most requests one model holds waiting for room in its batch; "
    "more get 429 (Retry-After) at once.",
)
@click.option(
    "--timeout",
    type=_Number(0, 7 * 24 * 3600, min_open=True),
    default=SERVE_TIMEOUT,
    show_default=True,
    help="Seconds a request may take; a longer one ends (504, or an error "
    "event when streamed) and frees its rows.",
)
@click.option(
    "--max-request-cost",
    type=click.IntRange(min=1, max=2**40),
    default=SERVE_MAX_REQUEST_COST,
    show_default=True,
    help="Most one request may ask for: its completions x their tokens (prompt "
    "plus max_tokens) x (1 + logprobs); a larger one gets 400 at once.",
)
@click.option(
    "--max-prompt-tokens",
    type=click.IntRange(min=1, max=2**24),
    default=SERVE_MAX_PROMPT_TOKENS,
    show_default=True,
    help="Most tokens one prompt may have (words, or characters for a "
    "character model); a longer one gets 413.",
)
@click.option(
    "--metrics-open",
    is_flag=True,
    help="With --api-key, serve /metrics without the key too.  [default: "
    "behind the key when there is one]",
)
@click.option(
    "--no-ui",
    is_flag=True,
    help="Do not serve the playground page at /.  [default: serve it]",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Most open connections (fewer if the open-file limit is lower); "
    "beyond it the oldest idle one is closed.",
)
@click.option(
    "--head-timeout",
    type=_Number(0, 3600, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds a connection has to send a request's head (its method, path "
    "and headers); a slower or idle one is closed.",
)
@no_ngram_option
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="Threads for the matrix arithmetic.  [default: $OPENBLAS_NUM_THREADS, "
    "else one less than the CPU cores: one is left for HTTP]",
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every request on stderr.",
)
def serve(
    model_paths: tuple[str, ...],
    host: str,
    port: int,
    api_key: str | None,
    max_batch: int,
    max_queue: int,
    timeout: float,
    max_request_cost: int,
    max_prompt_tokens: int,
    metrics_open: bool,
    no_ui: bool,
    max_connections: int,
    head_timeout: float,
    no_ngram: bool,
    threads: int | None,
    access_log: bool,
) -> None:
    """Serve models over HTTP with the OpenAI completions API.

    \b
      textgen serve                        # every model in models/, port 8000
      curl localhost:8000/v1/completions -H 'Content-Type: application/json' \\
        -d '{"model": "corpus", "prompt": "call me", "max_tokens": 20}'
    """
    _set_threads(threads)
    try:
        import uvicorn

        from ..serving.app import api_key_bytes, create_app
    except ImportError as err:
        raise click.ClickException(
            f"textgen serve needs the serve extra ({err.name} is missing): "
            "pip install 'textgen[serve]'"
        ) from None
    if api_key is not None:
        try:
            api_key_bytes(api_key)
        except TextgenError as err:
            raise click.UsageError(f"--api-key: {err}") from None
    models = _read_models(model_paths)
    try:
        listening = socket.create_server((host, port))
        # Accepted connections inherit this: without it a response's head
        # and body can wait 40 ms on the client's delayed acknowledgement.
        listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as err:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {err.strerror or err} "
            "(pick another --port or --host)"
        ) from None
    address, bound = listening.getsockname()[:2]
    app = create_app(
        models,
        api_key=api_key,
        max_rows=max_batch,
        ngram=not no_ngram,
        max_queue=max_queue,
        timeout=timeout,
        max_cost=max_request_cost,
        max_prompt_tokens=max_prompt_tokens,
        metrics_open=metrics_open,
        ui=not no_ui,
    )
    shown = f"[{address}]" if ":" in address else address
    for name, model in models.items():
        echo(f"model {name!r}  ({model.path})", err=True)
    echo(
        f"serving on http://{shown}:{bound}/v1 "
        f"({'API key required' if api_key else 'no API key'}; Ctrl-C stops)",
        err=True,
    )
    if not no_ui:
        echo(f"playground: http://{shown}:{bound}/", err=True)
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        echo(
            f"warning: listening on {host} with no --api-key: anyone who can "
            "reach this machine can use the models",
            err=True,
        )
    from ..serving.connections import (
        ACCEPT_BATCH,
        Server,
        connection_limit,
        guarded_protocol,
    )

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=access_log,
        timeout_graceful_shutdown=30,
        lifespan="on",
        http=guarded_protocol(connection_limit(max_connections), head_timeout),
        backlog=ACCEPT_BATCH,
    )
    # uvicorn raises Ctrl-C again once it has shut down: here that is the end.
    with contextlib.suppress(KeyboardInterrupt):
        Server(config).run(sockets=[listening])
    echo("stopped", err=True)


def _read_models(model_paths: tuple[str, ...]) -> dict[str, Any]:
    """The models to serve, by name: those given (any that cannot be read is
    an error), else every model in models/ (one that cannot be read is
    skipped with a warning: a folder of models still serves the good ones)."""
    from ..model.file import model_files, read_model

    paths = [Path(p) for p in model_paths] or model_files(MODELS_DIR)
    if not paths:
        raise click.ClickException(
            f"no models to serve: {MODELS_DIR}/ has no .keras file "
            "(train one, or pass -m PATH)"
        )
    models: dict[str, Any] = {}
    for path in paths:
        name = path.name.removesuffix(".keras")
        if name in models:
            raise click.UsageError(
                f"two models are named {name!r}: {models[name].path} and {path} "
                "(rename one; a model is asked for by its file name)"
            )
        try:
            models[name] = read_model(path)
        except TextgenError as err:
            if model_paths:
                raise click.ClickException(str(err)) from None
            echo(f"warning: skipped {path}: {err}", err=True)
    if not models:
        raise click.ClickException(
            f"no models to serve: none of the .keras files in {MODELS_DIR}/ "
            "could be read (see above)"
        )
    return models


def _set_threads(threads: int | None) -> None:
    """How many threads NumPy's BLAS uses (read when NumPy is first imported).

    A BLAS thread that waits for work spins: with as many of them as cores,
    the HTTP side starves under load (on 2 cores, 32 clients got a third of
    the words per second with 2 threads than with 1: benchmarks/serve.py).
    """
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    if threads is None:
        given = os.environ.get("OPENBLAS_NUM_THREADS")
        threads = int(given) if given and given.isdigit() else None
    if threads is None:
        threads = max(1, (os.cpu_count() or 2) - 1)
    for name in names:
        os.environ[name] = str(threads)
