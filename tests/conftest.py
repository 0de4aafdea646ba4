"""Fixtures shared by the whole suite: an isolated state directory, a CLI runner and HTTP servers."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from breakglass.config.redaction import REDACTOR
from tests.fakes import Hang
from tests.postgres import PostgresServer, find_bindir, start_server

BYTECODE_CACHE = Path(tempfile.gettempdir()) / f"breakglass-test-pycache-{os.getuid()}"


@pytest.fixture(autouse=True)
def isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Keep every test's state store, config lookup and actor inside its own directory."""
    state = tmp_path / "state"
    monkeypatch.setenv("BREAKGLASS_STATE_DIR", str(state))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("BREAKGLASS_ACTOR", "tester")
    monkeypatch.delenv("BREAKGLASS_CONFIG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)
    yield state
    REDACTOR.clear()


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Cli:
    """Runs `python -m breakglass` as a real subprocess with the test's environment."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        # Every test starts many breakglass processes; a shared bytecode cache outside the
        # source tree saves compiling the package on each start where the machine sets
        # PYTHONDONTWRITEBYTECODE.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(BYTECODE_CACHE)
        env.update(extra or {})
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "breakglass", *args]

    def __call__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        input_text: str | None = None,
        timeout: float = 60,
    ) -> CliResult:
        completed = subprocess.run(
            self.command(*args),
            cwd=self.cwd,
            env=self.env(env),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CliResult(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session; tests create their own databases on it."""
    if find_bindir() is None:
        if os.environ.get("CI"):
            pytest.fail(
                "PostgreSQL server binaries are missing; .ci/run should have installed them"
            )
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    yield from start_server()


@pytest.fixture(scope="module")
def module_server() -> Iterator[HTTPServer]:
    """One HTTP server on 127.0.0.1 per test module. Use `server`, which clears it for each test."""
    # Threaded, so that a hanging request does not block the other requests of a test.
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def server(module_server: HTTPServer) -> HTTPServer:
    module_server.clear()
    return module_server


@pytest.fixture
def hang(server: HTTPServer) -> Iterator[Hang]:
    handler = Hang(server)
    yield handler
    handler.finish()
