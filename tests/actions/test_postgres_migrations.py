"""pg.migrations.* against a real PostgreSQL server on 127.0.0.1: project commands and Alembic.

The command tool drives a small migration script written into each test's directory. It
keeps a real migration table, prints like an npm script (banners, colours, warnings), and
misbehaves on request through environment variables. The Alembic tool runs a real Alembic
project generated per test.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

from breakglass.actions import registry
from breakglass.actions.base import ActionContext, ActionError, ActionTimeoutError
from breakglass.config.loading import ConfigInvalidError, LoadedConfig, parse_config
from breakglass.config.model import PlatformConfig
from tests.conftest import Cli
from tests.postgres import PostgresServer

MIGRATIONS = ["0001_create_accounts", "0002_add_orders", "0003_add_flags", "0004_add_audit"]
PENDING = "0005_add_reports"
PATTERN = r"(?:Current migration:|\[[ X]\])\s+(?P<version>\d{4}_[a-z_]+)$"
PASSWORD = "pg-password-for-migrations-41"
TOKEN = "migrate-token-secret-93"

# A migration CLI as an npm script would run it: `> app@1.2.0 ...` banners, ANSI colours,
# warnings on both streams. Versions go to stdout, and a table lists the applied ones.
MIGRATE_SCRIPT = r"""
import json, os, subprocess, sys, time
import psycopg

MIGRATIONS = {migrations!r} + [{pending!r}]
command = sys.argv[1]
with open(os.environ["MIGRATE_CALLS"], "a") as calls:
    calls.write(json.dumps({{"argv": sys.argv, "cwd": os.getcwd(),
        "pgpassword": os.environ.get("PGPASSWORD"), "token": os.environ.get("MIGRATE_TOKEN")}}) + "\n")

print()
print(f"> shop-api@1.2.0 migration:{{command}}")
print(f"> node ./scripts/migrate.js {{command}}")
print()
print("(node:4242) \x1b[33mExperimentalWarning\x1b[39m: warning 0002_add_orders is slow to revert")
print("npm WARN config production Use `--omit=dev` instead.", file=sys.stderr)

connection = psycopg.connect("", autocommit=True)
connection.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, position int NOT NULL)")
applied = [row[0] for row in connection.execute("SELECT version FROM schema_migrations ORDER BY position")]

if command == "up":
    for position, version in enumerate(MIGRATIONS[:int(sys.argv[2])]):
        if version not in applied:
            connection.execute(f'CREATE TABLE "m_{{version}}" (id int)')
            connection.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (version, position))
elif command == "current":
    if applied:
        print(f"\x1b[32m\u2714\x1b[39m Current migration: \x1b[1m{{applied[-1]}}\x1b[22m")
    else:
        print("No migrations have been applied.")
elif command == "history":
    order = MIGRATIONS if os.environ.get("MIGRATE_ORDER") != "newest_first" else MIGRATIONS[::-1]
    for version in order:
        mark = "\x1b[32mX\x1b[39m" if version in applied else " "
        print(f"[{{mark}}] {{version}}")
elif command == "down":
    latest = applied[-1]
    if os.environ.get("MIGRATE_HANG"):
        helper = subprocess.Popen(["sleep", "300"])
        with open(os.environ["MIGRATE_HANG"], "w") as pids:
            pids.write(f"{{os.getpid()}} {{helper.pid}}")
        time.sleep(300)
    if latest == os.environ.get("MIGRATE_FAIL_ON"):
        print(f"Error: cannot revert {{latest}}: relation is locked (token {{os.environ.get('MIGRATE_TOKEN')}})", file=sys.stderr)
        sys.exit(3)
    if not os.environ.get("MIGRATE_NOOP"):
        connection.execute(f'DROP TABLE "m_{{latest}}"')
        connection.execute("DELETE FROM schema_migrations WHERE version = %s", (latest,))
    print(f"\x1b[32mReverted\x1b[39m {{latest}}")
"""


def connect(server: PostgresServer, dbname: str) -> psycopg.Connection:
    return psycopg.connect(
        host=server.host, port=server.port, user=server.user, dbname=dbname, autocommit=True
    )


def tables(server: PostgresServer, dbname: str) -> set[str]:
    with connect(server, dbname) as connection:
        rows = connection.execute(
            "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


class Recorder:
    """The journal notes and process groups an action reports through its context."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, dict[str, Any]]] = []
        self.groups: list[int] = []


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    registry.get_action.cache_clear()
    yield


@pytest.fixture
def dbname(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The directory of the command tool's script, which is also the commands' cwd."""
    directory = tmp_path / "shop-api"
    directory.mkdir()
    (directory / "migrate.py").write_text(
        MIGRATE_SCRIPT.format(migrations=MIGRATIONS, pending=PENDING)
    )
    return directory


def command_migrations(project: Path, **overrides: Any) -> dict[str, Any]:
    script = str(project / "migrate.py")
    settings: dict[str, Any] = {
        "kind": "command",
        "current": [sys.executable, script, "current"],
        "history": [sys.executable, script, "history"],
        "down": [sys.executable, script, "down"],
        "version_pattern": PATTERN,
        "cwd": str(project),
        "env": {"MIGRATE_CALLS": str(project / "calls.jsonl")},
        "secret_env": {"MIGRATE_TOKEN": "env:BG_TEST_MIGRATE_TOKEN"},
        "timeout": "30s",
    }
    settings.update(overrides)
    return settings


def make_ctx(
    tmp_path: Path,
    server: PostgresServer,
    dbname: str,
    migrations: dict[str, Any] | None,
    recorder: Recorder | None = None,
    *,
    timeout: float = 60,
) -> ActionContext:
    model = PlatformConfig.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "databases": {
                "app": {
                    "host": "127.0.0.1",
                    "port": server.port,
                    "dbname": dbname,
                    "user": "postgres",
                    # The test server trusts every local connection and ignores it, but the
                    # tools must still carry it without exposing it.
                    "password": "env:BG_TEST_PG_PASSWORD",
                    "migrations": migrations,
                }
            },
        }
    )
    config = LoadedConfig(model, tmp_path / "breakglass.yaml", "digest")
    recorder = recorder or Recorder()
    return ActionContext(
        config=config,
        timeout=timeout,
        note=lambda message, data: recorder.notes.append((message, data)),
        on_process=recorder.groups.append,
    )


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BG_TEST_PG_PASSWORD", PASSWORD)
    monkeypatch.setenv("BG_TEST_MIGRATE_TOKEN", TOKEN)


def migrate_up(server: PostgresServer, dbname: str, project: Path, count: int) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "PGHOST": server.host,
        "PGPORT": str(server.port),
        "PGUSER": server.user,
        "PGDATABASE": dbname,
        "MIGRATE_CALLS": str(project / "setup-calls.jsonl"),
    }
    subprocess.run(
        [sys.executable, str(project / "migrate.py"), "up", str(count)],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )


def run(name: str, raw: dict[str, Any], ctx: ActionContext) -> Any:
    action = registry.get_action(name)
    return action.run(action.parse(raw), ctx)


def plan(name: str, raw: dict[str, Any], ctx: ActionContext) -> Any:
    action = registry.get_action(name)
    return action.plan(action.parse(raw), ctx)


def current(ctx: ActionContext) -> str | None:
    version: str | None = run("pg.migrations.current", {"database": "app"}, ctx).version
    return version


# -- the command tool ------------------------------------------------------------------------


def test_command_current_reads_noisy_output(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    ctx = make_ctx(tmp_path, postgres_server, dbname, command_migrations(project))
    assert run("pg.migrations.current", {"database": "app"}, ctx).model_dump() == {
        "version": None,
        "heads": [],
        "tool": "command",
    }
    migrate_up(postgres_server, dbname, project, 4)
    outputs = run("pg.migrations.current", {"database": "app"}, ctx)
    assert outputs.version == "0004_add_audit"
    assert outputs.heads == ["0004_add_audit"]
    assert outputs.tool == "command"


def test_command_plan_lists_downgrades(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    migrate_up(postgres_server, dbname, project, 4)
    ctx = make_ctx(tmp_path, postgres_server, dbname, command_migrations(project))
    planned = plan(
        "pg.migrations.rollback_to", {"database": "app", "version": "0001_create_accounts"}, ctx
    )
    where = f"127.0.0.1:{postgres_server.port}/{dbname}"
    assert planned.summary == (
        f"roll the command migrations of {where} back from 0004_add_audit to "
        "0001_create_accounts: 3 downgrade(s), one at a time, each checked"
    )
    assert planned.target == f"database {where}"
    assert planned.changes == [
        "downgrade 0004_add_audit → 0003_add_flags",
        "downgrade 0003_add_flags → 0002_add_orders",
        "downgrade 0002_add_orders → 0001_create_accounts",
    ]
    assert planned.mutating
    assert current(ctx) == "0004_add_audit"
    assert "m_0004_add_audit" in tables(postgres_server, dbname)


def test_command_rollback_journals_each_step(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    migrate_up(postgres_server, dbname, project, 4)
    recorder = Recorder()
    ctx = make_ctx(tmp_path, postgres_server, dbname, command_migrations(project), recorder)
    outputs = run(
        "pg.migrations.rollback_to", {"database": "app", "version": "0002_add_orders"}, ctx
    )
    assert outputs.from_version == "0004_add_audit"
    assert outputs.to_version == "0002_add_orders"
    assert [step.model_dump() for step in outputs.steps] == [
        {"from_version": "0004_add_audit", "to_version": "0003_add_flags"},
        {"from_version": "0003_add_flags", "to_version": "0002_add_orders"},
    ]

    where = f"127.0.0.1:{postgres_server.port}/{dbname}"
    assert [message for message, _ in recorder.notes] == [
        f"downgrading {where}: 0004_add_audit → 0003_add_flags (1 of 2)",
        f"downgraded {where}: 0004_add_audit → 0003_add_flags (1 of 2)",
        f"downgrading {where}: 0003_add_flags → 0002_add_orders (2 of 2)",
        f"downgraded {where}: 0003_add_flags → 0002_add_orders (2 of 2)",
    ]
    assert recorder.notes[2][1] == {
        "database": "app",
        "from_version": "0003_add_flags",
        "to_version": "0002_add_orders",
        "step": 2,
        "steps": 2,
    }
    # current, history, then per step: down and current again.
    assert len(recorder.groups) == 6

    left = tables(postgres_server, dbname)
    assert {"m_0001_create_accounts", "m_0002_add_orders"} <= left
    assert not {"m_0003_add_flags", "m_0004_add_audit"} & left
    assert current(ctx) == "0002_add_orders"


def test_command_secrets_stay_out_of_argv(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    migrate_up(postgres_server, dbname, project, 2)
    ctx = make_ctx(tmp_path, postgres_server, dbname, command_migrations(project))
    run("pg.migrations.rollback_to", {"database": "app", "version": "-1"}, ctx)
    calls = [json.loads(line) for line in (project / "calls.jsonl").read_text().splitlines()]
    assert [call["argv"][1] for call in calls] == ["current", "history", "down", "current"]
    for call in calls:
        assert call["pgpassword"] == PASSWORD
        assert call["token"] == TOKEN
        assert call["cwd"] == str(project)
        assert not any(PASSWORD in argument or TOKEN in argument for argument in call["argv"])


def test_command_secret_in_argv_rejected(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    migrate_up(postgres_server, dbname, project, 2)
    settings = command_migrations(project)
    settings["down"] = [*settings["down"], f"--token={TOKEN}"]
    ctx = make_ctx(tmp_path, postgres_server, dbname, settings)
    with pytest.raises(ActionError) as caught:
        run("pg.migrations.rollback_to", {"database": "app", "version": "-1"}, ctx)
    assert "has a secret value in its argv" in caught.value.message
    assert TOKEN not in caught.value.message
    assert current(ctx) == "0002_add_orders"


def test_command_history_newest_first(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    migrate_up(postgres_server, dbname, project, 3)
    settings = command_migrations(project, history_order="newest_first")
    settings["env"]["MIGRATE_ORDER"] = "newest_first"
    ctx = make_ctx(tmp_path, postgres_server, dbname, settings)
    planned = plan("pg.migrations.rollback_to", {"database": "app", "version": "-2"}, ctx)
    assert planned.changes == [
        "downgrade 0003_add_flags → 0002_add_orders",
        "downgrade 0002_add_orders → 0001_create_accounts",
    ]
    assert planned.warnings == [
        "-2 counts from the version found when the step runs; that is 0001_create_accounts now"
    ]


def test_command_target_at_current_does_nothing(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    migrate_up(postgres_server, dbname, project, 3)
    recorder = Recorder()
    ctx = make_ctx(tmp_path, postgres_server, dbname, command_migrations(project), recorder)
    raw = {"database": "app", "version": "0003_add_flags"}
    planned = plan("pg.migrations.rollback_to", raw, ctx)
    assert planned.summary.startswith("nothing to do: ")
    assert planned.summary.endswith("is at migration version 0003_add_flags already")
    assert not planned.mutating
    outputs = run("pg.migrations.rollback_to", raw, ctx)
    assert outputs.steps == []
    assert outputs.from_version == outputs.to_version == "0003_add_flags"
    assert recorder.notes == []


def test_command_failing_down_names_exit_and_output(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    migrate_up(postgres_server, dbname, project, 4)
    settings = command_migrations(project)
    settings["env"]["MIGRATE_FAIL_ON"] = "0003_add_flags"
    recorder = Recorder()
    ctx = make_ctx(tmp_path, postgres_server, dbname, settings, recorder)
    with pytest.raises(ActionError) as caught:
        run(
            "pg.migrations.rollback_to", {"database": "app", "version": "0001_create_accounts"}, ctx
        )
    message = caught.value.message
    assert message.startswith(
        f"downgrade 0003_add_flags → 0002_add_orders of 127.0.0.1:{postgres_server.port}/{dbname} failed: "
    )
    assert "exited with 3: " in message
    assert "npm WARN config production" in message
    assert "Error: cannot revert 0003_add_flags: relation is locked (token ***)" in message
    assert TOKEN not in message
    assert "1 downgrade(s) done before this one, which started from 0003_add_flags" in message
    assert message.endswith("roll back to 0001_create_accounts again to continue")
    assert caught.value.outputs["steps"] == [
        {"from_version": "0004_add_audit", "to_version": "0003_add_flags"}
    ]
    assert [message for message, _ in recorder.notes][-1].startswith("downgrading ")
    assert current(ctx) == "0003_add_flags"


def test_command_down_that_reverts_nothing(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    migrate_up(postgres_server, dbname, project, 3)
    settings = command_migrations(project)
    settings["env"]["MIGRATE_NOOP"] = "1"
    ctx = make_ctx(tmp_path, postgres_server, dbname, settings)
    with pytest.raises(ActionError) as caught:
        run("pg.migrations.rollback_to", {"database": "app", "version": "-1"}, ctx)
    assert "exited successfully, but the database is at 0003_add_flags, not 0002_add_orders" in (
        caught.value.message
    )


def test_command_timeout_kills_process_group(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    migrate_up(postgres_server, dbname, project, 2)
    pid_file = tmp_path / "down.pids"
    settings = command_migrations(project, timeout="1500ms")
    settings["env"]["MIGRATE_HANG"] = str(pid_file)
    ctx = make_ctx(tmp_path, postgres_server, dbname, settings)
    started = time.monotonic()
    with pytest.raises(ActionTimeoutError) as caught:
        run("pg.migrations.rollback_to", {"database": "app", "version": "-1"}, ctx)
    assert time.monotonic() - started < 15
    assert "did not finish within 1.5s; its process group was killed" in caught.value.message
    for pid in map(int, pid_file.read_text().split()):
        assert not process_alive(pid), f"process {pid} of the down command still runs"


def process_alive(pid: int) -> bool:
    """Return whether `pid` runs. A zombie waiting for its parent to reap it counts as gone."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state == "Z":
            return False
        time.sleep(0.05)
    return True


def test_command_step_deadline_applies(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    migrate_up(postgres_server, dbname, project, 2)
    settings = command_migrations(project, timeout="10m")
    settings["env"]["MIGRATE_HANG"] = str(tmp_path / "down.pids")
    ctx = make_ctx(tmp_path, postgres_server, dbname, settings, timeout=5)
    with pytest.raises(ActionTimeoutError):
        run("pg.migrations.rollback_to", {"database": "app", "version": "-1"}, ctx)


def test_unknown_version_rejected(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    migrate_up(postgres_server, dbname, project, 4)
    ctx = make_ctx(tmp_path, postgres_server, dbname, command_migrations(project))
    with pytest.raises(ActionError) as caught:
        plan("pg.migrations.rollback_to", {"database": "app", "version": "0009_nope"}, ctx)
    assert caught.value.message == (
        "migration version '0009_nope' names no single version of the command migrations of "
        "database app (known versions, oldest first: 0001_create_accounts, 0002_add_orders, "
        "0003_add_flags, 0004_add_audit, 0005_add_reports); give one of them, or -N to go "
        "back N migrations"
    )


@pytest.mark.parametrize("target", ["0004_add_audit", PENDING])
def test_newer_target_rejected(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path, target: str
) -> None:
    migrate_up(postgres_server, dbname, project, 3)
    ctx = make_ctx(tmp_path, postgres_server, dbname, command_migrations(project))
    with pytest.raises(ActionError) as caught:
        run("pg.migrations.rollback_to", {"database": "app", "version": target}, ctx)
    assert caught.value.message.startswith(
        f"version {target} is newer than the current version 0003_add_flags of 127.0.0.1:"
    )
    assert "only goes back" in caught.value.message
    assert current(ctx) == "0003_add_flags"


def test_relative_target_past_first_rejected(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    migrate_up(postgres_server, dbname, project, 2)
    ctx = make_ctx(tmp_path, postgres_server, dbname, command_migrations(project))
    with pytest.raises(
        ActionError,
        match=r"target -2 goes back past the first migration 0001_create_accounts: .* has 1 migration\(s\) below 0002_add_orders",
    ):
        plan("pg.migrations.rollback_to", {"database": "app", "version": "-2"}, ctx)


@pytest.mark.parametrize("target", ["-0", "-x", "--1"])
def test_invalid_relative_target(target: str) -> None:
    action = registry.get_action("pg.migrations.rollback_to")
    with pytest.raises(ValueError, match="invalid relative target"):
        action.parse({"database": "app", "version": target})


def test_nothing_applied_rejected(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    ctx = make_ctx(tmp_path, postgres_server, dbname, command_migrations(project))
    with pytest.raises(
        ActionError,
        match="has no migrations applied, so there is nothing to roll back; if migrations are applied, check that version_pattern matches",
    ):
        plan("pg.migrations.rollback_to", {"database": "app", "version": "-1"}, ctx)


def test_pattern_without_ansi_stripping_would_miss(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    # The current line is "✔ Current migration: <bold>0004_add_audit<reset>", which the
    # pattern matches only once the colour codes are gone.
    migrate_up(postgres_server, dbname, project, 4)
    ctx = make_ctx(
        tmp_path,
        postgres_server,
        dbname,
        command_migrations(project, version_pattern=r"Current migration: (\d{4}_[a-z_]+)$"),
    )
    assert current(ctx) == "0004_add_audit"


def test_several_current_versions_rejected(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    migrate_up(postgres_server, dbname, project, 2)
    script = str(project / "migrate.py")
    # The history command prints every version, so it cannot serve as current.
    settings = command_migrations(project, current=[sys.executable, script, "history"])
    ctx = make_ctx(tmp_path, postgres_server, dbname, settings)
    with pytest.raises(
        ActionError, match=r"printed several versions \(0001_create_accounts, 0002_add_orders"
    ):
        current(ctx)


def test_missing_program_named(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    settings = command_migrations(project, current=[str(tmp_path / "no-such-tool"), "current"])
    ctx = make_ctx(tmp_path, postgres_server, dbname, settings)
    with pytest.raises(
        ActionError,
        match=r"cannot start the current command .*no-such-tool current of database app: No such file or directory; check migrations.current",
    ):
        current(ctx)


def test_validate_compares_version(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    migrate_up(postgres_server, dbname, project, 2)
    ctx = make_ctx(tmp_path, postgres_server, dbname, command_migrations(project))
    ok = run("pg.migrations.validate", {"database": "app", "expect": "0002_add_orders"}, ctx)
    assert ok.version == "0002_add_orders"
    with pytest.raises(ActionError) as caught:
        run("pg.migrations.validate", {"database": "app", "expect": "0001_create_accounts"}, ctx)
    assert caught.value.message.endswith(
        "is at migration version 0002_add_orders, expected 0001_create_accounts; do not let "
        "writers back until the schema matches"
    )
    assert caught.value.outputs == {"version": "0002_add_orders"}


def test_missing_migrations_config(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str
) -> None:
    ctx = make_ctx(tmp_path, postgres_server, dbname, None)
    for name, raw in (
        ("pg.migrations.current", {"database": "app"}),
        ("pg.migrations.rollback_to", {"database": "app", "version": "-1"}),
        ("pg.migrations.validate", {"database": "app", "expect": "1"}),
    ):
        with pytest.raises(ActionError) as caught:
            run(name, raw, ctx)
        assert caught.value.message.startswith(
            "database app has no migrations configured; add `migrations:` with kind command or "
            "alembic under databases.app in "
        )


# -- config ---------------------------------------------------------------------------------


def load(tmp_path: Path, migrations: str) -> LoadedConfig:
    text = (
        "databases:\n  app:\n    host: 127.0.0.1\n    dbname: app\n    user: app\n"
        "    migrations:\n" + textwrap.indent(migrations, "      ")
    )
    path = tmp_path / "breakglass.yaml"
    path.write_text(text)
    return parse_config(text.encode(), path)


def config_error(tmp_path: Path, migrations: str) -> str:
    with pytest.raises(ConfigInvalidError) as caught:
        load(tmp_path, migrations)
    [finding] = caught.value.findings
    assert finding.where.startswith("databases.app.migrations")
    return finding.message


COMMANDS = "kind: command\ncurrent: [npm, run, migration:current]\nhistory: [npm, run, migration:show]\ndown: [npm, run, migration:revert]\n"


def test_config_accepts_command_kind(tmp_path: Path) -> None:
    loaded = load(
        tmp_path, COMMANDS + "version_pattern: '(?P<version>[0-9]+-[A-Za-z]+)'\ntimeout: 2m\n"
    )
    settings = loaded.model.databases["app"].migrations
    assert settings is not None
    assert settings.timeout == 120
    assert settings.history_order == "oldest_first"


def test_config_invalid_regex_named(tmp_path: Path) -> None:
    message = config_error(tmp_path, COMMANDS + "version_pattern: 'Current: ([0-9'\n")
    assert message.startswith(
        "version_pattern 'Current: ([0-9' is not a valid regular expression: "
    )


def test_config_pattern_needs_one_group(tmp_path: Path) -> None:
    message = config_error(tmp_path, COMMANDS + "version_pattern: '([0-9]+)-([a-z]+)'\n")
    assert "has 2 groups; put exactly one group, or a group named version" in message
    message = config_error(tmp_path, COMMANDS + "version_pattern: '[0-9]+'\n")
    assert "has 0 groups" in message


def test_config_fields_fit_kind(tmp_path: Path) -> None:
    assert config_error(tmp_path, "kind: command\ncurrent: [a]\n") == (
        "migrations of kind command need history, down, version_pattern"
    )
    assert config_error(tmp_path, "kind: alembic\n") == (
        "migrations of kind alembic need config_file (the alembic.ini)"
    )
    assert config_error(tmp_path, "kind: alembic\nconfig_file: alembic.ini\ndown: [x]\n") == (
        "down do not apply to migrations of kind alembic"
    )
    assert (
        config_error(tmp_path, COMMANDS + "version_pattern: '(.+)'\nconfig_file: alembic.ini\n")
        == "config_file do not apply to migrations of kind command"
    )


def test_config_argv_must_be_list(tmp_path: Path) -> None:
    message = config_error(
        tmp_path,
        "kind: command\ncurrent: npm run migration:current\nhistory: [a]\ndown: [b]\nversion_pattern: '(.+)'\n",
    )
    assert "a shell command string is not accepted" in message


# -- Alembic ----------------------------------------------------------------------------------

REVISIONS = [
    ("0001_accounts", None, "accounts"),
    ("0002_orders", "0001_accounts", "orders"),
    ("0003_flags", "0002_orders", "flags"),
    ("0004_audit", "0003_flags", "audit"),
]

ALEMBIC_INI = """\
[alembic]
script_location = migrations

[loggers]
keys = root,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %%(levelname)-5.5s [%%(name)s] %%(message)s
"""

# Like the env.py Alembic generates, it configures logging from the ini file, which would
# disable every logger breakglass had set up. It takes the connection from attributes.
ENV_PY = """\
from logging.config import fileConfig

from alembic import context

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("no connection in config.attributes")
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
"""

# An env.py that ignores the connection breakglass passes and opens its own.
OWN_CONNECTION_ENV_PY = """\
from alembic import context
from sqlalchemy import create_engine

engine = create_engine({url!r})
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""

REVISION_PY = """\
import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    op.create_table({table!r}, sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table({table!r})
{extra}
"""


def write_alembic_project(
    root: Path,
    revisions: list[tuple[str, str | None, str]] = REVISIONS,
    *,
    env_py: str = ENV_PY,
    downgrade_extra: dict[str, str] | None = None,
) -> Path:
    """Write an Alembic project with one table per revision, and return its alembic.ini."""
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    (root / "alembic.ini").write_text(ALEMBIC_INI)
    (root / "migrations" / "env.py").write_text(env_py)
    for revision, down, table in revisions:
        extra = (downgrade_extra or {}).get(revision, "")
        (versions / f"{revision}.py").write_text(
            REVISION_PY.format(revision=revision, down=down, table=table, extra=extra)
        )
    return root / "alembic.ini"


def alembic_upgrade(server: PostgresServer, dbname: str, root: Path, target: str = "heads") -> None:
    # A Config without a file, so that env.py leaves this test process's logging alone.
    config = Config()
    config.set_main_option("script_location", str(root / "migrations"))
    engine = create_engine(server.url(dbname))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, target)
    finally:
        engine.dispose()


def alembic_ctx(
    tmp_path: Path,
    server: PostgresServer,
    dbname: str,
    recorder: Recorder | None = None,
    **extra: Any,
) -> ActionContext:
    settings = {"kind": "alembic", "config_file": "project/alembic.ini", **extra}
    return make_ctx(tmp_path, server, dbname, settings, recorder)


def test_alembic_rollback_drops_tables(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str
) -> None:
    root = tmp_path / "project"
    write_alembic_project(root)
    alembic_upgrade(postgres_server, dbname, root)
    assert {"accounts", "orders", "flags", "audit"} <= tables(postgres_server, dbname)
    recorder = Recorder()
    ctx = alembic_ctx(tmp_path, postgres_server, dbname, recorder)
    before = run("pg.migrations.current", {"database": "app"}, ctx)
    assert before.model_dump() == {
        "version": "0004_audit",
        "heads": ["0004_audit"],
        "tool": "alembic",
    }

    planned = plan("pg.migrations.rollback_to", {"database": "app", "version": "0002_orders"}, ctx)
    assert planned.changes == [
        "downgrade 0004_audit → 0003_flags",
        "downgrade 0003_flags → 0002_orders",
    ]
    assert "flags" in tables(postgres_server, dbname)

    outputs = run("pg.migrations.rollback_to", {"database": "app", "version": "0002_orders"}, ctx)
    assert outputs.from_version == "0004_audit"
    assert outputs.to_version == "0002_orders"
    assert len(outputs.steps) == 2
    left = tables(postgres_server, dbname)
    assert {"accounts", "orders"} <= left
    assert not {"flags", "audit"} & left
    assert [message.split(":")[0] for message, _ in recorder.notes] == [
        "downgrading 127.0.0.1",
        "downgraded 127.0.0.1",
    ] * 2
    assert recorder.notes[1][1]["to_version"] == "0003_flags"
    assert (
        run("pg.migrations.validate", {"database": "app", "expect": "0002_orders"}, ctx).version
        == "0002_orders"
    )
    # Alembic accepts a unique prefix of a revision id, and so does validate.
    assert (
        run("pg.migrations.validate", {"database": "app", "expect": "0002"}, ctx).version
        == "0002_orders"
    )


def test_alembic_relative_target(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str
) -> None:
    root = tmp_path / "project"
    write_alembic_project(root)
    alembic_upgrade(postgres_server, dbname, root)
    ctx = alembic_ctx(tmp_path, postgres_server, dbname)
    outputs = run("pg.migrations.rollback_to", {"database": "app", "version": "-1"}, ctx)
    assert outputs.to_version == "0003_flags"
    assert "audit" not in tables(postgres_server, dbname)
    assert "flags" in tables(postgres_server, dbname)
    assert current(ctx) == "0003_flags"


def test_alembic_keeps_process_logging(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str
) -> None:
    root = tmp_path / "project"
    write_alembic_project(root)
    alembic_upgrade(postgres_server, dbname, root)
    ours = logging.getLogger("breakglass.test_migrations")
    handlers = list(logging.getLogger().handlers)
    ctx = alembic_ctx(tmp_path, postgres_server, dbname)
    run("pg.migrations.rollback_to", {"database": "app", "version": "-1"}, ctx)
    assert not ours.disabled
    assert logging.getLogger().handlers == handlers
    assert str(root / "migrations") not in sys.path


def test_alembic_bad_targets(tmp_path: Path, postgres_server: PostgresServer, dbname: str) -> None:
    root = tmp_path / "project"
    write_alembic_project(root)
    alembic_upgrade(postgres_server, dbname, root, "0003_flags")
    ctx = alembic_ctx(tmp_path, postgres_server, dbname)

    def rejected(version: str) -> str:
        with pytest.raises(ActionError) as caught:
            plan("pg.migrations.rollback_to", {"database": "app", "version": version}, ctx)
        return caught.value.message

    assert rejected("0004_audit").startswith(
        "version 0004_audit is newer than the current version 0003_flags"
    )
    assert rejected("0009_nope").startswith(
        "migration version '0009_nope' names no single version of the alembic migrations of database "
        "app (known versions, oldest first: 0001_accounts, 0002_orders, 0003_flags, 0004_audit)"
    )
    # "000" is a prefix of every revision, so it names none of them.
    assert rejected("000").startswith("migration version '000' names no single version")
    assert rejected("head") == "'head' is not a revision id; give the revision to return to, or -N"
    assert rejected("0003_flags-1").startswith("'0003_flags-1' is not a revision id")
    assert rejected("-3").startswith("target -3 goes back past the first migration 0001_accounts")


def test_alembic_several_heads_refuse_relative(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str
) -> None:
    root = tmp_path / "project"
    branched = [
        ("0001_accounts", None, "accounts"),
        ("0002_orders", "0001_accounts", "orders"),
        ("0002_invoices", "0001_accounts", "invoices"),
    ]
    write_alembic_project(root, branched)
    alembic_upgrade(postgres_server, dbname, root)
    ctx = alembic_ctx(tmp_path, postgres_server, dbname)
    now = run("pg.migrations.current", {"database": "app"}, ctx)
    assert now.heads == ["0002_invoices", "0002_orders"]
    assert now.version == "0002_invoices,0002_orders"
    with pytest.raises(ActionError) as caught:
        run("pg.migrations.rollback_to", {"database": "app", "version": "-1"}, ctx)
    assert caught.value.message == (
        f"relative target -1 is ambiguous: 127.0.0.1:{postgres_server.port}/{dbname} is at several "
        "heads (0002_invoices, 0002_orders); give a version id instead"
    )
    with pytest.raises(
        ActionError,
        match=r"is at several heads \(0002_invoices, 0002_orders\); pg.migrations.rollback_to goes back along one line",
    ):
        run("pg.migrations.rollback_to", {"database": "app", "version": "0001_accounts"}, ctx)
    assert {"orders", "invoices"} <= tables(postgres_server, dbname)


def test_alembic_failed_downgrade_rolled_back(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str
) -> None:
    root = tmp_path / "project"
    # The downgrade drops its table, then fails: the drop must be undone with it.
    failing = "    op.execute('SELECT 1 / 0')\n"
    write_alembic_project(root, downgrade_extra={"0003_flags": failing})
    alembic_upgrade(postgres_server, dbname, root)
    ctx = alembic_ctx(tmp_path, postgres_server, dbname)
    with pytest.raises(ActionError) as caught:
        run("pg.migrations.rollback_to", {"database": "app", "version": "0001_accounts"}, ctx)
    message = caught.value.message
    assert message.startswith("downgrade 0003_flags → 0002_orders of 127.0.0.1:")
    assert "failed: alembic downgrade to 0002_orders failed: " in message
    assert "division by zero" in message
    assert caught.value.outputs["steps"] == [
        {"from_version": "0004_audit", "to_version": "0003_flags"}
    ]
    assert current(ctx) == "0003_flags"
    assert "flags" in tables(postgres_server, dbname)


def test_alembic_timeout_cancels_query(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str
) -> None:
    root = tmp_path / "project"
    write_alembic_project(
        root, downgrade_extra={"0004_audit": "    op.execute('SELECT pg_sleep(60)')\n"}
    )
    alembic_upgrade(postgres_server, dbname, root)
    ctx = alembic_ctx(tmp_path, postgres_server, dbname, timeout="1s")
    started = time.monotonic()
    with pytest.raises(ActionTimeoutError) as caught:
        run("pg.migrations.rollback_to", {"database": "app", "version": "-1"}, ctx)
    assert time.monotonic() - started < 15
    assert "alembic downgrade to 0003_flags did not finish within 1s; its query was cancelled" in (
        caught.value.message
    )
    assert current(ctx) == "0004_audit"
    assert "audit" in tables(postgres_server, dbname)


def test_alembic_env_with_own_connection_refused(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str
) -> None:
    root = tmp_path / "project"
    write_alembic_project(root)
    alembic_upgrade(postgres_server, dbname, root)
    (root / "migrations" / "env.py").write_text(
        OWN_CONNECTION_ENV_PY.format(url=postgres_server.url(dbname))
    )
    ctx = alembic_ctx(tmp_path, postgres_server, dbname)
    with pytest.raises(ActionError) as caught:
        run("pg.migrations.rollback_to", {"database": "app", "version": "-1"}, ctx)
    assert (
        "opened its own connection instead of the one breakglass passes in config.attributes['connection']"
        in (caught.value.message)
    )
    assert "audit" in tables(postgres_server, dbname)


def test_alembic_password_not_in_url(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str
) -> None:
    from breakglass.actions.postgres.alembic_tool import AlembicTool

    write_alembic_project(tmp_path / "project")
    ctx = alembic_ctx(tmp_path, postgres_server, dbname)
    db = ctx.config.model.databases["app"]
    assert db.migrations is not None
    with AlembicTool("app", db, db.migrations, ctx, ctx.clock.monotonic()) as tool:
        assert tool.engine.url.password is None
        assert PASSWORD not in str(tool.engine.url)
        assert tool.heads() == []


def test_alembic_missing_ini_named(
    tmp_path: Path, postgres_server: PostgresServer, dbname: str
) -> None:
    ctx = alembic_ctx(tmp_path, postgres_server, dbname)
    with pytest.raises(
        ActionError,
        match=r"alembic config .*project/alembic.ini of database app does not exist; check migrations.config_file",
    ):
        current(ctx)


# -- the catalog runbook ----------------------------------------------------------------------


def test_catalog_runbook_plans_downgrades(
    cli: Cli, tmp_path: Path, postgres_server: PostgresServer, dbname: str, project: Path
) -> None:
    migrate_up(postgres_server, dbname, project, 4)
    settings = command_migrations(project)
    config = {
        "databases": {
            "app": {
                "host": "127.0.0.1",
                "port": postgres_server.port,
                "dbname": dbname,
                "user": "postgres",
                "migrations": settings,
            }
        }
    }
    (tmp_path / "breakglass.yaml").write_text(json.dumps(config))
    planned = cli(
        "plan",
        "db-migration-rollback",
        "-i",
        "database=app",
        "-i",
        "version=0002_add_orders",
        env={"BG_TEST_MIGRATE_TOKEN": TOKEN},
    )
    assert planned.code == 0, planned.output
    text = planned.stdout
    assert "downgrade 0004_add_audit → 0003_add_flags" in text
    assert "downgrade 0003_add_flags → 0002_add_orders" in text
    assert text.index("pg.dump") < text.index("downgrade 0004_add_audit")
    assert current(make_ctx(tmp_path, postgres_server, dbname, settings)) == "0004_add_audit"
