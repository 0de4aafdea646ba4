from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import Cli

RUNBOOK = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {name: emergency}
incident: {severity: P1, title: "emergency on {{ inputs.service }}", services: [api]}
inputs:
  service: {type: string, default: api}
steps:
  - id: look
    action: log.message
    with: {message: "incident {{ run.incident }}"}
  - id: act
    action: shell.run
    timeout: 5s
    with: {argv: ['true']}
"""


def test_open_ack_resolve_flow(cli: Cli) -> None:
    opened = cli(
        "incident",
        "open",
        "checkout returns 500",
        "--severity",
        "P1",
        "--service",
        "checkout",
        "--output",
        "json",
    )
    assert opened.code == 0, opened.output
    incident = json.loads(opened.stdout)
    assert incident["id"].startswith("INC-")
    assert [deadline["name"] for deadline in incident["deadlines"]] == [
        "response",
        "resolution",
        "next update",
    ]
    assert incident["deadlines"][0]["text"].startswith("response due in ")
    incident_id = incident["id"]
    assert cli("incident", "ack", incident_id).code == 0
    again = cli("incident", "ack", incident_id)
    assert "was already acknowledged by tester" in again.stdout
    listed = cli("incident", "list")
    assert f"{incident_id} P1 investigating: checkout returns 500" in listed.stdout
    assert cli("incident", "resolve", incident_id, "--summary", "rolled back").code == 0
    assert cli("incident", "list").stdout.strip() == "no open incidents"


def test_run_attached_appears_on_timeline(cli: Cli, tmp_path: Path) -> None:
    incident_id = json.loads(
        cli("incident", "open", "api down", "-s", "P0", "--output", "json").stdout
    )["id"]
    runbook = tmp_path / "emergency.yaml"
    runbook.write_text(RUNBOOK)
    ran = cli("run", str(runbook), "--incident", incident_id)
    assert ran.code == 0, ran.output
    shown = json.loads(cli("incident", "show", incident_id, "--output", "json").stdout)
    messages = [item["message"] for item in shown["timeline"]]
    assert messages[0] == "P0 incident opened: api down"
    assert any(message.startswith("step look succeeded") for message in messages)
    assert any(message.startswith("step act succeeded") for message in messages)
    assert messages[-1].startswith("run RUN-")
    assert "ended succeeded" in messages[-1]
    journal = json.loads(
        cli("runs", "show", shown["timeline"][1]["source"], "--output", "json").stdout
    )["journal"]
    look = next(
        entry for entry in journal if entry["kind"] == "step_ended" and entry["step_id"] == "look"
    )
    assert look["data"]["outputs"]["message"] == f"incident {incident_id}"


def test_runbook_opens_declared_incident(cli: Cli, tmp_path: Path) -> None:
    runbook = tmp_path / "emergency.yaml"
    runbook.write_text(RUNBOOK)
    ran = cli("run", str(runbook), "-i", "service=payments")
    assert ran.code == 0, ran.output
    [incident] = json.loads(cli("incident", "list", "--output", "json").stdout)
    assert incident["severity"] == "P1"
    assert incident["title"] == "emergency on payments"
    assert incident["services"] == ["api"]
    exported = [
        json.loads(line) for line in cli("incident", "export", incident["id"]).stdout.splitlines()
    ]
    opened = next(item for item in exported if item["kind"] == "opened")
    assert opened["message"].startswith("P1 incident opened by run RUN-")
    assert any(item["kind"] == "run_ended" for item in exported)


def test_resolved_incident_rejects_runs(cli: Cli, tmp_path: Path) -> None:
    incident_id = json.loads(cli("incident", "open", "old", "-s", "P3", "--output", "json").stdout)[
        "id"
    ]
    cli("incident", "resolve", incident_id)
    runbook = tmp_path / "emergency.yaml"
    runbook.write_text(RUNBOOK)
    refused = cli("run", str(runbook), "--incident", incident_id)
    assert refused.code == 2
    assert "is resolved; runs attach only to open incidents" in refused.stderr
    assert json.loads(cli("runs", "--output", "json").stdout) == []


def test_concurrent_opens_get_distinct_ids(cli: Cli, tmp_path: Path) -> None:
    openers = [
        subprocess.Popen(
            cli.command("incident", "open", f"outage {index}", "-s", "P2", "--output", "json"),
            cwd=tmp_path,
            env=cli.env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(4)
    ]
    ids = {json.loads(opener.communicate(timeout=60)[0])["id"] for opener in openers}
    assert len(ids) == 4


def test_bad_input_is_clear(cli: Cli) -> None:
    bad_severity = cli("incident", "open", "x", "-s", "P9")
    assert bad_severity.code == 2
    assert "invalid severity 'P9': use P0, P1, P2 or P3" in bad_severity.stderr
    missing = cli("incident", "note", "INC-20991231-001", "hello")
    assert missing.code == 2
    assert "incident INC-20991231-001 not found" in missing.stderr
    bad_due = cli("incident", "action", "add", "INC-20991231-001", "fix", "--due", "soon")
    assert bad_due.code == 2
    assert "invalid due date 'soon'" in bad_due.stderr
    for result in (bad_severity, missing, bad_due):
        assert "Traceback" not in result.output


def test_contacts_flag_stale_reviews(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "breakglass.yaml").write_text(
        "channels:\n  slack: {kind: slack, url: 'env:BG_SLACK_URL'}\n"
        "contacts:\n"
        "  - {id: alice, name: Alice, role: on-call engineer, level: 1, channels: [slack], reviewed: 2020-01-01}\n"
        "  - {id: cdn, name: CDN support, external: cdn}\n"
        "incidents:\n  escalation: {1: [alice]}\n"
    )
    listed = cli("contacts", "--output", "json")
    assert listed.code == 0, listed.output
    rows = {row["id"]: row for row in json.loads(listed.stdout)["contacts"]}
    assert rows["alice"]["stale"] is True
    assert rows["cdn"]["stale"] is True
    text = cli("contacts").stdout
    assert "STALE: review this contact" in text
    assert "escalation level 1: alice" in text


def test_escalation_names_unknown_contact(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "breakglass.yaml").write_text("incidents:\n  escalation: {1: [ghost]}\n")
    result = cli("config", "validate")
    assert result.code == 2
    assert "escalation level 1 names contact 'ghost', which is not in contacts" in result.stderr
