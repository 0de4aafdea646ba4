"""Connections, errors and client programs for the PostgreSQL actions.

psycopg errors never leave this package: each is mapped to an ActionError that names the
database (host, port, name) and marks whether a retry could help.
"""

from __future__ import annotations

import glob
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import errors as pg_errors

from breakglass.actions.base import (
    ActionCancelledError,
    ActionContext,
    ActionError,
    ActionTimeoutError,
)
from breakglass.config.databases import DatabaseConfig
from breakglass.config.redaction import REDACTOR
from breakglass.config.secrets import resolve_secret

# After SIGTERM, how long a client program's process group gets before SIGKILL.
KILL_GRACE_SECONDS = 3.0
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")


def database(ctx: ActionContext, name: str) -> DatabaseConfig:
    """Return the configured database `name`, or raise naming the configured ones."""
    databases = ctx.config.model.databases
    if name not in databases:
        known = ", ".join(sorted(databases)) or "none"
        raise ActionError(
            f"database {name!r} is not configured (databases: {known}); add it under `databases:`"
        )
    return databases[name]


def _password(db: DatabaseConfig, ctx: ActionContext) -> str | None:
    return resolve_secret(db.password, base_dir=ctx.config.base_dir) if db.password else None


@contextmanager
def connect(
    db: DatabaseConfig, ctx: ActionContext, *, timeout: float | None = None
) -> Iterator[psycopg.Connection]:
    """Open an autocommit session with the statement timeout set, mapping errors."""
    statement_ms = int(1000 * min(db.statement_timeout, timeout or db.statement_timeout))
    try:
        connection = psycopg.connect(
            host=db.host,
            port=db.port,
            dbname=db.dbname,
            user=db.user,
            password=_password(db, ctx),
            sslmode=db.sslmode,
            connect_timeout=max(
                1, math.ceil(min(db.connect_timeout, timeout or db.connect_timeout))
            ),
            application_name="breakglass",
            options=f"-c statement_timeout={statement_ms}",
            autocommit=True,
        )
    except psycopg.Error as e:
        raise map_error(e, db, "connect") from None
    try:
        yield connection
    except psycopg.Error as e:
        raise map_error(e, db, "query") from None
    finally:
        connection.close()


def map_error(error: psycopg.Error, db: DatabaseConfig, doing: str) -> ActionError:
    detail = _first_line(error)
    where = db.where()
    if isinstance(error, pg_errors.QueryCanceled):
        return ActionError(f"{where}: the statement timed out ({detail})", temporary=True)
    if isinstance(error, pg_errors.ReadOnlySqlTransaction):
        return ActionError(
            f"{where}: the statement tried to write, but pg.query is read-only ({detail})"
        )
    if isinstance(error, psycopg.OperationalError):
        return ActionError(
            f"cannot {doing} {where}: {detail}", temporary=True, unreachable=doing == "connect"
        )
    return ActionError(f"{where}: {detail}")


def _first_line(error: psycopg.Error) -> str:
    text = str(error).strip().splitlines()
    return REDACTOR.redact(" ".join(line.strip() for line in text[:2]) or type(error).__name__)


def child_env(db: DatabaseConfig, ctx: ActionContext) -> dict[str, str]:
    """Return the environment of a client program: connection settings, the password included."""
    env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    env.update(
        PGHOST=db.host,
        PGPORT=str(db.port),
        PGDATABASE=db.dbname,
        PGUSER=db.user,
        PGCONNECT_TIMEOUT=str(max(1, math.ceil(db.connect_timeout))),
        PGAPPNAME="breakglass",
    )
    password = _password(db, ctx)
    if password is not None:
        env["PGPASSWORD"] = password
    if db.sslmode:
        env["PGSSLMODE"] = db.sslmode
    return env


def program(db: DatabaseConfig, name: str) -> str:
    """Find a PostgreSQL client program: the configured bindir, then PATH, then the Debian layout."""
    if db.bindir is not None:
        candidate = db.bindir / name
        if candidate.is_file():
            return str(candidate)
        raise ActionError(f"{name} not found in bindir {db.bindir}")
    found = shutil.which(name)
    if found:
        return found
    installed = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if installed:
        return installed[0]
    raise ActionError(
        f"{name} not found on PATH or under /usr/lib/postgresql; install the PostgreSQL client programs"
    )


def run_program(
    argv: Sequence[str],
    env: dict[str, str],
    ctx: ActionContext,
    *,
    started: float,
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a client program in its own process group, killed at the step's deadline.

    Output goes to temporary files rather than pipes: `pg_ctl start` leaves the server
    running with the descriptors it inherited, and a pipe would then never reach EOF.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        with tempfile.TemporaryFile() as given:
            if stdin is not None:
                given.write(stdin)
                given.seek(0)
            child = subprocess.Popen(
                list(argv),
                env=env,
                stdin=given if stdin is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        ctx.on_process(child.pid)
        while True:
            left = ctx.remaining(started)
            if ctx.cancelled.is_set() or left <= 0:
                kill_group(child)
                if ctx.cancelled.is_set():
                    raise ActionCancelledError(f"{argv[0]} was stopped: the run was aborted")
                raise ActionTimeoutError(
                    f"{Path(argv[0]).name} did not finish in time; its process group was killed"
                )
            try:
                child.wait(timeout=min(0.2, left))
            except subprocess.TimeoutExpired:
                continue
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(list(argv), child.returncode, out.read(), err.read())


def failure_output(done: subprocess.CompletedProcess[bytes], limit: int = 500) -> str:
    """Return the end of a failed program's error output (stdout when stderr is empty), masked."""
    text = (done.stderr or done.stdout).decode(errors="replace").strip()
    return REDACTOR.redact(text[-limit:])


def kill_group(child: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if child.poll() is not None:
                return
            time.sleep(0.05)
