"""Test doubles shared by the action and CLI tests: a fake clock, a hanging handler, a closed port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

# Maximum seconds that a hanging handler blocks. Requests to it time out much sooner.
HANG_SECONDS = 10.0


class FakeClock:
    """A clock whose time moves only when the test advances it or something sleeps.

    `on_sleep` runs after each sleep. The lock lets a server thread advance the clock.
    """

    def __init__(self) -> None:
        self.start = datetime(2024, 1, 1, tzinfo=UTC)
        self.offset = 0.0
        self.lock = threading.Lock()
        self.on_sleep: Callable[[], None] = lambda: None

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return self.offset

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        self.on_sleep()

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.offset += seconds


class Hang:
    """A handler that blocks until the test ends, so that requests to it time out."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.release = threading.Event()
        self.requests: list[Request] = []

    def __call__(self, request: Request) -> Response:
        self.requests.append(request)
        self.release.wait(HANG_SECONDS)
        return Response("late")

    def finish(self) -> None:
        """Let the blocked requests return and wait until the server has logged them.

        Without the wait, a late log entry would land in the next test's server log.
        """
        self.release.set()
        deadline = time.monotonic() + HANG_SECONDS
        while time.monotonic() < deadline:
            logged = {id(request) for request, _ in self.server.log}
            if all(id(request) in logged for request in self.requests):
                return
            time.sleep(0.01)


def closed_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on, so that connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
