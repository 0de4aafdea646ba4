"""`breakglass doctor` findings: each overdue or stale case, lint failures and unreachable targets."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from breakglass.store import drills as drill_repo
from breakglass.store.db import open_store
from tests.conftest import Cli

RUNBOOK = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {{name: {name}, reviewed: {reviewed}}}
steps:
  - id: note
    action: {action}
    with: {{message: hello}}
"""


def findings(cli: Cli, *args: str) -> tuple[int, list[dict[str, str]]]:
    result = cli("doctor", "--output", "json", *args)
    return result.code, json.loads(result.stdout)["findings"]


def about(found: list[dict[str, str]], subject: str) -> list[str]:
    return [item["message"] for item in found if item["subject"] == subject]


def test_each_stale_or_overdue_case_reported(
    cli: Cli, tmp_path: Path, isolated_state: Path
) -> None:
    today = date.today()
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    (runbooks / "fresh.yaml").write_text(
        RUNBOOK.format(name="fresh", reviewed=today, action="log.message")
    )
    (runbooks / "stale.yaml").write_text(
        RUNBOOK.format(name="stale", reviewed=today - timedelta(days=120), action="log.message")
    )
    (runbooks / "broken.yaml").write_text(
        RUNBOOK.format(name="broken", reviewed=today, action="log.mesage")
    )
    (tmp_path / "breakglass.yaml").write_text(
        "runbook_dirs: [runbooks]\n"
        "drills:\n  schedule:\n"
        "    - {name: db-restore, every: 30d, runbook: db-restore-drill}\n"
        "    - {name: rollback, every: 7d, runbook: fresh}\n"
        "    - {name: failover, every: 14d}\n"
        "contacts:\n"
        f"  - {{id: alice, name: Alice, reviewed: {today - timedelta(days=45)}}}\n"
        f"  - {{id: bob, name: Bob, reviewed: {today}}}\n"
        "  - {id: carol, name: Carol}\n"
        "databases:\n  app: {host: 127.0.0.1, port: 9, dbname: app, user: u}\n"
    )
    # The state store exists once any command ran; then record drills straight into it.
    assert cli("runs").code == 0
    store = open_store(f"sqlite:///{isolated_state / 'state.db'}")
    now = datetime.now(UTC)
    with store.write() as connection:
        for name, age in (("db-restore", 3), ("rollback", 10)):
            drill_repo.add_drill(
                connection,
                name=name,
                runbook=None,
                run_id="RUN-20261101-001",
                result="succeeded",
                details={},
                started_at=now - timedelta(days=age),
                finished_at=now - timedelta(days=age),
                actor="tester",
            )

    code, found = findings(cli)
    assert code == 1
    assert about(found, "db-restore") == []
    assert "overdue since" in about(found, "rollback")[0]
    assert about(found, "failover") == ["never run; it is due every 14 days"]
    assert "over a month ago" in about(found, "alice")[0]
    assert about(found, "bob") == []
    assert "never reviewed" in about(found, "carol")[0]
    assert "over a quarter ago" in about(found, "stale")[0]
    assert about(found, "fresh") == []
    assert any("unknown action" in message for message in about(found, "broken"))
    [unreachable] = about(found, "database app")
    assert "127.0.0.1:9 cannot be reached" in unreachable

    code, offline = findings(cli, "--offline")
    assert about(offline, "database app") == []
    paths = {item["subject"]: item["message"] for item in offline if item["area"] == "paths"}
    assert paths["state directory"] == str(isolated_state)


def test_runbook_used_after_review(cli: Cli, tmp_path: Path) -> None:
    today = date.today()
    reviewed = today - timedelta(days=3)
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    for name in ("used", "unused"):
        (runbooks / f"{name}.yaml").write_text(
            RUNBOOK.format(name=name, reviewed=reviewed, action="log.message")
        )
    (tmp_path / "breakglass.yaml").write_text("runbook_dirs: [runbooks]\n")
    opened = cli("incident", "open", "checkout down", "--severity", "P2", "--output", "json")
    assert opened.code == 0, opened.output
    incident = json.loads(opened.stdout)["id"]
    assert cli("run", "used", "--incident", incident).code == 0
    # A run outside any incident does not make a review stale.
    assert cli("run", "unused").code == 0

    code, found = findings(cli, "--offline")
    assert code == 1
    assert about(found, "used") == [
        f"used in an incident on {today.isoformat()}, after its last review ({reviewed.isoformat()})"
    ]
    assert about(found, "unused") == []
