"""`textgen serve`: models behind an OpenAI-compatible HTTP API.

`create_app` builds a Starlette application serving

- `POST /v1/completions`: the OpenAI completions API (`model`, `prompt`,
  `max_tokens`, `temperature`, `top_p`, `n`, `stop`, `seed`, `stream`, `echo`,
  `logprobs`, `stream_options.include_usage`) plus textgen's own sampling
  controls (`top_k`, `min_p`, `repetition_penalty`, `repeat_window`,
  `no_repeat_ngram`, `until`, `novel`, `max_tries`);
- `POST /v1/chat/completions`: OpenAI's chat API, the messages made one
  prompt by a plain template (`chat.py`);
- `GET /v1/models`, `GET /v1/models/{name}`: the loaded models;
- `GET /tokenizer_info`, `POST /tokenize`, `POST /detokenize`: the
  models' tokens as ids, in vLLM's shapes (`prompts.py`);
- `GET /v1/settings`: every sampling and generation field a request may
  give, with its default, bounds and help (`protocol.settings`);
- `GET /health`: liveness, and how busy each model's batch is;
- `GET /metrics`: Prometheus's text format (`serving/monitoring.py`);
- `GET /`: the playground, a page over this API (`playground/`), unless
  `ui` is off.

The layers: `protocol.py` (the request checked, the answers' shapes),
`runner.py` (one request run on its engine, whole or streamed), `served.py`
(the loaded models), `engine.py` (continuous batching) and this module (the
routes, the API key, the error answers, the playground's files).

Each model has one `engine.Engine`: requests join its running batch at the
next word; beyond `max_queue` waiting requests a request gets 429 at once,
and one past `timeout` ends (504) and frees its rows. Everything a request
can get wrong is a 4xx with one line in the OpenAI error shape
(`{"error": {"message", "type", "param", "code"}}`); nothing a request sends
can produce a traceback. Starlette, uvicorn and prometheus_client come with
the `serve` extra (`pip install 'textgen[serve]'`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import TextgenError
from ..inference.contract import kind_of
from ..model.config import (
    SERVE_MAX_PROMPT_TOKENS,
    SERVE_MAX_QUEUE,
    SERVE_MAX_REQUEST_COST,
    SERVE_TIMEOUT,
)
from .chat import parse_chat
from .monitoring import ServerMetrics
from .prompts import PromptError, detokenize_ids, tokenize, tokenizer_info
from .protocol import (
    ApiError,
    Json,
    find_model,
    model_asked,
    parse_completion,
    read_body,
    settings,
)
from .runner import answer
from .served import Served, health_report, metrics_label, serve_models

_log = logging.getLogger("uvicorn.error")  # the server's own log: stderr


def create_app(
    models: Mapping[str, Any],
    api_key: str | None = None,
    max_rows: int | None = None,
    ngram: bool = True,
    max_queue: int = SERVE_MAX_QUEUE,
    timeout: float | None = SERVE_TIMEOUT,
    max_cost: int = SERVE_MAX_REQUEST_COST,
    max_prompt_tokens: int = SERVE_MAX_PROMPT_TOKENS,
    metrics_open: bool = False,
    ui: bool = True,
) -> Starlette:
    """The application serving `models` (name -> `ModelFile` or `LanguageModel`).

    Args:
        models: the models, by the name clients ask for.
        api_key: when given, every `/v1/` request needs
            `Authorization: Bearer <api_key>` (401 otherwise).
        max_rows: rows each model's batch steps together (see `Engine`).
        ngram: mix in each model's n-gram memory (if it has one).
        max_queue: requests a model may hold waiting for room in its batch;
            beyond them a request gets 429 at once, with Retry-After.
        timeout: seconds a request may take (None: no limit), reading and
            scoring its prompts included; past them it ends (504, or an error
            event when streamed) and frees its rows.
        max_cost: the most one request may ask for (see
            `config.SERVE_MAX_REQUEST_COST`); more is refused (400) at once.
        max_prompt_tokens: most tokens one prompt may have (413 beyond).
        metrics_open: `/metrics` needs no key even with `api_key` (it is
            open anyway without one).
        ui: serve the playground page at `/` (it uses the API like any
            client: with `api_key`, its user types the key).
    """
    key = None if api_key is None else api_key_bytes(api_key)
    served = serve_models(models, max_rows, ngram)
    metrics = ServerMetrics(served)

    def authorised(request: Request) -> None:
        _check_key(request, key)

    async def health(request: Request) -> Response:
        return Json(health_report(served))

    async def list_models(request: Request) -> Response:
        authorised(request)
        return Json({"object": "list", "data": [s.card() for s in served.values()]})

    async def sampling_settings(request: Request) -> Response:
        authorised(request)
        return Json(settings())

    async def one_model(request: Request) -> Response:
        authorised(request)
        return Json(find_model(served, request.path_params["name"]).card())

    async def completions(request: Request) -> Response:
        arrived, name, status = time.monotonic(), "", 500
        try:
            authorised(request)
            body = await read_body(request)
            name = metrics_label(body, served)  # for the metrics, even if it is bad
            completion = PARSERS[request.url.path](
                body, served, max_cost=max_cost, max_prompt_tokens=max_prompt_tokens
            )
            _admit(completion.served, max_queue)
            if timeout is not None:
                deadline = arrived + timeout
                completion = dataclasses.replace(completion, deadline=deadline)
            response = await answer(completion, request)
            status = response.status_code
            return response
        except ApiError as error:
            status = error.status
            raise
        finally:
            metrics.observe(name, status, time.monotonic() - arrived)

    async def metrics_page(request: Request) -> Response:
        if not metrics_open:
            authorised(request)
        body, content_type = metrics.exposition()
        return Response(body, headers={"Content-Type": content_type})

    routes = [
        *(_playground_routes() if ui else []),
        Route("/health", _guarded(health), methods=["GET"]),
        Route("/v1/models", _guarded(list_models), methods=["GET"]),
        Route("/v1/models/{name:path}", _guarded(one_model), methods=["GET"]),
        Route("/v1/settings", _guarded(sampling_settings), methods=["GET"]),
        Route("/v1/completions", _guarded(completions), methods=["POST"]),
        Route("/v1/chat/completions", _guarded(completions), methods=["POST"]),
        *_tokenizer_routes(served, authorised, max_prompt_tokens),
        Route("/metrics", _guarded(metrics_page), methods=["GET"]),
    ]
    return _application(routes, _closing(served))


# The completions endpoints' parsers, by path.
PARSERS = {"/v1/completions": parse_completion, "/v1/chat/completions": parse_chat}


def _closing(served: Mapping[str, Served]) -> Any:
    """The application's lifespan: the engines close after the last
    connection (uvicorn waits for them)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for s in served.values():
            s.engine.close(timeout=10)

    return lifespan


def _tokenizer_routes(
    served: Mapping[str, Served],
    authorised: Callable[[Request], None],
    max_prompt_tokens: int,
) -> list[Route]:
    """`/tokenizer_info`, `/tokenize`, `/detokenize`: vLLM's routes, at the
    server's root, where lm-evaluation-harness's remote tokenizer looks for
    them (it names no model: with one served, none is needed)."""

    async def info(request: Request) -> Response:
        authorised(request)
        model = model_asked(dict(request.query_params), served)
        tokenizer = model.generator.tokenizer
        return Json(tokenizer_info(model.name, model.ids, tokenizer, max_prompt_tokens))

    def route(work: Callable[..., dict], field: str, *extra: Any) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            authorised(request)
            body = await read_body(request)
            if not isinstance(body, dict):
                raise ApiError(
                    400, f"the body must be a JSON object, not {kind_of(body)}"
                )
            model = model_asked(body, served)
            tokenizer = model.generator.tokenizer
            try:  # a megabyte of text takes a moment: not on the event loop
                found = await asyncio.to_thread(
                    work, tokenizer, model.ids, body, *extra
                )
                return Json(found)
            except PromptError as err:
                raise ApiError(400, str(err), field) from None

        return endpoint

    return [
        Route("/tokenizer_info", _guarded(info), methods=["GET"]),
        Route(
            "/tokenize",
            _guarded(route(tokenize, "prompt", max_prompt_tokens)),
            methods=["POST"],
        ),
        Route(
            "/detokenize", _guarded(route(detokenize_ids, "tokens")), methods=["POST"]
        ),
    ]


def _application(routes: list[Route], lifespan: Any) -> Starlette:
    """The Starlette application of `routes`, with textgen's error answers."""
    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    # "/metrics/" and the like are 404s: Starlette's redirect to the path
    # without the slash builds its Location from the client's Host header.
    app.router.redirect_slashes = False
    return app


# The playground's files (in the package), and the type each is served as.
PLAYGROUND = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/playground.css": ("playground.css", "text/css; charset=utf-8"),
    "/playground.js": ("playground.js", "text/javascript; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
_PAGE_HEADERS = {
    # Nothing but this server's own files and API; no framing elsewhere.
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def _playground_routes() -> list[Route]:
    """`GET` routes for the playground's page, style and script."""
    from importlib.resources import files

    folder = files(__package__) / "playground"
    routes = []
    for path, (name, media_type) in PLAYGROUND.items():
        content = (folder / name).read_bytes()

        async def page(
            request: Request, content: bytes = content, media_type: str = media_type
        ) -> Response:
            return Response(content, media_type=media_type, headers=_PAGE_HEADERS)

        routes.append(Route(path, _guarded(page), methods=["GET"]))
    return routes


def _admit(served: Served, max_queue: int) -> None:
    """Refuse (429, at once) a request when its model's queue is full."""
    if served.queued >= max_queue:
        raise ApiError(
            429,
            f"the server is busy: {served.queued:,} requests are waiting for "
            f"model {served.name!r}; try again in a moment",
            headers={"Retry-After": "1"},
        )


def _check_key(request: Request, key: bytes | None) -> None:
    """Refuse (401) a request without the server's API key, when it has one."""
    if key is None:
        return
    # Header values arrive as bytes decoded as Latin-1: encoding them back
    # gives the client's bytes, compared with the key's UTF-8 bytes.
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode("latin-1"), key
    ):
        raise ApiError(
            401,
            "missing or wrong API key: send the header "
            "'Authorization: Bearer KEY' with the server's --api-key",
        )


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error.response()


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    message = {
        404: f"no such endpoint: {request.method} {request.url.path} "
        "(try POST /v1/completions, POST /v1/chat/completions, GET /v1/models, "
        "POST /tokenize, GET /health)",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(error.status_code, str(error.detail))
    return ApiError(error.status_code, message, code="not_found").response()


async def _unexpected(request: Request, error: Exception) -> Response:
    return _internal_error(request, error).response()


Endpoint = Callable[[Request], Awaitable[Response]]


def _guarded(endpoint: Endpoint) -> Endpoint:
    """`endpoint`, with an unexpected exception answered as a 500 and logged
    as one line (Starlette's own handler would log it with a traceback)."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except (ApiError, HTTPException):
            raise
        except Exception as error:
            return _internal_error(request, error).response()

    return guarded


def _internal_error(request: Request, error: Exception) -> ApiError:
    first = str(error).splitlines()[0][:200] if str(error) else ""
    message = f"unexpected {type(error).__name__}: {first}"
    _log.error("%s %s: 500 %s", request.method, request.url.path, message)
    return ApiError(500, message, code="internal")


def api_key_bytes(api_key: str) -> bytes:
    """The API key as clients send it: its UTF-8 bytes.

    Raises:
        TextgenError: the key is empty or has characters UTF-8 cannot encode
            (bytes that were not UTF-8 in a command line or environment).
    """
    if not api_key:
        raise TextgenError("the API key is empty: give a key, or leave it out")
    try:
        return api_key.encode("utf-8")
    except UnicodeEncodeError:
        raise TextgenError(
            "the API key is not UTF-8 text (it came from bytes that are not); "
            "give a key of UTF-8 text"
        ) from None
