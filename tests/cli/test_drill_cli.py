"""The drill schedule as `breakglass drill list` shows it, and drills run with `drill run`."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_httpserver import HTTPServer

from tests.conftest import Cli


def test_default_schedule_all_due(cli: Cli) -> None:
    listed = cli("drill", "list")
    assert listed.code == 0, listed.output
    for name in (
        "application-rollback",
        "database-restore",
        "disaster-recovery",
        "emergency-simulation",
    ):
        assert name in listed.stdout
    assert listed.stdout.count("due now (never run)") == 4


def test_configured_schedule_replaces_the_default(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "breakglass.yaml").write_text(
        "drills:\n  schedule:\n    - {name: payments-failover, every: 14d, runbook: payment-failover}\n"
    )
    [row] = json.loads(cli("drill", "list", "--output", "json").stdout)
    assert row["name"] == "payments-failover"
    assert row["every_days"] == 14
    assert row["overdue"]


def test_invalid_schedule_named(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "breakglass.yaml").write_text(
        "drills:\n  schedule:\n    - {name: x, every: weekly}\n"
    )
    result = cli("drill", "list")
    assert result.code == 2
    assert "every" in result.stderr


CHECK_RUNBOOK = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {name: check-app, title: Check the application}
incident: {severity: P2, title: application check}
steps:
  - id: probe
    action: http.check
    timeout: 10s
    with:
      url: "{{ config.vars.app_url }}/healthz"
      expect_status: [200]
"""


def staging(tmp_path: Path, app_url: str, extra: str = "") -> None:
    """A live config pointing drills at a staging config with its own state store."""
    (tmp_path / "check-app.yaml").write_text(CHECK_RUNBOOK)
    (tmp_path / "staging.yaml").write_text(
        f"state_dir: staging-state\nvars: {{app_url: '{app_url}'}}\n{extra}"
    )
    (tmp_path / "breakglass.yaml").write_text(
        "drills:\n  staging_config: staging.yaml\n"
        "  schedule:\n    - {name: app-check, every: 7d, runbook: check-app}\n"
        "    - {name: database-restore, every: 30d, runbook: db-restore-drill}\n"
    )


def drills_by_name(cli: Cli) -> dict[str, dict[str, object]]:
    return {row["name"]: row for row in json.loads(cli("drill", "list", "--output", "json").stdout)}


def test_staging_drill_recorded(cli: Cli, tmp_path: Path, server: HTTPServer) -> None:
    server.expect_request("/healthz").respond_with_json({"status": "ok"})
    staging(tmp_path, server.url_for("").rstrip("/"))
    ran = cli("drill", "run", "check-app.yaml")
    assert ran.code == 0, ran.output
    assert "drill app-check: check-app.yaml against the staging config" in ran.stdout
    row = drills_by_name(cli)["app-check"]
    assert row["last_run"] is not None
    assert row["overdue"] is False
    # The run lives in staging's own store; the live store holds only the drill record.
    assert json.loads(cli("runs", "--output", "json").stdout) == []
    staged = json.loads(cli("--config", "staging.yaml", "runs", "--output", "json").stdout)
    assert [run["id"] for run in staged] == [row["last_run_id"]]
    # A drill opens no incident, although the runbook declares one, so no contact is paged.
    incidents = cli("--config", "staging.yaml", "incident", "list", "--all", "--output", "json")
    assert json.loads(incidents.stdout) == []
    doctor = json.loads(cli("doctor", "--offline", "--output", "json").stdout)
    subjects = {finding["subject"] for finding in doctor["findings"] if finding["level"] != "info"}
    assert "app-check" not in subjects


def test_failed_drill_does_not_count(cli: Cli, tmp_path: Path, server: HTTPServer) -> None:
    server.expect_request("/healthz").respond_with_json({"status": "down"}, status=503)
    staging(tmp_path, server.url_for("").rstrip("/"))
    ran = cli("drill", "run", "check-app.yaml", "--name", "app-check")
    assert ran.code == 1, ran.output
    row = drills_by_name(cli)["app-check"]
    assert row["last_run"] is None
    assert row["failed_attempt"]["result"] == "rolled_back"
    listed = cli("drill", "list")
    assert "ended rolled_back" in listed.stdout
    # doctor names the failed attempt as an error, next to the drill being due.
    doctor = json.loads(cli("doctor", "--offline", "--output", "json").stdout)
    messages = [
        finding["message"]
        for finding in doctor["findings"]
        if finding["subject"] == "app-check" and finding["level"] == "error"
    ]
    assert len(messages) == 1
    assert messages[0].endswith("ended rolled_back")
    history = json.loads(cli("drill", "history", "--output", "json").stdout)
    assert [record["result"] for record in history] == ["rolled_back"]
    assert [step for step, _ in history[0]["details"]["step_seconds"]] == ["probe"]


def test_drill_name_must_be_scheduled(cli: Cli, tmp_path: Path, server: HTTPServer) -> None:
    staging(tmp_path, server.url_for("").rstrip("/"))
    refused = cli("drill", "run", "check-app.yaml", "--name", "aplication-rollback")
    assert refused.code == 2
    assert "no scheduled drill is named 'aplication-rollback'" in refused.stderr
    assert "app-check" in refused.stderr
    # A scheduled drill of another runbook is rejected too.
    refused = cli("drill", "run", "check-app.yaml", "--name", "database-restore")
    assert refused.code == 2
    assert "'database-restore' runs db-restore-drill, not check-app.yaml" in refused.stderr
    assert json.loads(cli("drill", "history", "--output", "json").stdout) == []


def test_drill_rejects_live_config(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "check-app.yaml").write_text(CHECK_RUNBOOK)
    refused = cli("drill", "run", "check-app.yaml")
    assert refused.code == 2
    assert "never run against the live config" in refused.stderr
    assert "--sandbox" in refused.stderr

    (tmp_path / "breakglass.yaml").write_text("drills:\n  staging_config: breakglass.yaml\n")
    refused = cli("drill", "run", "check-app.yaml")
    assert refused.code == 2
    assert "is the live config" in refused.stderr


def test_staging_sharing_live_target_rejected(cli: Cli, tmp_path: Path) -> None:
    # Another database on the same cluster, written with another name for the host: a
    # restore drill would roll the live database back with it.
    staging(
        tmp_path,
        "http://127.0.0.1:9",
        extra="databases:\n  app: {host: localhost, port: 9, dbname: app, user: bg}\n",
    )
    (tmp_path / "breakglass.yaml").write_text(
        "drills:\n  staging_config: staging.yaml\n"
        "databases:\n  billing: {host: 127.0.0.1, port: 9, dbname: billing, user: bg}\n"
    )
    refused = cli("drill", "run", "check-app.yaml")
    assert refused.code == 2
    assert "shares targets with the live config: PostgreSQL cluster localhost:9" in refused.stderr
    assert "live: billing at 127.0.0.1:9" in refused.stderr

    # The same API server, written with a trailing slash and another host name.
    kubernetes = "kubernetes: {{server: '{}', namespace: shop}}\n"
    (tmp_path / "staging.yaml").write_text(
        "state_dir: staging-state\n" + kubernetes.format("https://localhost:6443/")
    )
    (tmp_path / "breakglass.yaml").write_text(
        "drills:\n  staging_config: staging.yaml\n" + kubernetes.format("https://127.0.0.1:6443")
    )
    refused = cli("drill", "run", "check-app.yaml")
    assert refused.code == 2
    assert "Kubernetes API server https://localhost:6443" in refused.stderr

    # The same state store is a shared target too, also through a symlink.
    (tmp_path / "breakglass.yaml").write_text(
        "state_dir: live-state\ndrills:\n  staging_config: staging.yaml\n"
    )
    (tmp_path / "live-state").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "live-state")
    (tmp_path / "staging.yaml").write_text(
        "state_dir: alias\nvars: {app_url: 'http://127.0.0.1:9'}\n"
    )
    refused = cli("drill", "run", "check-app.yaml")
    assert refused.code == 2
    assert "state store" in refused.stderr
    assert json.loads(cli("runs", "--output", "json").stdout) == []


def test_sandbox_drill_needs_sandbox(cli: Cli, tmp_path: Path) -> None:
    refused = cli("drill", "run", "frontend-rollback", "--sandbox", "--dir", str(tmp_path / "no"))
    assert refused.code == 2
    assert "no sandbox is up" in refused.stderr
