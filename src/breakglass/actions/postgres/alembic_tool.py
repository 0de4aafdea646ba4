"""The Alembic migration tool, run in-process on the project's alembic.ini and env.py.

breakglass opens the connection itself, with the password as a connection argument, and
hands it to env.py in `config.attributes["connection"]`, the way Alembic's documentation
of programmatic commands shares a connection. env.py must use it when it is set, which the
env.py that `alembic init` writes does not. Every read of the version is a pass through
env.py that also checks it used that connection, so an env.py that connects on its own
(possibly to another database) is rejected before the first downgrade.

The project's env.py is code breakglass does not control: it may call
`logging.config.fileConfig` and extend `sys.path`. Both are restored after each pass.
"""

from __future__ import annotations

import configparser
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from breakglass.actions.base import (
    ActionCancelledError,
    ActionContext,
    ActionError,
    ActionTimeoutError,
)
from breakglass.actions.postgres.client import map_error
from breakglass.actions.postgres.migrations import DowngradeStep, MigrationTool
from breakglass.config.databases import DatabaseConfig
from breakglass.config.migrations import MigrationsConfig
from breakglass.config.redaction import REDACTOR
from breakglass.config.secrets import resolve_secret
from breakglass.durations import format_duration

# Names Alembic reads as symbols rather than revision ids.
SYMBOLS = {"head", "heads", "base"}
# Alembic rejects these characters in revision ids, because its target syntax uses them.
NOT_IN_IDS = "@+:-"
CANCEL_REPEAT_SECONDS = 1.0


class Watchdog:
    """Cancel the running query when the run is aborted or the deadline passes.

    Alembic runs the downgrade in the step's own thread, so only a cancel request to the
    server can stop it from outside. A request fails only the statement running at that
    moment, so it is repeated every second until the downgrade returns.
    """

    def __init__(self, cancel: Callable[[], None], ctx: ActionContext, budget: float) -> None:
        self.cancel = cancel
        self.ctx = ctx
        self.budget = budget
        self.reason: str | None = None
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="migration-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finished.set()
        self.thread.join()

    def _watch(self) -> None:
        deadline = time.monotonic() + self.budget
        while not self.finished.wait(timeout=0.1):
            if self.reason is None and self.ctx.cancelled.is_set():
                self.reason = "cancelled"
            elif self.reason is None and time.monotonic() >= deadline:
                self.reason = "timeout"
            if self.reason is None:
                continue
            self.cancel()
            self.finished.wait(timeout=CANCEL_REPEAT_SECONDS)


@contextmanager
def process_state_kept() -> Iterator[None]:
    """Restore logging and sys.path after env.py, which may reconfigure both for the process."""
    saved_path = list(sys.path)
    root = logging.getLogger()
    saved_root = (root.level, list(root.handlers))
    saved_loggers = {
        name: (logger.disabled, logger.level, list(logger.handlers), logger.propagate)
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    try:
        yield
    finally:
        sys.path[:] = saved_path
        root.setLevel(saved_root[0])
        root.handlers[:] = saved_root[1]
        for name, (disabled, level, handlers, propagate) in saved_loggers.items():
            logger = logging.getLogger(name)
            logger.disabled = disabled
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate = propagate


class AlembicTool(MigrationTool):
    """Alembic in-process: revisions from the script directory, heads read through env.py."""

    kind = "alembic"

    def __init__(
        self,
        name: str,
        db: DatabaseConfig,
        settings: MigrationsConfig,
        ctx: ActionContext,
        started: float,
    ) -> None:
        super().__init__(name, db, settings, ctx, started)
        self.config = self._load_config()
        self.location = self.config.get_main_option("script_location") or ""
        with self.failures("reading the Alembic script directory"), process_state_kept():
            self.script = ScriptDirectory.from_config(self.config)
        self.engine = self._engine()

    def _load_config(self) -> Config:
        assert self.settings.config_file is not None
        base = self.ctx.config.base_dir
        ini = base / self.settings.config_file
        if not ini.is_file():
            raise ActionError(
                f"alembic config {ini} of database {self.name} does not exist; check migrations.config_file"
            )
        config = Config(file_=str(ini))
        try:
            written = config.get_main_option("script_location")
        except configparser.Error as e:
            raise ActionError(f"cannot read alembic config {ini}: {_first_line(e)}") from None
        if self.settings.script_location is not None:
            location = str(base / self.settings.script_location)
        elif not written:
            raise ActionError(
                f"{ini} has no script_location; set it there or as migrations.script_location"
            )
        elif os.path.isabs(written) or ":" in written:
            # An absolute path, or a package resource written as package:directory.
            location = written
        else:
            # The alembic command resolves a relative location against its working
            # directory, which is where alembic.ini lives when people run it by hand.
            location = str(ini.parent / written)
        config.set_main_option("script_location", location.replace("%", "%%"))
        return config

    def _engine(self) -> Engine:
        db = self.db
        arguments: dict[str, Any] = {
            "connect_timeout": max(1, math.ceil(min(db.connect_timeout, self.budget()))),
            "application_name": "breakglass",
        }
        if db.password is not None:
            # A connection argument, never part of the URL, which SQLAlchemy and Alembic print.
            arguments["password"] = resolve_secret(db.password, base_dir=self.ctx.config.base_dir)
        if db.sslmode:
            arguments["sslmode"] = db.sslmode
        url = URL.create(
            "postgresql+psycopg",
            username=db.user,
            host=db.host,
            port=db.port,
            database=db.dbname,
        )
        return create_engine(url, poolclass=NullPool, connect_args=arguments)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def failures(self, doing: str, watchdog: Watchdog | None = None) -> Iterator[None]:
        """Turn what Alembic, SQLAlchemy or the project's scripts raise into ActionError."""
        try:
            yield
        except ActionError:
            raise
        except DBAPIError as e:
            if watchdog is not None and watchdog.reason == "timeout":
                raise ActionTimeoutError(
                    f"{doing} did not finish within {format_duration(watchdog.budget)}; "
                    "its query was cancelled, which rolls back the transaction it ran in"
                ) from None
            if watchdog is not None and watchdog.reason == "cancelled":
                raise ActionCancelledError(
                    f"{doing} was stopped: the run was aborted, so its query was cancelled"
                ) from None
            if isinstance(e.orig, psycopg.Error):
                mapped = map_error(e.orig, self.db, "query")
                raise ActionError(
                    f"{doing} failed: {mapped.message}",
                    temporary=mapped.temporary,
                    unreachable=mapped.unreachable,
                ) from None
            raise ActionError(f"{doing} failed: {_first_line(e)}") from None
        except CommandError as e:
            raise ActionError(f"{doing} failed: Alembic: {_first_line(e)}") from None
        except SQLAlchemyError as e:
            raise ActionError(f"{doing} failed: {_first_line(e)}") from None
        # env.py and the revision scripts are project code that can raise anything, and
        # the step must fail with what they raised instead of crashing the run.
        except Exception as e:
            raise ActionError(
                f"{doing} failed in the project's Alembic scripts ({self.location}): "
                f"{type(e).__name__}: {_first_line(e)}"
            ) from None

    @contextmanager
    def connection(self, doing: str) -> Iterator[Connection]:
        """Open a connection, mapping a failure to connect to an unreachable ActionError."""
        try:
            opened = self.engine.connect()
        except DBAPIError as e:
            if isinstance(e.orig, psycopg.Error):
                mapped = map_error(e.orig, self.db, "connect")
                raise ActionError(
                    f"{doing} failed: {mapped.message}",
                    temporary=mapped.temporary,
                    unreachable=mapped.unreachable,
                ) from None
            raise ActionError(f"{doing} failed: {_first_line(e)}", temporary=True) from None
        with opened:
            yield opened

    def _run_env(
        self,
        connection: Connection,
        doing: str,
        read: Callable[[Any, MigrationContext], list[Any]],
        budget: float,
    ) -> None:
        """Run env.py with `read` as its migration function, on `connection`, within `budget`."""
        self.config.attributes["connection"] = connection
        watchdog = Watchdog(_canceller(connection), self.ctx, budget)
        with (
            self.failures(doing, watchdog),
            process_state_kept(),
            watchdog,
            EnvironmentContext(self.config, self.script, fn=read, dont_mutate=True),
        ):
            self.script.run_env()

    def heads(self) -> list[str]:
        doing = f"reading the Alembic version of {self.db.where()}"
        budget = self.check_time(doing)
        found: dict[str, Any] = {}

        def read(revision: Any, context: MigrationContext) -> list[Any]:
            found["heads"] = list(context.get_current_heads())
            found["driver"] = _driver_of(context.connection)
            return []

        with self.connection(doing) as connection:
            ours = _driver_of(connection)
            self._run_env(connection, doing, read, budget)
        if "heads" not in found:
            raise ActionError(
                f"env.py in {self.location} ran no migrations, so the version of {self.db.where()} "
                "is unknown; check that env.py calls context.run_migrations() in online mode"
            )
        if found["driver"] is not ours:
            raise ActionError(
                f"env.py in {self.location} opened its own connection instead of the one "
                "breakglass passes in config.attributes['connection'], so it may act on another "
                "database; make env.py use that connection when it is set"
            )
        return [str(head) for head in found["heads"]]

    def known(self) -> list[str]:
        with self.failures("reading the Alembic revisions"):
            return [revision.revision for revision in self.script.walk_revisions()][::-1]

    def resolve(self, version: str) -> str:
        if version in SYMBOLS or any(mark in version for mark in NOT_IN_IDS):
            raise ActionError(
                f"{version!r} is not a revision id; give the revision to return to, or -N"
            )
        try:
            revision = self.script.get_revision(version)
        except CommandError:
            raise self.unknown(version) from None
        if revision is None:
            raise self.unknown(version)
        return str(revision.revision)

    def canonical(self, version: str) -> str:
        try:
            return self.resolve(version)
        except ActionError:
            return version

    def parent(self, version: str) -> str | None:
        with self.failures(f"reading Alembic revision {version}"):
            revision = self.script.get_revision(version)
        if revision is None:
            return None
        below = revision.down_revision
        if below is None:
            return None
        if isinstance(below, str):
            return below
        if len(below) == 1:
            return str(below[0])
        raise ActionError(
            f"revision {version} merges {', '.join(below)}; pg.migrations.rollback_to goes back "
            "along one line of history only: downgrade across the merge with alembic by hand"
        )

    def downgrade(self, step: DowngradeStep) -> None:
        doing = f"alembic downgrade to {step.to_version}"
        budget = self.check_time(doing)
        with self.connection(doing) as connection:
            watchdog = Watchdog(_canceller(connection), self.ctx, budget)
            # One transaction, committed when the block ends. PostgreSQL rolls DDL back with
            # it, so a failed or cancelled downgrade leaves no half-done step, unless env.py
            # commits on its own (transaction_per_migration, autocommit blocks).
            with self.failures(doing, watchdog), connection.begin():
                self.config.attributes["connection"] = connection
                with process_state_kept(), watchdog:
                    # An explicit revision, not "-1", which Alembic resolves ambiguously
                    # when the database is at several heads.
                    command.downgrade(self.config, step.to_version)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return REDACTOR.redact(lines[0] if lines else type(error).__name__)


def _driver_of(connection: Connection | None) -> Any:
    """Return the psycopg connection under a SQLAlchemy one, or None."""
    if connection is None:
        return None
    return connection.connection.driver_connection


def _canceller(connection: Connection) -> Callable[[], None]:
    """Return a function that sends the server a cancel request for the query on `connection`."""

    def cancel() -> None:
        driver = connection.connection.driver_connection
        if driver is not None:
            driver.cancel_safe()

    return cancel
