"""`breakglass sandbox up|down|status`: a whole local platform on 127.0.0.1, and its config.

A sandbox directory contains everything the sandbox owns, apart from the PostgreSQL cluster,
which lives under /tmp so that its OS user can reach it:

- `sandbox.json`: what was started (the cluster's directory and port, the background
  process's PID). It is written before each piece starts, so `down` can clean up after an
  `up` that failed or was killed halfway.
- `services.json`: the URLs the background process serves (see
  `breakglass.sandbox.daemon`).
- `breakglass.yaml`, `kubeconfig`, `alembic.ini`: the config that points at the sandbox.
- `state/`: the sandbox's own state store, journals, dumps and evidence, apart from any
  real incident's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from breakglass.errors import UserInputError
from breakglass.sandbox import catalog
from breakglass.sandbox.app_migrations import SCRIPT_LOCATION
from breakglass.sandbox.errors import PlatformError
from breakglass.sandbox.postgres import (
    ScratchCluster,
    connect,
    create,
    find_bindir,
    make_base,
    owner_name,
    process_alive,
)

SANDBOX_FILE = "sandbox.json"
SERVICES_FILE = "services.json"
CONFIG_FILE = "breakglass.yaml"
DAEMON_MODULE = "breakglass.sandbox.daemon"
_SERVICES_WAIT_SECONDS = 90.0
_STOP_WAIT_SECONDS = 15.0
_SAMPLE_ACCOUNTS = 500
_SAMPLE_ORDERS = 2000

Say = Callable[[str], None]


@dataclass
class Sandbox:
    """A sandbox directory and what it records about the pieces it started."""

    directory: Path
    created_at: str = ""
    postgres_base: Path | None = None
    postgres: ScratchCluster | None = None
    daemon_pid: int | None = None
    services: dict[str, Any] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.directory / CONFIG_FILE

    @classmethod
    def load(cls, directory: Path) -> Sandbox | None:
        """Read the sandbox in `directory`, or return None if there is none."""
        try:
            data = json.loads((directory / SANDBOX_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise PlatformError(
                f"cannot read {directory / SANDBOX_FILE}: {e}",
                hint="stop the pieces by hand (pg_ctl stop, kill the daemon) and remove the directory",
            ) from e
        sandbox = cls(directory=directory, created_at=str(data.get("created_at", "")))
        if data.get("postgres_base"):
            sandbox.postgres_base = Path(data["postgres_base"])
        if data.get("postgres"):
            sandbox.postgres = ScratchCluster.from_json(data["postgres"])
        if data.get("daemon_pid"):
            sandbox.daemon_pid = int(data["daemon_pid"])
        with contextlib.suppress(OSError, ValueError):
            sandbox.services = json.loads((directory / SERVICES_FILE).read_text(encoding="utf-8"))
        return sandbox

    def save(self) -> None:
        data = {
            "created_at": self.created_at,
            "postgres_base": str(self.postgres_base) if self.postgres_base else None,
            "postgres": self.postgres.to_json() if self.postgres else None,
            "daemon_pid": self.daemon_pid,
        }
        partial = self.directory / (SANDBOX_FILE + ".tmp")
        partial.write_text(json.dumps(data, indent=2), encoding="utf-8")
        partial.replace(self.directory / SANDBOX_FILE)


# -- up ---------------------------------------------------------------------------------------


def up(directory: Path, say: Say) -> Sandbox:
    """Start the sandbox in `directory` and write its config, or undo everything on failure.

    SIGTERM counts as a failure here, as Ctrl-C does, so a stopped `up` cleans up too.
    """
    if not sys.platform.startswith("linux"):
        raise PlatformError("the sandbox runs on Linux only")
    directory = directory.absolute()
    where = f" --dir {directory}"
    if (directory / SANDBOX_FILE).exists():
        raise UserInputError(
            f"a sandbox is already up in {directory}",
            hint=f"`breakglass sandbox status{where}` shows it; "
            f"`breakglass sandbox down{where}` stops it",
        )
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UserInputError(
            f"{directory} exists and is not a sandbox",
            hint="pass --dir with a new or empty directory",
        )
    find_bindir()
    owner_name()
    _require_extra()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserInputError(
            f"cannot create the sandbox directory {directory}: {e.strerror}",
            hint="pass --dir with a directory you can create",
        ) from None
    say(f"starting a sandbox in {directory}")
    sandbox = Sandbox(directory=directory, created_at=datetime.now(UTC).isoformat())
    with terminate_as_interrupt():
        sandbox.save()
        try:
            _start(sandbox, say)
        except BaseException:
            say("setup failed: stopping what was started and removing its files")
            try:
                down(directory, lambda _: None)
            except Exception as e:
                say(f"cleanup failed: {e}; run `breakglass sandbox down --dir {directory}`")
            raise
    return sandbox


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Raise KeyboardInterrupt on SIGTERM inside the block, so cleanup code runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM inside the block, so a second interrupt cannot cut cleanup short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in signals}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _require_extra() -> None:
    try:
        import kmock  # noqa: F401
        import moto  # noqa: F401
    except ImportError as e:
        raise PlatformError(
            f"the sandbox needs the optional `sandbox` extra ({e.name} is missing)",
            hint="install it: `pip install 'breakglass[sandbox]'`, or `uv sync --extra sandbox`",
        ) from None


def _start(sandbox: Sandbox, say: Say) -> None:
    directory = sandbox.directory
    sandbox.postgres_base = make_base()
    sandbox.save()
    say("PostgreSQL: a scratch cluster that archives its WAL")
    cluster = create(sandbox.postgres_base)
    sandbox.postgres = cluster
    sandbox.save()
    ini = _write_alembic_ini(directory)
    _create_database(cluster)
    say(
        f"PostgreSQL: database {catalog.DATABASE} on 127.0.0.1:{cluster.port}, migrations and sample data"
    )
    _migrate(cluster, ini, catalog.GOOD_SCHEMA)
    _sample_data(cluster)
    _migrate(cluster, ini, catalog.LIVE_SCHEMA)

    say("Kubernetes emulator, CloudFront on moto and health endpoints")
    log = (directory / "daemon.log").open("ab")
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                DAEMON_MODULE,
                "--dir",
                str(directory),
                "--pg-port",
                str(cluster.port),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd=directory,
        )
    finally:
        log.close()
    sandbox.daemon_pid = process.pid
    sandbox.save()
    sandbox.services = _wait_for_services(directory, process)
    _write_config(sandbox, ini)

    say("PostgreSQL: a verified base backup, through the db-base-backup runbook")
    _base_backup(sandbox.config_path)


def _write_alembic_ini(directory: Path) -> Path:
    ini = directory / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {SCRIPT_LOCATION}\n", encoding="utf-8")
    return ini


def _sql(cluster: ScratchCluster, dbname: str, *statements: tuple[str, tuple[Any, ...]]) -> None:
    import psycopg

    try:
        with connect(cluster.port, dbname) as db:
            for statement, values in statements:
                db.execute(statement, values)
    except psycopg.Error as e:
        raise PlatformError(f"the sandbox database setup failed: {e}") from e


def _create_database(cluster: ScratchCluster) -> None:
    _sql(cluster, "postgres", (f"CREATE DATABASE {catalog.DATABASE}", ()))


def migration_argv(ini: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "alembic", "-c", str(ini), *args]


def _migrate(cluster: ScratchCluster, ini: Path, version: str) -> None:
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "PGHOST": "127.0.0.1",
        "PGPORT": str(cluster.port),
        "PGUSER": "postgres",
        "PGDATABASE": catalog.DATABASE,
    }
    try:
        done = subprocess.run(
            migration_argv(ini, "upgrade", version),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PlatformError(f"the sample migrations failed: {e}") from e
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise PlatformError("the sample migrations failed:\n" + "\n".join(last))


def _sample_data(cluster: ScratchCluster) -> None:
    _sql(
        cluster,
        catalog.DATABASE,
        (
            "INSERT INTO accounts (email, created_at)"
            " SELECT 'subscriber' || n || '@example.com', now() - n * interval '1 hour'"
            " FROM generate_series(1, %s) AS n",
            (_SAMPLE_ACCOUNTS,),
        ),
        (
            "INSERT INTO subscriptions (account_id, plan, renews_at)"
            " SELECT id, CASE WHEN mod(id, 3) = 0 THEN 'annual' ELSE 'monthly' END,"
            " current_date + mod(id, 30) FROM accounts",
            (),
        ),
        (
            "INSERT INTO orders (account_id, amount_cents, status, created_at)"
            " SELECT 1 + mod(n, %s), 999 + mod(n, 4) * 500, 'paid',"
            " now() - n * interval '5 minutes'"
            " FROM generate_series(1, %s) AS n",
            (_SAMPLE_ACCOUNTS, _SAMPLE_ORDERS),
        ),
    )


def _wait_for_services(directory: Path, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + _SERVICES_WAIT_SECONDS
    path = directory / SERVICES_FILE
    while time.monotonic() < deadline:
        if path.exists():
            loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return loaded
        if process.poll() is not None:
            raise PlatformError(
                f"the sandbox services exited with code {process.returncode}:\n"
                + _tail(directory / "daemon.log")
            )
        time.sleep(0.1)
    raise PlatformError(
        f"the sandbox services did not start within {_SERVICES_WAIT_SECONDS:g} s:\n"
        + _tail(directory / "daemon.log")
    )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def config_data(sandbox: Sandbox, ini: Path) -> dict[str, Any]:
    """Build the breakglass config of a running sandbox."""
    cluster = sandbox.postgres
    assert cluster is not None
    services = sandbox.services
    directory = sandbox.directory
    argv = migration_argv(ini)
    health = services["health"]
    today = datetime.now(UTC).date().isoformat()
    return {
        "state_dir": str(directory / "state"),
        "vars": {"environment": "sandbox"},
        "databases": {
            catalog.DATABASE: {
                "host": "127.0.0.1",
                "port": cluster.port,
                "dbname": catalog.DATABASE,
                "user": "postgres",
                "bindir": str(cluster.bindir),
                "os_user": cluster.owner,
                "data_directory": str(cluster.data),
                "server_control": {"kind": "pg_ctl"},
                "server_log": str(cluster.log),
                "backup_dir": str(cluster.backups),
                "wal_archive_dir": str(cluster.archive),
                "restore_free_space_reserve": "64MiB",
                "writers": ["backend", "worker"],
                "checks": [
                    {
                        "name": "orders readable",
                        "sql": "SELECT count(*) AS n FROM orders",
                        "expect": [{"path": "rows[0].n", "gt": 0}],
                    }
                ],
                "migrations": {
                    "kind": "command",
                    "current": [*argv, "current"],
                    "history": [*argv, "history"],
                    "down": [*argv, "downgrade", "-1"],
                    # A history line reads "0003_x -> 0004_y (head), ...": the version is the
                    # one not followed by an arrow.
                    "version_pattern": r"\b(?P<version>\d{4}_\w+)\b(?! ->)",
                    "history_order": "newest_first",
                    "job": {"deployment": "backend"},
                },
            }
        },
        "kubernetes": {
            "kubeconfig": str(directory / "kubeconfig"),
            "context": "sandbox",
            "server": services["kubernetes"],
            "namespace": catalog.NAMESPACE,
            "snapshot": {
                "deployments": [app.name for app in catalog.APPLICATIONS],
                "configmaps": list(catalog.CONFIGMAPS),
                "database": catalog.DATABASE,
            },
        },
        "aws": {
            "region": "us-east-1",
            "endpoint_url": services["moto"],
            "emulator_credentials": True,
            "distributions": services["distributions"],
        },
        # Notifications go to the sandbox's chat webhook, which appends them to chat.jsonl.
        "channels": {"sandbox-chat": {"kind": "webhook", "url": f"{health}/hooks/chat"}},
        "contacts": [
            {
                "id": "oncall",
                "name": "On-call engineer",
                "role": "on-call engineer",
                "level": 1,
                "channels": ["sandbox-chat"],
                "reviewed": today,
            },
            {
                "id": "lead",
                "name": "Team lead",
                "role": "team lead",
                "level": 2,
                "channels": ["sandbox-chat"],
                "reviewed": today,
            },
        ],
        "incidents": {"escalation": {1: ["oncall"], 2: ["lead"]}},
        "health": {
            "checks": [
                {
                    "name": app.name,
                    "url": f"{health}/{app.name}/healthz",
                    "expect_status": [200],
                    "max_latency": "2s",
                    "json": [{"path": "status", "equals": "ok"}],
                }
                for app in catalog.APPLICATIONS
                if app.health
            ]
        },
    }


def _write_config(sandbox: Sandbox, ini: Path) -> None:
    header = (
        "# Written by `breakglass sandbox up`: a local platform on 127.0.0.1 with its own\n"
        "# state store. `breakglass sandbox down` stops it and removes this file.\n"
    )
    text = header + yaml.safe_dump(config_data(sandbox, ini), sort_keys=False)
    sandbox.config_path.write_text(text, encoding="utf-8")


def _base_backup(config_path: Path) -> None:
    from breakglass.engine import service
    from breakglass.engine.events import EventBus
    from breakglass.engine.executor import RunOptions
    from breakglass.engine.interaction import NoInteraction
    from breakglass.engine.workspace import Workspace
    from breakglass.store.records import RunState

    workspace = Workspace.load(config_path=str(config_path), actor="breakglass-sandbox")
    outcome = service.start_run(
        workspace,
        "db-base-backup",
        {"database": catalog.DATABASE},
        options=RunOptions(yes=True),
        interaction=NoInteraction(),
        bus=EventBus(),
    )
    if outcome.state != RunState.SUCCEEDED:
        raise PlatformError(f"the sandbox's base backup failed: {outcome.reason}")


# -- helpers for the demo --------------------------------------------------------------------


def database_where(sandbox: Sandbox) -> str:
    """Return the sandbox database as plans name it: HOST:PORT/DBNAME."""
    assert sandbox.postgres is not None
    return f"127.0.0.1:{sandbox.postgres.port}/{catalog.DATABASE}"


def _connect_app(sandbox: Sandbox) -> Any:
    assert sandbox.postgres is not None
    return connect(sandbox.postgres.port, catalog.DATABASE)


def count_rows(sandbox: Sandbox, table: str) -> int:
    import psycopg
    import psycopg.sql

    try:
        with _connect_app(sandbox) as db:
            query = psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(table))
            row = db.execute(query).fetchone()
    except psycopg.Error as e:
        raise PlatformError(f"counting the rows of {table} in the sandbox failed: {e}") from e
    return int(row[0]) if row else 0


def drop_table(sandbox: Sandbox, table: str) -> str:
    """Drop a table of the sample database and return the server's time just before, in UTC.

    The time comes from the database server's own clock, so a point-in-time recovery to it
    stops before the drop even when this machine's clock differs.
    """
    import psycopg
    import psycopg.sql

    try:
        with _connect_app(sandbox) as db:
            row = db.execute(
                "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC',"
                ' \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')'
            ).fetchone()
            time.sleep(0.5)
            db.execute(psycopg.sql.SQL("DROP TABLE {}").format(psycopg.sql.Identifier(table)))
    except psycopg.Error as e:
        raise PlatformError(f"dropping {table} in the sandbox failed: {e}") from e
    assert row is not None
    return str(row[0])


# -- down -------------------------------------------------------------------------------------


def down(directory: Path, say: Say) -> bool:
    """Stop what the sandbox in `directory` started and remove its files. False if none."""
    directory = directory.absolute()
    sandbox = Sandbox.load(directory)
    if sandbox is None:
        return False
    with shielded():
        if sandbox.daemon_pid is not None and is_daemon(sandbox.daemon_pid):
            say(f"stopping the sandbox services (pid {sandbox.daemon_pid})")
            _stop_daemon(sandbox.daemon_pid)
        if sandbox.postgres is not None and sandbox.postgres.postmaster_pid() is not None:
            say(f"stopping PostgreSQL on 127.0.0.1:{sandbox.postgres.port}")
            sandbox.postgres.stop()
        if sandbox.postgres_base is not None and sandbox.postgres_base.exists():
            shutil.rmtree(sandbox.postgres_base)
        say(f"removing {directory}")
        shutil.rmtree(directory)
    return True


def is_daemon(pid: int) -> bool:
    """True if `pid` is a sandbox daemon, so a reused PID is never signalled."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return DAEMON_MODULE.encode() in cmdline


def _stop_daemon(pid: int) -> None:
    if not is_daemon(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_WAIT_SECONDS
    while time.monotonic() < deadline and is_daemon(pid):
        _reap(pid)
        time.sleep(0.1)
    if is_daemon(pid):
        # The daemon leads its own session, so its process group contains its Job processes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        _reap(pid)


def _reap(pid: int) -> None:
    """Collect the daemon's exit status when this process started it (a test, the demo)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


# -- status -----------------------------------------------------------------------------------


def status(directory: Path) -> dict[str, Any] | None:
    """Return what the sandbox in `directory` runs and whether each piece is alive, or None."""
    sandbox = Sandbox.load(directory.absolute())
    if sandbox is None:
        return None
    postgres = sandbox.postgres
    pg_pid = postgres.postmaster_pid() if postgres else None
    pieces: dict[str, dict[str, Any]] = {
        "postgres": {
            "where": f"127.0.0.1:{postgres.port}" if postgres else None,
            "data_directory": str(postgres.data) if postgres else None,
            "running": pg_pid is not None and process_alive(pg_pid),
        },
        "services": {
            "pid": sandbox.daemon_pid,
            "running": sandbox.daemon_pid is not None and is_daemon(sandbox.daemon_pid),
            **{key: sandbox.services.get(key) for key in ("kubernetes", "moto", "health")},
        },
    }
    return {
        "directory": str(sandbox.directory),
        "config": str(sandbox.config_path),
        "created_at": sandbox.created_at,
        "up": all(piece["running"] for piece in pieces.values()),
        **pieces,
    }
