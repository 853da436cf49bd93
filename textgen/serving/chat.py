"""`POST /v1/chat/completions`: OpenAI's chat API over the completions one.

textgen models continue text; they do not chat. For clients that speak only
chat (chat front ends, LangChain's chat models, lm-evaluation-harness's chat
model) the messages become one prompt by a plain template, documented in
docs/serving.md: each message's text a paragraph of its own, in order,
roles unwritten (a model trained on prose has never seen "user:"), and the
reply a new paragraph after the last; an item model continues the last user
message as the start of an item. The request is then a completion
(`parse_chat` checks it into a `protocol.Completion`), and `ChatShape`
rewrites each answer and event into the chat API's shapes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..inference.contract import kind_of
from .prompts import Prompt
from .protocol import (
    ApiError,
    Completion,
    model_asked,
    parse_completion,
    refuse_unsupported,
)

if TYPE_CHECKING:
    from .served import Served

MAX_MESSAGES = 256
# Chat fields that have no completions counterpart textgen can honour:
# refused unless left at their do-nothing value.
UNSUPPORTED = {
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "functions": (None, []),
    "function_call": (None, "none"),
    "audio": (None,),
    "modalities": (None, ["text"]),
    "prediction": (None,),
}
# Fields of the chat API that are the completions API's under another name
# or shape (translated by `parse_chat`).
_CHAT_ONLY = (
    "messages",
    "max_completion_tokens",
    "logprobs",
    "top_logprobs",
    "response_format",
    "user",
    "store",
    "metadata",
    "parallel_tool_calls",
    "service_tier",
    "reasoning_effort",
    *UNSUPPORTED,
)


def parse_chat(body: Any, served: Mapping[str, Served], **limits: Any) -> Completion:
    """Check a chat request into a completion of its messages' prompt;
    raises `ApiError` (4xx) with one line. `limits`: as `parse_completion`'s."""
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object, not {kind_of(body)}")
    model = model_asked(body, served)
    refuse_unsupported(body, UNSUPPORTED)
    form = body.get("response_format")
    if form is not None and form != {"type": "text"}:
        raise ApiError(
            400,
            "response_format: only {'type': 'text'} is supported",
            "response_format",
        )
    if "prompt" in body or "echo" in body:
        field = "prompt" if "prompt" in body else "echo"
        raise ApiError(400, f"{field} is a completions field: send messages", field)
    contents = _contents(body.get("messages"))
    translated = {k: v for k, v in body.items() if k not in _CHAT_ONLY}
    most = body.get("max_completion_tokens")
    if most is not None:
        translated["max_tokens"] = most
    translated["logprobs"] = _logprobs(body)
    completion = parse_completion(translated, served, **limits)
    prompt = chat_prompt(model, contents)
    return dataclasses.replace(completion, prompts=[prompt], shape=ChatShape)


def _contents(messages: Any) -> list[tuple[str, str]]:
    """Each message's (role, text), checked."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list of messages", "messages")
    if len(messages) > MAX_MESSAGES:
        raise ApiError(400, f"messages may hold at most {MAX_MESSAGES}", "messages")
    found = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ApiError(
                400, f"{where} must be an object, not {kind_of(message)}", "messages"
            )
        role = message.get("role")
        if not isinstance(role, str):
            raise ApiError(400, f"{where}.role must be a string", "messages")
        found.append((role, _text(message.get("content"), where)))
    return found


def _text(content: Any, where: str) -> str:
    """A message's text: a string, or its text parts joined."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text"):
                raise ApiError(
                    400,
                    f"{where}.content: only text parts are supported "
                    "(textgen models read text)",
                    "messages",
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise ApiError(
                    400,
                    f"{where}.content: a text part's text must be a string",
                    "messages",
                )
            parts.append(text)
        return "".join(parts)
    raise ApiError(
        400,
        f"{where}.content must be a string or a list of text parts, not "
        f"{kind_of(content)}",
        "messages",
    )


def _logprobs(body: dict) -> int | None:
    """The completions API's `logprobs` of chat's `logprobs` (a flag) and
    `top_logprobs` (0 to 20, only with it)."""
    wanted, top = body.get("logprobs"), body.get("top_logprobs")
    if wanted is not None and not isinstance(wanted, bool):
        raise ApiError(
            400, f"logprobs must be true or false, not {kind_of(wanted)}", "logprobs"
        )
    if not wanted:
        if top is not None:
            raise ApiError(400, "top_logprobs needs logprobs: true", "top_logprobs")
        return None
    if top is None:
        return 0
    if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20:
        raise ApiError(
            400,
            f"top_logprobs must be a whole number from 0 to 20, not {top!r}",
            "top_logprobs",
        )
    return top


def chat_prompt(model: Served, contents: list[tuple[str, str]]) -> Prompt:
    """The prompt of a chat's messages (see the module's docstring)."""
    tokenizer = model.generator.tokenizer
    if model.model.tokenizer_settings.items:
        users = [text for role, text in contents if role == "user"]
        text = users[-1] if users else ""
        return Prompt(text, tuple(tokenizer.tokenize(text)))
    tokens: list[str] = []
    for _, text in contents:
        words = tokenizer.tokenize(text)
        if words:
            tokens += [*words, tokenizer.paragraph_end]
    text = "".join(f"{text}\n\n" for _, text in contents if text.strip())
    return Prompt(text, tuple(tokens))


class ChatShape:
    """Rewrites one request's completions answer and events into the chat
    API's: `message` or `delta` for `text` (a reply's leading whitespace,
    the paragraph break after the prompt, dropped), `logprobs.content`, and
    the objects' names."""

    def __init__(self, rows: int, top: int | None) -> None:
        self.begun = [False] * rows  # a row's reply has shown a character
        self.announced = [False] * rows  # a row's first chunk (its role) is sent
        self.top = top or 0  # alternatives asked for (`top_logprobs`)

    def answer(self, body: dict) -> dict:
        """The whole answer."""
        body = {**body, "id": "chat" + body["id"], "object": "chat.completion"}
        body.pop("random_seed", None)
        body["choices"] = [
            {
                "index": choice["index"],
                "message": {"role": "assistant", "content": content},
                "logprobs": logprobs,
                "finish_reason": choice["finish_reason"],
            }
            for choice in body["choices"]
            for content, logprobs in [self._reply(choice)]
        ]
        return body

    def chunk(self, body: dict) -> dict:
        """One event."""
        body = {**body, "id": "chat" + body["id"], "object": "chat.completion.chunk"}
        choices = []
        for choice in body["choices"]:
            first = not self.announced[choice["index"]]
            self.announced[choice["index"]] = True
            content, logprobs = self._reply(choice)
            delta: dict[str, Any] = {"role": "assistant"} if first else {}
            if content or first:
                delta["content"] = content
            choices.append(
                {
                    "index": choice["index"],
                    "delta": delta,
                    "logprobs": logprobs,
                    "finish_reason": choice["finish_reason"],
                }
            )
        body["choices"] = choices
        return body

    def _reply(self, choice: dict) -> tuple[str, dict | None]:
        """A choice's text and `logprobs` as the chat API gives them."""
        text, row = choice["text"], choice["index"]
        logprobs = choice.get("logprobs")
        tokens = list(logprobs["tokens"]) if logprobs else []
        tops = [dict(top or {}) for top in logprobs["top_logprobs"]] if logprobs else []
        if not self.begun[row]:
            text = text.lstrip()
            for i, token in enumerate(tokens):  # the same whitespace, token-wise
                tokens[i] = token.lstrip()
                tops[i] = {key.lstrip(): value for key, value in tops[i].items()}
                if tokens[i]:
                    break
            self.begun[row] = bool(text)
        if logprobs is None:
            return text, None
        return text, {
            "content": [
                {
                    "token": token,
                    "logprob": value,
                    "bytes": list(token.encode("utf-8", "surrogatepass")),
                    "top_logprobs": [
                        {
                            "token": key,
                            "logprob": alternative,
                            "bytes": list(key.encode("utf-8", "surrogatepass")),
                        }
                        for key, alternative in sorted(
                            top.items(), key=lambda kv: -kv[1]
                        )[: self.top]
                    ],
                }
                for token, value, top in zip(
                    tokens,
                    logprobs["token_logprobs"],
                    tops,
                    strict=True,
                )
            ]
        }
