"""Opening the state store: engine settings, write transactions and self-upgrade.

SQLite is the default so that one operator can work with no server. It runs in WAL mode
with full sync, because a journal entry must survive the process being killed right
after its commit. Write transactions start with BEGIN IMMEDIATE, so two processes that
race for a lease serialize on the database lock instead of failing at commit.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from breakglass.errors import StoreError, StoreUnreachableError
from breakglass.store.schema import SCHEMA_REVISION

log = logging.getLogger(__name__)

_WRITE_OPTION = "breakglass_write"
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0
# An arbitrary constant naming breakglass's schema migrations among PostgreSQL advisory locks.
MIGRATION_LOCK_KEY = 0x6272_6B67


class Store:
    """A handle on the state database; repository modules take its connections."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """Open a write transaction, committed when the block ends without an error."""
        try:
            with self.engine.connect() as raw:
                connection = raw.execution_options(**{_WRITE_OPTION: True})
                with connection.begin():
                    yield connection
        except OperationalError as e:
            raise StoreError(f"state store {self.url}: write failed: {e.orig}") from e

    @contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as connection, connection.begin():
                yield connection
        except OperationalError as e:
            raise StoreError(f"state store {self.url}: read failed: {e.orig}") from e

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str, *, upgrade: bool = True) -> Store:
    """Connect to the store at `url`, creating and upgrading its schema when needed."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise StoreError(
            f"invalid state_url {url!r}", hint="use sqlite:///PATH or postgresql+psycopg://..."
        ) from e
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(url, parsed.database)
    else:
        engine = create_engine(url, pool_pre_ping=True, connect_args=_server_connect_args(parsed))
    store = Store(engine)
    if upgrade:
        try:
            _upgrade(store)
        except (SQLAlchemyError, StoreError) as e:
            cause = e.__cause__ if isinstance(e, StoreError) and e.__cause__ else e
            detail = str(getattr(cause, "orig", None) or cause)
            reason = " ".join(line.strip() for line in detail.splitlines())
            raise StoreUnreachableError(
                f"cannot open state store {store.url}: {reason}",
                hint="check state_url in the config and that the database is reachable",
            ) from e
    return store


def _server_connect_args(parsed: Any) -> dict[str, Any]:
    if parsed.get_backend_name() == "postgresql":
        # libpq's connect_timeout, in seconds, so an unreachable store fails fast.
        return {"connect_timeout": 10}
    return {}


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        directory = Path(database).expanduser().parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A pooled connection stays open between transactions. With a fresh connection per
    # transaction, closing the last one checkpoints the WAL and deletes it, which costs
    # several extra fsyncs per journal entry. Connections move between threads (the lease
    # keeper's and the executor's) but one is never used by two at once.
    engine = create_engine(
        url,
        pool_size=2,
        max_overflow=4,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from pysqlite, so that BEGIN IMMEDIATE is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    if database and database != ":memory:":
        path = Path(database).expanduser()
        if not path.exists():
            path.touch(mode=0o600)
        os.chmod(path, 0o600)
    return engine


def _enable_wal(cursor: Any) -> None:
    """Switch a connection's database to WAL mode, waiting out other processes doing the same.

    Changing the journal mode needs an exclusive lock, and SQLite does not always apply the
    busy timeout to it: two processes opening a new state file at once can see "database is
    locked" here, so the switch is retried.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def current_revision(store: Store) -> str | None:
    with store.read() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
        return str(row[0]) if row else None


def _upgrade(store: Store) -> None:
    revision = current_revision(store)
    if revision == SCHEMA_REVISION:
        return
    from alembic import command
    from alembic.config import Config

    log.info("upgrading state store %s from revision %s", store.url, revision or "(empty)")
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with store.write() as connection:
        if not store.is_sqlite:
            # Two processes opening a new database at once would both create the tables. The
            # lock makes the second wait and then find the schema in place. On SQLite, BEGIN
            # IMMEDIATE already serializes them.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
