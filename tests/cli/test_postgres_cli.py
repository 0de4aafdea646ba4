"""A runbook of pg.* steps, planned and run from the command line against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from tests.conftest import Cli
from tests.postgres import PostgresServer

RUNBOOK = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {name: db-check}
steps:
  - id: backup
    action: pg.dump
    with: {database: app, label: safety}
  - id: count
    action: pg.query
    with:
      database: app
      sql: SELECT count(*) AS n FROM pg_catalog.pg_tables WHERE schemaname = 'public'
      expect: [{path: "rows[0].n", equals: 1}]
  - id: report
    action: log.message
    with: {message: "backup {{ steps.backup.outputs.sha256 }} has {{ steps.backup.outputs.entries }} entries"}
"""


def test_plan_and_run_pg_steps(cli: Cli, tmp_path: Path, postgres_server: PostgresServer) -> None:
    dbname = postgres_server.create_database()
    with psycopg.connect(
        host="127.0.0.1", port=postgres_server.port, user="postgres", dbname=dbname, autocommit=True
    ) as connection:
        connection.execute("CREATE TABLE accounts (id int PRIMARY KEY)")
    (tmp_path / "breakglass.yaml").write_text(
        "databases:\n"
        f"  app: {{host: 127.0.0.1, port: {postgres_server.port}, dbname: {dbname}, user: postgres, password: 'env:BG_PG_PASSWORD'}}\n"
    )
    (tmp_path / "db-check.yaml").write_text(RUNBOOK)
    env = {"BG_PG_PASSWORD": "pg-secret-password-77"}
    planned = cli("plan", str(tmp_path / "db-check.yaml"), env=env)
    assert planned.code == 0, planned.output
    assert f"where: database 127.0.0.1:{postgres_server.port}/{dbname}" in planned.stdout
    ran = cli("run", str(tmp_path / "db-check.yaml"), env=env)
    assert ran.code == 0, ran.output
    [run] = json.loads(cli("runs", "--output", "json").stdout)
    shown = cli("runs", "show", run["id"], "--output", "json", env=env).stdout
    assert "pg-secret-password-77" not in shown
    journal = json.loads(shown)["journal"]
    backup = next(
        entry for entry in journal if entry["kind"] == "step_ended" and entry["step_id"] == "backup"
    )
    assert Path(backup["data"]["outputs"]["path"]).is_file()
    [recorded] = json.loads(cli("db", "backups", "app", "--output", "json").stdout)
    assert recorded["kind"] == "dump"
    assert recorded["run_id"] == run["id"]
    assert recorded["sha256"] == backup["data"]["outputs"]["sha256"]
    assert recorded["details"]["where"] == f"127.0.0.1:{postgres_server.port}/{dbname}"
    assert "dump" in cli("db", "backups").stdout


def test_empty_database_dump_refused(
    cli: Cli, tmp_path: Path, postgres_server: PostgresServer
) -> None:
    dbname = postgres_server.create_database()
    (tmp_path / "breakglass.yaml").write_text(
        f"databases:\n  app: {{host: 127.0.0.1, port: {postgres_server.port}, dbname: {dbname}, user: postgres}}\n"
    )
    (tmp_path / "db-check.yaml").write_text(RUNBOOK)
    ran = cli("run", str(tmp_path / "db-check.yaml"))
    assert ran.code == 1
    assert "lists no entries; it would restore nothing" in ran.stdout
