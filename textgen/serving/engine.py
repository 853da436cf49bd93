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
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import TimedOut
from ..inference.contract import GenerationRequest, SamplingSettings
from ..inference.generate import Draw, Generator, Sample, Seed, choose_together
from ..inference.logprobs import Choice

MAX_ROWS = 256  # rows stepped together; more wait for room


@dataclass(eq=False)
class Job:
    """One call's rows (seed x sampling pairs), its `GenerationRequest` (whose random
    seed is set), and what it wants back.

    `on_text`: one callback or None per row, called (from the worker thread)
    with each piece of that row's text as soon as it is safe to show (see
    `Generator.sample`). `on_choice`: likewise, with each token's `Choice`
    when the request asks for `logprobs`. `on_done`: called once, from the
    worker thread, with the samples, or with the exception that ended the job.
    """

    seeds: Sequence[Seed]
    samplings: Sequence[SamplingSettings]
    request: GenerationRequest
    on_done: Callable[[list[Sample] | None, BaseException | None], None]
    on_text: Sequence[Callable[[str], None] | None] | None = None
    on_choice: Sequence[Callable[[Choice], None] | None] | None = None
    cancelled: bool = False
    # `time.monotonic()` past which the job ends with `TimedOut` (None: never).
    deadline: float | None = None
    _steps: Any = field(default=None, repr=False)
    _draw: Draw | None = field(default=None, repr=False)


class Engine:
    """Runs `Job`s (one per call) on one `Generator` with continuous batching."""

    def __init__(self, generator: Generator, max_rows: int = MAX_ROWS) -> None:
        self.generator = generator
        self.max_rows = max_rows
        self._waiting: deque[Job] = deque()
        self._active: list[Job] = []
        self._lock = threading.Condition()
        self._closed = False
        self.steps = 0  # decoder steps run (each over every active row)
        self.finished = 0  # requests answered
        self.cancelled = 0  # requests dropped because their client went away
        self.timed_out = 0  # requests ended at their deadline
        self.tokens = 0  # tokens generated (those of rejected draws too)
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

    def submit(self, job: Job) -> None:
        """Read the job's seeds (here, in the caller's thread) and queue it
        to join the batch at the next step. Errors in the seeds raise here."""
        rows = len(job.seeds)
        on_text = job.on_text or [None] * rows
        job._steps = self.generator.draws(
            job.seeds,
            job.samplings,
            job.request,
            on_text,
            lambda: job.cancelled,
            job.on_choice,
        )
        job._draw = next(job._steps)
        with self._lock:
            if self._closed:
                raise RuntimeError("the server is shutting down")
            self._waiting.append(job)
            self._lock.notify()

    def count(self, kind: str) -> None:
        """Count a request that ended before it reached the batch (while its
        prompts were read or scored): "cancelled" or "timed_out"."""
        with self._lock:
            setattr(self, kind, getattr(self, kind) + 1)

    def cancel(self, job: Job) -> None:
        """Drop a job (its client went away): its rows leave at the next
        step and `on_done` is not called."""
        job.cancelled = True
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
                now = time.monotonic()
                while self._waiting:
                    job = self._waiting[0]
                    if job.cancelled:
                        self._waiting.popleft()
                        self.cancelled += 1
                        continue
                    if _overdue(job, now):
                        self._waiting.popleft()
                        self._time_out(job)
                        continue
                    if self._active and rows + job._draw.rows > self.max_rows:
                        break
                    self._waiting.popleft()
                    self._active.append(job)
                    rows += job._draw.rows
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
                    for job in failed:
                        _finish(job, None, error)
        finally:
            with self._lock:
                left = [r for r in self._active + list(self._waiting)]
                self._active, self._waiting = [], deque()
            for job in left:
                if not job.cancelled:
                    _finish(job, None, RuntimeError("the server is shutting down"))

    def _step(self) -> None:
        """Every active job's next word (sampled together where the
        settings match), then one decoder step for all rows that go on."""
        live = []
        now = time.monotonic()
        for job in list(self._active):
            if job.cancelled:
                self._active.remove(job)
                self.cancelled += 1
            elif _overdue(job, now):
                self._active.remove(job)
                self._time_out(job)
            else:
                live.append(job)
        if not live:
            return
        try:
            chosen: list | None = choose_together([r._draw for r in live])
        except Exception:  # choose one by one: an error stays with its job
            chosen = None
        going_on: list[Job] = []
        for i, job in enumerate(live):
            try:
                draw = job._draw
                self.tokens += len(draw.live)  # rows going on
                if not draw.take(draw.choose() if chosen is None else chosen[i]):
                    going_on.append(job)
                    continue
                # This draw is over: the next one of the job (novel items
                # drawn again), or its samples.
                job._draw = job._steps.send(None)
            except StopIteration as finished:
                self._active.remove(job)
                self.finished += 1
                _finish(job, finished.value, None)
            except Exception as error:  # a bug: end this job, not the others
                self._active.remove(job)
                _finish(job, None, error)
        if not going_on:
            return
        draws = [job._draw for job in going_on]
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

    def _time_out(self, job: Job) -> None:
        """End a job at its deadline: its rows leave the batch."""
        self.timed_out += 1
        _finish(
            job,
            None,
            TimedOut(
                "the request ran past the server's time limit (--timeout); "
                "ask for fewer tokens or completions"
            ),
        )


def _overdue(job: Job, now: float) -> bool:
    return job.deadline is not None and now > job.deadline


def _finish(
    job: Job, samples: list[Sample] | None, error: BaseException | None
) -> None:
    """Hand a job its result; a failing callback must not stop the worker."""
    with contextlib.suppress(Exception):
        job.on_done(samples, error)
