"""The catalog's database runbooks from the command line, against a cluster of the test's own."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.actions.test_postgres_pitr import OWNER, moment, sql
from tests.conftest import Cli
from tests.postgres import PostgresServer, find_bindir, start_server

pytestmark = pytest.mark.skipif(
    find_bindir() is None and not os.environ.get("CI"),
    reason="PostgreSQL server binaries not found",
)


@pytest.fixture
def cluster() -> Iterator[PostgresServer]:
    yield from start_server(archive=True)


def write_config(server: PostgresServer, tmp_path: Path) -> None:
    scratch = server.base / "scratch"
    scratch.mkdir()
    if os.geteuid() == 0:
        import shutil

        shutil.chown(scratch, OWNER, OWNER)
    database = {
        "host": "127.0.0.1",
        "port": server.port,
        "dbname": "postgres",
        "user": "postgres",
        "data_directory": str(server.data),
        "server_control": {"kind": "pg_ctl", "timeout": "60s"},
        "backup_dir": str(server.base / "backups"),
        "wal_archive_dir": str(server.archive),
        "restore_free_space_reserve": "1MiB",
        "checks": [
            {
                "name": "invoices restored",
                "sql": "SELECT count(*) AS n FROM invoices",
                "expect": [{"path": "rows[0].n", "ge": 1}],
            }
        ],
    }
    if os.geteuid() == 0:
        database["os_user"] = OWNER
    (tmp_path / "breakglass.yaml").write_text(yaml.safe_dump({"databases": {"app": database}}))


def pitr_runs(cli: Cli) -> list[dict[str, str]]:
    runs: list[dict[str, str]] = json.loads(cli("runs", "--output", "json").stdout)
    return [run for run in runs if run["runbook"] == "db-pitr"]


def test_dropped_table_recovered_with_db_pitr(
    cli: Cli, tmp_path: Path, cluster: PostgresServer
) -> None:
    write_config(cluster, tmp_path)
    sql(cluster, "CREATE TABLE invoices (id int)")
    sql(cluster, "INSERT INTO invoices SELECT generate_series(1, 50)")
    backed_up = cli("db", "backup", "app", timeout=120)
    assert backed_up.code == 0, backed_up.output
    target = moment()
    sql(cluster, "DROP TABLE invoices")
    inputs = ["-i", "database=app", "-i", f"target_time={target}"]
    gate = f"database 127.0.0.1:{cluster.port}/postgres"

    planned = cli("plan", "db-pitr", *inputs)
    assert planned.code == 0, planned.output
    for expected in ("base backup: breakglass-", "WAL span:", "WAL source:", "estimated duration"):
        assert expected in planned.stdout

    # Without a destructive approval naming the target, nothing is touched.
    waiting = cli("run", "db-pitr", *inputs, "--yes")
    assert waiting.code == 3, waiting.output
    assert f"--target '{gate}'" in waiting.stdout
    assert list(cluster.base.glob("data.breakglass-*")) == []
    [paused] = pitr_runs(cli)
    unnamed = cli("approve", paused["id"], "restore")
    assert unnamed.code == 2, unnamed.output
    assert "is destructive: approve it by naming its target" in unnamed.stderr

    # An approval outlives the seconds that pass before the resume.
    time.sleep(1.1)
    assert cli("approve", paused["id"], "restore", "--target", gate).code == 0
    ran = cli("resume", paused["id"], timeout=300)
    assert ran.code == 0, ran.output
    assert sql(cluster, "SELECT count(*) FROM invoices") == [(50,)]
    run_id = paused["id"]
    journal = json.loads(cli("runs", "show", run_id, "--output", "json").stdout)["journal"]
    notes = [entry["message"] for entry in journal if entry["kind"] == "note"]
    assert any("aside to" in note for note in notes)
    normalized = datetime.fromisoformat(target).astimezone(UTC).isoformat()
    assert any(normalized in note for note in notes)

    drilled = cli("drill", "db-restore", "app", timeout=300)
    assert drilled.code == 0, drilled.output
    assert "RTO" in drilled.stdout
    schedule = {
        row["name"]: row for row in json.loads(cli("drill", "list", "--output", "json").stdout)
    }
    assert schedule["database-restore"]["last_run_id"] is not None
    assert not schedule["database-restore"]["overdue"]
    assert schedule["application-rollback"]["overdue"]

    # Undo the recovery: the live cluster goes back to timeline 1, without the table. A
    # drill must now follow that timeline, not the newer one the archive still holds.
    restore = next(
        entry
        for entry in journal
        if entry["kind"] == "step_ended" and entry["step_id"] == "restore"
    )
    aside = restore["data"]["outputs"]["moved_aside"]
    assert f"restore.moved_aside: {aside}" in cli("runs", "show", run_id).stdout
    undone = cli(
        "run",
        "db-pitr-undo",
        "-i",
        "database=app",
        "-i",
        f"moved_aside={aside}",
        "--yes-destructive",
        gate,
        timeout=300,
    )
    assert undone.code == 0, undone.output
    assert sql(cluster, "SELECT to_regclass('invoices') IS NULL") == [(True,)]
    redrilled = cli("drill", "db-restore", "app", timeout=300)
    assert redrilled.code == 1, redrilled.output
    assert 'relation "invoices" does not exist' in redrilled.stdout


def test_writers_stopped_and_given_back(cli: Cli, tmp_path: Path, cluster: PostgresServer) -> None:
    from breakglass.sandbox.kubernetes import SandboxCluster

    with SandboxCluster(workdir=tmp_path / "jobs") as kubernetes:
        kubernetes.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "orders", "namespace": "shop", "labels": {"app": "orders"}},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "orders"}},
                    "template": {
                        "metadata": {"labels": {"app": "orders"}},
                        "spec": {"containers": [{"name": "orders", "image": "orders:1"}]},
                    },
                },
            }
        )
        kubernetes.settle()
        write_config(cluster, tmp_path)
        config = yaml.safe_load((tmp_path / "breakglass.yaml").read_text())
        config["databases"]["app"]["writers"] = ["orders"]
        config["kubernetes"] = {
            "kubeconfig": str(
                kubernetes.write_kubeconfig(tmp_path / "kubeconfig", namespace="shop")
            ),
            "context": "sandbox",
            "namespace": "shop",
        }
        (tmp_path / "breakglass.yaml").write_text(yaml.safe_dump(config))
        sql(cluster, "CREATE TABLE invoices (id int)")
        sql(cluster, "INSERT INTO invoices VALUES (1)")
        assert cli("db", "backup", "app", timeout=120).code == 0
        target = moment()
        sql(cluster, "DELETE FROM invoices")
        gate = f"database 127.0.0.1:{cluster.port}/postgres"
        ran = cli(
            "run",
            "db-pitr",
            "-i",
            "database=app",
            "-i",
            f"target_time={target}",
            "--yes-destructive",
            "writers of app",
            "--yes-destructive",
            gate,
            timeout=300,
        )
        assert ran.code == 0, ran.output
        assert "scaled orders from 3 to 0" in ran.stdout
        assert sql(cluster, "SELECT count(*) FROM invoices") == [(1,)]
        assert kubernetes.get("apps/v1", "Deployment", "shop", "orders")["spec"]["replicas"] == 3
