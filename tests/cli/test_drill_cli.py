"""The drill schedule as `breakglass drill list` shows it."""

from __future__ import annotations

import json
from pathlib import Path

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
