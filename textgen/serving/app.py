"""`textgen serve`: models behind an OpenAI-compatible HTTP API.

`create_app` builds a Starlette application serving

- `POST /v1/completions`: the OpenAI completions API (`model`, `prompt`,
  `max_tokens`, `temperature`, `top_p`, `n`, `stop`, `seed`, `stream`, `echo`,
  `logprobs`, `stream_options.include_usage`) plus textgen's own sampling
  controls (`top_k`, `min_p`, `repetition_penalty`, `repeat_window`,
  `no_repeat_ngram`, `until`, `novel`, `max_tries`);
- `GET /v1/models`, `GET /v1/models/{name}`: the loaded models;
- `GET /health`: liveness, and how busy each model's batch is;
- `GET /metrics`: Prometheus's text format (`serving/monitoring.py`);
- `GET /`: the playground, a page over this API (`playground/`), unless
  `ui` is off.

Each model has one `batching.Engine`: requests join its running batch at the
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
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import Cancelled, TextgenError, TimedOut
from ..inference.generate import MAX_SEED_CHARS, Generator, Sample
from ..inference.logprobs import Choice, RowLogprobs, prompt_choices
from ..inference.request import MAX_TOP, UNTIL, GenerationRequest
from ..inference.sampling import SamplingSettings
from ..model.config import (
    SERVE_MAX_QUEUE,
    SERVE_MAX_REQUEST_COST,
    SERVE_TIMEOUT,
    fresh_seed,
)
from .engine import Engine, Job
from .monitoring import ServerMetrics

_log = logging.getLogger("uvicorn.error")  # the server's own log: stderr
MAX_BODY_BYTES = 1 << 20  # a larger body is refused (413)
BODY_SECONDS = 30  # a body slower than this to arrive is refused (408)
MAX_TOKENS = 4096  # most words one choice may ask for
MAX_ROWS_PER_REQUEST = 256  # prompts x n
MAX_STOPS = 16
COUNT_CAP = 1 << 31  # a larger top_k, repeat_window or no_repeat_ngram: the same
DEFAULT_MAX_TOKENS = GenerationRequest.length  # as `textgen generate -n`
DEFAULT_TEMPERATURE = 0.8  # as `textgen generate -t`
# OpenAI parameters textgen cannot honour: refused unless left at their
# do-nothing value, so no client believes it got what it asked for.
UNSUPPORTED = {
    "best_of": (None, 1),
    "suffix": (None, ""),
    "logit_bias": (None, {}),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
}


def _dumps(content: Any) -> str:
    """A JSON body or event: ASCII with escapes (so any string the API
    accepts, a lone surrogate included, can be sent back) and never a NaN
    or an infinity, which JSON has no word for.

    Raises:
        ApiError: 500, a value is not a number (nothing is sent).
    """
    try:
        return json.dumps(content, allow_nan=False, separators=(",", ":"))
    except ValueError:
        raise ApiError(
            500,
            "the model gave a value that is not a number; its file may be "
            "damaged: check it with `textgen evaluate`",
            code="not_a_number",
        ) from None


class _Json(JSONResponse):
    """`JSONResponse`, rendered by `_dumps`."""

    def render(self, content: Any) -> bytes:
        return _dumps(content).encode("ascii")


class ApiError(Exception):
    """A request that cannot be served: its HTTP status and one line."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param
        self.headers = headers
        self.code = code or {
            400: "invalid_request_error",
            401: "invalid_api_key",
            404: "model_not_found",
            413: "request_too_large",
            429: "rate_limit_exceeded",
            504: "timeout",
        }.get(status, "error")

    def response(self) -> JSONResponse:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return _Json(
            {
                "error": {
                    "message": self.message,
                    "type": kind,
                    "param": self.param,
                    "code": self.code,
                }
            },
            status_code=self.status,
            headers=self.headers,
        )


@dataclass
class Served:
    """One loaded model: its name, what `/v1/models` says, and its engine."""

    name: str
    model: Any  # a `modelfile.ModelFile`
    generator: Generator
    engine: Engine
    created: int
    reading: int = 0  # requests whose prompts are being read (not queued yet)
    # One request's prompts are read (and scored) at a time: side by side
    # they contend for the interpreter and each takes several times longer
    # (five 10,000-character prompts scored at once: 8.5 s, past a 5 s
    # --timeout, against ~1 s each alone).
    reading_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def queued(self) -> int:
        """Requests accepted and not yet generating: reading or waiting."""
        return self.reading + self.engine.waiting

    def card(self) -> dict[str, Any]:
        config = self.model.model_config
        settings = self.model.tokenizer_settings
        items = (self.model.record or {}).get("items") or {}
        return {
            "id": self.name,
            "object": "model",
            "created": self.created,
            "owned_by": "textgen",
            "textgen": {
                "cell": config.cell,
                "layers": config.layers,
                "units": config.units,
                "parameters": config.parameter_count(),
                "vocabulary": len(self.model.vocabulary),
                "level": settings.level,
                "documents": settings.documents,
                "training_items": items.get("count", 0),
            },
        }


@dataclass(frozen=True)
class Completion:
    """A checked `/v1/completions` request."""

    served: Served
    prompts: list[str]
    n: int
    sampling: SamplingSettings
    request: GenerationRequest  # with its random seed set
    stream: bool
    echo: bool
    include_usage: bool
    deadline: float | None = None  # `time.monotonic()` it must be done by


def create_app(
    models: Mapping[str, Any],
    api_key: str | None = None,
    max_rows: int | None = None,
    ngram: bool = True,
    max_queue: int = SERVE_MAX_QUEUE,
    timeout: float | None = SERVE_TIMEOUT,
    max_cost: int = SERVE_MAX_REQUEST_COST,
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
        metrics_open: `/metrics` needs no key even with `api_key` (it is
            open anyway without one).
        ui: serve the playground page at `/` (it uses the API like any
            client: with `api_key`, its user types the key).
    """
    key = None if api_key is None else api_key_bytes(api_key)
    served = _serve(models, max_rows, ngram)
    metrics = ServerMetrics(served)

    def authorised(request: Request) -> None:
        _check_key(request, key)

    async def health(request: Request) -> Response:
        return _Json(_health(served))

    async def list_models(request: Request) -> Response:
        authorised(request)
        return _Json({"object": "list", "data": [s.card() for s in served.values()]})

    async def one_model(request: Request) -> Response:
        authorised(request)
        return _Json(_served(served, request.path_params["name"]).card())

    async def completions(request: Request) -> Response:
        arrived, name, status = time.monotonic(), "", 500
        try:
            authorised(request)
            body = await _read_body(request)
            name = _label(body, served)  # for the metrics, even if it is bad
            completion = _parse(body, served, max_cost)
            _admit(completion.served, max_queue)
            if timeout is not None:
                deadline = arrived + timeout
                completion = dataclasses.replace(completion, deadline=deadline)
            response = await _answer(completion, request)
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

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        # After the last connection closed (uvicorn waits for them).
        for s in served.values():
            s.engine.close(timeout=10)

    routes = [
        *(_playground_routes() if ui else []),
        Route("/health", _guarded(health), methods=["GET"]),
        Route("/v1/models", _guarded(list_models), methods=["GET"]),
        Route("/v1/models/{name:path}", _guarded(one_model), methods=["GET"]),
        Route("/v1/completions", _guarded(completions), methods=["POST"]),
        Route("/metrics", _guarded(metrics_page), methods=["GET"]),
    ]
    return _application(routes, lifespan)


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


def _label(body: Any, served: Mapping[str, Served]) -> str:
    """The model a request is for, as the metrics label it ("" if none)."""
    name = body.get("model") if isinstance(body, dict) else None
    if name is None and len(served) == 1:
        return next(iter(served))
    return name if isinstance(name, str) and name in served else ""


def _serve(
    models: Mapping[str, Any], max_rows: int | None, ngram: bool
) -> dict[str, Served]:
    """Each model with its generator and its batching engine."""
    served: dict[str, Served] = {}
    for name, model in models.items():
        generator = Generator(model, ngram=ngram)
        engine = Engine(generator, **({"max_rows": max_rows} if max_rows else {}))
        path = getattr(model, "path", None)
        created = int(path.stat().st_mtime) if path and path.exists() else 0
        served[name] = Served(name, model, generator, engine, created)
    return served


def _health(served: Mapping[str, Served]) -> dict[str, Any]:
    """`/health`: up, and how busy each model's engine is."""
    return {
        "status": "ok",
        "models": {
            name: {
                "active_rows": s.engine.active_rows,
                "waiting_requests": s.engine.waiting,
                "finished": s.engine.finished,
                "cancelled": s.engine.cancelled,
                "timed_out": s.engine.timed_out,
            }
            for name, s in served.items()
        },
    }


async def _answer(completion: Completion, request: Request) -> Response:
    """The completion, streamed (server-sent events) or whole."""
    if completion.stream:
        return StreamingResponse(
            _stream(completion, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    return await _complete(completion, request)


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
        "(try POST /v1/completions, GET /v1/models, GET /health)",
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


def _listed(names: list[str], most: int = 10) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most:,} more" if len(names) > most else "")


def _served(served: Mapping[str, Served], name: Any) -> Served:
    if name not in served:
        known = _listed(sorted(served)) or "none"
        raise ApiError(
            404, f"model {name!r} is not loaded here (loaded: {known})", "model"
        )
    return served[name]


async def _read_body(request: Request) -> Any:
    """The JSON body, read at most `MAX_BODY_BYTES` far."""
    too_large = ApiError(
        413, f"the request body is over {MAX_BODY_BYTES // 1024} KiB", code="too_large"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()

    async def collect() -> None:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_BODY_BYTES:
                raise too_large

    try:
        await asyncio.wait_for(collect(), BODY_SECONDS)
    except ClientDisconnect:  # gone mid-body: nobody to answer, nothing to log
        raise ApiError(499, "the client went away", code="client_closed") from None
    except asyncio.TimeoutError:
        raise ApiError(
            408,
            f"the request body took over {BODY_SECONDS} s to arrive",
            code="timeout",
        ) from None
    try:
        return json.loads(bytes(body))
    except (ValueError, RecursionError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ApiError(400, f"the body is not valid JSON: {reason}") from None


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _integer(
    body: dict, name: str, default: int, low: int, high: int | None = None
) -> int:
    """An integer field from `low` to `high`; with no `high`, any larger value
    means the same as `COUNT_CAP` (a top_k beyond the vocabulary keeps every
    word, a window beyond the text looks at all of it)."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{name} must be an integer, not {_kind(value)}", name)
    if high is None:
        if value < low:
            raise ApiError(
                400, f"{name} must be {low} or more, not {_shown(value)}", name
            )
        return min(value, COUNT_CAP)
    if not low <= value <= high:
        raise ApiError(
            400, f"{name} must be from {low} to {high:,}, not {_shown(value)}", name
        )
    return value


def _shown(value: float) -> str:
    """A number as a message shows it: short, however large."""
    if isinstance(value, int) and abs(value) < 10**15:
        return f"{value:,}"
    return f"{value:.3g}"


def _number(body: dict, name: str, default: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, f"{name} must be a number, not {_kind(value)}", name)
    if not math.isfinite(value):
        raise ApiError(400, f"{name} must be a finite number", name)
    return float(value)


def _flag(body: dict, name: str, default: bool | None) -> bool | None:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false, not {_kind(value)}", name)
    return value


def _strings(body: dict, name: str, most: int) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    wanted = f"{name} must be a string or a list of strings"
    if not isinstance(value, list):
        raise ApiError(400, f"{wanted}, not {_kind(value)}", name)
    if not all(isinstance(v, str) for v in value):
        raise ApiError(400, f"{wanted} (token ids are not supported)", name)
    if len(value) > most:
        raise ApiError(400, f"{name} may hold at most {most} strings", name)
    return value


def _parse(
    body: Any, served: Mapping[str, Served], max_cost: int = SERVE_MAX_REQUEST_COST
) -> Completion:
    """Check a completions request; raises `ApiError` (4xx) with one line."""
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object, not {_kind(body)}")
    model = _model_asked(body, served)
    for key, neutral in UNSUPPORTED.items():
        if key in body and body[key] not in neutral:
            raise ApiError(400, f"{key} is not supported by textgen", key)
    prompts, n = _prompts(body)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ApiError(
            400,
            f"stream_options must be an object, not {_kind(options)}",
            "stream_options",
        )
    request = _request(body, model)
    _check_cost(prompts, n, request, max_cost)
    return Completion(
        served=model,
        prompts=prompts,
        n=n,
        sampling=_sampling(body),
        request=request,
        stream=bool(_flag(body, "stream", False)),
        echo=bool(_flag(body, "echo", False)),
        include_usage=bool(_flag(options or {}, "include_usage", False)),
    )


def _model_asked(body: dict, served: Mapping[str, Served]) -> Served:
    """The model a request names (with one model served, it may name none)."""
    name = body.get("model")
    if name is None and len(served) == 1:
        name = next(iter(served))
    if name is None:
        raise ApiError(
            400,
            f"model is required: this server has {len(served)} "
            f"({_listed(sorted(served))})",
            "model",
        )
    if not isinstance(name, str):
        raise ApiError(400, f"model must be a string, not {_kind(name)}", "model")
    return _served(served, name)


def _prompts(body: dict) -> tuple[list[str], int]:
    """The prompts (none: one empty prompt) and `n`, within the limits."""
    if body.get("prompt") == []:
        raise ApiError(400, "prompt must not be an empty list", "prompt")
    prompts = _strings(body, "prompt", MAX_ROWS_PER_REQUEST) or [""]
    for prompt in prompts:
        if len(prompt) > MAX_SEED_CHARS:
            raise ApiError(
                413,
                f"a prompt has {len(prompt):,} characters; the most is "
                f"{MAX_SEED_CHARS:,} (the model reads no further back)",
                "prompt",
                "prompt_too_long",
            )
    n = _integer(body, "n", 1, 1, MAX_ROWS_PER_REQUEST)
    if len(prompts) * n > MAX_ROWS_PER_REQUEST:
        raise ApiError(
            400,
            f"{len(prompts)} prompts x n={n} is over {MAX_ROWS_PER_REQUEST} "
            "completions in one request",
            "n",
        )
    return prompts, n


def _check_cost(
    prompts: list[str], n: int, request: GenerationRequest, max_cost: int
) -> None:
    """Refuse (400, before any work) a request over `max_cost`: rows x
    tokens x (1 + logprobs), a prompt's characters counting as its tokens."""
    tokens = sum(len(prompt) + request.length for prompt in prompts)
    alternatives = 1 + (request.logprobs or 0)
    cost = n * tokens * alternatives
    if cost > max_cost:
        raise ApiError(
            400,
            "the request is too large: its completions x their tokens (prompt "
            f"characters plus max_tokens) x (1 + logprobs) is {cost:,}, over the "
            f"server's limit of {max_cost:,} (--max-request-cost); ask for fewer "
            "completions, "
            "tokens or logprobs, or split it",
            "max_tokens",
            "request_too_large",
        )


def _sampling(body: dict) -> SamplingSettings:
    """The sampling controls of a request."""
    try:
        return SamplingSettings(
            temperature=_number(body, "temperature", DEFAULT_TEMPERATURE),
            top_k=_integer(body, "top_k", 0, 0),
            top_p=_number(body, "top_p", 1.0),
            min_p=_number(body, "min_p", 0.0),
            repetition_penalty=_number(body, "repetition_penalty", 1.0),
            repeat_window=_integer(body, "repeat_window", 64, 1),
            no_repeat_ngram=_integer(body, "no_repeat_ngram", 0, 0),
        )
    except TextgenError as err:
        raise ApiError(400, str(err)) from None


def _request(body: dict, model: Served) -> GenerationRequest:
    """The length, stop strings, `until`, `novel`, seed and `logprobs` of a
    request."""
    length = _integer(body, "max_tokens", DEFAULT_MAX_TOKENS, 0, MAX_TOKENS)
    if length == 0 and not _flag(body, "echo", False):
        raise ApiError(
            400,
            "max_tokens must be 1 or more (0 only with echo, to score the prompt)",
            "max_tokens",
        )
    stop = tuple(s for s in _strings(body, "stop", MAX_STOPS) if s)
    until = body.get("until")
    if until not in (None, *UNTIL):
        raise ApiError(400, 'until must be "sentence", "paragraph" or null', "until")
    items = model.model.tokenizer_settings.items
    novel = _flag(body, "novel", None)
    if novel and not items:
        raise ApiError(
            400,
            "novel needs a model trained with --documents lines or paragraphs",
            "novel",
        )
    novel = items if novel is None else novel
    if body.get("max_tries") is not None and not novel:
        raise ApiError(
            400,
            "max_tries is for novel, which needs a model trained with "
            "--documents lines or paragraphs",
            "max_tries",
        )
    random_seed = (
        fresh_seed()
        if body.get("seed") is None
        else _integer(body, "seed", 0, 0, 2**32 - 1)
    )
    return GenerationRequest(
        length=length,
        stop=stop,
        until=until,
        novel=novel,
        max_tries=_integer(body, "max_tries", GenerationRequest.max_tries, 0, 1000),
        random_seed=random_seed,
        logprobs=None
        if body.get("logprobs") is None
        else _integer(body, "logprobs", 0, 0, MAX_TOP),
    )


def _finish_reason(sample: Sample) -> str:
    return "length" if sample.stopped_by == "length" else "stop"


class _Run:
    """One completion request on its model's engine, seen from the event loop."""

    def __init__(self, completion: Completion, streaming: bool) -> None:
        self.completion = completion
        self.streaming = streaming
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future = self.loop.create_future()
        self.pieces: asyncio.Queue = asyncio.Queue()
        self.rows = len(completion.prompts) * completion.n
        self.sent = [0] * self.rows
        self.skip = [0] * self.rows
        self.prompt_tokens = 0
        # With `logprobs`: each row's, built as its tokens come (`_submit`).
        self.logprobs: list[RowLogprobs] | None = None
        self.finished: dict[int, dict] = {}  # finished logprobs, by object
        self.texts: list[str] = []  # each prompt's text, as the model reads it
        wants = completion.request.logprobs is not None
        self.job = Job(
            seeds=[p for p in completion.prompts for _ in range(completion.n)],
            samplings=[completion.sampling] * self.rows,
            request=completion.request,
            on_done=self._done,
            on_text=[self._piece(row) for row in range(self.rows)]
            if streaming
            else None,
            on_choice=[self._choice(row) for row in range(self.rows)]
            if streaming and wants
            else None,
            deadline=completion.deadline,
        )

    def _check(self) -> None:
        """Raise if the client has gone or the deadline has passed (called
        between prompts and while scoring them: `--timeout` holds there too)."""
        if self.job.cancelled:
            raise Cancelled("cancelled while reading the prompts")
        deadline = self.completion.deadline
        if deadline is not None and time.monotonic() > deadline:
            raise TimedOut(
                "the request ran past the server's time limit (--timeout) while "
                "its prompts were read; send shorter or fewer prompts"
            )

    def _submit(self) -> None:  # a worker thread: tokenizing can take a while
        try:
            with self.completion.served.reading_lock:
                self._read_prompts()
        except Cancelled:
            self.completion.served.engine.count("cancelled")
            raise
        except TimedOut:
            self.completion.served.engine.count("timed_out")
            raise

    def _read_prompts(self) -> None:
        completion = self.completion
        generator, n = completion.served.generator, completion.n
        score_only = completion.request.length == 0  # (with echo: see _request)
        words = []
        for prompt in completion.prompts:
            self._check()
            words.append(generator.seed_words(prompt))
        self.prompt_tokens = sum(len(w) for w in words)
        self.texts = [generator.join(w) for w in words]
        # Characters of each row's text that are its prompt (not sent back
        # unless `echo`).
        if not completion.echo:
            self.skip = [len(text) for text in self.texts for _ in range(n)]
        if completion.request.logprobs is not None:
            self.logprobs = []
            for i, (prompt, w) in enumerate(
                zip(completion.prompts, words, strict=True)
            ):
                self._check()
                self.logprobs += self._row_logprobs(i, prompt, w)
        self._check()
        if score_only:  # echo: the prompts scored, no more
            self._score_only()
            return
        completion.served.engine.submit(self.job)

    def _row_logprobs(self, i: int, prompt: str, words: list[str]) -> list:
        """The `RowLogprobs` of prompt `i`'s rows: its tokens scored if echoed.
        Scored alone (`max_tokens` 0), a prompt is read as `textgen evaluate`
        reads a text (an item model's line breaks end its items), and its n
        rows, all the same, share one object, finished once."""
        completion, generator = self.completion, self.completion.served.generator
        top, n = completion.request.logprobs, completion.n
        score_only = completion.request.length == 0
        shown = scored = words
        if score_only:
            shown, scored = generator.echo_words(prompt, words)
        choices_ = (
            prompt_choices(generator, scored, top, self._check)
            if completion.echo
            else None
        )
        self._check()
        if score_only:
            self.texts[i] = generator.join(shown)
            return [RowLogprobs(generator.tokenizer, shown, choices_)] * n
        return [RowLogprobs(generator.tokenizer, words, choices_) for _ in range(n)]

    def _score_only(self) -> None:
        """Answer with the (echoed) prompts alone, generating nothing."""
        completion = self.completion
        samples = [
            Sample(
                seed=prompt,
                text=text,
                words=[],
                sampling=completion.sampling,
                random_seed=completion.request.random_seed,
                stopped_by="length",
                choices=[],
            )
            for prompt, text in zip(completion.prompts, self.texts, strict=True)
            for _ in range(completion.n)
        ]
        if self.streaming:
            given: dict[int, Any] = {}  # rows of one prompt share their logprobs
            for row, sample in enumerate(samples):
                shared = self.logprobs[row] if self.logprobs else None
                if shared is None:
                    self._piece(row)(sample.text)
                    continue
                if id(shared) not in given:
                    given[id(shared)] = shared.extend(sample.text)
                self.loop.call_soon_threadsafe(
                    self.pieces.put_nowait, (row, sample.text, given[id(shared)])
                )
        self._done(samples, None)

    def _piece(self, row: int) -> Any:
        def passed(text: str) -> None:  # the worker thread
            start = max(self.skip[row] - self.sent[row], 0)
            self.sent[row] += len(text)
            logprobs = self.logprobs[row].extend(text) if self.logprobs else None
            if text[start:] or logprobs:
                self.loop.call_soon_threadsafe(
                    self.pieces.put_nowait, (row, text[start:], logprobs)
                )

        return passed

    def _choice(self, row: int) -> Any:
        def taken(choice: Choice) -> None:  # the worker thread
            if self.logprobs:
                self.logprobs[row].add(choice)

        return taken

    def _done(self, samples: list[Sample] | None, error: BaseException | None) -> None:
        def settle() -> None:
            if self.done.done():
                return
            if error is not None:
                self.done.set_exception(error)
            else:
                self.done.set_result(samples)
            self.pieces.put_nowait(None)

        self.loop.call_soon_threadsafe(settle)

    async def start(self) -> None:
        """Read the prompts (in a worker thread) and join the batch."""
        served = self.completion.served
        served.reading += 1  # counted in its queue until it joins the engine's
        try:
            await asyncio.to_thread(self._submit)
        finally:
            served.reading -= 1

    def cancel(self) -> None:
        """The client went away: stop reading its prompts, or drop its rows."""
        self.completion.served.engine.cancel(self.job)

    def text(self, row: int, sample: Sample) -> str:
        return sample.text[self.skip[row] :]

    def rest_of_logprobs(self, row: int, sample: Sample) -> dict | None:
        """The row's `logprobs` not sent yet (all of them, unstreamed); rows
        that share theirs (a scored prompt's n rows) finish them once."""
        if self.logprobs is None:
            return None
        logprobs = self.logprobs[row]
        if id(logprobs) not in self.finished:
            self.finished[id(logprobs)] = logprobs.finish(
                sample.text, sample.choices or ()
            )
        return self.finished[id(logprobs)]

    def usage(self, samples: list[Sample]) -> dict[str, int]:
        completion = sum(len(sample.words) for sample in samples)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }


def _head(completion: Completion, identifier: str) -> dict[str, Any]:
    return {
        "id": identifier,
        "object": "text_completion",
        "created": int(time.time()),
        "model": completion.served.name,
    }


async def _complete(completion: Completion, request: Request) -> Response:
    run = _Run(completion, streaming=False)
    started = asyncio.ensure_future(run.start())
    # Seen here or not, what reading the prompts raised must not be logged
    # as "never retrieved" after the client has gone.
    started.add_done_callback(lambda f: f.cancelled() or f.exception())
    try:
        while True:  # wait, watching for the client to go away
            await asyncio.wait({started, run.done}, timeout=0.25)
            if started.done():
                started.result()  # raises what reading the prompts raised
            if run.done.done():
                break
            if await request.is_disconnected():
                run.cancel()
                return Response(status_code=499)
        samples = run.done.result()
    except asyncio.CancelledError:
        run.cancel()
        raise
    except TimedOut as err:
        raise ApiError(504, str(err)) from None
    choices = [
        {
            "text": run.text(row, sample),
            "index": row,
            "logprobs": run.rest_of_logprobs(row, sample),
            "finish_reason": _finish_reason(sample),
            "stopped_by": sample.stopped_by,
            "rejected_draws": sample.rejected,
        }
        for row, sample in enumerate(samples)
    ]
    return _Json(
        {
            **_head(completion, f"cmpl-{uuid.uuid4().hex}"),
            "choices": choices,
            "usage": run.usage(samples),
            "random_seed": completion.request.random_seed,
        }
    )


async def _stream(completion: Completion, request: Request) -> AsyncIterator[str]:
    """Server-sent events as OpenAI sends them: one chunk per piece of text,
    a last chunk per choice with its finish reason, then `data: [DONE]`; what
    ends a request early is an error event."""
    run = _Run(completion, streaming=True)
    try:
        async for event in _events(completion, run):
            yield event
    except Exception as err:  # said in the stream: its 200 head has gone
        message = err.message if isinstance(err, ApiError) else str(err)
        yield f"data: {_dumps({'error': {'message': message}})}\n\n"
    finally:
        if not run.done.done():
            run.cancel()


async def _events(completion: Completion, run: _Run) -> AsyncIterator[str]:
    head = _head(completion, f"cmpl-{uuid.uuid4().hex}")

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        return f"data: {_dumps({**head, 'choices': choices, **extra})}\n\n"

    await run.start()
    while (piece := await run.pieces.get()) is not None:
        row, text, logprobs = piece
        yield event(
            [{"text": text, "index": row, "logprobs": logprobs, "finish_reason": None}]
        )
    samples = run.done.result()
    yield event(
        [
            {
                "text": "",
                "index": row,
                "logprobs": run.rest_of_logprobs(row, sample),
                "finish_reason": _finish_reason(sample),
            }
            for row, sample in enumerate(samples)
        ]
    )
    if completion.include_usage:
        yield event([], usage=run.usage(samples))
    yield "data: [DONE]\n\n"
