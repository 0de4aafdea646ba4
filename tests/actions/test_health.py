"""The health suite and health.run against a real threaded server on 127.0.0.1."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from breakglass.actions import health
from breakglass.actions.base import ActionCancelledError, ActionContext, ActionError
from breakglass.actions.health import (
    CheckResult,
    CheckStatus,
    HealthRun,
    HealthRunParams,
    SuiteReport,
    run_suite,
    select_checks,
)
from breakglass.config.loading import LoadedConfig
from breakglass.config.model import HttpHealthCheck, PlatformConfig
from breakglass.errors import NotFoundError
from tests.fakes import HANG_SECONDS, FakeClock, Hang, closed_port


def health_check(name: str, url: str, **raw: Any) -> HttpHealthCheck:
    return HttpHealthCheck.model_validate({"name": name, "url": url, "timeout": "500ms", **raw})


def make_ctx(tmp_path: Path, checks: list[HttpHealthCheck], **kwargs: Any) -> ActionContext:
    model = PlatformConfig.model_validate({"health": {"checks": [c.model_dump() for c in checks]}})
    config = LoadedConfig(model, tmp_path / "breakglass.yaml", "0" * 64)
    return ActionContext(config=config, **kwargs)


def by_name(report: SuiteReport) -> dict[str, CheckResult]:
    return {result.name: result for result in report.results}


# run_suite


def test_suite_survives_hang_and_500(server: HTTPServer, tmp_path: Path, hang: Hang) -> None:
    for name in ("api", "web", "worker"):
        server.expect_request(f"/{name}").respond_with_json({"status": "success"})
    server.expect_request("/hang").respond_with_handler(hang)
    server.expect_request("/broken").respond_with_data("internal error", status=500)
    checks = [
        health_check("api", server.url_for("/api"), json=[{"path": "status", "equals": "success"}]),
        health_check("hang", server.url_for("/hang")),
        health_check("web", server.url_for("/web")),
        health_check("broken", server.url_for("/broken")),
        health_check("worker", server.url_for("/worker")),
    ]

    started = time.monotonic()
    report = run_suite(checks, base_dir=tmp_path)
    elapsed = time.monotonic() - started

    results = by_name(report)
    assert [result.name for result in report.results] == [
        "api",
        "hang",
        "web",
        "broken",
        "worker",
    ]
    for name in ("api", "web", "worker"):
        assert results[name].status == CheckStatus.PASS
        assert results[name].message == ""
        assert results[name].latency is not None
    assert results["hang"].status == CheckStatus.FAIL
    assert results["hang"].message == f"GET {server.url_for('/hang')} timed out after 500ms"
    assert results["hang"].latency is None
    assert results["broken"].status == CheckStatus.FAIL
    assert results["broken"].message == "HTTP 500, expected 200; response body: internal error"
    assert report.passed(strict=False) is False
    # Only the hanging check's timeout has to pass, not the handler's HANG_SECONDS.
    assert elapsed < HANG_SECONDS / 2


def test_suite_refused_connection_fails_alone(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/ok").respond_with_data("ok")
    url = f"http://127.0.0.1:{closed_port()}/health"
    checks = [health_check("down", url), health_check("up", server.url_for("/ok"))]

    results = by_name(run_suite(checks, base_dir=tmp_path))

    assert results["down"].status == CheckStatus.FAIL
    assert results["down"].message.startswith(f"GET {url} failed: ConnectError")
    assert results["up"].status == CheckStatus.PASS


def test_suite_raising_check_fails_alone(
    server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.expect_request("/ok").respond_with_data("ok")
    server.expect_request("/bug").respond_with_data("ok")
    evaluate = health.evaluate_reply

    def evaluate_or_raise(params: Any, reply: Any, now: datetime) -> Any:
        if str(params.url).endswith("/bug"):
            raise RuntimeError("evaluation bug")
        return evaluate(params, reply, now)

    monkeypatch.setattr(health, "evaluate_reply", evaluate_or_raise)
    checks = [
        health_check("bug", server.url_for("/bug")),
        health_check("ok", server.url_for("/ok")),
    ]

    results = by_name(run_suite(checks, base_dir=tmp_path))

    assert results["bug"].status == CheckStatus.FAIL
    assert results["bug"].message == "internal error: RuntimeError: evaluation bug"
    assert results["ok"].status == CheckStatus.PASS


def test_suite_json_condition_sentence(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/health").respond_with_json({"status": "unsuccessful"})
    check = health_check(
        "api", server.url_for("/health"), json=[{"path": "status", "equals": "success"}]
    )

    result = run_suite([check], base_dir=tmp_path).results[0]

    assert result.status == CheckStatus.FAIL
    assert result.message == "status is 'unsuccessful', expected equals 'success'"


def test_suite_latency_warning(server: HTTPServer, tmp_path: Path) -> None:
    clock = FakeClock()

    def slow(request: Request) -> Response:
        clock.advance(0.3)
        return Response("ok")

    server.expect_request("/slow").respond_with_handler(slow)
    check = health_check("slow", server.url_for("/slow"), warn_latency="200ms")

    report = run_suite([check], base_dir=tmp_path, clock=clock)

    result = report.results[0]
    assert result.status == CheckStatus.WARN
    assert result.message == "latency 300ms exceeds warn_latency 200ms"
    assert result.latency == pytest.approx(0.3)
    assert report.passed(strict=False) is True
    assert report.passed(strict=True) is False


def test_suite_warning_severity_fails_only_strict(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/ok").respond_with_data("ok")
    server.expect_request("/cache").respond_with_data("down", status=503)
    checks = [
        health_check("api", server.url_for("/ok")),
        health_check("cache", server.url_for("/cache"), severity="warning"),
    ]

    report = run_suite(checks, base_dir=tmp_path)

    assert by_name(report)["cache"].status == CheckStatus.FAIL
    assert report.passed(strict=False) is True
    assert report.passed(strict=True) is False
    assert [result.name for result in report.failures(strict=True)] == ["cache"]


def test_suite_missing_secret_fails_alone(
    server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MISSING_TOKEN", raising=False)
    server.expect_request("/ok").respond_with_data("ok")
    checks = [
        health_check(
            "private", server.url_for("/ok"), secret_headers={"X-Key": "env:MISSING_TOKEN"}
        ),
        health_check("public", server.url_for("/ok")),
    ]

    results = by_name(run_suite(checks, base_dir=tmp_path))

    assert results["private"].status == CheckStatus.FAIL
    assert "MISSING_TOKEN is not set" in results["private"].message
    assert results["public"].status == CheckStatus.PASS
    assert len(server.log) == 1


def test_suite_sends_secret_header(
    server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cr3t-token-value"
    monkeypatch.setenv("API_TOKEN", secret)
    server.expect_request("/private", headers={"Authorization": secret}).respond_with_data("ok")
    server.expect_request("/echo").respond_with_data(f"rejected {secret}", status=401)
    checks = [
        health_check(
            "private", server.url_for("/private"), secret_headers={"Authorization": "env:API_TOKEN"}
        ),
        health_check(
            "echo", server.url_for("/echo"), secret_headers={"Authorization": "env:API_TOKEN"}
        ),
    ]

    report = run_suite(checks, base_dir=tmp_path)

    assert by_name(report)["private"].status == CheckStatus.PASS
    assert by_name(report)["echo"].message.endswith("response body: rejected ***")
    assert secret not in report.model_dump_json()


def test_inconsistent_check_rejected_at_load(server: HTTPServer) -> None:
    with pytest.raises(ValidationError, match="warn_latency must be lower than max_latency"):
        health_check("odd", server.url_for("/ok"), max_latency="1s", warn_latency="2s")
    assert server.log == []


def test_suite_empty_runs_nothing(tmp_path: Path) -> None:
    report = run_suite([], base_dir=tmp_path)

    assert report.results == []
    assert report.passed(strict=True) is True


# select_checks


def test_select_checks_by_name() -> None:
    checks = [health_check(name, "http://127.0.0.1:9/") for name in ("a", "b", "c")]

    assert select_checks(checks, None) == checks
    assert [check.name for check in select_checks(checks, ["c", "a", "c"])] == ["c", "a"]


def test_select_checks_unknown_name() -> None:
    checks = [health_check(name, "http://127.0.0.1:9/") for name in ("api", "web")]

    with pytest.raises(NotFoundError) as caught:
        select_checks(checks, ["api", "db"])

    assert caught.value.message == "unknown health check 'db'; configured checks: api, web"


def test_select_checks_none_configured() -> None:
    with pytest.raises(NotFoundError) as caught:
        select_checks([], ["api"])

    assert "configured checks: none" in caught.value.message


# health.run


def test_health_run_passes(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/ok").respond_with_data("ok")
    ctx = make_ctx(tmp_path, [health_check("api", server.url_for("/ok"))])

    outputs = HealthRun().run(HealthRunParams(), ctx)

    assert outputs.passed is True
    assert isinstance(outputs.report, SuiteReport)
    assert outputs.report.results[0].status == CheckStatus.PASS


def test_health_run_fails_with_outputs(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/ok").respond_with_data("ok")
    server.expect_request("/broken").respond_with_data("", status=500)
    checks = [
        health_check("api", server.url_for("/ok")),
        health_check("db", server.url_for("/broken")),
    ]

    with pytest.raises(ActionError) as caught:
        HealthRun().run(HealthRunParams(), make_ctx(tmp_path, checks))

    assert caught.value.message == "health checks failed: db (fail): HTTP 500, expected 200"
    assert caught.value.outputs["passed"] is False
    assert caught.value.outputs["report"]["results"][0]["status"] == "pass"


def test_health_run_strict_fails_on_warning(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/cache").respond_with_data("", status=503)
    checks = [health_check("cache", server.url_for("/cache"), severity="warning")]
    ctx = make_ctx(tmp_path, checks)

    assert HealthRun().run(HealthRunParams(strict=False), ctx).passed is True
    with pytest.raises(ActionError):
        HealthRun().run(HealthRunParams(strict=True), ctx)


def test_health_run_selected_checks(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/api").respond_with_data("ok")
    checks = [
        health_check("api", server.url_for("/api")),
        health_check("web", server.url_for("/web")),
    ]

    outputs = HealthRun().run(HealthRunParams(checks=["api"]), make_ctx(tmp_path, checks))

    assert [result.name for result in outputs.report.results] == ["api"]
    assert len(server.log) == 1


def test_health_run_unknown_check(server: HTTPServer, tmp_path: Path) -> None:
    checks = [health_check("api", server.url_for("/api"))]

    with pytest.raises(ActionError) as caught:
        HealthRun().run(HealthRunParams(checks=["db"]), make_ctx(tmp_path, checks))

    assert caught.value.message == "unknown health check 'db'; configured checks: api"
    assert server.log == []


def test_health_run_step_timeout_caps_checks(
    server: HTTPServer, tmp_path: Path, hang: Hang
) -> None:
    server.expect_request("/hang").respond_with_handler(hang)
    check = health_check("hang", server.url_for("/hang"), timeout="5s")

    with pytest.raises(ActionError) as caught:
        HealthRun().run(HealthRunParams(), make_ctx(tmp_path, [check], timeout=0.3))

    assert "timed out after 300ms" in caught.value.message


def test_health_run_cancelled(server: HTTPServer, tmp_path: Path, hang: Hang) -> None:
    server.expect_request("/hang").respond_with_handler(hang)
    ctx = make_ctx(tmp_path, [health_check("hang", server.url_for("/hang"), timeout="5s")])
    ctx.cancelled.set()

    with pytest.raises(ActionCancelledError):
        HealthRun().run(HealthRunParams(), ctx)


def test_health_run_plan_sends_nothing(server: HTTPServer, tmp_path: Path) -> None:
    checks = [
        health_check("api", server.url_for("/api")),
        health_check("web", server.url_for("/web")),
    ]

    plan = HealthRun().plan(HealthRunParams(strict=True), make_ctx(tmp_path, checks))

    assert server.log == []
    assert plan.summary == "run 2 health checks (strict): api, web"
    assert plan.target == f"127.0.0.1:{server.port}"
    assert plan.mutating is False


def test_health_run_without_checks(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, [])

    plan = HealthRun().plan(HealthRunParams(), ctx)
    outputs = HealthRun().run(HealthRunParams(), ctx)

    assert "no health checks are configured" in plan.warnings[0]
    assert outputs.passed is True
    assert outputs.report.results == []
