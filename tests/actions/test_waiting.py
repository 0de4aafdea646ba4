"""wait.until polling a real server on 127.0.0.1, with a fake clock instead of real sleeps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from breakglass.actions.base import ActionCancelledError, ActionContext, ActionError
from breakglass.actions.waiting import WaitUntil, WaitUntilParams
from breakglass.config.loading import LoadedConfig
from breakglass.config.model import PlatformConfig
from tests.fakes import FakeClock


def make_ctx(tmp_path: Path, clock: FakeClock, timeout: float = 60.0) -> ActionContext:
    config = LoadedConfig(PlatformConfig(), tmp_path / "breakglass.yaml", "0" * 64)
    return ActionContext(config=config, clock=clock, timeout=timeout)


def wait_params(url: str, **raw: Any) -> WaitUntilParams:
    check = {"url": url, "json": [{"path": "status", "equals": "success"}]}
    return WaitUntilParams.model_validate({"check": check, "interval": "5s", **raw})


def starting_then_success(ready_on: int) -> Callable[[Request], Response]:
    """Return a handler that responds with 503 until request number `ready_on`, then success."""
    calls = 0

    def handle(request: Request) -> Response:
        nonlocal calls
        calls += 1
        if calls < ready_on:
            return Response('{"status": "starting"}', status=503, content_type="application/json")
        return Response('{"status": "success"}', content_type="application/json")

    return handle


def test_wait_passes_on_third_poll(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/ready").respond_with_handler(starting_then_success(ready_on=3))
    clock = FakeClock()

    outputs = WaitUntil().run(wait_params(server.url_for("/ready")), make_ctx(tmp_path, clock))

    assert outputs.attempts == 3
    assert outputs.elapsed == 10.0
    assert len(server.log) == 3


def test_wait_times_out(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/ready").respond_with_data("starting", status=503)
    clock = FakeClock()
    url = server.url_for("/ready")

    with pytest.raises(ActionError) as caught:
        WaitUntil().run(wait_params(url), make_ctx(tmp_path, clock, timeout=12.0))

    error = caught.value
    assert error.temporary is False
    assert error.message.startswith("wait.until timed out after 12s and 3 attempts")
    assert f"last failure: check GET {url} failed: HTTP 503, expected 200" in error.message
    assert error.outputs == {"attempts": 3}
    assert len(server.log) == 3
    assert clock.monotonic() == 12.0


def test_wait_last_failure_is_json_condition(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/ready").respond_with_json({"status": "unsuccessful"})
    clock = FakeClock()

    with pytest.raises(ActionError) as caught:
        WaitUntil().run(
            wait_params(server.url_for("/ready")), make_ctx(tmp_path, clock, timeout=6.0)
        )

    assert "status is 'unsuccessful', expected equals 'success'" in caught.value.message
    assert "2 attempts" in caught.value.message


def test_wait_stops_at_max_attempts(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/ready").respond_with_data("starting", status=503)
    clock = FakeClock()

    with pytest.raises(ActionError) as caught:
        WaitUntil().run(
            wait_params(server.url_for("/ready"), max_attempts=2), make_ctx(tmp_path, clock)
        )

    assert caught.value.message.startswith("wait.until failed all 2 attempts (max_attempts)")
    assert len(server.log) == 2
    assert clock.monotonic() == 5.0


def test_wait_cancelled_while_sleeping(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/ready").respond_with_data("starting", status=503)
    clock = FakeClock()
    ctx = make_ctx(tmp_path, clock)
    clock.on_sleep = ctx.cancelled.set

    with pytest.raises(ActionCancelledError) as caught:
        WaitUntil().run(wait_params(server.url_for("/ready")), ctx)

    assert caught.value.message == "wait.until was cancelled after 1 attempt"
    assert len(server.log) == 1
    assert clock.monotonic() == 1.0


def test_wait_missing_secret_fails_at_once(
    server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MISSING_TOKEN", raising=False)
    check = {"url": server.url_for("/ready"), "secret_headers": {"X-Key": "env:MISSING_TOKEN"}}
    params = WaitUntilParams.model_validate({"check": check, "interval": "5s"})

    with pytest.raises(ActionError) as caught:
        WaitUntil().run(params, make_ctx(tmp_path, FakeClock()))

    assert "MISSING_TOKEN is not set" in caught.value.message
    assert server.log == []


def test_wait_plan_sends_nothing(server: HTTPServer, tmp_path: Path) -> None:
    url = server.url_for("/ready")

    plan = WaitUntil().plan(
        wait_params(url, max_attempts=4), make_ctx(tmp_path, FakeClock(), timeout=120.0)
    )

    assert server.log == []
    assert plan.mutating is False
    assert plan.target == f"127.0.0.1:{server.port}"
    assert plan.summary == (
        f"wait until HTTP GET {url} returns status 200, status equals 'success'; "
        "poll every 5s, up to 120s or 4 attempts"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"interval": "0s"}, "interval must be longer than 0s"),
        ({"interval": 5}, "duration 5 has no unit"),
        ({"interval": "soon"}, "invalid duration 'soon'"),
        ({"max_attempts": 0}, "greater than or equal to 1"),
        ({"check": {"url": "file:///etc/hosts"}}, "URL scheme should be 'http' or 'https'"),
    ],
)
def test_wait_params_reject(raw: dict[str, Any], expected: str) -> None:
    base: dict[str, Any] = {"check": {"url": "http://127.0.0.1:9/"}, "interval": "5s"}

    with pytest.raises(ValidationError) as caught:
        WaitUntilParams.model_validate({**base, **raw})

    assert expected in str(caught.value)
