"""`Engine`: continuous batching of generation requests on one model.

Requests arrive at any time, from any thread (the HTTP server's). One worker
thread steps the rows of every request in flight as one batch, a word at a
time: a request that arrives while others are being generated joins the
batch at the next word instead of waiting for them to finish, and a finished
or cancelled request leaves it at once.

Each request is what `Generator.sample` does for it alone (the same `Draw`s,
from its own random generator), so the same settings and seed give the same
text as `textgen generate --random-seed`: only the decoder step, the costly
part, is shared. Its seeds are read by `submit`, in the caller's thread, so a
long seed does not hold up the words of the others.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .generate import Draw, Generator, Sample, choose_together
from .sampling import SamplingSettings

MAX_ROWS = 256  # rows stepped together; more wait for room


@dataclass(eq=False)
class Request:
    """One call's rows (seed x sampling pairs) and what it wants back.

    `on_text`: one callback or None per row, called (from the worker thread)
    with each piece of that row's text as soon as it is safe to show (see
    `Generator.sample`). `on_done`: called once, from the worker thread, with
    the samples, or with the exception that ended the request.
    """

    seeds: Sequence[str]
    samplings: Sequence[SamplingSettings]
    length: int
    random_seed: int
    on_done: Callable[[list[Sample] | None, BaseException | None], None]
    on_text: Sequence[Callable[[str], None] | None] | None = None
    stop: Sequence[str] = ()
    until: str | None = None
    novel: bool = False
    max_tries: int = 20
    cancelled: bool = False
    _steps: Any = field(default=None, repr=False)
    _draw: Draw | None = field(default=None, repr=False)


class Engine:
    """Runs `Request`s on one `Generator` with continuous batching."""

    def __init__(self, generator: Generator, max_rows: int = MAX_ROWS) -> None:
        self.generator = generator
        self.max_rows = max_rows
        self._waiting: deque[Request] = deque()
        self._active: list[Request] = []
        self._lock = threading.Condition()
        self._closed = False
        self.steps = 0  # decoder steps run (each over every active row)
        self.finished = 0  # requests answered
        self.cancelled = 0  # requests dropped because their client went away
        self._thread = threading.Thread(
            target=self._run, name="textgen-engine", daemon=True
        )
        self._thread.start()

    @property
    def active_rows(self) -> int:
        """Rows in the running batch now."""
        return sum(r._draw.rows for r in list(self._active) if r._draw is not None)

    @property
    def waiting(self) -> int:
        """Requests read and waiting for room in the batch."""
        return len(self._waiting)

    def submit(self, request: Request) -> None:
        """Read the request's seeds (here, in the caller's thread) and queue it
        to join the batch at the next step. Errors in the seeds raise here."""
        rows = len(request.seeds)
        on_text = request.on_text or [None] * rows
        request._steps = self.generator.draws(
            request.seeds,
            request.samplings,
            request.length,
            request.random_seed,
            on_text,
            request.stop,
            request.until,
            request.novel,
            request.max_tries,
            lambda: request.cancelled,
        )
        request._draw = next(request._steps)
        with self._lock:
            if self._closed:
                raise RuntimeError("the server is shutting down")
            self._waiting.append(request)
            self._lock.notify()

    def cancel(self, request: Request) -> None:
        """Drop a request (its client went away): its rows leave at the next
        step and `on_done` is not called."""
        request.cancelled = True
        with self._lock:
            self._lock.notify()

    def close(self, timeout: float | None = None) -> None:
        """Stop the worker; requests still queued or running end with an error."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(timeout)

    def _admit(self) -> bool:
        """Move waiting requests into the batch while there is room; block
        while there is nothing to do. False once closed."""
        with self._lock:
            while True:
                if self._closed:
                    return False
                rows = self.active_rows
                while self._waiting:
                    request = self._waiting[0]
                    if request.cancelled:
                        self._waiting.popleft()
                        self.cancelled += 1
                        continue
                    if self._active and rows + request._draw.rows > self.max_rows:
                        break
                    self._waiting.popleft()
                    self._active.append(request)
                    rows += request._draw.rows
                if self._active:
                    return True
                self._lock.wait()

    def _run(self) -> None:
        try:
            while self._admit():
                try:
                    self._step()
                except Exception as error:  # the shared step: end what ran, go on
                    failed, self._active = self._active, []
                    for request in failed:
                        _finish(request, None, error)
        finally:
            with self._lock:
                left = [r for r in self._active + list(self._waiting)]
                self._active, self._waiting = [], deque()
            for request in left:
                if not request.cancelled:
                    _finish(request, None, RuntimeError("the server is shutting down"))

    def _step(self) -> None:
        """Every active request's next word (sampled together where the
        settings match), then one decoder step for all rows that go on."""
        live = []
        for request in list(self._active):
            if request.cancelled:
                self._active.remove(request)
                self.cancelled += 1
            else:
                live.append(request)
        try:
            chosen: list | None = choose_together([r._draw for r in live])
        except Exception:  # choose one by one: an error stays with its request
            chosen = None
        going_on: list[Request] = []
        for i, request in enumerate(live):
            try:
                draw = request._draw
                if not draw.take(draw.choose() if chosen is None else chosen[i]):
                    going_on.append(request)
                    continue
                # This draw is over: the next one of the request (novel items
                # drawn again), or its samples.
                request._draw = request._steps.send(None)
            except StopIteration as finished:
                self._active.remove(request)
                self.finished += 1
                _finish(request, finished.value, None)
            except Exception as error:  # a bug: end this request, not the others
                self._active.remove(request)
                _finish(request, None, error)
        if not going_on:
            return
        draws = [request._draw for request in going_on]
        states = [
            [np.concatenate([d.states[i][k] for d in draws]) for k in range(len(part))]
            for i, part in enumerate(draws[0].states)
        ]
        generator = self.generator
        logits, states = generator.decoder.step(
            np.concatenate([d.chosen for d in draws]), states
        )
        if generator.mixture is not None:  # every row's n-gram memory at once
            contexts = np.concatenate(
                [generator.ngram_contexts(d.written) for d in draws]
            )
            logits = generator.mixture.logits(logits, contexts)
        start = 0
        for draw in draws:
            end = start + draw.rows
            draw.advance(
                logits[start:end],
                [[part[start:end] for part in layer] for layer in states],
                mixed=True,
            )
            start = end
        self.steps += 1


def _finish(
    request: Request, samples: list[Sample] | None, error: BaseException | None
) -> None:
    """Hand a request its result; a failing callback must not stop the worker."""
    with contextlib.suppress(Exception):
        request.on_done(samples, error)
