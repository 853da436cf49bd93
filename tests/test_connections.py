"""`textgen serve` under idle, slow and numerous connections
(`textgen/serving/connections.py`): what a client that never finishes its request, or
thousands of them, can do to the server."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from pathlib import Path

import httpx
import pytest
from conftest import Server

from textgen.serving import connections


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes `sock` (end of stream) within `within` s."""
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.fixture(scope="module")
def guarded(trained):
    running = Server(
        "-m", str(trained[0]), "--head-timeout", "1", "--max-connections", "8",
        "--max-request-cost", str(2**21),
    )  # fmt: skip
    yield running
    assert running.stop() == 0, "".join(running.log)


def test_idle_and_half_sent_requests_are_closed(guarded):
    idle = _connect(guarded.url)
    slow = _connect(guarded.url)  # slowloris: a head that never ends
    slow.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.5)
    slow.sendall(b"X-A: 1\r\n")  # still sending does not buy more time
    assert _closed_by_server(idle, within=5)
    assert _closed_by_server(slow, within=5)
    assert guarded.health()["status"] == "ok"


@pytest.mark.slow
def test_a_connection_that_asked_has_its_answer_and_time_for_the_next(guarded):
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        assert client.get("/health").status_code == 200
        time.sleep(0.5)  # within the head timeout of the kept-alive connection
        assert client.get("/health").status_code == 200
    # A request that takes longer than the head timeout is not cut off.
    answer = guarded.post({"prompt": "one", "max_tokens": 4096, "n": 64})
    assert answer.status_code == 200 and len(answer.json()["choices"]) == 64


def test_many_idle_connections_make_room_for_new_ones(guarded):
    idle = [_connect(guarded.url) for _ in range(40)]  # five times the cap
    for _ in range(3):
        assert guarded.health()["status"] == "ok"
    closed = sum(_closed_by_server(sock, within=0.2) for sock in idle[:20])
    assert closed >= 15  # the oldest made room for the newer ones
    for sock in idle:
        sock.close()
    log = "".join(guarded.log)
    assert "Traceback" not in log
    assert log.count("closed idle connections") <= 2  # once per interval


@pytest.mark.slow
def test_a_client_gone_mid_body_or_asking_the_extreme_logs_nothing(guarded):
    sock = _connect(guarded.url)
    sock.sendall(
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
        b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"pro'
    )
    time.sleep(0.2)
    sock.close()
    extreme = guarded.post(
        {"prompt": "one two one two", "max_tokens": 20, "repetition_penalty": 1e308}
    )
    assert extreme.status_code == 200
    huge = guarded.post({"prompt": "one", "max_tokens": 3, "top_k": 10**40})
    assert huge.status_code == 200
    time.sleep(0.3)
    log = "".join(guarded.log)
    assert "Traceback" not in log and "Warning" not in log
    assert "ClientDisconnect" not in log


def test_a_body_slower_than_its_limit_is_a_408(guarded, monkeypatch):
    from textgen.serving import app as serve
    from textgen.serving import protocol

    monkeypatch.setattr(protocol, "BODY_SECONDS", 0.2)

    async def ask() -> httpx.Response:
        app = serve.create_app({"pattern": _model(guarded)})

        async def slow_body():
            yield b'{"prompt": '
            await asyncio.sleep(1)
            yield b'"one"}'

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.post("/v1/completions", content=slow_body())

    response = asyncio.run(ask())
    assert response.status_code == 408
    assert "took over 0.2 s" in response.json()["error"]["message"]


def _model(server: Server):
    from textgen.model.file import read_model

    path = next(a for a in server.process.args if a.endswith(".keras"))
    return read_model(path)


def test_loop_errors_are_one_line_per_kind_and_interval(caplog):
    calm = connections._CalmLog()
    with caplog.at_level(logging.WARNING, logger="uvicorn.error"):
        for _ in range(1000):
            calm.log("accept", "socket.accept() out of system resource")
        calm.log("other", "something else")
        calm.last["accept"] -= connections.LOG_INTERVAL  # the interval passes
        calm.log("accept", "socket.accept() out of system resource")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "socket.accept() out of system resource",
        "something else",
        "socket.accept() out of system resource (999 more like it not shown)",
    ]
    assert all(r.exc_info is None for r in caplog.records)  # no traceback


def test_the_event_loop_handler_writes_one_line(caplog):
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.WARNING, logger="uvicorn.error"):
            for _ in range(50):
                connections.calm_exception_handler(
                    loop,
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": OSError(24, "Too many open files"),
                    },
                )
    finally:
        loop.close()
    assert len(caplog.records) <= 1
    (record,) = caplog.records or [None]
    assert record is not None and "\n" not in record.getMessage()
    assert "Too many open files" in record.getMessage()


def test_the_connection_limit_stays_below_the_open_file_limit(monkeypatch):
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda which: (300, 300))
    monkeypatch.setattr(resource, "setrlimit", lambda which, limits: None)
    assert connections.connection_limit(1000) == 300 - connections.FILES_KEPT
    monkeypatch.setattr(resource, "getrlimit", lambda which: (100_000, 100_000))
    assert connections.connection_limit(1000) == 1000


def test_the_installed_uvicorn_has_the_private_parts_the_limits_use():
    """connections.py subclasses uvicorn's h11 protocol and reads a
    connection's `cycle` and the server's `connections`: a uvicorn release
    without them must fail here, and pyproject.toml bounds uvicorn to the
    releases that have them."""
    import inspect
    import re
    from importlib.metadata import version

    from uvicorn.protocols.http.h11_impl import H11Protocol

    source = inspect.getsource(H11Protocol)
    for name in ("self.cycle", "self.connections", "self.transport", "self.loop"):
        assert name in source, name
    for method in ("connection_made", "connection_lost", "data_received",
                   "on_response_complete"):  # fmt: skip
        assert callable(getattr(H11Protocol, method, None)), method
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    low, high = re.search(r'"uvicorn>=([\d.]+),<([\d.]+)"', pyproject).groups()
    installed = tuple(int(part) for part in version("uvicorn").split(".")[:2])
    as_tuple = [tuple(int(p) for p in bound.split(".")[:2]) for bound in (low, high)]
    assert as_tuple[0] <= installed < as_tuple[1], (installed, low, high)
