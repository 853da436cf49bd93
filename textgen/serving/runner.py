"""One completion request run on its model's engine, seen from the event
loop: `Run` bridges the engine's worker thread and asyncio (prompts read and
scored in a worker thread, pieces of text handed to the loop as they come),
and `answer` sends the result whole or as server-sent events, the way
OpenAI's API sends them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..errors import Cancelled, TimedOut
from ..inference.generate import Sample
from ..inference.logprobs import Choice, RowLogprobs, echo_logprobs, prompt_choices
from .engine import Job
from .prompts import START, Prompt, PromptError, read_ids, read_text
from .protocol import (
    ApiError,
    Completion,
    Json,
    check_cost,
    check_prompt_tokens,
    completion_head,
    dumps,
    finish_reason,
)


async def answer(completion: Completion, request: Request) -> Response:
    """The completion, streamed (server-sent events) or whole; its prompts
    are read first, so a prompt over the limits is a 4xx, not an event."""
    run = Run(completion, streaming=completion.stream)
    served = completion.served

    def read() -> None:
        # One request's prompts at a time, as they are scored: side by side
        # the threads contend for the interpreter and each takes longer.
        with served.reading_lock:
            run.read()

    served.reading += 1  # counted in its queue until it joins the engine's
    try:
        await asyncio.to_thread(read)
    finally:
        served.reading -= 1
    if completion.stream:
        return StreamingResponse(
            _stream(run),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    return await _complete(run, request)


class Run:
    """One completion request on its model's engine, seen from the event loop."""

    def __init__(self, completion: Completion, streaming: bool) -> None:
        self.completion = completion
        self.streaming = streaming
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future = self.loop.create_future()
        self.pieces: asyncio.Queue = asyncio.Queue()
        self.rows = len(completion.prompts) * completion.n
        self.sent = [0] * self.rows
        # Characters of each row's generated text that are its seed's (the
        # prompt as the model reads it), and what the returned text starts
        # with instead (with `echo`, the prompt as the caller sent it).
        self.skip = [0] * self.rows
        self.head = [""] * self.rows
        self.opened = [False] * self.rows  # streamed: a piece has been sent
        # With logprobs, characters of each row's returned text sent so far:
        # an event's text is then exactly its tokens' texts (the rest waits).
        self.streamed = [0] * self.rows
        self.prompts: list[Prompt] = []  # read by `read`
        self.counts: dict[Prompt, int] = {}  # tokens of a prompt, where not its own
        self.joined: dict[Prompt, str] = {}  # each prompt's tokens joined
        # With `logprobs`: each row's, built as its tokens come (`_submit`).
        self.logprobs: list[RowLogprobs] | None = None
        self.finished: dict[int, dict] = {}  # finished logprobs, by object
        self.job: Job | None = None
        shape = completion.shape
        self.shape = shape and shape(self.rows, completion.request.logprobs)

    def read(self) -> None:
        """Read the prompts into the model's tokens (a worker thread), within
        the token limit and the request's cost (raises `ApiError`)."""
        completion, served = self.completion, self.completion.served
        tokenizer = served.generator.tokenizer
        for prompt in completion.prompts:
            try:
                self.prompts.append(
                    prompt
                    if isinstance(prompt, Prompt)
                    else read_text(tokenizer, prompt)
                    if isinstance(prompt, str)
                    else read_ids(tokenizer, served.ids, prompt)
                )
            except PromptError as err:
                raise ApiError(400, str(err), "prompt") from None
        check_prompt_tokens(
            [p.count for p in self.prompts], completion.max_prompt_tokens
        )
        check_cost(
            [p.count for p in self.prompts],
            completion.n,
            completion.request,
            completion.max_cost,
        )
        n = completion.n
        self.joined = {p: p.joined(served.generator) for p in self.prompts}
        self.skip = [len(self.joined[p]) for p in self.prompts for _ in range(n)]
        if completion.echo:
            self.head = [p.text for p in self.prompts for _ in range(n)]
        wants = completion.request.logprobs is not None
        streaming = self.streaming
        self.job = Job(
            seeds=[p.tokens for p in self.prompts for _ in range(n)],
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

    def _submit(self) -> None:  # a worker thread: scoring can take a while
        try:
            with self.completion.served.reading_lock:
                self._score_prompts()
        except Cancelled:
            self.completion.served.engine.count("cancelled")
            raise
        except TimedOut:
            self.completion.served.engine.count("timed_out")
            raise

    def _score_prompts(self) -> None:
        completion = self.completion
        score_only = completion.request.length == 0  # (with echo: see _request)
        if completion.request.logprobs is not None:
            self.logprobs = []
            for prompt in self.prompts:
                self._check()
                self.logprobs += self._row_logprobs(prompt)
        self._check()
        if score_only:  # echo: the prompts scored, no more
            self._score_only()
            return
        completion.served.engine.submit(self.job)

    def _row_logprobs(self, prompt: Prompt) -> list:
        """The `RowLogprobs` of a prompt's rows: its tokens scored if echoed.
        Scored alone (`max_tokens` 0), a text prompt is read as `textgen
        evaluate` reads a text (an item model's line breaks end its items),
        and its n rows, all the same, share one object, finished once."""
        completion, generator = self.completion, self.completion.served.generator
        top, n = completion.request.logprobs, completion.n
        score_only = completion.request.length == 0
        words = list(prompt.tokens)
        echo = None
        if completion.echo:
            shown = scored = words
            if score_only:
                shown, scored = prompt.scored(generator)
                # Scored alone, an item model's prompt counts its items' tokens.
                self.counts[prompt] = len(shown) + prompt.started
            # With a label, the prompt is read after it, as it is continued.
            label = generator.label_tokens(completion.request.label)
            found = prompt_choices(
                generator,
                label + scored,
                top,
                self._check,
                prompt.started or bool(label),
            )[len(label) :]
            if prompt.started:
                found = [Choice(START, None), *found]
            echo = echo_logprobs(
                prompt.text,
                shown,
                found,
                generator.tokenizer,
                prompt.start_text or None,
            )
        self._check()
        if score_only:
            return [RowLogprobs(generator.tokenizer, words, echo)] * n
        return [RowLogprobs(generator.tokenizer, words, echo) for _ in range(n)]

    def _score_only(self) -> None:
        """Answer with the (echoed) prompts alone, generating nothing."""
        completion = self.completion
        samples = [
            Sample(
                seed=prompt.tokens,
                text=self.joined[prompt],
                words=[],
                sampling=completion.sampling,
                random_seed=completion.request.random_seed,
                stopped_by="length",
                choices=[],
            )
            for prompt in self.prompts
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
                self._send(row, given[id(shared)])
        self._done(samples, None)

    def _piece(self, row: int) -> Any:
        def passed(text: str) -> None:  # the worker thread
            if self.logprobs:
                self._send(row, self.logprobs[row].extend(text))
                return
            head = ""
            if not self.opened[row]:  # the echoed prompt comes first
                head, self.opened[row] = self.head[row], True
            start = max(self.skip[row] - self.sent[row], 0)
            self.sent[row] += len(text)
            if head + text[start:]:
                self.loop.call_soon_threadsafe(
                    self.pieces.put_nowait, (row, head + text[start:], None)
                )

        return passed

    def _send(self, row: int, logprobs: dict | None) -> None:
        """With logprobs: the tokens a piece of text completed, as one event
        whose text is exactly theirs (the worker thread)."""
        if not logprobs:
            return
        text = "".join(logprobs["tokens"])
        self.streamed[row] += len(text)
        self.loop.call_soon_threadsafe(self.pieces.put_nowait, (row, text, logprobs))

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
        """The row's returned text: the continuation after its seed, with
        `echo` after the prompt as the caller sent it."""
        return self.head[row] + sample.text[self.skip[row] :]

    def rest_of_text(self, row: int, sample: Sample) -> str:
        """What a streamed row's last event carries: with logprobs, the text
        of the tokens not sent yet (what `rest_of_logprobs` holds); without,
        nothing (every piece was sent as it came)."""
        return self.text(row, sample)[self.streamed[row] :] if self.logprobs else ""

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
        prompt = sum(self.counts.get(p, p.count) for p in self.prompts)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }


async def _complete(run: Run, request: Request) -> Response:
    completion = run.completion
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
            "finish_reason": finish_reason(sample),
            "stopped_by": sample.stopped_by,
            "rejected_draws": sample.rejected,
        }
        for row, sample in enumerate(samples)
    ]
    body = {
        **completion_head(completion, f"cmpl-{uuid.uuid4().hex}"),
        "choices": choices,
        "usage": run.usage(samples),
        "random_seed": completion.request.random_seed,
    }
    return Json(run.shape.answer(body) if run.shape else body)


async def _stream(run: Run) -> AsyncIterator[str]:
    """Server-sent events as OpenAI sends them: one chunk per piece of text,
    a last chunk per choice with its finish reason, then `data: [DONE]`; what
    ends a request early is an error event."""
    try:
        async for event in _events(run.completion, run):
            yield event
    except Exception as err:  # said in the stream: its 200 head has gone
        message = err.message if isinstance(err, ApiError) else str(err)
        yield f"data: {dumps({'error': {'message': message}})}\n\n"
    finally:
        if not run.done.done():
            run.cancel()


async def _events(completion: Completion, run: Run) -> AsyncIterator[str]:
    head = completion_head(completion, f"cmpl-{uuid.uuid4().hex}")

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        body = {**head, "choices": choices, **extra}
        return f"data: {dumps(run.shape.chunk(body) if run.shape else body)}\n\n"

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
                "text": run.rest_of_text(row, sample),
                "index": row,
                "logprobs": run.rest_of_logprobs(row, sample),
                "finish_reason": finish_reason(sample),
            }
            for row, sample in enumerate(samples)
        ]
    )
    if completion.include_usage:
        yield event([], usage=run.usage(samples))
    yield "data: [DONE]\n\n"
