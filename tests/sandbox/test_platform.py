"""`breakglass sandbox up|down|status` as a user runs them: real processes, real files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.postgres import find_bindir

pytestmark = pytest.mark.skipif(find_bindir() is None, reason="PostgreSQL is not installed")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent has not collected it yet.
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def processes_mentioning(*paths: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(str(path) in cmdline for path in paths):
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_up_down_twice_leaves_nothing(cli: Cli, tmp_path: Path) -> None:
    directory = tmp_path / "sandbox"
    for _ in range(2):
        started = cli("sandbox", "up", "--dir", str(directory), timeout=300)
        assert started.code == 0, started.output
        recorded = json.loads((directory / "sandbox.json").read_text())
        base = Path(recorded["postgres_base"])
        daemon = recorded["daemon_pid"]
        postmaster = int((base / "data" / "postmaster.pid").read_text().split()[0])
        assert alive(daemon)
        assert alive(postmaster)

        status = cli("sandbox", "status", "--dir", str(directory), "--output", "json")
        assert status.code == 0, status.output
        assert json.loads(status.stdout)["up"] is True

        # The config it wrote reaches every piece: the broken backend release fails its check.
        config = str(directory / "breakglass.yaml")
        health = cli("--config", config, "health", "--output", "json")
        assert health.code == 1, health.output
        results = {check["name"]: check for check in json.loads(health.stdout)["checks"]}
        assert results["frontend"]["status"] == "pass"
        assert results["backend"]["status"] == "fail"
        assert "2.5.0" in results["backend"]["message"]
        backups = cli("--config", config, "db", "backups", "app", "--output", "json")
        assert backups.code == 0, backups.output
        assert len(json.loads(backups.stdout)) == 1

        stopped = cli("sandbox", "down", "--dir", str(directory), timeout=120)
        assert stopped.code == 0, stopped.output
        assert not directory.exists()
        assert not base.exists()
        assert not alive(daemon)
        assert not alive(postmaster)
        assert processes_mentioning(directory, base) == []


def test_up_rejects_busy_directory(cli: Cli, tmp_path: Path) -> None:
    directory = tmp_path / "busy"
    directory.mkdir()
    (directory / "notes.txt").write_text("keep me")
    refused = cli("sandbox", "up", "--dir", str(directory))
    assert refused.code == 2, refused.output
    assert "is not a sandbox" in refused.stderr
    assert sorted(path.name for path in directory.iterdir()) == ["notes.txt"]


def test_up_rejects_uncreatable_directory(cli: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    refused = cli("sandbox", "up", "--dir", str(blocker / "sandbox"))
    assert refused.code == 2, refused.output
    assert "cannot create the sandbox directory" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_status_and_down_without_sandbox(cli: Cli, tmp_path: Path) -> None:
    directory = tmp_path / "none"
    status = cli("sandbox", "status", "--dir", str(directory))
    assert status.code == 1
    assert "no sandbox" in status.stdout
    stopped = cli("sandbox", "down", "--dir", str(directory))
    assert stopped.code == 0
    assert "nothing to stop" in stopped.stdout
    assert not directory.exists()


def test_sandbox_drill_counts_as_scheduled(cli: Cli, tmp_path: Path) -> None:
    directory = tmp_path / "sandbox"
    started = cli("sandbox", "up", "--dir", str(directory), timeout=300)
    assert started.code == 0, started.output
    try:
        drill = cli(
            "drill", "run", "frontend-rollback", "--sandbox", "--dir", str(directory),
            "-i", "check=frontend", "--yes", timeout=300,
        )  # fmt: skip
        assert drill.code == 0, drill.output
        assert "drill application-rollback: frontend-rollback against the sandbox" in drill.stdout
        assert "frontend rolled back from revision 3 to 2" in drill.stdout
        [row] = [
            row
            for row in json.loads(cli("drill", "list", "--output", "json").stdout)
            if row["name"] == "application-rollback"
        ]
        assert row["last_run"] is not None
        assert row["overdue"] is False
        # The run itself is in the sandbox's store, not the live one.
        assert json.loads(cli("runs", "--output", "json").stdout) == []
    finally:
        stopped = cli("sandbox", "down", "--dir", str(directory), timeout=120)
        assert stopped.code == 0, stopped.output


def test_snapshot_diff_compares_migration_head(cli: Cli, tmp_path: Path) -> None:
    directory = tmp_path / "sandbox"
    started = cli("sandbox", "up", "--dir", str(directory), timeout=300)
    assert started.code == 0, started.output
    config = ["--config", str(directory / "breakglass.yaml")]
    try:
        created = cli(*config, "snapshot", "create", "before", timeout=120)
        assert created.code == 0, created.output
        assert "migrations of app: 0004_order_currency" in created.stdout
        same = cli(*config, "snapshot", "diff", "before", timeout=120)
        assert same.code == 0, same.output
        assert "= migrations of app: 0004_order_currency" in same.stdout

        port = json.loads((directory / "sandbox.json").read_text())["postgres"]["port"]
        rolled = cli(
            *config, "run", "backend-rollback", "-i", "database=app",
            "-i", "migration_version=0003_subscriptions", "--yes",
            "--yes-destructive", f"database 127.0.0.1:{port}/app", timeout=300,
        )  # fmt: skip
        assert rolled.code == 0, rolled.output
        differs = cli(*config, "snapshot", "diff", "before", "--output", "json", timeout=120)
        assert differs.code == 1, differs.output
        report = json.loads(differs.stdout)
        # Live state first, as for Deployments: what a restore of the snapshot would change.
        assert report["migration"] == (
            "migrations of app: 0003_subscriptions -> the snapshot's 0004_order_currency"
        )
        assert "2.5.0" in report["deployments"]["backend"]
    finally:
        stopped = cli("sandbox", "down", "--dir", str(directory), timeout=120)
        assert stopped.code == 0, stopped.output
