"""Stopping and starting a real PostgreSQL cluster of the test's own, as its OS user."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from breakglass.actions import registry
from breakglass.actions.base import ActionContext, ActionError
from breakglass.actions.postgres.client import program
from breakglass.actions.postgres.server import as_owner
from breakglass.config.loading import LoadedConfig
from breakglass.config.model import PlatformConfig
from tests.postgres import PostgresServer, find_bindir, start_server

pytestmark = pytest.mark.skipif(
    find_bindir() is None and not os.environ.get("CI"),
    reason="PostgreSQL server binaries not found",
)


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A cluster for this test alone, since the test stops it."""
    yield from start_server()


def context(server: PostgresServer, tmp_path: Path, **control: object) -> ActionContext:
    data = server.base / "data"
    pg_ctl = str(find_bindir() / "pg_ctl") if find_bindir() else "pg_ctl"
    options = f"-p {server.port} -k {server.base} -c listen_addresses=127.0.0.1 -c fsync=off"
    default_control = {
        "kind": "command",
        "stop": [pg_ctl, "-D", str(data), "-w", "stop", "-m", "fast"],
        "start": [
            pg_ctl,
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(server.base / "server.log"),
            "-w",
            "start",
        ],
    }
    model = PlatformConfig.model_validate(
        {
            "databases": {
                "app": {
                    "host": "127.0.0.1",
                    "port": server.port,
                    "dbname": "postgres",
                    "user": "postgres",
                    "os_user": "postgres" if os.geteuid() == 0 else None,
                    "data_directory": str(data),
                    "server_control": control or default_control,
                }
            }
        }
    )
    return ActionContext(
        config=LoadedConfig(model, tmp_path / "breakglass.yaml", "digest"), timeout=60
    )


def accepts(server: PostgresServer) -> bool:
    try:
        with psycopg.connect(
            host="127.0.0.1",
            port=server.port,
            user="postgres",
            dbname="postgres",
            connect_timeout=2,
        ):
            return True
    except psycopg.OperationalError:
        return False


def test_stop_then_start(own_server: PostgresServer, tmp_path: Path) -> None:
    ctx = context(own_server, tmp_path)
    stop = registry.get_action("pg.server_stop")
    start = registry.get_action("pg.server_start")
    planned = stop.plan(stop.parse({"database": "app"}), ctx)
    assert planned.target == f"database 127.0.0.1:{own_server.port}/postgres"
    if os.geteuid() == 0:
        assert planned.changes[0].startswith("argv: ['runuser', '-u', 'postgres', '--', ")
    stop.run(stop.parse({"database": "app"}), ctx)
    assert not accepts(own_server)
    start.run(start.parse({"database": "app"}), ctx)
    assert accepts(own_server)


def test_failed_control_names_exit(own_server: PostgresServer, tmp_path: Path) -> None:
    pg_ctl = str(find_bindir() / "pg_ctl") if find_bindir() else "pg_ctl"
    missing = str(tmp_path / "no-such-data")
    ctx = context(
        own_server,
        tmp_path,
        kind="command",
        stop=[pg_ctl, "-D", missing, "-w", "stop"],
        start=[pg_ctl, "-D", missing, "-w", "start"],
    )
    stop = registry.get_action("pg.server_stop")
    with pytest.raises(ActionError, match=r"stop of 127\.0\.0\.1:\d+/postgres failed with exit 1"):
        stop.run(stop.parse({"database": "app"}), ctx)
    assert accepts(own_server)


def test_as_owner_prefixes() -> None:
    assert as_owner(["pg_ctl", "status"], None) == ["pg_ctl", "status"]
    if os.geteuid() == 0:
        assert as_owner(["pg_ctl", "status"], "postgres") == [
            "runuser",
            "-u",
            "postgres",
            "--",
            "pg_ctl",
            "status",
        ]
        assert as_owner(["id"], "root") == ["id"]


def test_pg_ctl_kind_needs_data_directory() -> None:
    with pytest.raises(ValueError, match="server_control of kind pg_ctl needs data_directory"):
        PlatformConfig.model_validate(
            {
                "databases": {
                    "app": {
                        "host": "127.0.0.1",
                        "dbname": "app",
                        "user": "postgres",
                        "server_control": {"kind": "pg_ctl"},
                    }
                }
            }
        )


def test_pg_ctl_argv_uses_data_directory(tmp_path: Path) -> None:
    from breakglass.actions.postgres.server import control_argv

    model = PlatformConfig.model_validate(
        {
            "databases": {
                "app": {
                    "host": "127.0.0.1",
                    "dbname": "app",
                    "user": "postgres",
                    "os_user": "postgres",
                    "data_directory": "/srv/pg/data",
                    "server_control": {"kind": "pg_ctl", "timeout": "90s"},
                }
            }
        }
    )
    db = model.databases["app"]
    expected = [program(db, "pg_ctl"), "-D", "/srv/pg/data", "-w", "-t", "90", "stop", "-m", "fast"]
    assert control_argv(db, "stop") == as_owner(expected, "postgres")
    assert control_argv(db, "start")[-1] == "start"
