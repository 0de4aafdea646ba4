"""Alert, user notice and post-mortem, rendered from real incidents and runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.conftest import Cli

RUNBOOK = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {name: rollback}
steps:
  - id: roll_back
    action: shell.run
    timeout: 5s
    with: {argv: ['true']}
  - id: verify
    action: log.message
    with: {message: healthy}
"""


@pytest.fixture
def peer() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def open_incident(cli: Cli, *args: str) -> str:
    result = cli(
        "incident",
        "open",
        "checkout returns 500",
        "-s",
        "P1",
        "--service",
        "checkout",
        "--output",
        "json",
        *args,
    )
    assert result.code == 0, result.output
    return str(json.loads(result.stdout)["id"])


def test_postmortem_lists_runs_and_times(cli: Cli, tmp_path: Path) -> None:
    incident_id = open_incident(cli)
    cli("incident", "ack", incident_id)
    (tmp_path / "rollback.yaml").write_text(RUNBOOK)
    assert cli("run", str(tmp_path / "rollback.yaml"), "--incident", incident_id).code == 0
    cli("incident", "status", incident_id, "monitoring")
    cli(
        "incident",
        "action",
        "add",
        incident_id,
        "alert on checkout 5xx",
        "--owner",
        "bob",
        "--due",
        "2026-12-18",
    )
    cli("incident", "resolve", incident_id, "--summary", "a bad release was rolled back")
    written = cli("incident", "postmortem", incident_id)
    assert written.code == 0, written.output
    text = Path(written.stdout.strip()).read_text()
    assert text.startswith("# Post-mortem: checkout returns 500")
    assert "| Time to acknowledge | " in text
    assert "| Time to resolve | " in text
    assert "a bad release was rolled back" in text
    assert "| rollback | succeeded |" in text
    assert "2 of 2 step runs succeeded" in text
    assert "step roll_back succeeded" in text
    assert "| 1 | alert on checkout 5xx | bob | 2026-12-18 | open |" in text
    again = cli("incident", "postmortem", incident_id)
    assert again.code == 2
    assert "already exists" in again.stderr


def test_notice_restarts_update_clock(cli: Cli, tmp_path: Path, peer: HTTPServer) -> None:
    incident_id = open_incident(cli)
    printed = cli("incident", "notice", incident_id)
    assert printed.code == 0
    assert printed.stdout.startswith("We are investigating an issue: checkout returns 500")
    assert "Affected: checkout." in printed.stdout
    peer.expect_request("/status", method="POST").respond_with_data("ok", status=201)
    posted = cli("incident", "notice", incident_id, "--webhook", peer.url_for("/status"))
    assert posted.code == 0, posted.output
    body = json.loads(peer.log[0][0].get_data())
    assert body["incident"] == incident_id
    assert body["body"].startswith("We are investigating")
    shown = json.loads(cli("incident", "show", incident_id, "--output", "json").stdout)
    # Printing is a preview; only the published notice restarts the update clock.
    assert [item["kind"] for item in shown["timeline"]].count("notice_sent") == 1


def test_template_override_used(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "breakglass.yaml").write_text("vars: {}\n")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "notice.md.j2").write_text(
        "Custom notice for {{ incident.id }} ({{ incident.severity }})\n"
    )
    incident_id = open_incident(cli)
    assert (
        cli("incident", "notice", incident_id).stdout == f"Custom notice for {incident_id} (P1)\n"
    )


def test_broken_template_named_with_line(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "breakglass.yaml").write_text("vars: {}\n")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "alert.md.j2").write_text(
        "line one\n{% if incident.status %}\nunclosed\n"
    )
    (tmp_path / "templates" / "notice.md.j2").write_text("ok\n{{ incident.nope }}\n")
    incident_id = open_incident(cli)
    syntax = cli("incident", "alert", incident_id, "--print-only")
    assert syntax.code == 2
    assert f"template {tmp_path / 'templates' / 'alert.md.j2'}:" in syntax.stderr
    assert "Traceback" not in syntax.output
    undefined = cli("incident", "notice", incident_id)
    assert undefined.code == 2
    assert f"template {tmp_path / 'templates' / 'notice.md.j2'}:2:" in undefined.stderr
    assert "nope" in undefined.stderr


def test_alert_sent_to_commander_and_level_one(cli: Cli, tmp_path: Path, peer: HTTPServer) -> None:
    peer.expect_request("/hook", method="POST").respond_with_data("ok")
    (tmp_path / "breakglass.yaml").write_text(
        f"channels:\n  hook: {{kind: webhook, url: '{peer.url_for('/hook')}', retries: 0}}\n"
        "contacts:\n"
        "  - {id: alice, name: Alice, level: 1, channels: [hook]}\n"
        "  - {id: erin, name: Erin, role: incident commander, channels: [hook]}\n"
        "incidents:\n  escalation: {1: [alice]}\n"
    )
    incident_id = open_incident(cli, "--commander", "erin")
    sent = cli("incident", "alert", incident_id)
    assert sent.code == 0, sent.output
    assert sent.stdout.startswith(f"[P1] {incident_id}: checkout returns 500")
    contacts = sorted(json.loads(request.get_data())["contact"]["id"] for request, _ in peer.log)
    assert contacts == ["alice", "erin"]
