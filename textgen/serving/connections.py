"""Connection limits for `textgen serve`: what keeps idle, slow or numerous
clients from stalling the server, on top of uvicorn's own HTTP handling.

- A connection must finish sending a request's head within `head_seconds`
  of opening (or of its last response): one that sends nothing, or half a
  request (slowloris), is closed. The body has its own limit (`serve`).
- At most `max_connections` are open: a new one beyond that closes the
  oldest that is not in the middle of a request, or is itself closed when
  every one is, so `/health` still gets in while idle connections pile up.
- The event loop's own errors (an `accept()` that fails because the process
  is out of file descriptors, say) are logged as one line per kind and
  interval, never as a traceback per try.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

_log = logging.getLogger("uvicorn.error")

HEAD_SECONDS = 10.0  # most seconds for a request's head to arrive
LOG_INTERVAL = 10.0  # seconds between two log lines of the same kind
# Connections asyncio accepts in one go before any is handed over (uvicorn's
# `backlog`); they and the process's own files (models, logs) need room
# beyond the connection limit.
ACCEPT_BATCH = 128
FILES_KEPT = 2 * ACCEPT_BATCH


def connection_limit(wanted: int) -> int:
    """The most connections this process can hold: `wanted`, or fewer when
    the open-file limit (raised to its hard limit first) leaves less room."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (
        hard == resource.RLIM_INFINITY or soft < hard
    ):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FILES_KEPT))


def guarded_protocol(
    max_connections: int, head_seconds: float = HEAD_SECONDS
) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the head timeout and the connection cap
    (pass as `uvicorn.Config(http=...)`)."""

    class Guarded(H11Protocol):
        _opened = 0.0
        _refused = False
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            if len(self.connections) >= max_connections and not _evict_idle(
                self.connections
            ):
                _calm.log(
                    "refused",
                    f"refused connections: {max_connections:,} are open and busy "
                    "(--max-connections)",
                )
                self._refused = True
                transport.close()
                return
            self._opened = time.monotonic()
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if not self._refused:
                super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.busy():
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()  # the next request's head has the same time limit

        def busy(self) -> bool:
            """Whether a request's head has arrived and its response is not done."""
            return self.cycle is not None and not self.cycle.response_complete

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(head_seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _too_slow(self) -> None:
            self._head_timer = None
            if not self.busy() and not self.transport.is_closing():
                self.transport.close()

    return Guarded


def _evict_idle(connections: set[Any]) -> bool:
    """Close the oldest connection that is not in the middle of a request;
    False when there is none."""
    idle = [
        c
        for c in connections
        if not getattr(c, "busy", lambda: True)() and not c.transport.is_closing()
    ]
    if not idle:
        return False
    oldest = min(idle, key=lambda c: c._opened)
    oldest._disarm()
    oldest.transport.close()  # it leaves `connections` when the loop says so
    _calm.log(
        "evicted",
        "closed idle connections to make room for new ones (the "
        "--max-connections limit)",
    )
    return True


class _CalmLog:
    """One log line per kind of event and `LOG_INTERVAL`, saying how many
    were left unsaid."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.unsaid: dict[str, int] = {}

    def log(self, kind: str, message: str) -> None:
        now = time.monotonic()
        if now - self.last.get(kind, -LOG_INTERVAL) < LOG_INTERVAL:
            self.unsaid[kind] = self.unsaid.get(kind, 0) + 1
            return
        more = self.unsaid.pop(kind, 0)
        self.last[kind] = now
        _log.warning(message + (f" ({more:,} more like it not shown)" if more else ""))


_calm = _CalmLog()


def calm_exception_handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """The event loop's exception handler: one line per kind and interval
    (install with `loop.set_exception_handler`)."""
    error = context.get("exception")
    message = str(context.get("message") or "event loop error")
    if error is not None:
        detail = str(error).splitlines()[0] if str(error) else ""
        message = f"{message}: {type(error).__name__} {detail}".rstrip()
    kind = str(context.get("message")) + type(error).__name__
    _calm.log(kind, message)


class Server(uvicorn.Server):
    """uvicorn's server with `calm_exception_handler` on its event loop."""

    async def serve(self, sockets: Any = None) -> None:
        asyncio.get_running_loop().set_exception_handler(calm_exception_handler)
        await super().serve(sockets)
