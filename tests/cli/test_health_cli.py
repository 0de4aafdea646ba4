"""`breakglass health` as a subprocess, against a threaded server on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pytest_httpserver import HTTPServer

from tests.conftest import Cli
from tests.fakes import Hang

SECRET = "s3cr3t-token-value"


def write_config(tmp_path: Path, checks: list[dict[str, Any]]) -> None:
    config = {"health": {"checks": checks}}
    (tmp_path / "breakglass.yaml").write_text(yaml.safe_dump(config))


def check(name: str, url: str, **raw: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "timeout": "500ms", **raw}


def test_health_all_pass(cli: Cli, server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/api").respond_with_json({"status": "success"})
    server.expect_request("/web").respond_with_data("ok")
    write_config(
        tmp_path,
        [
            check("api", server.url_for("/api"), json=[{"path": "status", "equals": "success"}]),
            check("web", server.url_for("/web")),
        ],
    )

    result = cli("health")

    assert result.code == 0, result.output
    assert "api" in result.stdout
    assert "web" in result.stdout
    assert "health checks passed: 2 passed, 0 warned, 0 failed" in result.stdout
    assert len(server.log) == 2


def test_health_failure_exits_1(cli: Cli, server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/api").respond_with_data("ok")
    server.expect_request("/db").respond_with_data("[db] down", status=500)
    write_config(
        tmp_path,
        [check("api", server.url_for("/api")), check("db", server.url_for("/db"))],
    )

    result = cli("health")

    assert result.code == 1, result.output
    assert "HTTP 500, expected 200; response body: [db] down" in result.stdout
    assert "health checks FAILED: 1 passed, 0 warned, 1 failed" in result.stdout
    assert "Traceback" not in result.output


def test_health_json_output(cli: Cli, server: HTTPServer, tmp_path: Path, hang: Hang) -> None:
    server.expect_request("/api").respond_with_data("ok")
    server.expect_request("/hang").respond_with_handler(hang)
    write_config(
        tmp_path,
        [check("api", server.url_for("/api")), check("hang", server.url_for("/hang"))],
    )

    result = cli("health", "--output", "json")

    assert result.code == 1, result.output
    assert result.stdout.startswith("{"), result.output
    document = json.loads(result.stdout)
    assert document["passed"] is False
    assert document["strict"] is False
    checks = {entry["name"]: entry for entry in document["checks"]}
    assert checks["api"]["status"] == "pass"
    assert checks["api"]["severity"] == "critical"
    assert isinstance(checks["api"]["latency"], float)
    assert checks["hang"]["status"] == "fail"
    assert checks["hang"]["latency"] is None
    assert checks["hang"]["message"] == f"GET {server.url_for('/hang')} timed out after 500ms"


def test_health_check_option_selects(cli: Cli, server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/web").respond_with_data("ok")
    write_config(
        tmp_path,
        [
            check("api", server.url_for("/api")),
            check("web", server.url_for("/web")),
            check("db", server.url_for("/db")),
        ],
    )

    result = cli("health", "--check", "web", "--output", "json")

    assert result.code == 0, result.output
    names = [entry["name"] for entry in json.loads(result.stdout)["checks"]]
    assert names == ["web"]
    assert len(server.log) == 1


def test_health_unknown_check_exits_2(cli: Cli, server: HTTPServer, tmp_path: Path) -> None:
    write_config(
        tmp_path,
        [check("api", server.url_for("/api")), check("web", server.url_for("/web"))],
    )

    result = cli("health", "--check", "cache")

    assert result.code == 2, result.output
    assert "unknown health check 'cache'; configured checks: api, web" in result.stderr
    assert server.log == []


def test_health_without_checks(cli: Cli, tmp_path: Path) -> None:
    write_config(tmp_path, [])

    result = cli("health")

    assert result.code == 0, result.output
    assert "no health checks are configured" in result.stdout


def test_health_without_checks_json(cli: Cli, tmp_path: Path) -> None:
    result = cli("health", "--output", "json")

    assert result.code == 0, result.output
    assert json.loads(result.stdout) == {"passed": True, "strict": False, "checks": []}
    assert "no health checks are configured" in result.stderr


def test_health_strict_counts_warnings(cli: Cli, server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/api").respond_with_data("ok")
    server.expect_request("/cache").respond_with_data("", status=503)
    write_config(
        tmp_path,
        [
            check("api", server.url_for("/api")),
            check("cache", server.url_for("/cache"), severity="warning"),
        ],
    )

    relaxed = cli("health")
    strict = cli("health", "--strict")

    assert relaxed.code == 0, relaxed.output
    assert "HTTP 503, expected 200" in relaxed.stdout
    assert "failures of severity warning (cache) count only with --strict" in relaxed.stdout
    assert strict.code == 1, strict.output
    assert "health checks FAILED" in strict.stdout


def test_health_secret_header_never_printed(cli: Cli, server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/private", headers={"Authorization": SECRET}).respond_with_data(
        f"denied for {SECRET}", status=403
    )
    write_config(
        tmp_path,
        [
            check(
                "private",
                server.url_for("/private"),
                secret_headers={"Authorization": "env:API_TOKEN"},
            )
        ],
    )

    text = cli("health", env={"API_TOKEN": SECRET})
    machine = cli("health", "--output", "json", env={"API_TOKEN": SECRET})

    assert text.code == 1, text.output
    assert "denied for ***" in text.stdout
    assert SECRET not in text.output
    assert machine.code == 1, machine.output
    assert SECRET not in machine.output
    assert len(server.log) == 2


def test_health_invalid_config_exits_2(cli: Cli, tmp_path: Path) -> None:
    write_config(tmp_path, [{"name": "api", "url": "http://127.0.0.1:9/", "timeout": 5}])

    result = cli("health")

    assert result.code == 2, result.output
    assert "duration 5 has no unit" in result.stderr


def test_health_latency_warning_shown(cli: Cli, server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/api").respond_with_data("ok")
    # No real request completes within a microsecond, so this check always warns.
    write_config(tmp_path, [check("api", server.url_for("/api"), warn_latency="0.001ms")])

    relaxed = cli("health")
    strict = cli("health", "--strict", "--output", "json")

    assert relaxed.code == 0, relaxed.output
    assert "warn" in relaxed.stdout
    assert "exceeds warn_latency 0.001ms" in relaxed.stdout
    assert "health checks passed: 0 passed, 1 warned, 0 failed" in relaxed.stdout
    assert strict.code == 1, strict.output
    assert strict.stdout.startswith("{"), strict.output
    document = json.loads(strict.stdout)
    assert document["passed"] is False
    assert document["strict"] is True
    assert document["checks"][0]["status"] == "warn"
