"""The pg.* actions against a real PostgreSQL server on 127.0.0.1."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from breakglass.actions import registry
from breakglass.actions.base import ActionContext, ActionError
from breakglass.actions.postgres.dump import verify_archive
from breakglass.config.loading import LoadedConfig
from breakglass.config.model import PlatformConfig
from tests.postgres import PostgresServer


@pytest.fixture
def dbname(postgres_server: PostgresServer) -> str:
    name = postgres_server.create_database()
    with psycopg.connect(
        host=postgres_server.host,
        port=postgres_server.port,
        user="postgres",
        dbname=name,
        autocommit=True,
    ) as connection:
        connection.execute("CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL)")
        connection.execute("INSERT INTO orders VALUES (1, 10), (2, 20), (3, -5)")
    return name


@pytest.fixture
def ctx(postgres_server: PostgresServer, dbname: str, tmp_path: Path) -> ActionContext:
    model = PlatformConfig.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "databases": {
                "app": {
                    "host": "127.0.0.1",
                    "port": postgres_server.port,
                    "dbname": dbname,
                    "user": "postgres",
                },
                # Port 9 on loopback has no listener.
                "down": {
                    "host": "127.0.0.1",
                    "port": 9,
                    "dbname": "app",
                    "user": "postgres",
                    "connect_timeout": "2s",
                },
            },
        }
    )
    config = LoadedConfig(model, tmp_path / "breakglass.yaml", "digest")
    return ActionContext(config=config, timeout=30)


def run(name: str, raw: dict[str, Any], ctx: ActionContext) -> Any:
    action = registry.get_action(name)
    return action.run(action.parse(raw), ctx)


def plan(name: str, raw: dict[str, Any], ctx: ActionContext) -> Any:
    action = registry.get_action(name)
    return action.plan(action.parse(raw), ctx)


def test_query_checks_result(
    ctx: ActionContext, postgres_server: PostgresServer, dbname: str
) -> None:
    outputs = run(
        "pg.query",
        {
            "database": "app",
            "sql": "SELECT count(*) AS n FROM orders",
            "expect": [{"path": "rows[0].n", "equals": 3}],
        },
        ctx,
    )
    assert outputs.rows == [{"n": 3}]
    planned = plan("pg.query", {"database": "app", "sql": "SELECT 1"}, ctx)
    assert planned.target == f"database 127.0.0.1:{postgres_server.port}/{dbname}"
    with pytest.raises(ActionError, match="returned 3 rows, expected 2"):
        run("pg.query", {"database": "app", "sql": "SELECT * FROM orders", "expect_rows": 2}, ctx)


def test_query_is_read_only(ctx: ActionContext) -> None:
    with pytest.raises(ActionError, match=r"tried to write, but pg\.query is read-only"):
        run("pg.query", {"database": "app", "sql": "DELETE FROM orders"}, ctx)
    assert run(
        "pg.query", {"database": "app", "sql": "SELECT count(*) AS n FROM orders"}, ctx
    ).rows == [{"n": 3}]


def test_unknown_database_named(ctx: ActionContext) -> None:
    with pytest.raises(
        ActionError, match=r"database 'nope' is not configured \(databases: app, down\)"
    ):
        run("pg.query", {"database": "nope", "sql": "SELECT 1"}, ctx)


def test_unreachable_database(ctx: ActionContext) -> None:
    with pytest.raises(ActionError) as caught:
        run("pg.query", {"database": "down", "sql": "SELECT 1"}, ctx)
    assert caught.value.message.startswith("cannot connect 127.0.0.1:9/app: ")
    assert caught.value.temporary
    assert caught.value.unreachable


def test_consistency_rows_are_failures(ctx: ActionContext, tmp_path: Path) -> None:
    (tmp_path / "negative.sql").write_text("SELECT id, total FROM orders WHERE total < 0")
    with pytest.raises(
        ActionError, match=r"negative totals found 1 inconsistent rows: \{'id': 3, 'total': '-5'\}"
    ):
        run(
            "pg.consistency_check",
            {"database": "app", "name": "negative totals", "sql_file": "negative.sql"},
            ctx,
        )
    clean = run(
        "pg.consistency_check",
        {"database": "app", "sql": "SELECT id FROM orders WHERE total > 100"},
        ctx,
    )
    assert clean.failures == 0


def test_terminate_spares_own_session(
    ctx: ActionContext, postgres_server: PostgresServer, dbname: str
) -> None:
    def session(app: str) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=postgres_server.port,
            user="postgres",
            dbname=dbname,
            application_name=app,
            autocommit=True,
        )

    others = [session("web"), session("web"), session("worker")]
    try:
        planned = plan(
            "pg.terminate_connections", {"database": "app", "application_name": "web"}, ctx
        )
        assert planned.summary.startswith("terminate 2 session(s) now connected (app=web)")
        done = run("pg.terminate_connections", {"database": "app", "application_name": "web"}, ctx)
        assert done.terminated == 2
        with pytest.raises(psycopg.OperationalError):
            others[0].execute("SELECT 1")
        assert others[2].execute("SELECT 1").fetchone() == (1,)
    finally:
        for other in others:
            other.close()


def test_dump_verified_and_recorded(
    ctx: ActionContext, postgres_server: PostgresServer, dbname: str
) -> None:
    outputs = run("pg.dump", {"database": "app", "label": "pre-rollback"}, ctx)
    path = Path(outputs.path)
    assert path.name.startswith("app-pre-rollback-")
    assert outputs.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert outputs.size == path.stat().st_size
    assert outputs.entries >= 3
    assert outputs.server_version.startswith("15")
    assert path.stat().st_mode & 0o777 == 0o600
    planned = plan("pg.dump", {"database": "app"}, ctx)
    assert planned.summary.startswith(f"dump 127.0.0.1:{postgres_server.port}/{dbname} (")
    assert planned.changes[0].endswith("/backups/app/app-backup-TIMESTAMP.dump")


def test_truncated_dump_caught(ctx: ActionContext) -> None:
    outputs = run("pg.dump", {"database": "app"}, ctx)
    path = Path(outputs.path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    db = ctx.config.model.databases["app"]
    with pytest.raises(ActionError, match="is unreadable: pg_restore --list failed"):
        verify_archive(path, db, ctx, started=ctx.clock.monotonic())
    path.write_bytes(b"")
    with pytest.raises(ActionError, match="is missing or empty"):
        verify_archive(path, db, ctx, started=ctx.clock.monotonic())


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    registry.get_action.cache_clear()
    yield


def with_backup_dir(ctx: ActionContext, directory: Path) -> ActionContext:
    model = ctx.config.model.model_copy(deep=True)
    model.databases["app"] = model.databases["app"].model_copy(update={"backup_dir": directory})
    ctx.config = LoadedConfig(model, ctx.config.path, "digest")
    return ctx


def test_base_backup_verified_and_described(ctx: ActionContext, tmp_path: Path) -> None:
    from breakglass.actions.postgres.basebackup import list_backups

    with_backup_dir(ctx, tmp_path / "base")
    planned = plan("pg.base_backup", {"database": "app", "label": "nightly"}, ctx)
    assert "0 backup(s) already there" in planned.changes
    outputs = run("pg.base_backup", {"database": "app", "label": "nightly"}, ctx)
    assert Path(outputs.path, "backup_manifest").is_file()
    assert outputs.timeline == 1
    assert outputs.start_lsn.count("/") == 1
    [backup] = list_backups(tmp_path / "base")
    assert backup.made_by_breakglass
    assert backup.verified
    assert backup.stop_lsn is not None


def test_foreign_backup_read_from_label(
    ctx: ActionContext, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    import subprocess

    from breakglass.actions.postgres.basebackup import list_backups
    from breakglass.actions.postgres.client import program

    root = tmp_path / "base"
    db = ctx.config.model.databases["app"]
    subprocess.run(
        [
            program(db, "pg_basebackup"),
            f"--pgdata={root / 'by-hand'}",
            "-h",
            "127.0.0.1",
            "-p",
            str(postgres_server.port),
            "-U",
            "postgres",
            "--label=by hand",
            "--checkpoint=fast",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    [backup] = list_backups(root)
    assert backup.label == "by hand"
    assert not backup.made_by_breakglass
    assert backup.timeline == 1
    assert backup.start_time.endswith("+00:00")


def test_base_backup_needs_backup_dir(ctx: ActionContext) -> None:
    with pytest.raises(ActionError, match="has no backup_dir configured"):
        run("pg.base_backup", {"database": "app"}, ctx)
