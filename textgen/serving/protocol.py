"""The wire format of `textgen serve`: OpenAI's completions API, as data.

What a request may say and what an answer looks like, apart from how either
is served: the JSON encoder (`dumps`), the error answer (`ApiError`, in
OpenAI's `{"error": {...}}` shape), the body read within its limits
(`read_body`), and the request checked into a `Completion`
(`parse_completion`).

The request is checked by a table, not field by field: its sampling and
generation fields are the generation contract's knobs
(`inference/contract.py`: `SamplingSettings`, `GenerationRequest`), under
OpenAI's names (`API_NAMES`), so their defaults, bounds and messages are the
library's and the command line's; the fields that are the server's own
(`n`, the flags, prompts and stop strings) are declared here. pydantic was
not used: it would declare every bound a second time, beside the contract
the library must hold without the `serve` extra, and its errors are lists
of nested locations, not one line naming the field.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from ..inference.contract import (
    GenerationRequest,
    Knob,
    SamplingSettings,
    SettingError,
    kind_of,
    knobs,
    resolve_novel,
    settings_card,
)
from ..inference.generate import Sample
from ..model.config import (
    SERVE_MAX_PROMPT_TOKENS,
    SERVE_MAX_REQUEST_COST,
    fresh_seed,
)

if TYPE_CHECKING:
    from .served import Served

MAX_BODY_BYTES = 1 << 20  # a larger body is refused (413)
BODY_SECONDS = 30  # a body slower than this to arrive is refused (408)
MAX_TOKENS = 4096  # most words one choice may ask for
MAX_ROWS_PER_REQUEST = 256  # prompts x n
MAX_STOPS = 16
# The contract's fields under the names OpenAI's API gives them.
API_NAMES = {"length": "max_tokens", "random_seed": "seed"}
# The request's own numbers (the rest are the contract's knobs).
N = Knob("Completions per prompt.", kind=int, low=1, high=MAX_ROWS_PER_REQUEST)
# This server's bound on `GenerationRequest.length` (the library has none).
MAX_TOKENS_KNOB = Knob("Most tokens to generate.", kind=int, low=0, high=MAX_TOKENS)
# OpenAI parameters textgen cannot honour: refused unless left at their
# do-nothing value, so no client believes it got what it asked for.
UNSUPPORTED = {
    "best_of": (None, 1),
    "suffix": (None, ""),
    "logit_bias": (None, {}),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
}


def dumps(content: Any) -> str:
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


class Json(JSONResponse):
    """`JSONResponse`, rendered by `dumps`."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("ascii")


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
        if status == 504 or code == "not_a_number":
            # The same request would end the same way: OpenAI's clients
            # retry a 5xx twice unless told not to (tripling the work).
            headers = {"x-should-retry": "false", **(headers or {})}
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
        return Json(
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


@dataclass(frozen=True)
class Completion:
    """A checked `/v1/completions` request."""

    served: Served
    # Text, token ids, or a `prompts.Prompt` already read (a chat's).
    prompts: list[Any]
    n: int
    sampling: SamplingSettings
    request: GenerationRequest  # with its random seed set
    stream: bool
    echo: bool
    include_usage: bool
    deadline: float | None = None  # `time.monotonic()` it must be done by
    max_prompt_tokens: int = SERVE_MAX_PROMPT_TOKENS
    max_cost: int = SERVE_MAX_REQUEST_COST
    # Rewrites the answer and events into another API's shapes (`chat.py`'s
    # `ChatShape`, called with the rows and `logprobs`); None: completions.
    shape: Any = None


def listed(names: list[str], most: int = 10) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most:,} more" if len(names) > most else "")


def find_model(served: Mapping[str, Served], name: Any) -> Served:
    if name not in served:
        known = listed(sorted(served)) or "none"
        raise ApiError(
            404, f"model {name!r} is not loaded here (loaded: {known})", "model"
        )
    return served[name]


async def read_body(request: Request) -> Any:
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


def _flag(body: dict, name: str, default: bool | None) -> bool | None:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false, not {kind_of(value)}", name)
    return value


def _strings(body: dict, name: str, most: int) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    wanted = f"{name} must be a string or a list of strings"
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, f"{wanted}, not {kind_of(value)}", name)
    if len(value) > most:
        raise ApiError(400, f"{name} may hold at most {most} strings", name)
    return value


def _is_ids(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    )


def _prompt_list(body: dict) -> list[str | list[int]]:
    """The prompts as sent: a string, a list of strings, a list of token ids
    (one prompt), or a list of such lists (none: one empty prompt)."""
    value = body.get("prompt")
    if value is None:
        return [""]
    if isinstance(value, str):
        return [value]
    wanted = (
        "prompt must be a string, a list of strings, a list of token ids or a "
        "list of lists of token ids"
    )
    if not isinstance(value, list):
        raise ApiError(400, f"{wanted}, not {kind_of(value)}", "prompt")
    if not value:
        raise ApiError(400, "prompt must not be an empty list", "prompt")
    if _is_ids(value):
        return [value]
    if not (all(isinstance(v, str) for v in value) or all(_is_ids(v) for v in value)):
        raise ApiError(400, f"{wanted} (not a mixture)", "prompt")
    if len(value) > MAX_ROWS_PER_REQUEST:
        raise ApiError(
            400, f"prompt may hold at most {MAX_ROWS_PER_REQUEST} prompts", "prompt"
        )
    return value


def parse_completion(
    body: Any,
    served: Mapping[str, Served],
    max_cost: int = SERVE_MAX_REQUEST_COST,
    max_prompt_tokens: int = SERVE_MAX_PROMPT_TOKENS,
) -> Completion:
    """Check a completions request; raises `ApiError` (4xx) with one line.
    Its prompts are read later (`runner.Run.read`), where their tokens are
    counted exactly; a prompt certainly over `max_prompt_tokens` (its
    whitespace-separated pieces for a word model, its characters for a
    character model, its ids) is refused here, before any work."""
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object, not {kind_of(body)}")
    model = model_asked(body, served)
    refuse_unsupported(body, UNSUPPORTED)
    prompts, n = _prompts(body)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ApiError(
            400,
            f"stream_options must be an object, not {kind_of(options)}",
            "stream_options",
        )
    request = _request(body, model)
    counts = [_fewest_tokens(prompt, model) for prompt in prompts]
    check_prompt_tokens(counts, max_prompt_tokens)
    check_cost(counts, n, request, max_cost)
    return Completion(
        served=model,
        prompts=prompts,
        n=n,
        sampling=_contract(SamplingSettings, body),
        request=request,
        stream=bool(_flag(body, "stream", False)),
        echo=bool(_flag(body, "echo", False)),
        include_usage=bool(_flag(options or {}, "include_usage", False)),
        max_prompt_tokens=max_prompt_tokens,
        max_cost=max_cost,
    )


def refuse_unsupported(body: dict, fields: Mapping[str, tuple]) -> None:
    """400 for a field textgen cannot honour given other than as doing nothing
    (`fields`: each one's do-nothing values)."""
    for key, neutral in fields.items():
        if key in body and body[key] not in neutral:
            raise ApiError(400, f"{key} is not supported by textgen", key)


def _fewest_tokens(prompt: str | list[int], model: Served) -> int:
    """The fewest tokens a prompt can read as (exact for ids): each
    whitespace-separated piece is a word or more, each character a
    character or more."""
    if not isinstance(prompt, str):
        return len(prompt)
    if model.generator.tokenizer.space_leads:  # words
        return len(prompt.split())
    return len(prompt)


def model_asked(body: dict, served: Mapping[str, Served]) -> Served:
    """The model a request names (with one model served, it may name none)."""
    name = body.get("model")
    if name is None and len(served) == 1:
        name = next(iter(served))
    if name is None:
        raise ApiError(
            400,
            f"model is required: this server has {len(served)} "
            f"({listed(sorted(served))}); name one (the tokenizer routes also "
            "take ?model=NAME), or serve one for clients that name none",
            "model",
        )
    if not isinstance(name, str):
        raise ApiError(400, f"model must be a string, not {kind_of(name)}", "model")
    return find_model(served, name)


def _prompts(body: dict) -> tuple[list[str | list[int]], int]:
    """The prompts and `n`, within the limits."""
    prompts = _prompt_list(body)
    try:
        n = N.check("n", 1 if body.get("n") is None else body["n"])
    except SettingError as err:
        raise ApiError(400, str(err), "n") from None
    if len(prompts) * n > MAX_ROWS_PER_REQUEST:
        raise ApiError(
            400,
            f"{len(prompts)} prompts x n={n} is over {MAX_ROWS_PER_REQUEST} "
            "completions in one request",
            "n",
        )
    return prompts, n


def check_prompt_tokens(counts: list[int], most: int) -> None:
    """Refuse (413) a prompt of more than `most` tokens."""
    longest = max(counts, default=0)
    if longest > most:
        raise ApiError(
            413,
            f"a prompt has {longest:,} tokens; the most is {most:,} "
            "(--max-prompt-tokens): send a shorter one",
            "prompt",
            "prompt_too_long",
        )


def check_cost(
    counts: list[int], n: int, request: GenerationRequest, max_cost: int
) -> None:
    """Refuse (400, before any work) a request over `max_cost`: rows x
    tokens x (1 + logprobs), `counts` being each prompt's tokens."""
    tokens = sum(count + request.length for count in counts)
    alternatives = 1 + (request.logprobs or 0)
    cost = n * tokens * alternatives
    if cost > max_cost:
        raise ApiError(
            400,
            "the request is too large: its completions x their tokens (prompt "
            f"plus max_tokens) x (1 + logprobs) is {cost:,}, over the "
            f"server's limit of {max_cost:,} (--max-request-cost); ask for fewer "
            "completions, "
            "tokens or logprobs, or split it",
            "max_tokens",
            "request_too_large",
        )


def _contract(cls: type, body: dict, **fields: Any) -> Any:
    """`cls` (`SamplingSettings` or `GenerationRequest`) of the request's
    values for its knobs (absent or null: the knob's default) and `fields`;
    a value out of bounds is a 400 naming the request's field."""
    values = {}
    for name in knobs(cls):
        value = body.get(API_NAMES.get(name, name))
        if value is not None:
            values[name] = value
    try:
        return cls(**values, **fields)
    except SettingError as err:
        name = API_NAMES.get(err.field, err.field)
        raise ApiError(400, err.named(name), name) from None


def _request(body: dict, model: Served) -> GenerationRequest:
    """The length, stop strings, `until`, `novel`, seed and `logprobs` of a
    request (a fresh random seed when it gives none)."""
    try:
        MAX_TOKENS_KNOB.check("max_tokens", body.get("max_tokens"))
    except SettingError as err:
        raise ApiError(400, str(err), "max_tokens") from None
    try:
        novel = resolve_novel(
            _flag(body, "novel", None),
            model.model.tokenizer_settings.items,
            body.get("max_tries") is not None,
        )
    except SettingError as err:
        raise ApiError(400, str(err), err.field) from None
    request = _contract(
        GenerationRequest,
        body,
        stop=tuple(s for s in _strings(body, "stop", MAX_STOPS) if s),
        until=body.get("until"),
        novel=novel,
        label=body.get("label"),
    )
    try:  # a label the model knows (it is read before each prompt)
        model.generator.label_tokens(request.label)
    except SettingError as err:
        raise ApiError(400, str(err), "label") from None
    if request.length == 0 and not _flag(body, "echo", False):
        raise ApiError(
            400,
            "max_tokens must be 1 or more (0 only with echo, to score the prompt)",
            "max_tokens",
        )
    if request.random_seed is None:
        request = dataclasses.replace(request, random_seed=fresh_seed())
    return request


def settings() -> dict[str, Any]:
    """`GET /v1/settings`: every sampling and generation field a request may
    give, by its name in the request, with its default, bounds and help (the
    playground builds its controls from it)."""
    card = settings_card(SamplingSettings, GenerationRequest)
    fields = {API_NAMES.get(name, name): value for name, value in card.items()}
    fields["max_tokens"] = MAX_TOKENS_KNOB.card(GenerationRequest.length)
    fields["n"] = N.card(1)
    return {"object": "settings", "fields": fields}


def finish_reason(sample: Sample) -> str:
    return "length" if sample.stopped_by == "length" else "stop"


def completion_head(completion: Completion, identifier: str) -> dict[str, Any]:
    return {
        "id": identifier,
        "object": "text_completion",
        "created": int(time.time()),
        "model": completion.served.name,
    }
