"""http.request, http.check and notify.webhook against a real server on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from breakglass.actions.base import ActionCancelledError, ActionContext, ActionError
from breakglass.actions.http import (
    HttpCheck,
    HttpCheckParams,
    HttpRequest,
    HttpRequestParams,
    NotifyWebhook,
    NotifyWebhookParams,
)
from breakglass.config.loading import LoadedConfig
from breakglass.config.model import PlatformConfig
from breakglass.config.redaction import REDACTOR
from tests.fakes import FakeClock, Hang, closed_port

SECRET = "s3cr3t-token-value"


def make_ctx(tmp_path: Path, **kwargs: Any) -> ActionContext:
    config = LoadedConfig(PlatformConfig(), tmp_path / "breakglass.yaml", "0" * 64)
    return ActionContext(config=config, **kwargs)


def request_params(**raw: Any) -> HttpRequestParams:
    return HttpRequestParams.model_validate(raw)


def check_params(**raw: Any) -> HttpCheckParams:
    return HttpCheckParams.model_validate(raw)


def run_request(tmp_path: Path, **raw: Any) -> ActionError:
    with pytest.raises(ActionError) as caught:
        HttpRequest().run(request_params(**raw), make_ctx(tmp_path))
    return caught.value


# http.request: plan


def test_request_plan_sends_nothing(
    server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", SECRET)
    url = server.url_for("/deploy")
    params = request_params(
        url=url,
        method="POST",
        json={"version": "1.2.3"},
        headers={"X-Team": "ops"},
        secret_headers={"Authorization": "env:API_TOKEN"},
    )

    plan = HttpRequest().plan(params, make_ctx(tmp_path))

    assert server.log == []
    assert plan.summary == (
        f'HTTP POST {url} with body {{"version": "1.2.3"}} '
        "and headers X-Team: ops, Authorization: ***"
    )
    assert plan.target == f"127.0.0.1:{server.port}"
    assert plan.mutating is True
    assert SECRET not in plan.model_dump_json()


def test_request_plan_get_is_not_mutating(server: HTTPServer, tmp_path: Path) -> None:
    plan = HttpRequest().plan(request_params(url=server.url_for("/")), make_ctx(tmp_path))

    assert plan.mutating is False
    assert plan.summary == f"HTTP GET {server.url_for('/')}"
    assert plan.warnings == []


def test_request_plan_cuts_long_body(server: HTTPServer, tmp_path: Path) -> None:
    params = request_params(url=server.url_for("/"), method="PUT", body="x" * 1000)

    plan = HttpRequest().plan(params, make_ctx(tmp_path))

    assert "x" * 200 + "… (1000 characters)" in plan.summary
    assert "x" * 201 not in plan.summary


def test_request_plan_redacts_known_secret(server: HTTPServer, tmp_path: Path) -> None:
    REDACTOR.register(SECRET)
    params = request_params(url=server.url_for("/"), method="POST", body=f"token={SECRET}")

    plan = HttpRequest().plan(params, make_ctx(tmp_path))

    assert SECRET not in plan.summary
    assert "token=***" in plan.summary


def test_request_plan_warns_secret_over_http(server: HTTPServer, tmp_path: Path) -> None:
    params = request_params(url=server.url_for("/"), secret_headers={"X-Key": "env:API_TOKEN"})

    plan = HttpRequest().plan(params, make_ctx(tmp_path))

    assert plan.warnings == ["secret headers X-Key would be sent unencrypted over http"]


# http.request: run


def test_request_returns_outputs(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/status").respond_with_json(
        {"ok": True, "items": [1, 2]}, headers={"X-Request-Id": "abc"}
    )

    outputs = HttpRequest().run(request_params(url=server.url_for("/status")), make_ctx(tmp_path))

    assert outputs.status == 200
    assert outputs.json_body == {"ok": True, "items": [1, 2]}
    assert outputs.headers["x-request-id"] == "abc"
    assert json.loads(outputs.body) == {"ok": True, "items": [1, 2]}
    assert outputs.body_truncated is False
    assert outputs.elapsed >= 0
    assert outputs.model_dump()["json"] == {"ok": True, "items": [1, 2]}


def test_request_sends_json_body(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request(
        "/deploy",
        method="POST",
        json={"version": "1.2.3"},
        headers={"Content-Type": "application/json"},
    ).respond_with_data("created", status=201)

    outputs = HttpRequest().run(
        request_params(url=server.url_for("/deploy"), method="POST", json={"version": "1.2.3"}),
        make_ctx(tmp_path),
    )

    assert outputs.status == 201
    assert outputs.body == "created"
    assert outputs.json_body is None


def test_request_sends_text_body(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/note", method="PUT", data="hello").respond_with_data("ok")

    outputs = HttpRequest().run(
        request_params(url=server.url_for("/note"), method="PUT", body="hello"),
        make_ctx(tmp_path),
    )

    assert outputs.status == 200


def test_request_cuts_body_at_64_kib(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/big").respond_with_data("a" * 100_000)

    outputs = HttpRequest().run(request_params(url=server.url_for("/big")), make_ctx(tmp_path))

    assert len(outputs.body.encode()) == 64 * 1024
    assert outputs.body_truncated is True


def test_request_accepts_listed_status(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/gone").respond_with_data("gone", status=404)

    outputs = HttpRequest().run(
        request_params(url=server.url_for("/gone"), expect_status=[404]), make_ctx(tmp_path)
    )

    assert outputs.status == 404


def test_request_500_is_temporary(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/deploy").respond_with_data("database down", status=500)
    url = server.url_for("/deploy")

    error = run_request(tmp_path, url=url, method="POST", body="go")

    assert error.temporary is True
    assert error.message == (
        f"POST {url} returned HTTP 500, expected 2xx; response body: database down"
    )


def test_request_404_is_permanent(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/missing").respond_with_data("no such thing", status=404)

    error = run_request(tmp_path, url=server.url_for("/missing"))

    assert error.temporary is False
    assert "returned HTTP 404, expected 2xx" in error.message
    assert error.retry_after is None


def test_request_unexpected_2xx_is_permanent(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/accepted").respond_with_data("", status=202)

    error = run_request(tmp_path, url=server.url_for("/accepted"), expect_status=[200])

    assert error.temporary is False
    assert "returned HTTP 202, expected 200" in error.message


def test_request_429_retry_after_seconds(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/busy").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "7"}
    )

    error = run_request(tmp_path, url=server.url_for("/busy"))

    assert error.temporary is True
    assert error.retry_after == 7.0


def test_request_503_retry_after_date(server: HTTPServer, tmp_path: Path) -> None:
    clock = FakeClock()
    retry_at = format_datetime(clock.now() + timedelta(seconds=120), usegmt=True)
    server.expect_request("/maintenance").respond_with_data(
        "maintenance", status=503, headers={"Retry-After": retry_at}
    )

    with pytest.raises(ActionError) as caught:
        HttpRequest().run(
            request_params(url=server.url_for("/maintenance")), make_ctx(tmp_path, clock=clock)
        )

    assert caught.value.temporary is True
    assert caught.value.retry_after == 120.0


def test_request_invalid_retry_after_is_ignored(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/busy").respond_with_data(
        "", status=503, headers={"Retry-After": "soon"}
    )

    error = run_request(tmp_path, url=server.url_for("/busy"))

    assert error.temporary is True
    assert error.retry_after is None


def test_request_error_quotes_500_characters(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/fail").respond_with_data("e" * 2000, status=400)

    error = run_request(tmp_path, url=server.url_for("/fail"))

    assert "e" * 500 + "…" in error.message
    assert "e" * 501 not in error.message


def test_request_redirect_is_not_followed(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/old").respond_with_data(
        "", status=302, headers={"Location": server.url_for("/new")}
    )

    error = run_request(tmp_path, url=server.url_for("/old"))

    assert error.temporary is False
    assert "redirects are not followed" in error.message
    assert len(server.log) == 1


def test_request_connection_refused_is_temporary(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/health"

    error = run_request(tmp_path, url=url)

    assert error.temporary is True
    assert error.message.startswith(f"GET {url} failed: ConnectError")


def test_request_timeout_is_temporary(server: HTTPServer, tmp_path: Path, hang: Hang) -> None:
    server.expect_request("/hang").respond_with_handler(hang)
    url = server.url_for("/hang")

    with pytest.raises(ActionError) as caught:
        HttpRequest().run(request_params(url=url), make_ctx(tmp_path, timeout=0.3))

    assert caught.value.temporary is True
    assert caught.value.message.startswith(f"GET {url} timed out after 300ms")


def test_request_cancelled_sends_nothing(server: HTTPServer, tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    ctx.cancelled.set()

    with pytest.raises(ActionCancelledError):
        HttpRequest().run(request_params(url=server.url_for("/")), ctx)

    assert server.log == []


# Secret headers


def test_secret_header_reaches_server_only(
    server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", SECRET)

    def echo(request: Request) -> Response:
        token = request.headers.get("Authorization", "")
        return Response(
            json.dumps({"seen": token}),
            headers={"X-Seen": token},
            content_type="application/json",
        )

    server.expect_request("/echo", headers={"Authorization": SECRET}).respond_with_handler(echo)
    params = request_params(
        url=server.url_for("/echo"), secret_headers={"Authorization": "env:API_TOKEN"}
    )

    outputs = HttpRequest().run(params, make_ctx(tmp_path))

    assert outputs.status == 200
    assert outputs.json_body == {"seen": "***"}
    assert SECRET not in outputs.model_dump_json()
    assert SECRET not in HttpRequest().plan(params, make_ctx(tmp_path)).model_dump_json()


def test_secret_header_not_in_error(
    server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", SECRET)
    server.expect_request("/echo").respond_with_data(f"bad token {SECRET}", status=403)

    error = run_request(
        tmp_path, url=server.url_for("/echo"), secret_headers={"X-Key": "env:API_TOKEN"}
    )

    assert "bad token ***" in error.message
    assert SECRET not in error.message


def test_secret_header_from_file(server: HTTPServer, tmp_path: Path) -> None:
    (tmp_path / "token").write_text(SECRET + "\n")
    server.expect_request("/", headers={"X-Key": SECRET}).respond_with_data("ok")

    outputs = HttpRequest().run(
        request_params(url=server.url_for("/"), secret_headers={"X-Key": "file:token"}),
        make_ctx(tmp_path),
    )

    assert outputs.status == 200


def test_missing_secret_sends_nothing(
    server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MISSING_TOKEN", raising=False)

    error = run_request(
        tmp_path, url=server.url_for("/"), secret_headers={"X-Key": "env:MISSING_TOKEN"}
    )

    assert error.message.startswith("cannot read secret header X-Key:")
    assert "MISSING_TOKEN is not set" in error.message
    assert error.temporary is False
    assert server.log == []


# Parameter validation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"json": {"a": 1}, "body": "text"}, "set either json or body, not both"),
        ({"url": "ftp://127.0.0.1/file"}, "URL scheme should be 'http' or 'https'"),
        ({"headers": {"Bad Name": "x"}}, "invalid header name 'Bad Name'"),
        ({"headers": {"X-A": "one\r\nX-B: two"}}, "header X-A contains a line break"),
        (
            {"headers": {"authorization": "x"}, "secret_headers": {"Authorization": "env:TOKEN"}},
            "header Authorization is set in both headers and secret_headers",
        ),
        (
            {"secret_headers": {"X-Key": "plain-value"}},
            "invalid secret reference: write env:VARIABLE",
        ),
        ({"expect_status": [999]}, "less than or equal to 599"),
        ({"method": "BREW"}, "Input should be 'GET'"),
        ({"timeout": "5s"}, "Extra inputs are not permitted"),
    ],
)
def test_request_params_reject(raw: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HttpRequestParams.model_validate({"url": "http://127.0.0.1:9/", **raw})

    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"method": "HEAD", "json": [{"path": "status", "equals": "ok"}]},
            "a HEAD response has no body",
        ),
        (
            {"max_latency": "100ms", "warn_latency": "200ms"},
            "warn_latency must be lower than max_latency",
        ),
        ({"max_latency": 1}, "duration 1 has no unit"),
        ({"json": [{"path": "status"}]}, "needs exactly one of"),
        ({"severity": "warning"}, "Extra inputs are not permitted"),
    ],
)
def test_check_params_reject(raw: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HttpCheckParams.model_validate({"url": "http://127.0.0.1:9/", **raw})

    assert expected in str(caught.value)


# http.check


def run_check_error(tmp_path: Path, params: HttpCheckParams, **ctx: Any) -> ActionError:
    with pytest.raises(ActionError) as caught:
        HttpCheck().run(params, make_ctx(tmp_path, **ctx))
    return caught.value


def test_check_passes(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/health").respond_with_json({"status": "success", "replicas": 3})
    params = check_params(
        url=server.url_for("/health"),
        json=[{"path": "status", "equals": "success"}, {"path": "replicas", "ge": 2}],
        max_latency="5s",
    )

    outputs = HttpCheck().run(params, make_ctx(tmp_path))

    assert outputs.status == 200
    assert outputs.latency >= 0
    assert outputs.warnings == []


def test_check_plan_sends_nothing(server: HTTPServer, tmp_path: Path) -> None:
    url = server.url_for("/health")
    params = check_params(
        url=url,
        json=[{"path": "status", "equals": "success"}],
        max_latency="1s",
        secret_headers={"Authorization": "env:API_TOKEN"},
    )

    plan = HttpCheck().plan(params, make_ctx(tmp_path))

    assert server.log == []
    assert plan.mutating is False
    assert plan.summary == (
        f"check HTTP GET {url} with headers Authorization: ***, expecting status 200, "
        "latency at most 1s, status equals 'success'"
    )


def test_check_status_failure(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/health").respond_with_data("not found", status=404)
    url = server.url_for("/health")

    error = run_check_error(tmp_path, check_params(url=url))

    assert error.message == (
        f"check GET {url} failed: HTTP 404, expected 200; response body: not found"
    )
    assert error.temporary is False
    assert error.outputs["status"] == 404


def test_check_503_is_temporary(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/health").respond_with_data(
        "starting", status=503, headers={"Retry-After": "3"}
    )

    error = run_check_error(tmp_path, check_params(url=server.url_for("/health")))

    assert error.temporary is True
    assert error.retry_after == 3.0


def test_check_latency_failure(server: HTTPServer, tmp_path: Path) -> None:
    clock = FakeClock()

    def slow(request: Request) -> Response:
        clock.advance(2.0)
        return Response("{}", content_type="application/json")

    server.expect_request("/health").respond_with_handler(slow)
    params = check_params(url=server.url_for("/health"), max_latency="1s")

    error = run_check_error(tmp_path, params, clock=clock)

    assert "latency 2s exceeds max_latency 1s" in error.message
    assert "response body" not in error.message
    assert error.outputs["latency"] == 2.0


def test_check_latency_warning(server: HTTPServer, tmp_path: Path) -> None:
    clock = FakeClock()

    def slow(request: Request) -> Response:
        clock.advance(0.3)
        return Response("ok")

    server.expect_request("/health").respond_with_handler(slow)
    params = check_params(url=server.url_for("/health"), warn_latency="200ms", max_latency="1s")

    outputs = HttpCheck().run(params, make_ctx(tmp_path, clock=clock))

    assert outputs.warnings == ["latency 300ms exceeds warn_latency 200ms"]


def test_check_json_failures_listed(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/health").respond_with_json(
        {"status": "degraded", "replicas": 1, "ready": True}
    )
    params = check_params(
        url=server.url_for("/health"),
        json=[
            {"path": "status", "equals": "success"},
            {"path": "replicas", "ge": 2},
            {"path": "ready", "equals": True},
            {"path": "version", "exists": True},
        ],
    )

    error = run_check_error(tmp_path, params)

    assert "status is 'degraded', expected equals 'success'" in error.message
    assert "replicas is 1, expected ge 2.0" in error.message
    assert "version is missing, expected exists=True" in error.message
    assert "ready" not in error.message


def test_check_never_matches_substring(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/health").respond_with_json({"status": "unsuccessful"})
    params = check_params(
        url=server.url_for("/health"), json=[{"path": "status", "equals": "success"}]
    )

    error = run_check_error(tmp_path, params)

    assert "status is 'unsuccessful', expected equals 'success'" in error.message


def test_check_text_body_fails_json_conditions(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/health").respond_with_data("status: success")
    params = check_params(
        url=server.url_for("/health"), json=[{"path": "status", "equals": "success"}]
    )

    error = run_check_error(tmp_path, params)

    assert "response body is not JSON, so 1 JSON condition cannot be checked" in error.message
    assert "response body: status: success" in error.message


def test_check_lists_every_failure(server: HTTPServer, tmp_path: Path) -> None:
    clock = FakeClock()

    def bad(request: Request) -> Response:
        clock.advance(1.5)
        return Response('{"status": "down"}', status=500, content_type="application/json")

    server.expect_request("/health").respond_with_handler(bad)
    params = check_params(
        url=server.url_for("/health"),
        max_latency="1s",
        json=[{"path": "status", "equals": "up"}],
    )

    error = run_check_error(tmp_path, params, clock=clock)

    assert "HTTP 500, expected 200" in error.message
    assert "latency 1.5s exceeds max_latency 1s" in error.message
    assert "status is 'down', expected equals 'up'" in error.message
    assert error.temporary is True


# notify.webhook


def test_webhook_posts_payload(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request(
        "/hook", method="POST", json={"text": "rollback done", "run": 7}
    ).respond_with_data("", status=204)
    params = NotifyWebhookParams.model_validate(
        {"url": server.url_for("/hook"), "payload": {"text": "rollback done", "run": 7}}
    )

    outputs = NotifyWebhook().run(params, make_ctx(tmp_path))

    assert outputs.status == 204
    assert len(server.log) == 1


def test_webhook_plan_sends_nothing(server: HTTPServer, tmp_path: Path) -> None:
    url = server.url_for("/hook")
    params = NotifyWebhookParams.model_validate({"url": url, "payload": {"text": "hi"}})

    plan = NotifyWebhook().plan(params, make_ctx(tmp_path))

    assert server.log == []
    assert plan.mutating is True
    assert plan.summary == f'HTTP POST {url} with payload {{"text": "hi"}}'


def test_webhook_500_is_temporary(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/hook").respond_with_data("oops", status=500)
    params = NotifyWebhookParams.model_validate(
        {"url": server.url_for("/hook"), "payload": {"text": "hi"}}
    )

    with pytest.raises(ActionError) as caught:
        NotifyWebhook().run(params, make_ctx(tmp_path))

    assert caught.value.temporary is True
    assert "POST" in caught.value.message
